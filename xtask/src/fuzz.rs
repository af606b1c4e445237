//! `cargo xtask fuzz [--seconds N] [TARGET...]`: every cargo-fuzz target of `fuzz/` (its own
//! workspace) for N seconds each, built once with debug assertions on and run with
//! `RUSTC_BOOTSTRAP=1` on the stable toolchain (cargo-fuzz wants nightly flags: ASan and
//! libFuzzer's coverage instrumentation).
//!
//! Before fuzzing, each target replays its saved crash inputs (`fuzz/regressions/TARGET/`)
//! and its seeds (`fuzz/corpus/TARGET/`); then libFuzzer grows a working corpus in
//! `TARGET_DIR/fuzz-corpus/TARGET` from the seeds. A crash, a leak, a timeout or an
//! out-of-memory fails the command, naming the input libFuzzer saved
//! (`fuzz/artifacts/TARGET/…`). Executions per target (libFuzzer's
//! `stat::number_of_executed_units`) are printed as a table and written to
//! `results/fuzz.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::util::root;

/// Seconds per target unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// One target's run.
struct Outcome {
    target: String,
    seconds: u64,
    executions: Option<u64>,
    /// `None` when it passed; else what went wrong and the input that shows it.
    failure: Option<String>,
}

/// The `[[bin]]` names of `fuzz/Cargo.toml`, in file order.
pub fn targets() -> Result<Vec<String>, String> {
    let manifest = root().join("fuzz").join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(v) = line.strip_prefix("name") {
                let name = v
                    .trim_start()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"');
                out.push(name.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(format!("no [[bin]] target in {}", manifest.display()));
    }
    Ok(out)
}

/// `cargo xtask fuzz`'s options.
#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// Seconds of fuzzing per target.
    #[arg(long, default_value_t = DEFAULT_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// The targets to run (the `[[bin]]` names of fuzz/Cargo.toml); all when none is given.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// The targets `args` chose, checked against fuzz/Cargo.toml.
fn chosen(args: &FuzzArgs) -> Result<Vec<String>, String> {
    let all = targets()?;
    if let Some(bad) = args.targets.iter().find(|t| !all.contains(t)) {
        return Err(format!(
            "unknown target {bad:?}: expected targets among {}",
            all.join(", ")
        ));
    }
    Ok(if args.targets.is_empty() {
        all
    } else {
        args.targets.clone()
    })
}

/// `cargo fuzz` with RUSTC_BOOTSTRAP=1 and the fuzz build's own target dir.
fn cargo_fuzz(target_dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.arg("fuzz")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        // The main workspace's flags (e.g. a sanitizer run's) must not leak into this build.
        .env_remove("RUSTFLAGS")
        .current_dir(root());
    c
}

/// The value of `stat::number_of_executed_units` in libFuzzer's final stats.
pub fn executions(log: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("stat::number_of_executed_units:"))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
}

/// Where libFuzzer saved the input of a failure (`Test unit written to PATH`).
pub fn crash_input(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| l.split_once("Test unit written to "))
        .map(|(_, p)| p.trim().to_string())
        .next_back()
}

/// The first line saying what went wrong (a panic, a sanitizer report, a timeout).
fn what_failed(log: &str) -> String {
    let keys = [
        "panicked at",
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "ERROR: libFuzzer",
        "SUMMARY:",
    ];
    for k in keys {
        if let Some(l) = log.lines().find(|l| l.contains(k)) {
            let i = log.lines().position(|x| x == l).unwrap_or(0);
            // A panic's message is on the next line.
            let next = log.lines().nth(i + 1).unwrap_or("");
            return if k == "panicked at" {
                format!("{} {}", l.trim(), next.trim())
            } else {
                l.trim().to_string()
            };
        }
    }
    "failed (see the log above)".into()
}

/// Runs one target: the saved crash inputs and the seeds once, then `seconds` of fuzzing.
fn run_one(target: &str, seconds: u64, target_dir: &Path) -> Result<Outcome, String> {
    let fuzz = root().join("fuzz");
    let regressions = fuzz.join("regressions").join(target);
    let seeds = fuzz.join("corpus").join(target);
    let work = target_dir.join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let limits = ["-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1"];
    let mut phases: Vec<(String, Vec<String>)> = Vec::new();
    for dir in [&regressions, &seeds] {
        if dir.is_dir() {
            let d = dir.to_string_lossy().into_owned();
            phases.push((
                format!("replaying {d}"),
                vec![d, "--".into(), "-runs=0".into()],
            ));
        }
    }
    phases.push((
        format!("fuzzing for {seconds} s"),
        vec![
            work.to_string_lossy().into_owned(),
            seeds.to_string_lossy().into_owned(),
            "--".into(),
            format!("-max_total_time={seconds}"),
        ],
    ));
    let mut execs = None;
    for (what, args) in phases {
        println!("xtask fuzz: {target}: {what}");
        let out = cargo_fuzz(target_dir)
            .args(["run", "--debug-assertions", target])
            .args(&args)
            .args(limits)
            .output()
            .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            let input = crash_input(&log).unwrap_or_else(|| "no input saved".into());
            return Ok(Outcome {
                target: target.into(),
                seconds,
                executions: executions(&log),
                failure: Some(format!(
                    "{} (while {what}); input: {input}",
                    what_failed(&log)
                )),
            });
        }
        execs = executions(&log);
    }
    Ok(Outcome {
        target: target.into(),
        seconds,
        executions: execs,
        failure: None,
    })
}

/// `cargo xtask fuzz`.
pub fn run(args: &FuzzArgs) -> Result<(), String> {
    let (seconds, chosen) = (args.seconds, chosen(args)?);
    let target_dir: PathBuf = crate::util::target_dir().join("fuzz");
    let st = cargo_fuzz(&target_dir)
        .args(["build", "--debug-assertions"])
        .status()
        .map_err(|e| {
            format!("cargo fuzz build: {e} (install it: cargo install cargo-fuzz --locked)")
        })?;
    if !st.success() {
        return Err(format!(
            "cargo fuzz build failed: {st} (is cargo-fuzz installed? cargo install cargo-fuzz --locked)"
        ));
    }
    let mut outcomes = Vec::new();
    for t in &chosen {
        outcomes.push(run_one(t, seconds, &target_dir)?);
    }
    println!("\n| target | seconds | executions | result |\n|---|---:|---:|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} |",
            o.target,
            o.seconds,
            o.executions.map_or("?".into(), |e| e.to_string()),
            o.failure.as_deref().unwrap_or("pass")
        );
    }
    let summary = json!({
        "seconds_per_target": seconds,
        "targets": outcomes.iter().map(|o| json!({
            "target": o.target,
            "seconds": o.seconds,
            "executions": o.executions,
            "result": o.failure.as_deref().unwrap_or("pass"),
        })).collect::<Vec<_>>(),
    });
    let results = root().join("results");
    let _ = std::fs::create_dir_all(&results);
    let file = results.join("fuzz.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&file, text + "\n").map_err(|e| format!("{}: {e}", file.display()))?;
    println!("\nwrote {}", file.display());
    let failed: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.failure.as_deref())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} targets failed:\n  {}",
            failed.len(),
            outcomes.len(),
            failed.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_logs() {
        let log =
            "#2 INITED\nDone 1234 runs in 2 second(s)\nstat::number_of_executed_units: 1234\n\
                   stat::average_exec_per_sec:     617\n";
        assert_eq!(executions(log), Some(1234));
        let crash = "==1== ERROR: libFuzzer: deadly signal\nartifact_prefix='a/'; Test unit \
                     written to fuzz/artifacts/flags/crash-ab12\nBase64: AA==\n";
        assert_eq!(
            crash_input(crash).as_deref(),
            Some("fuzz/artifacts/flags/crash-ab12")
        );
        assert_eq!(what_failed(crash), "==1== ERROR: libFuzzer: deadly signal");
        assert_eq!(executions("nothing"), None);
    }

    #[test]
    fn lists_the_targets_of_the_fuzz_manifest() {
        let t = targets().unwrap();
        for want in ["savefile", "flags", "afpacket_block", "netmap_ring"] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
    }
}
