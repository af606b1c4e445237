//! XDP RX metadata on a veth pair: in native mode the steering program asks veth for each
//! frame's RX hash and RX timestamp (kfuncs, Linux 6.3+) and the socket reports them through
//! `Metadata::rx_hash()` / `Metadata::timestamp()`; in SKB mode there is none, and the socket
//! says why.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use nethuns_afxdp::flags::{XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
use nethuns_afxdp::{AfXdpFlags, Error, Metadata, Sock, Socket};
use nethuns_testnet::{frames, peer::RawPeer, NetPair};

/// Sends `n` UDP/IPv4 frames from a raw socket on `veth_a` and receives them on `sock`
/// (`veth_b`); returns their metadata in IP-id order.
fn udp_through(pair: &NetPair, sock: &Sock, n: u16) -> Vec<nethuns_afxdp::Meta> {
    let peer = pair.in_a(|| RawPeer::open(&pair.veth_a)).unwrap();
    for id in 0..n {
        peer.send(&frames::ipv4(id, 17, None)).unwrap();
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < n as usize && Instant::now() < deadline {
        match sock.recv() {
            Ok((p, m)) => {
                if frames::ipv4_id(&p).is_some() {
                    got.push(m);
                }
            }
            Err(Error::NoPacket) => std::thread::yield_now(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert_eq!(got.len(), n as usize, "timed out");
    got
}

fn open(pair: &NetPair, xdp_flags: u32) -> Sock {
    let flags = AfXdpFlags {
        xdp_flags,
        ..AfXdpFlags::default()
    };
    pair.in_b(|| Sock::create(&pair.veth_b, None, flags))
        .expect("AF_XDP socket on veth_b")
}

#[test]
fn native_mode_reports_rx_hash_and_timestamp() {
    let Some(pair) = NetPair::for_test("rxmeta_drv") else {
        return;
    };
    let sock = open(&pair, XDP_FLAGS_DRV_MODE);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let (major, minor) = {
        let mut it = release
            .trim()
            .split(['.', '-'])
            .map(|x| x.parse::<u32>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    if let Err(why) = sock.rx_metadata() {
        assert!(
            (major, minor) < (6, 3),
            "kernel {} has the XDP metadata kfuncs, yet: {why}",
            release.trim()
        );
        eprintln!(
            "SKIPPED rx hash check: kernel {} lacks them: {why}",
            release.trim()
        );
        return;
    }
    let metas = udp_through(&pair, &sock, 32);
    // veth hashes the flow (the same for every frame of this test: same addresses, ports).
    let hashes: Vec<Option<u32>> = metas.iter().map(|m| m.rx_hash()).collect();
    assert!(hashes.iter().all(|h| h.is_some()), "{hashes:?}");
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    // veth's RX timestamp is the skb's hardware stamp, which frames sent by software lack:
    // the program's software stamp stands in, in epoch time, from this run.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for m in &metas {
        let t = m.timestamp().expect("a timestamp on every frame");
        assert!(t <= now && now - t < 60_000_000_000, "{m:?} (now {now})");
        assert_eq!(m.rx_timestamp.or(m.xdp_timestamp), Some(t));
    }
    let ts: Vec<u64> = metas.iter().filter_map(|m| m.timestamp()).collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "stamps in arrival order: {ts:?}"
    );
    let driver = metas.iter().filter(|m| m.rx_timestamp.is_some()).count();
    eprintln!(
        "kernel {}: rx_hash {:?}; {driver} of {} frames with the driver's RX timestamp, the \
         others with the program's software stamp",
        release.trim(),
        hashes[0],
        metas.len()
    );
}

#[test]
fn skb_mode_has_no_rx_metadata_and_says_why() {
    let Some(pair) = NetPair::for_test("rxmeta_skb") else {
        return;
    };
    let sock = open(&pair, XDP_FLAGS_SKB_MODE);
    let why = sock.rx_metadata().unwrap_err();
    assert!(why.contains("native mode"), "{why}");
    for m in udp_through(&pair, &sock, 4) {
        assert_eq!((m.rx_hash(), m.timestamp()), (None, None));
    }
}
