//! `cargo xtask bench`: nethuns against the raw engines, same traffic, same run.
//!
//! Two namespaces joined by a veth pair; the generator pinned to CPU 0 in one, the receiver
//! pinned to CPU 1 in the other. For each backend and frame size, the nethuns tool and the raw
//! loop are run alternately, several times; the report gives medians, spread, the ratio, CPU
//! use and heap allocations per packet in steady state. Also: forwarding between two veth
//! pairs (single thread vs the channel API), and criterion micro-benchmarks of the core.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nethuns_testnet::NetPair;

use crate::demo::{json_num, portspec, portspec_n};
use crate::util;

mod cost;

/// Benchmark settings.
struct Cfg {
    seconds: f64,
    reps: usize,
    sizes: Vec<usize>,
}

/// One run's totals, parsed from a tool's JSON line.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    pps: f64,
    bps: f64,
    cpu: f64,
    allocs: f64,
    pkts: f64,
    /// Receive runs: the generator's rate in the same run (the offered load).
    offered: f64,
}

impl Sample {
    fn parse(line: &str) -> Option<Sample> {
        Some(Sample {
            pps: json_num(line, "pps")?,
            bps: json_num(line, "bps").unwrap_or(0.0),
            cpu: json_num(line, "cpu").unwrap_or(0.0),
            allocs: json_num(line, "allocs").unwrap_or(0.0),
            pkts: json_num(line, "packets").unwrap_or(0.0),
            offered: 0.0,
        })
    }
}

/// Median, minimum and maximum.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    (m, s[0], s[s.len() - 1])
}

/// A comparison: nethuns against a baseline.
struct Row {
    backend: String,
    test: &'static str,
    size: usize,
    ours: Vec<Sample>,
    base: Vec<Sample>,
    base_name: String,
    error: Option<String>,
    /// A perf report of the nethuns side, for rows below target.
    profile: Option<PathBuf>,
}

impl Row {
    fn new(backend: &str, test: &'static str, size: usize, base_name: &str) -> Row {
        Row {
            backend: backend.into(),
            test,
            size,
            ours: vec![],
            base: vec![],
            base_name: base_name.into(),
            error: None,
            profile: None,
        }
    }

    fn ratio(&self) -> f64 {
        let o = stats(&self.ours.iter().map(|s| s.pps).collect::<Vec<_>>()).0;
        let b = stats(&self.base.iter().map(|s| s.pps).collect::<Vec<_>>()).0;
        if b > 0.0 {
            o / b
        } else {
            0.0
        }
    }
}

/// The raw engine's loop for a backend: a program taking `--mode rx|tx --iface …` (the
/// contract of `raw-pcap`, see xtask/raw/README.md).
fn baseline(tools: &Path, raw: &Path, backend: &str) -> Option<(PathBuf, &'static str)> {
    match backend {
        "pcap" => Some((tools.join("raw-pcap"), "libpcap (pcap crate)")),
        "af-packet" => Some((raw.join("raw_afpacket"), "TPACKET_v3 (C)")),
        "af-xdp" => Some((raw.join("raw_afxdp"), "libxdp xsk (C)")),
        "dpdk" => Some((raw.join("raw_dpdk"), "DPDK ethdev (C)")),
        _ => None,
    }
}

fn ns_cmd(ns: &str, prog: &Path, args: &[String]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(prog).args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn spawn(mut c: Command, what: &str) -> Result<std::process::Child, String> {
    c.spawn().map_err(|e| format!("{what}: {e}"))
}

fn finish(c: std::process::Child, what: &str) -> Result<Sample, String> {
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

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A program and its arguments; run under `perf record` when profiling.
#[derive(Clone)]
struct Prog {
    path: PathBuf,
    args: Vec<String>,
}

impl Prog {
    fn new(path: PathBuf, args: Vec<String>) -> Self {
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
}

struct Bench<'a> {
    tools: PathBuf,
    raw: PathBuf,
    pair: &'a NetPair,
    cfg: Cfg,
    generator: &'static str,
}

impl Bench<'_> {
    /// Receiver `rx` in ns_b (pinned to CPU 1 by its arguments) against the generator in
    /// ns_a on CPU 0.
    fn rx_once(&self, rx: &Prog, size: usize) -> Result<Sample, String> {
        let rxp = spawn(ns_cmd(&self.pair.ns_b, &rx.path, &rx.args), &rx.name())?;
        std::thread::sleep(Duration::from_millis(500));
        let gen = ns_cmd(
            &self.pair.ns_a,
            &self.tools.join("pkt-gen"),
            &strs(&[
                "--backend",
                self.generator,
                "--iface",
                &portspec(self.generator, &self.pair.veth_a),
                "--count",
                "0",
                "--duration",
                &self.cfg.seconds.to_string(),
                "--size",
                &size.to_string(),
                "--cpu",
                "0",
                "--json",
            ]),
        );
        let g = finish(spawn(gen, "pkt-gen")?, "generator");
        let r = finish(rxp, &rx.name());
        let g = g?;
        r.map(|s| Sample {
            offered: g.pps,
            ..s
        })
    }

    /// Transmitter `tx` in ns_a; nobody listens (the peer's stack drops the frames).
    fn tx_once(&self, tx: &Prog) -> Result<Sample, String> {
        finish(
            spawn(ns_cmd(&self.pair.ns_a, &tx.path, &tx.args), &tx.name())?,
            &tx.name(),
        )
    }

    fn rx_args(&self, backend: &str, raw: bool) -> Vec<String> {
        let mut a = if raw {
            strs(&["--mode", "rx"])
        } else {
            strs(&["--backend", backend, "--quiet"])
        };
        a.extend(strs(&[
            "--iface",
            &portspec(backend, &self.pair.veth_b),
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

    fn tx_args(&self, backend: &str, size: usize, raw: bool) -> Vec<String> {
        let mut a = if raw {
            strs(&["--mode", "tx"])
        } else {
            strs(&["--backend", backend, "--count", "0"])
        };
        a.extend(strs(&[
            "--iface",
            &portspec(backend, &self.pair.veth_a),
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
    fn row(&self, backend: &str, test: &'static str, size: usize) -> Row {
        let base = baseline(&self.tools, &self.raw, backend);
        let mut row = Row::new(
            backend,
            test,
            size,
            base.as_ref().map(|b| b.1).unwrap_or("-"),
        );
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
    fn progs(&self, backend: &str, test: &str, size: usize) -> (Prog, Option<Prog>) {
        let base = baseline(&self.tools, &self.raw, backend);
        if test == "rx" {
            (
                Prog::new(self.tools.join("meter"), self.rx_args(backend, false)),
                base.map(|(p, _)| Prog::new(p, self.rx_args(backend, true))),
            )
        } else {
            (
                Prog::new(
                    self.tools.join("pkt-gen"),
                    self.tx_args(backend, size, false),
                ),
                base.map(|(p, _)| Prog::new(p, self.tx_args(backend, size, true))),
            )
        }
    }

    fn once(&self, test: &str, p: &Prog, size: usize) -> Result<Sample, String> {
        if test == "rx" {
            self.rx_once(p, size)
        } else {
            self.tx_once(p)
        }
    }

    /// The receive ceiling: an XDP program on veth_b that counts and drops everything.
    fn ceiling(&self, size: usize) -> Result<Vec<Sample>, String> {
        let p = Prog::new(self.raw.join("xdp_drop"), self.rx_args("af-xdp", true));
        (0..self.cfg.reps).map(|_| self.rx_once(&p, size)).collect()
    }

    /// Re-runs the nethuns side of a row under perf; writes the report next to the results.
    fn profile(&self, row: &Row, dir: &Path) -> Result<PathBuf, String> {
        let (ours, _) = self.progs(&row.backend, row.test, row.size);
        let stem = format!("perf-{}-{}-{}", row.backend, row.test, row.size);
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

/// Forwarding between two veth pairs: generator (ns a1) → forwarder (ns b1, between the two
/// pairs) → meter (ns b2); `forward` (one thread) against `forward-mt` (channel API).
fn forward_rows(tools: &Path, cfg: &Cfg, backend: &str, generator: &str) -> Vec<Row> {
    let mut rows = vec![];
    let setup = || -> Result<(NetPair, NetPair), String> {
        let p1 = NetPair::new("benchfwd1", Default::default())?;
        let p2 = NetPair::new("benchfwd2", Default::default())?;
        // Move p2's a end next to p1's b end: the forwarder sees both.
        p2.ip_a(&["link", "set", "dev", &p2.veth_a, "netns", &p1.ns_b])?;
        p1.ip_b(&["link", "set", "dev", &p2.veth_a, "up"])?;
        Ok((p1, p2))
    };
    let (p1, p2) = match setup() {
        Ok(p) => p,
        Err(e) => {
            let mut row = Row::new(backend, "fwd", 64, "forward");
            row.error = Some(e);
            rows.push(row);
            return rows;
        }
    };
    for &size in &cfg.sizes {
        let mut row = Row::new(
            backend,
            "fwd: channel vs 1 thread",
            size,
            "forward (1 thread)",
        );
        for _ in 0..cfg.reps {
            for (tool, into_ours) in [("forward-mt", true), ("forward", false)] {
                let r = (|| -> Result<Sample, String> {
                    let sink = ns_cmd(
                        &p2.ns_b,
                        &tools.join("meter"),
                        &strs(&[
                            "--backend",
                            backend,
                            "--iface",
                            &portspec(backend, &p2.veth_b),
                            "--duration",
                            &(cfg.seconds + 4.0).to_string(),
                            "--idle",
                            "1",
                            "--json",
                            "--quiet",
                        ]),
                    )
                    .spawn()
                    .map_err(|e| e.to_string())?;
                    let fwd = ns_cmd(
                        &p1.ns_b,
                        &tools.join(tool),
                        &strs(&[
                            "--backend",
                            backend,
                            "--in",
                            &portspec(backend, &p1.veth_b),
                            "--out",
                            &portspec_n(backend, &p2.veth_a, 1),
                            "--duration",
                            &(cfg.seconds + 2.0).to_string(),
                            "--json",
                        ]),
                    )
                    .spawn()
                    .map_err(|e| e.to_string())?;
                    std::thread::sleep(Duration::from_millis(500));
                    let gen = ns_cmd(
                        &p1.ns_a,
                        &tools.join("pkt-gen"),
                        &strs(&[
                            "--backend",
                            generator,
                            "--iface",
                            &portspec(generator, &p1.veth_a),
                            "--count",
                            "0",
                            "--duration",
                            &cfg.seconds.to_string(),
                            "--size",
                            &size.to_string(),
                            "--cpu",
                            "0",
                            "--json",
                        ]),
                    )
                    .spawn()
                    .map_err(|e| e.to_string())?;
                    finish(gen, "generator")?;
                    finish(fwd, tool)?;
                    finish(sink, "meter (sink)")
                })();
                match (r, into_ours) {
                    (Ok(s), true) => row.ours.push(s),
                    (Ok(s), false) => row.base.push(s),
                    (Err(e), _) => row.error = Some(e),
                }
            }
        }
        rows.push(row);
    }
    drop((p1, p2));
    rows
}

/// Criterion micro-benchmarks of core, as (name, ns per iteration).
fn micro(quick: bool) -> Result<Vec<(String, f64)>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let (warm, meas) = if quick { ("0.5", "1") } else { ("1", "3") };
    let out = Command::new(cargo)
        .args([
            "bench",
            "-p",
            "nethuns-core",
            "--bench",
            "machinery",
            "--",
            "--warm-up-time",
            warm,
            "--measurement-time",
            meas,
            "--output-format",
            "bencher",
        ])
        .current_dir(util::root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo bench: {e}"))?;
    if !out.status.success() {
        return Err("cargo bench -p nethuns-core failed".into());
    }
    // bencher format: "test NAME ... bench:   12 ns/iter (+/- 1)"
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("test ")?;
            let (name, rest) = l.split_once(" ... bench:")?;
            let ns: f64 = rest
                .split_whitespace()
                .next()?
                .replace(',', "")
                .parse()
                .ok()?;
            Some((name.trim().to_string(), ns))
        })
        .collect())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{n} × {cpu}, Linux {kernel}")
}

fn fmt_mpps(v: &[Sample]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (m, lo, hi) = stats(&v.iter().map(|s| s.pps).collect::<Vec<_>>());
    let mut out = format!("{:.3} ({:.3}–{:.3})", m / 1e6, lo / 1e6, hi / 1e6);
    // A receive rate is read against what was sent in the same run.
    if v.iter().all(|s| s.offered > 0.0) {
        let (o, _, _) = stats(&v.iter().map(|s| s.offered).collect::<Vec<_>>());
        let (f, flo, fhi) = stats(&v.iter().map(|s| s.pps / s.offered).collect::<Vec<_>>());
        out += &format!(" of {:.3} offered: {f:.2} ({flo:.2}–{fhi:.2})", o / 1e6);
    }
    out
}

fn per_pkt_allocs(v: &[Sample]) -> String {
    let (a, p): (f64, f64) = v
        .iter()
        .fold((0.0, 0.0), |(a, p), s| (a + s.allocs, p + s.pkts));
    if p == 0.0 {
        "-".into()
    } else {
        format!("{:.4}", a / p)
    }
}

fn cpu_str(v: &[Sample]) -> String {
    format!(
        "{:.2}",
        stats(&v.iter().map(|s| s.cpu).collect::<Vec<_>>()).0
    )
}

/// The ratio a test must reach, if it has a target.
fn target(test: &str) -> Option<f64> {
    match test {
        "rx" | "tx" => Some(0.97),
        CEILING => Some(0.8),
        _ => None,
    }
}

/// The name of the AF_XDP-against-ceiling rows.
const CEILING: &str = "rx vs XDP-drop ceiling";

/// Renders the report as Markdown.
fn report(rows: &[Row], micro: &[(String, f64)], cfg: &Cfg) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {}. {} repetitions of {} s each, alternating; median (min–max). Generator \
         pinned to CPU 0, receiver to CPU 1, the receiving veth's RPS steered to CPU 1. A \
         receive rate is followed by the generator's rate in the same runs (offered) and the \
         fraction of it received, median (min–max).\n",
        machine(),
        cfg.reps,
        cfg.seconds
    );
    let _ = writeln!(md, "| backend | test | frame | nethuns Mpps | baseline | baseline Mpps | ratio | Gbit/s | CPU s | allocs/pkt |");
    let _ = writeln!(md, "|---|---|---:|---:|---|---:|---:|---:|---:|---:|");
    let mut below = vec![];
    for r in rows {
        if let Some(e) = &r.error {
            if r.ours.is_empty() {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | failed: {} | | | | | | |",
                    r.backend,
                    r.test,
                    r.size,
                    e.replace('|', "/")
                );
                continue;
            }
        }
        let ratio = r.ratio();
        let gbps = stats(&r.ours.iter().map(|s| s.bps).collect::<Vec<_>>()).0 / 1e9;
        let ratio_s = if r.base.is_empty() {
            "-".to_string()
        } else {
            format!("{ratio:.3}")
        };
        if let Some(t) = target(r.test) {
            if !r.base.is_empty() && ratio < t {
                let prof = match &r.profile {
                    Some(p) => format!(
                        ", profile: results/{}",
                        p.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    None => String::new(),
                };
                below.push(format!(
                    "{} {} {} B ({ratio:.3} < {t}{prof})",
                    r.backend, r.test, r.size
                ));
            }
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.3} | {} | {} |",
            r.backend,
            r.test,
            r.size,
            fmt_mpps(&r.ours),
            r.base_name,
            fmt_mpps(&r.base),
            ratio_s,
            gbps,
            cpu_str(&r.ours),
            per_pkt_allocs(&r.ours)
        );
    }
    let _ = writeln!(
        md,
        "\nTargets: nethuns ≥ 0.97 × the raw engine (rx, tx); AF_XDP receive ≥ 0.8 × the \
         XDP-drop ceiling; 0 allocations per packet. Forwarding rows compare the channel API \
         (two threads) with the single-thread forwarder, both nethuns; no target."
    );
    if below.is_empty() {
        let _ = writeln!(md, "Below target: none.");
    } else {
        let _ = writeln!(md, "Below target: {}.", below.join(", "));
    }
    // AF_PACKET against libpcap, same traffic (both nethuns backends).
    let med_rx = |b: &str, size: usize| {
        rows.iter()
            .find(|r| r.backend == b && r.test == "rx" && r.size == size)
            .map(|r| stats(&r.ours.iter().map(|s| s.pps).collect::<Vec<_>>()).0)
            .filter(|v| *v > 0.0)
    };
    for &size in &cfg.sizes {
        if let (Some(a), Some(p)) = (med_rx("af-packet", size), med_rx("pcap", size)) {
            let _ = writeln!(
                md,
                "AF_PACKET receive vs pcap receive, {size} B: {:.3} vs {:.3} Mpps ({:.2}×).",
                a / 1e6,
                p / 1e6,
                a / p
            );
        }
    }
    if !micro.is_empty() {
        let _ = writeln!(
            md,
            "\nCore machinery (criterion):\n\n| benchmark | ns/iter |\n|---|---:|"
        );
        for (n, ns) in micro {
            let _ = writeln!(md, "| {n} | {ns} |");
        }
    }
    md
}

/// Draws nethuns vs baseline Mpps per row as grouped bars.
fn plot(rows: &[Row], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let rows: Vec<&Row> = rows.iter().filter(|r| !r.ours.is_empty()).collect();
    let med = |v: &[Sample]| stats(&v.iter().map(|s| s.pps / 1e6).collect::<Vec<_>>()).0;
    let ymax = rows
        .iter()
        .map(|r| med(&r.ours).max(med(&r.base)))
        .fold(0.1, f64::max)
        * 1.15;
    let w = 160 + 90 * rows.len().max(1) as u32;
    let root = SVGBackend::new(path, (w, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("nethuns vs raw engine (Mpps, median)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(70)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..rows.len().max(1) as f64, 0f64..ymax)
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {}B",
                r.backend,
                if r.test == CEILING {
                    "rx/ceil"
                } else {
                    r.test.split(' ').next().unwrap_or("")
                },
                r.size
            )
        })
        .collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("Mpps")
        .draw()
        .map_err(|e| e.to_string())?;
    let ours = rows.iter().enumerate().map(|(i, r)| {
        Rectangle::new(
            [(i as f64 + 0.1, 0.0), (i as f64 + 0.48, med(&r.ours))],
            BLUE.filled(),
        )
    });
    chart
        .draw_series(ours)
        .map_err(|e| e.to_string())?
        .label("nethuns")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.filled()));
    let base = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.base.is_empty())
        .map(|(i, r)| {
            Rectangle::new(
                [(i as f64 + 0.52, 0.0), (i as f64 + 0.9, med(&r.base))],
                RED.mix(0.6).filled(),
            )
        });
    chart
        .draw_series(base)
        .map_err(|e| e.to_string())?
        .label("baseline (raw engine / single thread)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RED.mix(0.6).filled()));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Replaces the README's results section (between markers) with `md`.
fn update_readme(md: &str, tag: &str, svg: &str) -> Result<(), String> {
    let path = util::root().join("README.md");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let (start, end) = (
        format!("<!-- {tag}:start -->"),
        format!("<!-- {tag}:end -->"),
    );
    let (start, end) = (start.as_str(), end.as_str());
    let body = format!("{start}\n{md}\n![{tag} plot](results/{svg})\n{end}");
    let new = match (text.find(start), text.find(end)) {
        (Some(s), Some(e)) if e > s => format!("{}{}{}", &text[..s], body, &text[e + end.len()..]),
        _ => format!("{text}\n## Benchmark results\n\n{body}\n"),
    };
    std::fs::write(&path, new).map_err(|e| e.to_string())
}

/// The instruction-cost rows: run, written to results/cost.md + cost.svg and the README.
fn cost_section(
    tools: &Path,
    raw: &Path,
    backends: &[&str],
    generator: &'static str,
    dir: &Path,
) -> Result<String, String> {
    let rows = cost::run_all(tools, raw, backends, generator);
    let mut md = format!(
        "Machine: {}. User-space instructions counted by callgrind inside the measured \
         function only (setup excluded): receive = {{512 (pcap), 1024}} 64-byte frames queued \
         in the ring before the loop starts, empty-poll cost subtracted; empty poll = mean of \
         10 000; transmit = 4096 frames, a flush every 32. DPDK: `net_ring0` in-process \
         loopback (no kernel), rounds of 512 sent then drained; Mpps of that loop without \
         callgrind, best of 3. `batch 32`: `recv_batch` / `send_batch` with 32 slots. Raw = the engine's own loop (xtask/raw, `raw-pcap`).\n\n",
        machine()
    );
    md += &cost::report(&rows);
    let misses = cost::misses(&rows);
    md += "\nTargets: receive ≤ raw + 15 instructions per packet (pcap ≤ raw + 40), an empty poll \
           ≤ 1.2 × raw, transmit ≤ raw + 15; in bursts of 32 ≤ raw + 5.\n";
    if !misses.is_empty() {
        md += &format!("Below target: {}.\n", misses.join("; "));
    }
    std::fs::write(dir.join("cost.md"), &md).map_err(|e| e.to_string())?;
    cost::plot(&rows, &dir.join("cost.svg"))?;
    update_readme(&md, "cost", "cost.svg")?;
    Ok(md)
}

/// `cargo xtask bench`.
pub fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let cost_only = args.iter().any(|a| a == "--cost");
    let cfg = Cfg {
        seconds: if quick { 1.0 } else { 1.2 },
        reps: if quick { 1 } else { 4 },
        sizes: vec![64, 1500],
    };
    crate::deps::ensure(true)?;
    if !nethuns_testnet::is_root() {
        return Err("the benchmarks create network namespaces: run as root".into());
    }
    let backends: Vec<&'static str> = crate::demo::backends()
        .into_iter()
        .filter(|b| b.unavailable.is_none())
        .map(|b| b.name)
        .collect();
    let features: Vec<&str> = crate::demo::backends()
        .iter()
        .filter(|b| crate::demo::WIRED.contains(&b.name))
        .map(|b| b.feature)
        .collect();
    let tools = crate::demo::build_tools(&features.join(","))?;
    // The fastest sender compiled in generates the receive tests' traffic.
    let generator = ["af-xdp", "af-packet", "pcap"]
        .into_iter()
        .find(|g| backends.contains(g))
        .unwrap_or("pcap");
    let raw = util::target_dir().join("raw");
    let build = util::root().join("xtask/raw/build.sh");
    util::sh(&format!("sh {} {} >&2", build.display(), raw.display()))?;
    let dir = util::root().join("results");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    nethuns_testnet::cleanup_stale();
    let cost_md = cost_section(&tools, &raw, &backends, generator, &dir)?;
    if cost_only {
        println!("{cost_md}");
        println!("written: results/cost.md, results/cost.svg, README.md (cost section)");
        return Ok(());
    }
    // Profiles of an earlier run would be mistaken for this one's.
    for e in std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("perf-") && name.ends_with(".txt") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let pair = NetPair::new("bench", Default::default())?;
    // On veth the receive work runs on the sender's CPU unless RPS moves it: steer it to the
    // receiver's CPU, so a receive rate measures the receiver and not only the generator.
    nethuns_testnet::run_in(
        &pair.ns_b,
        "sh",
        &[
            "-c",
            &format!(
                "echo 2 > /sys/class/net/{}/queues/rx-0/rps_cpus",
                pair.veth_b
            ),
        ],
    )?;
    let bench = Bench {
        tools: tools.clone(),
        raw,
        pair: &pair,
        cfg,
        generator,
    };
    let micro = micro(quick).unwrap_or_else(|e| {
        eprintln!("bench: micro-benchmarks failed: {e}");
        vec![]
    });
    let mut rows = vec![];
    for b in &backends {
        for &size in &bench.cfg.sizes {
            for test in ["rx", "tx"] {
                eprintln!("bench: {b} {test} {size} B");
                rows.push(bench.row(b, test, size));
            }
            if *b == "af-xdp" {
                eprintln!("bench: XDP-drop ceiling {size} B");
                let mut row = Row::new(b, CEILING, size, "XDP drop (C)");
                row.ours = rows
                    .iter()
                    .find(|r| r.backend == *b && r.test == "rx" && r.size == size)
                    .map(|r| r.ours.clone())
                    .unwrap_or_default();
                match bench.ceiling(size) {
                    Ok(v) => row.base = v,
                    Err(e) => row.error = Some(e),
                }
                rows.push(row);
            }
        }
    }
    // Where a row misses its target, profile the nethuns side (perf, timer sampling).
    let has_perf = Command::new("perf").arg("--version").output().is_ok();
    for row in rows.iter_mut() {
        let below = target(row.test)
            .is_some_and(|t| row.test != CEILING && !row.base.is_empty() && row.ratio() < t);
        if below && has_perf {
            eprintln!(
                "bench: profiling {} {} {} B",
                row.backend, row.test, row.size
            );
            match bench.profile(row, &dir) {
                Ok(p) => row.profile = Some(p),
                Err(e) => eprintln!("bench: profile failed: {e}"),
            }
        }
    }
    let cfg = bench.cfg;
    drop(pair);
    for b in &backends {
        eprintln!("bench: {b} forwarding");
        // Forwarding is informational (no target): fewer repetitions keep the run short.
        let fwd_cfg = Cfg {
            seconds: cfg.seconds,
            reps: cfg.reps.min(2),
            sizes: cfg.sizes.clone(),
        };
        rows.extend(forward_rows(&tools, &fwd_cfg, b, generator));
    }
    let md = report(&rows, &micro, &cfg);
    std::fs::write(dir.join("bench.md"), &md).map_err(|e| e.to_string())?;
    plot(&rows, &dir.join("bench.svg"))?;
    update_readme(&md, "bench", "bench.svg")?;
    println!("{cost_md}\n{md}");
    println!("written: results/bench.md, results/bench.svg, README.md (results section)");
    Ok(())
}
