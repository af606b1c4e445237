//! The system packages the workspace needs, checked with dpkg and installed with apt-get.

use std::process::Command;

/// Debian packages and why.
pub const PACKAGES: &[(&str, &str)] = &[
    (
        "iproute2",
        "network namespaces and veth pairs for the tests",
    ),
    (
        "iputils-ping",
        "ping across an AF_XDP socket that shares its queue",
    ),
    ("pkg-config", "finding system libraries"),
    ("libpcap-dev", "the pcap backend"),
    ("tcpdump", "reading back savefiles in tests"),
    (
        "tshark",
        "reference timestamps of nanosecond savefiles, editcap conversions (wireshark-common)",
    ),
    ("libxdp-dev", "the raw AF_XDP baseline of the benchmarks"),
    (
        "libbpf-dev",
        "the raw AF_XDP baseline and the XDP-drop ceiling of the benchmarks",
    ),
    ("clang", "bindgen and BPF programs"),
    ("libclang-dev", "bindgen"),
    ("libdpdk-dev", "the DPDK backend"),
    ("dpdk", "the DPDK backend's drivers"),
];

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Packages not yet installed.
pub fn missing() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !installed(p))
        .collect()
}

/// Installs what is missing when running as root; otherwise says the exact command.
pub fn ensure(install: bool) -> Result<(), String> {
    let miss = missing();
    if miss.is_empty() {
        return Ok(());
    }
    let cmd = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        miss.join(" ")
    );
    if !install || !nethuns_testnet::is_root() {
        return Err(format!("missing system packages; run as root:\n  {cmd}"));
    }
    eprintln!("xtask: installing {}", miss.join(" "));
    crate::util::sh(&cmd)?;
    let still = missing();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("still missing after install: {}", still.join(" ")))
    }
}
