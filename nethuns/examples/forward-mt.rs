//! `forward-mt`: the channel API. One thread receives and pushes batches of tokens; another
//! pops them, turns them back into payloads and sends them on the output interface.
//!
//! `cargo run --release --example forward-mt -- --backend pcap --in eth0 --out eth1`

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{fmt_rate, rates, Backend};
use nethuns::api::Socket;
use nethuns::errors::Error;

const BATCH: usize = 32;

#[derive(Parser, Debug)]
#[command(about = "Forward packets with a receiving and a transmitting thread")]
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
    /// Channel capacity in batches.
    #[arg(long, default_value_t = 256)]
    capacity: usize,
    /// Print the totals as one JSON line.
    #[arg(long)]
    json: bool,
}

fn forward_mt<S: Socket + 'static>(flags: S::Flags, a: &Args) -> Result<(), String> {
    let tx_sock = S::create(&a.output, None, flags.clone()).map_err(|e| e.to_string())?;
    let (rx_sock, mut pusher, popper) = S::create_with_channel::<BATCH>(
        &a.input,
        None,
        flags,
        nethuns::crossbeam_channel::bounded(a.capacity),
    )
    .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let limit = (a.duration > 0.0).then(|| start + Duration::from_secs_f64(a.duration));
    let input = a.input.clone();
    let receiver = std::thread::spawn(move || -> Result<u64, String> {
        let mut n = 0u64;
        let mut buf = nethuns::batch::buffer::<S::Metadata, BATCH>();
        'rx: loop {
            match rx_sock.recv_batch(&mut buf) {
                Ok(mut burst) if !burst.is_empty() => {
                    while let Some((tok, _)) = burst.next_token() {
                        n += 1;
                        if pusher.push_token(tok).is_err() {
                            break 'rx;
                        }
                    }
                }
                Ok(_) => {
                    let _ = pusher.flush();
                }
                // Every buffer is in the channel or being sent: hand over what we hold and
                // let the transmitting thread catch up.
                Err(Error::NoMemory) => {
                    let _ = pusher.flush();
                    std::thread::yield_now();
                }
                Err(e) => return Err(format!("recv on {input}: {e}")),
            }
            if common::stopped() || limit.is_some_and(|l| Instant::now() >= l) {
                break;
            }
        }
        let _ = pusher.flush();
        Ok(n)
        // Dropping the pusher closes the channel: the popper loop below ends.
    });
    let (mut pkts, mut bytes) = (0u64, 0u64);
    while let Some(batch) = popper.pop() {
        for p in batch {
            if tx_sock.send(&p).is_ok() {
                pkts += 1;
                bytes += p.len() as u64;
            }
        }
        tx_sock.flush();
    }
    let received = receiver
        .join()
        .map_err(|_| "receiver panicked".to_string())??;
    let el = start.elapsed();
    let (pps, bps) = rates(pkts, bytes, el);
    if a.json {
        println!("{{\"received\":{received},\"packets\":{pkts},\"bytes\":{bytes},\"seconds\":{:.6},\"pps\":{pps:.1}}}", el.as_secs_f64());
    } else {
        println!(
            "received {received}, forwarded {pkts} in {:.3} s: {}",
            el.as_secs_f64(),
            fmt_rate(pps, bps)
        );
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    common::install_stop_handler();
    common::exit_on_error("forward-mt", with_backend!(args.backend, forward_mt(&args)));
}
