//! An AF_XDP socket shares its queue with the kernel: with `Steer::Match` it receives exactly
//! the frames it asked for while ARP and ping to the interface's address keep working; the
//! default `Steer::ExceptHost` leaves the host's own traffic to the kernel too; `Steer::All`
//! takes everything (ping fails: the test shows the difference is the program's).

use std::time::{Duration, Instant};

use nethuns_afxdp::{AfXdpFlags, AfXdpOptions, Error, Match, Sock, Socket, Steer, XdpObject};
use nethuns_testnet::peer::RawPeer;
use nethuns_testnet::{frames, run_in, NetPair};

const IP_A: &str = "10.77.0.1";
const IP_B: &str = "10.77.0.2";

fn addressed_pair(tag: &str) -> Option<NetPair> {
    let pair = NetPair::for_test(tag)?;
    pair.ip_a(&["addr", "add", &format!("{IP_A}/24"), "dev", &pair.veth_a])
        .expect("address on a");
    pair.ip_b(&["addr", "add", &format!("{IP_B}/24"), "dev", &pair.veth_b])
        .expect("address on b");
    Some(pair)
}

fn open(pair: &NetPair, steer: Steer) -> Sock {
    pair.in_a(|| {
        Sock::create_with_options(
            &pair.veth_a,
            Some(0),
            AfXdpFlags::default(),
            AfXdpOptions { steer },
        )
    })
    .unwrap_or_else(|e| panic!("AF_XDP socket on {}: {e}", pair.veth_a))
}

/// Pings a's address from b after forgetting b's ARP entry, so ARP must work too.
fn ping(pair: &NetPair) -> Result<String, String> {
    pair.ip_b(&["neigh", "flush", "dev", &pair.veth_b])?;
    run_in(
        &pair.ns_b,
        "ping",
        &["-c", "2", "-i", "0.2", "-W", "1", IP_A],
    )
}

/// Frames received within `wait` for which `pick` says `Some(id)`.
fn receive(sock: &Sock, wait: Duration, pick: impl Fn(&[u8]) -> Option<u32>) -> Vec<u32> {
    let deadline = Instant::now() + wait;
    let mut got = vec![];
    while Instant::now() < deadline {
        match nethuns_afxdp::wait::recv_timeout(sock, Some(Duration::from_millis(20))) {
            Ok((p, _)) => got.extend(pick(&p)),
            Err(Error::NoPacket) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

#[test]
fn match_udp_port_arp_and_ping_keep_working() {
    let Some(pair) = addressed_pair("steermatch") else {
        return;
    };
    let peer = pair.in_b(|| RawPeer::open(&pair.veth_b)).expect("peer");
    // frames::ipv4 frames go to UDP/TCP port 5000.
    let sock = open(
        &pair,
        Steer::Match(Match {
            ip_proto: Some(17),
            dst_port: Some(5000),
            ethertype: None,
        }),
    );
    let out = ping(&pair).unwrap_or_else(|e| panic!("ping across a filtered AF_XDP socket: {e}"));
    assert!(out.contains("2 received"), "{out}");
    for id in 0..50u16 {
        peer.send(&frames::ipv4(id, 17, None)).expect("send UDP");
        peer.send(&frames::ipv4(1000 + id, 6, None))
            .expect("send TCP");
        peer.send(&frames::frame(u32::from(id), 80))
            .expect("send 0x88b5");
    }
    let got = receive(&sock, Duration::from_millis(500), |p| {
        frames::ipv4_id(p)
            .map(u32::from)
            .or(frames::seq_of(p).map(|s| 100_000 + s))
    });
    assert_eq!(
        got,
        (0..50).collect::<Vec<u32>>(),
        "exactly the UDP/5000 frames"
    );
    // The ARP entry b learnt is a's, answered by a's kernel while the socket was open.
    let neigh = pair.ip_b(&["neigh", "show", IP_A]).unwrap_or_default();
    assert!(
        neigh.contains("REACHABLE") || neigh.contains("STALE") || neigh.contains("DELAY"),
        "ARP entry on b: {neigh}"
    );
}

#[test]
fn except_host_default_keeps_ping_and_takes_the_rest() {
    let Some(pair) = addressed_pair("steerhost") else {
        return;
    };
    let peer = pair.in_b(|| RawPeer::open(&pair.veth_b)).expect("peer");
    let sock = pair
        .in_a(|| Sock::create(&pair.veth_a, Some(0), AfXdpFlags::default()))
        .expect("AF_XDP socket with the default steering");
    let out = ping(&pair).unwrap_or_else(|e| panic!("ping across the default steering: {e}"));
    assert!(out.contains("2 received"), "{out}");
    for seq in 0..50 {
        peer.send(&frames::frame(seq, 80)).expect("send");
    }
    let got = receive(&sock, Duration::from_millis(500), frames::seq_of);
    assert_eq!(got, (0..50).collect::<Vec<u32>>(), "every non-host frame");
}

#[test]
fn all_takes_the_whole_queue() {
    let Some(pair) = addressed_pair("steerall") else {
        return;
    };
    let sock = open(&pair, Steer::All);
    assert!(
        ping(&pair).is_err(),
        "ping answered although Steer::All takes every frame (ARP included)"
    );
    let stats = sock.stats().expect("stats");
    assert!(stats.received == 0, "nothing was received with recv yet");
    drop(sock);
    // Without the socket the kernel answers again.
    let out = ping(&pair).unwrap_or_else(|e| panic!("ping after the socket closed: {e}"));
    assert!(out.contains("2 received"), "{out}");
}

#[test]
fn sockets_on_one_interface_must_agree() {
    let Some(pair) = NetPair::for_test_with(
        "steeragree",
        nethuns_testnet::PairOptions {
            queues: 2,
            ..Default::default()
        },
    ) else {
        return;
    };
    let _first = open(&pair, Steer::ExceptHost);
    let second = pair.in_a(|| {
        Sock::create_with_options(
            &pair.veth_a,
            Some(1),
            AfXdpFlags::default(),
            AfXdpOptions { steer: Steer::All },
        )
    });
    match second {
        Err(Error::InvalidFlag { field: "steer", .. }) => {}
        other => panic!(
            "a second steering on one interface: {:?}",
            other.map(|_| ())
        ),
    }
    let bad = AfXdpOptions {
        steer: Steer::Match(Match {
            ethertype: Some(0x0806),
            ip_proto: Some(17),
            dst_port: None,
        }),
    };
    match pair.in_a(|| Sock::create_with_options(&pair.veth_a, Some(1), AfXdpFlags::default(), bad))
    {
        Err(Error::InvalidFlag { field: "steer", .. }) => {}
        other => panic!("an impossible match: {:?}", other.map(|_| ())),
    }
}

/// Compiles `tests/xdp/steer_88b5.c` with clang into a temporary directory.
fn build_user_object() -> Option<std::path::PathBuf> {
    let have = std::process::Command::new("clang")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !nethuns_testnet::require("user_object", "clang (ci/install.sh installs it)", have) {
        return None;
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/xdp/steer_88b5.c");
    let dir = std::env::temp_dir().join(format!("nethuns-xdp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let out = dir.join("steer_88b5.o");
    let inc = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let o = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", &inc, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run clang");
    assert!(
        o.status.success(),
        "clang -target bpf {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Some(out)
}

/// A user's XDP object (its XSKMAP, a BTF-defined array, .rodata): the socket receives what
/// the program redirects (EtherType 0x88b5) and ping keeps working around it; bad objects are
/// refused with the file and the reason.
#[test]
fn user_object() {
    let Some(pair) = addressed_pair("steerobj") else {
        return;
    };
    let Some(obj) = build_user_object() else {
        return;
    };
    let peer = pair.in_b(|| RawPeer::open(&pair.veth_b)).expect("peer");
    let sock = open(&pair, Steer::Program(XdpObject::new(&obj)));
    let out = ping(&pair).unwrap_or_else(|e| panic!("ping across the user's program: {e}"));
    assert!(out.contains("2 received"), "{out}");
    for seq in 0..50 {
        peer.send(&frames::frame(seq, 80)).expect("send");
        peer.send(&frames::ipv4(seq as u16, 17, None))
            .expect("send");
    }
    let got = receive(&sock, Duration::from_millis(500), |p| {
        frames::seq_of(p).or(frames::ipv4_id(p).map(|i| 100_000 + u32::from(i)))
    });
    assert_eq!(got, (0..50).collect::<Vec<u32>>(), "the 0x88b5 frames only");
    drop(sock);

    let refused = |o: XdpObject, want: &str| match pair.in_a(|| {
        Sock::create_with_options(
            &pair.veth_a,
            Some(0),
            AfXdpFlags::default(),
            AfXdpOptions {
                steer: Steer::Program(o),
            },
        )
    }) {
        Err(e @ Error::InvalidFlag { field: "steer", .. }) => {
            let m = e.to_string();
            assert!(m.contains(want), "{m}");
        }
        other => panic!("{want}: {:?}", other.map(|_| ())),
    };
    refused(
        XdpObject {
            xsk_map: "redirected".into(),
            ..XdpObject::new(&obj)
        },
        "not BPF_MAP_TYPE_XSKMAP",
    );
    refused(
        XdpObject {
            program: Some("nope".into()),
            ..XdpObject::new(&obj)
        },
        "no XDP program named",
    );
    refused(XdpObject::new("/nonexistent.o"), "reading it");
    let not_elf = obj.with_extension("txt");
    std::fs::write(&not_elf, b"not an object").expect("write");
    refused(XdpObject::new(&not_elf), "parsing it");
    let _ = std::fs::remove_dir_all(obj.parent().expect("dir"));
}
