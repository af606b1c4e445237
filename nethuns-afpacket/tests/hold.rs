//! Blocks go back to the kernel only when every packet from them is released: payloads held on
//! another thread keep their bytes intact while more traffic arrives (the kernel stops at their
//! block instead of overwriting it), and traffic flows again once they are dropped.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, Context, Error, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

const LEN: usize = 512;

/// Commands from the test to the receiving namespace thread.
enum Cmd {
    /// Receive this many frames and hand their tokens to the holder thread.
    Hold(usize),
    /// Receive (and drop at once) for this long; report what arrived.
    Drain(Duration),
    /// Tell the holder to verify and drop its payloads, then report blocks in use.
    Release,
    /// Receive exactly this many frames.
    Expect(usize),
}

#[test]
fn held_blocks_are_not_reused_until_released() {
    let Some(pair) = NetPair::for_test("afp_hold") else {
        return;
    };
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
    let (rep_tx, rep_rx) = mpsc::channel::<Vec<u32>>();
    // 4 blocks of one page: about 6 frames of 512 bytes each, 24 in the whole ring.
    let flags = AfPacketFlags {
        block_size: 4096,
        block_count: 4,
        frame_size: 2048,
        block_timeout_ms: 1,
        ..AfPacketFlags::default()
    };
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, flags).unwrap();
            let ctx = sock.context().clone();
            // The holder owns the held packets: it consumes tokens into payloads, checks them,
            // checks them again on request, then drops them (releasing from its own thread).
            let (hold_tx, hold_rx) = mpsc::channel::<Option<nethuns_afpacket::Token>>();
            let (hrep_tx, hrep_rx) = mpsc::channel::<Vec<u32>>();
            let holder = std::thread::spawn(move || {
                let mut held = vec![];
                while let Ok(msg) = hold_rx.recv() {
                    match msg {
                        Some(tok) => {
                            let p = ctx.packet(tok);
                            let seq = frames::seq_of(&p).unwrap();
                            frames::check(&p, seq, LEN).unwrap();
                            held.push(p);
                        }
                        None => {
                            // Verify every held payload is still intact, then release them all.
                            let seqs: Vec<u32> = held
                                .iter()
                                .map(|p| {
                                    let seq = frames::seq_of(p).expect("held frame overwritten");
                                    frames::check(p, seq, LEN).expect("held frame overwritten");
                                    seq
                                })
                                .collect();
                            held.clear();
                            hrep_tx.send(seqs).unwrap();
                        }
                    }
                }
            });
            rep_tx.send(vec![]).unwrap(); // ready
            while let Ok(cmd) = cmd_rx.recv() {
                match cmd {
                    Cmd::Hold(n) => {
                        let mut seqs = vec![];
                        let end = Instant::now() + Duration::from_secs(5);
                        while seqs.len() < n && Instant::now() < end {
                            match sock.recv_token() {
                                Ok((tok, meta)) => {
                                    assert_eq!(meta.caplen as usize, LEN);
                                    let p = tok.consume(sock.context());
                                    seqs.push(frames::seq_of(&p).unwrap());
                                    hold_tx.send(Some(p.into_token())).unwrap();
                                }
                                Err(Error::NoPacket) => {
                                    std::thread::sleep(Duration::from_micros(50))
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        seqs.push(sock.context().blocks_in_use() as u32);
                        rep_tx.send(seqs).unwrap();
                    }
                    Cmd::Drain(d) => {
                        let got = common::recv_test_frames(&sock, usize::MAX, d);
                        let mut seqs = vec![];
                        for (buf, _) in &got {
                            let seq = frames::seq_of(buf).unwrap();
                            frames::check(buf, seq, LEN).unwrap();
                            seqs.push(seq);
                        }
                        rep_tx.send(seqs).unwrap();
                    }
                    Cmd::Release => {
                        hold_tx.send(None).unwrap();
                        let mut seqs = hrep_rx.recv_timeout(Duration::from_secs(5)).unwrap();
                        seqs.push(sock.context().blocks_in_use() as u32);
                        rep_tx.send(seqs).unwrap();
                    }
                    Cmd::Expect(n) => {
                        let got = common::recv_test_frames(&sock, n, Duration::from_secs(5));
                        rep_tx
                            .send(
                                got.iter()
                                    .map(|(b, _)| frames::seq_of(b).unwrap())
                                    .collect(),
                            )
                            .unwrap();
                    }
                }
            }
            drop(hold_tx);
            holder.join().unwrap();
        })
    });
    let wait = || {
        rep_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("receiver stuck")
    };
    wait();
    let (s_tx, s_rx) = mpsc::channel::<(Vec<u32>, bool)>();
    let (a_ns, a_if) = (pair.ns_a.clone(), pair.veth_a.clone());
    let sender = std::thread::spawn(move || {
        in_netns(&a_ns, move || {
            let sock = Sock::create(&a_if, None, common::flags()).unwrap();
            while let Ok((seqs, paced)) = s_rx.recv() {
                for s in seqs {
                    while let Err(e) = sock.send(&frames::frame(s, LEN)) {
                        assert!(matches!(e, Error::NoMemory), "{e}");
                        sock.flush();
                    }
                    if paced {
                        sock.flush();
                        std::thread::sleep(Duration::from_micros(300));
                    }
                }
                sock.flush();
            }
        })
    });
    let send =
        |seqs: std::ops::Range<u32>, paced: bool| s_tx.send((seqs.collect(), paced)).unwrap();

    // 1. Six frames, held on the holder thread.
    send(0..6, false);
    cmd_tx.send(Cmd::Hold(6)).unwrap();
    let mut r = wait();
    let in_use = r.pop().unwrap();
    assert_eq!(r, (0..6).collect::<Vec<_>>());
    assert!(in_use >= 1, "held packets must hold their block");

    // 2. Ten times the ring's capacity, paced so the receiver keeps up: the kernel fills the
    //    free blocks, then must stop at the held block (dropping) rather than overwrite it.
    send(1000..1240, true);
    cmd_tx
        .send(Cmd::Drain(Duration::from_millis(1500)))
        .unwrap();
    let drained = wait();
    eprintln!("with a block held: {} of 240 frames arrived", drained.len());
    assert!(!drained.is_empty(), "free blocks must keep receiving");
    assert!(
        drained.len() < 240,
        "all 240 arrived although a block was held: {}",
        drained.len()
    );
    assert!(
        drained.windows(2).all(|w| w[0] < w[1]),
        "order: {drained:?}"
    );

    // 3. The held payloads are intact; releasing them (on the holder thread) frees every block.
    cmd_tx.send(Cmd::Release).unwrap();
    let mut r = wait();
    let in_use = r.pop().unwrap();
    assert_eq!(r, (0..6).collect::<Vec<_>>(), "held frames changed");
    assert_eq!(
        in_use, 0,
        "blocks still held after every payload was dropped"
    );

    // 4. Traffic resumes.
    std::thread::sleep(Duration::from_millis(20));
    send(2000..2020, true);
    cmd_tx.send(Cmd::Expect(20)).unwrap();
    assert_eq!(wait(), (2000..2020).collect::<Vec<_>>());

    drop(s_tx);
    drop(cmd_tx);
    sender.join().unwrap();
    receiver.join().unwrap();
}
