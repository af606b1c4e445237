//! `nethuns-gen`: sends valid Ethernet / IPv4 or IPv6 / UDP frames, on any backend.
//!
//! `nethuns-gen -b af-packet -i eth0 --count 1000000 --size 64 --dst-port 1000-1999 --pps 100000`

use std::net::IpAddr;

use clap::Parser;
use nethuns_tools::backend::{Engine, Role};
use nethuns_tools::cli::{parse_range, Common, Range};
use nethuns_tools::exit::{ToolError, EXIT_CODES_HELP};
use nethuns_tools::frames::{self, Endpoints, Template};
use nethuns_tools::io::{open_all, TxBatch};
use nethuns_tools::pace::Rate;
use nethuns_tools::report::{spawn, Kind, Report};
use nethuns_tools::wait::{self, Backoff};
use nethuns_tools::{dispatch, signal};

#[derive(Parser, Debug)]
#[command(version, about = "Send Ethernet/IP/UDP frames: sizes or IMIX, port ranges, a rate", after_help = EXIT_CODES_HELP)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Frames to send in all, spread over the queues (0: until --duration or a signal).
    #[arg(short = 'c', long, default_value_t = 0)]
    count: u64,
    /// Frame sizes in bytes without FCS, used in turn (`64` or `64,512,1514`).
    #[arg(short = 's', long, value_delimiter = ',', default_value = "64")]
    size: Vec<usize>,
    /// The simple IMIX instead of --size: 7 × 60, 4 × 590, 1 × 1514 bytes (70 instead of 60
    /// over IPv6).
    #[arg(long)]
    imix: bool,
    /// Source MAC.
    #[arg(long, default_value = "02:00:00:00:00:01", value_parser = frames::parse_mac)]
    src_mac: [u8; 6],
    /// Destination MAC.
    #[arg(long, default_value = "02:00:00:00:00:02", value_parser = frames::parse_mac)]
    dst_mac: [u8; 6],
    /// Source IP address (IPv4 or IPv6).
    #[arg(long, default_value = "10.0.0.1")]
    src_ip: IpAddr,
    /// Destination IP address (same family as --src-ip).
    #[arg(long, default_value = "10.0.0.2")]
    dst_ip: IpAddr,
    /// UDP source port or range (`1024-2047`: one flow per port, so RSS spreads them).
    #[arg(long, default_value = "1024", value_parser = parse_range)]
    src_port: Range,
    /// UDP destination port or range.
    #[arg(long, default_value = "9", value_parser = parse_range)]
    dst_port: Range,
    /// Packets per second in all (0: top speed).
    #[arg(long)]
    pps: Option<f64>,
    /// Megabits per second in all (frame bytes; 0: top speed).
    #[arg(long, conflicts_with = "pps")]
    mbps: Option<f64>,
    /// Frames per flush.
    #[arg(long, default_value_t = 32)]
    batch: u64,
}

fn gen<S: Engine>(a: &Args) -> Result<i32, ToolError> {
    let c = &a.common;
    let ep = Endpoints {
        src_mac: a.src_mac,
        dst_mac: a.dst_mac,
        src_ip: a.src_ip,
        dst_ip: a.dst_ip,
    };
    // IMIX over IPv6: the smallest frame grows to the smallest IPv6/UDP frame.
    let min = frames::min_size(a.src_ip.is_ipv6());
    let sizes: Vec<usize> = frames::pattern(&a.size, a.imix)
        .into_iter()
        .map(|s| if a.imix { s.max(min) } else { s })
        .collect();
    if sizes.is_empty() {
        return Err(ToolError::Usage("no frame size".into()));
    }
    let templates = sizes
        .iter()
        .map(|&s| Template::new(&ep, s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ToolError::Usage)?;
    let queues = c.queues();
    let role = Role {
        tx_only: true,
        ..Role::default()
    };
    let ports = open_all::<S>(&c.iface, &queues, &c.opts, role)?;
    for p in &ports {
        let caps = p.sock.capabilities();
        if let Some(t) = templates
            .iter()
            .find(|t| t.len() > caps.max_frame && caps.max_frame > 0)
        {
            return Err(ToolError::Config(format!(
                "frame size {} is larger than {} takes ({} bytes: MTU + 14)",
                t.len(),
                p.portspec,
                caps.max_frame
            )));
        }
    }
    let report = Report::new(
        "nethuns-gen",
        Kind {
            rx: false,
            tx: true,
        },
        c,
        &queues,
    );
    let n = ports.len() as u64;
    let mut workers = vec![];
    for (i, mut port) in ports.into_iter().enumerate() {
        let mut w = report.worker(i);
        let templates = templates.clone();
        let mine = if a.count == 0 {
            u64::MAX
        } else {
            a.count / n + u64::from((i as u64) < a.count % n)
        };
        let rate = Rate::from_args(a.pps, a.mbps, 1.0 / n as f64);
        let (sp, dp, batch) = (a.src_port, a.dst_port, a.batch);
        workers.push(spawn(format!("gen-{i}"), move || {
            let mut backoff = Backoff::new();
            let start = std::time::Instant::now();
            let mut tx = TxBatch::new(batch);
            let mut seq = 0u64;
            while seq < mine && !signal::stopped() {
                if let Some(due) = rate.due(start, w.t.tx_packets, w.t.tx_bytes) {
                    if std::time::Instant::now() < due {
                        tx.before_wait(&port);
                        wait::until(due);
                        continue;
                    }
                }
                let k = (seq % templates.len() as u64) as usize;
                let flow = seq / templates.len() as u64;
                let sport = sp.nth(flow);
                let dport = dp.nth(flow / sp.len());
                let t = &templates[k];
                // Built where the engine sends it from (a TX frame, slot or mbuf).
                let build = |f: &mut [u8]| t.write_whole(f, sport, dport, seq);
                if !port.send_with(t.len(), build, &mut w, &mut backoff)? {
                    break;
                }
                seq += 1;
                tx.sent(&port, &mut w, t.len());
            }
            tx.finish(&port, &mut w);
            Ok(())
        }));
    }
    Ok(report.run(workers))
}

fn main() {
    nethuns_tools::main(|a: Args| dispatch!(a.common.backend, gen(&a)))
}
