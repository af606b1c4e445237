//! `cargo xtask bench`: nethuns against the raw engines, same traffic, same run. First the
//! instruction cost under callgrind ([`cost`]), then the veth rates ([`run`]); the tables
//! ([`report`]) and plots ([`plot`]) go to results/ and the README's benchmark section.

mod cost;
mod forward;
mod micro;
mod plot;
mod profile;
mod report;
mod run;
mod stats;

use std::path::Path;
use std::process::Command;

use nethuns_testnet::NetPair;

use crate::backends::{self, Backend};
use crate::util;
use run::{Bench, Cfg};
use stats::{Row, Test};

/// `cargo xtask bench`'s options.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The instruction cost only (results/cost.md, cost.svg, the README's cost section).
    #[arg(long)]
    pub cost: bool,
    /// One repetition of each veth run (a smoke test of the harness, not a result).
    #[arg(long)]
    pub quick: bool,
    /// Only these backends (comma-separated), e.g. to re-measure one in about a minute with
    /// --cost. The README and results/ are then left as they are (the tables printed only).
    #[arg(long, value_delimiter = ',')]
    pub backend: Vec<Backend>,
}

/// The veth settings: about five minutes for four backends.
fn cfg(quick: bool) -> Cfg {
    Cfg {
        seconds: 1.0,
        reps: if quick { 1 } else { 3 },
        sizes: vec![64, 1500],
        fwd_reps: if quick { 1 } else { 2 },
        fwd_sizes: vec![64],
    }
}

/// The instruction-cost rows: run, printed, and (for all backends) written to results/
/// and the README.
fn cost_section(
    tools: &Path,
    raw: &Path,
    backends: &[Backend],
    generator: Backend,
    write: Option<&Path>,
) -> Result<String, String> {
    let rows = cost::run_all(tools, raw, backends, generator);
    let md = report::cost(&rows);
    if let Some(dir) = write {
        std::fs::write(dir.join("cost.md"), &md).map_err(|e| e.to_string())?;
        plot::cost(&rows, &dir.join("cost.svg"))?;
        report::update_readme(&md, "cost", "cost.svg")?;
    }
    Ok(md)
}

/// Removes the perf reports of an earlier run (they would be mistaken for this one's).
fn remove_old_profiles(dir: &Path) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("perf-") && name.ends_with(".txt") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// The veth rows of every backend: rx and tx against the raw loops, the XDP-drop ceiling,
/// perf profiles of the rows below target, then forwarding.
fn veth_rows(bench: &Bench, backends: &[Backend], dir: &Path) -> Vec<Row> {
    let mut rows = vec![];
    for &b in backends {
        for &size in &bench.cfg.sizes {
            for test in [Test::Rx, Test::Tx] {
                eprintln!("bench: {b} {} {size} B", test.label());
                rows.push(bench.row(b, test, size));
            }
            if b == Backend::AfXdp {
                eprintln!("bench: XDP-drop ceiling {size} B");
                let mut row = Row::new(b, Test::Ceiling, size, "XDP drop (C)");
                row.ours = rows
                    .iter()
                    .find(|r| r.backend == b && r.test == Test::Rx && r.size == size)
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
        if has_perf && row.test != Test::Ceiling && row.below_target() {
            eprintln!(
                "bench: profiling {} {} {} B",
                row.backend,
                row.test.label(),
                row.size
            );
            match bench.profile(row, dir) {
                Ok(p) => row.profile = Some(p),
                Err(e) => eprintln!("bench: profile failed: {e}"),
            }
        }
    }
    rows
}

/// `cargo xtask bench`.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    crate::deps::ensure(true)?;
    if !nethuns_testnet::is_root() {
        return Err("the benchmarks create network namespaces: run as root".into());
    }
    let runnable = backends::runnable();
    let chosen: Vec<Backend> = if args.backend.is_empty() {
        runnable.clone()
    } else {
        if let Some(b) = args.backend.iter().find(|b| !runnable.contains(b)) {
            return Err(format!(
                "--backend {b}: cannot run here ({})",
                b.unavailable().unwrap_or("no raw loop")
            ));
        }
        args.backend.clone()
    };
    // One build of the tools serves both tables.
    let tools = util::build_examples(&backends::all_features())?;
    // The fastest sender that can run generates the receive tests' traffic.
    let generator = [Backend::AfXdp, Backend::AfPacket, Backend::Pcap]
        .into_iter()
        .find(|g| runnable.contains(g))
        .unwrap_or(Backend::Pcap);
    let raw = util::target_dir().join("raw");
    let build = util::root().join("xtask/raw/build.sh");
    util::sh(&format!("sh {} {} >&2", build.display(), raw.display()))?;
    let dir = util::root().join("results");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // A subset of the backends is a re-measurement: printed, not written over the results.
    let write = args.backend.is_empty().then_some(dir.as_path());
    nethuns_testnet::cleanup_stale();
    let cost_md = cost_section(&tools, &raw, &chosen, generator, write)?;
    if args.cost {
        println!("{cost_md}");
        if write.is_some() {
            println!("written: results/cost.md, results/cost.svg, README.md (cost section)");
        }
        return Ok(());
    }
    // The perf profiles of rows below target go next to the results; a re-measurement's
    // to a temporary folder (printed in its table).
    let prof_dir = if write.is_some() {
        remove_old_profiles(&dir)?;
        dir.clone()
    } else {
        let d = std::env::temp_dir().join("nethuns-bench-profiles");
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        d
    };
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
        cfg: cfg(args.quick),
        generator,
    };
    let micro = micro::run(args.quick).unwrap_or_else(|e| {
        eprintln!("bench: micro-benchmarks failed: {e}");
        vec![]
    });
    let mut rows = veth_rows(&bench, &chosen, &prof_dir);
    let cfg = bench.cfg;
    drop(pair);
    for &b in &chosen {
        eprintln!("bench: {b} forwarding");
        rows.extend(forward::rows(&tools, &cfg, b, generator));
    }
    let md = report::veth(&rows, &micro, &cfg);
    if write.is_some() {
        std::fs::write(dir.join("bench.md"), &md).map_err(|e| e.to_string())?;
        plot::veth(&rows, &dir.join("bench.svg"))?;
        report::update_readme(&md, "bench", "bench.svg")?;
    }
    println!("{cost_md}\n{md}");
    if write.is_some() {
        println!(
            "written: results/cost.md, cost.svg, bench.md, bench.svg, README.md (both sections)"
        );
    }
    Ok(())
}
