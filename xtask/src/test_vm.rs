//! `cargo xtask test-vm`: the lab tests inside a QEMU virtual machine, on any Linux machine
//! without a lab. The guest boots Debian's backports kernel with a small initramfs built here,
//! sees the host's `/` read-only over 9p and runs the lab test binaries built on the host
//! against emulated PCI NICs: AF_XDP in native (driver) mode on virtio_net, DPDK on an e1000e
//! bound to vfio-pci behind an emulated IOMMU and then to uio_pci_generic, with 2 MB
//! hugepages. See [`HELP`].

mod guest;
mod initramfs;
mod report;
mod setup;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use report::{Report, MARK};

/// `cargo xtask test-vm --help`.
pub const HELP: &str = "\
Runs the lab tests (the #[ignore]d `lab` tests of nethuns-afxdp and nethuns-dpdk) inside a
QEMU guest with emulated NICs, as root, without KVM (software emulation):
  af-xdp          AF_XDP on a virtio-net NIC in native (driver) mode, cabled to a second
                  virtio-net NIC (the kernel-side peer). virtio_net gains AF_XDP zero-copy
                  only in Linux 6.13, the guest runs 6.12: the zero-copy tests report
                  `skipped: virtio_net on 6.12... has no AF_XDP zero-copy`, their native copy
                  mode twins run.
  dpdk-vfio-pci   DPDK on an e1000e bound to vfio-pci behind the emulated Intel IOMMU
  dpdk-uio        the same e1000e bound to uio_pci_generic
                  (DPDK's net_e1000_em gives the e1000e 2 queues: the per-queue case runs on
                  both; it offers no RSS, so the RSS test checks that no hash is reported)
What it does: installs qemu-system-x86 (from bookworm-backports, added to apt's sources if
absent) and busybox-static, downloads the backports linux-image into
TARGET/vm/kernels (apt-get download + dpkg-deb -x, once), builds the lab test binaries
(cargo test --no-run), builds TARGET/vm/initramfs.cpio, boots the guest with
`-accel tcg,thread=multi -cpu max -smp 2 -m 3G`, streams the test output, prints every test's
outcome with counts per stage, and exits non-zero if one failed. Bounded: each test by a
timeout inside the guest, the guest by a watchdog and `panic=-1`, the whole run by
--timeout (default 900 s), after which the QEMU process it started is killed.

Under CI (CI=true) a skip the emulated hardware does not explain fails the run.
";

/// One group of lab tests in the guest: a setup, an environment, a binary.
struct Stage {
    name: &'static str,
    package: &'static str,
    /// Shell lines run before the tests; a failure skips the stage's tests (and fails).
    setup: &'static str,
    /// Environment of every test, shell-expanded in the guest.
    env: &'static [(&'static str, &'static str)],
}

const STAGES: &[Stage] = &[
    Stage {
        name: "af-xdp",
        package: "nethuns-afxdp",
        setup: "",
        env: &[
            ("NETHUNS_HW_IFACE", "$XDP_IF"),
            ("NETHUNS_HW_PEER", "$XDP_PEER_IF"),
            // The frame-accounting soak at a size emulation moves in about half a minute
            // (~2000 frames/s), with the tests' deadlines stretched for emulated NICs.
            ("NETHUNS_AFXDP_SOAK_PACKETS", "50000"),
            ("NETHUNS_HW_TIME_SCALE", "5"),
        ],
    },
    Stage {
        name: "dpdk-vfio-pci",
        package: "nethuns-dpdk",
        setup: "bind $DPDK_PCI vfio-pci && ls /dev/vfio/",
        env: &[
            ("NETHUNS_HW_PCI", "$DPDK_PCI"),
            ("NETHUNS_HW_PEER", "$DPDK_PEER_IF"),
        ],
    },
    Stage {
        name: "dpdk-uio",
        package: "nethuns-dpdk",
        setup: "bind $DPDK_PCI uio_pci_generic && ls /dev/uio0",
        env: &[
            ("NETHUNS_HW_PCI", "$DPDK_PCI"),
            ("NETHUNS_HW_PEER", "$DPDK_PEER_IF"),
        ],
    },
];

/// Seconds one lab test may take inside the guest.
const TEST_TIMEOUT: u32 = 300;

/// `cargo xtask test-vm`'s options (see [`HELP`]).
#[derive(clap::Args, Debug)]
pub struct VmArgs {
    /// Stages to run (comma-separated): af-xdp, dpdk-vfio-pci, dpdk-uio.
    #[arg(long, value_delimiter = ',', value_parser = stage_name)]
    pub only: Option<Vec<String>>,
    /// Build and run the release test binaries (default: the debug ones that `cargo xtask
    /// test` already built).
    #[arg(long)]
    pub release: bool,
    /// Host-side limit for the whole guest run, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub timeout: u64,
    /// Do not install packages, fail naming them instead.
    #[arg(long)]
    pub no_install: bool,
    /// Run only the lab tests whose name contains FILTER.
    #[arg(last = true, value_name = "FILTER", num_args = 0..=1)]
    pub filter: Option<String>,
}

/// A stage name of `--only`.
fn stage_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    if STAGES.iter().any(|st| st.name == s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown stage {s:?} (af-xdp, dpdk-vfio-pci, dpdk-uio)"
        ))
    }
}

/// The guest's run script: name the NICs, then every stage's tests, each between markers.
fn run_script(stages: &[(&Stage, &setup::Binary)], filter: Option<&str>) -> String {
    let ci = std::env::var("CI").unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#!/bin/sh\n# Written by cargo xtask test-vm; run by the guest's /init.\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root\n\
         export CI='{ci}' RUST_BACKTRACE=1\n\
         netif() {{ ls /sys/bus/pci/devices/$1/net /sys/bus/pci/devices/$1/virtio*/net 2>/dev/null | grep -v : | head -n 1; }}\n\
         bind() {{\n  d=/sys/bus/pci/devices/$1\n  echo $2 > $d/driver_override || return 1\n  \
         [ -e $d/driver ] && {{ echo $1 > $d/driver/unbind || return 1; }}\n  \
         echo $1 > /sys/bus/pci/drivers_probe\n  \
         [ \"$(basename $(readlink $d/driver))\" = $2 ] || {{ echo \"$1 is not bound to $2\"; return 1; }}\n  \
         echo \"$1 bound to $2\"\n}}\n\
         XDP_IF=$(netif {x}); XDP_PEER_IF=$(netif {xp}); DPDK_PEER_IF=$(netif {dp}); DPDK_PCI={d}\n\
         for i in $XDP_IF $XDP_PEER_IF $(netif {d}) $DPDK_PEER_IF; do ip link set dev $i up; done\n\
         echo \"NICs: AF_XDP $XDP_IF ($(basename $(readlink /sys/class/net/$XDP_IF/device/driver))) \
         peer $XDP_PEER_IF; DPDK $DPDK_PCI ($(netif {d})) peer $DPDK_PEER_IF\"\n\
         sleep 2\nrc=0",
        x = guest::XDP_DEV,
        xp = guest::XDP_PEER,
        d = guest::DPDK_DEV,
        dp = guest::DPDK_PEER,
    );
    for (st, bin) in stages {
        let env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let _ = writeln!(s, "echo '== stage {}'", st.name);
        let setup = if st.setup.is_empty() {
            "true"
        } else {
            st.setup
        };
        let _ = writeln!(
            s,
            "if ! out=$({setup} 2>&1); then echo \"{MARK}setup-failed {n}: $out\"; rc=1; else\necho \"$out\"",
            n = st.name
        );
        for t in bin
            .tests
            .iter()
            .filter(|t| filter.is_none_or(|f| t.contains(f)))
        {
            let _ = writeln!(
                s,
                "echo '{MARK}begin {n} {t}'\n\
                 timeout -k 5 {TEST_TIMEOUT} env {env} {exe} --exact {t} --ignored --nocapture --test-threads=1 2>&1\n\
                 r=$?; [ $r = 0 ] || rc=1; echo \"{MARK}end {n} {t} rc=$r\"",
                n = st.name,
                env = env.join(" "),
                exe = bin.path.display(),
            );
        }
        let _ = writeln!(s, "fi");
    }
    let _ = writeln!(s, "exit $rc");
    s
}

/// Runs `cargo xtask test-vm ARGS`.
pub fn run(a: &VmArgs) -> Result<(), String> {
    if !nethuns_testnet::is_root() {
        return Err("test-vm runs as root (apt, QEMU reading the whole / over 9p)".into());
    }
    let started = Instant::now();
    let stages: Vec<&Stage> = STAGES
        .iter()
        .filter(|s| {
            a.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == s.name))
        })
        .collect();
    setup::ensure_packages(!a.no_install)?;
    let vm = crate::util::target_dir().join("vm");
    let kernel = setup::kernel(&vm.join("kernels"))?;
    println!("test-vm: guest kernel {}", kernel.release);
    let mut packages: Vec<&str> = stages.iter().map(|s| s.package).collect();
    packages.dedup();
    let bins = setup::build_lab_tests(&packages, a.release)?;
    let initramfs = vm.join("initramfs.cpio");
    initramfs::build(&kernel.modules, &initramfs)?;
    let plan: Vec<(&Stage, &setup::Binary)> = stages
        .iter()
        .map(|s| {
            (
                *s,
                bins.iter().find(|b| b.package == s.package).expect("built"),
            )
        })
        .collect();
    let script = vm.join("run.sh");
    std::fs::write(&script, run_script(&plan, a.filter.as_deref()))
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let console = vm.join("console.log");
    // A guest under software emulation on a loaded 2-core host can stall (RCU stalls, then the
    // watchdog powers it off) without any test failing; such a run is booted once more, and
    // the first run's outcome stays printed above. A test that failed is never retried.
    let mut attempt = 1;
    let (problems, guest_secs) = loop {
        let (stalled, problems, secs) = boot_and_run(&kernel, &initramfs, &script, &console, a)?;
        if stalled && attempt == 1 {
            println!(
                "test-vm: the guest stalled before the end of its run script and no test \
                 failed ({}); booting it once more",
                problems.join("; ")
            );
            attempt += 1;
            continue;
        }
        break (problems, secs);
    };
    println!(
        "\ntest-vm: guest {guest_secs:.0} s, whole run {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// Boots the guest once and runs the script. Returns whether the guest stalled (never
/// reached the end of the script, no test failed), the problems, and the guest's seconds.
fn boot_and_run(
    kernel: &setup::Kernel,
    initramfs: &std::path::Path,
    script: &std::path::Path,
    console: &std::path::Path,
    a: &VmArgs,
) -> Result<(bool, Vec<String>, f64), String> {
    let sockets = guest::SocketDir::new()?;
    let boot = guest::Boot {
        vmlinuz: &kernel.vmlinuz,
        initramfs,
        run_script: script,
        console_log: console,
        sockets: &sockets.0,
    };
    println!(
        "test-vm: booting the guest (console: {}), {} s at most",
        console.display(),
        a.timeout
    );
    let booted = Instant::now();
    let ended = guest::run(guest::command(&boot), Duration::from_secs(a.timeout), |l| {
        println!("vm| {l}")
    })?;
    drop(sockets);
    let guest_secs = booted.elapsed().as_secs_f64();
    let r: Report = report::parse(&ended.lines);
    let (text, mut problems) = r.summary(nethuns_testnet::required());
    print!("{text}");
    if ended.timed_out {
        problems.push(format!("killed at the {} s limit", a.timeout));
    }
    let mut stalled = false;
    if r.done.is_none() {
        let log = std::fs::read_to_string(console).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        eprintln!(
            "test-vm: qemu {}; last lines of the guest console {}:",
            ended.status,
            console.display()
        );
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
        stalled = !ended.timed_out && !r.any_failed();
    }
    Ok((stalled, problems, guest_secs))
}
