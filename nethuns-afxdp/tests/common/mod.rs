//! Helpers shared by the AF_XDP integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use nethuns_afxdp::{Error, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

/// Test frame sizes: minimum Ethernet, 64, medium, full MTU.
pub const SIZES: [usize; 4] = [60, 64, 512, 1514];

/// One socket with default flags on each end of `pair` (`veth_a` in ns a, `veth_b` in ns b).
pub fn open_pair(pair: &NetPair) -> (Sock, Sock) {
    let a = pair
        .in_a(|| Sock::create(&pair.veth_a, None, nethuns_afxdp::AfXdpFlags::default()))
        .expect("AF_XDP socket on veth_a");
    let b = pair
        .in_b(|| Sock::create(&pair.veth_b, None, nethuns_afxdp::AfXdpFlags::default()))
        .expect("AF_XDP socket on veth_b");
    (a, b)
}

/// Sends `frames` through `sock`, retrying while TX frames are all in flight; flushes.
pub fn send_all(sock: &Sock, frames: impl IntoIterator<Item = Vec<u8>>, deadline: Instant) {
    for f in frames {
        loop {
            match sock.send(&f) {
                Ok(()) => break,
                Err(Error::NoMemory) => {
                    assert!(Instant::now() < deadline, "send: TX frames never completed");
                    sock.flush();
                    std::thread::yield_now();
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }
    sock.flush();
}

/// Receives test frames until `count` arrived or `timeout` passed; calls `check` on each
/// (sequence number, bytes, metadata length). Returns how many arrived.
pub fn recv_count(
    sock: &Sock,
    count: u64,
    timeout: Duration,
    mut check: impl FnMut(u32, &[u8], u32),
) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut n = 0;
    while n < count && Instant::now() < deadline {
        match sock.recv() {
            Ok((p, meta)) => {
                if let Some(seq) = frames::seq_of(&p) {
                    check(seq, &p, meta.len);
                    n += 1;
                }
            }
            Err(Error::NoPacket) => std::thread::yield_now(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    n
}

/// `ip -d link show` of the veth end in namespace a (or b).
pub fn link_details(pair: &NetPair, side_a: bool) -> String {
    if side_a {
        pair.ip_a(&["-d", "link", "show", "dev", &pair.veth_a])
            .unwrap()
    } else {
        pair.ip_b(&["-d", "link", "show", "dev", &pair.veth_b])
            .unwrap()
    }
}

/// Whether an XDP program is attached to the veth end (as `ip link` reports `xdp…`).
pub fn xdp_attached(pair: &NetPair, side_a: bool) -> bool {
    let s = link_details(pair, side_a);
    s.contains("xdp") || s.contains("prog/")
}

/// An AF_PACKET raw socket bound to one interface (a peer that is not AF_XDP).
pub struct RawSock(i32);

impl RawSock {
    /// Opens it inside the calling thread's namespace.
    pub fn open(ifname: &str) -> RawSock {
        let name = std::ffi::CString::new(ifname).unwrap();
        // A test peer's setup: one sequence of plain syscalls, read as one.
        #[allow(clippy::multiple_unsafe_ops_per_block)]
        // SAFETY: plain libc calls with valid arguments; results checked.
        unsafe {
            let idx = libc::if_nametoindex(name.as_ptr());
            assert!(idx > 0, "no {ifname}");
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as i32,
            );
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_protocol = proto;
            sa.sll_ifindex = idx as i32;
            let rc = libc::bind(
                fd,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert!(
                rc == 0,
                "AF_PACKET bind: {}",
                std::io::Error::last_os_error()
            );
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 20_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            RawSock(fd)
        }
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: frame is a valid buffer of its length.
        let rc = unsafe { libc::send(self.0, frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            rc,
            frame.len() as isize,
            "AF_PACKET send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Receives one frame (waits at most 20 ms), incoming only.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: buf is writable for its length, `sa` for `len` bytes.
        let rc = unsafe {
            libc::recvfrom(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sa as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if rc < 0 || sa.sll_pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        buf.truncate(rc as usize);
        Some(buf)
    }
}

impl Drop for RawSock {
    fn drop(&mut self) {
        // SAFETY: the fd is owned by this value.
        unsafe { libc::close(self.0) };
    }
}
