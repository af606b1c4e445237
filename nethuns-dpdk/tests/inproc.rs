//! In-process tests against the real DPDK engine with virtual devices (net_ring, net_null).
//!
//! DPDK allows one EAL per process, and each file in tests/ is its own process: every case
//! here runs in sequence inside ONE #[test], after one explicit EAL initialisation.

use std::time::{Duration, Instant};

use nethuns_dpdk::{
    Context, DpdkError, DpdkFlags, DpdkOptions, Eal, Error, Metadata, MetadataType, Payload, Sock,
    Socket, Token, BURST,
};
use nethuns_testnet::frames;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn dpdk_code(e: &Error) -> Option<i32> {
    e.engine_source::<DpdkError>().map(|d| d.code)
}

/// Receives exactly `n` packets (bounded in time), checking nothing else arrives.
fn recv_n(sock: &Sock, n: usize) -> Vec<Vec<u8>> {
    let end = deadline();
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < end,
            "timed out with {} of {n} packets",
            got.len()
        );
        match sock.recv() {
            Ok((p, meta)) => {
                assert_eq!(meta.len as usize, p.len());
                assert_eq!(meta.port, sock.port_id());
                assert_eq!(meta.queue, sock.queue());
                assert!(matches!(meta.into_enum(), MetadataType::Dpdk(_)));
                got.push(p.to_vec());
            }
            Err(Error::NoPacket) => std::hint::spin_loop(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

fn ring_loopback() {
    let sock = Sock::create("net_ring0", Some(0), DpdkFlags::default()).unwrap();
    assert_eq!(sock.port_info().driver, "net_ring");
    assert!(sock.link().unwrap().up, "net_ring is up once started");
    assert!(!sock.rss_enabled());
    // net_ring frees at once (nothing to clean up) or does not implement it: ENOTSUP.
    match sock.tx_done_cleanup() {
        Ok(_) => {}
        Err(e) => assert_eq!(dpdk_code(&e), Some(libc::ENOTSUP), "{e}"),
    }
    assert!(matches!(sock.recv(), Err(Error::NoPacket)));
    // sizes cross the burst boundary: 100 frames = 3 full bursts + 4 pending for flush
    let sizes = |i: u32| [60usize, 64, 128, 512, 1514][i as usize % 5];
    for i in 0..100u32 {
        sock.send(&frames::frame(i, sizes(i))).unwrap();
    }
    assert_eq!(sock.pending(), 100 % BURST);
    sock.flush();
    assert_eq!(sock.pending(), 0);
    let got = recv_n(&sock, 100);
    for (i, f) in got.iter().enumerate() {
        frames::check(f, i as u32, sizes(i as u32)).unwrap();
    }
    assert!(matches!(sock.recv(), Err(Error::NoPacket)));
    let st = sock.native_stats().unwrap();
    assert_eq!(
        (st.opackets, st.ipackets, st.tx_dropped),
        (100, 100, 0),
        "{st:?}"
    );
    let st = Socket::stats(&sock).unwrap();
    assert_eq!(
        (st.received, st.sent, st.dropped, st.send_errors),
        (100, 100, Some(0), 0),
        "{st:?}"
    );
    sock.try_flush().unwrap();

    // The size rule: 14 ≤ len ≤ MTU + 14 (+ 4 with an 802.1Q tag).
    let caps = sock.capabilities();
    assert_eq!((caps.min_frame, caps.max_frame), (14, 1514), "{caps:?}");
    assert!(caps.zero_copy && caps.pollable_fd.is_none() && !caps.filters);
    for n in [0usize, 5, 13] {
        assert!(
            matches!(sock.send(&vec![2u8; n]), Err(Error::TooSmallPacket(m)) if m == n),
            "{n} bytes"
        );
    }
    assert!(matches!(
        sock.send(&frames::frame(1, 1515)),
        Err(Error::TooBigPacket(1515))
    ));
    let mut tagged = frames::frame(1, 1518);
    tagged[12..14].copy_from_slice(&[0x81, 0x00]);
    sock.send(&tagged).unwrap();
    tagged.push(0);
    assert!(matches!(sock.send(&tagged), Err(Error::TooBigPacket(1519))));
    sock.try_flush().unwrap();
    let got = recv_n(&sock, 1);
    assert_eq!(got[0].len(), 1518);

    // Payloads are mbufs in place: writable, and freed on drop.
    let in_use = sock.context().in_use();
    sock.send(&frames::frame(7, 64)).unwrap();
    sock.flush();
    let end = deadline();
    let mut p = loop {
        match sock.recv() {
            Ok((p, _)) => break p,
            Err(Error::NoPacket) if Instant::now() < end => continue,
            Err(e) => panic!("{e}"),
        }
    };
    p[20] ^= 0xff;
    assert!(frames::check(&p, 7, 64).is_err());
    drop(p);

    // Tokens cross threads and come back as payloads with a clone of the context.
    for i in 0..10u32 {
        sock.send(&frames::frame(1000 + i, 100)).unwrap();
    }
    sock.flush();
    let end = deadline();
    let mut tokens: Vec<Token> = Vec::new();
    while tokens.len() < 10 {
        assert!(Instant::now() < end);
        match sock.recv_token() {
            Ok((t, m)) => {
                assert_eq!(m.len, 100);
                tokens.push(t)
            }
            Err(Error::NoPacket) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let ctx = sock.context().clone();
    let seqs = std::thread::spawn(move || {
        tokens
            .into_iter()
            .map(|t| {
                let p: Payload<'_, _> = t.consume(&ctx);
                frames::seq_of(&p).unwrap()
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(seqs, (1000..1010).collect::<Vec<_>>());
    // Every mbuf went back to the pool, except the socket's TX stash (at most one burst).
    let now = sock.context().in_use();
    assert!(now <= BURST as u32, "{now} mbufs still out (was {in_use})");

    // A token from another socket's pool is refused.
    let other = Sock::create("net_ring1", None, DpdkFlags::default()).unwrap();
    other.send(&frames::frame(5, 64)).unwrap();
    other.flush();
    let end = deadline();
    let t = loop {
        match other.recv_token() {
            Ok((t, _)) => break t,
            Err(Error::NoPacket) if Instant::now() < end => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(!t.check_token(sock.context()));
    let back = t.try_consume(sock.context()).unwrap_err();
    drop(back.token.consume(other.context()));

    // Oversize frames are refused before touching the pool.
    match sock.send(&vec![0u8; sock.max_frame() + 1]) {
        Err(Error::TooBigPacket(n)) => assert_eq!(n, sock.max_frame() + 1),
        other => panic!("{other:?}"),
    }
    // One socket per port.
    let e = Sock::create("net_ring0", None, DpdkFlags::default()).unwrap_err();
    assert_eq!(dpdk_code(&e), Some(libc::EBUSY), "{e}");
    assert!(e.to_string().contains("net_ring0"), "{e}");
    drop(other);
    // Frames left in the ring at drop are drained and freed with their pool, not handed to
    // the next socket on the same device.
    for i in 0..10u32 {
        sock.send(&frames::frame(i, 64)).unwrap();
    }
    sock.flush();
    drop(sock);
    // The vdev was removed with its socket: the name can be used again.
    let again = Sock::create("net_ring0", None, DpdkFlags::default()).unwrap();
    again.send(&frames::frame(9, 64)).unwrap();
    again.flush();
    let got = recv_n(&again, 1);
    frames::check(&got[0], 9, 64).unwrap();
    assert!(matches!(again.recv(), Err(Error::NoPacket)));
}

fn second_queue_and_channel() {
    // net_ring loops each queue back to itself: queue 3 of a 16-queue port.
    let sock = Sock::create("net_ring5", Some(3), DpdkFlags::default()).unwrap();
    assert_eq!(sock.queue(), 3);
    for i in 0..40u32 {
        sock.send(&frames::frame(i, 80)).unwrap();
    }
    sock.flush();
    let end = deadline();
    let mut n = 0;
    while n < 40 {
        assert!(Instant::now() < end);
        match sock.recv() {
            Ok((p, meta)) => {
                assert_eq!(meta.queue, 3);
                frames::check(&p, n, 80).unwrap();
                n += 1;
            }
            Err(Error::NoPacket) => {}
            Err(e) => panic!("{e}"),
        }
    }
    drop(sock);

    // The channel API: tokens in batches to a processing thread.
    let (sock, mut pusher, popper) = Sock::create_with_channel::<8>(
        "net_null2,size=96",
        None,
        DpdkFlags::default(),
        nethuns_dpdk::crossbeam_channel::bounded(64),
    )
    .unwrap();
    let consumer = std::thread::spawn(move || {
        let mut count = 0;
        while let Some(batch) = popper.pop() {
            for p in batch {
                assert_eq!(p.len(), 96);
                count += 1;
            }
        }
        count
    });
    let mut pushed = 0;
    let end = deadline();
    while pushed < 1000 {
        assert!(Instant::now() < end, "{pushed} of 1000 pushed");
        if let Ok((t, _)) = sock.recv_token() {
            pusher.push_token(t).unwrap();
            pushed += 1;
        }
    }
    pusher.flush().unwrap();
    drop(pusher);
    assert_eq!(consumer.join().unwrap(), 1000);
}

fn null_exact_counts() {
    let sock = Sock::create("net_null0,size=128", None, DpdkFlags::default()).unwrap();
    // net_null delivers zero-filled packets of `size` bytes forever.
    let got = recv_n(&sock, 1000);
    assert!(got.iter().all(|p| p.len() == 128));
    for i in 0..500u32 {
        sock.send(&frames::frame(i, 64)).unwrap();
    }
    sock.flush();
    let st = sock.native_stats().unwrap();
    assert_eq!(st.opackets, 500, "{st:?}");
    assert_eq!(st.tx_dropped, 0);
    assert!(st.ipackets >= 1000, "{st:?}");
    let st = Socket::stats(&sock).unwrap();
    assert_eq!(
        (st.received, st.sent, st.send_errors),
        (1000, 500, 0),
        "{st:?}"
    );
}

fn concurrent_sockets() {
    // Sockets created, used and dropped from several threads at once.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for round in 0..3 {
                    let spec = format!("net_null{},size={}", 10 + i, 64 + i);
                    let flags = DpdkFlags {
                        num_mbufs: 1023,
                        ..DpdkFlags::default()
                    };
                    let sock = Sock::create(&spec, None, flags)
                        .unwrap_or_else(|e| panic!("{spec} round {round}: {e}"));
                    let got = recv_n(&sock, 100);
                    assert!(got.iter().all(|p| p.len() == 64 + i));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn exhausted_mempool() {
    let flags = DpdkFlags {
        num_mbufs: 64,
        mbuf_cache_size: 0,
        ..DpdkFlags::default()
    };
    let sock = Sock::create("net_null1", None, flags).unwrap();
    // A send fills the socket's TX stash (one burst of mbufs); receiving takes them back.
    sock.send(&frames::frame(0, 64)).unwrap();
    sock.flush();
    let end = deadline();
    let mut held = Vec::new();
    let err = loop {
        assert!(
            Instant::now() < end,
            "pool never ran out ({} held)",
            held.len()
        );
        match sock.recv_token() {
            Ok((t, _)) => held.push(t),
            Err(Error::NoPacket) => {}
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::NoMemory), "{err}");
    assert_eq!(held.len(), 64, "every mbuf is held by a token");
    assert!(matches!(
        sock.send(&frames::frame(0, 64)),
        Err(Error::NoMemory)
    ));
    assert_eq!(sock.context().available(), 0);
    // Giving one back makes the socket work again.
    let t = held.pop().unwrap();
    drop(sock.context().packet(t));
    let end = deadline();
    loop {
        assert!(Instant::now() < end);
        match sock.recv_token() {
            Ok((t, _)) => {
                held.push(t);
                break;
            }
            Err(Error::NoPacket) => {}
            Err(e) => panic!("{e}"),
        }
    }
    for t in held {
        drop(sock.context().packet(t));
    }
    assert_eq!(sock.context().available(), 64);
    sock.send(&frames::frame(0, 64)).unwrap();
    sock.flush();
}

fn bad_inputs() {
    let d = DpdkFlags::default;
    for spec in ["", "eth0", "net_", "0000:zz:00.0", "net_ring0,"] {
        match Sock::create(spec, None, d()) {
            Err(Error::InvalidPortspec { spec: s, .. }) => assert_eq!(s, spec),
            other => panic!("{spec:?}: {other:?}"),
        }
    }
    // Driver arguments nethuns knows are checked before DPDK sees them, naming the argument
    // (DPDK would say "Cannot allocate memory", accept them silently, or take seconds).
    for (spec, arg) in [
        ("net_null0,size=abc", "size=abc"),
        ("net_null0,size=0", "size=0"),
        ("net_null0,size=99999999999", "size=99999999999"),
        ("net_null0,copy=7", "copy=7"),
        ("net_ring0,foo=bar", "foo=bar"),
        ("net_af_packet0,iface=lo,qpairs=100000", "qpairs=100000"),
    ] {
        match Sock::create(spec, None, d()) {
            Err(Error::InvalidPortspec { spec: s, reason }) => {
                assert_eq!(s, spec);
                assert!(reason.contains(arg), "{spec}: {reason}");
            }
            other => panic!("{spec:?}: {other:?}"),
        }
    }
    // Unknown driver: DPDK's own error, naming the device.
    let e = Sock::create("net_bogus0", None, d()).unwrap_err();
    assert!(dpdk_code(&e).is_some(), "{e}");
    assert!(e.to_string().contains("net_bogus0"), "{e}");
    // PCI with --no-pci.
    let e = Sock::create("0000:01:00.0", Some(0), d()).unwrap_err();
    assert!(dpdk_code(&e).is_some(), "{e}");
    assert!(e.to_string().contains("0000:01:00.0"), "{e}");
    // A queue the device does not have.
    match Sock::create("net_ring2", Some(100), d()) {
        Err(Error::InvalidPortspec { reason, .. }) => {
            assert!(reason.contains("queue 100"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The failed socket released the device.
    drop(Sock::create("net_ring2", Some(0), d()).unwrap());
    // Flags, checked before anything is allocated.
    for (flags, field) in [
        (
            DpdkFlags {
                num_mbufs: 8,
                ..d()
            },
            "num_mbufs",
        ),
        (
            DpdkFlags {
                mbuf_cache_size: 600,
                ..d()
            },
            "mbuf_cache_size",
        ),
        (
            DpdkFlags {
                num_mbufs: 100,
                mbuf_cache_size: 90,
                ..d()
            },
            "mbuf_cache_size",
        ),
        (
            DpdkFlags {
                mbuf_default_buf_size: 100,
                ..d()
            },
            "mbuf_default_buf_size",
        ),
        // valid alone, but too small for the port's 1500 MTU
        (
            DpdkFlags {
                mbuf_default_buf_size: 1024,
                ..d()
            },
            "mbuf_default_buf_size",
        ),
    ] {
        match Sock::create("net_ring3", None, flags) {
            Err(Error::InvalidFlag { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // A mempool larger than the EAL's memory: DPDK's ENOMEM with the port named (ENOBUFS
    // where populating the pool fails first, as under AddressSanitizer's address space).
    let e = Sock::create(
        "net_ring3",
        None,
        DpdkFlags {
            num_mbufs: 1 << 20,
            ..d()
        },
    )
    .unwrap_err();
    assert!(
        matches!(dpdk_code(&e), Some(libc::ENOMEM | libc::ENOBUFS)),
        "{e}"
    );
    assert!(e.to_string().contains("net_ring3"), "{e}");
    // Options, checked the same way.
    let o = DpdkOptions::default;
    for (opts, field) in [
        (
            DpdkOptions {
                rx_ring_size: 0,
                ..o()
            },
            "rx_ring_size",
        ),
        (
            DpdkOptions {
                tx_ring_size: 0,
                ..o()
            },
            "tx_ring_size",
        ),
    ] {
        match Sock::create_with_options("net_ring3", None, d(), opts) {
            Err(Error::InvalidFlag { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // A small pool takes a ring that leaves it mbufs (here 32 of 64).
    let small = DpdkFlags {
        num_mbufs: 64,
        mbuf_cache_size: 0,
        ..d()
    };
    let opts = DpdkOptions {
        rx_ring_size: 4096,
        ..o()
    };
    drop(Sock::create_with_options("net_ring3", None, small, opts).unwrap());
}

fn eal_once() {
    // Same arguments again: fine. Different ones: refused, DPDK cannot re-initialise.
    Eal::new().init().unwrap();
    let e = Eal::new().arg("--no-hpet").init().unwrap_err();
    assert_eq!(dpdk_code(&e), Some(libc::EALREADY), "{e}");
    assert!(e.to_string().contains("one EAL per process"), "{e}");
    assert!(nethuns_dpdk::eal::is_initialized());
}

#[test]
fn dpdk_in_process() {
    Eal::new().init().expect("EAL with the default arguments");
    eal_once();
    ring_loopback();
    second_queue_and_channel();
    null_exact_counts();
    exhausted_mempool();
    concurrent_sockets();
    bad_inputs();
}
