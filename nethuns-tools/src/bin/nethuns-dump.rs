//! `nethuns-dump`: captures to a savefile on any backend, like `tcpdump -w`: filter, snaplen,
//! count or duration, nanosecond timestamps, the link type of the source.
//!
//! `nethuns-dump -b af-packet -i eth0 -w out.pcap -f 'udp port 53' -c 1000`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use nethuns::api::Metadata;
use nethuns::batch;
use nethuns_tools::backend::{Engine, Role};
use nethuns_tools::cli::Common;
use nethuns_tools::exit::{ToolError, EXIT_CODES_HELP};
use nethuns_tools::io::{open_all, Idle};
use nethuns_tools::report::{spawn, Kind, Report};
use nethuns_tools::savefile::{self, Writer};
use nethuns_tools::wait::Backoff;
use nethuns_tools::{dispatch, signal};

/// Packets per `recv_batch`.
const BURST: usize = 32;

#[derive(Parser, Debug)]
#[command(version, about = "Capture packets to a savefile", after_help = EXIT_CODES_HELP)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// The savefile to write (truncated).
    #[arg(short = 'w', long)]
    write: String,
    /// Stop after this many packets in all (0: no limit).
    #[arg(short = 'c', long, default_value_t = 0)]
    count: u64,
    /// Bytes of each packet written (the original length is kept in the record).
    #[arg(short = 's', long, default_value_t = 262_144)]
    snaplen: u32,
    /// Microsecond timestamps (a classic savefile) instead of nanoseconds.
    #[arg(long)]
    micro: bool,
}

fn dump<S: Engine>(a: &Args) -> Result<i32, ToolError> {
    let c = &a.common;
    if a.snaplen == 0 {
        return Err(ToolError::Usage("--snaplen must be at least 1".into()));
    }
    let link = match c.iface.strip_prefix("file:") {
        Some(path) => savefile::file_linktype(path)?,
        None => S::interface(&c.iface)
            .and_then(|i| savefile::interface_linktype(&i))
            .unwrap_or(pcap::Linktype::ETHERNET),
    };
    let queues = c.queues();
    let ports = open_all::<S>(&c.iface, &queues, &c.opts, Role::default())?;
    let writer = Arc::new(Mutex::new(Writer::create(
        &a.write, link, !a.micro, a.snaplen,
    )?));
    let report = Report::new(
        "nethuns-dump",
        Kind {
            rx: true,
            tx: false,
        },
        c,
        &queues,
    );
    let total = Arc::new(AtomicU64::new(0));
    let mut workers = vec![];
    for (i, mut port) in ports.into_iter().enumerate() {
        let mut w = report.worker(i);
        let (total, count, writer) = (total.clone(), a.count, writer.clone());
        workers.push(spawn(format!("dump-{i}"), move || {
            let mut idle = Backoff::new();
            let mut last_flush = std::time::Instant::now();
            let mut buf = batch::buffer::<S::Metadata, BURST>();
            while !signal::stopped() {
                let e = match port.recv_burst(&mut buf) {
                    Ok(burst) => {
                        for (payload, meta) in burst {
                            if count > 0 && total.fetch_add(1, Ordering::Relaxed) >= count {
                                // The rest of the burst is released unwritten.
                                signal::request_stop();
                                break;
                            }
                            let ts = meta.timestamp().unwrap_or_else(savefile::now_ns);
                            let mut f = writer.lock().unwrap_or_else(|p| p.into_inner());
                            f.write(&payload, meta.len(), ts);
                            drop(f);
                            w.received(payload.len(), Some(ts));
                            drop(payload);
                            if count > 0 && total.load(Ordering::Relaxed) >= count {
                                signal::request_stop();
                                break;
                            }
                        }
                        port.burst_done(&mut w, &mut idle);
                        continue;
                    }
                    Err(e) => e,
                };
                if last_flush.elapsed() >= std::time::Duration::from_secs(1) {
                    last_flush = std::time::Instant::now();
                    writer.lock().unwrap_or_else(|p| p.into_inner()).flush()?;
                }
                if port.rx_idle(e, &mut w, &mut idle)? == Idle::Eof {
                    break;
                }
            }
            writer.lock().unwrap_or_else(|p| p.into_inner()).flush()?;
            port.finish(&mut w);
            Ok(())
        }));
    }
    Ok(report.run(workers))
}

fn main() {
    nethuns_tools::main(|a: Args| dispatch!(a.common.backend, dump(&a)))
}
