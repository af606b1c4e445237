//! Every FFI call and system call of the crate, each behind a small safe function: the libpcap
//! calls the `pcap` crate does not wrap ([`dispatch`] with its callback trampoline,
//! [`selectable_fd`], [`tstamp_precision`]), the eventfd a savefile socket polls on, and the
//! interface queries (through `nethuns-sys-linux`).

use std::ffi::{c_int, c_uchar, CStr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nethuns_core::metadata::TsPrecision;
use nethuns_sys_linux::netdev;
use pcap::{Activated, Active, Capture, PacketHeader, State};

use crate::abi;

/// What a dispatch returned: the packets handed to the callback, or libpcap's error text
/// (`-1`).
pub(crate) type DispatchResult = std::result::Result<usize, pcap::Error>;

/// `pcap_dispatch` of up to `cnt` packets of `cap` (live or savefile), each handed to `f` as
/// its header and captured bytes, which are libpcap's and valid only during the call. `-2`
/// (`pcap_breakloop`, which nothing here calls) counts as no packet.
///
/// `f` must not unwind: a panic in it aborts the process (it is called from C).
#[inline]
pub(crate) fn dispatch<T, F>(cap: &mut Capture<T>, cnt: usize, f: &mut F) -> DispatchResult
where
    T: Activated + ?Sized,
    F: FnMut(&PacketHeader, &[u8]),
{
    let cnt = cnt.min(c_int::MAX as usize) as c_int;
    let p = cap.as_ptr().cast();
    // SAFETY: `p` is the live, activated `pcap_t` of `cap`, borrowed exclusively for the call
    // (so nothing else uses the handle meanwhile); `user` is the `F` that `trampoline::<F>`
    // expects, alive and not otherwise borrowed until the call returns.
    let rc = unsafe { abi::pcap_dispatch(p, cnt, trampoline::<F>, (f as *mut F).cast()) };
    if rc == -1 {
        return Err(last_error(cap));
    }
    Ok(rc.max(0) as usize)
}

/// The `pcap_handler` of [`dispatch`]: calls the closure `user` points to.
unsafe extern "C" fn trampoline<F: FnMut(&PacketHeader, &[u8])>(
    user: *mut c_uchar,
    h: *const PacketHeader,
    bytes: *const c_uchar,
) {
    // SAFETY: `user` is the `&mut F` that `dispatch` passed, alive and borrowed by nobody
    // else during the dispatch.
    let f = unsafe { &mut *user.cast::<F>() };
    // SAFETY: libpcap passes a valid header, alive for the callback.
    let h = unsafe { &*h };
    // SAFETY: libpcap passes `caplen` readable bytes at `bytes`, alive for the callback and
    // not written meanwhile.
    let data = unsafe { std::slice::from_raw_parts(bytes, h.caplen as usize) };
    f(h, data);
}

/// libpcap's error text of `cap` (`pcap_geterr`), read right after the failed call.
#[cold]
fn last_error<T: State + ?Sized>(cap: &Capture<T>) -> pcap::Error {
    // SAFETY: `as_ptr` is the live `pcap_t` of `cap`; the call only returns its error buffer.
    let text = unsafe { abi::pcap_geterr(cap.as_ptr().cast()) };
    // SAFETY: libpcap's error buffer is NUL-terminated and lives as long as the handle; it is
    // read before any other call on it.
    let msg = unsafe { CStr::from_ptr(text) };
    pcap::Error::PcapError(msg.to_string_lossy().into_owned())
}

/// The descriptor to select/poll on for a live capture (`pcap_get_selectable_fd`), `None`
/// where libpcap has none. (The `pcap` crate wraps it only with its tokio feature.)
pub(crate) fn selectable_fd(cap: &Capture<Active>) -> Option<RawFd> {
    // SAFETY: `as_ptr` is the live `pcap_t` of `cap`, which outlives the call; the function
    // only reads the handle's descriptor.
    let fd = unsafe { abi::pcap_get_selectable_fd(cap.as_ptr().cast()) };
    (fd >= 0).then_some(fd)
}

/// The timestamp precision an activated or offline handle delivers (`pcap_get_tstamp_precision`).
pub(crate) fn tstamp_precision<T: State + ?Sized>(cap: &Capture<T>) -> TsPrecision {
    // SAFETY: `as_ptr` is the live `pcap_t` of `cap`, which outlives the call; the function
    // only reads the handle's precision field.
    let p = unsafe { abi::pcap_get_tstamp_precision(cap.as_ptr().cast()) };
    if p == 1 {
        TsPrecision::Nano
    } else {
        TsPrecision::Micro
    }
}

/// An eventfd with a count of 1 that nothing reads: always readable.
pub(crate) fn always_ready() -> std::io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2) call; the result is checked and owned below.
    let fd = unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The MTU of interface `dev` in the calling thread's namespace (`SIOCGIFMTU`).
pub(crate) fn if_mtu(dev: &str) -> std::io::Result<u32> {
    netdev::mtu(netdev::ctl_socket()?, dev)
}

/// Whether interface `dev` exists in the calling thread's namespace (`if_nametoindex`).
pub(crate) fn if_exists(dev: &str) -> bool {
    netdev::if_index(dev).is_ok()
}
