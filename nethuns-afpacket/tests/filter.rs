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
