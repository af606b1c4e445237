//! What the socket needs to know about a network device: its name checked, its index, MTU and
//! queue count, and the network namespace the calling thread is in.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nethuns_core::{Error, Result};

/// Checks an interface name (the portspec) and makes it a C string.
pub(crate) fn ifname(portspec: &str) -> Result<CString> {
    let bad = |why: &str| Err(Error::portspec(portspec, why));
    if portspec.is_empty() {
        return bad("empty: expected an interface name such as \"eth0\"");
    }
    if portspec.len() >= libc::IFNAMSIZ {
        return bad("longer than 15 bytes, the kernel's limit for interface names");
    }
    if portspec == "." || portspec == ".." {
        return bad("not an interface name");
    }
    if let Some(c) = portspec
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad(&format!(
            "{c:?} cannot appear in an interface name (AF_XDP takes a plain name such as \"eth0\")"
        ));
    }
    CString::new(portspec).or_else(|_| bad("contains NUL"))
}

/// The index of interface `name` in the calling thread's network namespace.
pub(crate) fn ifindex(name: &CString, queue: u32) -> Result<u32> {
    // SAFETY: `name` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        return Err(Error::os(
            format!(
                "AF_XDP on {} queue {queue}: no such interface in this network namespace",
                name.to_string_lossy()
            ),
            io::Error::last_os_error(),
        ));
    }
    Ok(idx)
}

fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_for(name: &CString) -> libc::ifreq {
    ifreq_from_bytes(name.as_bytes())
}

/// An ifreq naming `name` (at most IFNAMSIZ - 1 bytes, no NUL: the rest stays zero).
fn ifreq_from_bytes(name: &[u8]) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    req
}

/// The MTU of interface `name`.
pub(crate) fn mtu(name: &CString) -> io::Result<u32> {
    let s = ioctl_socket()?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_mtu of a valid ifreq.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFMTU the union holds ifru_mtu.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// A socket for interface ioctls in the calling thread's network namespace. A socket stays in
/// the namespace it was made in, so ioctls through it reach the same interfaces from any
/// thread later.
pub(crate) fn ctl_socket() -> io::Result<OwnedFd> {
    ioctl_socket()
}

/// What a link check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Up with a carrier (`IFF_UP | IFF_RUNNING`).
    Up,
    /// Administratively up, but without a carrier (`IFF_RUNNING` clear).
    NoCarrier,
    /// Present, but administratively down (`IFF_UP` clear).
    Down,
    /// No interface of that name in `ctl`'s namespace (deleted, or moved away).
    Gone,
}

/// The state of interface `name` of `ctl`'s namespace (one `SIOCGIFFLAGS` ioctl).
pub(crate) fn link_state(ctl: &OwnedFd, name: &str) -> LinkState {
    // No CString: this runs on the transmit slow path and the idle receive path, which must
    // not allocate.
    if name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
        return LinkState::Gone;
    }
    let mut req = ifreq_from_bytes(name.as_bytes());
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of a valid ifreq.
    let rc = unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if rc < 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENODEV | libc::ENXIO) => LinkState::Gone,
            _ => LinkState::Down,
        };
    }
    // SAFETY: after a successful SIOCGIFFLAGS the union holds ifru_flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
    if flags & libc::IFF_UP == 0 {
        LinkState::Down
    } else if flags & libc::IFF_RUNNING == 0 {
        LinkState::NoCarrier
    } else {
        LinkState::Up
    }
}

/// Whether interface `name` of `ctl`'s namespace is up and has a carrier
/// (`IFF_UP | IFF_RUNNING`); false if it is gone.
pub(crate) fn is_running(ctl: &OwnedFd, name: &str) -> bool {
    link_state(ctl, name) == LinkState::Up
}

/// The pending error of socket `fd` (`SO_ERROR`, which the read clears), if any.
pub(crate) fn take_socket_error(fd: &OwnedFd) -> Option<i32> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` is a live c_int and `len` its size; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && err != 0).then_some(err)
}

/// A non-blocking `NETLINK_ROUTE` socket subscribed to link events (`RTMGRP_LINK`) of the
/// calling thread's namespace: it becomes readable when any interface there changes state
/// or is deleted. Needs no privilege.
pub(crate) fn link_events_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain old data; all-zero is valid (pid 0: the kernel assigns).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: `sa` is a valid sockaddr_nl and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Reads and discards every queued message of a non-blocking socket (bounded; no
/// allocation). An overrun (`ENOBUFS`) counts as drained: the next check asks the kernel
/// anyway.
pub(crate) fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 8192];
    for _ in 0..64 {
        // SAFETY: `buf` is writable for its length.
        let rc = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::ENOBUFS) {
            return;
        }
    }
}

/// An epoll set readable when any of `fds` is (level-triggered `EPOLLIN`): one descriptor to
/// `poll(2)` for "frames arrived or the link changed".
pub(crate) fn wait_set(fds: &[&OwnedFd]) -> io::Result<OwnedFd> {
    // SAFETY: plain epoll_create1 call; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ep is a new descriptor owned by nobody else.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    for fd in fds {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd.as_raw_fd() as u64,
        };
        // SAFETY: both descriptors are open and `ev` is a valid epoll_event for the call.
        let rc = unsafe {
            libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev)
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(ep)
}

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// The number of RX queues of `name` (rx + combined channels), if the driver reports it.
pub(crate) fn rx_queues(name: &CString) -> Option<u32> {
    let s = ioctl_socket().ok()?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = ifreq_for(name);
    req.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes a struct ethtool_channels through
    // ifru_data, which points to `ch`, alive for the call.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return None;
    }
    Some(ch.rx_count.max(ch.combined_count))
}

/// Identifies the network namespace of the calling thread (device and inode of its nsfs file).
pub(crate) fn netns_id() -> (u64, u64) {
    match std::fs::metadata("/proc/thread-self/ns/net") {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        }
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethtool_channels_layout() {
        assert_eq!(std::mem::size_of::<EthtoolChannels>(), 36);
        assert_eq!(std::mem::offset_of!(EthtoolChannels, combined_count), 32);
    }

    #[test]
    fn names() {
        assert!(ifname("eth0").is_ok());
        assert!(ifname("veth-a.10").is_ok());
        for bad in ["", "a/b", "a b", "a:b", "0123456789abcdef", "..", "a\0"] {
            let bad = bad.replace("\\0", "\0");
            assert!(ifname(&bad).is_err(), "{bad:?}");
        }
    }
}
