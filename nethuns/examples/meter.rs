//! `meter`: counts received packets and bits per second on an interface, with any backend.
//!
//! `cargo run --release --example meter -- --backend pcap --iface eth0 --duration 10`
//!
//! Prints one line per second and totals at exit (Ctrl-C, `--duration` or `--count`); with
//! `--json` the totals line is JSON, for scripts (`cargo xtask demo`, `cargo xtask bench`).

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{fmt_rate, rates, Backend};
use nethuns::api::Socket;
use nethuns::errors::Error;

#[derive(Parser, Debug)]
#[command(about = "Count received packets per second")]
struct Args {
    /// Engine.
    #[arg(long, value_enum, default_value = "pcap")]
    backend: Backend,
    /// Portspec: interface name, or the backend's port form.
    #[arg(long)]
    iface: String,
    /// Queue (backend-specific meaning; default: the backend's).
    #[arg(long)]
    queue: Option<usize>,
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Stop after this many packets (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Stop after this many seconds without a packet, once packets have arrived (0: never).
    #[arg(long, default_value_t = 0.0)]
    idle: f64,
    /// Print the totals as one JSON line.
    #[arg(long)]
    json: bool,
    /// No per-second lines.
    #[arg(long)]
    quiet: bool,
    /// Pin the receiving thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
}

fn meter<S: Socket>(flags: S::Flags, a: &Args) -> Result<(), String> {
    common::pin(a.cpu)?;
    let sock = S::create(&a.iface, a.queue, flags).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let cpu0 = common::cpu_seconds();
    // Allocations from the first packet on: steady state, after setup.
    let mut allocs_at_first = 0u64;
    let limit = (a.duration > 0.0).then(|| start + Duration::from_secs_f64(a.duration));
    let idle = (a.idle > 0.0).then(|| Duration::from_secs_f64(a.idle));
    let (mut pkts, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, start);
    let mut tick = start + Duration::from_secs(1);
    let (mut tick_pkts, mut tick_bytes) = (0u64, 0u64);
    let mut since_check = 0u32;
    let mut pkts_at_check = 0u64;
    // Counts at the first check that saw packets: the rate is measured from there.
    let mut base = (0u64, 0u64);
    // Bursts of up to 32 packets per call (`recv_batch`); what a burst leaves is released
    // when it drops.
    let mut buf = nethuns::batch::buffer::<S::Metadata, 32>();
    loop {
        match sock.recv_batch(&mut buf) {
            Ok(burst) if !burst.is_empty() => {
                for (payload, _meta) in burst {
                    pkts += 1;
                    since_check += 1;
                    bytes += payload.len() as u64;
                    if a.count > 0 && pkts >= a.count {
                        break;
                    }
                }
                if since_check < 4096 && (a.count == 0 || pkts < a.count) {
                    continue;
                }
            }
            Ok(_) => std::hint::spin_loop(),
            // A savefile (`file:PATH`) is done: report what was read.
            Err(Error::Eof) => break,
            Err(e) => return Err(format!("recv on {}: {e}", a.iface)),
        }
        // Bookkeeping every 4096 packets or when the ring is empty: not per packet.
        since_check = 0;
        let now = Instant::now();
        if pkts > pkts_at_check {
            if first.is_none() {
                first = Some(now);
                base = (pkts, bytes);
                allocs_at_first = common::allocs();
            }
            last = now;
            pkts_at_check = pkts;
        }
        if now >= tick {
            if !a.quiet {
                let (pps, bps) =
                    rates(pkts - tick_pkts, bytes - tick_bytes, Duration::from_secs(1));
                eprintln!("{}", fmt_rate(pps, bps));
            }
            tick_pkts = pkts;
            tick_bytes = bytes;
            tick += Duration::from_secs(1);
        }
        let idle_out = idle.is_some_and(|d| first.is_some() && now - last > d);
        if common::stopped()
            || limit.is_some_and(|l| now >= l)
            || (a.count > 0 && pkts >= a.count)
            || idle_out
        {
            break;
        }
    }
    let steady_allocs = common::allocs().saturating_sub(allocs_at_first);
    let cpu = common::cpu_seconds() - cpu0;
    let active = first
        .map(|f| last.saturating_duration_since(f))
        .unwrap_or_default();
    let (pps, bps) = rates(pkts - base.0, bytes - base.1, active);
    // Drops are reported, never hidden: what the engine lost before `recv` could see it.
    let dropped = sock.stats().ok().and_then(|s| s.dropped);
    let dropped_json = dropped.map_or("null".to_string(), |d| d.to_string());
    if a.json {
        println!(
            "{{\"packets\":{pkts},\"bytes\":{bytes},\"seconds\":{:.6},\"pps\":{pps:.1},\"bps\":{bps:.1},\"allocs\":{steady_allocs},\"cpu\":{cpu:.3},\"dropped\":{dropped_json}}}",
            active.as_secs_f64()
        );
    } else {
        println!(
            "total: {pkts} packets, {bytes} bytes in {:.3} s: {}; dropped by the engine: {}",
            active.as_secs_f64(),
            fmt_rate(pps, bps),
            dropped.map_or("unknown".to_string(), |d| d.to_string())
        );
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    common::install_stop_handler();
    common::exit_on_error("meter", with_backend!(args.backend, meter(&args)));
}
