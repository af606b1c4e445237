//! `cargo xtask bench --cost`: what the abstraction costs, in user-space instructions, counted
//! by callgrind (repeatable to a few instructions, unlike a veth rate).
//!
//! For each backend, nethuns' `cost` tool and the raw engine's loop (`--mode cost-*`, see
//! xtask/raw/raw_common.h) run under `valgrind --tool=callgrind` with collection only inside
//! one function: `cost_drain` (receive `N` packets queued in the ring beforehand by a
//! generator, while the receiver waited), `cost_fwd` (the same, each packet sent back),
//! `cost_empty` (10 000 polls of the empty ring) or `tx_loop` (send `N` frames). Instructions
//! per packet = (drain − empty polls during the drain × cost of one empty poll) / packets.
//! DPDK runs in-process on `net_ring0` (a loopback port: no kernel at all), send and drain in
//! rounds of 512, and also without callgrind for a rate.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nethuns_testnet::NetPair;

mod row;

pub use row::{CostRow, CostTest, TABLE_TOP};

use super::profile::{difference, flat, totals};
use crate::backends::Backend;
use crate::util::{json_num, strs};

/// Empty polls measured per program.
const POLLS: u64 = 10_000;
/// Frames per transmit measurement.
const TX_COUNT: u64 = 4096;
/// Frames through the DPDK loopback port when timed without callgrind.
const LOOP_TIMED: u64 = 4_000_000;
/// Entries of the profile difference kept per row (the table shows the first
/// [`row::TABLE_TOP`], the list of rows below target all).
const TOP: usize = 8;

/// What one program run under callgrind reported.
struct Measured {
    instructions: u64,
    packets: u64,
    drain_empty: u64,
    out: PathBuf,
}

impl Measured {
    fn per_packet(&self) -> f64 {
        self.instructions as f64 / self.packets.max(1) as f64
    }
}

/// Where the programs are and the pair they run on.
pub struct Cost<'a> {
    pub tools: PathBuf,
    pub raw: PathBuf,
    pub pair: &'a NetPair,
    pub generator: Backend,
    pub work: PathBuf,
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

/// The largest profile entries of `ours` beyond `base`'s, per packet.
fn top(ours: &Measured, base: &Measured) -> Vec<(String, f64)> {
    difference(
        &flat(&ours.out),
        ours.packets,
        &flat(&base.out),
        base.packets,
        TOP,
    )
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
        let tag: String = args
            .iter()
            .filter(|a| a.starts_with("--") && a.len() > 2)
            .map(|a| a.trim_start_matches('-'))
            .collect::<Vec<_>>()
            .join("_");
        let out = self.work.join(format!("callgrind.{name}.{func}.{tag}.out"));
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
                // Let the last frames reach the ring (and AF_PACKET retire its block).
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
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
                g.name(),
                "--iface",
                &g.portspec(&self.pair.veth_a),
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

    /// Receive cost of one program (`func`: the drain function): (instructions per packet,
    /// per empty poll, the drain run).
    fn rx(
        &self,
        prog: &Path,
        args: &[String],
        func: &str,
        n: u64,
    ) -> Result<(f64, f64, Measured), String> {
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
        let d = self.callgrind(&ns, prog, &with(n, 0), func, Some(n))?;
        if d.packets < n {
            // A ring that overflowed: the drain waited out its idle polls, which would be
            // counted as per-packet cost.
            return Err(format!(
                "{}: {} of the {n} frames queued reached the ring",
                prog.display(),
                d.packets
            ));
        }
        let per = (d.instructions as f64 - d.drain_empty as f64 * empty) / d.packets as f64;
        Ok((per, empty, d))
    }

    /// Transmit cost of one program, instructions per frame.
    fn tx(&self, prog: &Path, args: &[String]) -> Result<(f64, Measured), String> {
        let mut a = args.to_vec();
        a.extend(strs(&["--count", &TX_COUNT.to_string()]));
        let m = self.callgrind(&self.pair.ns_a, prog, &a, "tx_loop", None)?;
        Ok((m.per_packet(), m))
    }

    /// The rows of a kernel backend on the veth pair.
    pub fn veth_rows(&self, backend: Backend) -> Vec<CostRow> {
        // libpcap's ring holds fewer frames than AF_PACKET's / AF_XDP's: in immediate mode
        // each takes a slot of `snaplen`, so its default 32 MiB hold 512, and a stray frame
        // (neighbour discovery) must not overflow it.
        let n = if backend == Backend::Pcap { 256 } else { 1024 };
        let cost = self.tools.join("cost");
        let Some(raw) = backend.raw(&self.tools, &self.raw) else {
            return vec![];
        };
        let ours_args = |mode: &str, iface: &str, flags: &[&str]| {
            let p = backend.portspec(iface);
            let mut a = strs(&["--backend", backend.name(), "--mode", mode, "--iface", &p]);
            a.extend(strs(flags));
            a
        };
        // --json: the raw transmit loops print their totals (packets) as JSON.
        let raw_args =
            |mode: &str, iface: &str| strs(&["--mode", mode, "--iface", iface, "--json"]);
        let (b, a) = (&self.pair.veth_b, &self.pair.veth_a);
        let raw_rx = self.rx(&raw.path, &raw_args("cost-rx", b), "cost_drain", n);
        let raw_tx = self.tx(&raw.path, &raw_args("cost-tx", a));
        // The copying forward: the baseline of the zero-copy one.
        let copy_fwd = self.rx(&cost, &ours_args("fwd", b, &["--copy"]), "cost_fwd", n);
        let mut rows = vec![];
        for test in CostTest::ALL {
            let mut row = CostRow::new(backend, test, false);
            let r = if test.receives() {
                let (mode, base) = match test {
                    CostTest::Fwd => ("fwd", &copy_fwd),
                    _ => ("rx", &raw_rx),
                };
                self.rx(&cost, &ours_args(mode, b, test.flags()), test.func(), n)
                    .and_then(|o| {
                        let r = base.as_ref().map_err(Clone::clone)?;
                        row.ours_empty = Some(o.1);
                        row.raw_empty = Some(r.1);
                        Ok(((o.0, o.2), (r.0, &r.2)))
                    })
            } else {
                self.tx(&cost, &ours_args("tx", a, test.flags()))
                    .and_then(|o| {
                        let r = raw_tx.as_ref().map_err(Clone::clone)?;
                        Ok((o, (r.0, &r.1)))
                    })
            };
            match r {
                Ok(((o, om), (r, rm))) => {
                    row.ours = Some(o);
                    row.raw = Some(r);
                    row.top = top(&om, rm);
                }
                Err(e) => row.error = Some(e),
            }
            rows.push(row);
        }
        rows
    }

    /// DPDK in-process on `net_ring0`: the receive, transmit and forward steps of the loop,
    /// and the loop's rate without callgrind.
    pub fn dpdk_rows(&self) -> Vec<CostRow> {
        let cost = self.tools.join("cost");
        let Some(raw) = Backend::Dpdk.raw(&self.tools, &self.raw) else {
            return vec![];
        };
        let ours = |mode: &str, flags: &[&str]| {
            let mut a = strs(&["--backend", "dpdk", "--mode", mode, "--iface", "net_ring0"]);
            a.extend(strs(flags));
            a
        };
        let rawa = strs(&["--mode", "cost-loop", "--iface", "net_ring0"]);
        let run = |prog: &Path, args: &[String], f: &str, count: u64, polls: u64| {
            let mut a = args.to_vec();
            a.extend(strs(&["--count", &count.to_string()]));
            a.extend(strs(&["--polls", &polls.to_string()]));
            self.callgrind(&self.pair.ns_a, prog, &a, f, Some(0))
        };
        let mut rows = vec![];
        for test in CostTest::ALL {
            let mut row = CostRow::new(Backend::Dpdk, test, true);
            let r = (|| -> Result<(), String> {
                let (o_args, b_prog, b_args) = match test {
                    CostTest::Fwd => (ours("loop-fwd", &[]), &cost, ours("loop-fwd", &["--copy"])),
                    _ => (ours("loop", test.flags()), &raw.path, rawa.clone()),
                };
                let o = run(&cost, &o_args, test.func(), 1024, 0)?;
                let r = run(b_prog, &b_args, test.func(), 1024, 0)?;
                row.ours = Some(o.per_packet());
                row.raw = Some(r.per_packet());
                row.top = top(&o, &r);
                if test.receives() {
                    let o = run(&cost, &o_args, "cost_empty", 0, POLLS)?;
                    let r = run(b_prog, &b_args, "cost_empty", 0, POLLS)?;
                    row.ours_empty = Some(o.instructions as f64 / POLLS as f64);
                    row.raw_empty = Some(r.instructions as f64 / POLLS as f64);
                }
                if matches!(test, CostTest::Rx | CostTest::RxBatch) {
                    row.ours_mpps = Some(self.timed(&cost, &o_args)?);
                    row.raw_mpps = Some(self.timed(b_prog, &b_args)?);
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

/// Every row of `backends`: the kernel backends on a veth pair of their own, DPDK in-process.
pub fn run_all(tools: &Path, raw: &Path, backends: &[Backend], generator: Backend) -> Vec<CostRow> {
    // One folder per run: two runs at once must not remove each other's profiles.
    let work = std::env::temp_dir().join(format!("nethuns-bench-cost-{}", std::process::id()));
    let pair = std::fs::create_dir_all(&work)
        .map_err(|e| e.to_string())
        .and_then(|()| NetPair::new("benchcost", Default::default()));
    let pair = match pair {
        Ok(p) => p,
        Err(e) => {
            let mut row = CostRow::new(generator, CostTest::Rx, false);
            row.error = Some(e);
            return vec![row];
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
    for &b in backends {
        eprintln!("bench --cost: {b}");
        if b == Backend::Dpdk {
            rows.extend(c.dpdk_rows());
        } else {
            rows.extend(c.veth_rows(b));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    rows
}
