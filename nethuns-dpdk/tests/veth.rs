//! DPDK over a veth pair between two network namespaces: `net_af_packet` and `net_af_xdp`
//! virtual devices on one end, a plain AF_PACKET raw socket (libc) as the peer on the other.
//!
//! One EAL per process: all cases run inside ONE #[test] (this file is its own process).
//! The vdevs are probed from a thread inside namespace a, so their kernel sockets live there.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nethuns_dpdk::{DpdkFlags, Eal, Error, Meta, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

const N: u32 = 200;

fn size_of_frame(i: u32) -> usize {
    [60usize, 64, 128, 256, 1000, 1514][i as usize % 6]
}

/// A raw AF_PACKET socket bound to `iface` of the calling thread's namespace.
fn raw_socket(iface: &str) -> OwnedFd {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(iface).unwrap();
    // SAFETY: valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex > 0, "no interface {iface}");
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: valid option value of the given size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    // Room for every test frame before the test reads them (root: SO_RCVBUFFORCE).
    let size: libc::c_int = 8 << 20;
    // SAFETY: valid option value of the given size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    fd
}

fn raw_send(fd: &OwnedFd, buf: &[u8]) {
    // SAFETY: buf is valid for len bytes; the socket is bound to its interface.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    assert_eq!(
        n,
        buf.len() as isize,
        "send: {}",
        std::io::Error::last_os_error()
    );
}

/// Receives incoming test frames on the raw socket until `n` arrived or 10 s passed.
fn raw_recv_n(fd: &OwnedFd, n: usize) -> Vec<Vec<u8>> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while got.len() < n && Instant::now() < end {
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: buf and sll are valid for the sizes passed.
        let r = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if r < 0 {
            continue; // timeout tick
        }
        let f = &buf[..r as usize];
        if sll.sll_pkttype != libc::PACKET_OUTGOING && frames::is_test_frame(f) {
            got.push(f.to_vec());
        }
    }
    got
}

/// Receives `n` test frames on the DPDK socket (bounded in time), skipping other traffic.
fn dpdk_recv_n(sock: &Sock, n: usize) -> Vec<Vec<u8>> {
    dpdk_recv_meta(sock, n)
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

/// As `dpdk_recv_n`, with each frame's metadata.
fn dpdk_recv_meta(sock: &Sock, n: usize) -> Vec<(Vec<u8>, Meta)> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        match sock.recv() {
            Ok((p, meta)) => {
                assert_eq!(meta.len as usize, p.len());
                assert_eq!(meta.port, sock.port_id());
                assert_eq!(meta.queue, 0);
                if sock.has_rx_timestamp() {
                    assert!(meta.timestamp.is_some(), "{meta:?}");
                }
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

/// Frames from the raw peer in b to DPDK in a, then DPDK in a to the raw peer in b.
fn both_directions(pair: &NetPair, spec: &str, what: &str) {
    let spec = spec.to_owned();
    let sock = pair
        .in_a(move || Sock::create(&spec, Some(0), DpdkFlags::default()))
        .unwrap_or_else(|e| panic!("{what}: create: {e}"));
    let peer = pair.in_b(|| raw_socket(&pair.veth_b));

    // b -> a (raw send, DPDK recv), paced in bursts so no queue overflows
    for i in 0..N {
        raw_send(&peer, &frames::frame(i, size_of_frame(i)));
        if i % 32 == 31 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let got = dpdk_recv_n(&sock, N as usize);
    check_all(&got, &format!("{what} receive"));

    // a -> b (DPDK send + flush, raw recv)
    for i in 0..N {
        sock.send(&frames::frame(i, size_of_frame(i))).unwrap();
        if i % 32 == 31 {
            sock.flush();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sock.flush();
    let got = raw_recv_n(&peer, N as usize);
    let st = sock.stats().unwrap();
    assert_eq!(st.tx_dropped, 0, "{what}: {st:?}");
    check_all(&got, &format!("{what} send"));
    assert!(st.opackets >= u64::from(N), "{what}: {st:?}");

    // Promiscuous mode switched on by the socket is switched off when it goes.
    drop(sock);
    let link = pair.ip_a(&["-o", "link", "show", &pair.veth_a]).unwrap();
    assert!(
        !link.contains("PROMISC"),
        "{what}: left promiscuous: {link}"
    );
}

/// A VLAN-tagged test frame: the receiving kernel moves the tag out of the data, and the
/// af_packet driver reports it in the mbuf (RX_VLAN | RX_VLAN_STRIPPED), so in the metadata.
fn vlan_metadata(pair: &NetPair, strip: bool) {
    let spec = format!("net_af_packet2,iface={}", pair.veth_a);
    let flags = DpdkFlags {
        vlan_strip: strip,
        ..DpdkFlags::default()
    };
    let sock = pair.in_a(move || Sock::create(&spec, None, flags)).unwrap();
    let peer = pair.in_b(|| raw_socket(&pair.veth_b));
    let inner = frames::frame(3, 100);
    let mut tagged = inner[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]); // TPID, PCP 0 / VID 42
    tagged.extend_from_slice(&inner[12..]);
    raw_send(&peer, &tagged);
    let got = dpdk_recv_meta(&sock, 1);
    assert_eq!(got.len(), 1, "tagged frame not received (strip={strip})");
    let (data, meta) = &got[0];
    assert_eq!(meta.vlan_tci, Some(42), "strip={strip}: {meta:?}");
    if strip {
        frames::check(data, 3, 100).unwrap();
    } else {
        assert_eq!(
            data, &tagged,
            "the driver puts the tag back without vlan_strip"
        );
    }
}

/// net_tap makes a kernel tap interface in the probing thread's namespace: DPDK sends into it,
/// a raw socket on the tap reads; the raw socket writes, DPDK receives.
fn tap(pair: &NetPair) {
    let (sock, peer) = pair.in_a(|| {
        let sock = Sock::create("net_tap0,iface=nhdtap0", None, DpdkFlags::default()).unwrap();
        // The PMD brings the tap up at start; the raw socket binds in the same namespace.
        (sock, raw_socket("nhdtap0"))
    });
    assert_eq!(sock.port_info().driver, "net_tap");
    for i in 0..N {
        sock.send(&frames::frame(i, size_of_frame(i))).unwrap();
    }
    sock.flush();
    let got = raw_recv_n(&peer, N as usize);
    check_all(&got, "net_tap send");
    for i in 0..N {
        raw_send(&peer, &frames::frame(i, size_of_frame(i)));
    }
    let got = dpdk_recv_n(&sock, N as usize);
    check_all(&got, "net_tap receive");
}

#[test]
fn dpdk_over_veth() {
    let Some(pair) = NetPair::for_test("dpdk_over_veth") else {
        return;
    };
    Eal::new().init().expect("EAL with the default arguments");

    let a = pair.veth_a.clone();
    both_directions(&pair, &format!("net_af_packet0,iface={a}"), "net_af_packet");

    // The interface must exist in the probing thread's namespace: from outside it does not.
    let e = Sock::create(
        &format!("net_af_packet1,iface={a}"),
        None,
        DpdkFlags::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("net_af_packet1"), "{e}");

    tap(&pair);
    vlan_metadata(&pair, true);
    vlan_metadata(&pair, false);

    both_directions(
        &pair,
        &format!("net_af_xdp0,iface={a},start_queue=0"),
        "net_af_xdp",
    );
}
