//! The pcap backend against real libpcap on a veth pair between two network namespaces.

use std::time::{Duration, Instant};

use nethuns_pcap::{Context, Error, Meta, PcapFlags, Sock, Socket};
use nethuns_testnet::{frames, io, NetPair};

fn open(pair: &NetPair, side_a: bool, flags: PcapFlags) -> Sock {
    let dev = if side_a { &pair.veth_a } else { &pair.veth_b };
    let f = move || Sock::create(dev, None, flags).expect("open pcap socket");
    if side_a {
        pair.in_a(f)
    } else {
        pair.in_b(f)
    }
}

/// Receives `n` test frames (other traffic ignored) within 5 s; returns bytes and metadata.
fn recv_n(sock: &Sock, n: usize) -> Vec<(Vec<u8>, Meta)> {
    let got = io::recv_test_frames(sock, n, Duration::from_secs(5));
    assert_eq!(got.len(), n, "timed out with {} of {n} frames", got.len());
    got
}

fn send_all(sock: &Sock, seqs: impl Iterator<Item = (u32, usize)>) {
    let frames: Vec<Vec<u8>> = seqs.map(|(seq, len)| frames::frame(seq, len)).collect();
    io::send_all(sock, &frames, 0, Duration::from_secs(5));
    sock.try_flush().unwrap();
}

// Exact delivery both ways is the conformance suite's (tests/conformance.rs).

#[test]
fn snaplen_truncates_and_meta_says_so() {
    let Some(pair) = NetPair::for_test("pcap_snaplen") else {
        return;
    };
    let a = open(&pair, true, PcapFlags::default());
    let b = open(
        &pair,
        false,
        PcapFlags {
            snaplen: 100,
            ..PcapFlags::default()
        },
    );
    send_all(&a, [(1, 512)].into_iter());
    let got = recv_n(&b, 1);
    let (bytes, meta) = &got[0];
    assert_eq!((meta.caplen, meta.len), (100, 512));
    assert_eq!(bytes[..], frames::frame(1, 512)[..100]);
}

#[test]
fn filter_drops_what_it_should() {
    let Some(pair) = NetPair::for_test("pcap_filter") else {
        return;
    };
    let a = open(&pair, true, PcapFlags::default());
    // Keep test frames with an even sequence number (low byte of the 4-byte seq at 14..18).
    let b = open(
        &pair,
        false,
        PcapFlags {
            filter: Some("ether proto 0x88b5 and ether[17] & 1 = 0".into()),
            ..PcapFlags::default()
        },
    );
    send_all(&a, (0..40).map(|i| (i, 64)));
    let got = recv_n(&b, 20);
    let seqs: Vec<u32> = got
        .iter()
        .map(|(b, _)| frames::seq_of(b).unwrap())
        .collect();
    assert_eq!(seqs, (0..40).step_by(2).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        matches!(b.recv(), Err(Error::NoPacket)),
        "odd frames must be filtered"
    );
}

#[test]
fn bad_filter_is_a_pcap_error() {
    let Some(pair) = NetPair::for_test("pcap_badfilter") else {
        return;
    };
    let dev = pair.veth_a.clone();
    let err = pair
        .in_a(move || {
            Sock::create(
                &dev,
                None,
                PcapFlags {
                    filter: Some("ether proto nonsense((".into()),
                    ..PcapFlags::default()
                },
            )
        })
        .unwrap_err();
    assert!(
        err.engine_source::<nethuns_pcap::pcap::Error>().is_some(),
        "{err}"
    );
    assert!(err.to_string().contains("nonsense"), "{err}");
}

#[test]
fn exhausted_pool_is_no_memory_and_loses_nothing() {
    let Some(pair) = NetPair::for_test("pcap_nomem") else {
        return;
    };
    let a = open(&pair, true, PcapFlags::default());
    let b = open(
        &pair,
        false,
        PcapFlags {
            buffer_count: 4,
            filter: Some("ether proto 0x88b5".into()),
            ..PcapFlags::default()
        },
    );
    send_all(&a, (0..6).map(|i| (i, 64)));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut held = Vec::new();
    while held.len() < 4 {
        assert!(Instant::now() < deadline);
        match b.recv_token() {
            Ok((t, _)) => held.push(t),
            Err(Error::NoPacket) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(matches!(b.recv_token(), Err(Error::NoMemory)));
    // Release one: the next frame (seq 4) was not lost.
    let first = held.remove(0);
    assert_eq!(frames::seq_of(&b.context().packet(first)), Some(0));
    let got = recv_n(&b, 2);
    assert_eq!(frames::seq_of(&got[0].0), Some(4));
    assert_eq!(frames::seq_of(&got[1].0), Some(5));
    for t in held {
        drop(t.consume(b.context()));
    }
    assert_eq!(b.context().free_buffers(), 4);
}

#[test]
fn too_big_packet_and_bad_arguments() {
    let Some(pair) = NetPair::for_test("pcap_toobig") else {
        return;
    };
    let a = open(
        &pair,
        true,
        PcapFlags {
            buffer_size: 256,
            ..PcapFlags::default()
        },
    );
    assert!(matches!(a.send(&[0; 257]), Err(Error::TooBigPacket(257))));
    a.send(&[0; 256]).unwrap();
    let dev = pair.veth_a.clone();
    let err = pair
        .in_a(move || Sock::create(&dev, Some(1), PcapFlags::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
}

#[test]
fn live_capture_stamps_in_nanoseconds_and_reports_its_link_type() {
    use nethuns_pcap::metadata::TsPrecision;
    use nethuns_pcap::{Metadata, PcapOptions};
    let Some(pair) = NetPair::for_test("pcap_live_ns") else {
        return;
    };
    let a = open(&pair, true, PcapFlags::default());
    let dev = pair.veth_b.clone();
    let opts = PcapOptions {
        kernel_buffer_bytes: Some(4 << 20),
        ..PcapOptions::default()
    };
    let b = pair
        .in_b(move || Sock::create_with_options(&dev, None, PcapFlags::default(), opts).unwrap());
    // libpcap on Linux stamps in nanoseconds (TPACKET_v3 frames carry tp_nsec).
    assert_eq!(b.ts_precision(), TsPrecision::Nano);
    assert_eq!(b.link_type(), nethuns_pcap::pcap::Linktype::ETHERNET);
    assert_eq!(b.savefile_format().linktype, 1);
    send_all(&a, (0..20).map(|i| (i, 64)));
    let got = recv_n(&b, 20);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let stamps: Vec<u64> = got.iter().map(|(_, m)| m.timestamp().unwrap()).collect();
    for (_, m) in &got {
        assert_eq!(m.ts_precision, TsPrecision::Nano);
        assert_eq!(m.timestamp.tv_usec as u32, m.ts_nsec / 1000);
    }
    // Stamps of this run's frames, not of another clock, and not rounded to microseconds.
    assert!(
        stamps.iter().all(|&t| t <= now && now - t < 60_000_000_000),
        "{stamps:?}"
    );
    assert!(stamps.iter().any(|t| t % 1000 != 0), "{stamps:?}");
    // Asked for microseconds, libpcap gives microseconds and the metadata says so.
    let dev = pair.veth_b.clone();
    let micro = PcapOptions {
        precision: TsPrecision::Micro,
        ..PcapOptions::default()
    };
    let c = pair
        .in_b(move || Sock::create_with_options(&dev, None, PcapFlags::default(), micro).unwrap());
    assert_eq!(c.ts_precision(), TsPrecision::Micro);
    send_all(&a, (20..21).map(|i| (i, 64)));
    let got = recv_n(&c, 1);
    assert_eq!(got[0].1.ts_precision, TsPrecision::Micro);
    assert_eq!(got[0].1.ts_nsec % 1000, 0);
    // The `any` device is Linux cooked capture, and a Dumper made for it says so.
    let any = pair.in_b(|| Sock::create("any", None, PcapFlags::default()).unwrap());
    assert_eq!(any.link_type(), nethuns_pcap::pcap::Linktype::LINUX_SLL);
    assert_eq!(any.savefile_format().linktype, 113);
    assert!(matches!(any.send(&[0; 60]), Err(Error::Unsupported(_))));
}

#[test]
fn a_9000_byte_frame_crosses_an_mtu_9000_veth_whole() {
    let opts = nethuns_testnet::PairOptions {
        mtu: 9000,
        ..Default::default()
    };
    let Some(pair) = NetPair::for_test_with("pcap_jumbo", opts) else {
        return;
    };
    // `buffer_size` bounds what `send` takes; the receive pool follows snaplen (65535).
    let flags = PcapFlags {
        buffer_size: 9018,
        ..PcapFlags::default()
    };
    let a = open(&pair, true, flags);
    let b = open(&pair, false, PcapFlags::default());
    assert_eq!(a.capabilities().max_frame, 9014);
    send_all(&a, [(1, 9014), (2, 60), (3, 9000)].into_iter());
    let got = recv_n(&b, 3);
    for ((bytes, meta), (seq, len)) in got.iter().zip([(1, 9014), (2, 60), (3, 9000)]) {
        frames::check(bytes, seq, len).unwrap();
        assert_eq!((meta.caplen, meta.len), (len as u32, len as u32));
    }
    assert!(matches!(a.send(&[0; 9015]), Err(Error::TooBigPacket(9015))));
}
