//! `cargo xtask demo`: `nethuns-gen` in one namespace, `nethuns-meter` in the other, for every
//! backend.

use std::process::{Command, Stdio};
use std::time::Duration;

use nethuns_testnet::NetPair;

use crate::util;

/// A backend the demo can drive, with how to name the veth end for it.
pub struct DemoBackend {
    /// The `--backend` value of the tools.
    pub name: &'static str,
    /// The facade feature.
    pub feature: &'static str,
    /// Why it cannot run here, if so.
    pub unavailable: Option<&'static str>,
}

/// Backends whose crates the tools can drive yet.
pub const WIRED: &[&str] = &["pcap", "af-packet", "af-xdp", "dpdk", "netmap"];

/// Every backend of the workspace.
pub fn backends() -> Vec<DemoBackend> {
    let mut v = vec![
        DemoBackend {
            name: "pcap",
            feature: "pcap",
            unavailable: None,
        },
        DemoBackend {
            name: "af-packet",
            feature: "af-packet",
            unavailable: None,
        },
        DemoBackend {
            name: "af-xdp",
            feature: "af-xdp",
            unavailable: None,
        },
        DemoBackend {
            name: "dpdk",
            feature: "dpdk",
            unavailable: None,
        },
        DemoBackend {
            name: "netmap",
            feature: "netmap",
            unavailable: Some("no netmap kernel module on this machine"),
        },
    ];
    for b in v.iter_mut().filter(|b| !WIRED.contains(&b.name)) {
        b.unavailable = Some("not wired into the tools yet");
    }
    if !WIRED.contains(&"netmap") {
    } else if !std::path::Path::new("/dev/netmap").exists() {
        v.iter_mut()
            .filter(|b| b.name == "netmap")
            .for_each(|b| b.unavailable = Some("no /dev/netmap (netmap module not loaded)"));
    } else {
        v.iter_mut()
            .filter(|b| b.name == "netmap")
            .for_each(|b| b.unavailable = None);
    }
    v
}

/// The portspec of veth `dev` for backend `name` (DPDK reaches a veth through net_af_packet).
pub fn portspec(name: &str, dev: &str) -> String {
    portspec_n(name, dev, 0)
}

/// [`portspec`] for the `n`-th port of one process (DPDK virtual devices need distinct names).
pub fn portspec_n(name: &str, dev: &str, n: usize) -> String {
    match name {
        "dpdk" => format!("net_af_packet{n},iface={dev}"),
        "netmap" => format!("netmap:{dev}"),
        _ => dev.to_string(),
    }
}

/// Builds the example tools in release mode with `features`; returns the examples folder.
pub fn build_tools(features: &str) -> Result<std::path::PathBuf, String> {
    util::cargo(
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
    Ok(util::target_dir().join("release/examples"))
}

/// Builds the `nethuns-tools` binaries in release mode with `features`; returns their folder.
pub fn build_nethuns_tools(features: &str) -> Result<std::path::PathBuf, String> {
    util::cargo(
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
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| util::root().join("target"));
    Ok(target.join("release"))
}

/// A number after `"key":` in a one-line JSON object.
pub fn json_num(line: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let i = line.find(&pat)? + pat.len();
    let rest = &line[i..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// One run of `nethuns-gen` in `ns_a` against `nethuns-meter` in `ns_b`; returns (tx pps,
/// rx pps, rx packets, dropped by the engine).
pub fn run_pair(
    tools: &std::path::Path,
    pair: &NetPair,
    backend: &str,
    size: usize,
    seconds: f64,
) -> Result<(f64, f64, u64, Option<u64>), String> {
    let meter = Command::new("ip")
        .args(["netns", "exec", &pair.ns_b])
        .arg(tools.join("nethuns-meter"))
        .args([
            "--backend",
            backend,
            "--iface",
            &portspec(backend, &pair.veth_b),
            "--duration",
            &format!("{}", seconds + 3.0),
            "--idle",
            "1",
            "--json",
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting nethuns-meter: {e}"))?;
    std::thread::sleep(Duration::from_millis(700));
    let gen = Command::new("ip")
        .args(["netns", "exec", &pair.ns_a])
        .arg(tools.join("nethuns-gen"))
        .args([
            "--backend",
            backend,
            "--iface",
            &portspec(backend, &pair.veth_a),
            "--count",
            "0",
            "--duration",
            &format!("{seconds}"),
            "--size",
            &size.to_string(),
            "--json",
            "--quiet",
        ])
        .output()
        .map_err(|e| format!("running nethuns-gen: {e}"))?;
    let m = meter
        .wait_with_output()
        .map_err(|e| format!("waiting for nethuns-meter: {e}"))?;
    let gen_out = String::from_utf8_lossy(&gen.stdout);
    let m_out = String::from_utf8_lossy(&m.stdout);
    if !gen.status.success() {
        return Err(format!(
            "nethuns-gen failed: {}",
            String::from_utf8_lossy(&gen.stderr).trim()
        ));
    }
    if !m.status.success() {
        return Err(format!(
            "nethuns-meter failed: {}",
            String::from_utf8_lossy(&m.stderr).trim()
        ));
    }
    let tx = json_num(&gen_out, "tx_pps").ok_or("nethuns-gen printed no rate")?;
    let rx = json_num(&m_out, "rx_pps").ok_or("nethuns-meter printed no rate")?;
    let n = json_num(&m_out, "rx_packets").unwrap_or(0.0) as u64;
    let dropped = json_num(&m_out, "dropped").map(|d| d as u64);
    Ok((tx, rx, n, dropped))
}

/// `cargo xtask demo`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = 2.0;
    let mut size = 64usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--seconds takes a number")?
            }
            "--size" => {
                size = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--size takes a number")?
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    crate::deps::ensure(true)?;
    if !nethuns_testnet::is_root() {
        return Err("the demo creates network namespaces: run it as root".into());
    }
    let all = backends();
    let runnable: Vec<&DemoBackend> = all.iter().filter(|b| b.unavailable.is_none()).collect();
    let features: Vec<&str> = all
        .iter()
        .filter(|b| WIRED.contains(&b.name))
        .map(|b| b.feature)
        .collect();
    let tools = build_nethuns_tools(&features.join(","))?;
    nethuns_testnet::cleanup_stale();
    let pair = NetPair::new("demo", Default::default())?;
    let mut rows = vec![];
    for b in &runnable {
        eprintln!("demo: {} ({size}-byte frames, {seconds} s)", b.name);
        rows.push((b.name, run_pair(&tools, &pair, b.name, size, seconds)));
    }
    let (ns_a, ns_b) = (pair.ns_a.clone(), pair.ns_b.clone());
    drop(pair);
    println!();
    println!(
        "| backend | nethuns-gen Mpps | nethuns-meter Mpps | received | dropped by the engine |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut failed = vec![];
    for (name, r) in &rows {
        match r {
            Ok((tx, rx, n, d)) => println!(
                "| {name} | {:.3} | {:.3} | {n} | {} |",
                tx / 1e6,
                rx / 1e6,
                d.map_or("unknown".to_string(), |d| d.to_string())
            ),
            Err(e) => {
                println!("| {name} | failed | failed | {e} | |");
                failed.push(*name);
            }
        }
    }
    for b in all.iter().filter(|b| b.unavailable.is_some()) {
        println!(
            "| {} | n/a | n/a | {} | |",
            b.name,
            b.unavailable.unwrap_or_default()
        );
    }
    let left = nethuns_testnet::our_namespaces();
    if left.contains(&ns_a) || left.contains(&ns_b) {
        return Err(format!("namespaces left behind: {left:?}"));
    }
    println!("\nnamespaces {ns_a} and {ns_b} removed");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("backends failed: {failed:?}"))
    }
}
