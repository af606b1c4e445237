//! Process helpers shared by the commands: the workspace's paths, running cargo and shell
//! lines, building the tools, reading the tools' JSON lines.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root if relative),
/// else `target` in the workspace root.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if PathBuf::from(&d).is_absolute() => PathBuf::from(d),
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// The cargo that runs xtask (`CARGO`), else `cargo` from `PATH`.
pub fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs a shell command line, inheriting stdio.
pub fn sh(line: &str) -> Result<(), String> {
    let st = Command::new("sh")
        .args(["-c", line])
        .status()
        .map_err(|e| format!("{line}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{line}: {st}"))
    }
}

/// `cargo ARGS` in the workspace root, inheriting stdio.
pub fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let st = Command::new(cargo_bin())
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cargo {}: {e}", args.join(" ")))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed: {st}", args.join(" ")))
    }
}

/// Builds the example tools (`nethuns/examples`) in release mode with `features`; returns the
/// examples folder.
pub fn build_examples(features: &str) -> Result<PathBuf, String> {
    cargo(
        &[
            "build",
            "--release",
            "-p",
            "nethuns",
            "--examples",
            "--features",
            features,
        ],
        &[],
    )?;
    Ok(target_dir().join("release/examples"))
}

/// Builds the `nethuns-tools` binaries in release mode with `features`; returns their folder.
pub fn build_nethuns_tools(features: &str) -> Result<PathBuf, String> {
    cargo(
        &[
            "build",
            "--release",
            "-p",
            "nethuns-tools",
            "--no-default-features",
            "--features",
            features,
        ],
        &[],
    )?;
    Ok(target_dir().join("release"))
}

/// A number after `"key":` in a one-line JSON object.
pub fn json_num(line: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let i = line.find(&pat)? + pat.len();
    let rest = &line[i..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// `["a", "b"]` as owned strings (argument lists).
pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `N × CPU model, Linux RELEASE`.
pub fn machine() -> String {
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
