//! `nethuns-meter`: counts received packets, with the engine's drops, on any backend.
//!
//! `nethuns-meter -b af-packet -i eth0 -q 0-3 --duration 10`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Parser;
use nethuns::api::Metadata;
use nethuns::batch;
use nethuns_tools::backend::{Engine, Role};
use nethuns_tools::cli::Common;
use nethuns_tools::exit::{ToolError, EXIT_CODES_HELP};
use nethuns_tools::io::{open_all, Idle};
use nethuns_tools::report::{spawn, Kind, Report};
use nethuns_tools::wait::Backoff;
use nethuns_tools::{dispatch, signal};

/// Packets per `recv_batch`.
const BURST: usize = 32;

#[derive(Parser, Debug)]
#[command(version, about = "Count received packets and bits per second, with drops", after_help = EXIT_CODES_HELP)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Stop after this many packets in all (0: no limit).
    #[arg(short = 'c', long, default_value_t = 0)]
    count: u64,
    /// Stop after this many seconds without a packet, once packets have arrived (0: never).
    #[arg(long, default_value_t = 0.0)]
    idle: f64,
}

fn meter<S: Engine>(a: &Args) -> Result<i32, ToolError> {
    let c = &a.common;
    let queues = c.queues();
    let ports = open_all::<S>(&c.iface, &queues, &c.opts, Role::default())?;
    let report = Report::new(
        "nethuns-meter",
        Kind {
            rx: true,
            tx: false,
        },
        c,
        &queues,
    );
    let total = Arc::new(AtomicU64::new(0));
    let idle_ns = (a.idle > 0.0).then_some((a.idle * 1e9) as u64);
    let mut workers = vec![];
    for (i, mut port) in ports.into_iter().enumerate() {
        let mut w = report.worker(i);
        let (total, count) = (total.clone(), a.count);
        let start = report.start();
        workers.push(spawn(format!("meter-{i}"), move || {
            let mut idle = Backoff::new();
            let mut buf = batch::buffer::<S::Metadata, BURST>();
            while !signal::stopped() {
                let e = match port.recv_burst(&mut buf) {
                    Ok(burst) => {
                        for (payload, meta) in burst {
                            w.received(payload.len(), meta.timestamp());
                            drop(payload);
                            if count > 0 && total.fetch_add(1, Ordering::Relaxed) + 1 >= count {
                                // The rest of the burst is released uncounted.
                                signal::request_stop();
                                break;
                            }
                        }
                        port.burst_done(&mut w, &mut idle);
                        continue;
                    }
                    Err(e) => e,
                };
                if port.rx_idle(e, &mut w, &mut idle)? == Idle::Eof {
                    break;
                }
                if let (Some(limit), Some(_)) = (idle_ns, w.t.first_ns) {
                    if start.elapsed().as_nanos() as u64 - w.t.last_ns > limit {
                        break;
                    }
                }
            }
            port.finish(&mut w);
            Ok(())
        }));
    }
    Ok(report.run(workers))
}

fn main() {
    nethuns_tools::main(|a: Args| dispatch!(a.common.backend, meter(&a)))
}
