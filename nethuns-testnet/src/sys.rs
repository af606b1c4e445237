//! The harness's system calls outside the raw peer socket ([`crate::peer`]): the effective
//! user, entering a network namespace, and a polite stop of a child process.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The effective user id (`geteuid`).
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Moves the calling thread into the network namespace named by the file `path`
/// (`/run/netns/NAME`): `open` + `setns(CLONE_NEWNET)`.
pub(crate) fn enter_netns(path: &CString) -> std::io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string, alive for the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nobody else; closed on drop.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fd is a namespace descriptor; setns affects only the calling thread.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends SIGTERM to `child` (std's `Child::kill` sends SIGKILL), which is not reaped yet.
pub(crate) fn terminate(child: &std::process::Child) {
    // SAFETY: kill(2) of our own child by its pid; it is not reaped yet (the caller holds
    // the `Child` and waits only after this), so the pid is still its own.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
}
