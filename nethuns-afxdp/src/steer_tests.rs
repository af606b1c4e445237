//! Tests of the steering programs: shapes, validation, and each match run in the kernel.

use super::*;

#[test]
fn jumps_land_inside_the_program() {
    let addrs = HostAddrs {
        v4: vec![Ipv4Addr::new(10, 0, 0, 1)],
        v6: vec!["fe80::1".parse().unwrap()],
    };
    let steers = [
        Steer::All,
        Steer::ExceptHost,
        Steer::Match(Match::default()),
        Steer::Match(Match {
            ip_proto: Some(17),
            dst_port: Some(53),
            ethertype: Some(0x0800),
        }),
    ];
    for s in &steers {
        let p = program(s, &addrs, Tail::Return(3));
        for (i, ins) in p.iter().enumerate() {
            let class = ins.code() & 0x07;
            if (class == 0x05 || class == 0x06) && ins.code() != 0x85 && ins.code() != 0x95 {
                let t = i as isize + 1 + ins.off() as isize;
                assert!(t > i as isize && (t as usize) < p.len(), "{s:?}: insn {i}");
            }
        }
    }
}

#[test]
fn bad_matches_are_refused() {
    let bad = [
        Match {
            ethertype: Some(0x0806),
            ip_proto: Some(6),
            dst_port: None,
        },
        Match {
            ethertype: Some(0x8100),
            ..Match::default()
        },
        Match {
            ip_proto: Some(1),
            dst_port: Some(7),
            ethertype: None,
        },
    ];
    for m in bad {
        assert!(
            matches!(m.validate(), Err(Error::InvalidFlag { field: "steer", .. })),
            "{m:?}"
        );
    }
    Match {
        ethertype: Some(0x86dd),
        ip_proto: Some(17),
        dst_port: Some(53),
    }
    .validate()
    .unwrap();
}

const TAKE: u32 = 3; // XDP_TX stands for "to the socket" in these runs

/// An Ethernet frame: optional 802.1Q tag, EtherType, then `l3`.
fn eth(vlan: bool, et: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(l3);
    f.resize(f.len().max(60), 0);
    f
}

/// An IPv4 header (IHL `ihl` words) to `dst` with protocol `proto`, fragment offset
/// `frag`, then 8 bytes of L4 with destination port `port`.
fn v4(dst: [u8; 4], proto: u8, ihl: u8, frag: u16, port: u16) -> Vec<u8> {
    let mut h = vec![0u8; 4 * ihl as usize];
    h[0] = 0x40 | ihl;
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&[10, 0, 0, 9]);
    h[16..20].copy_from_slice(&dst);
    h.extend_from_slice(&[0x30, 0x39]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

fn v6(dst: Ipv6Addr, next: u8, port: u16) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[6] = next;
    h[7] = 64;
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(&[0x30, 0x39]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

/// Loads the program of `steer` with a distinct action for taken frames and checks what
/// it does with each frame, in the kernel (`BPF_PROG_TEST_RUN`).
fn check(steer: Steer, addrs: &HostAddrs, cases: &[(&str, Vec<u8>, u32)]) {
    let insns = program(&steer, addrs, Tail::Return(TAKE as i32));
    let prog = crate::sys::load_xdp_program(&insns, 0, None)
        .unwrap_or_else(|e| panic!("{steer:?}: the verifier refused the program: {e}"));
    for (what, frame, want) in cases {
        let got = crate::sys::prog_test_run(&prog, frame).expect("BPF_PROG_TEST_RUN");
        assert_eq!(got, *want, "{steer:?}: {what}");
    }
}

#[test]
fn programs_select_exactly_in_the_kernel() {
    if !nethuns_testnet::require(
        "programs_select_exactly_in_the_kernel",
        "root (bpf(2) program load and test run)",
        nethuns_testnet::is_root(),
    ) {
        return;
    }
    let pass = XDP_PASS as u32;
    let addrs = HostAddrs {
        v4: vec![
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(192, 168, 200, 254),
        ],
        v6: vec!["2001:db8::1".parse().unwrap(), "fe80::1".parse().unwrap()],
    };
    let other6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mine6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    check(
        Steer::ExceptHost,
        &addrs,
        &[
            ("ARP", eth(false, ETH_P_ARP, &[0; 28]), pass),
            (
                "IPv4 to us",
                eth(false, 0x0800, &v4([10, 0, 0, 1], 1, 5, 0, 0)),
                pass,
            ),
            (
                "IPv4 to our second address (top bit set)",
                eth(false, 0x0800, &v4([192, 168, 200, 254], 17, 5, 0, 53)),
                pass,
            ),
            (
                "IPv4 broadcast",
                eth(false, 0x0800, &v4([255; 4], 17, 5, 0, 67)),
                pass,
            ),
            (
                "IPv4 elsewhere",
                eth(false, 0x0800, &v4([10, 0, 0, 2], 1, 5, 0, 0)),
                TAKE,
            ),
            (
                "tagged IPv4 to us",
                eth(true, 0x0800, &v4([10, 0, 0, 1], 6, 5, 0, 22)),
                pass,
            ),
            (
                "tagged IPv4 elsewhere",
                eth(true, 0x0800, &v4([10, 0, 0, 3], 6, 5, 0, 22)),
                TAKE,
            ),
            ("IPv6 to us", eth(false, 0x86dd, &v6(mine6, 6, 22)), pass),
            (
                "IPv6 elsewhere",
                eth(false, 0x86dd, &v6(other6, 17, 53)),
                TAKE,
            ),
            (
                "ICMPv6 elsewhere (ND)",
                eth(false, 0x86dd, &v6(other6, 58, 0)),
                pass,
            ),
            ("not IP", eth(false, 0x88b5, &[1; 50]), TAKE),
            (
                "truncated IPv4",
                eth(false, 0x0800, &[0x45; 10])[..24].to_vec(),
                pass,
            ),
        ],
    );
    check(
        Steer::ExceptHost,
        &HostAddrs::default(),
        &[
            (
                "IPv4, no addresses",
                eth(false, 0x0800, &v4([10, 0, 0, 1], 1, 5, 0, 0)),
                TAKE,
            ),
            ("ARP, no addresses", eth(false, ETH_P_ARP, &[0; 28]), pass),
        ],
    );
    let udp9000 = Match {
        ip_proto: Some(17),
        dst_port: Some(9000),
        ethertype: None,
    };
    check(
        Steer::Match(udp9000),
        &addrs,
        &[
            (
                "UDP 9000",
                eth(false, 0x0800, &v4([10, 0, 0, 1], 17, 5, 0, 9000)),
                TAKE,
            ),
            (
                "UDP 9000, IPv4 options",
                eth(false, 0x0800, &v4([1; 4], 17, 7, 0, 9000)),
                TAKE,
            ),
            (
                "tagged UDP 9000",
                eth(true, 0x0800, &v4([1; 4], 17, 5, 0, 9000)),
                TAKE,
            ),
            (
                "IPv6 UDP 9000",
                eth(false, 0x86dd, &v6(other6, 17, 9000)),
                TAKE,
            ),
            (
                "UDP 9001",
                eth(false, 0x0800, &v4([1; 4], 17, 5, 0, 9001)),
                pass,
            ),
            (
                "TCP 9000",
                eth(false, 0x0800, &v4([1; 4], 6, 5, 0, 9000)),
                pass,
            ),
            (
                "later fragment",
                eth(false, 0x0800, &v4([1; 4], 17, 5, 185, 9000)),
                pass,
            ),
            (
                "first fragment (more fragments)",
                eth(false, 0x0800, &v4([1; 4], 17, 5, 0x2000, 9000)),
                TAKE,
            ),
            (
                "IHL below 5",
                eth(false, 0x0800, &v4([1; 4], 17, 5, 0, 9000))
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| if i == 14 { 0x44 } else { b })
                    .collect(),
                pass,
            ),
            ("ARP", eth(false, ETH_P_ARP, &[0; 28]), pass),
            ("not IP", eth(false, 0x88b5, &[1; 50]), pass),
        ],
    );
    check(
        Steer::Match(Match {
            dst_port: Some(53),
            ..Match::default()
        }),
        &addrs,
        &[
            ("TCP 53", eth(false, 0x0800, &v4([1; 4], 6, 5, 0, 53)), TAKE),
            ("UDP 53", eth(false, 0x86dd, &v6(other6, 17, 53)), TAKE),
            (
                "SCTP 53",
                eth(false, 0x0800, &v4([1; 4], 132, 5, 0, 53)),
                pass,
            ),
        ],
    );
    check(
        Steer::Match(Match {
            ethertype: Some(0x88b5),
            ..Match::default()
        }),
        &addrs,
        &[
            ("0x88b5", eth(false, 0x88b5, &[1; 50]), TAKE),
            ("tagged 0x88b5", eth(true, 0x88b5, &[1; 50]), TAKE),
            ("IPv4", eth(false, 0x0800, &v4([1; 4], 17, 5, 0, 53)), pass),
        ],
    );
    check(
        Steer::Match(Match::default()),
        &addrs,
        &[("ARP, empty match", eth(false, ETH_P_ARP, &[0; 28]), TAKE)],
    );
}

#[test]
fn routable_ignores_link_local() {
    let ll = HostAddrs {
        v4: vec![],
        v6: vec!["fe80::1".parse().unwrap()],
    };
    assert!(!ll.routable());
    let g = HostAddrs {
        v4: vec![],
        v6: vec!["2001:db8::1".parse().unwrap()],
    };
    assert!(g.routable());
}
