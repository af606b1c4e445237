//! A changing device never loses a frame: the link going down and up while sending; a token
//! shown to another socket's UMEM; poll(2) on the XSK socket. (Send size rules, a deleted
//! interface: the conformance suite, `conformance.rs`.)

#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use nethuns_afxdp::{AfXdpFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

/// With the link down the kernel cannot transmit: `send` fills every TX frame, then reports
/// `InterfaceDown`; once the link is up again a flush sends everything and every frame is back.
#[test]
fn link_down_then_up_loses_no_frame() {
    let Some(pair) = NetPair::for_test("linkdown") else {
        return;
    };
    let f = AfXdpFlags {
        tx_size: 64,
        ..AfXdpFlags::default()
    };
    let a = pair
        .in_a(|| Sock::create(&pair.veth_a, None, f.clone()))
        .unwrap();
    let b = pair.in_b(|| Sock::create(&pair.veth_b, None, f)).unwrap();
    pair.ip_a(&["link", "set", &pair.veth_a, "down"]).unwrap();
    let mut sent = 0u32;
    let mut full = false;
    for seq in 0..200 {
        match a.send(&frames::frame(seq, 64)) {
            Ok(()) => sent += 1,
            Err(Error::InterfaceDown(name)) => {
                assert_eq!(name, pair.veth_a);
                full = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    a.flush();
    assert!(full, "TX should fill up while the link is down");
    assert_eq!(sent, 64);
    let audit = a.audit_frames();
    assert!(audit.is_consistent(), "{audit:?}");
    pair.ip_a(&["link", "set", &pair.veth_a, "up"]).unwrap();
    // The peer may need a moment to see the carrier again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = 0;
    while got < sent as u64 && Instant::now() < deadline {
        a.flush();
        got += recv_count(
            &b,
            sent as u64 - got,
            Duration::from_millis(50),
            |seq, bytes, _| frames::check(bytes, seq, 64).unwrap(),
        );
    }
    let audit = a.audit_frames();
    assert!(audit.is_consistent(), "{audit:?}");
    assert_eq!(audit.tx_free, 64, "every TX frame came back: {audit:?}");
    // Frames sent while the carrier was coming back may be dropped by veth; none is lost
    // from the UMEM, and what arrived is intact.
    assert!(got <= sent as u64);
}

// A token of another UMEM being refused is the conformance suite's `foreign_token`.

/// The socket can be polled: POLLIN once a frame is on the RX ring.
#[test]
fn poll_says_when_frames_wait() {
    use std::os::fd::AsRawFd;
    let Some(pair) = NetPair::for_test("pollin") else {
        return;
    };
    let a = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .unwrap();
    let poll = |ms: i32| {
        let mut p = libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        rc == 1 && p.revents & libc::POLLIN != 0
    };
    assert!(!poll(20), "nothing sent yet");
    let raw_b = pair.in_b(|| RawSock::open(&pair.veth_b));
    raw_b.send(&frames::frame(7, 64));
    assert!(poll(2000), "POLLIN after a frame arrived");
    let (p, meta) = a.recv().unwrap();
    frames::check(&p, 7, 64).unwrap();
    assert_eq!((meta.len, meta.queue, meta.options), (64, 0, 0));
}
