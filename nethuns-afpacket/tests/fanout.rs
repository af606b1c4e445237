//! Fanout groups: two sockets on one interface share its traffic, every packet delivered to
//! exactly one of them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, Error, Fanout, FanoutMode, Meta, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

/// An IPv4/UDP frame of flow `flow` (source port 1000 + flow) carrying `seq`, 64 bytes.
fn udp_frame(flow: u16, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&frames::DST);
    f[6..12].copy_from_slice(&frames::SRC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes()); // 20 IP + 8 UDP + 22 payload
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&(1000 + flow).to_be_bytes());
    f[36..38].copy_from_slice(&9999u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

/// (flow, seq) of a frame made by `udp_frame`.
fn udp_id(f: &[u8]) -> Option<(u16, u32)> {
    (f.len() == 64 && f[12..14] == [8, 0] && f[23] == 17).then(|| {
        (
            u16::from_be_bytes([f[34], f[35]]) - 1000,
            u32::from_be_bytes([f[42], f[43], f[44], f[45]]),
        )
    })
}

/// Opens two members of group `fanout` in `ns` and receives from both, alternately, until
/// `want` packets that `id` recognises arrived or the deadline passed. Returns per member the
/// ids and metadata it received.
fn two_members<K: Send + 'static>(
    pair: &NetPair,
    fanout: Fanout,
    send: Vec<Vec<u8>>,
    id: fn(&[u8]) -> Option<K>,
) -> [Vec<(K, Meta)>; 2] {
    let want = send.len();
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let flags = AfPacketFlags {
                fanout: Some(fanout),
                ..common::flags()
            };
            let socks = [
                Sock::create(&rx_if, Some(0), flags.clone()).unwrap(),
                Sock::create(&rx_if, Some(1), flags).unwrap(),
            ];
            ready_tx.send(()).unwrap();
            let mut got: [Vec<(K, Meta)>; 2] = [vec![], vec![]];
            let end = Instant::now() + Duration::from_secs(10);
            let mut idle = Instant::now();
            // Until everything arrived, then 200 ms more to catch duplicates.
            while Instant::now() < end
                && (got[0].len() + got[1].len() < want
                    || idle.elapsed() < Duration::from_millis(200))
            {
                for (i, s) in socks.iter().enumerate() {
                    match s.recv() {
                        Ok((p, meta)) => {
                            if let Some(k) = id(&p) {
                                got[i].push((k, meta));
                                idle = Instant::now();
                            }
                        }
                        Err(Error::NoPacket) => {}
                        Err(e) => panic!("member {i}: {e}"),
                    }
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            got
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &send, 16, Duration::from_secs(5));
    });
    receiver.join().unwrap()
}

#[test]
fn load_balance_spreads_every_frame_once() {
    let Some(pair) = NetPair::for_test("afp_fanout_lb") else {
        return;
    };
    let sent: Vec<_> = (0..400).map(|i| frames::frame(i, 100)).collect();
    let got = two_members(
        &pair,
        Fanout::new(7, FanoutMode::LoadBalance),
        sent,
        frames::seq_of,
    );
    let (a, b) = (got[0].len(), got[1].len());
    assert!(a > 0 && b > 0, "one member got nothing: {a} / {b}");
    assert!(a.abs_diff(b) <= 40, "round robin is uneven: {a} / {b}");
    let mut all: Vec<u32> = got.iter().flatten().map(|(s, _)| *s).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..400).collect::<Vec<_>>(),
        "every frame exactly once"
    );
}

#[test]
fn hash_keeps_flows_together_and_spreads_them() {
    let Some(pair) = NetPair::for_test("afp_fanout_hash") else {
        return;
    };
    const FLOWS: u16 = 64;
    let sent: Vec<_> = (0..FLOWS as u32 * 4)
        .map(|i| udp_frame((i % FLOWS as u32) as u16, i))
        .collect();
    let got = two_members(&pair, Fanout::new(8, FanoutMode::Hash), sent, udp_id);
    let mut all: Vec<u32> = got.iter().flatten().map(|((_, s), _)| *s).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..FLOWS as u32 * 4).collect::<Vec<_>>(),
        "every frame exactly once"
    );
    let flows: [BTreeSet<u16>; 2] = [0, 1].map(|m| got[m].iter().map(|((f, _), _)| *f).collect());
    assert!(
        !flows[0].is_empty() && !flows[1].is_empty(),
        "all flows on one member"
    );
    assert!(
        flows[0].is_disjoint(&flows[1]),
        "a flow was split over members"
    );
    // The kernel's flow hash is reported and constant per flow.
    let mut hashes = BTreeMap::new();
    for ((flow, _), meta) in got.iter().flatten() {
        assert_ne!(meta.rxhash, 0, "flow {flow}: no rxhash");
        assert_eq!(*hashes.entry(*flow).or_insert(meta.rxhash), meta.rxhash);
    }
}

#[test]
fn a_group_member_needs_the_same_mode() {
    let Some(pair) = NetPair::for_test("afp_fanout_mode") else {
        return;
    };
    pair.in_b(|| {
        let f = |mode| AfPacketFlags {
            fanout: Some(Fanout::new(9, mode)),
            ..common::flags()
        };
        let _first = Sock::create(&pair.veth_b, None, f(FanoutMode::Hash)).unwrap();
        let err = Sock::create(&pair.veth_b, None, f(FanoutMode::LoadBalance)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("fanout group 9") && msg.contains(&pair.veth_b),
            "{msg}"
        );
    });
}
