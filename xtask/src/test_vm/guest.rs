//! Boots the guest under QEMU (software emulation: no KVM needed), streams the test output of
//! its second serial port, and kills the QEMU process it started if the run outlives its time.
//!
//! The machine: q35 with an emulated Intel IOMMU (for vfio-pci), 2 vCPUs, 3 GB, no disk; the
//! host's `/` over 9p read-only; four NICs cabled in two pairs by `-netdev dgram` over unix
//! sockets (no host network): virtio-net 00:03.0 ↔ virtio-net 00:04.0 (AF_XDP on 00:03.0) and
//! e1000e 00:05.0 ↔ virtio-net 00:06.0 (DPDK on 00:05.0); an i6300esb watchdog that powers the
//! guest off if its kernel stops.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The AF_XDP NIC under test and its peer.
pub const XDP_DEV: &str = "0000:00:03.0";
/// The AF_XDP NIC's peer.
pub const XDP_PEER: &str = "0000:00:04.0";
/// The DPDK NIC (e1000e).
pub const DPDK_DEV: &str = "0000:00:05.0";
/// The DPDK NIC's peer.
pub const DPDK_PEER: &str = "0000:00:06.0";

/// 2 MB hugepages the guest kernel reserves at boot (512 MB).
const HUGEPAGES: u32 = 256;

/// A directory of unix sockets, removed when dropped.
pub struct SocketDir(pub PathBuf);

impl SocketDir {
    /// A fresh one under /tmp (unix socket paths are short).
    pub fn new() -> Result<SocketDir, String> {
        let p = PathBuf::from(format!("/tmp/nethuns-vm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(SocketDir(p))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the guest boots.
pub struct Boot<'a> {
    /// The kernel image.
    pub vmlinuz: &'a Path,
    /// The initramfs.
    pub initramfs: &'a Path,
    /// The run script, a host path the guest reads over 9p.
    pub run_script: &'a Path,
    /// Where the guest kernel's console goes.
    pub console_log: &'a Path,
    /// Unix sockets of the NIC cables.
    pub sockets: &'a Path,
}

fn nic_pair(cmd: &mut Command, sockets: &Path, ids: [(&str, &str, &str); 2], slot: [u8; 2]) {
    for (i, (id, model, mac)) in ids.iter().enumerate() {
        let local = sockets.join(format!("{id}.sock"));
        let remote = sockets.join(format!("{}.sock", ids[1 - i].0));
        cmd.arg("-netdev").arg(format!(
            "dgram,id={id},local.type=unix,local.path={},remote.type=unix,remote.path={}",
            local.display(),
            remote.display()
        ));
        cmd.arg("-device").arg(format!(
            "{model},netdev={id},mac={mac},bus=pcie.0,addr={:#x},romfile=",
            slot[i]
        ));
    }
}

/// The host directories the guest must see although they lie where it mounts its own tmpfs
/// (`/tmp`, `/run`): the workspace and the target directory, comma-separated. A checkout under
/// `/tmp` (as a CI clone may be) would otherwise be hidden by the guest's `/tmp`.
fn keep_visible() -> String {
    [crate::util::root(), crate::util::target_dir()]
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The QEMU command line.
pub fn command(b: &Boot) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "3G",
    ]);
    cmd.args(["-machine", "q35", "-device", "intel-iommu,intremap=on"]);
    cmd.args([
        "-nodefaults",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
    ]);
    cmd.arg("-kernel").arg(b.vmlinuz);
    cmd.arg("-initrd").arg(b.initramfs);
    cmd.arg("-append").arg(format!(
        "console=ttyS0 loglevel=4 panic=-1 intel_iommu=on iommu=pt hugepagesz=2M \
         hugepages={HUGEPAGES} nethuns.run={} nethuns.keep={}",
        b.run_script.display(),
        keep_visible()
    ));
    cmd.arg("-serial")
        .arg(format!("file:{}", b.console_log.display()));
    cmd.args(["-serial", "stdio"]);
    cmd.args([
        "-virtfs",
        "local,path=/,mount_tag=root,security_model=passthrough,readonly=on,multidevs=remap",
    ]);
    nic_pair(
        &mut cmd,
        b.sockets,
        [
            ("xdp0", "virtio-net-pci", "52:54:00:6e:00:10"),
            ("xdp1", "virtio-net-pci", "52:54:00:6e:00:11"),
        ],
        [3, 4],
    );
    nic_pair(
        &mut cmd,
        b.sockets,
        [
            ("dpdk0", "e1000e", "52:54:00:6e:00:20"),
            ("dpdk1", "virtio-net-pci", "52:54:00:6e:00:21"),
        ],
        [5, 6],
    );
    cmd.args(["-device", "i6300esb", "-action", "watchdog=poweroff"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    cmd
}

/// How a boot ended.
pub struct Ended {
    /// Every line of the test stream.
    pub lines: Vec<String>,
    /// Whether the host killed QEMU at the deadline.
    pub timed_out: bool,
    /// QEMU's exit status.
    pub status: String,
}

/// Runs QEMU, hands every line of the test stream to `each` as it arrives, and kills the QEMU
/// process (by its pid, as a child of this one) if it is still running after `timeout`.
pub fn run(
    mut cmd: Command,
    timeout: Duration,
    mut each: impl FnMut(&str),
) -> Result<Ended, String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting qemu-system-x86_64: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + timeout;
    let mut lines = Vec::new();
    let mut timed_out = false;
    let status = loop {
        let quiet = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                each(&l);
                lines.push(l);
                false
            }
            Err(_) => true,
        };
        if Instant::now() >= end {
            timed_out = true;
            eprintln!(
                "test-vm: the guest is still running after {} s: killing qemu (pid {})",
                timeout.as_secs(),
                child.id()
            );
            let _ = child.kill();
            break child.wait().map_err(|e| format!("waiting for qemu: {e}"))?;
        }
        if quiet {
            if let Some(st) = child
                .try_wait()
                .map_err(|e| format!("waiting for qemu: {e}"))?
            {
                break st;
            }
        }
    };
    let _ = reader.join();
    for l in rx.try_iter() {
        each(&l);
        lines.push(l);
    }
    Ok(Ended {
        lines,
        timed_out,
        status: status.to_string(),
    })
}
