//! The prerequisite checks of `cargo xtask test-hw`, against a [`Host`]: `/` on a real run,
//! a fake `/sys` and `/proc` tree in tests.

use std::path::PathBuf;

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

/// What the kernel says of an interface's XDP: (native mode, AF_XDP zero-copy), or why it
/// could not say.
type XdpAnswer = Result<(bool, bool), String>;

/// Where the checks look: `/` on a real run, a fake tree in tests.
pub struct Host {
    pub(super) root: PathBuf,
    pub(super) euid: Option<u32>,
    /// The kernel's answer for every interface (tests); `None` asks the running kernel.
    pub(super) xdp: Option<XdpAnswer>,
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
