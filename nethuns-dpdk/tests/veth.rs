//! DPDK-only checks over a veth pair between two network namespaces, beyond the conformance
//! suite (`conformance_af_packet`, `conformance_af_xdp`, which cover exact delivery both ways,
//! sizes, VLAN tags, pool exhaustion, deletion, link down/up and statistics): promiscuous mode
//! restored at teardown, the namespace rule of kernel-interface vdevs, `vlan_strip`, `net_tap`,
//! net_af_xdp's smallest pool.
//! The peer is nethuns-testnet's raw AF_PACKET socket.
//!
//! One EAL per process: all cases run inside ONE #[test] (this file is its own process).
//! The vdevs are probed from a thread inside namespace a, so their kernel sockets live there.

use std::time::{Duration, Instant};

use nethuns_dpdk::{DpdkFlags, DpdkOptions, Eal, Error, Meta, Sock, Socket};
use nethuns_testnet::peer::RawPeer;
use nethuns_testnet::{frames, NetPair};

const N: u32 = 200;

fn size_of_frame(i: u32) -> usize {
    [60usize, 64, 128, 256, 1000, 1514][i as usize % 6]
}

/// Receives incoming test frames on the peer until `n` arrived or 10 s passed.
fn peer_recv_n(peer: &RawPeer, n: usize) -> Vec<Vec<u8>> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        if let Some(f) = peer.recv(Duration::from_millis(100)) {
            if frames::is_test_frame(&f) {
                got.push(f);
            }
        }
    }
    got
}

/// Receives `n` test frames (tagged or not) on the DPDK socket, bounded in time.
fn dpdk_recv_meta(sock: &Sock, n: usize) -> Vec<(Vec<u8>, Meta)> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        match sock.recv() {
            Ok((p, meta)) => {
                assert_eq!(meta.len as usize, p.len());
                assert_eq!(meta.port, sock.port_id());
                if frames::is_test_frame(&p) || p.get(12..14) == Some(&[0x81, 0x00]) {
                    got.push((p.to_vec(), meta));
                }
            }
            Err(Error::NoPacket) => std::thread::sleep(Duration::from_micros(50)),
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

fn check_all(got: &[Vec<u8>], what: &str) {
    assert_eq!(got.len(), N as usize, "{what}: {} of {N} frames", got.len());
    for (i, f) in got.iter().enumerate() {
        frames::check(f, i as u32, size_of_frame(i as u32))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// Promiscuous mode switched on by the socket is switched off when it goes (with
/// net_af_packet the kernel interface would otherwise stay promiscuous), and net_af_xdp's
/// program is removed, also when the socket is dropped in another namespace.
fn promiscuous_restored(pair: &NetPair, spec: &str, what: &str) {
    let spec = spec.to_owned();
    let sock = pair
        .in_a(move || Sock::create(&spec, Some(0), DpdkFlags::default()))
        .unwrap_or_else(|e| panic!("{what}: create: {e}"));
    drop(sock);
    let link = pair.ip_a(&["-o", "link", "show", &pair.veth_a]).unwrap();
    assert!(
        !link.contains("PROMISC"),
        "{what}: left promiscuous: {link}"
    );
    // Dropped on this thread, outside the socket's namespace: the teardown still ran there
    // (libxdp removes net_af_xdp's program by ifindex, in the calling thread's namespace).
    let link = pair
        .ip_a(&["-d", "-o", "link", "show", &pair.veth_a])
        .unwrap();
    assert!(
        !link.contains("prog/xdp") && link.contains("promiscuity 0"),
        "{what}: left behind at drop: {link}"
    );
}

/// `vlan_strip`: the driver's stripped tag stays out of the data, and is in the metadata
/// (the suite checks the default, tag kept, on every backend).
fn vlan_strip(pair: &NetPair) {
    let spec = format!("net_af_packet2,iface={}", pair.veth_a);
    let opts = DpdkOptions {
        vlan_strip: true,
        ..DpdkOptions::default()
    };
    let sock = pair
        .in_a(move || Sock::create_with_options(&spec, None, DpdkFlags::default(), opts))
        .unwrap();
    let peer = pair.in_b(|| RawPeer::open(&pair.veth_b)).unwrap();
    let tagged = frames::tagged(3, 104, 42);
    peer.send(&tagged).unwrap();
    let got = dpdk_recv_meta(&sock, 1);
    assert_eq!(got.len(), 1, "tagged frame not received");
    let (data, meta) = &got[0];
    assert_eq!(meta.vlan_tci, Some(42), "{meta:?}");
    frames::check(data, 3, 100).unwrap();
}

/// net_tap makes a kernel tap interface in the probing thread's namespace: DPDK sends into it,
/// a raw socket on the tap reads; the raw socket writes, DPDK receives.
fn tap(pair: &NetPair) {
    let (sock, peer) = pair.in_a(|| {
        let sock = Sock::create("net_tap0,iface=nhdtap0", None, DpdkFlags::default()).unwrap();
        // The PMD brings the tap up at start; the raw socket binds in the same namespace.
        (sock, RawPeer::open("nhdtap0").unwrap())
    });
    assert_eq!(sock.port_info().driver, "net_tap");
    // In chunks the peer's socket buffer holds.
    let mut got = vec![];
    for chunk in (0..N).collect::<Vec<_>>().chunks(20) {
        for &i in chunk {
            sock.send(&frames::frame(i, size_of_frame(i))).unwrap();
        }
        sock.try_flush().unwrap();
        got.extend(peer_recv_n(&peer, chunk.len()));
    }
    check_all(&got, "net_tap send");
    for i in 0..N {
        peer.send(&frames::frame(i, size_of_frame(i))).unwrap();
    }
    let got: Vec<Vec<u8>> = dpdk_recv_meta(&sock, N as usize)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    check_all(&got, "net_tap receive");
    let st = sock.stats().unwrap();
    assert_eq!(
        (st.received, st.sent),
        (u64::from(N), u64::from(N)),
        "{st:?}"
    );
}

#[test]
fn dpdk_over_veth() {
    let Some(pair) = NetPair::for_test("dpdk_over_veth") else {
        return;
    };
    Eal::new().init().expect("EAL with the default arguments");

    let a = pair.veth_a.clone();
    promiscuous_restored(&pair, &format!("net_af_packet0,iface={a}"), "net_af_packet");

    // The interface must exist in the probing thread's namespace: from outside it does not.
    let e = Sock::create(
        &format!("net_af_packet1,iface={a}"),
        None,
        DpdkFlags::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("net_af_packet1"), "{e}");

    tap(&pair);
    vlan_strip(&pair);

    promiscuous_restored(
        &pair,
        &format!("net_af_xdp0,iface={a},start_queue=0"),
        "net_af_xdp",
    );
    // net_af_xdp's fill ring takes 2048 mbufs at start: a smaller pool is a flag error.
    let spec = format!("net_af_xdp0,iface={a},start_queue=0");
    let small = DpdkFlags {
        num_mbufs: 1023,
        mbuf_cache_size: 0,
        ..DpdkFlags::default()
    };
    match pair.in_a(move || Sock::create(&spec, None, small)) {
        Err(Error::InvalidFlag { field, .. }) => assert_eq!(field, "num_mbufs"),
        other => panic!("net_af_xdp with 1023 mbufs: {:?}", other.map(|_| ())),
    }

    // MTU 9000: net_af_packet gets a ring whose frames hold it, and mbufs too small for
    // that ring frame are a flag error naming the size that works; net_af_xdp cannot carry
    // it, and says what can.
    pair.ip_a(&["link", "set", &pair.veth_a, "mtu", "9000"])
        .unwrap();
    let spec = format!("net_af_packet0,iface={a}");
    match pair.in_a(move || Sock::create(&spec, None, DpdkFlags::default())) {
        Err(Error::InvalidFlag { field, reason }) => {
            assert_eq!(field, "mbuf_default_buf_size");
            assert!(reason.contains("use at least 9184"), "{reason}");
        }
        other => panic!(
            "net_af_packet, MTU 9000, 2 KiB mbufs: {:?}",
            other.map(|_| ())
        ),
    }
    let spec = format!("net_af_xdp0,iface={a},start_queue=0");
    match pair.in_a(move || Sock::create(&spec, None, DpdkFlags::default())) {
        Err(Error::Unsupported(why)) => assert!(why.contains("net_af_packet"), "{why}"),
        other => panic!("net_af_xdp, MTU 9000: {:?}", other.map(|_| ())),
    }
}
