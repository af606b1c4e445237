//! The per-frame cost of multi-buffer frames against single-buffer frames on AF_XDP, in user
//! space: frames already waiting on the RX ring are received and dropped (`recv`, payload
//! drop, the fill-ring refills), and the time per frame is taken over the whole drain.
//!
//! One socket on an MTU 9000 veth (SKB mode, `frame_size` 2048: 1792 bytes of a frame per
//! UMEM frame) receives frames of 1790 bytes (one buffer, handed out in place), 1800 bytes
//! (two buffers, linearised into a jumbo buffer) and 9014 bytes (six buffers), once dropping
//! each payload unread and once reading every cache line of it (a linearised frame has been
//! read once already, by the copy; a frame handed out in place is read first by the user, from
//! the cache of the core the kernel wrote it on). Needs root (a
//! network namespace pair); prints a table. `cargo bench -p nethuns-afxdp --bench multibuf`.

use std::time::{Duration, Instant};

use nethuns_afxdp::{AfXdpFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, peer::RawPeer, NetPair, PairOptions};

const FRAMES: usize = 256;
const ROUNDS: usize = 41;

/// Median nanoseconds per frame to drain `FRAMES` waiting frames of `len` bytes.
fn per_frame_ns(
    pair: &NetPair,
    sock: &Sock,
    peer: &RawPeer,
    len: usize,
    touch: bool,
) -> (f64, f64, f64, usize) {
    let batch: Vec<Vec<u8>> = (0..FRAMES as u32).map(|i| frames::frame(i, len)).collect();
    let mut ns = vec![];
    for _ in 0..ROUNDS {
        for f in &batch {
            peer.send(f).unwrap();
        }
        // Let the kernel put every frame on the RX ring before the clock starts.
        std::thread::sleep(Duration::from_millis(20));
        let (mut got, mut spins) = (0, 0u64);
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_millis(500);
        while got < FRAMES && Instant::now() < deadline {
            match sock.recv() {
                Ok((p, _)) => {
                    assert_eq!(p.len(), len);
                    if touch {
                        // Read every cache line, as a program looking at the frame would.
                        std::hint::black_box(p.iter().step_by(64).fold(0u8, |a, b| a ^ b));
                    }
                    got += 1;
                }
                Err(Error::NoPacket) => spins += 1,
                Err(e) => panic!("recv: {e}"),
            }
        }
        let dt = t0.elapsed();
        // Only rounds that found every frame waiting measure the receive path alone.
        if spins == 0 && got == FRAMES {
            ns.push(dt.as_nanos() as f64 / FRAMES as f64);
        }
    }
    let _ = pair;
    ns.sort_by(|a, b| a.total_cmp(b));
    if ns.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN, 0);
    }
    (ns[ns.len() / 2], ns[0], ns[ns.len() - 1], ns.len())
}

fn main() {
    if !nethuns_testnet::is_root() {
        eprintln!("multibuf bench: needs root (network namespaces); skipped");
        return;
    }
    let pair = NetPair::new(
        "benchmultibuf",
        PairOptions {
            mtu: 9000,
            ..Default::default()
        },
    )
    .expect("netns pair");
    let sock = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .expect("AF_XDP socket");
    let peer = pair.in_b(|| RawPeer::open(&pair.veth_b)).unwrap();
    println!(
        "AF_XDP receive, SKB mode, frame_size 2048, {FRAMES} waiting frames, median of \
         {ROUNDS} rounds (min–max):"
    );
    println!(
        "| frame | UMEM frames | ns/frame, payload dropped unread | ns/frame, every cache \
         line read | rounds with every frame waiting |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for (len, segs) in [(1790, 1), (1800, 2), (9014, 6)] {
        let (med, lo, hi, n) = per_frame_ns(&pair, &sock, &peer, len, false);
        let (tmed, tlo, thi, tn) = per_frame_ns(&pair, &sock, &peer, len, true);
        println!(
            "| {len} | {segs} | {med:.0} ({lo:.0}–{hi:.0}) | {tmed:.0} ({tlo:.0}–{thi:.0}) | {n}, {tn} of {ROUNDS} |"
        );
    }
}
