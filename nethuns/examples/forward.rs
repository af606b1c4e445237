//! `forward`: receives on one interface and sends every packet on another, one thread. The
//! received payload itself is handed to the sending socket (`send_payload`: zero-copy where
//! the engine can, e.g. AF_XDP with a shared UMEM, DPDK); `--copy` sends a copy (`send`).
//!
//! `cargo run --release --example forward -- --backend pcap --in eth0 --out eth1`

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{fmt_rate, rates, Backend};
use nethuns::api::Socket;
use nethuns::errors::Error;

#[derive(Parser, Debug)]
#[command(about = "Forward packets from one interface to another")]
struct Args {
    /// Engine.
    #[arg(long, value_enum, default_value = "pcap")]
    backend: Backend,
    /// Receive on this portspec.
    #[arg(long = "in")]
    input: String,
    /// Send on this portspec.
    #[arg(long = "out")]
    output: String,
    /// Stop after this many seconds (0: until Ctrl-C).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Stop after this many packets (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Packets per flush.
    #[arg(long, default_value_t = 32)]
    batch: u64,
    /// Send a copy of each packet (`send`) instead of the packet itself (`send_payload`).
    #[arg(long)]
    copy: bool,
    /// Print the totals as one JSON line.
    #[arg(long)]
    json: bool,
}

fn forward<S: Socket>(flags: S::Flags, a: &Args) -> Result<(), String> {
    let rx = S::create(&a.input, None, flags.clone()).map_err(|e| e.to_string())?;
    let tx = S::create(&a.output, None, flags).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let limit = (a.duration > 0.0).then(|| start + Duration::from_secs_f64(a.duration));
    let (mut pkts, mut bytes, mut dropped, mut pending) = (0u64, 0u64, 0u64, 0u64);
    loop {
        match rx.recv() {
            Ok((p, _)) => {
                let len = p.len() as u64;
                let r = if a.copy {
                    tx.send(&p)
                } else {
                    tx.send_payload(p).map_err(|u| u.error)
                };
                match r {
                    Ok(()) => {
                        pkts += 1;
                        bytes += len;
                        pending += 1;
                    }
                    Err(Error::NoMemory) | Err(Error::TooBigPacket(_)) => dropped += 1,
                    Err(e) => return Err(format!("send on {}: {e}", a.output)),
                }
                if pending < a.batch {
                    continue;
                }
            }
            Err(Error::NoPacket) => {}
            Err(e) => return Err(format!("recv on {}: {e}", a.input)),
        }
        if pending > 0 {
            tx.flush();
            pending = 0;
        }
        if common::stopped()
            || limit.is_some_and(|l| Instant::now() >= l)
            || (a.count > 0 && pkts >= a.count)
        {
            break;
        }
    }
    tx.flush();
    let el = start.elapsed();
    let (pps, bps) = rates(pkts, bytes, el);
    if a.json {
        println!("{{\"packets\":{pkts},\"bytes\":{bytes},\"dropped\":{dropped},\"seconds\":{:.6},\"pps\":{pps:.1}}}", el.as_secs_f64());
    } else {
        println!(
            "forwarded {pkts} packets ({dropped} dropped) in {:.3} s: {}",
            el.as_secs_f64(),
            fmt_rate(pps, bps)
        );
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    common::install_stop_handler();
    common::exit_on_error("forward", with_backend!(args.backend, forward(&args)));
}
