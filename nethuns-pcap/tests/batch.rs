//! `recv_batch` over libpcap's `pcap_dispatch`: the same packets, metadata and errors as
//! `recv`, in bursts; bounded by the pool.

use std::time::{Duration, Instant};

use nethuns_pcap::{batch, Dumper, Error, Meta, PcapFlags, Sock, Socket};
use nethuns_testnet::{frames, io, NetPair};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nethuns-{}-{name}.pcap", std::process::id()))
}

#[test]
fn a_savefile_in_bursts_is_every_record_then_eof() {
    let path = tmp("batch");
    let mut d = Dumper::create(&path).unwrap();
    for i in 0..70u32 {
        let f = frames::frame(i, 60 + i as usize);
        let ts = libc::timeval {
            tv_sec: 1_700_000_000 + i as libc::time_t,
            tv_usec: 7,
        };
        d.write(&f, &Meta::new(ts, f.len() as u32, f.len() as u32, None));
    }
    d.flush().unwrap();
    drop(d);
    let sock = Sock::create(
        &format!("file:{}", path.display()),
        None,
        PcapFlags::default(),
    )
    .unwrap();
    let mut buf = batch::buffer::<Meta, 32>();
    let mut seen = 0u32;
    let mut bursts = 0;
    loop {
        match sock.recv_batch(&mut buf) {
            Ok(got) => {
                bursts += 1;
                assert!(!got.is_empty());
                for (p, m) in got {
                    frames::check(&p, seen, 60 + seen as usize).unwrap();
                    assert_eq!(m.timestamp.tv_sec, 1_700_000_000 + seen as libc::time_t);
                    assert_eq!((m.len, m.caplen), (p.len() as u32, p.len() as u32));
                    seen += 1;
                }
            }
            Err(Error::Eof) => break,
            Err(e) => panic!("recv_batch: {e}"),
        }
        assert!(bursts < 100, "no end of file");
    }
    std::fs::remove_file(&path).ok();
    assert_eq!(seen, 70);
    assert!(sock.at_eof());
    assert_eq!(sock.stats().unwrap().received, 70);
    assert_eq!(
        sock.context().free_buffers(),
        PcapFlags::default().buffer_count
    );
}

#[test]
fn live_bursts_deliver_every_frame_and_stop_at_the_pool() {
    let Some(pair) = NetPair::for_test("pcap_batch") else {
        return;
    };
    let a = pair.in_a(|| Sock::create(&pair.veth_a, None, PcapFlags::default()).unwrap());
    let flags = PcapFlags {
        buffer_count: 8,
        filter: Some("ether proto 0x88b5".into()),
        ..PcapFlags::default()
    };
    let b = pair.in_b(|| Sock::create(&pair.veth_b, None, flags).unwrap());
    let frames: Vec<Vec<u8>> = (0..40).map(|i| frames::frame(i, 64 + i as usize)).collect();
    io::send_all(&a, &frames, 0, Duration::from_secs(5));
    a.try_flush().unwrap();
    let mut buf = batch::buffer::<Meta, 32>();
    let mut seen = 0u32;
    let deadline = Instant::now() + Duration::from_secs(5);
    // Hold each burst until the next one: a pool of 8 caps a burst at 8 (the held ones
    // are released when `got` is replaced).
    while seen < 40 && Instant::now() < deadline {
        match b.recv_batch(&mut buf) {
            Ok(got) if got.is_empty() => std::thread::sleep(Duration::from_millis(1)),
            Ok(got) => {
                assert!(got.len() <= 8, "a burst of {} from a pool of 8", got.len());
                let held: Vec<_> = got.collect();
                for (p, m) in &held {
                    frames::check(p, seen, 64 + seen as usize).unwrap();
                    assert_eq!(m.caplen as usize, p.len());
                    seen += 1;
                }
                if held.len() == 8 {
                    // Every buffer is held: the next burst has none.
                    let mut more = batch::buffer::<Meta, 4>();
                    assert!(matches!(b.recv_batch(&mut more), Err(Error::NoMemory)));
                }
            }
            Err(e) => panic!("recv_batch: {e}"),
        }
    }
    assert_eq!(seen, 40);
    assert_eq!(b.context().free_buffers(), 8);
    // Nothing waiting: an empty burst (as the default `fill_batch` gives).
    assert!(b.recv_batch(&mut buf).unwrap().is_empty());
}

#[test]
fn send_with_builds_in_place_and_keeps_the_size_rule() {
    let Some(pair) = NetPair::for_test("pcap_send_with") else {
        return;
    };
    let a = pair.in_a(|| Sock::create(&pair.veth_a, None, PcapFlags::default()).unwrap());
    let b = pair.in_b(|| Sock::create(&pair.veth_b, None, PcapFlags::default()).unwrap());
    for i in 0..20u32 {
        a.send_with(64 + i as usize, |f| frames::fill(f, i))
            .unwrap();
    }
    a.try_flush().unwrap();
    let got = io::recv_test_frames(&b, 20, Duration::from_secs(5));
    assert_eq!(got.len(), 20);
    for (i, (bytes, _)) in got.iter().enumerate() {
        frames::check(bytes, i as u32, 64 + i).unwrap();
    }
    assert!(matches!(
        a.send_with(13, |_| {}),
        Err(Error::TooSmallPacket(13))
    ));
    // MTU 1500: 1514 untagged, 1518 only with a tag, refused after `fill` wrote it untagged.
    assert!(matches!(
        a.send_with(1516, |f| frames::fill(f, 0)),
        Err(Error::TooBigPacket(1516))
    ));
    assert!(matches!(
        a.send_with(4000, |_| unreachable!("refused before fill")),
        Err(Error::TooBigPacket(4000))
    ));
    assert_eq!(a.stats().unwrap().sent, 20);
    // send_batch: every frame in order, stopping at the first refused one.
    let frames: Vec<Vec<u8>> = (20..30u32)
        .map(|i| frames::frame(i, 64 + i as usize))
        .collect();
    let mut refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    assert_eq!(a.send_batch(&refs).unwrap(), 10);
    let big = vec![0u8; 1600];
    refs.insert(3, &big);
    assert!(matches!(
        a.send_batch(&refs[3..]),
        Err(Error::TooBigPacket(1600))
    ));
    assert_eq!(a.send_batch(&refs[..4]).unwrap(), 3);
    let got = io::recv_test_frames(&b, 13, Duration::from_secs(5));
    let seqs: Vec<u32> = got
        .iter()
        .map(|(f, _)| frames::seq_of(f).unwrap())
        .collect();
    assert_eq!(
        seqs,
        [(20..30).collect::<Vec<u32>>(), vec![20, 21, 22]].concat()
    );
    assert_eq!(a.stats().unwrap().sent, 33);
}
