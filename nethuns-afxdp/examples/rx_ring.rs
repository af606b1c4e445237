//! `rx_ring`: what an AF_XDP socket in generic (SKB) mode receives of a 64-byte flood on a
//! veth pair, for each RX ring size given, in interleaved rounds (the ratio received / offered
//! per round, then the median and the range per size, and where the rest died: the RX ring
//! full or no fill frame). Needs root (it makes its own namespaces and veth pair).
//!
//! ```text
//! cargo run --release -p nethuns-afxdp --example rx_ring -- [ROUNDS] [SECONDS] [RX_SIZE…]
//! ```
//! Defaults: 5 rounds of 1 s, RX ring sizes 2048 and 4096. The UMEM holds at least the
//! default's frames, and `tx_size` + the RX ring's rounded up to a power of two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nethuns_afxdp::{AfXdpFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

fn flags(rx_size: u32) -> AfXdpFlags {
    let d = AfXdpFlags::default();
    AfXdpFlags {
        rx_size,
        num_frames: (d.tx_size + rx_size).next_power_of_two().max(d.num_frames),
        ..d
    }
}

/// One round: (offered, received, RX ring full, fill ring empty).
fn round(pair: &NetPair, rx_size: u32, secs: f64) -> Result<(u64, u64, u64, u64), String> {
    let rx = pair
        .in_b(|| Sock::create(&pair.veth_b, None, flags(rx_size)))
        .map_err(|e| format!("receiver: {e}"))?;
    let tx = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .map_err(|e| format!("sender: {e}"))?;
    let stop = AtomicBool::new(false);
    let frames: Vec<Vec<u8>> = (0..32).map(|i| frames::frame(i, 64)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let (stop, refs) = (&stop, &refs);
    let (offered, got) = std::thread::scope(|s| {
        let sender = s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match tx.send_batch(refs) {
                    Ok(_) | Err(Error::NoMemory) => {}
                    Err(e) => return Err(format!("send_batch: {e}")),
                }
            }
            tx.flush();
            Ok(tx.stats().map_err(|e| e.to_string())?.sent)
        });
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut got = 0u64;
        let mut buf = nethuns_afxdp::batch::buffer::<nethuns_afxdp::Meta, 64>();
        while Instant::now() < end {
            match rx.recv_batch(&mut buf) {
                Ok(b) => got += b.len() as u64,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return (sender.join().unwrap(), Err(format!("recv_batch: {e}")));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let offered = sender.join().unwrap();
        // What was on its way when the sender stopped.
        let drain = Instant::now() + Duration::from_millis(200);
        while Instant::now() < drain {
            if let Ok(b) = rx.recv_batch(&mut buf) {
                got += b.len() as u64;
            }
        }
        (offered, Ok(got))
    });
    let (offered, got) = (offered?, got?);
    let n = rx.native_stats().map_err(|e| e.to_string())?;
    Ok((offered, got, n.rx_ring_full, n.rx_dropped))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let secs: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let mut sizes: Vec<u32> = args.iter().skip(2).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![2048, 4096];
    }
    let pair = match NetPair::new("rxring", Default::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rx_ring: a veth pair is needed (run as root): {e}");
            std::process::exit(1);
        }
    };
    let mut ratios = vec![vec![]; sizes.len()];
    for r in 0..rounds {
        for (i, &size) in sizes.iter().enumerate() {
            match round(&pair, size, secs) {
                Ok((offered, got, full, empty)) => {
                    let ratio = got as f64 / offered.max(1) as f64;
                    println!(
                        "round {r} rx_size {size}: offered {offered} received {got} ratio \
                         {ratio:.3} (RX ring full {full}, fill ring empty {empty})"
                    );
                    ratios[i].push(ratio);
                }
                Err(e) => {
                    eprintln!("rx_ring: round {r} rx_size {size}: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    for (i, size) in sizes.iter().enumerate() {
        let v = &mut ratios[i];
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "rx_size {size}: received/offered median {:.3}, range {lo:.3}–{hi:.3} ({} rounds)",
            median(v),
            v.len()
        );
    }
}
