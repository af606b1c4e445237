//! Real traffic between two namespaces over a veth pair, AF_XDP on both ends.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use nethuns_afxdp::{AfXdpFlags, Sock, Socket, XDP_COPY, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
use nethuns_testnet::{frames, NetPair};

const PER_SIZE: u32 = 250;

fn flags(mode: u32) -> AfXdpFlags {
    AfXdpFlags {
        xdp_flags: mode,
        bind_flags: XDP_COPY,
        ..AfXdpFlags::default()
    }
}

/// Sends PER_SIZE frames of each size from `tx` and checks `rx` gets each exactly.
fn exchange(tx: &Sock, rx: Sock) -> Sock {
    let total = PER_SIZE as u64 * SIZES.len() as u64;
    let want = |seq: u32| SIZES[(seq / PER_SIZE) as usize];
    let h = std::thread::spawn(move || {
        let mut next = 0u32;
        let got = recv_count(&rx, total, Duration::from_secs(10), |seq, bytes, len| {
            assert_eq!(seq, next, "frames out of order or lost");
            next += 1;
            assert_eq!(len as usize, bytes.len());
            frames::check(bytes, seq, want(seq)).unwrap();
        });
        (rx, got)
    });
    std::thread::sleep(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(10);
    // Paced in chunks so the receiver's RX ring never overflows.
    for chunk in 0..(total as u32 / 50) {
        send_all(
            tx,
            (chunk * 50..chunk * 50 + 50).map(|q| frames::frame(q, want(q))),
            deadline,
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let (rx, got) = h.join().unwrap();
    assert_eq!(got, total, "received count");
    rx
}

fn both_directions(mode: u32, tag: &str) {
    both_directions_with(flags(mode), tag);
}

fn both_directions_with(f: AfXdpFlags, tag: &str) {
    let Some(pair) = NetPair::for_test(tag) else {
        return;
    };
    let a = pair
        .in_a(|| Sock::create(&pair.veth_a, None, f.clone()))
        .unwrap();
    let b = pair
        .in_b(|| Sock::create(&pair.veth_b, Some(0), f.clone()))
        .unwrap();
    assert!(xdp_attached(&pair, true) && xdp_attached(&pair, false));
    assert!(
        !a.is_zero_copy() && !b.is_zero_copy(),
        "veth has no zero-copy"
    );
    let b = exchange(&a, b);
    let a = exchange(&b, a);
    for s in [&a, &b] {
        let audit = s.audit_frames();
        assert!(audit.is_consistent(), "{audit:?}");
        assert_eq!(audit.in_use, 0);
    }
    drop((a, b));
    assert!(!xdp_attached(&pair, true), "{}", link_details(&pair, true));
    assert!(
        !xdp_attached(&pair, false),
        "{}",
        link_details(&pair, false)
    );
}

#[test]
fn skb_mode_exact_delivery_both_directions() {
    both_directions(XDP_FLAGS_SKB_MODE, "skbexact");
}

#[test]
fn drv_mode_exact_delivery_both_directions() {
    both_directions(XDP_FLAGS_DRV_MODE, "drvexact");
}

/// `xdp_flags: 0` lets the kernel pick (native on veth); `bind_flags: 0` lets it try zero-copy
/// and fall back to copy (veth has no zero-copy).
#[test]
fn kernel_chosen_mode_and_copy() {
    let f = AfXdpFlags {
        xdp_flags: 0,
        bind_flags: 0,
        ..AfXdpFlags::default()
    };
    both_directions_with(f, "automode");
}

/// 4096-byte frames and other ring sizes.
#[test]
fn skb_mode_4096_byte_frames() {
    let f = AfXdpFlags {
        frame_size: 4096,
        num_frames: 2048,
        tx_size: 256,
        rx_size: 1024,
        ..flags(XDP_FLAGS_SKB_MODE)
    };
    both_directions_with(f, "frame4096");
}
