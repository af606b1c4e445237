//! # nethuns-tools
//!
//! Packet tools over nethuns, one binary each, on any backend compiled in
//! (`--backend pcap|af-packet|af-xdp|dpdk|netmap`):
//!
//! | tool | what it does |
//! |---|---|
//! | `nethuns-meter` | counts received packets: rates, drops, send errors, totals |
//! | `nethuns-gen` | sends Ethernet/IPv4 or IPv6/UDP frames: sizes or IMIX, port ranges, rate |
//! | `nethuns-forward` | forwards from one interface to another (one thread, or two with the channel API) |
//! | `nethuns-dump` | captures to a savefile: filter, snaplen, count/duration, ns timestamps, link type |
//! | `nethuns-replay` | sends a savefile at its recorded pace, at `--pps`/`--mbps` or top speed, `--loop N` |
//!
//! Install: `cargo install --path nethuns-tools` (every backend; without DPDK's packages:
//! `--no-default-features --features pcap,af-packet,af-xdp,netmap`).
//!
//! Every tool takes `-i/--iface`, `-q/--queue` (a list or ranges: one socket and one thread
//! per queue, a line per queue and one for all), `--backend`, every field of the backend's
//! flags as an option (`--pcap-*`, `--afp-*`, `--xdp-*`, `--dpdk-*`, `--netmap-*`, with the
//! flags' defaults), `--duration`, `--json` (one JSON object per line) and `--quiet`. Once per
//! `--interval` (1 s) each tool prints its rates with the engine's drops and send errors
//! (`Socket::stats()`); at the end, and within 100 ms of SIGINT or SIGTERM whatever the socket
//! is doing, the totals. Exit status: see [`exit`].
//!
//! A forwarder never forwards its own transmissions; how each backend does it is in
//! [`backend`].
//!
//! ## Where the unsafe code is
//! `signal.rs`: installing the SIGINT/SIGTERM handler (`sigaction`) and the handler's
//! `_exit`. The interface queries and `poll(2)` are `nethuns-sys-linux`'s.

pub mod backend;
pub mod cli;
pub mod exit;
pub mod frames;
pub mod io;
pub mod pace;
pub mod report;
pub mod savefile;
pub mod signal;
pub mod wait;

/// Parses the command line of a tool (exit 2 with clap's message on a usage error), installs
/// the signal handler, runs `f` and exits with its status.
pub fn main<A: clap::Parser>(f: impl FnOnce(A) -> Result<i32, exit::ToolError>) -> ! {
    let args = A::parse();
    signal::install();
    let code = match f(args) {
        Ok(c) => c,
        Err(e) => {
            let tool = std::env::args()
                .next()
                .and_then(|a| a.rsplit('/').next().map(str::to_string))
                .unwrap_or_default();
            eprintln!("{tool}: {e}");
            e.code()
        }
    };
    std::process::exit(code)
}
