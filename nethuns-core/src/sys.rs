//! The one system call of the core: `poll(2)` of one descriptor, for [`crate::wait`]. (The
//! pool's anonymous mapping is made in [`crate::pool`].)

use std::io;
use std::os::fd::RawFd;

/// Polls `fd` for `events` for at most `timeout_ms` (negative: forever) and returns its
/// `revents`, 0 on timeout. Safe for any `fd` value: poll(2) reports a descriptor that is
/// not open as `POLLNVAL`, it touches no memory of it.
#[inline]
pub(crate) fn poll1(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd, alive for the call; poll(2) only writes its `revents`.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if rc == 0 { 0 } else { p.revents })
}
