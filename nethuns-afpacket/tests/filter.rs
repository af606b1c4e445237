//! Socket filters run in the kernel: frames they refuse never reach the ring.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use nethuns_afpacket::{AfPacketFlags, BpfInstruction, Error, Filter, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

/// Accepts test frames (EtherType 0x88B5) whose sequence number is even.
fn even_test_frames() -> Vec<BpfInstruction> {
    vec![
        BpfInstruction::new(0x28, 0, 0, 12),      // ldh [12]
        BpfInstruction::new(0x15, 0, 4, 0x88b5),  // jeq #0x88b5, else drop
        BpfInstruction::new(0x30, 0, 0, 17),      // ldb [17] (low byte of seq)
        BpfInstruction::new(0x54, 0, 0, 1),       // and #1
        BpfInstruction::new(0x15, 0, 1, 0),       // jeq #0, else drop
        BpfInstruction::new(0x06, 0, 0, 0x40000), // ret #262144
        BpfInstruction::new(0x06, 0, 0, 0),       // ret #0
    ]
}

fn only_even_arrive(test: &str, filter: Filter) {
    let Some(pair) = NetPair::for_test(test) else {
        return;
    };
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let flags = AfPacketFlags {
                filter: Some(filter),
                ..common::flags()
            };
            let sock = Sock::create(&rx_if, None, flags).unwrap();
            ready_tx.send(()).unwrap();
            let got = common::recv_test_frames(&sock, 50, Duration::from_secs(10));
            common::assert_no_more(&sock, Duration::from_millis(300));
            got
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sent: Vec<_> = (0..100).map(|i| frames::frame(i, 80)).collect();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &sent, 16, Duration::from_secs(5));
    });
    let got = receiver.join().unwrap();
    let seqs: Vec<u32> = got
        .iter()
        .map(|(b, _)| frames::seq_of(b).unwrap())
        .collect();
    assert_eq!(seqs, (0..100).step_by(2).collect::<Vec<_>>());
    for (b, _) in &got {
        frames::check(b, frames::seq_of(b).unwrap(), 80).unwrap();
    }
}

#[test]
fn classic_bpf_drops_non_matching_frames() {
    only_even_arrive("afp_bpf", Filter::Classic(even_test_frames()));
}

#[cfg(feature = "pcap")]
#[test]
fn tcpdump_expression_drops_non_matching_frames() {
    only_even_arrive(
        "afp_bpf_expr",
        Filter::Expression("ether proto 0x88b5 and ether[17] & 1 = 0".into()),
    );
}

#[test]
fn a_program_the_kernel_refuses_is_an_os_error() {
    let Some(pair) = NetPair::for_test("afp_bpf_bad") else {
        return;
    };
    pair.in_b(|| {
        // A jump past the end of the program.
        let bad = vec![
            BpfInstruction::new(0x15, 9, 9, 0),
            BpfInstruction::new(0x06, 0, 0, 0),
        ];
        let flags = AfPacketFlags {
            filter: Some(Filter::Classic(bad)),
            ..common::flags()
        };
        match Sock::create(&pair.veth_b, None, flags) {
            Err(e @ Error::Os { .. }) => {
                assert!(e.to_string().contains("BPF filter"), "{e}");
                assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
            }
            other => panic!("expected Os error, got {other:?}"),
        }
    });
}

/// IPv4 frames of protocol `proto` (6 TCP, 17 UDP) with identification `id`, under `tags`.
#[cfg(feature = "pcap")]
fn ip_frame(id: u16, proto: u8, tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = frames::DST.to_vec();
    f.extend_from_slice(&frames::SRC);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0, 0, 40]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    // Ports 1234 → 80, then zeros (sequence numbers, flags, window) up to 20 or 8 bytes.
    f.extend_from_slice(&[0x04, 0xd2, 0x00, 0x50]);
    f.resize(ip_start + 40, 0);
    if proto == 6 {
        f[ip_start + 32] = 0x50; // data offset 5
    }
    f.resize(f.len().max(60), 0);
    f
}

/// The traffic of the filter comparison: TCP and UDP, untagged, under VLAN 7 or 8 (802.1Q
/// and 802.1ad), double-tagged, and non-IP test frames.
#[cfg(feature = "pcap")]
fn filter_mix() -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut id = 0;
    for tags in [
        &[][..],
        &[(0x8100, 7)],
        &[(0x8100, 0x2008)],
        &[(0x88a8, 7)],
        &[(0x88a8, 7), (0x8100, 8)],
    ] {
        for proto in [6, 17] {
            id += 1;
            out.push(ip_frame(id, proto, tags));
        }
        id += 1;
        let t = frames::frame(id as u32, 60);
        let mut f = t[..12].to_vec();
        for (tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&t[12..]);
        out.push(f);
    }
    out
}

/// Which of `sent` a socket with `expr` receives, and which a live libpcap capture with the
/// same filter on the same interface receives (what `tcpdump -i IF EXPR` sees), as indices
/// into `sent`.
#[cfg(feature = "pcap")]
fn received_with(test: &str, expr: &str, sent: &[Vec<u8>]) -> Option<(Vec<usize>, Vec<usize>)> {
    let pair = NetPair::for_test(test)?;
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let expr = expr.to_string();
    let known = sent.to_vec();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let flags = AfPacketFlags {
                filter: Some(Filter::Expression(expr.clone())),
                ..common::flags()
            };
            let sock = Sock::create(&rx_if, None, flags).unwrap();
            let mut tcpdump = pcap::Capture::from_device(rx_if.as_str())
                .unwrap()
                .immediate_mode(true)
                .promisc(true)
                .open()
                .unwrap()
                .setnonblock()
                .unwrap();
            tcpdump.filter(&expr, true).unwrap();
            ready_tx.send(()).unwrap();
            let index = |p: &[u8]| known.iter().position(|k| k[..] == p[..]);
            let end = std::time::Instant::now() + Duration::from_millis(800);
            let (mut got, mut libpcap) = (vec![], vec![]);
            while std::time::Instant::now() < end {
                let mut idle = true;
                match sock.recv() {
                    Ok((p, _)) => {
                        idle = false;
                        got.extend(index(&p));
                    }
                    Err(Error::NoPacket) => {}
                    Err(e) => panic!("recv: {e}"),
                }
                if let Ok(p) = tcpdump.next_packet() {
                    idle = false;
                    libpcap.extend(index(p.data));
                }
                if idle {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            (got, libpcap)
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, sent, 8, Duration::from_secs(5));
    });
    Some(receiver.join().unwrap())
}

/// A tcpdump expression selects exactly what `tcpdump -i` (a live libpcap capture) selects.
/// The kernel has taken the outer tag out of the frame before a socket filter runs, so the
/// program is compiled for the live interface: for expressions that test VLANs this is also
/// what libpcap's own filter selects on the frames as they were on the wire. Expressions that
/// do not (`tcp`) match single-tagged frames by what is under the tag on a live Linux capture,
/// on the wire they do not: there the live capture is the reference.
#[cfg(feature = "pcap")]
#[test]
fn tcpdump_expressions_select_what_tcpdump_selects() {
    let sent = filter_mix();
    for (i, (expr, as_on_the_wire)) in [
        ("vlan and tcp", true),
        ("vlan 7", true),
        ("vlan 7 and udp", true),
        ("not vlan", true),
        ("tcp", false),
    ]
    .into_iter()
    .enumerate()
    {
        let Some((got, tcpdump)) = received_with(&format!("afp_bpf_vlan{i}"), expr, &sent) else {
            return;
        };
        assert_eq!(
            got, tcpdump,
            "{expr:?}: AF_PACKET vs a live libpcap capture"
        );
        let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
        let prog = dead.compile(expr, true).unwrap();
        let offline: Vec<usize> = (0..sent.len()).filter(|&i| prog.filter(&sent[i])).collect();
        if as_on_the_wire {
            assert_eq!(
                got, offline,
                "{expr:?}: vs libpcap's filter on the wire frames"
            );
        } else {
            // The frames the live capture adds: single-tagged ones.
            assert!(offline.iter().all(|i| got.contains(i)), "{expr:?}");
            assert!(
                got.iter()
                    .filter(|i| !offline.contains(i))
                    .all(|&i| nethuns_afpacket::frame::outer_vlan(&sent[i]).is_some()),
                "{expr:?}"
            );
        }
        assert!(!got.is_empty(), "{expr:?}");
    }
}
