//! The criterion micro-benchmarks of the core (`nethuns-core/benches/machinery.rs`).

use std::process::{Command, Stdio};

use crate::util;

/// Criterion micro-benchmarks of core, as (name, ns per iteration).
pub fn run(quick: bool) -> Result<Vec<(String, f64)>, String> {
    let (warm, meas) = if quick {
        ("0.3", "0.5")
    } else {
        ("0.5", "1.5")
    };
    let out = Command::new(util::cargo_bin())
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
