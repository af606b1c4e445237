//! The two libpcap calls the `pcap` crate does not wrap (libpcap itself is linked by it).

use std::ffi::{c_int, c_void};

use nethuns_core::metadata::TsPrecision;

extern "C" {
    fn pcap_get_tstamp_precision(p: *mut c_void) -> c_int;
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
