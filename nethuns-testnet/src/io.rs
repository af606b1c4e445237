//! Bounded send and receive loops over any [`Socket`], shared by the backends' own tests.

use std::time::{Duration, Instant};

use nethuns_core::{Error, Socket};

use crate::frames;

/// Sends every frame, flushing every `batch` frames and at the end; retries `NoMemory`
/// (transmit side full) until `deadline` has passed, then panics. Panics on any other error.
pub fn send_all<S: Socket>(sock: &S, frames: &[Vec<u8>], batch: usize, deadline: Duration) {
    let end = Instant::now() + deadline;
    for (i, f) in frames.iter().enumerate() {
        loop {
            match sock.send(f) {
                Ok(()) => break,
                Err(Error::NoMemory) => {
                    assert!(Instant::now() < end, "TX side stayed full for {deadline:?}");
                    sock.flush();
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("send of frame {i}: {e}"),
            }
        }
        if batch > 0 && (i + 1) % batch == 0 {
            sock.flush();
        }
    }
    sock.flush();
}

/// Receives test frames (others are ignored) until `want` arrived or `deadline` passed;
/// returns them, copied, with their metadata. `NoMemory` (payloads held elsewhere) is waited
/// out; any other error panics.
pub fn recv_test_frames<S: Socket>(
    sock: &S,
    want: usize,
    deadline: Duration,
) -> Vec<(Vec<u8>, S::Metadata)> {
    let end = Instant::now() + deadline;
    let mut got = Vec::with_capacity(want.min(4096));
    while got.len() < want && Instant::now() < end {
        match sock.recv() {
            Ok((p, meta)) => {
                if frames::is_test_frame(&p) {
                    got.push((p.to_vec(), meta));
                }
            }
            Err(Error::NoPacket | Error::NoMemory) => std::thread::sleep(Duration::from_micros(50)),
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}
