//! The parts of the common `Socket` contract that AF_PACKET answers in its own way: statistics
//! (the kernel resets `PACKET_STATISTICS` on every read), capabilities, and `NoMemory` once
//! every block of the ring is held.

mod common;

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

#[test]
fn stats_and_capabilities() {
    let Some(pair) = NetPair::for_test("afp_stats") else {
        return;
    };
    const N: u32 = 200;
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, common::flags()).unwrap();
            let caps = sock.capabilities();
            assert_eq!(caps.max_frame, 1514);
            assert_eq!(caps.min_frame, 14);
            assert!(caps.timestamps && caps.zero_copy);
            assert_eq!(caps.pollable_fd, Some(sock.as_raw_fd()));
            assert_eq!(caps.filters, cfg!(feature = "pcap"));
            ready_tx.send(()).unwrap();
            let got = common::recv_test_frames(&sock, N as usize, Duration::from_secs(10));
            // A native read in between does not lose anything from the totals.
            let native = sock.native_stats().unwrap();
            let st = sock.stats().unwrap();
            (got.len(), native.tp_packets, st)
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sent: Vec<_> = (0..N).map(|i| frames::frame(i, 100)).collect();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &sent, 16, Duration::from_secs(5));
        sock.try_flush().unwrap();
        let st = sock.stats().unwrap();
        assert_eq!((st.sent, st.send_errors, st.received), (N as u64, 0, 0));
        assert_eq!(st.dropped, Some(0));
        assert_eq!(st.filtered, None);
    });
    let (got, native_packets, st) = receiver.join().unwrap();
    assert_eq!(got, N as usize);
    // Other traffic (IPv6 router solicitations) may arrive too; every frame was counted.
    assert!(st.received >= N as u64, "{st:?}");
    assert!(native_packets as u64 >= N as u64, "{native_packets}");
    assert_eq!(st.dropped, Some(0));
    assert_eq!(st.sent, 0);
}

#[test]
fn every_block_held_gives_no_memory_then_recovers() {
    let Some(pair) = NetPair::for_test("afp_nomem") else {
        return;
    };
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    // 2 blocks of one page: a few 512-byte frames each.
    let flags = AfPacketFlags {
        block_size: 4096,
        block_count: 2,
        frame_size: 2048,
        block_timeout_ms: 1,
        ..AfPacketFlags::default()
    };
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, flags).unwrap();
            ready_tx.send(()).unwrap();
            let mut held = vec![];
            let end = Instant::now() + Duration::from_secs(10);
            let no_memory = loop {
                assert!(Instant::now() < end, "no NoMemory with {} held", held.len());
                match sock.recv() {
                    Ok((p, _)) => held.push(p),
                    Err(Error::NoPacket) => std::thread::sleep(Duration::from_micros(50)),
                    Err(Error::NoMemory) => break held.len(),
                    Err(e) => panic!("recv: {e}"),
                }
            };
            assert_eq!(sock.context().blocks_in_use(), 2);
            // It stays NoMemory (never NoPacket) while the kernel drops.
            std::thread::sleep(Duration::from_millis(50));
            for _ in 0..100 {
                assert!(matches!(sock.recv(), Err(Error::NoMemory)));
            }
            let dropped = sock.stats().unwrap().dropped.unwrap();
            drop(held);
            // Traffic resumes once released.
            let after = common::recv_test_frames(&sock, 20, Duration::from_secs(5));
            stop_tx.send(()).unwrap();
            (no_memory, dropped, after.len())
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let a_if = pair.veth_a.clone();
    pair.in_a(move || {
        let sock = Sock::create(&a_if, None, common::flags()).unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        let mut seq = 0;
        while stop_rx.try_recv().is_err() && Instant::now() < end {
            let _ = sock.send(&frames::frame(seq, 512));
            sock.flush();
            seq += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let (held, dropped, after) = receiver.join().unwrap();
    eprintln!("NoMemory after holding {held} frames; kernel dropped {dropped}");
    assert!(held > 0);
    assert!(
        dropped > 0,
        "the kernel must have dropped while every block was held"
    );
    assert_eq!(after, 20);
}
