//! `nethuns-forward`: receives on one interface and sends every frame on another, on any
//! backend; one thread per queue, or two with the channel API (`--channel`), or both
//! directions in one thread (`--bidirectional`, a bridge).
//!
//! `nethuns-forward -b af-packet -i eth0 -o eth1`
//!
//! The receiving socket never sees this host's own transmissions (`PACKET_IGNORE_OUTGOING`
//! on AF_PACKET, `pcap_setdirection(PCAP_D_IN)` on pcap; AF_XDP, DPDK and netmap receive only
//! from the wire), so two forwarders run in opposite directions do not loop.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use clap::Parser;
use nethuns::api::{NethunsPopper, NethunsPusher};
use nethuns::batch;
use nethuns::errors::Error;
use nethuns_tools::backend::{Engine, Role};
use nethuns_tools::cli::Common;
use nethuns_tools::exit::{ToolError, EXIT_CODES_HELP};
use nethuns_tools::io::{open_all, Idle, Port};
use nethuns_tools::report::{spawn, Kind, Report, Worker};
use nethuns_tools::wait::Backoff;
use nethuns_tools::{dispatch, signal};

const BATCH: usize = 32;

#[derive(Parser, Debug)]
#[command(version, about = "Forward frames from one interface to another", after_help = EXIT_CODES_HELP)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Send on this portspec (same queues as --iface).
    #[arg(short = 'o', long = "out")]
    output: String,
    /// Two threads per queue over the channel API: one receives and pushes batches of
    /// tokens, the other sends them.
    #[arg(long, conflicts_with = "bidirectional")]
    channel: bool,
    /// Forward both ways in one thread per queue (a bridge): --iface to --out and back.
    #[arg(long)]
    bidirectional: bool,
    /// Stop after forwarding this many frames in all (0: no limit).
    #[arg(short = 'c', long, default_value_t = 0)]
    count: u64,
    /// Frames per flush.
    #[arg(long, default_value_t = 32)]
    batch: u64,
    /// Copy each frame into the transmit side (`send`) instead of handing the received
    /// packet over (`send_payload`: zero-copy where the engines share memory, AF_XDP on one
    /// UMEM, DPDK mbufs; a copy otherwise).
    #[arg(long)]
    copy: bool,
    /// Channel capacity in batches of 32 (--channel).
    #[arg(long, default_value_t = 256)]
    capacity: usize,
}

/// The engine counters of the sockets of one queue: drops of the receivers, send errors of
/// the senders.
fn engine_stats<S: Engine>(rx: &[&Port<S>], tx: &[&Port<S>], w: &mut Worker) {
    let mut dropped = None::<u64>;
    for p in rx {
        if let Ok(s) = p.sock.stats() {
            if let Some(d) = s.dropped {
                dropped = Some(dropped.unwrap_or(0) + d);
            }
        }
    }
    w.t.dropped = dropped.or(w.t.dropped);
    w.t.send_errors = tx
        .iter()
        .filter_map(|p| p.sock.stats().ok())
        .map(|s| s.send_errors)
        .sum();
}

struct Limit {
    total: Arc<AtomicU64>,
    count: u64,
    /// Frames per flush.
    batch: u64,
    /// Copy each frame (`send`) instead of `send_payload`.
    copy: bool,
}

impl Limit {
    #[inline]
    fn one(&self) {
        if self.count > 0 && self.total.fetch_add(1, Relaxed) + 1 >= self.count {
            signal::request_stop();
        }
    }
}

/// Receives what is there on `rx` (up to a batch) and sends it on `tx`; `Ok(false)` when
/// nothing came (after a bounded wait on an idle single direction).
fn step<S: Engine>(
    rx: &mut Port<S>,
    tx: &mut Port<S>,
    w: &mut Worker,
    idle: &mut Backoff,
    backoff: &mut Backoff,
    limit: &Limit,
    wait: bool,
) -> Result<Option<Idle>, ToolError> {
    let caps = tx.sock.capabilities();
    let mut moved = 0u64;
    let mut buf = batch::buffer::<S::Metadata, BATCH>();
    loop {
        let e = match rx.recv_burst(&mut buf) {
            Ok(burst) => {
                for (p, _meta) in burst {
                    w.t.rx_packets += 1;
                    let len = p.len() as u64;
                    w.t.rx_bytes += len;
                    moved += 1;
                    if caps.check_frame(&p).is_err() {
                        w.t.skipped += 1;
                        continue;
                    }
                    let sent = if limit.copy {
                        tx.send(&p, w, backoff)?
                    } else {
                        tx.send_payload(p, w, backoff)?
                    };
                    if !sent {
                        return Ok(None);
                    }
                    w.sent(len as usize);
                    limit.one();
                }
                if moved < limit.batch && !signal::stopped() {
                    continue;
                }
                break;
            }
            Err(e) => e,
        };
        if moved > 0 {
            break;
        }
        if !wait {
            // A bridge polls the other direction instead of waiting here.
            return match e {
                Error::NoPacket => Ok(None),
                e => rx.rx_idle(e, w, idle).map(Some),
            };
        }
        return rx.rx_idle(e, w, idle).map(Some);
    }
    tx.sock.flush();
    idle.reset();
    Ok(Some(Idle::Again))
}

fn forward<S: Engine>(a: &Args) -> Result<i32, ToolError> {
    let c = &a.common;
    let queues = c.queues();
    let inbound = Role {
        inbound_only: true,
        ..Role::default()
    };
    let out_role = if a.bidirectional {
        inbound
    } else {
        Role {
            tx_only: true,
            ..Role::default()
        }
    };
    let rxs = open_all::<S>(&c.iface, &queues, &c.opts, inbound)?;
    let txs = open_all::<S>(&a.output, &queues, &c.opts, out_role)?;
    let report = Report::new("nethuns-forward", Kind { rx: true, tx: true }, c, &queues);
    let total = Arc::new(AtomicU64::new(0));
    let mut workers = vec![];
    for (i, (mut rx, mut tx)) in rxs.into_iter().zip(txs).enumerate() {
        let mut w = report.worker(i);
        let limit = Limit {
            total: total.clone(),
            count: a.count,
            batch: a.batch.max(1),
            copy: a.copy,
        };
        if a.channel {
            let (pusher, popper) = {
                let ctx = nethuns::api::Socket::context(&rx.sock).clone();
                let (s, r) = crossbeam_channel::bounded(a.capacity.max(1));
                let pool = nethuns::api::Context::pool_id(&ctx);
                (
                    NethunsPusher::<BATCH>::new(s, pool),
                    NethunsPopper::<_, BATCH>::new(r, ctx),
                )
            };
            let rx_counts = Arc::new([
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(u64::MAX),
            ]);
            let counts = rx_counts.clone();
            workers.push(spawn(format!("forward-rx-{i}"), move || {
                receiver(rx, pusher, &counts)
            }));
            workers.push(spawn(format!("forward-tx-{i}"), move || {
                let mut backoff = Backoff::new();
                let merge = |w: &mut Worker| {
                    w.t.rx_packets = rx_counts[0].load(Relaxed);
                    w.t.rx_bytes = rx_counts[1].load(Relaxed);
                    let d = rx_counts[2].load(Relaxed);
                    if d != u64::MAX {
                        w.t.dropped = Some(d);
                    }
                };
                loop {
                    let batch = match popper.try_pop() {
                        Ok(Some(b)) => b,
                        Ok(None) => {
                            merge(&mut w);
                            if w.idle() {
                                engine_stats::<S>(&[], &[&tx], &mut w);
                            }
                            if signal::stopped() {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_micros(50));
                            continue;
                        }
                        Err(_) => break,
                    };
                    let caps = tx.sock.capabilities();
                    for p in batch {
                        let len = p.len() as u64;
                        if caps.check_frame(&p).is_err() {
                            w.t.skipped += 1;
                            continue;
                        }
                        let sent = if limit.copy {
                            tx.send(&p, &mut w, &mut backoff)?
                        } else {
                            tx.send_payload(p, &mut w, &mut backoff)?
                        };
                        if sent {
                            w.sent(len as usize);
                            limit.one();
                        }
                    }
                    tx.sock.flush();
                    merge(&mut w);
                    if w.tick() {
                        engine_stats::<S>(&[], &[&tx], &mut w);
                    }
                    if signal::stopped() {
                        break;
                    }
                }
                tx.sock.flush();
                merge(&mut w);
                engine_stats::<S>(&[], &[&tx], &mut w);
                w.finish();
                Ok(())
            }));
            continue;
        }
        let both = a.bidirectional;
        workers.push(spawn(format!("forward-{i}"), move || {
            let (mut idle, mut idle2) = (Backoff::new(), Backoff::new());
            let mut backoff = Backoff::new();
            while !signal::stopped() {
                let r = step(
                    &mut rx,
                    &mut tx,
                    &mut w,
                    &mut idle,
                    &mut backoff,
                    &limit,
                    !both,
                )?;
                if r == Some(Idle::Eof) {
                    break;
                }
                if both {
                    let r2 = step(
                        &mut tx,
                        &mut rx,
                        &mut w,
                        &mut idle2,
                        &mut backoff,
                        &limit,
                        false,
                    )?;
                    if r.is_none() && r2.is_none() {
                        idle.wait();
                    }
                }
                if w.tick() {
                    if both {
                        engine_stats(&[&rx, &tx], &[&rx, &tx], &mut w);
                    } else {
                        engine_stats(&[&rx], &[&tx], &mut w);
                    }
                }
            }
            tx.sock.flush();
            if both {
                rx.sock.flush();
                engine_stats(&[&rx, &tx], &[&rx, &tx], &mut w);
            } else {
                engine_stats(&[&rx], &[&tx], &mut w);
            }
            w.finish();
            Ok(())
        }));
    }
    Ok(report.run(workers))
}

/// The receiving thread of `--channel`: tokens into batches into the channel.
fn receiver<S: Engine>(
    rx: Port<S>,
    mut pusher: NethunsPusher<BATCH>,
    counts: &[AtomicU64; 3],
) -> Result<(), ToolError> {
    let mut w_idle = Backoff::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last_stats = std::time::Instant::now();
    let mut buf = batch::buffer::<S::Metadata, BATCH>();
    while !signal::stopped() {
        match rx.recv_burst(&mut buf) {
            Ok(mut burst) => {
                bytes += burst.bytes();
                n += burst.len() as u64;
                if pusher.push_received(&mut burst).is_err() {
                    break;
                }
                w_idle.reset();
            }
            Err(Error::NoPacket) | Err(Error::NoMemory) => {
                // Hand over what we hold, and let the sending thread catch up.
                if pusher.flush().is_err() {
                    break;
                }
                w_idle.wait();
            }
            Err(Error::Eof) => break,
            Err(Error::InterfaceDown(_)) => std::thread::sleep(nethuns_tools::wait::STEP),
            Err(e) => {
                return Err(ToolError::from_run(
                    &format!("receive on {}", rx.portspec),
                    e,
                ))
            }
        }
        counts[0].store(n, Relaxed);
        counts[1].store(bytes, Relaxed);
        if last_stats.elapsed() >= std::time::Duration::from_millis(100) {
            last_stats = std::time::Instant::now();
            if let Ok(Some(d)) = rx.sock.stats().map(|s| s.dropped) {
                counts[2].store(d, Relaxed);
            }
        }
    }
    let _ = pusher.flush();
    counts[0].store(n, Relaxed);
    counts[1].store(bytes, Relaxed);
    if let Ok(Some(d)) = rx.sock.stats().map(|s| s.dropped) {
        counts[2].store(d, Relaxed);
    }
    Ok(())
}

fn main() {
    nethuns_tools::main(|a: Args| dispatch!(a.common.backend, forward(&a)))
}
