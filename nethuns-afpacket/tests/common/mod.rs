//! Helpers shared by the integration tests: bounded send and receive loops.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, Error, Meta, Sock, Socket};
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

/// Sends every frame, flushing every `batch` frames; retries `NoMemory` until `deadline`.
pub fn send_all(sock: &Sock, frames: &[Vec<u8>], batch: usize, deadline: Duration) {
    let end = Instant::now() + deadline;
    for (i, f) in frames.iter().enumerate() {
        loop {
            match sock.send(f) {
                Ok(()) => break,
                Err(Error::NoMemory) => {
                    assert!(Instant::now() < end, "TX ring stayed full for {deadline:?}");
                    sock.flush();
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("send of frame {i}: {e}"),
            }
        }
        if (i + 1) % batch == 0 {
            sock.flush();
        }
    }
    sock.flush();
}

/// Receives test frames (others are ignored) until `want` arrived or `deadline` passed;
/// returns them with their metadata, copied.
pub fn recv_test_frames(sock: &Sock, want: usize, deadline: Duration) -> Vec<(Vec<u8>, Meta)> {
    let end = Instant::now() + deadline;
    let mut got = Vec::with_capacity(want.min(4096));
    while got.len() < want && Instant::now() < end {
        match sock.recv() {
            Ok((p, meta)) => {
                if frames::is_test_frame(&p) {
                    got.push((p.to_vec(), meta));
                }
            }
            // NoMemory: payloads held elsewhere (a test holding them) stop the ring for now.
            Err(Error::NoPacket | Error::NoMemory) => std::thread::sleep(Duration::from_micros(50)),
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

/// Keeps receiving for `quiet` and fails if any test frame arrives (after an exact count).
pub fn assert_no_more(sock: &Sock, quiet: Duration) {
    let extra = recv_test_frames(sock, 1, quiet);
    assert!(
        extra.is_empty(),
        "unexpected extra frame {:?}",
        extra.first().map(|f| frames::seq_of(&f.0))
    );
}
