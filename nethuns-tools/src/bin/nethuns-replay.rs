//! `nethuns-replay`: sends a savefile out of any backend, at its recorded pace (`--speed` to
//! scale it), at `--pps`/`--mbps`, or at top speed, `--loop N` times.
//!
//! `nethuns-replay -b af-xdp -i eth0 -r trace.pcap --pps 100000 --loop 10`

use std::time::{Duration, Instant};

use clap::Parser;
use nethuns_tools::backend::{Engine, Role};
use nethuns_tools::cli::Common;
use nethuns_tools::exit::{ToolError, EXIT_CODES_HELP};
use nethuns_tools::io::{open_all, TxBatch};
use nethuns_tools::pace::Rate;
use nethuns_tools::report::{spawn, Kind, Report};
use nethuns_tools::savefile::Reader;
use nethuns_tools::wait::{self, Backoff};
use nethuns_tools::{dispatch, signal};

#[derive(Parser, Debug)]
#[command(version, about = "Send the packets of a savefile", after_help = EXIT_CODES_HELP)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// The savefile to send (pcap, micro- or nanosecond timestamps).
    #[arg(short = 'r', long)]
    read: String,
    /// Packets per second in all, instead of the recorded pace.
    #[arg(long, conflicts_with_all = ["mbps", "top_speed"])]
    pps: Option<f64>,
    /// Megabits per second in all (frame bytes), instead of the recorded pace.
    #[arg(long, conflicts_with = "top_speed")]
    mbps: Option<f64>,
    /// As fast as the engine takes frames.
    #[arg(short = 't', long)]
    top_speed: bool,
    /// The recorded pace multiplied by this (2: twice as fast).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Times to send the file (0: until --duration or a signal).
    #[arg(short = 'l', long = "loop", default_value_t = 1)]
    loops: u64,
    /// Frames per flush at top speed.
    #[arg(long, default_value_t = 32)]
    batch: u64,
}

/// How the next packet is scheduled.
#[derive(Clone, Copy)]
enum Pace {
    Recorded { first: u64, span: u64, speed: f64 },
    Rate(Rate),
}

fn replay<S: Engine>(a: &Args) -> Result<i32, ToolError> {
    let c = &a.common;
    if !(a.speed > 0.0 && a.speed.is_finite()) {
        return Err(ToolError::Usage("--speed must be a positive number".into()));
    }
    // The file's first and last timestamps: the recorded schedule and a loop's length.
    let (first, last, packets) = {
        let mut r = Reader::open(&a.read)?;
        let (mut first, mut last, mut n) = (None, 0u64, 0u64);
        while let Some((ts, _)) = r.next_packet()? {
            first.get_or_insert(ts);
            last = ts;
            n += 1;
        }
        (first.unwrap_or(0), last, n)
    };
    if packets == 0 {
        return Err(ToolError::File(format!("{}: no packets", a.read)));
    }
    let queues = c.queues();
    let role = Role {
        tx_only: true,
        ..Role::default()
    };
    let ports = open_all::<S>(&c.iface, &queues, &c.opts, role)?;
    let report = Report::new(
        "nethuns-replay",
        Kind {
            rx: false,
            tx: true,
        },
        c,
        &queues,
    );
    let n = ports.len() as u64;
    let pace = if a.top_speed {
        Pace::Rate(Rate::Top)
    } else if a.pps.is_some() || a.mbps.is_some() {
        Pace::Rate(Rate::from_args(a.pps, a.mbps, 1.0 / n as f64))
    } else {
        // One loop lasts the file's span plus one mean gap, so the next loop keeps the pace.
        let gap = if packets > 1 {
            (last - first) / (packets - 1)
        } else {
            0
        };
        Pace::Recorded {
            first,
            span: last - first + gap,
            speed: a.speed,
        }
    };
    let mut workers = vec![];
    let start = Instant::now();
    for (i, mut port) in ports.into_iter().enumerate() {
        let mut w = report.worker(i);
        let (path, loops, batch) = (a.read.clone(), a.loops, a.batch);
        workers.push(spawn(format!("replay-{i}"), move || {
            let caps = port.sock.capabilities();
            let mut backoff = Backoff::new();
            let mut tx = TxBatch::new(batch);
            let mut k = 0u64;
            'all: while (loops == 0 || k < loops) && !signal::stopped() {
                let mut r = Reader::open(&path)?;
                let mut idx = 0u64;
                while let Some((ts, data)) = r.next_packet()? {
                    idx += 1;
                    if (idx - 1) % n != i as u64 {
                        continue;
                    }
                    let due = match pace {
                        Pace::Rate(rate) => rate.due(start, w.t.tx_packets, w.t.tx_bytes),
                        Pace::Recorded { first, span, speed } => {
                            let at = (ts.saturating_sub(first) + k * span) as f64 / speed;
                            Some(start + Duration::from_nanos(at as u64))
                        }
                    };
                    if let Some(due) = due {
                        if Instant::now() < due {
                            tx.before_wait(&port);
                            wait::until(due);
                        }
                    }
                    if signal::stopped() {
                        break 'all;
                    }
                    if caps.check_frame(data).is_err() {
                        // Larger than the link takes (a capture of GRO/TSO frames) or shorter
                        // than an Ethernet header.
                        w.t.skipped += 1;
                        continue;
                    }
                    if !port.send(data, &mut w, &mut backoff)? {
                        break 'all;
                    }
                    tx.sent(&port, &mut w, data.len());
                }
                k += 1;
            }
            tx.finish(&port, &mut w);
            Ok(())
        }));
    }
    Ok(report.run(workers))
}

fn main() {
    nethuns_tools::main(|a: Args| dispatch!(a.common.backend, replay(&a)))
}
