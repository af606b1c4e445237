//! `cargo xtask test-hw`: the lab tests, for everything a machine without NICs or modules cannot
//! run — netmap on a real interface or VALE switch, AF_XDP zero-copy on a real NIC, DPDK on a
//! PCI NIC with hugepages. Checks each backend's prerequisites first, says exactly which are
//! missing and for which backend, then runs the `#[ignore]`d lab tests of every backend that can
//! run, with `NETHUNS_HW_*` telling them which device to use. Standard library only.

use std::process::Command;

use crate::backends::Backend;
use crate::util::{cargo_bin, root};

mod checks;
pub use checks::{check_af_xdp, check_dpdk, check_netmap, Check, Host};

/// `cargo xtask test-hw --help`.
pub const HELP: &str = "\
Runs the lab tests (the #[ignore]d tests) that need real hardware or kernel modules. The
tests take --iface over while they run (netmap mode, XDP program): do not use the management
interface.

prerequisites (every missing one is printed with the backend it blocks):
  all      root (effective uid 0)
  netmap   /dev/netmap present (the netmap module loaded: `insmod netmap.ko`, or
           `kldload netmap` on FreeBSD); with --iface, /sys/class/net/IF exists (its driver
           is reported: a native netmap driver, or the emulated adapter otherwise)
  af-xdp   /sys/class/net/IF exists and its driver runs XDP natively, as the kernel says
           (the device's XDP features, netdev netlink, Linux 6.3+). Where the kernel reports
           no AF_XDP zero-copy (NETDEV_XDP_ACT_XSK_ZEROCOPY), the zero-copy tests report
           `skipped: DRIVER on KERNEL has no AF_XDP zero-copy` and their native copy-mode
           twins run
  dpdk     /sys/bus/pci/devices/ADDR exists and is bound to vfio-pci (uio_pci_generic and
           igb_uio accepted; Mellanox mlx5_core/mlx4_core NICs stay on their kernel driver),
           /dev/vfio present for vfio-pci, hugepages reserved and free (HugePages_Total /
           HugePages_Free in /proc/meminfo), a hugetlbfs mount (/proc/mounts)

what runs, one cargo invocation per requested backend whose prerequisites are met:
  netmap   cargo test -p nethuns-netmap --release -- --ignored --test-threads=1
           env NETHUNS_HW_IFACE=IF (with --iface), NETHUNS_HW_VALE=PORT (with --vale);
           NETHUNS_HW_LOOPBACK=1 in your environment adds the hardware-ring loopback check
           (IF cabled back to itself or to a reflector)
  af-xdp   cargo test -p nethuns-afxdp --release -- --ignored --test-threads=1
           env NETHUNS_HW_IFACE=IF: the AF_XDP crate's #[ignore] lab tests read it and bind
           in native (driver) mode, with XDP_ZEROCOPY and with XDP_COPY; NETHUNS_HW_PEER=IF2 (a kernel
           interface cabled to IF) or NETHUNS_HW_LOOPBACK=1 enables the delivery tests
  dpdk     cargo test -p nethuns-dpdk --release -- --ignored --test-threads=1
           env NETHUNS_HW_PCI=ADDR: the DPDK crate's #[ignore] lab tests read it and start
           the EAL on that device with hugepages; NETHUNS_HW_PEER=IF2 (a kernel interface
           cabled to the NIC) or NETHUNS_HW_LOOPBACK=1 enables the delivery, RSS and
           exhaustion tests
  Each crate's #[ignore] tests are its lab tests; a lab test whose variable is unset skips
  with a printed reason. A crate with no #[ignore] test counts as a backend that could not run.

exit status: non-zero if any requested backend could not run (prerequisite missing, no lab
tests) or its lab tests failed.
";

/// `cargo xtask test-hw`'s options (see [`HELP`]).
#[derive(clap::Args, Debug, Default, PartialEq, Eq)]
pub struct HwArgs {
    /// A real NIC: netmap on IF (native or emulated netmap adapter) and AF_XDP zero-copy on
    /// IF.
    #[arg(long, value_name = "IF", value_parser = check_ifname)]
    pub iface: Option<String>,
    /// A VALE switch or port (`vale0` or `vale0:x`): netmap between two ephemeral ports of
    /// that switch (needs the netmap module, no NIC).
    #[arg(long, value_name = "PORT", value_parser = check_vale)]
    pub vale: Option<String>,
    /// A PCI NIC for DPDK (`0000:01:00.0` or `01:00.0`; normalised to the first form).
    #[arg(long, value_name = "ADDR", value_parser = normalize_pci)]
    pub pci: Option<String>,
    /// Run only these backends (comma-separated): netmap, af-xdp, dpdk.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = lab_backend)]
    pub only: Option<Vec<Backend>>,
    /// Check the prerequisites and print the commands; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Passed to the test binaries after `--ignored --test-threads=1` (e.g. a test name
    /// filter).
    #[arg(last = true, value_name = "TEST-ARGS")]
    pub test_args: Vec<String>,
}

/// A backend of `--only`: one with lab tests.
fn lab_backend(s: &str) -> Result<Backend, String> {
    use clap::ValueEnum as _;
    Backend::from_str(s.trim(), true)
        .ok()
        .filter(|b| b.has_lab_tests())
        .ok_or_else(|| format!("unknown backend {s:?} in --only (netmap, af-xdp, dpdk)"))
}

fn check_ifname(s: &str) -> Result<String, String> {
    if s.len() > 15 || s.contains('/') || s.contains(char::is_whitespace) || s == "." || s == ".." {
        return Err(format!("--iface {s:?} is not an interface name"));
    }
    Ok(s.to_string())
}

fn check_vale(s: &str) -> Result<String, String> {
    let sw = s.split(':').next().unwrap_or("");
    if !sw.starts_with("vale")
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!(
            "--vale {s:?}: expected a VALE switch or port like `vale0` or `vale0:x`"
        ));
    }
    Ok(s.to_string())
}

/// `01:00.0` → `0000:01:00.0`; checks the `DDDD:BB:DD.F` shape.
pub fn normalize_pci(s: &str) -> Result<String, String> {
    let full = if s.matches(':').count() == 1 {
        format!("0000:{s}")
    } else {
        s.to_string()
    };
    let lower = full.to_ascii_lowercase();
    let b = lower.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    let ok = b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11]);
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "--pci {s:?}: expected a PCI address like 0000:01:00.0"
        ))
    }
}

/// The backends a command line asks for, each with its prerequisite check.
pub fn plan(h: &Host, a: &HwArgs) -> Vec<(Backend, Check)> {
    let wanted = |b: Backend| a.only.as_ref().is_none_or(|o| o.contains(&b));
    let mut out = Vec::new();
    if (a.iface.is_some() || a.vale.is_some()) && wanted(Backend::Netmap) {
        out.push((
            Backend::Netmap,
            check_netmap(h, a.iface.as_deref(), a.vale.as_deref()),
        ));
    }
    if let Some(i) = a.iface.as_deref().filter(|_| wanted(Backend::AfXdp)) {
        out.push((Backend::AfXdp, check_af_xdp(h, i)));
    }
    if let Some(p) = a.pci.as_deref().filter(|_| wanted(Backend::Dpdk)) {
        out.push((Backend::Dpdk, check_dpdk(h, p)));
    }
    out
}

fn test_command(b: Backend, c: &Check, extra: &[String], list: bool) -> Command {
    let mut cmd = Command::new(cargo_bin());
    cmd.current_dir(root());
    cmd.args(["test", "-p", b.krate(), "--release", "--", "--ignored"]);
    if list {
        cmd.arg("--list");
    } else {
        cmd.arg("--test-threads=1");
    }
    cmd.args(extra);
    for (k, v) in &c.env {
        cmd.env(k, v);
    }
    cmd
}

fn show(b: Backend, c: &Check, extra: &[String]) -> String {
    let env: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} cargo test -p {} --release -- --ignored --test-threads=1{}{}",
        env.join(" "),
        b.krate(),
        if extra.is_empty() { "" } else { " " },
        extra.join(" ")
    )
}

/// Counts the `#[ignore]` tests a crate has (`--ignored --list`), building it on the way.
fn count_lab_tests(b: Backend, c: &Check, extra: &[String]) -> Result<usize, String> {
    let out = test_command(b, c, extra, true)
        .output()
        .map_err(|e| format!("running {}: {e}", cargo_bin()))?;
    if !out.status.success() {
        return Err(format!(
            "building the {} lab tests failed:\n{}",
            b.krate(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(": test"))
        .count())
}

/// Runs `cargo xtask test-hw ARGS`.
pub fn run(a: &HwArgs) -> Result<(), String> {
    if a.iface.is_none() && a.vale.is_none() && a.pci.is_none() {
        return Err(
            "nothing to test: give --iface, --vale and/or --pci (see cargo xtask test-hw --help)"
                .into(),
        );
    }
    let plan = plan(&Host::real(), a);
    if plan.is_empty() {
        return Err("--only excludes every backend the given devices select".into());
    }
    let mut failed: Vec<String> = Vec::new();
    for (b, c) in &plan {
        for n in &c.notes {
            println!("test-hw {b}: {n}");
        }
        if !c.missing.is_empty() {
            for m in &c.missing {
                eprintln!("test-hw {b}: MISSING {m}");
            }
            failed.push(format!(
                "{b}: cannot run, {} prerequisite(s) missing",
                c.missing.len()
            ));
            continue;
        }
        println!("test-hw {b}: {}", show(*b, c, &a.test_args));
        if a.dry_run {
            continue;
        }
        match count_lab_tests(*b, c, &a.test_args) {
            Ok(0) => {
                failed.push(format!("{b}: {} has no #[ignore] lab tests", b.krate()));
                continue;
            }
            Ok(n) => println!("test-hw {b}: {n} lab test(s)"),
            Err(e) => {
                failed.push(format!("{b}: {e}"));
                continue;
            }
        }
        match test_command(*b, c, &a.test_args, false).status() {
            Ok(s) if s.success() => println!("test-hw {b}: lab tests passed"),
            Ok(s) => failed.push(format!("{b}: lab tests failed ({s})")),
            Err(e) => failed.push(format!("{b}: running {}: {e}", cargo_bin())),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} requested backend(s) did not pass:\n  {}",
            failed.len(),
            plan.len(),
            failed.join("\n  ")
        ))
    }
}

#[cfg(test)]
#[path = "test_hw/tests.rs"]
mod tests;
