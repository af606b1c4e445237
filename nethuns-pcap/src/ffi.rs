//! The libpcap calls the `pcap` crate does not wrap (libpcap itself is linked by it), and
//! the eventfd a savefile socket polls on.

use std::ffi::{c_int, c_void};

use nethuns_core::metadata::TsPrecision;

extern "C" {
    fn pcap_get_tstamp_precision(p: *mut c_void) -> c_int;
    fn pcap_get_selectable_fd(p: *mut c_void) -> c_int;
}

/// The descriptor to select/poll on for a live capture (`pcap_get_selectable_fd`), `None`
/// where libpcap has none. (The `pcap` crate wraps it only with its tokio feature.)
pub(crate) fn selectable_fd(cap: &pcap::Capture<pcap::Active>) -> Option<std::os::fd::RawFd> {
    // SAFETY: `as_ptr` is the live `pcap_t` of `cap`, which outlives the call; the function
    // only reads the handle's descriptor.
    let fd = unsafe { pcap_get_selectable_fd(cap.as_ptr().cast()) };
    (fd >= 0).then_some(fd)
}

/// An eventfd with a count of 1 that nothing reads: always readable.
pub(crate) fn always_ready() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain eventfd(2) call; the descriptor is owned below.
    let fd = unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The timestamp precision an activated or offline handle delivers (`pcap_get_tstamp_precision`).
pub(crate) fn tstamp_precision<T: pcap::State + ?Sized>(cap: &pcap::Capture<T>) -> TsPrecision {
    // SAFETY: `as_ptr` is the live `pcap_t` of `cap`, which outlives the call; the function
    // only reads the handle's precision field.
    let p = unsafe { pcap_get_tstamp_precision(cap.as_ptr().cast()) };
    if p == 1 {
        TsPrecision::Nano
    } else {
        TsPrecision::Micro
    }
}
