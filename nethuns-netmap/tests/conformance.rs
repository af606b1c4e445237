//! The conformance suite (nethuns-testnet) on the netmap backend, over a veth pair in netmap
//! mode (`netmap:VETH`: netmap's native veth support or its emulated adapter).
//!
//! It needs the netmap kernel module. Without `/dev/netmap` (this project's CI machines) every
//! case is reported `n/a` with that reason, in the suite's log format, so the README's table
//! shows it; the ring logic itself is tested against the simulated netmap region in
//! `src/sim_tests.rs`, which cannot stand behind a veth pair. One test runs every case
//! ([`run_all`](nethuns_testnet::conformance::run_all)), so the availability check is made once.

#![cfg(target_os = "linux")]

use nethuns_netmap::{netmap_available, NetmapFlags, Sock, Socket, NETMAP_DEVICE};
use nethuns_testnet::conformance::{self, Backend, CASES, LOG_ENV};

struct Netmap;

impl Backend for Netmap {
    type S = Sock;
    const NAME: &'static str = "netmap";

    fn portspec(iface: &str) -> String {
        format!("netmap:{iface}")
    }

    fn flags() -> NetmapFlags {
        NetmapFlags::default()
    }

    /// `extra_buf` bounds how many received packets can be held at once.
    fn small_pool_flags(buffers: usize) -> Option<NetmapFlags> {
        Some(NetmapFlags {
            extra_buf: buffers.max(1) as u32,
        })
    }

    /// Every extra buffer is back in the pool once the case dropped its payloads and tokens.
    fn check(sock: &Sock) -> Result<(), String> {
        let ctx = sock.context();
        let (free, total) = (ctx.free_extra_buffers(), ctx.extra_buffers());
        if free != total {
            return Err(format!(
                "{} of {total} extra buffers still out after the case released everything",
                total - free
            ));
        }
        Ok(())
    }
}

#[test]
fn conformance_suite() {
    if netmap_available() {
        conformance::run_all::<Netmap>();
        return;
    }
    let why = format!("no {NETMAP_DEVICE}: the netmap kernel module is not loaded");
    let mut log = String::new();
    for case in CASES {
        println!("conformance: {} {case}: n/a: {why}", Netmap::NAME);
        log.push_str(&format!("{}\t{case}\tn/a: {why}\n", Netmap::NAME));
    }
    if let Some(path) = std::env::var_os(LOG_ENV) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(log.as_bytes());
        }
    }
}
