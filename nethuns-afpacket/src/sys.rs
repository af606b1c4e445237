//! The thin syscall layer: every `libc` call of the crate except the ring's memory accesses.
//! Each function says what it does to what in its error.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use nethuns_core::{Error, Result};

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
pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> Result<()> {
    // SAFETY: value points to a live T of size_of::<T>() bytes for the duration of the call.
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
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll and its size is passed.
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

/// The index of interface `name`, or an error naming it.
pub(crate) fn if_index(name: &str) -> Result<i32> {
    let c = CString::new(name).map_err(|_| Error::portspec(name, "contains a NUL byte"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let e = io::Error::last_os_error();
        let e = if e.raw_os_error() == Some(0) {
            io::Error::from_raw_os_error(libc::ENODEV)
        } else {
            e
        };
        return Err(Error::os(
            format!("AF_PACKET: interface {name:?} not found in this network namespace"),
            e,
        ));
    }
    Ok(idx as i32)
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req
}

/// The MTU of interface `name`.
pub(crate) fn if_mtu(fd: &OwnedFd, name: &str) -> Result<u32> {
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_mtu of the ifreq we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        return Err(Error::last_os(format!("reading the MTU of {name}")));
    }
    // SAFETY: the kernel filled the ifru_mtu member.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// State of interface `name` seen from socket `fd`: `Ok(Some(up))` if it exists with index
/// `ifindex`, `Ok(None)` if it is gone (or another interface now has its name).
pub(crate) fn if_state(fd: RawFd, name: &str, ifindex: i32) -> io::Result<Option<bool>> {
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFINDEX reads ifr_name and writes ifr_ifindex of the ifreq we own.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFINDEX, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODEV) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    // SAFETY: the kernel filled ifru_ifindex.
    if unsafe { req.ifr_ifru.ifru_ifindex } != ifindex {
        return Ok(None);
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODEV) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    // SAFETY: the kernel filled ifru_flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as libc::c_int;
    Ok(Some(flags & libc::IFF_UP != 0))
}

/// A pending socket error reported by `poll` (`POLLERR`), read and cleared with `SO_ERROR`.
/// `Ok(None)` when there is none. Never blocks.
pub(crate) fn pending_error(fd: RawFd) -> io::Result<Option<i32>> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, timeout 0.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if p.revents & (libc::POLLERR | libc::POLLNVAL) == 0 {
        return Ok(None);
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid for writes of their sizes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((err != 0).then_some(err))
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

/// A shared memory mapping (the rings), unmapped on drop.
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with the kernel; who may touch which part of it is
// governed by the ring protocol (block and frame status words), not by the thread.
unsafe impl Send for Mmap {}
// SAFETY: as above; concurrent access goes through atomics on the status words.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps the rings of packet socket `fd` (`len` bytes, read-write, shared, populated).
    pub(crate) fn rings(fd: &OwnedFd, len: usize, ifname: &str) -> Result<Mmap> {
        // SAFETY: a fresh shared mapping of the socket's rings; the kernel checks len. The
        // ring pages are kernel memory, never swapped, so no MAP_LOCKED is needed.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os(format!(
                "mapping the {len}-byte AF_PACKET rings of {ifname}"
            )));
        }
        Ok(Mmap {
            ptr: NonNull::new(p.cast()).ok_or_else(|| {
                Error::Unsupported(format!(
                    "the kernel mapped the AF_PACKET rings of {ifname} at address 0"
                ))
            })?,
            len,
        })
    }

    /// An anonymous zeroed mapping of `len` bytes followed by an inaccessible page, so that a
    /// read past the ring faults at once (the fuzz target of the walker).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn anonymous_guarded(len: usize) -> Mmap {
        let page = crate::flags::page_size();
        let m = Mmap::anonymous(len.next_multiple_of(page) + page);
        // SAFETY: the last page of the fresh mapping `m` owns; nothing points into it.
        let rc =
            unsafe { libc::mprotect(m.base().add(m.len - page).cast(), page, libc::PROT_NONE) };
        assert_eq!(rc, 0, "mprotect of the guard page");
        m
    }

    /// An anonymous zeroed mapping of `len` bytes (tests of the ring logic without a kernel).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn anonymous(len: usize) -> Mmap {
        // SAFETY: a fresh private anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Mmap {
            ptr: NonNull::new(p.cast()).unwrap(),
            len,
        }
    }

    /// Start of the mapping.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing borrows the memory any more
        // (every payload holds the Arc that owns this mapping).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
