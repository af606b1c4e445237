//! `cargo xtask bench --cost`: what the abstraction costs, in user-space instructions, counted
//! by callgrind (repeatable to a few instructions, unlike a veth rate).
//!
//! For each backend, nethuns' `cost` tool and the raw engine's loop (`--mode cost-*`, see
//! xtask/raw/raw_common.h) run under `valgrind --tool=callgrind` with collection only inside
//! one function: `cost_drain` (receive `N` packets queued in the ring beforehand by a
//! generator, while the receiver waited), `cost_empty` (10 000 polls of the empty ring) or
//! `tx_loop` (send `N` frames). Instructions per packet = (drain − empty polls during the
//! drain × cost of one empty poll) / packets. DPDK runs in-process on `net_ring0` (a loopback
//! port: no kernel at all), send and drain in rounds of 512, and also without callgrind for a
//! rate.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nethuns_testnet::NetPair;

use crate::demo::{json_num, portspec};

/// Empty polls measured per program.
const POLLS: u64 = 10_000;
/// Frames per transmit measurement.
const TX_COUNT: u64 = 4096;
/// Frames through the DPDK loopback port when timed without callgrind.
const LOOP_TIMED: u64 = 4_000_000;

/// One measured path: nethuns against the raw loop.
#[derive(Default)]
pub struct CostRow {
    pub backend: String,
    /// `rx`, `tx`, `loop rx`, `loop tx`.
    pub test: String,
    pub ours: Option<f64>,
    pub raw: Option<f64>,
    /// Instructions per empty poll (receive rows).
    pub ours_empty: Option<f64>,
    pub raw_empty: Option<f64>,
    /// Million packets per second without callgrind (DPDK loopback rows).
    pub ours_mpps: Option<f64>,
    pub raw_mpps: Option<f64>,
    /// The largest entries of nethuns' profile (source file: function), instructions per
    /// packet.
    pub top: Vec<(String, f64)>,
    pub error: Option<String>,
}

impl CostRow {
    /// The row's target for the gap per packet, in instructions over raw.
    pub fn target(&self) -> f64 {
        if self.test.ends_with("batch 32") {
            5.0
        } else if self.backend == "pcap" && self.test == "rx" {
            40.0
        } else {
            15.0
        }
    }

    /// Rows that miss a target, with the measured gap.
    pub fn misses(&self) -> Vec<String> {
        let mut v = vec![];
        if let (Some(o), Some(r)) = (self.ours, self.raw) {
            if o - r > self.target() {
                v.push(format!(
                    "{} {}: {:.1} instructions per packet over raw (target {})",
                    self.backend,
                    self.test,
                    o - r,
                    self.target()
                ));
            }
        }
        if let (Some(o), Some(r)) = (self.ours_empty, self.raw_empty) {
            if o > 1.2 * r {
                v.push(format!(
                    "{} {}: an empty poll {:.1}× raw's (target 1.2×)",
                    self.backend,
                    self.test,
                    o / r
                ));
            }
        }
        v
    }
}

/// What one program run under callgrind reported.
struct Measured {
    instructions: u64,
    packets: u64,
    drain_empty: u64,
    out: PathBuf,
}

/// Where the programs are and the pair they run on.
pub struct Cost<'a> {
    pub tools: PathBuf,
    pub raw: PathBuf,
    pub pair: &'a NetPair,
    pub generator: &'static str,
    pub work: PathBuf,
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Reads lines of `child`'s stdout until one satisfies `f`.
fn read_until(r: &mut impl BufRead, f: impl Fn(&str) -> bool) -> Result<String, String> {
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Err("the program exited early".into()),
            Ok(_) if f(line.trim()) => return Ok(line.trim().to_string()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Total instructions of a callgrind output file.
fn totals(out: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{}: no totals line", out.display()))
}

/// The flat profile of a callgrind output file: (source file: function, instructions).
fn profile(out: &Path) -> Vec<(String, u64)> {
    let Ok(o) = Command::new("callgrind_annotate").arg(out).output() else {
        return vec![];
    };
    let text = String::from_utf8_lossy(&o.stdout);
    let mut v = vec![];
    let mut in_table = false;
    for l in text.lines() {
        if l.contains("file:function") {
            in_table = true;
            continue;
        }
        if !in_table || l.starts_with("---") {
            continue;
        }
        if l.trim().is_empty() {
            if !v.is_empty() {
                break;
            }
            continue;
        }
        let mut it = l.trim().splitn(2, ' ');
        let (Some(n), Some(rest)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(n) = n.replace(',', "").parse::<u64>() else {
            continue;
        };
        let name = rest.split_once(')').map_or(rest, |(_, r)| r).trim();
        v.push((short_name(name), n));
    }
    v
}

/// `…/nethuns-afpacket/src/rx.rs:nethuns_core::socket::Socket::recv [bin]` → `afpacket rx.rs:
/// Socket::recv`: the crate, the file, and the last two path segments of the function.
fn short_name(s: &str) -> String {
    let s = s.split(" [").next().unwrap_or(s);
    let (file, func) = s.split_once(':').unwrap_or(("???", s));
    let mut parts = file.rsplit('/');
    let base = parts.next().unwrap_or(file);
    let krate = parts.nth(1).unwrap_or("").trim_start_matches("nethuns-");
    let func: Vec<&str> = func.split("::").collect();
    let func = func[func.len().saturating_sub(2)..].join("::");
    let func = func.split('<').next().unwrap_or(&func).to_string();
    if file == "???" {
        func
    } else {
        format!("{krate}/{base}: {func}")
    }
}

impl Cost<'_> {
    /// Runs `prog args` in `ns` under callgrind, collecting inside `func` only. `traffic`:
    /// packets the generator queues for a receiver (which says `ready`, then waits for a line
    /// on stdin); `None`: a transmitter, which starts at once.
    fn callgrind(
        &self,
        ns: &str,
        prog: &Path,
        args: &[String],
        func: &str,
        traffic: Option<u64>,
    ) -> Result<Measured, String> {
        let name = prog.file_name().unwrap_or_default().to_string_lossy();
        let out = self.work.join(format!("callgrind.{name}.{func}.out"));
        let _ = std::fs::remove_file(&out);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "valgrind", "--tool=callgrind", "-q"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .args([
                "--collect-atstart=no",
                &format!("--toggle-collect=*{func}*"),
            ])
            .arg(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("valgrind {name}: {e}"))?;
        let r = self.drive(&mut child, traffic);
        let o = child.wait_with_output().map_err(|e| e.to_string())?;
        let what = format!("{name} {}", args.join(" "));
        let line =
            r.map_err(|e| format!("{what}: {e}: {}", String::from_utf8_lossy(&o.stderr).trim()))?;
        if !o.status.success() {
            return Err(format!("{what}: {}", String::from_utf8_lossy(&o.stderr)));
        }
        let num = |k| json_num(&line, k).unwrap_or(0.0) as u64;
        if num("late") > 0 {
            return Err(format!(
                "{what}: {} packets came during the empty polls",
                num("late")
            ));
        }
        Ok(Measured {
            instructions: totals(&out)?,
            packets: num("packets"),
            drain_empty: num("drain_empty"),
            out,
        })
    }

    /// The receiver's handshake and the traffic; returns the JSON line.
    fn drive(&self, child: &mut Child, traffic: Option<u64>) -> Result<String, String> {
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        if let Some(n) = traffic {
            read_until(&mut stdout, |l| l == "ready")?;
            if n > 0 {
                self.generate(n)?;
            }
            // Let the last frames reach the ring (and AF_PACKET retire its block).
            std::thread::sleep(std::time::Duration::from_millis(300));
            let mut stdin = child.stdin.take().ok_or("no stdin")?;
            stdin.write_all(b"go\n").map_err(|e| e.to_string())?;
        }
        read_until(&mut stdout, |l| l.starts_with('{'))
    }

    /// `n` frames of 64 bytes from ns_a, paced so the veth backlog does not overflow.
    fn generate(&self, n: u64) -> Result<(), String> {
        let g = self.generator;
        let out = Command::new("ip")
            .args(["netns", "exec", &self.pair.ns_a])
            .arg(self.tools.join("pkt-gen"))
            .args(strs(&[
                "--backend",
                g,
                "--iface",
                &portspec(g, &self.pair.veth_a),
            ]))
            .args(strs(&[
                "--count",
                &n.to_string(),
                "--rate",
                "100000",
                "--json",
            ]))
            .output()
            .map_err(|e| format!("pkt-gen: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("pkt-gen: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Receive cost of one program: (instructions per packet, per empty poll, drain run).
    fn rx(&self, prog: &Path, args: &[String], n: u64) -> Result<(f64, f64, Measured), String> {
        let ns = self.pair.ns_b.clone();
        let with = |count: u64, polls: u64| {
            let mut a = args.to_vec();
            a.extend(strs(&[
                "--count",
                &count.to_string(),
                "--polls",
                &polls.to_string(),
            ]));
            a
        };
        let e = self.callgrind(&ns, prog, &with(0, POLLS), "cost_empty", Some(0))?;
        let empty = e.instructions as f64 / POLLS as f64;
        let d = self.callgrind(&ns, prog, &with(n, 0), "cost_drain", Some(n))?;
        if d.packets == 0 {
            return Err(format!("{}: no packet reached the ring", prog.display()));
        }
        let per = (d.instructions as f64 - d.drain_empty as f64 * empty) / d.packets as f64;
        Ok((per, empty, d))
    }

    /// Transmit cost of one program, instructions per frame.
    fn tx(&self, prog: &Path, args: &[String]) -> Result<(f64, Measured), String> {
        let mut a = args.to_vec();
        a.extend(strs(&["--count", &TX_COUNT.to_string()]));
        let m = self.callgrind(&self.pair.ns_a, prog, &a, "tx_loop", None)?;
        Ok((m.instructions as f64 / m.packets.max(1) as f64, m))
    }

    /// The raw loop of a backend and its mode prefix.
    fn raw_prog(&self, backend: &str) -> PathBuf {
        match backend {
            "pcap" => self.tools.join("raw-pcap"),
            "af-packet" => self.raw.join("raw_afpacket"),
            "af-xdp" => self.raw.join("raw_afxdp"),
            _ => self.raw.join("raw_dpdk"),
        }
    }

    /// The receive and transmit rows of a kernel backend on the veth pair.
    pub fn veth_rows(&self, backend: &str) -> Vec<CostRow> {
        // libpcap's ring holds fewer 64-byte frames than AF_PACKET's / AF_XDP's.
        let n = if backend == "pcap" { 512 } else { 1024 };
        let cost = self.tools.join("cost");
        let raw = self.raw_prog(backend);
        let ours_args = |mode: &str, iface: &str| {
            let p = portspec(backend, iface);
            strs(&["--backend", backend, "--mode", mode, "--iface", &p])
        };
        // --json: the raw transmit loops print their totals (packets) as JSON.
        let raw_args =
            |mode: &str, iface: &str| strs(&["--mode", mode, "--iface", iface, "--json"]);
        let (b, a) = (&self.pair.veth_b, &self.pair.veth_a);
        let raw_rx = self.rx(&raw, &raw_args("cost-rx", b), n);
        let raw_tx = self.tx(&raw, &raw_args("cost-tx", a));
        let mut rows = vec![];
        // Per packet (`recv` / `send`), then in bursts of 32 (`recv_batch` / `send_batch`)
        // against the same raw loop (which is burst-wise already).
        for batch in [false, true] {
            let (suffix, extra) = if batch {
                (" batch 32", strs(&["--batch"]))
            } else {
                ("", vec![])
            };
            let mut rx = CostRow {
                backend: backend.into(),
                test: format!("rx{suffix}"),
                ..Default::default()
            };
            match (
                self.rx(&cost, &[ours_args("rx", b), extra.clone()].concat(), n),
                &raw_rx,
            ) {
                (Ok(o), Ok(r)) => {
                    rx.ours = Some(o.0);
                    rx.ours_empty = Some(o.1);
                    rx.raw = Some(r.0);
                    rx.raw_empty = Some(r.1);
                    rx.top = top(&o.2);
                }
                (Err(e), _) => rx.error = Some(e),
                (_, Err(e)) => rx.error = Some(e.clone()),
            }
            let mut tx = CostRow {
                backend: backend.into(),
                test: format!("tx{suffix}"),
                ..Default::default()
            };
            match (
                self.tx(&cost, &[ours_args("tx", a), extra].concat()),
                &raw_tx,
            ) {
                (Ok(o), Ok(r)) => {
                    tx.ours = Some(o.0);
                    tx.raw = Some(r.0);
                    tx.top = top(&o.1);
                }
                (Err(e), _) => tx.error = Some(e),
                (_, Err(e)) => tx.error = Some(e.clone()),
            }
            rows.extend([rx, tx]);
        }
        rows
    }

    /// DPDK in-process on `net_ring0`: the receive and transmit halves of the loop, and the
    /// loop's rate without callgrind.
    pub fn dpdk_rows(&self) -> Vec<CostRow> {
        let cost = self.tools.join("cost");
        let raw = self.raw_prog("dpdk");
        let ours = strs(&[
            "--backend",
            "dpdk",
            "--mode",
            "loop",
            "--iface",
            "net_ring0",
        ]);
        let rawa = strs(&["--mode", "cost-loop", "--iface", "net_ring0"]);
        let mut rows = vec![];
        let batch = strs(&["--batch"]);
        let ours_batch = [ours.clone(), batch].concat();
        for (test, func, ours) in [
            ("loop rx", "cost_drain", &ours),
            ("loop tx", "tx_loop", &ours),
            ("loop rx batch 32", "cost_drain", &ours_batch),
            ("loop tx batch 32", "tx_loop", &ours_batch),
        ] {
            let mut row = CostRow {
                backend: "dpdk".into(),
                test: test.into(),
                ..Default::default()
            };
            let r = (|| -> Result<(), String> {
                let run = |prog: &Path, args: &[String], f: &str, count: u64, polls: u64| {
                    let mut a = args.to_vec();
                    a.extend(strs(&["--count", &count.to_string()]));
                    a.extend(strs(&["--polls", &polls.to_string()]));
                    self.callgrind(&self.pair.ns_a, prog, &a, f, Some(0))
                };
                let o = run(&cost, ours, func, 1024, 0)?;
                let r = run(&raw, &rawa, func, 1024, 0)?;
                row.ours = Some(o.instructions as f64 / o.packets.max(1) as f64);
                row.raw = Some(r.instructions as f64 / r.packets.max(1) as f64);
                row.top = top(&o);
                if func == "cost_drain" {
                    let o = run(&cost, ours, "cost_empty", 0, POLLS)?;
                    let r = run(&raw, &rawa, "cost_empty", 0, POLLS)?;
                    row.ours_empty = Some(o.instructions as f64 / POLLS as f64);
                    row.raw_empty = Some(r.instructions as f64 / POLLS as f64);
                } else {
                    row.ours_mpps = Some(self.timed(&cost, ours)?);
                    row.raw_mpps = Some(self.timed(&raw, &rawa)?);
                }
                Ok(())
            })();
            row.error = r.err();
            rows.push(row);
        }
        rows
    }

    /// The loopback loop without callgrind: Mpps of send + receive, the best of three runs
    /// (the machine's other load only ever slows a run down).
    fn timed(&self, prog: &Path, args: &[String]) -> Result<f64, String> {
        let mut best = 0.0f64;
        for _ in 0..3 {
            best = best.max(self.timed_once(prog, args)?);
        }
        Ok(best)
    }

    fn timed_once(&self, prog: &Path, args: &[String]) -> Result<f64, String> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.pair.ns_a])
            .arg(prog)
            .args(args)
            .args(strs(&["--count", &LOOP_TIMED.to_string(), "--polls", "0"]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| e.to_string())?;
        let line = self.drive(&mut child, Some(0));
        let o = child.wait_with_output().map_err(|e| e.to_string())?;
        let line = line.map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&o.stderr)))?;
        let n = json_num(&line, "packets").unwrap_or(0.0);
        let s = json_num(&line, "seconds").unwrap_or(0.0);
        Ok(if s > 0.0 { n / s / 1e6 } else { 0.0 })
    }
}

/// The five largest entries of a run's profile, per packet.
fn top(m: &Measured) -> Vec<(String, f64)> {
    let mut p = profile(&m.out);
    p.sort_by_key(|b| std::cmp::Reverse(b.1));
    p.into_iter()
        .take(5)
        .map(|(n, i)| (n, i as f64 / m.packets.max(1) as f64))
        .collect()
}

/// The instruction-cost table (markdown) and the rows that miss a target.
pub fn report(rows: &[CostRow]) -> String {
    let mut md = String::from(
        "| backend | path | nethuns instr/pkt | raw instr/pkt | gap | nethuns instr/empty poll | raw instr/empty poll | ratio | Mpps nethuns / raw | largest in nethuns' loop (instr/pkt) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for r in rows {
        if let Some(e) = &r.error {
            md += &format!(
                "| {} | {} | error: {} ||||||||\n",
                r.backend,
                r.test,
                e.replace('\n', " ")
            );
            continue;
        }
        let gap = match (r.ours, r.raw) {
            (Some(o), Some(x)) => format!("{:+.1}", o - x),
            _ => "-".into(),
        };
        let ratio = match (r.ours_empty, r.raw_empty) {
            (Some(o), Some(x)) if x > 0.0 => format!("{:.2}×", o / x),
            _ => "-".into(),
        };
        let mpps = match (r.ours_mpps, r.raw_mpps) {
            (Some(o), Some(x)) => format!("{o:.2} / {x:.2}"),
            _ => "-".into(),
        };
        let top: Vec<String> = r.top.iter().map(|(n, v)| format!("{n} {v:.1}")).collect();
        md += &format!(
            "| {} | {} | {} | {} | {gap} | {} | {} | {ratio} | {mpps} | {} |\n",
            r.backend,
            r.test,
            f(r.ours),
            f(r.raw),
            f(r.ours_empty),
            f(r.raw_empty),
            top.join("; ")
        );
    }
    md
}

/// The rows below target, one line.
pub fn misses(rows: &[CostRow]) -> Vec<String> {
    rows.iter().flat_map(CostRow::misses).collect()
}

/// Every row: the kernel backends on a veth pair of their own, DPDK in-process.
pub fn run_all(
    tools: &Path,
    raw: &Path,
    backends: &[&str],
    generator: &'static str,
) -> Vec<CostRow> {
    let work = std::env::temp_dir().join("nethuns-bench-cost");
    let pair = std::fs::create_dir_all(&work)
        .map_err(|e| e.to_string())
        .and_then(|()| NetPair::new("benchcost", Default::default()));
    let pair = match pair {
        Ok(p) => p,
        Err(e) => {
            return vec![CostRow {
                backend: "all".into(),
                test: "-".into(),
                error: Some(e),
                ..Default::default()
            }]
        }
    };
    let c = Cost {
        tools: tools.to_path_buf(),
        raw: raw.to_path_buf(),
        pair: &pair,
        generator,
        work: work.clone(),
    };
    let mut rows = vec![];
    for b in backends {
        eprintln!("bench --cost: {b}");
        if *b == "dpdk" {
            rows.extend(c.dpdk_rows());
        } else {
            rows.extend(c.veth_rows(b));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    rows
}

/// A bar chart: instructions per packet, nethuns beside raw, one pair of bars per row.
pub fn plot(rows: &[CostRow], path: &Path) -> Result<(), String> {
    let rows: Vec<&CostRow> = rows.iter().filter(|r| r.ours.is_some()).collect();
    let max = rows
        .iter()
        .flat_map(|r| [r.ours, r.raw])
        .flatten()
        .fold(1.0f64, f64::max);
    let (w, row_h, left) = (760.0, 34.0, 150.0);
    let h = 50.0 + row_h * rows.len() as f64;
    let scale = (w - left - 80.0) / max;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"18\">User-space instructions per packet (callgrind): nethuns (blue) vs the raw engine loop (grey)</text>\n"
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 34.0 + row_h * i as f64;
        svg += &format!(
            "<text x=\"10\" y=\"{}\">{} {}</text>\n",
            y + 18.0,
            r.backend,
            r.test
        );
        for (j, (v, color)) in [(r.ours, "#3b6fb6"), (r.raw, "#999")].iter().enumerate() {
            let v = v.unwrap_or(0.0);
            let yy = y + 3.0 + 13.0 * j as f64;
            svg += &format!(
                "<rect x=\"{left}\" y=\"{yy}\" width=\"{:.1}\" height=\"12\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{v:.1}</text>\n",
                v * scale,
                left + v * scale + 4.0,
                yy + 10.0
            );
        }
    }
    svg += "</svg>\n";
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}
