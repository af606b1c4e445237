//! Bad input and a failing link give clear errors, never a panic or a hang.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, BpfInstruction, Error, Filter, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

fn invalid_field(r: nethuns_afpacket::Result<Sock>) -> &'static str {
    match r {
        Err(Error::InvalidFlag { field, .. }) => field,
        other => panic!("expected InvalidFlag, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn each_bad_flag_is_refused_before_the_kernel() {
    // Checked before anything else: no root, no interface needed.
    let d = AfPacketFlags::default;
    let cases: Vec<(AfPacketFlags, &str)> = vec![
        (
            AfPacketFlags {
                block_size: 0,
                ..d()
            },
            "block_size",
        ),
        (
            AfPacketFlags {
                block_size: 4097,
                ..d()
            },
            "block_size",
        ),
        (
            AfPacketFlags {
                block_size: !4095,
                ..d()
            },
            "block_size",
        ),
        (
            AfPacketFlags {
                block_count: 0,
                ..d()
            },
            "block_count",
        ),
        (
            AfPacketFlags {
                block_size: 1 << 28,
                block_count: 64,
                ..d()
            },
            "block_count",
        ),
        (
            AfPacketFlags {
                frame_size: 100,
                ..d()
            },
            "frame_size",
        ),
        (
            AfPacketFlags {
                frame_size: 48,
                ..d()
            },
            "frame_size",
        ),
        (
            AfPacketFlags {
                block_size: 4096,
                frame_size: 4112,
                ..d()
            },
            "frame_size",
        ),
        (
            AfPacketFlags {
                block_timeout_ms: 3_600_000,
                ..d()
            },
            "block_timeout_ms",
        ),
        (
            AfPacketFlags {
                tx_frame_count: 1 << 30,
                ..d()
            },
            "tx_frame_count",
        ),
        (
            AfPacketFlags {
                filter: Some(Filter::Classic(vec![])),
                ..d()
            },
            "filter",
        ),
        (
            AfPacketFlags {
                filter: Some(Filter::Classic(vec![BpfInstruction::default(); 5000])),
                ..d()
            },
            "filter",
        ),
    ];
    for (flags, want) in cases {
        let shown = format!("{flags:?}");
        let field = invalid_field(Sock::create("nh-no-such-if0", None, flags));
        assert_eq!(field, want, "{shown}");
    }
    // `queue` without a fanout group.
    assert_eq!(invalid_field(Sock::create("lo", Some(1), d())), "fanout");
}

#[test]
fn missing_interface_is_named() {
    let err = Sock::create("nh-no-such-if0", None, AfPacketFlags::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Os { .. }), "{err:?}");
    assert!(
        msg.contains("nh-no-such-if0") && msg.contains("not found"),
        "{msg}"
    );
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
}

#[test]
fn bad_portspecs() {
    for spec in [
        "",
        "afpacket:",
        "a-name-longer-than-15",
        "eth0/1",
        "eth 0",
        "nul\0",
    ] {
        match Sock::create(spec, None, AfPacketFlags::default()) {
            Err(Error::InvalidPortspec { spec: s, .. }) => assert_eq!(s, spec),
            other => panic!(
                "{spec:?}: expected InvalidPortspec, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

/// Spins on `recv` until an error other than NoPacket, or `limit`; returns it and how long it
/// took after `start` was signalled.
fn wait_for_error(sock: &Sock, limit: Duration) -> Option<Error> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match sock.recv() {
            Ok(_) | Err(Error::NoPacket) => std::thread::sleep(Duration::from_micros(100)),
            Err(e) => return Some(e),
        }
    }
    None
}

#[test]
fn link_down_is_reported_and_up_resumes() {
    let Some(pair) = NetPair::for_test("afp_link_down") else {
        return;
    };
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (res_tx, res_rx) = mpsc::channel::<String>();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, common::flags()).unwrap();
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap(); // link is down now
            let err = wait_for_error(&sock, Duration::from_secs(3));
            res_tx.send(format!("{err:?}")).unwrap();
            go_rx.recv().unwrap(); // link is up again, frames on their way
            let got = common::recv_test_frames(&sock, 10, Duration::from_secs(5));
            got.iter()
                .map(|(b, _)| frames::seq_of(b).unwrap())
                .collect::<Vec<_>>()
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    pair.ip_b(&["link", "set", &pair.veth_b, "down"]).unwrap();
    go_tx.send(()).unwrap();
    let err = res_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        err.contains("InterfaceDown") && err.contains(&pair.veth_b),
        "{err}"
    );
    pair.ip_b(&["link", "set", &pair.veth_b, "up"]).unwrap();
    // veth carries traffic once both ends are up again.
    std::thread::sleep(Duration::from_millis(100));
    go_tx.send(()).unwrap();
    let sent: Vec<_> = (0..10).map(|i| frames::frame(i, 60)).collect();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &sent, 16, Duration::from_secs(5));
    });
    assert_eq!(receiver.join().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn tx_errors() {
    let Some(pair) = NetPair::for_test("afp_tx_errors") else {
        return;
    };
    pair.in_a(|| {
        let flags = AfPacketFlags {
            tx_frame_count: 4,
            ..common::flags()
        };
        let sock = Sock::create(&pair.veth_a, None, flags).unwrap();
        assert_eq!(sock.max_frame(), 1514, "MTU 1500 + Ethernet header");
        assert_eq!(sock.capabilities().max_frame, 1514);
        assert_eq!(sock.max_tagged_frame(), 1518, "+ a VLAN tag");
        assert!(matches!(
            sock.send(&[0; 1515]),
            Err(Error::TooBigPacket(1515))
        ));
        let mut tagged = frames::frame(0, 1518);
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        assert!(matches!(
            sock.send(&[&tagged[..], &[0]].concat()),
            Err(Error::TooBigPacket(1519))
        ));
        // The kernel allows the extra 4 bytes under an 802.1Q tag only.
        for tpid in [0x88a8u16, 0x9100] {
            tagged[12..14].copy_from_slice(&tpid.to_be_bytes());
            assert!(matches!(sock.send(&tagged), Err(Error::TooBigPacket(1518))));
        }
        assert!(matches!(
            sock.send(&[0; 10]),
            Err(Error::TooSmallPacket(10))
        ));
        assert!(matches!(
            sock.send(&[0; 13]),
            Err(Error::TooSmallPacket(13))
        ));
        assert_eq!(sock.pending(), 0);
        // Link down: the kernel cannot take frames, the 4 slots stay queued, the 5th has none.
        pair.ip_a(&["link", "set", &pair.veth_a, "down"]).unwrap();
        for i in 0..4 {
            sock.send(&frames::frame(i, 60)).unwrap();
        }
        assert!(matches!(
            sock.send(&frames::frame(4, 60)),
            Err(Error::NoMemory)
        ));
        assert_eq!(sock.pending(), 4);
        match sock.try_flush() {
            Err(Error::InterfaceDown(name)) => assert_eq!(name, pair.veth_a),
            other => panic!("expected InterfaceDown, got {other:?}"),
        }
        assert_eq!(sock.pending(), 4, "a failed flush keeps the frames queued");
        // The receive side learns of it although the transmission consumed the socket error.
        assert!(matches!(sock.recv(), Err(Error::InterfaceDown(_))));
        assert!(sock.tx_errors().0 > 0);
        assert_eq!(sock.tx_errors().1, Some(libc::ENETDOWN));
        pair.ip_a(&["link", "set", &pair.veth_a, "up"]).unwrap();
        sock.try_flush().unwrap();
        assert_eq!(sock.pending(), 0, "{:?}", sock.tx_errors());
        let st = sock.stats().unwrap();
        assert_eq!(st.sent, 4);
        assert!(st.send_errors > 0);
        let end = Instant::now() + Duration::from_secs(2);
        while sock.send(&frames::frame(5, 60)).is_err() {
            assert!(Instant::now() < end, "TX ring never drained");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Without a TX ring, send is unsupported.
        let rx_only = Sock::create(
            &pair.veth_a,
            None,
            AfPacketFlags {
                tx_frame_count: 0,
                ..common::flags()
            },
        )
        .unwrap();
        assert!(matches!(
            rx_only.send(&frames::frame(0, 60)),
            Err(Error::Unsupported(_))
        ));
    });
}
