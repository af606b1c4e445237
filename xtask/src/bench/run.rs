//! The veth runs: two namespaces joined by a veth pair, the generator pinned to CPU 0 in one,
//! the receiver pinned to CPU 1 in the other; nethuns' tool and the raw loop alternately,
//! `reps` times. Also forwarding between two veth pairs, perf profiles of rows below target,
//! and the criterion micro-benchmarks of the core.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nethuns_testnet::NetPair;

use super::stats::{Row, Sample, Test};
use crate::backends::Backend;
use crate::util::strs;

/// Veth run settings.
#[derive(Clone, Debug)]
pub struct Cfg {
    /// Seconds of traffic per run.
    pub seconds: f64,
    /// Runs of each side per row.
    pub reps: usize,
    /// Frame sizes.
    pub sizes: Vec<usize>,
    /// Runs of each forwarder per forwarding row.
    pub fwd_reps: usize,
    /// Frame sizes of the forwarding rows.
    pub fwd_sizes: Vec<usize>,
}

/// A program and its arguments; run under `perf record` when profiling.
#[derive(Clone)]
pub struct Prog {
    path: PathBuf,
    args: Vec<String>,
}

impl Prog {
    pub fn new(path: PathBuf, args: Vec<String>) -> Self {
        Prog { path, args }
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The same program under `perf record -e cpu-clock -g -o data`.
    fn profiled(&self, data: &Path) -> Prog {
        let mut args = strs(&["record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-o"]);
        args.push(data.display().to_string());
        args.push("--".into());
        args.push(self.path.display().to_string());
        args.extend(self.args.iter().cloned());
        Prog::new(PathBuf::from("perf"), args)
    }

    /// The program in namespace `ns`, its output captured.
    pub fn spawn(&self, ns: &str) -> Result<Child, String> {
        ns_cmd(ns, &self.path, &self.args)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.name()))
    }
}

fn ns_cmd(ns: &str, prog: &Path, args: &[String]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(prog).args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Waits for a tool and parses the totals of its last JSON line.
pub fn finish(c: Child, what: &str) -> Result<Sample, String> {
    let out = c.wait_with_output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .rev()
        .find_map(Sample::parse)
        .ok_or_else(|| format!("{what} printed no totals: {s}"))
}

/// The generator: `pkt-gen` on `backend` at full speed for `seconds`, pinned to CPU 0.
pub fn pkt_gen(tools: &Path, backend: Backend, dev: &str, seconds: f64, size: usize) -> Prog {
    Prog::new(
        tools.join("pkt-gen"),
        strs(&[
            "--backend",
            backend.name(),
            "--iface",
            &backend.portspec(dev),
            "--count",
            "0",
            "--duration",
            &seconds.to_string(),
            "--size",
            &size.to_string(),
            "--cpu",
            "0",
            "--json",
        ]),
    )
}

/// The veth runs of one pair.
pub struct Bench<'a> {
    pub tools: PathBuf,
    pub raw: PathBuf,
    pub pair: &'a NetPair,
    pub cfg: Cfg,
    /// The backend of the receive tests' generator.
    pub generator: Backend,
}

impl Bench<'_> {
    /// Receiver `rx` in ns_b (pinned to CPU 1 by its arguments) against the generator in
    /// ns_a on CPU 0.
    fn rx_once(&self, rx: &Prog, size: usize) -> Result<Sample, String> {
        let rxp = rx.spawn(&self.pair.ns_b)?;
        std::thread::sleep(Duration::from_millis(500));
        let gen = pkt_gen(
            &self.tools,
            self.generator,
            &self.pair.veth_a,
            self.cfg.seconds,
            size,
        );
        let g = finish(gen.spawn(&self.pair.ns_a)?, "generator");
        let r = finish(rxp, &rx.name());
        let g = g?;
        r.map(|s| Sample {
            offered: g.pps,
            ..s
        })
    }

    /// Transmitter `tx` in ns_a; nobody listens (the peer's stack drops the frames).
    fn tx_once(&self, tx: &Prog) -> Result<Sample, String> {
        finish(tx.spawn(&self.pair.ns_a)?, &tx.name())
    }

    fn rx_args(&self, backend: Backend, raw: bool) -> Vec<String> {
        let mut a = if raw {
            strs(&["--mode", "rx"])
        } else {
            strs(&["--backend", backend.name(), "--quiet"])
        };
        a.extend(strs(&[
            "--iface",
            &backend.portspec(&self.pair.veth_b),
            "--duration",
            &(self.cfg.seconds + 3.0).to_string(),
            "--idle",
            "0.5",
            "--cpu",
            "1",
            "--json",
        ]));
        a
    }

    fn tx_args(&self, backend: Backend, size: usize, raw: bool) -> Vec<String> {
        let mut a = if raw {
            strs(&["--mode", "tx"])
        } else {
            strs(&["--backend", backend.name(), "--count", "0"])
        };
        a.extend(strs(&[
            "--iface",
            &backend.portspec(&self.pair.veth_a),
            "--duration",
            &self.cfg.seconds.to_string(),
            "--size",
            &size.to_string(),
            "--cpu",
            "0",
            "--json",
        ]));
        a
    }

    /// nethuns against the raw loop, alternating, `reps` times.
    pub fn row(&self, backend: Backend, test: Test, size: usize) -> Row {
        let base = backend.raw(&self.tools, &self.raw);
        let mut row = Row::new(backend, test, size, base.as_ref().map_or("-", |b| b.label));
        let (ours, raw) = self.progs(backend, test, size);
        for _ in 0..self.cfg.reps {
            match self.once(test, &ours, size) {
                Ok(s) => row.ours.push(s),
                Err(e) => {
                    row.error = Some(e);
                    return row;
                }
            }
            if let Some(raw) = &raw {
                match self.once(test, raw, size) {
                    Ok(s) => row.base.push(s),
                    Err(e) => row.error = Some(e),
                }
            }
        }
        row
    }

    /// The nethuns tool and the raw loop for a test.
    fn progs(&self, backend: Backend, test: Test, size: usize) -> (Prog, Option<Prog>) {
        let base = backend.raw(&self.tools, &self.raw);
        if test == Test::Rx {
            (
                Prog::new(self.tools.join("meter"), self.rx_args(backend, false)),
                base.map(|r| Prog::new(r.path, self.rx_args(backend, true))),
            )
        } else {
            (
                Prog::new(
                    self.tools.join("pkt-gen"),
                    self.tx_args(backend, size, false),
                ),
                base.map(|r| Prog::new(r.path, self.tx_args(backend, size, true))),
            )
        }
    }

    fn once(&self, test: Test, p: &Prog, size: usize) -> Result<Sample, String> {
        if test == Test::Rx {
            self.rx_once(p, size)
        } else {
            self.tx_once(p)
        }
    }

    /// The receive ceiling: an XDP program on veth_b that counts and drops everything.
    pub fn ceiling(&self, size: usize) -> Result<Vec<Sample>, String> {
        let p = Prog::new(
            self.raw.join("xdp_drop"),
            self.rx_args(Backend::AfXdp, true),
        );
        (0..self.cfg.reps).map(|_| self.rx_once(&p, size)).collect()
    }

    /// Re-runs the nethuns side of a row under perf; writes the report next to the results.
    pub fn profile(&self, row: &Row, dir: &Path) -> Result<PathBuf, String> {
        let (ours, _) = self.progs(row.backend, row.test, row.size);
        let stem = format!("perf-{}-{}-{}", row.backend, row.test.short(), row.size);
        let data = std::env::temp_dir().join(format!("{stem}.data"));
        self.once(row.test, &ours.profiled(&data), row.size)?;
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--percent-limit",
                "1.5",
                "-i",
            ])
            .arg(&data)
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        let _ = std::fs::remove_file(&data);
        let txt = dir.join(format!("{stem}.txt"));
        let text: String = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(120)
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&txt, text).map_err(|e| e.to_string())?;
        Ok(txt)
    }
}
