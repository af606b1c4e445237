//! [`RawPeer`]: the other end of a conformance case — a plain AF_PACKET socket (no ring, no
//! nethuns) that sends frames as given and receives frames as they were on the wire, the VLAN
//! tag the kernel moved into metadata put back (`PACKET_AUXDATA`), as libpcap does.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A raw AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct RawPeer {
    fd: OwnedFd,
    ifindex: i32,
    ifname: String,
}

const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

impl RawPeer {
    /// Opens a raw socket on `ifname` (of the calling thread's namespace): non-blocking,
    /// receiving only frames that arrive (not the ones it sends).
    pub fn open(ifname: &str) -> io::Result<RawPeer> {
        let name = std::ffi::CString::new(ifname)?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain socket call.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: fd is open; `one` lives across the call and has the option's size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawPeer {
            fd,
            ifindex,
            ifname: ifname.to_owned(),
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Sends one frame as it is, retrying for up to a second while the kernel's queue is full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            // SAFETY: frame and sll are valid for reads of the sizes passed.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            let again = matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS));
            if !again || Instant::now() > deadline {
                return Err(e);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The next frame that arrived, as it was on the wire, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        let mut cbuf = [0u64; 16];
        loop {
            // SAFETY: all-zero sockaddr_ll is valid as an out-parameter.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: all-zero msghdr is valid; fields set below.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            // SAFETY: msg points at live buffers of the sizes it states.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EAGAIN) || Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let mut frame = buf[..(n as usize).min(buf.len())].to_vec();
            // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR reads its control fields.
            let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
            while !c.is_null() {
                // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return null or a whole header inside the
                // control buffer, which outlives this loop.
                let hdr = unsafe { &*c };
                if hdr.cmsg_level == libc::SOL_PACKET && hdr.cmsg_type == libc::PACKET_AUXDATA {
                    // SAFETY: `c` is a header of msg's control buffer.
                    let data = unsafe { libc::CMSG_DATA(c) };
                    // SAFETY: a PACKET_AUXDATA message carries one tpacket_auxdata, maybe
                    // unaligned in the buffer.
                    let aux =
                        unsafe { std::ptr::read_unaligned(data.cast::<libc::tpacket_auxdata>()) };
                    if aux.tp_status & TP_STATUS_VLAN_VALID != 0 && frame.len() >= 12 {
                        let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            0x8100
                        };
                        let mut tag = tpid.to_be_bytes().to_vec();
                        tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                        frame.splice(12..12, tag);
                    }
                }
                // SAFETY: `c` is a header of msg's control buffer; msg is the one recvmsg filled.
                c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
            }
            return Some(frame);
        }
    }

    /// Drops whatever is waiting.
    pub fn drain(&self) {
        while self.recv(Duration::ZERO).is_some() {}
    }
}
