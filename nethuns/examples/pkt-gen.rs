//! `pkt-gen`: sends N frames of size S, optionally rate-limited, and reports the achieved rate.
//!
//! `cargo run --release --example pkt-gen -- --backend pcap --iface eth0 --count 1000000 --size 64`
//!
//! Frames are Ethernet, locally administered MACs, EtherType 0x88B5, with a sequence number.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{fmt_rate, rates, Backend};
use nethuns::api::Socket;
use nethuns::errors::Error;

#[derive(Parser, Debug)]
#[command(about = "Send N frames of size S")]
struct Args {
    /// Engine.
    #[arg(long, value_enum, default_value = "pcap")]
    backend: Backend,
    /// Portspec: interface name, or the backend's port form.
    #[arg(long)]
    iface: String,
    /// Queue.
    #[arg(long)]
    queue: Option<usize>,
    /// Frames to send (0: until --duration or Ctrl-C).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Frame size in bytes, without FCS.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Target rate in packets per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Frames per flush.
    #[arg(long, default_value_t = 32)]
    batch: u64,
    /// Stop after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Print the totals as one JSON line.
    #[arg(long)]
    json: bool,
    /// Pin the sending thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
}

fn pkt_gen<S: Socket>(flags: S::Flags, a: &Args) -> Result<(), String> {
    common::pin(a.cpu)?;
    let sock = S::create(&a.iface, a.queue, flags).map_err(|e| e.to_string())?;
    let mut f = common::frame(0, a.size);
    let cpu0 = common::cpu_seconds();
    let allocs0 = common::allocs();
    let start = Instant::now();
    let limit = (a.duration > 0.0).then(|| start + Duration::from_secs_f64(a.duration));
    let batch = a.batch.max(1);
    let (mut sent, mut full) = (0u64, 0u64);
    while a.count == 0 || sent < a.count {
        common::set_seq(&mut f, sent);
        match sock.send(&f) {
            Ok(()) => sent += 1,
            // The transmit side is full: submit and retry.
            Err(Error::NoMemory) | Err(Error::NoPacket) => {
                full += 1;
                sock.flush();
                continue;
            }
            Err(e) => return Err(format!("send on {}: {e}", a.iface)),
        }
        if sent % batch == 0 {
            sock.flush();
            if common::stopped() || limit.is_some_and(|l| Instant::now() >= l) {
                break;
            }
            if a.rate > 0 {
                let due = start + Duration::from_secs_f64(sent as f64 / a.rate as f64);
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
        }
    }
    sock.flush();
    let el = start.elapsed();
    let steady_allocs = common::allocs() - allocs0;
    let cpu = common::cpu_seconds() - cpu0;
    let (pps, bps) = rates(sent, sent * a.size as u64, el);
    if a.json {
        println!(
            "{{\"packets\":{sent},\"bytes\":{},\"seconds\":{:.6},\"pps\":{pps:.1},\"bps\":{bps:.1},\"tx_full\":{full},\"allocs\":{steady_allocs},\"cpu\":{cpu:.3}}}",
            sent * a.size as u64,
            el.as_secs_f64()
        );
    } else {
        println!(
            "sent {sent} frames of {} bytes in {:.3} s: {}",
            a.size,
            el.as_secs_f64(),
            fmt_rate(pps, bps)
        );
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    common::install_stop_handler();
    common::exit_on_error("pkt-gen", with_backend!(args.backend, pkt_gen(&args)));
}
