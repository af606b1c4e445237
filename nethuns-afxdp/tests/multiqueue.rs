//! One socket per queue on a multi-queue veth, each in its own thread, and the channel API
//! carrying this backend's tokens to another thread.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nethuns_afxdp::{
    AfXdpFlags, Context, Error, Sock, Socket, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE,
};
use nethuns_testnet::{frames, NetPair, PairOptions};

const QUEUES: u32 = 4;
const PER_QUEUE: u32 = 500;

/// Frames sent by the AF_XDP socket on TX queue q of one end arrive on an RX queue of the
/// other end, each socket receiving (in its own thread) only frames of its queue. In native
/// mode veth keeps the queue (TX q -> RX q: checked strictly); in generic mode veth's skbs
/// carry the TX queue where generic XDP reads a recorded RX queue (stored + 1), so TX q lands on
/// RX q - 1 (0 on 0). Either way every frame arrives exactly once, in order per sender.
fn per_queue(mode: u32, tag: &str) {
    let Some(pair) = NetPair::for_test_with(
        tag,
        PairOptions {
            queues: QUEUES,
            mtu: 1500,
        },
    ) else {
        return;
    };
    let f = AfXdpFlags {
        xdp_flags: mode,
        ..AfXdpFlags::default()
    };
    let rx: Vec<Sock> = (0..QUEUES)
        .map(|q| {
            pair.in_b(|| Sock::create(&pair.veth_b, Some(q as usize), f.clone()))
                .unwrap()
        })
        .collect();
    let tx: Vec<Sock> = (0..QUEUES)
        .map(|q| {
            pair.in_a(|| Sock::create(&pair.veth_a, Some(q as usize), f.clone()))
                .unwrap()
        })
        .collect();
    let total = Arc::new(AtomicU32::new(0));
    let receivers: Vec<_> = rx
        .into_iter()
        .enumerate()
        .map(|(q, s)| {
            let total = total.clone();
            std::thread::spawn(move || {
                let q = q as u32;
                let mut seqs = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                while total.load(Ordering::Relaxed) < QUEUES * PER_QUEUE
                    && Instant::now() < deadline
                {
                    match s.recv() {
                        Ok((p, meta)) => {
                            assert_eq!(meta.queue, q);
                            if let Some(seq) = frames::seq_of(&p) {
                                frames::check(&p, seq, 60 + (seq % 4) as usize * 100).unwrap();
                                seqs.push(seq);
                                total.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(Error::NoPacket) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
                let audit = s.audit_frames();
                assert!(audit.is_consistent(), "{audit:?}");
                seqs
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let senders: Vec<_> = tx
        .into_iter()
        .enumerate()
        .map(|(q, s)| {
            std::thread::spawn(move || {
                let base = q as u32 * 1_000_000;
                let deadline = Instant::now() + Duration::from_secs(10);
                for chunk in 0..PER_QUEUE / 50 {
                    let from = base + chunk * 50;
                    send_all(
                        &s,
                        (from..from + 50)
                            .map(|seq| frames::frame(seq, 60 + (seq % 4) as usize * 100)),
                        deadline,
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let got: Vec<Vec<u32>> = receivers.into_iter().map(|h| h.join().unwrap()).collect();
    let mut all: Vec<u32> = got.iter().flatten().copied().collect();
    for (q, seqs) in got.iter().enumerate() {
        // In order per sender.
        for src in 0..QUEUES {
            let from_src: Vec<u32> = seqs
                .iter()
                .copied()
                .filter(|s| s / 1_000_000 == src)
                .collect();
            assert!(
                from_src.windows(2).all(|w| w[0] < w[1]),
                "queue {q}: out of order"
            );
        }
        if mode == XDP_FLAGS_DRV_MODE {
            assert!(
                seqs.iter().all(|s| s / 1_000_000 == q as u32),
                "queue {q} got another queue's frames"
            );
        }
        assert!(
            !seqs.is_empty() || mode == XDP_FLAGS_SKB_MODE,
            "queue {q} got nothing"
        );
    }
    all.sort_unstable();
    let want: Vec<u32> = (0..QUEUES)
        .flat_map(|q| (0..PER_QUEUE).map(move |i| q * 1_000_000 + i))
        .collect();
    assert_eq!(all.len(), want.len(), "frame count");
    assert_eq!(all, want, "every frame exactly once");
    assert!(!xdp_attached(&pair, true) && !xdp_attached(&pair, false));
}

#[test]
fn skb_mode_one_socket_per_queue() {
    per_queue(XDP_FLAGS_SKB_MODE, "mqskb");
}

#[test]
fn drv_mode_one_socket_per_queue() {
    per_queue(XDP_FLAGS_DRV_MODE, "mqdrv");
}

/// A receiving thread pushes tokens through the channel API; a processing thread turns them
/// into payloads with its clone of the UMEM and drops them there (frames come back through the
/// lock-free return path).
#[test]
fn channel_api_carries_tokens() {
    let Some(pair) = NetPair::for_test("afxdpchan") else {
        return;
    };
    const N: u64 = 2000;
    let (rx, mut pusher, popper) = pair
        .in_b(|| {
            Sock::create_with_channel::<32>(
                &pair.veth_b,
                None,
                AfXdpFlags::default(),
                nethuns_afxdp::crossbeam_channel::bounded(256),
            )
        })
        .unwrap();
    let tx = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .unwrap();
    let pool = rx.context().pool_id();
    let consumer = std::thread::spawn(move || {
        let mut next = 0u32;
        while let Some(batch) = popper.pop() {
            for p in batch {
                assert_eq!(p.context().pool_id(), pool);
                frames::check(&p, next, 64).unwrap();
                next += 1;
            }
        }
        next as u64
    });
    let producer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while n < N && Instant::now() < deadline {
            match rx.recv_token() {
                Ok((t, _)) => {
                    pusher.push_token(t).unwrap();
                    n += 1;
                }
                Err(Error::NoPacket) => {
                    pusher.flush().unwrap();
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
        pusher.flush().unwrap();
        drop(pusher);
        // Frames released by the consumer come back to this socket's fill ring.
        (rx, n)
    });
    std::thread::sleep(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(10);
    for chunk in 0..(N as u32 / 50) {
        send_all(
            &tx,
            (chunk * 50..chunk * 50 + 50).map(|q| frames::frame(q, 64)),
            deadline,
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let (rx, n) = producer.join().unwrap();
    assert_eq!(n, N);
    assert_eq!(consumer.join().unwrap(), N);
    let audit = rx.audit_frames();
    assert!(audit.is_consistent() && audit.in_use == 0, "{audit:?}");
}
