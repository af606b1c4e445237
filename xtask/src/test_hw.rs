//! `cargo xtask test-hw`: the lab tests, for everything a machine without NICs or modules cannot
//! run — netmap on a real interface or VALE switch, AF_XDP zero-copy on a real NIC, DPDK on a
//! PCI NIC with hugepages. Checks each backend's prerequisites first, says exactly which are
//! missing and for which backend, then runs the `#[ignore]`d lab tests of every backend that can
//! run, with `NETHUNS_HW_*` telling them which device to use. Standard library only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo xtask test-hw --help`.
pub const HELP: &str = "\
usage: cargo xtask test-hw [--iface IF] [--vale PORT] [--pci ADDR] [--only LIST] [--dry-run]
                           [-- TEST-ARGS]

Runs the lab tests (the #[ignore]d tests) that need real hardware or kernel modules.

options:
  --iface IF     a real NIC: netmap on IF (native or emulated netmap adapter) and AF_XDP
                 zero-copy on IF. The tests take IF over while they run (netmap mode, XDP
                 program): do not use the management interface.
  --vale PORT    a VALE switch or port (`vale0` or `vale0:x`): netmap between two ephemeral
                 ports of that switch (needs the netmap module, no NIC)
  --pci ADDR     a PCI NIC for DPDK (`0000:01:00.0` or `01:00.0`)
  --only LIST    run only these backends (comma-separated): netmap, af-xdp, dpdk
  --dry-run      check the prerequisites and print the commands; run nothing
  -h, --help     this text
  -- TEST-ARGS   passed to the test binaries after `--ignored --test-threads=1` (e.g. a test
                 name filter)

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

/// Drivers with a native netmap adapter (others use netmap's emulated adapter).
const NETMAP_NATIVE_DRIVERS: &[&str] = &[
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "ixgbevf",
    "i40e",
    "ice",
    "r8169",
    "virtio_net",
    "veth",
    "forcedeth",
    "vmxnet3",
];
/// PCI drivers DPDK can use a NIC through.
const DPDK_USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];
/// Bifurcated drivers: DPDK drives these NICs while the kernel driver stays bound.
const DPDK_BIFURCATED_DRIVERS: &[&str] = &["mlx5_core", "mlx4_core"];

/// A backend the lab tests cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    /// netmap (interface and/or VALE).
    Netmap,
    /// AF_XDP zero-copy.
    AfXdp,
    /// DPDK on a PCI device.
    Dpdk,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Netmap => "netmap",
            Backend::AfXdp => "af-xdp",
            Backend::Dpdk => "dpdk",
        }
    }

    fn krate(self) -> &'static str {
        match self {
            Backend::Netmap => "nethuns-netmap",
            Backend::AfXdp => "nethuns-afxdp",
            Backend::Dpdk => "nethuns-dpdk",
        }
    }

    fn parse(s: &str) -> Result<Backend, String> {
        match s {
            "netmap" => Ok(Backend::Netmap),
            "af-xdp" | "af_xdp" | "afxdp" => Ok(Backend::AfXdp),
            "dpdk" => Ok(Backend::Dpdk),
            other => Err(format!(
                "unknown backend {other:?} in --only (netmap, af-xdp, dpdk)"
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// `--iface`.
    pub iface: Option<String>,
    /// `--vale`.
    pub vale: Option<String>,
    /// `--pci` (normalised to the `DDDD:BB:DD.F` form).
    pub pci: Option<String>,
    /// `--only`.
    pub only: Option<Vec<Backend>>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--help`.
    pub help: bool,
    /// After `--`.
    pub test_args: Vec<String>,
}

/// Parses the arguments after `test-hw`.
pub fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<String, String> {
            match it.next() {
                Some(v) if !v.is_empty() && !v.starts_with("--") => Ok(v.clone()),
                _ => Err(format!("{name} needs a value\n\n{HELP}")),
            }
        };
        match arg.as_str() {
            "--iface" => a.iface = Some(check_ifname(&value("--iface")?)?),
            "--vale" => a.vale = Some(check_vale(&value("--vale")?)?),
            "--pci" => a.pci = Some(normalize_pci(&value("--pci")?)?),
            "--only" => {
                let list = value("--only")?;
                a.only = Some(
                    list.split(',')
                        .map(|s| Backend::parse(s.trim()))
                        .collect::<Result<_, _>>()?,
                );
            }
            "--dry-run" => a.dry_run = true,
            "-h" | "--help" => a.help = true,
            "--" => {
                a.test_args = it.cloned().collect();
                break;
            }
            other => return Err(format!("unknown argument {other:?}\n\n{HELP}")),
        }
    }
    Ok(a)
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

/// What the kernel says of an interface's XDP: (native mode, AF_XDP zero-copy), or why it
/// could not say.
type XdpAnswer = Result<(bool, bool), String>;

/// Where the checks look: `/` on a real run, a fake tree in tests.
pub struct Host {
    root: PathBuf,
    euid: Option<u32>,
    /// The kernel's answer for every interface (tests); `None` asks the running kernel.
    xdp: Option<XdpAnswer>,
}

impl Host {
    /// The machine this runs on.
    pub fn real() -> Host {
        Host {
            root: PathBuf::from("/"),
            euid: None,
            xdp: None,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn exists(&self, p: &str) -> bool {
        self.path(p).exists()
    }

    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }

    /// The basename of a `driver` symlink.
    fn driver(&self, p: &str) -> Option<String> {
        let target = std::fs::read_link(self.path(p)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// The device's XDP features, from the kernel (`NETDEV_CMD_DEV_GET`).
    fn xdp(&self, iface: &str) -> XdpAnswer {
        if let Some(a) = &self.xdp {
            return a.clone();
        }
        nethuns_afxdp::xdp_features(iface)
            .map(|f| (f.native(), f.zero_copy()))
            .map_err(|e| e.to_string())
    }

    fn euid(&self) -> Option<u32> {
        if let Some(u) = self.euid {
            return Some(u);
        }
        // "Uid:\treal\teffective\tsaved\tfs" in /proc/self/status.
        let status = self.read("/proc/self/status")?;
        let line = status.lines().find(|l| l.starts_with("Uid:"))?;
        line.split_whitespace().nth(2)?.parse().ok()
    }
}

/// The outcome of checking one backend.
#[derive(Debug, Default)]
pub struct Check {
    /// Prerequisites that are absent (each a full sentence).
    pub missing: Vec<String>,
    /// Facts worth printing (driver names, modes).
    pub notes: Vec<String>,
    /// Environment for the lab tests.
    pub env: Vec<(&'static str, String)>,
}

fn check_root(h: &Host, c: &mut Check) {
    match h.euid() {
        Some(0) => {}
        Some(u) => c.missing.push(format!(
            "root: running as uid {u}, the lab tests need uid 0"
        )),
        None => c
            .missing
            .push("root: cannot read the effective uid from /proc/self/status".into()),
    }
}

fn check_iface(h: &Host, iface: &str, c: &mut Check) -> Option<String> {
    if !h.exists(&format!("/sys/class/net/{iface}")) {
        c.missing.push(format!(
            "interface {iface}: /sys/class/net/{iface} does not exist"
        ));
        return None;
    }
    let drv = h.driver(&format!("/sys/class/net/{iface}/device/driver"));
    if drv.is_none() {
        c.notes.push(format!(
            "{iface} has no device driver link (/sys/class/net/{iface}/device/driver): a virtual interface"
        ));
    }
    if let Some(state) = h.read(&format!("/sys/class/net/{iface}/operstate")) {
        let state = state.trim();
        if state != "up" && state != "unknown" {
            c.notes.push(format!(
                "{iface} is {state}: bring it up (`ip link set {iface} up`) if the tests need a link"
            ));
        }
    }
    drv
}

/// Checks netmap's prerequisites.
pub fn check_netmap(h: &Host, iface: Option<&str>, vale: Option<&str>) -> Check {
    let mut c = Check::default();
    check_root(h, &mut c);
    if !h.exists("/dev/netmap") {
        let module = if h.exists("/sys/module/netmap") {
            "the netmap module is loaded but /dev/netmap is missing (check udev / mknod)"
        } else {
            "the netmap module is not loaded (build netmap and `insmod netmap.ko`)"
        };
        c.missing.push(format!("/dev/netmap: {module}"));
    }
    if let Some(iface) = iface {
        if let Some(drv) = check_iface(h, iface, &mut c) {
            let mode = if NETMAP_NATIVE_DRIVERS.contains(&drv.as_str()) {
                "native netmap adapter (if netmap was built with its patched driver)"
            } else {
                "netmap's emulated adapter"
            };
            c.notes
                .push(format!("{iface}: driver {drv}, netmap will use its {mode}"));
        }
        c.env.push(("NETHUNS_HW_IFACE", iface.to_string()));
    }
    if let Some(v) = vale {
        c.env.push(("NETHUNS_HW_VALE", v.to_string()));
    }
    if let Ok(v) = std::env::var("NETHUNS_HW_LOOPBACK") {
        c.env.push(("NETHUNS_HW_LOOPBACK", v));
    }
    c
}

/// Passes the peer settings of the delivery tests through: `NETHUNS_HW_PEER=IF2` (a kernel
/// interface cabled to the device under test) and `NETHUNS_HW_LOOPBACK=1`.
fn forward_peer_env(c: &mut Check) {
    for var in ["NETHUNS_HW_PEER", "NETHUNS_HW_LOOPBACK"] {
        if let Ok(v) = std::env::var(var) {
            c.env.push((var, v));
        }
    }
}

/// Checks AF_XDP's prerequisites: native XDP, and whether zero-copy will run, both as the
/// kernel reports them.
pub fn check_af_xdp(h: &Host, iface: &str) -> Check {
    let mut c = Check::default();
    check_root(h, &mut c);
    let drv = check_iface(h, iface, &mut c);
    if h.exists(&format!("/sys/class/net/{iface}")) {
        let drv = drv.map_or_else(|| "a virtual driver".to_string(), |d| format!("driver {d}"));
        let kernel = h
            .read("/proc/sys/kernel/osrelease")
            .map_or_else(|| "this kernel".into(), |r| format!("Linux {}", r.trim()));
        match h.xdp(iface) {
            Ok((_, true)) => c.notes.push(format!(
                "{iface}: {drv} on {kernel} advertises AF_XDP zero-copy: the zero-copy and the \
                 copy-mode tests run"
            )),
            Ok((true, false)) => c.notes.push(format!(
                "{iface}: {drv} on {kernel} has no AF_XDP zero-copy (its XDP features): the \
                 zero-copy tests will report skipped, the native copy-mode tests run"
            )),
            Ok((false, false)) => c.missing.push(format!(
                "AF_XDP native mode on {iface}: {drv} on {kernel} runs no XDP itself (its XDP \
                 features lack NETDEV_XDP_ACT_BASIC)"
            )),
            Err(e) => c.notes.push(format!(
                "{iface}: the kernel did not report XDP features ({e}); the tests try a \
                 zero-copy bind to find out"
            )),
        }
    }
    c.env.push(("NETHUNS_HW_IFACE", iface.to_string()));
    forward_peer_env(&mut c);
    c
}

fn meminfo(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Checks DPDK's prerequisites.
pub fn check_dpdk(h: &Host, pci: &str) -> Check {
    let mut c = Check::default();
    check_root(h, &mut c);
    let dev = format!("/sys/bus/pci/devices/{pci}");
    if !h.exists(&dev) {
        c.missing
            .push(format!("PCI device {pci}: {dev} does not exist"));
    } else {
        match h.driver(&format!("{dev}/driver")) {
            Some(d) if DPDK_USERSPACE_DRIVERS.contains(&d.as_str()) => {
                c.notes.push(format!("{pci}: bound to {d}"));
                if d == "vfio-pci" && !h.exists("/dev/vfio") {
                    c.missing.push(
                        "vfio: /dev/vfio is missing (modprobe vfio-pci; enable the IOMMU or vfio's noiommu mode)"
                            .into(),
                    );
                }
            }
            Some(d) if DPDK_BIFURCATED_DRIVERS.contains(&d.as_str()) => c.notes.push(format!(
                "{pci}: {d} is bifurcated, DPDK uses it without rebinding"
            )),
            Some(d) => c.missing.push(format!(
                "PCI device {pci}: bound to {d}, not vfio-pci (`dpdk-devbind.py -b vfio-pci {pci}`)"
            )),
            None => c.missing.push(format!(
                "PCI device {pci}: bound to no driver (`dpdk-devbind.py -b vfio-pci {pci}`)"
            )),
        }
    }
    match h.read("/proc/meminfo") {
        Some(m) => {
            let total = meminfo(&m, "HugePages_Total").unwrap_or(0);
            let free = meminfo(&m, "HugePages_Free").unwrap_or(0);
            if total == 0 {
                c.missing.push(
                    "hugepages: none reserved (HugePages_Total is 0 in /proc/meminfo; e.g. `echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`)"
                        .into(),
                );
            } else if free == 0 {
                c.missing.push(format!(
                    "hugepages: all {total} reserved hugepages are in use"
                ));
            } else {
                c.notes.push(format!("hugepages: {free} of {total} free"));
            }
        }
        None => c
            .missing
            .push("hugepages: cannot read /proc/meminfo".into()),
    }
    let mounted = h.read("/proc/mounts").is_some_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
    });
    if !mounted {
        c.missing
            .push("hugetlbfs: not mounted (`mount -t hugetlbfs nodev /dev/hugepages`)".into());
    }
    c.env.push(("NETHUNS_HW_PCI", pci.to_string()));
    forward_peer_env(&mut c);
    c
}

/// The backends a command line asks for, each with its prerequisite check.
pub fn plan(h: &Host, a: &Args) -> Vec<(Backend, Check)> {
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

/// The workspace: xtask's parent directory (or the current directory if that is not it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .filter(|p| p.join("Cargo.toml").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn test_command(b: Backend, c: &Check, extra: &[String], list: bool) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(workspace_root());
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
        .map_err(|e| format!("running {}: {e}", cargo()))?;
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
pub fn run(args: &[String]) -> Result<(), String> {
    let a = parse_args(args)?;
    if a.help {
        print!("{HELP}");
        return Ok(());
    }
    if a.iface.is_none() && a.vale.is_none() && a.pci.is_none() {
        return Err(format!(
            "nothing to test: give --iface, --vale and/or --pci\n\n{HELP}"
        ));
    }
    let plan = plan(&Host::real(), &a);
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
            Err(e) => failed.push(format!("{b}: running {}: {e}", cargo())),
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
