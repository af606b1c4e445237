//! The other end of the delivery tests: a raw AF_PACKET socket on a kernel interface cabled to
//! the NIC (`NETHUNS_HW_PEER`), or the NIC itself cabled back (`NETHUNS_HW_LOOPBACK=1`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nethuns_testnet::frames;

use crate::traffic::{say, DEADLINE};

/// Where the frames of the delivery tests come from and go to.
pub(crate) enum Peer {
    /// A raw socket on the kernel interface cabled to the NIC.
    Raw(RawPeer),
    /// The NIC itself, cabled back (or to a reflector).
    Loopback,
}

impl Peer {
    pub(crate) fn from_env(test: &str, pci: &str) -> Option<Peer> {
        match std::env::var("NETHUNS_HW_PEER") {
            Ok(iface) if !iface.is_empty() => return Some(Peer::Raw(RawPeer::open(&iface))),
            _ => {}
        }
        if std::env::var("NETHUNS_HW_LOOPBACK").is_ok_and(|v| v == "1") {
            return Some(Peer::Loopback);
        }
        say!(
            "SKIPPED {test}: no peer for {pci}: set NETHUNS_HW_PEER=IF (a kernel interface cabled \
             to it) or NETHUNS_HW_LOOPBACK=1 (cabled back to itself or to a reflector)"
        );
        None
    }

    /// Whether MAC addresses arrive as sent (a reflector may rewrite them).
    pub(crate) fn exact_macs(&self) -> bool {
        matches!(self, Peer::Raw(_))
    }
}

/// A raw AF_PACKET socket on the peer interface, promiscuous (test frames are not addressed
/// to it), with a short receive timeout.
pub(crate) struct RawPeer {
    fd: OwnedFd,
    pub(crate) iface: String,
}

impl RawPeer {
    pub(crate) fn open(iface: &str) -> RawPeer {
        let sys = format!("/sys/class/net/{iface}");
        let flags = std::fs::read_to_string(format!("{sys}/flags"))
            .unwrap_or_else(|e| panic!("NETHUNS_HW_PEER={iface}: no such interface ({e})"));
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & libc::IFF_UP as u32 == 0 {
            say!("bringing the peer interface {iface} up");
            let ok = std::process::Command::new("ip")
                .args(["link", "set", "dev", iface, "up"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "`ip link set dev {iface} up` failed");
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh socket we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        assert!(ifindex > 0, "no interface {iface}");
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "bind to {iface}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: packet_mreq is plain data.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        let rcvbuf: libc::c_int = 16 << 20;
        for (level, opt, val, len) in [
            (
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast::<libc::c_void>(),
                std::mem::size_of::<libc::packet_mreq>(),
            ),
            (
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>(),
            ),
            (
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&rcvbuf as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>(),
            ),
        ] {
            // SAFETY: val points to a live value of `len` bytes of the option's type.
            let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, val, len as u32) };
            assert_eq!(
                rc,
                0,
                "setsockopt {opt} on {iface}: {}",
                std::io::Error::last_os_error()
            );
        }
        RawPeer {
            fd,
            iface: iface.to_owned(),
        }
    }

    /// Waits (bounded) for the kernel to see the carrier.
    pub(crate) fn wait_carrier(&self) {
        let path = format!("/sys/class/net/{}/carrier", self.iface);
        let end = Instant::now() + Duration::from_secs(15);
        while !std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == "1") {
            assert!(
                Instant::now() < end,
                "peer {}: no carrier after 15 s",
                self.iface
            );
            sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn send(&self, f: &[u8]) {
        let end = Instant::now() + DEADLINE;
        loop {
            // SAFETY: f is valid for its length; the socket is bound to its interface.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
            if n == f.len() as isize {
                return;
            }
            let e = std::io::Error::last_os_error();
            let busy = matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN));
            assert!(busy && Instant::now() < end, "send on {}: {e}", self.iface);
            sleep(Duration::from_micros(100));
        }
    }

    /// Incoming test frames (not our own outgoing ones) until `want` arrived or the deadline,
    /// then 100 ms more so extra or duplicated frames show.
    pub(crate) fn receive(&self, want: usize) -> Vec<Vec<u8>> {
        let end = Instant::now() + DEADLINE;
        let mut linger: Option<Instant> = None;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while Instant::now() < linger.unwrap_or(end) {
            // SAFETY: sockaddr_ll is plain data.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and sll are valid for the sizes passed.
            let r = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if r > 0 && sll.sll_pkttype != libc::PACKET_OUTGOING {
                let f = &buf[..r as usize];
                if frames::is_test_frame(f) {
                    got.push(f.to_vec());
                }
            }
            if got.len() >= want && linger.is_none() {
                linger = Some(Instant::now() + Duration::from_millis(100));
            }
        }
        got
    }
}
