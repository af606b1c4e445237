//! `raw-pcap`: the baseline for benchmarks: receive or transmit loops written directly against
//! the `pcap` crate, without nethuns, printing the same JSON totals as `meter` / `pkt-gen`.
//!
//! `raw-pcap --mode rx --iface eth0 --duration 5 --json`
//!
//! `--mode cost-rx|cost-tx --count N --polls N`: the abstraction-cost loops of `cargo xtask
//! bench --cost` (the shape of the `cost` tool and of xtask/raw/raw_common.h).

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use nethuns::pcap::pcap::{Active, Capture, Error as PcapError};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Mode {
    Rx,
    Tx,
    CostRx,
    CostTx,
}

#[derive(Parser, Debug)]
#[command(about = "Raw libpcap receive/transmit loop (benchmark baseline)")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    iface: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Stop receiving after this many idle seconds once packets arrived.
    #[arg(long, default_value_t = 1.0)]
    idle: f64,
    /// Frame size (tx).
    #[arg(long, default_value_t = 64)]
    size: usize,
    #[arg(long)]
    cpu: Option<usize>,
    #[arg(long)]
    json: bool,
    /// Cost modes: packets to receive or send.
    #[arg(long, default_value_t = 1024)]
    count: u64,
    /// cost-rx: empty polls measured after the drain.
    #[arg(long, default_value_t = 10_000)]
    polls: u64,
}

/// Receives until `n` packets came (or 100 000 empty polls in a row); returns the packets,
/// the empty polls among the calls and the bytes.
#[inline(never)]
fn cost_drain(cap: &mut Capture<Active>, n: u64) -> Result<(u64, u64, u64), String> {
    let (mut got, mut empty, mut idle, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    while got < n && idle < 100_000 {
        match cap.next_packet() {
            Ok(p) => {
                got += 1;
                idle = 0;
                bytes += p.data.len() as u64;
            }
            Err(PcapError::TimeoutExpired) => {
                empty += 1;
                idle += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((got, empty, bytes))
}

/// `polls` polls; returns the packets that came anyway (0 expected).
#[inline(never)]
fn cost_empty(cap: &mut Capture<Active>, polls: u64) -> Result<u64, String> {
    let mut late = 0;
    for _ in 0..polls {
        match cap.next_packet() {
            Ok(_) => late += 1,
            Err(PcapError::TimeoutExpired) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(late)
}

/// Sends `n` frames (the transmit loop of `--mode tx` without the clock).
#[inline(never)]
fn tx_loop(cap: &mut Capture<Active>, f: &mut [u8], n: u64) -> u64 {
    let mut sent = 0;
    while sent < n {
        common::set_seq(f, sent);
        if cap.sendpacket(&f[..]).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// The cost modes: one JSON line `{"packets":N,"drain_empty":N,"polls":N,"late":N}`.
fn cost(a: &Args, cap: &mut Capture<Active>) -> Result<(), String> {
    let (got, empty, polls, late) = if let Mode::CostTx = a.mode {
        let mut f = common::frame(0, a.size);
        (tx_loop(cap, &mut f, a.count), 0, 0, 0)
    } else {
        println!("ready");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let (got, empty, _) = cost_drain(cap, a.count)?;
        (got, empty, a.polls, cost_empty(cap, a.polls)?)
    };
    println!("{{\"packets\":{got},\"drain_empty\":{empty},\"polls\":{polls},\"late\":{late}}}");
    Ok(())
}

fn main() {
    let a = Args::parse();
    common::install_stop_handler();
    if let Err(e) = run(&a) {
        eprintln!("raw-pcap: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<(), String> {
    common::pin(a.cpu)?;
    // The same settings as nethuns' PcapFlags::default().
    let mut cap = Capture::from_device(a.iface.as_str())
        .and_then(|c| {
            c.promisc(true)
                .snaplen(2048)
                .timeout(1)
                .immediate_mode(true)
                .open()
        })
        .and_then(|c| c.setnonblock())
        .map_err(|e| format!("{}: {e}", a.iface))?;
    if let Mode::CostRx | Mode::CostTx = a.mode {
        return cost(a, &mut cap);
    }
    let start = Instant::now();
    let limit = start + Duration::from_secs_f64(a.duration);
    let cpu0 = common::cpu_seconds();
    let (mut pkts, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, start);
    let mut allocs0 = common::allocs();
    let mut pkts_at_check = 0u64;
    // Counts at the first check that saw packets: the rate is measured from there.
    let mut base = (0u64, 0u64);
    match a.mode {
        Mode::Rx => loop {
            match cap.next_packet() {
                Ok(p) => {
                    pkts += 1;
                    bytes += p.data.len() as u64;
                    if pkts % 4096 != 0 {
                        continue;
                    }
                }
                Err(PcapError::TimeoutExpired) => {}
                Err(e) => return Err(e.to_string()),
            }
            let now = Instant::now();
            if pkts > pkts_at_check {
                if first.is_none() {
                    first = Some(now);
                    base = (pkts, bytes);
                    allocs0 = common::allocs();
                }
                last = now;
                pkts_at_check = pkts;
            }
            if common::stopped()
                || now >= limit
                || (first.is_some() && now - last > Duration::from_secs_f64(a.idle))
            {
                break;
            }
        },
        Mode::Tx => {
            let mut f = common::frame(0, a.size);
            first = Some(start);
            loop {
                common::set_seq(&mut f, pkts);
                if cap.sendpacket(&f[..]).is_ok() {
                    pkts += 1;
                    bytes += f.len() as u64;
                }
                if pkts % 32 == 0 && (common::stopped() || Instant::now() >= limit) {
                    break;
                }
            }
            last = Instant::now();
        }
        Mode::CostRx | Mode::CostTx => unreachable!("handled above"),
    }
    let active = first
        .map(|f| last.saturating_duration_since(f))
        .unwrap_or_default();
    let (pps, bps) = common::rates(pkts - base.0, bytes - base.1, active);
    let allocs = common::allocs() - allocs0;
    let cpu = common::cpu_seconds() - cpu0;
    if a.json {
        println!(
            "{{\"packets\":{pkts},\"bytes\":{bytes},\"seconds\":{:.6},\"pps\":{pps:.1},\"bps\":{bps:.1},\"allocs\":{allocs},\"cpu\":{cpu:.3}}}",
            active.as_secs_f64()
        );
    } else {
        println!(
            "{pkts} packets in {:.3} s: {}",
            active.as_secs_f64(),
            common::fmt_rate(pps, bps)
        );
    }
    Ok(())
}
