//! The netmap ABI and every system call of the crate.
//!
//! The ABI (`nmreq_header`, `nmreq_register`, `netmap_if`, `netmap_ring`, `netmap_slot`, the
//! `NIOC*` ioctl numbers and the macros of `netmap_user.h`) is declared by hand in the crate's
//! `abi.rs` and re-exported here, so that it is reached as `nethuns_netmap::sys::*`.
//!
//! Inside the crate this module is also the one place that talks to the kernel: `open` of
//! `/dev/netmap`, the `NIOCCTRL` registration, the `NIOCTXSYNC`/`NIOCRXSYNC` syncs, the `mmap`
//! of the region (through [`SharedMap`](nethuns_sys_linux::SharedMap)) and `poll`, each a
//! small safe wrapper returning an `io::Error` for the caller to put its context on.

pub use crate::abi::*;

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub(crate) use dev::*;

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
mod dev {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

    use nethuns_sys_linux::SharedMap;

    use crate::abi::{
        nmreq_header, nmreq_register, NETMAP_API, NETMAP_REQ_IFNAMSIZ, NETMAP_REQ_REGISTER,
        NIOCCTRL, NIOCRXSYNC, NIOCTXSYNC,
    };

    /// `open("/dev/netmap", O_RDWR | O_CLOEXEC)`.
    pub(crate) fn open_device() -> io::Result<OwnedFd> {
        // SAFETY: a NUL-terminated path; open(2) has no other preconditions.
        let raw = unsafe { libc::open(c"/dev/netmap".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// `NIOCCTRL` with a `NETMAP_REQ_REGISTER` of port `name` (cut to
    /// `NETMAP_REQ_IFNAMSIZ - 1` bytes) in mode `mode` (`NR_REG_*`) and ring `ringid`, asking
    /// for `extra` extra buffers; the body as the kernel filled it in.
    pub(crate) fn register(
        fd: BorrowedFd<'_>,
        name: &str,
        mode: u32,
        ringid: u16,
        extra: u32,
    ) -> io::Result<nmreq_register> {
        let mut reg = nmreq_register {
            nr_mode: mode,
            nr_ringid: ringid,
            nr_extra_bufs: extra,
            ..Default::default()
        };
        let mut hdr = nmreq_header {
            nr_version: NETMAP_API,
            nr_reqtype: NETMAP_REQ_REGISTER,
            nr_reserved: 0,
            nr_name: [0; NETMAP_REQ_IFNAMSIZ],
            nr_options: 0,
            nr_body: &mut reg as *mut nmreq_register as u64,
        };
        // The last byte stays NUL.
        for (d, s) in hdr.nr_name[..NETMAP_REQ_IFNAMSIZ - 1]
            .iter_mut()
            .zip(name.bytes())
        {
            *d = s as std::os::raw::c_char;
        }
        // SAFETY: NIOCCTRL reads and writes one nmreq_header, whose nr_body points to `reg`;
        // both live across the call.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), NIOCCTRL as _, &mut hdr) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(reg)
    }

    /// Maps the `len`-byte region of a registered descriptor, shared and read-write.
    pub(crate) fn map_region(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMap> {
        SharedMap::map(fd, len, 0, false)
    }

    /// An ioctl without argument on a netmap descriptor: the two syncs only.
    #[inline]
    fn ioctl_sync(fd: BorrowedFd<'_>, req: u64) -> io::Result<()> {
        debug_assert!(req == NIOCTXSYNC || req == NIOCRXSYNC);
        // SAFETY: the sync ioctls take no argument and touch only the ring memory the kernel
        // shares with this process; `fd` is open for the call (borrowed).
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// `NIOCTXSYNC`: transmit the TX slots before `head`, reclaim completed ones.
    #[inline]
    pub(crate) fn tx_sync(fd: BorrowedFd<'_>) -> io::Result<()> {
        ioctl_sync(fd, NIOCTXSYNC)
    }

    /// `NIOCRXSYNC`: release the RX slots before `head`, learn new packets.
    #[inline]
    pub(crate) fn rx_sync(fd: BorrowedFd<'_>) -> io::Result<()> {
        ioctl_sync(fd, NIOCRXSYNC)
    }

    /// `poll(POLLIN)` for at most `timeout_ms`, retried on `EINTR`: whether the descriptor is
    /// ready. `POLLERR`/`POLLHUP`/`POLLNVAL` (the port is gone) count as ready, so that the
    /// next receive reports it.
    pub(crate) fn poll_in(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
        let ready = libc::POLLIN | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
        loop {
            match nethuns_sys_linux::netdev::poll1(fd, libc::POLLIN, timeout_ms) {
                Ok(revents) => return Ok(revents & ready != 0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The MTU of interface `name` (`SIOCGIFMTU`), or `None` if it cannot be read (a VALE
    /// port has no interface; an interface gone since registration).
    #[cfg(target_os = "linux")]
    pub(crate) fn interface_mtu(name: &str) -> Option<u32> {
        let ctl = nethuns_sys_linux::netdev::ctl_socket().ok()?;
        nethuns_sys_linux::netdev::mtu(&ctl, name)
            .ok()
            .filter(|&m| m > 0)
    }

    /// The MTU of an interface: not read outside Linux.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn interface_mtu(_name: &str) -> Option<u32> {
        None
    }
}

/// Test helpers around the `unsafe` API of nethuns-core, so that the test modules of the
/// crate hold none.
#[cfg(test)]
pub(crate) mod tests {
    use nethuns_core::batch::{BatchSink, Received};
    use nethuns_core::{BufferDesc, Context};

    use crate::context::NetmapContext;
    use crate::extra::ExtraPool;

    /// Puts back on `pool` a buffer the test popped from it (and pushes once).
    pub(crate) fn give_back(pool: &ExtraPool, idx: u32) {
        // SAFETY: the callers pass an index they popped from `pool` and hold no payload of; a
        // second push of it panics in debug builds (the list's bitmap) before linking.
        unsafe { pool.list.push(idx) }
    }

    /// Releases `desc` a second time: the bug the debug ledger must catch (it panics before
    /// the pool is touched). Only for the test that shows it.
    pub(crate) fn release_again(ctx: &NetmapContext, desc: BufferDesc) {
        // SAFETY: not safe at all but for the debug ledger, which panics on the second release
        // of `desc` before the context's pool sees it (the caller's test is debug-only).
        unsafe { ctx.release(desc) }
    }

    /// The packets `Engine::fill_batch` put in `sink`, all of them tokens of `ctx`.
    pub(crate) fn received<'a, M>(
        sink: BatchSink<'a, M>,
        ctx: &'a NetmapContext,
    ) -> Received<'a, NetmapContext, M> {
        // SAFETY: the tests pass the context of the engine that filled `sink`, whose tokens
        // are all of that context.
        unsafe { sink.into_received(ctx) }
    }
}
