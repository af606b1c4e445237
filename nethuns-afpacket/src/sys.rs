//! Every system call of the crate, each a small safe wrapper that says what it did to what in
//! its error: the packet socket and its options, `bind`, the submission `sendto`,
//! `PACKET_STATISTICS`, and the ring mapping (a [`SharedMap`]). The interface ioctls and the
//! socket-error queries are `nethuns_sys_linux::netdev`'s, shared with AF_XDP; the wrappers
//! here put the interface on their errors.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nethuns_core::{Error, Result};
use nethuns_sys_linux::{netdev, SharedMap};

use crate::flags::BpfInstruction;

/// `ETH_P_ALL` in network byte order, as `bind` wants it.
pub(crate) const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// A new `AF_PACKET` raw socket bound to no protocol yet (it receives nothing until
/// [`bind`]), close-on-exec.
pub(crate) fn packet_socket(ifname: &str) -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last_os(format!(
            "AF_PACKET socket for {ifname} (needs CAP_NET_RAW)"
        )));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, value)`; the error names the option and interface.
///
/// `T` is one of the kernel's option structs (or an integer) of the layout the option wants.
pub(crate) fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> Result<()> {
    // SAFETY: value points to a live T of size_of::<T>() bytes for the duration of the call;
    // the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(Error::last_os(what.to_string()))
    } else {
        Ok(())
    }
}

/// Attaches a classic BPF program (`SO_ATTACH_FILTER`).
pub(crate) fn attach_filter(fd: &OwnedFd, prog: &[BpfInstruction], ifname: &str) -> Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        // BpfInstruction has sock_filter's layout (tested in flags.rs); the kernel copies the
        // program and never writes through this pointer.
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &fprog,
        &format!(
            "attaching the BPF filter ({} instructions) on {ifname}",
            prog.len()
        ),
    )
}

/// Binds the socket to interface `ifindex` for `protocol` (network byte order; 0 stops
/// capture).
pub(crate) fn bind(fd: RawFd, ifindex: i32, protocol_be: u16) -> io::Result<()> {
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol_be,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: sll is a valid sockaddr_ll and its size is passed; the kernel only reads it.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The kernel's counters of socket `fd` since the previous read (`PACKET_STATISTICS`, which
/// resets them).
pub(crate) fn packet_stats(fd: RawFd) -> io::Result<libc::tpacket_stats_v3> {
    let mut st = libc::tpacket_stats_v3 {
        tp_packets: 0,
        tp_drops: 0,
        tp_freeze_q_cnt: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
    // SAFETY: st and len are valid for writes of their sizes; the kernel writes at most len
    // bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats_v3).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(st)
    }
}

/// Asks the kernel to transmit every frame of the TX ring marked `TP_STATUS_SEND_REQUEST`,
/// without waiting for completion.
pub(crate) fn kick_tx(fd: RawFd) -> io::Result<usize> {
    // SAFETY: a zero-length send with no buffer and no address: the TX ring supplies the data.
    let rc = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Maps the rings of packet socket `fd` (`len` bytes, read-write, shared, populated). The ring
/// pages are kernel memory, never swapped, so no `MAP_LOCKED` is needed.
pub(crate) fn map_rings(fd: &OwnedFd, len: usize, ifname: &str) -> Result<SharedMap> {
    SharedMap::map(fd, len, 0, true).map_err(|e| {
        if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::Unsupported {
            Error::Unsupported(format!(
                "the kernel mapped the AF_PACKET rings of {ifname} at address 0"
            ))
        } else {
            Error::os(
                format!("mapping the {len}-byte AF_PACKET rings of {ifname}"),
                e,
            )
        }
    })
}

/// An anonymous zeroed mapping of `len` bytes standing in for the rings (tests and fuzz
/// targets of the ring logic, without a kernel); `guarded` puts an inaccessible page after it.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn anonymous_rings(len: usize, guarded: bool) -> SharedMap {
    let m = if guarded {
        SharedMap::anonymous_guarded(len)
    } else {
        SharedMap::anonymous(len, false)
    };
    m.expect("an anonymous mapping for the test rings")
}

/// The index of interface `name`, or an error naming it.
pub(crate) fn if_index(name: &str) -> Result<i32> {
    if name.as_bytes().contains(&0) {
        return Err(Error::portspec(name, "contains a NUL byte"));
    }
    let idx = netdev::if_index(name).map_err(|e| {
        Error::os(
            format!("AF_PACKET: interface {name:?} not found in this network namespace"),
            e,
        )
    })?;
    Ok(idx as i32)
}

/// The MTU of interface `name`, asked through socket `fd`.
pub(crate) fn if_mtu(fd: &OwnedFd, name: &str) -> Result<u32> {
    netdev::mtu(fd, name).map_err(|e| Error::os(format!("reading the MTU of {name}"), e))
}

/// State of interface `name` seen from socket `fd`: `Ok(Some(up))` if it exists with index
/// `ifindex`, `Ok(None)` if it is gone (or another interface now has its name).
pub(crate) fn if_state(fd: BorrowedFd<'_>, name: &str, ifindex: i32) -> io::Result<Option<bool>> {
    let gone = |e: io::Error| {
        if e.raw_os_error() == Some(libc::ENODEV) {
            Ok(None)
        } else {
            Err(e)
        }
    };
    match netdev::index_of(fd, name) {
        Ok(i) if i as i32 == ifindex => {}
        Ok(_) => return Ok(None),
        Err(e) => return gone(e),
    }
    match netdev::flags(fd, name) {
        Ok(flags) => Ok(Some(flags & libc::IFF_UP != 0)),
        Err(e) => gone(e),
    }
}

/// A pending socket error reported by `poll` (`POLLERR`), read and cleared with `SO_ERROR`.
/// `Ok(None)` when there is none. Never blocks.
pub(crate) fn pending_error(fd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let revents = netdev::poll1(fd, libc::POLLIN, 0)?;
    if revents & (libc::POLLERR | libc::POLLNVAL) == 0 {
        return Ok(None);
    }
    netdev::socket_error(fd)
}

/// A token for buffer `desc` of pool `pool`, for the tests of the block accounting, which make
/// tokens for packets no walker handed out (each test names distinct packets of an opened
/// block, or checks that a foreign offset is refused).
#[cfg(test)]
pub(crate) fn test_token(
    desc: nethuns_core::BufferDesc,
    len: u32,
    pool: u32,
) -> nethuns_core::Token {
    // SAFETY: the callers above give each buffer to one token only; a release of an offset
    // outside the ring panics before touching memory.
    unsafe { nethuns_core::Token::new(desc, len, pool) }
}
