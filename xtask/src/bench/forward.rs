//! Forwarding between two veth pairs: generator (ns a1) → forwarder (ns b1, between the two
//! pairs) → meter (ns b2); zero-copy against copy, the channel API against one thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nethuns_testnet::NetPair;

use super::run::{finish, pkt_gen, Cfg, Prog};
use super::stats::{Row, Sample, Test};
use crate::backends::Backend;
use crate::util::strs;

/// The forwarders compared by the forwarding rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forwarder {
    /// `forward`: one thread, the received payload sent as is (`send_payload`).
    ZeroCopy,
    /// `forward --copy`: one thread, the payload copied (`send`).
    Copy,
    /// `forward-mt`: the channel API, a receive and a send thread.
    Channel,
}

impl Forwarder {
    fn prog(self, tools: &Path) -> (PathBuf, &'static [&'static str]) {
        match self {
            Forwarder::ZeroCopy => (tools.join("forward"), &[]),
            Forwarder::Copy => (tools.join("forward"), &["--copy"]),
            Forwarder::Channel => (tools.join("forward-mt"), &[]),
        }
    }
}

/// Two veth pairs, p2's a end moved next to p1's b end: generator (p1 a) → forwarder (p1 b,
/// p2 a) → meter (p2 b).
fn forward_pairs() -> Result<(NetPair, NetPair), String> {
    let p1 = NetPair::new("benchfwd1", Default::default())?;
    let p2 = NetPair::new("benchfwd2", Default::default())?;
    p2.ip_a(&["link", "set", "dev", &p2.veth_a, "netns", &p1.ns_b])?;
    p1.ip_b(&["link", "set", "dev", &p2.veth_a, "up"])?;
    Ok((p1, p2))
}

/// One forwarding run: what the meter behind the forwarder received.
fn forward_once(
    tools: &Path,
    cfg: &Cfg,
    (p1, p2): (&NetPair, &NetPair),
    backend: Backend,
    generator: Backend,
    fwd: Forwarder,
    size: usize,
) -> Result<Sample, String> {
    let sink = Prog::new(
        tools.join("meter"),
        strs(&[
            "--backend",
            backend.name(),
            "--iface",
            &backend.portspec(&p2.veth_b),
            "--duration",
            &(cfg.seconds + 4.0).to_string(),
            "--idle",
            "1",
            "--json",
            "--quiet",
        ]),
    )
    .spawn(&p2.ns_b)?;
    let (path, extra) = fwd.prog(tools);
    let mut args = strs(&[
        "--backend",
        backend.name(),
        "--in",
        &backend.portspec(&p1.veth_b),
        "--out",
        &backend.portspec_n(&p2.veth_a, 1),
        "--duration",
        &(cfg.seconds + 1.5).to_string(),
        "--json",
    ]);
    args.extend(strs(extra));
    let fwdp = Prog::new(path, args).spawn(&p1.ns_b)?;
    std::thread::sleep(Duration::from_millis(500));
    let gen = pkt_gen(tools, generator, &p1.veth_a, cfg.seconds, size).spawn(&p1.ns_a)?;
    let g = finish(gen, "generator");
    let f = finish(fwdp, "forwarder");
    let s = finish(sink, "meter (sink)");
    g?;
    f?;
    s
}

/// The forwarding rows of a backend: zero-copy against copy (one thread each), and the
/// channel API against one thread (copying, as the channel hands over copies).
pub fn rows(tools: &Path, cfg: &Cfg, backend: Backend, generator: Backend) -> Vec<Row> {
    let pairs = match forward_pairs() {
        Ok(p) => p,
        Err(e) => {
            let mut row = Row::new(backend, Test::FwdZeroCopy, 64, "forward --copy");
            row.error = Some(e);
            return vec![row];
        }
    };
    let mut rows = vec![];
    for &size in &cfg.fwd_sizes {
        let mut zc = Row::new(backend, Test::FwdZeroCopy, size, "forward --copy");
        let mut ch = Row::new(backend, Test::FwdChannel, size, "forward --copy (1 thread)");
        for _ in 0..cfg.fwd_reps {
            for fwd in [Forwarder::ZeroCopy, Forwarder::Copy, Forwarder::Channel] {
                let pair = (&pairs.0, &pairs.1);
                match forward_once(tools, cfg, pair, backend, generator, fwd, size) {
                    Ok(s) => match fwd {
                        Forwarder::ZeroCopy => zc.ours.push(s),
                        Forwarder::Copy => {
                            zc.base.push(s);
                            ch.base.push(s);
                        }
                        Forwarder::Channel => ch.ours.push(s),
                    },
                    Err(e) => {
                        zc.error = Some(e.clone());
                        ch.error = Some(e);
                    }
                }
            }
        }
        rows.extend([zc, ch]);
    }
    rows
}
