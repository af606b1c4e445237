//! What the lab tests need to know about, and do with, a real NIC apart from AF_XDP: sysfs
//! counters and queues, the driver's RX ring size, whether an XDP program is attached, and a
//! plain `AF_PACKET` socket (the kernel-side peer) that holds the interface in promiscuous mode.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nethuns_testnet::frames;

fn sys(iface: &str, what: &str) -> String {
    let path = format!("/sys/class/net/{iface}/{what}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {path}: {e} (is {iface} in this network namespace?)"))
        .trim()
        .to_owned()
}

/// The interface's MTU.
pub fn mtu(iface: &str) -> u32 {
    let v = sys(iface, "mtu");
    v.parse()
        .unwrap_or_else(|_| panic!("/sys/class/net/{iface}/mtu: {v:?}"))
}

/// The NIC's `tx_packets` counter.
pub fn tx_packets(iface: &str) -> u64 {
    let v = sys(iface, "statistics/tx_packets");
    v.parse()
        .unwrap_or_else(|_| panic!("/sys/class/net/{iface}/statistics/tx_packets: {v:?}"))
}

fn queues(iface: &str, prefix: &str) -> u32 {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .count() as u32;
    assert!(n >= 1, "{dir} lists no {prefix}* queue");
    n
}

/// The RX queues the NIC has (`/sys/class/net/IF/queues/rx-*`).
pub fn rx_queues(iface: &str) -> u32 {
    queues(iface, "rx-")
}

/// The TX queues the NIC has (`/sys/class/net/IF/queues/tx-*`).
pub fn tx_queues(iface: &str) -> u32 {
    queues(iface, "tx-")
}

/// `ip -d link show dev IF`, and whether it shows an XDP program.
pub fn xdp_program(iface: &str) -> (bool, String) {
    let out = nethuns_testnet::run("ip", &["-d", "link", "show", "dev", iface])
        .unwrap_or_else(|e| panic!("ip -d link show dev {iface}: {e}"));
    let attached = out.contains("prog/xdp") || out.split_whitespace().any(|w| w.starts_with("xdp"));
    (attached, out)
}

/// `struct ethtool_ringparam` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct RingParam {
    cmd: u32,
    rx_max_pending: u32,
    rx_mini_max_pending: u32,
    rx_jumbo_max_pending: u32,
    tx_max_pending: u32,
    rx_pending: u32,
    rx_mini_pending: u32,
    rx_jumbo_pending: u32,
    tx_pending: u32,
}

const ETHTOOL_GRINGPARAM: u32 = 0x10;

/// The driver's RX ring size (`ethtool -g`): the most frames a zero-copy driver takes from the
/// fill ring into its hardware ring. `None` when the driver does not say.
pub fn rx_ring_size(iface: &str) -> Option<u32> {
    let name = CString::new(iface).ok()?;
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ring = RingParam {
        cmd: ETHTOOL_GRINGPARAM,
        ..RingParam::default()
    };
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut ring as *mut RingParam).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GRINGPARAM writes one ethtool_ringparam through
    // ifru_data, which points to `ring`, alive for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL as _, &mut req) };
    (rc == 0 && ring.rx_pending > 0).then_some(ring.rx_pending)
}

/// Waits up to `timeout` for `POLLIN` on `fd`.
pub fn poll_in(fd: i32, timeout: Duration) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
}

/// An `AF_PACKET` raw socket on one interface for test frames (EtherType 0x88B5). While it is
/// open the interface is promiscuous (a `PACKET_MR_PROMISC` membership, which the kernel drops
/// when the socket closes, even if the process dies), so frames to the test MAC get in.
pub struct Raw {
    fd: OwnedFd,
    iface: String,
}

fn check(rc: libc::c_int, what: &str, iface: &str) {
    assert!(rc >= 0, "{what} on {iface}: {}", io::Error::last_os_error());
}

impl Raw {
    /// Opens it on `iface` (of the calling thread's namespace).
    pub fn open(iface: &str) -> Raw {
        let name = CString::new(iface).unwrap();
        // SAFETY: `name` is NUL-terminated.
        let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(idx != 0, "no interface {iface} in this network namespace");
        let proto = frames::ETHERTYPE.to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as i32,
            )
        };
        check(raw, "AF_PACKET socket", iface);
        // SAFETY: raw is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero sockaddr_ll is valid; filled below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = idx as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        check(rc, "AF_PACKET bind", iface);
        let s = Raw {
            fd,
            iface: iface.to_owned(),
        };
        // SAFETY: all-zero packet_mreq is valid; filled below.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = idx as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        s.setopt(
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_MR_PROMISC",
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        };
        s.setopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv, "SO_RCVTIMEO");
        // Room for a full window of 1514-byte frames (root may exceed rmem_max).
        let size: libc::c_int = 32 << 20;
        s.setopt(
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size,
            "SO_RCVBUFFORCE",
        );
        s
    }

    fn setopt<T>(&self, level: i32, opt: i32, val: &T, what: &str) {
        // SAFETY: `val` points to a live T whose size is passed; the kernel copies it.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (val as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        check(rc, what, &self.iface);
    }

    /// Sends one frame; retries while the device queue is full, until `deadline`.
    pub fn send(&self, frame: &[u8], deadline: Instant) {
        loop {
            // SAFETY: `frame` is a valid buffer of its length.
            let rc =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if rc == frame.len() as isize {
                return;
            }
            let e = io::Error::last_os_error();
            let again = matches!(
                e.raw_os_error(),
                Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR)
            );
            assert!(
                rc < 0 && again && Instant::now() < deadline,
                "AF_PACKET send of {} bytes on {}: {rc}: {e}",
                frame.len(),
                self.iface
            );
            std::thread::yield_now();
        }
    }

    /// Receives one incoming frame into `buf` (waits at most 20 ms); its length.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: all-zero sockaddr_ll is valid output storage.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: `buf` and `from` are writable for the sizes given.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut alen,
            )
        };
        (n > 0 && from.sll_pkttype != libc::PACKET_OUTGOING).then_some(n as usize)
    }
}

#[test]
fn ringparam_layout() {
    // struct ethtool_ringparam: nine __u32.
    assert_eq!(std::mem::size_of::<RingParam>(), 36);
}
