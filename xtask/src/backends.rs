//! The one table of the workspace's backends: the names the tools take and the facade feature
//! of each (the list itself is the tools', nethuns-tools/src/backend/table.rs), the crate, how a veth is named for it, its raw engine loop for the benchmarks, and
//! whether it has lab tests for `test-hw`. `demo`, `bench` and `test-hw` read it.

use std::fmt;
use std::path::{Path, PathBuf};

// The enum, its names and features, and the order of the tables: the tools' list.
#[path = "../../nethuns-tools/src/backend/table.rs"]
mod table;

pub use table::Backend;

/// A raw engine loop: the program that takes `--mode rx|tx|cost-* --iface …` (see
/// xtask/raw/README.md) and what it is.
pub struct Raw {
    /// The program.
    pub path: PathBuf,
    /// Its name in the tables.
    pub label: &'static str,
}

impl Backend {
    /// The backend's crate.
    pub fn krate(self) -> &'static str {
        match self {
            Backend::Pcap => "nethuns-pcap",
            Backend::AfPacket => "nethuns-afpacket",
            Backend::AfXdp => "nethuns-afxdp",
            Backend::Netmap => "nethuns-netmap",
            Backend::Dpdk => "nethuns-dpdk",
        }
    }

    /// Whether the crate has `#[ignore]`d lab tests that `cargo xtask test-hw` runs on real
    /// devices.
    pub fn has_lab_tests(self) -> bool {
        matches!(self, Backend::Netmap | Backend::AfXdp | Backend::Dpdk)
    }

    /// Why the backend cannot run on this machine, if so.
    pub fn unavailable(self) -> Option<&'static str> {
        match self {
            Backend::Netmap if !Path::new("/dev/netmap").exists() => {
                Some("no /dev/netmap (netmap module not loaded)")
            }
            _ => None,
        }
    }

    /// The portspec of veth `dev` for this backend (DPDK reaches a veth through
    /// net_af_packet).
    pub fn portspec(self, dev: &str) -> String {
        self.portspec_n(dev, 0)
    }

    /// [`Backend::portspec`] for the `n`-th port of one process (DPDK virtual devices need
    /// distinct names).
    pub fn portspec_n(self, dev: &str, n: usize) -> String {
        match self {
            Backend::Dpdk => format!("net_af_packet{n},iface={dev}"),
            Backend::Netmap => format!("netmap:{dev}"),
            _ => dev.to_string(),
        }
    }

    /// The raw engine's loop: `raw-pcap` among the examples in `tools`, the C loops of
    /// xtask/raw built into `raw`.
    pub fn raw(self, tools: &Path, raw: &Path) -> Option<Raw> {
        let (path, label) = match self {
            Backend::Pcap => (tools.join("raw-pcap"), "libpcap (pcap crate)"),
            Backend::AfPacket => (raw.join("raw_afpacket"), "TPACKET_v3 (C)"),
            Backend::AfXdp => (raw.join("raw_afxdp"), "libxdp xsk (C)"),
            Backend::Dpdk => (raw.join("raw_dpdk"), "DPDK ethdev (C)"),
            Backend::Netmap => return None,
        };
        Some(Raw { path, label })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The backends that can run here.
pub fn runnable() -> Vec<Backend> {
    Backend::ALL
        .into_iter()
        .filter(|b| b.unavailable().is_none())
        .collect()
}

/// Every backend's feature, comma-separated (the tools are built with all of them).
pub fn all_features() -> String {
    Backend::ALL.map(Backend::feature).join(",")
}
