//! The soak: many packets through one socket of a backend, then every buffer accounted for.
//!
//! The peer (a plain AF_PACKET socket on the other end of the veth pair) sends
//! [`packets`] frames of 60, 64, 512 and 1514 bytes; the socket under test receives them as
//! tokens and hands each to another thread, which checks its bytes and releases it there.
//! The socket then sends a quarter as many frames back, which the peer checks. The sender of
//! each direction keeps at most a small window in flight, so a full ring never drops a frame
//! and every frame must arrive ([`Backend::soak_window`]). At the end: the counts, the socket's statistics (nothing
//! dropped), and the backend's own accounting ([`Backend::check`]: frame
//! audit, blocks in use, mempool in use, pool buffers free) show that nothing was lost.
//! Bounded in time: a direction that stalls for [`STALL`] fails the case.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_core::{Error, Metadata, Socket};

use crate::conformance::{Backend, Verdict};
use crate::{frames, peer::RawPeer, NetPair};

/// Environment variable: how many frames the peer sends (default [`DEFAULT_PACKETS`]).
pub const PACKETS_ENV: &str = "NETHUNS_SOAK_PACKETS";
/// Frames received per backend unless [`PACKETS_ENV`] says otherwise (the full soak,
/// 1 000 000, is what `cargo xtask test` asks for).
pub const DEFAULT_PACKETS: u64 = 100_000;
/// A direction making no progress for this long fails the soak.
pub const STALL: Duration = Duration::from_secs(10);
/// Frames in flight towards the peer at most (its socket's receive buffer holds more).
const BACK_WINDOW: u64 = 64;
const SIZES: [usize; 4] = [60, 64, 512, 1514];

/// How many frames the soak sends to the socket under test.
pub fn packets() -> u64 {
    std::env::var(PACKETS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_PACKETS)
}

/// Frame `seq` of the soak.
fn frame(seq: u64) -> Vec<u8> {
    frames::frame(seq as u32, SIZES[(seq % 4) as usize])
}

/// Waits (yielding) until `f` is true; `Err` naming `what` if nothing moves for [`STALL`].
fn wait_for(what: &str, progress: &AtomicU64, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let mut last = progress.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while !f() {
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() > STALL {
            return Err(format!("{what}: no progress for {STALL:?} (at {now})"));
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// The soak case of the conformance suite (see the module docs).
pub(crate) fn soak<B: Backend>(pair: &NetPair) -> Result<Verdict, String> {
    let n = packets();
    let back = n / 4;
    let peer = pair
        .in_b(|| RawPeer::open(&pair.veth_b))
        .map_err(|e| format!("peer on {}: {e}", pair.veth_b))?;
    let start = Instant::now();
    let r = pair.in_a(|| {
        let spec = B::portspec(&pair.veth_a);
        let sock = B::S::create(&spec, B::queue(), B::flags())
            .map_err(|e| format!("create {spec}: {e}"))?;
        let ctx = sock.context().clone();
        let consumed = AtomicU64::new(0);
        let received = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let window = B::soak_window();
        let (tx, rx) = mpsc::sync_channel::<nethuns_core::Token>(2 * window as usize);
        std::thread::scope(|s| -> Result<(), String> {
            // The peer sends, keeping at most `window` frames ahead of the consumer.
            let sender = s.spawn(|| -> Result<(), String> {
                for seq in 0..n {
                    wait_for("receive", &consumed, || {
                        failed.load(Ordering::Relaxed)
                            || seq - consumed.load(Ordering::Relaxed) < window
                    })?;
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    peer.send(&frame(seq))
                        .map_err(|e| format!("peer send of frame {seq}: {e}"))?;
                }
                Ok(())
            });
            // Another thread checks each frame's bytes and releases it there.
            let (consumer_ctx, consumed_by) = (ctx.clone(), &consumed);
            let consumer = s.spawn(move || -> Result<(), String> {
                let ctx = consumer_ctx;
                let consumed = consumed_by;
                for seq in 0..n {
                    let Ok(t) = rx.recv() else {
                        return Ok(());
                    };
                    let p = t.consume(&ctx);
                    let r = frames::check(&p, seq as u32, SIZES[(seq % 4) as usize]);
                    drop(p);
                    consumed.fetch_add(1, Ordering::Relaxed);
                    r?;
                }
                Ok(())
            });
            let mut last = Instant::now();
            let mut got = 0u64;
            let mut err = None;
            while got < n {
                match sock.recv_token() {
                    Ok((t, meta)) => {
                        if meta.len() != t.size() || meta.caplen() != t.size() {
                            err = Some(format!(
                                "frame {got}: len {} caplen {} for {} bytes",
                                meta.len(),
                                meta.caplen(),
                                t.size()
                            ));
                            drop(t.consume(&ctx));
                            break;
                        }
                        if tx.send(t).is_err() {
                            break;
                        }
                        got += 1;
                        received.store(got, Ordering::Relaxed);
                        last = Instant::now();
                    }
                    Err(Error::NoPacket) | Err(Error::NoMemory) => {
                        if last.elapsed() > STALL {
                            err = Some(format!("recv: {got} of {n} frames, then nothing"));
                            break;
                        }
                        std::thread::yield_now();
                    }
                    Err(e) => {
                        err = Some(format!("recv after {got} frames: {e}"));
                        break;
                    }
                }
            }
            drop(tx);
            if err.is_some() {
                failed.store(true, Ordering::Relaxed);
            }
            let consumer = consumer
                .join()
                .map_err(|_| "consumer panicked".to_string())?;
            let sender = sender
                .join()
                .map_err(|_| "peer sender panicked".to_string())?;
            if let Some(e) = err {
                return Err(e);
            }
            consumer?;
            sender
        })?;
        // The way back: the socket sends, the peer checks (after dropping what it queued of
        // its own frames).
        peer.drain();
        let arrived = AtomicU64::new(0);
        std::thread::scope(|s| -> Result<(), String> {
            let checker = s.spawn(|| -> Result<(), String> {
                let mut seq = 0u64;
                while seq < back {
                    let Some(f) = peer.recv(STALL) else {
                        return Err(format!("peer: {seq} of {back} frames, then nothing"));
                    };
                    if !frames::is_test_frame(&f) {
                        continue;
                    }
                    frames::check(&f, seq as u32, SIZES[(seq % 4) as usize])?;
                    seq += 1;
                    arrived.store(seq, Ordering::Relaxed);
                }
                Ok(())
            });
            let mut r = Ok(());
            for seq in 0..back {
                let f = frame(seq);
                let w = wait_for("send", &arrived, || {
                    checker.is_finished() || seq - arrived.load(Ordering::Relaxed) < BACK_WINDOW
                });
                if let Err(e) = w {
                    r = Err(e);
                    break;
                }
                if checker.is_finished() {
                    break;
                }
                let since = Instant::now();
                loop {
                    match sock.send(&f) {
                        Ok(()) => break,
                        Err(Error::NoMemory) if since.elapsed() < STALL => sock.flush(),
                        Err(e) => {
                            r = Err(format!("send of frame {seq}: {e}"));
                            break;
                        }
                    }
                }
                if r.is_err() {
                    break;
                }
                if seq % 16 == 15 {
                    sock.flush();
                }
            }
            sock.flush();
            let c = checker
                .join()
                .map_err(|_| "peer checker panicked".to_string())?;
            r?;
            c
        })?;
        let st = sock.stats().map_err(|e| format!("stats: {e}"))?;
        if st.received != n || st.sent != back {
            return Err(format!(
                "stats: received {} sent {} after {n} received, {back} sent",
                st.received, st.sent
            ));
        }
        if let Some(d) = st.dropped.filter(|&d| d != 0) {
            return Err(format!("stats().dropped {d} with nothing lost"));
        }
        B::check(&sock).map_err(|e| format!("after the soak: {e}"))
    });
    r?;
    println!(
        "soak: {} {n} frames received, {back} sent, every buffer accounted for ({:.1} s)",
        B::NAME,
        start.elapsed().as_secs_f64()
    );
    Ok(Verdict::Pass)
}
