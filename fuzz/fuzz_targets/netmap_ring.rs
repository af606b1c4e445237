//! netmap's ring and extra-buffer handling over the simulated port, with the fields the kernel
//! writes fuzzed: see `nethuns_netmap::fuzzing::ring_session`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nethuns_netmap::fuzzing::ring_session(data);
});
