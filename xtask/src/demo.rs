//! `cargo xtask demo`: `nethuns-gen` in one namespace, `nethuns-meter` in the other, for every
//! backend.

use std::process::{Command, Stdio};
use std::time::Duration;

use nethuns_testnet::NetPair;

use crate::backends::{self, Backend};
use crate::util::{build_nethuns_tools, json_num};

/// `cargo xtask demo`'s options.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Seconds of traffic per backend.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Frame size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
}

/// One run of `nethuns-gen` in `ns_a` against `nethuns-meter` in `ns_b`; returns (tx pps,
/// rx pps, rx packets, dropped by the engine).
pub fn run_pair(
    tools: &std::path::Path,
    pair: &NetPair,
    backend: Backend,
    size: usize,
    seconds: f64,
) -> Result<(f64, f64, u64, Option<u64>), String> {
    let meter = Command::new("ip")
        .args(["netns", "exec", &pair.ns_b])
        .arg(tools.join("nethuns-meter"))
        .args([
            "--backend",
            backend.name(),
            "--iface",
            &backend.portspec(&pair.veth_b),
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
            backend.name(),
            "--iface",
            &backend.portspec(&pair.veth_a),
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
pub fn run(args: &DemoArgs) -> Result<(), String> {
    let (seconds, size) = (args.seconds, args.size);
    crate::deps::ensure(true)?;
    if !nethuns_testnet::is_root() {
        return Err("the demo creates network namespaces: run it as root".into());
    }
    let runnable = backends::runnable();
    let tools = build_nethuns_tools(&backends::all_features())?;
    nethuns_testnet::cleanup_stale();
    let pair = NetPair::new("demo", Default::default())?;
    let mut rows = vec![];
    for b in &runnable {
        eprintln!("demo: {b} ({size}-byte frames, {seconds} s)");
        rows.push((*b, run_pair(&tools, &pair, *b, size, seconds)));
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
                failed.push(name.name());
            }
        }
    }
    for (b, why) in Backend::ALL
        .iter()
        .filter_map(|b| Some((b, b.unavailable()?)))
    {
        println!("| {b} | n/a | n/a | {why} | |");
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
