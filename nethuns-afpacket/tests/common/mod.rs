//! Helpers shared by the integration tests: bounded send and receive loops.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use nethuns_afpacket::{AfPacketFlags, Sock};
use nethuns_testnet::frames;

/// Flags for test sockets: a small ring and a short block timeout, so packets arrive quickly.
pub fn flags() -> AfPacketFlags {
    AfPacketFlags {
        block_size: 1 << 16,
        block_count: 16,
        block_timeout_ms: 1,
        ..AfPacketFlags::default()
    }
}

pub use nethuns_testnet::io::{recv_test_frames, send_all};

/// Keeps receiving for `quiet` and fails if any test frame arrives (after an exact count).
pub fn assert_no_more(sock: &Sock, quiet: Duration) {
    let extra = recv_test_frames(sock, 1, quiet);
    assert!(
        extra.is_empty(),
        "unexpected extra frame {:?}",
        extra.first().map(|f| frames::seq_of(&f.0))
    );
}
