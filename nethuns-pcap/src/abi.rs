//! The libpcap declarations the `pcap` crate does not export (libpcap itself is linked by
//! it). Called only through the safe wrappers of [`crate::sys`].

use std::ffi::{c_char, c_int, c_uchar, c_void};

use pcap::PacketHeader;

/// libpcap's `pcap_handler`; `pcap::PacketHeader` is `#[repr(C)]` and laid out as
/// `struct pcap_pkthdr` (the `pcap` crate casts one to the other the same way).
pub(crate) type Handler =
    unsafe extern "C" fn(user: *mut c_uchar, h: *const PacketHeader, bytes: *const c_uchar);

extern "C" {
    pub(crate) fn pcap_dispatch(
        p: *mut c_void,
        cnt: c_int,
        cb: Handler,
        user: *mut c_uchar,
    ) -> c_int;
    pub(crate) fn pcap_geterr(p: *mut c_void) -> *const c_char;
    pub(crate) fn pcap_get_tstamp_precision(p: *mut c_void) -> c_int;
    pub(crate) fn pcap_get_selectable_fd(p: *mut c_void) -> c_int;
}
