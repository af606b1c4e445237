//! What the socket needs to know about a network device: its name checked, its index, MTU and
//! queue count, and the network namespace the calling thread is in.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

use nethuns_core::{Error, Result};

use crate::sys;

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
    nethuns_sys_linux::netdev::if_index(&name.to_string_lossy()).map_err(|e| {
        Error::os(
            format!(
                "AF_XDP on {} queue {queue}: no such interface in this network namespace",
                name.to_string_lossy()
            ),
            e,
        )
    })
}

/// The MTU of interface `name` (through an ioctl socket of its own).
pub(crate) fn mtu(name: &CString) -> io::Result<u32> {
    let s = ctl_socket()?;
    nethuns_sys_linux::netdev::mtu(&s, &name.to_string_lossy())
}

/// A socket for interface ioctls in the calling thread's network namespace. A socket stays in
/// the namespace it was made in, so ioctls through it reach the same interfaces from any
/// thread later.
pub(crate) fn ctl_socket() -> io::Result<OwnedFd> {
    nethuns_sys_linux::netdev::ctl_socket()
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

/// The state of interface `name` of `ctl`'s namespace (one `SIOCGIFFLAGS` ioctl; no
/// allocation: this runs on the transmit slow path and the idle receive path).
pub(crate) fn link_state(ctl: &OwnedFd, name: &str) -> LinkState {
    match nethuns_sys_linux::netdev::flags(ctl, name) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => LinkState::Gone,
        Err(e) => match e.raw_os_error() {
            Some(libc::ENODEV | libc::ENXIO) => LinkState::Gone,
            _ => LinkState::Down,
        },
        Ok(flags) if flags & libc::IFF_UP == 0 => LinkState::Down,
        Ok(flags) if flags & libc::IFF_RUNNING == 0 => LinkState::NoCarrier,
        Ok(_) => LinkState::Up,
    }
}

/// Whether interface `name` of `ctl`'s namespace is up and has a carrier
/// (`IFF_UP | IFF_RUNNING`); false if it is gone.
pub(crate) fn is_running(ctl: &OwnedFd, name: &str) -> bool {
    link_state(ctl, name) == LinkState::Up
}

/// The pending error of socket `fd` (`SO_ERROR`, which the read clears), if any.
pub(crate) fn take_socket_error(fd: &OwnedFd) -> Option<i32> {
    nethuns_sys_linux::netdev::socket_error(fd).ok().flatten()
}

/// A non-blocking `NETLINK_ROUTE` socket subscribed to link events of the calling thread's
/// namespace ([`sys::link_events_socket`]).
pub(crate) fn link_events_socket() -> io::Result<OwnedFd> {
    sys::link_events_socket()
}

/// Reads and discards every queued message of a non-blocking socket (bounded; no
/// allocation). An overrun (`ENOBUFS`) counts as drained: the next check asks the kernel
/// anyway.
pub(crate) fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 8192];
    for _ in 0..64 {
        if let Err(e) = sys::recv(fd, &mut buf, libc::MSG_DONTWAIT) {
            if e.raw_os_error() != Some(libc::ENOBUFS) {
                return;
            }
        }
    }
}

/// An epoll set readable when any of `fds` is (level-triggered `EPOLLIN`): one descriptor to
/// `poll(2)` for "frames arrived or the link changed".
pub(crate) fn wait_set(fds: &[&OwnedFd]) -> io::Result<OwnedFd> {
    sys::epoll_set(fds)
}

/// The number of RX queues of `name` (rx + combined channels), if the driver reports it.
pub(crate) fn rx_queues(name: &CString) -> Option<u32> {
    let s = ctl_socket().ok()?;
    nethuns_sys_linux::netdev::rx_queues(&s, &name.to_string_lossy()).ok()
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
    fn names() {
        assert!(ifname("eth0").is_ok());
        assert!(ifname("veth-a.10").is_ok());
        for bad in ["", "a/b", "a b", "a:b", "0123456789abcdef", "..", "a\0"] {
            let bad = bad.replace("\\0", "\0");
            assert!(ifname(&bad).is_err(), "{bad:?}");
        }
    }
}
