//! No frame is lost from the UMEM over a long run: 1 000 000 packets in release builds
//! (200 000 in debug builds, where the per-frame debug checks make it slow; override with
//! `NETHUNS_AFXDP_SOAK_PACKETS`). Payloads are released on another thread than the socket's
//! (through the channel API), the sender's TX frames cycle through the completion ring, and at
//! the end every frame of both UMEMs is found in exactly one place.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nethuns_afxdp::{AfXdpFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

const SIZES: [usize; 4] = [60, 64, 512, 1514];
/// At most this many frames in flight between sender and receiver (the RX ring has 2048).
const WINDOW: u64 = 1024;

fn packets() -> u64 {
    std::env::var("NETHUNS_AFXDP_SOAK_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        })
}

#[test]
fn no_frame_lost_after_many_packets() {
    let Some(pair) = NetPair::for_test("soak") else {
        return;
    };
    let n = packets();
    let (rx, mut pusher, popper) = pair
        .in_b(|| {
            Sock::create_with_channel::<32>(
                &pair.veth_b,
                None,
                AfXdpFlags::default(),
                nethuns_afxdp::crossbeam_channel::bounded(64),
            )
        })
        .unwrap();
    let tx = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .unwrap();
    let consumed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);

    let consumer = {
        let consumed = consumed.clone();
        std::thread::spawn(move || {
            let mut next = 0u32;
            while let Some(batch) = popper.pop() {
                for p in batch {
                    let len = SIZES[(next % 4) as usize];
                    if let Err(e) = frames::check(&p, next, len) {
                        panic!("{e}");
                    }
                    next += 1;
                    consumed.fetch_add(1, Ordering::Relaxed);
                } // payload dropped here, on this thread
            }
        })
    };
    let receiver = std::thread::spawn(move || {
        let mut got = 0u64;
        while got < n && Instant::now() < deadline {
            match rx.recv_token() {
                Ok((t, meta)) => {
                    assert_eq!(meta.len, t.size());
                    pusher.push_token(t).unwrap();
                    got += 1;
                }
                Err(Error::NoPacket) => {
                    pusher.flush().unwrap();
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
        pusher.flush().unwrap();
        (rx, got)
    });

    let mut buf = vec![0u8; 1514];
    let mut sent = 0u64;
    while sent < n && Instant::now() < deadline {
        if sent - consumed.load(Ordering::Relaxed) >= WINDOW {
            tx.flush();
            std::thread::yield_now();
            continue;
        }
        let len = SIZES[(sent % 4) as usize];
        frames::fill(&mut buf[..len], sent as u32);
        match tx.send(&buf[..len]) {
            Ok(()) => sent += 1,
            Err(Error::NoMemory) => tx.flush(),
            Err(e) => panic!("{e}"),
        }
    }
    tx.flush();
    let (rx, got) = receiver.join().unwrap();
    consumer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "soak: {got}/{n} packets in {secs:.1} s ({:.0} pps)",
        got as f64 / secs
    );
    assert_eq!(sent, n, "sender timed out");
    assert_eq!(got, n, "receiver timed out; stats {:?}", rx.native_stats());
    assert_eq!(consumed.load(Ordering::Relaxed), n);

    // Let the last releases reach the fill ring, then account for every frame.
    let _ = rx.recv_token().map(|(t, _)| t.consume(rx.context()));
    let audit = rx.audit_frames();
    assert!(audit.is_consistent(), "receiver: {audit:?}");
    assert_eq!(audit.in_use, 0, "receiver: {audit:?}");
    assert_eq!(
        audit.fill_ring + audit.released,
        audit.total - AfXdpFlags::default().tx_size
    );
    assert_eq!(rx.received_frames(), n);
    let audit = tx.audit_frames();
    assert!(audit.is_consistent(), "sender: {audit:?}");
    assert_eq!(
        audit.tx_free + audit.tx_ring + audit.completion_ring,
        AfXdpFlags::default().tx_size
    );
    let stats = rx.native_stats().unwrap();
    assert_eq!(stats.rx_invalid_descs, 0);
    assert_eq!(tx.native_stats().unwrap().tx_invalid_descs, 0);
}
