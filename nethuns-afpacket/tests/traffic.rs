//! AF_PACKET to AF_PACKET over a veth pair: exact delivery with the qdisc bypassed and the
//! default ring (plain exact delivery both ways, against a raw peer, is the conformance
//! suite's `rx_exact`/`tx_exact`), timestamps, tokens and channels across threads, `poll`.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use nethuns_afpacket::{AfPacketFlags, Context, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

const SIZES: [usize; 4] = [60, 64, 512, 1514];
const PER_SIZE: usize = 100;

fn transfer(test: &str, a_to_b: bool, flags: AfPacketFlags) {
    let Some(pair) = NetPair::for_test(test) else {
        return;
    };
    let (tx_ns, tx_if, rx_ns, rx_if) = if a_to_b {
        (
            pair.ns_a.clone(),
            pair.veth_a.clone(),
            pair.ns_b.clone(),
            pair.veth_b.clone(),
        )
    } else {
        (
            pair.ns_b.clone(),
            pair.veth_b.clone(),
            pair.ns_a.clone(),
            pair.veth_a.clone(),
        )
    };
    let total = SIZES.len() * PER_SIZE;
    let sent: Vec<Vec<u8>> = (0..total)
        .map(|i| frames::frame(i as u32, SIZES[i % SIZES.len()]))
        .collect();
    let (ready_tx, ready_rx) = mpsc::channel();
    let rx_flags = flags.clone();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, rx_flags).expect("receiver socket");
            ready_tx.send(()).unwrap();
            let got = common::recv_test_frames(&sock, total, Duration::from_secs(10));
            common::assert_no_more(&sock, Duration::from_millis(200));
            let in_use = sock.context().blocks_in_use();
            (got, in_use)
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver did not start");
    in_netns(&tx_ns, || {
        let sock = Sock::create(&tx_if, None, flags).expect("sender socket");
        common::send_all(&sock, &sent, 32, Duration::from_secs(5));
        assert_eq!(sock.pending(), 0);
        assert_eq!(sock.tx_errors().0, 0, "{:?}", sock.tx_errors());
    });
    let (got, in_use) = receiver.join().unwrap();
    assert_eq!(got.len(), total, "received {} of {total} frames", got.len());
    for (i, (buf, meta)) in got.iter().enumerate() {
        let len = SIZES[i % SIZES.len()];
        frames::check(buf, i as u32, len).unwrap();
        assert_eq!(meta.len as usize, len, "frame {i}: meta.len");
        assert_eq!(meta.caplen as usize, len, "frame {i}: meta.caplen");
        assert!(meta.sec > 0, "frame {i}: no timestamp");
        assert!(meta.nsec < 1_000_000_000, "frame {i}: nsec {}", meta.nsec);
        // veth has no hardware clock: a software stamp (the skb's, TP_STATUS_TS_SOFTWARE, or
        // taken when the ring got the frame where nobody enabled skb stamps), from this run.
        assert!(!meta.hardware_timestamp(), "frame {i}");
        let ns = nethuns_afpacket::Metadata::timestamp(meta).unwrap();
        assert!(
            ns <= now_ns() && now_ns() - ns < 60_000_000_000,
            "frame {i}: {ns}"
        );
        assert!(!meta.vlan_valid);
        assert_ne!(
            meta.status & libc::TP_STATUS_USER,
            0,
            "frame {i}: status {:#x}",
            meta.status
        );
    }
    assert_eq!(
        in_use, 0,
        "every block must be back with the kernel once payloads are dropped"
    );
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn a_to_b_with_qdisc_bypass_and_default_ring() {
    transfer(
        "afp_bypass",
        true,
        AfPacketFlags {
            qdisc_bypass: true,
            block_timeout_ms: 1,
            ..AfPacketFlags::default()
        },
    );
}

#[test]
fn timestamps_are_monotonic_enough_and_tokens_cross_threads() {
    let Some(pair) = NetPair::for_test("afp_tokens") else {
        return;
    };
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, common::flags()).unwrap();
            ready_tx.send(()).unwrap();
            let ctx = sock.context().clone();
            let (tok_tx, tok_rx) = mpsc::channel();
            // Tokens are consumed and released on another thread than the socket's.
            let consumer = std::thread::spawn(move || {
                let mut seqs = vec![];
                while let Ok((tok, meta)) = tok_rx.recv() {
                    let p = ctx.packet(tok);
                    frames::check(&p, frames::seq_of(&p).unwrap(), 128).unwrap();
                    seqs.push((frames::seq_of(&p).unwrap(), meta));
                }
                seqs
            });
            let end = std::time::Instant::now() + Duration::from_secs(10);
            let mut n = 0;
            while n < 300 && std::time::Instant::now() < end {
                match sock.recv_token() {
                    Ok((t, m)) => {
                        n += 1;
                        tok_tx.send((t, m)).unwrap();
                    }
                    Err(nethuns_afpacket::Error::NoPacket) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            drop(tok_tx);
            let seqs = consumer.join().unwrap();
            (seqs, sock.context().blocks_in_use())
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sent: Vec<_> = (0..300).map(|i| frames::frame(i, 128)).collect();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &sent, 16, Duration::from_secs(5));
    });
    let (seqs, in_use) = receiver.join().unwrap();
    assert_eq!(
        seqs.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
    for w in seqs.windows(2) {
        let t = |m: &nethuns_afpacket::Meta| m.sec as u64 * 1_000_000_000 + m.nsec as u64;
        assert!(t(&w[1].1) >= t(&w[0].1), "timestamps go back");
    }
    assert_eq!(in_use, 0);
}

#[test]
fn channel_api_moves_ring_packets_to_another_thread() {
    let Some(pair) = NetPair::for_test("afp_channel") else {
        return;
    };
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let (sock, mut pusher, popper) = Sock::create_with_channel::<8>(
                &rx_if,
                None,
                common::flags(),
                nethuns_afpacket::crossbeam_channel::bounded(64),
            )
            .unwrap();
            let ctx = sock.context().clone();
            let consumer = std::thread::spawn(move || {
                let mut seqs = vec![];
                while let Some(batch) = popper.pop() {
                    for p in batch {
                        if let Some(s) = frames::seq_of(&p) {
                            frames::check(&p, s, 200).unwrap();
                            seqs.push(s);
                        }
                    }
                }
                seqs
            });
            ready_tx.send(()).unwrap();
            let end = std::time::Instant::now() + Duration::from_secs(10);
            let mut n = 0;
            while n < 100 && std::time::Instant::now() < end {
                match sock.recv_token() {
                    Ok((t, _)) => {
                        n += 1;
                        pusher.push_token(t).unwrap();
                    }
                    Err(nethuns_afpacket::Error::NoPacket) => {
                        pusher.flush().unwrap();
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            pusher.flush().unwrap();
            drop(pusher);
            let seqs = consumer.join().unwrap();
            (seqs, ctx.blocks_in_use())
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sent: Vec<_> = (0..100).map(|i| frames::frame(i, 200)).collect();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &sent, 16, Duration::from_secs(5));
    });
    let (seqs, in_use) = receiver.join().unwrap();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
    assert_eq!(in_use, 0);
}

#[test]
fn poll_on_the_socket_wakes_when_a_block_is_ready() {
    use std::os::fd::AsRawFd;
    let Some(pair) = NetPair::for_test("afp_poll") else {
        return;
    };
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, common::flags()).unwrap();
            ready_tx.send(()).unwrap();
            let mut p = libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut p, 1, 5000) };
            assert_eq!(rc, 1, "poll timed out");
            assert_ne!(p.revents & libc::POLLIN, 0);
            let (buf, _) = sock.recv().expect("POLLIN but no packet");
            frames::seq_of(&buf)
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &[frames::frame(77, 60)], 1, Duration::from_secs(5));
    });
    assert_eq!(receiver.join().unwrap(), Some(77));
}
