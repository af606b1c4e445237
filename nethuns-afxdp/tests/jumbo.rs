//! Multi-buffer frames beyond the conformance suite's `jumbo` case: every jumbo buffer held
//! is `NoMemory` (the frame waits on the RX ring, nothing lost), and the frame arrives once one
//! is released; the frame audit accounts for every UMEM frame and jumbo buffer.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use nethuns_afxdp::flags::{XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
use nethuns_afxdp::{AfXdpFlags, Error, Sock, Socket, Token};
use nethuns_testnet::{frames, peer::RawPeer, NetPair, PairOptions};

fn held_jumbo_buffers_are_no_memory(mode: u32, tag: &str) {
    let opts = PairOptions {
        mtu: 9000,
        ..Default::default()
    };
    let Some(pair) = NetPair::for_test_with(tag, opts) else {
        return;
    };
    // 448 receive frames of 2048 bytes; a 9018-byte frame takes 6: 74 jumbo buffers.
    let flags = AfXdpFlags {
        xdp_flags: mode,
        num_frames: 512,
        tx_size: 64,
        rx_size: 256,
        ..AfXdpFlags::default()
    };
    let sock = pair
        .in_a(|| Sock::create(&pair.veth_a, None, flags))
        .expect("AF_XDP socket on an MTU 9000 veth");
    let peer = pair.in_b(|| RawPeer::open(&pair.veth_b)).unwrap();
    let jumbo = 74;
    let mut held: Vec<Token> = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 0u32;
    let mut no_memory = false;
    while Instant::now() < deadline && !no_memory {
        if held.len() as u32 == seq {
            peer.send(&frames::frame(seq, 9014)).unwrap();
            seq += 1;
        }
        match sock.recv_token() {
            Ok((t, m)) => {
                assert_eq!(m.len, 9014);
                held.push(t);
            }
            Err(Error::NoPacket) => std::thread::yield_now(),
            Err(Error::NoMemory) => no_memory = true,
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert!(no_memory, "no NoMemory with {} frames held", held.len());
    assert_eq!(held.len(), jumbo, "jumbo buffers held before NoMemory");
    let a = sock.audit_frames();
    assert!(a.is_consistent(), "{a:?}");
    assert_eq!(a.in_use, jumbo as u64);
    // Release one: the waiting frame arrives, whole and in order.
    let ctx = sock.context().clone();
    drop(held.remove(0).consume(&ctx));
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        match sock.recv() {
            Ok((p, _)) => break p.to_vec(),
            Err(Error::NoPacket) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("recv after a release: {e}"),
        }
    };
    frames::check(&got, seq - 1, 9014).unwrap();
    for t in held {
        drop(t.consume(&ctx));
    }
    let a = sock.audit_frames();
    assert!(a.is_consistent() && a.in_use == 0, "{a:?}");
}

#[test]
fn skb_mode_held_jumbo_buffers_are_no_memory() {
    held_jumbo_buffers_are_no_memory(XDP_FLAGS_SKB_MODE, "jumboskb");
}

#[test]
fn native_mode_held_jumbo_buffers_are_no_memory() {
    held_jumbo_buffers_are_no_memory(XDP_FLAGS_DRV_MODE, "jumbodrv");
}
