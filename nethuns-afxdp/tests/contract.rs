//! AF_XDP's side of the common contract, beyond the conformance suite: refused sends counted
//! in `send_errors`, capabilities, the kernel's drops in `stats().dropped` with every frame
//! held, send after a deletion, the epoll set as pollable fd, `InterfaceDown` while the link
//! is down.

#![cfg(target_os = "linux")]

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use nethuns_afxdp::{AfXdpFlags, Error, Metadata, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

/// Receives until a frame equal to `want` arrives (other frames ignored), or 3 s pass.
fn recv_exact(sock: &Sock, want: &[u8]) -> Option<nethuns_afxdp::Meta> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match sock.recv() {
            Ok((p, meta)) if p[..] == *want => return Some(meta),
            Ok(_) | Err(Error::NoPacket) => std::thread::yield_now(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    None
}

#[test]
fn send_size_rule_and_capabilities() {
    let Some(pair) = NetPair::for_test("sizerule") else {
        return;
    };
    let (a, b) = open_pair(&pair);
    let caps = a.capabilities();
    assert_eq!(caps.max_frame, 1514);
    assert_eq!(caps.min_frame, 14);
    assert_eq!(caps.pollable_fd, Some(a.wait_fd().as_raw_fd()));
    assert!(!caps.timestamps && !caps.filters && caps.zero_copy);

    for len in [0usize, 1, 13] {
        match a.send(&vec![0u8; len]) {
            Err(Error::TooSmallPacket(n)) if n == len => {}
            other => panic!("{len} bytes: expected TooSmallPacket, got {other:?}"),
        }
    }
    match a.send(&frames::frame(1, 1515)) {
        Err(Error::TooBigPacket(1515)) => {}
        other => panic!("expected TooBigPacket(1515), got {other:?}"),
    }
    match a.send(&frames::tagged(2, 1519, 7)) {
        Err(Error::TooBigPacket(1519)) => {}
        other => panic!("expected TooBigPacket(1519), got {other:?}"),
    }
    let before = a.stats().unwrap();
    assert_eq!(before.send_errors, 5, "{before:?}");
    assert_eq!(before.sent, 0, "{before:?}");

    // The largest frames of each kind arrive as sent, tag included.
    let big = frames::frame(3, 1514);
    let big_tagged = frames::tagged(4, 1518, 0x2007);
    a.send(&big).unwrap();
    a.send(&big_tagged).unwrap();
    a.try_flush().unwrap();
    let m = recv_exact(&b, &big).expect("1514-byte frame");
    assert_eq!((m.len(), m.vlan()), (1514, None));
    let m = recv_exact(&b, &big_tagged).expect("1518-byte tagged frame");
    assert_eq!((m.len(), m.vlan()), (1518, Some(0x2007)));
    let s = a.stats().unwrap();
    assert_eq!((s.sent, s.send_errors), (2, 5), "{s:?}");
    assert!(b.stats().unwrap().received >= 2);
}

/// Every receive frame held: `NoMemory` (not `NoPacket`), the kernel's drops counted; after
/// a release frames arrive again.
#[test]
fn every_frame_held_is_no_memory_then_recovers() {
    let Some(pair) = NetPair::for_test("poolfull") else {
        return;
    };
    let f = AfXdpFlags {
        num_frames: 128,
        tx_size: 64,
        rx_size: 64,
        ..AfXdpFlags::default()
    };
    let a = pair
        .in_a(|| Sock::create(&pair.veth_a, None, f.clone()))
        .unwrap();
    let b = pair.in_b(|| Sock::create(&pair.veth_b, None, f)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = Vec::new();
    let mut seq = 0;
    let no_memory = loop {
        assert!(
            Instant::now() < deadline,
            "no NoMemory; held {}",
            held.len()
        );
        for _ in 0..16 {
            let _ = b.send(&frames::frame(seq, 64));
            seq += 1;
        }
        b.flush();
        std::thread::sleep(Duration::from_millis(1));
        match a.recv() {
            Ok(p) => held.push(p),
            Err(Error::NoPacket) => {}
            Err(Error::NoMemory) => break held.len(),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(no_memory, 64);
    // The kernel keeps dropping while everything is held; recv keeps saying NoMemory.
    for _ in 0..64 {
        let _ = b.send(&frames::frame(seq, 64));
        seq += 1;
    }
    b.flush();
    std::thread::sleep(Duration::from_millis(20));
    assert!(matches!(a.recv(), Err(Error::NoMemory)));
    let s = a.stats().unwrap();
    assert!(s.dropped.unwrap() > 0, "{s:?} {:?}", a.native_stats());
    assert_eq!(s.received, 64);
    eprintln!("held: {s:?} {:?}", a.native_stats());
    drop(held);
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got == 0 && Instant::now() < deadline {
        let _ = b.send(&frames::frame(seq, 64));
        seq += 1;
        b.flush();
        got += recv_count(&a, 1, Duration::from_millis(20), |_, _, _| {});
    }
    assert!(got > 0, "reception resumed after the release");
    let audit = a.audit_frames();
    assert!(audit.is_consistent(), "{audit:?}");
}

/// Spins on `recv` until it returns something other than `NoPacket`; the time it took.
fn until_error(sock: &Sock, limit: Duration) -> (Error, Duration) {
    let t0 = Instant::now();
    loop {
        match sock.recv() {
            Err(Error::NoPacket) if t0.elapsed() < limit => std::hint::spin_loop(),
            Err(e) => return (e, t0.elapsed()),
            Ok(_) => {}
        }
    }
}

/// After the deletion (recv's InterfaceDown within 100 ms and poll's wake-up are the suite's
/// `link_deleted`), `send` refuses at once and counts it, and `try_flush` does not hang.
#[test]
fn after_deletion_send_is_refused() {
    let Some(pair) = NetPair::for_test("delsend") else {
        return;
    };
    let a = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .unwrap();
    a.send(&frames::frame(0, 64)).unwrap();
    pair.ip_a(&["link", "del", &pair.veth_a]).unwrap();
    let (e, _) = until_error(&a, Duration::from_millis(500));
    match e {
        Error::InterfaceDown(name) => assert_eq!(name, pair.veth_a),
        e => panic!("expected InterfaceDown, got {e}"),
    }
    assert!(matches!(a.recv(), Err(Error::InterfaceDown(_))));
    match a.send(&frames::frame(1, 64)) {
        Err(Error::InterfaceDown(name)) => assert_eq!(name, pair.veth_a),
        other => panic!("send after deletion: {other:?}"),
    }
    let t0 = Instant::now();
    let r = a.try_flush();
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(matches!(r, Ok(()) | Err(Error::InterfaceDown(_))), "{r:?}");
    assert_eq!(a.stats().unwrap().send_errors, 1);
    assert!(!a.link_is_up());
}

/// poll(2) on the pollable fd (the epoll set): POLLIN when a frame waits, not before. (That
/// a wait ends when the interface is deleted is the suite's `link_deleted`.)
#[test]
fn pollable_fd_says_when_frames_wait() {
    let Some(pair) = NetPair::for_test("delpoll") else {
        return;
    };
    let a = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .unwrap();
    let fd = a.capabilities().pollable_fd.unwrap();
    let poll = move |ms: i32| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let t0 = Instant::now();
        // SAFETY: one valid pollfd; the socket outlives every call (threads are joined).
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        (rc == 1 && p.revents & libc::POLLIN != 0, t0.elapsed())
    };
    // Link events of the pair's creation may be pending: let recv's check drain them.
    let _ = until_error(&a, Duration::from_millis(30));
    assert!(!poll(20).0, "nothing sent yet");
    let raw_b = pair.in_b(|| RawSock::open(&pair.veth_b));
    raw_b.send(&frames::frame(7, 64));
    assert!(poll(2000).0, "POLLIN after a frame arrived");
    let (p, _) = a.recv().unwrap();
    frames::check(&p, 7, 64).unwrap();
    drop(p);
}

#[test]
fn link_down_is_interface_down_then_traffic_resumes() {
    let Some(pair) = NetPair::for_test("downup") else {
        return;
    };
    let (a, b) = open_pair(&pair);
    pair.ip_a(&["link", "set", &pair.veth_a, "down"]).unwrap();
    let (e, t) = until_error(&a, Duration::from_millis(500));
    assert!(matches!(e, Error::InterfaceDown(_)), "{e}");
    assert!(t < Duration::from_millis(100), "{t:?}");
    pair.ip_a(&["link", "set", &pair.veth_a, "up"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seq = 0;
    let mut got = 0;
    while got < 10 && Instant::now() < deadline {
        let _ = b.send(&frames::frame(seq, 64));
        seq += 1;
        b.flush();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(20) {
            match a.recv() {
                Ok((p, _)) if frames::is_test_frame(&p) => got += 1,
                Ok(_) | Err(Error::NoPacket) | Err(Error::InterfaceDown(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert!(got >= 10, "traffic resumed after link up: {got}");
}

/// Receives until a frame equal to `want` arrives (others released), within 3 s.
fn recv_payload<'s>(
    sock: &'s Sock,
    want: &[u8],
) -> nethuns_afxdp::Payload<'s, nethuns_afxdp::Umem> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match sock.recv() {
            Ok((p, _)) if p[..] == *want => return p,
            Ok(_) | Err(Error::NoPacket) if Instant::now() < deadline => std::thread::yield_now(),
            other => panic!("recv: {:?}", other.map(|(p, _)| p.len())),
        }
    }
}

/// `send_payload` of a frame received on the same socket puts that frame itself on the TX
/// ring (no TX frame used); it arrives intact and goes back to the fill ring once completed.
/// A payload of another socket's UMEM is copied into a TX frame.
#[test]
fn send_payload_of_an_own_frame_is_zero_copy() {
    let Some(pair) = NetPair::for_test("zcfwd") else {
        return;
    };
    let (a, b) = open_pair(&pair);
    let tx_frames = a.audit_frames().tx_free;
    let f = frames::frame(11, 300);
    b.send(&f).unwrap();
    b.try_flush().unwrap();
    let p = recv_payload(&a, &f);
    a.send_payload(p).map_err(|u| u.error).unwrap();
    let au = a.audit_frames();
    assert_eq!((au.tx_free, au.tx_ring), (tx_frames, 1), "{au:?}");
    a.try_flush().unwrap();
    let m = recv_exact(&b, &f).expect("the forwarded frame");
    assert_eq!(m.len(), 300);
    // Completed: the frame is back with the released ones, every frame accounted for.
    let deadline = Instant::now() + Duration::from_secs(3);
    while a.audit_frames().completion_ring > 0 && Instant::now() < deadline {
        a.flush();
    }
    let au = a.audit_frames();
    assert!(au.is_consistent() && au.in_use == 0, "{au:?}");
    assert_eq!(au.tx_free, tx_frames, "{au:?}");

    // From b's UMEM: copied (one TX frame of a's in use until completion).
    let g = frames::frame(12, 200);
    a.send(&g).unwrap();
    a.try_flush().unwrap();
    let q = recv_payload(&b, &g);
    a.send_payload(q).map_err(|u| u.error).unwrap();
    assert_eq!(a.audit_frames().tx_free, tx_frames - 1);
    a.try_flush().unwrap();
    assert!(recv_exact(&b, &g).is_some(), "the copied frame");
}
