//! The guest's initramfs, built here: Debian's static busybox, the kernel modules the lab needs
//! with their dependencies (decompressed, in load order), and the init script, packed as an
//! uncompressed `newc` cpio archive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Modules the guest loads (their dependencies are added): the 9p root share, the NICs, the
/// userspace PCI drivers DPDK binds to, and the watchdog.
pub const MODULES: &[&str] = &[
    "9p",
    "9pnet_virtio",
    "virtio_net",
    "e1000e",
    "vfio_pci",
    "vfio_iommu_type1",
    "uio_pci_generic",
    "i6300esb",
];

/// The init script (`/init`).
const INIT: &str = include_str!("init.sh");

/// Every module file of the kernel, by module name (`-` written as `_`).
fn index(modules: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![modules.join("kernel")];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let Some(stem) = name.split(".ko").next().filter(|_| name.contains(".ko")) else {
                continue;
            };
            out.insert(stem.replace('-', "_"), p.clone());
        }
    }
    Ok(out)
}

/// The module's bytes, decompressed (`.ko.xz` with xz, `.ko.zst` with zstd).
fn read_module(p: &Path) -> Result<Vec<u8>, String> {
    let name = p.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else {
        return std::fs::read(p).map_err(|e| format!("{name}: {e}"));
    };
    let out = Command::new(tool)
        .args(["-dc", &name])
        .output()
        .map_err(|e| format!("{tool} -dc {name}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{tool} -dc {name}: {}", out.status));
    }
    Ok(out.stdout)
}

/// The `depends=` entry of a module's `.modinfo` section.
pub fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('-', "_"))
        .collect()
}

/// `wanted` and everything they depend on, dependencies first: (name, decompressed bytes).
fn resolve(modules: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let idx = index(modules)?;
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(|f| f.trim_end_matches(".ko").replace('-', "_"))
        .collect();
    let mut order: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        idx: &BTreeMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some(p) = idx.get(name) else {
            if builtin.contains(name) {
                return Ok(());
            }
            return Err(format!("module {name}: not in the kernel package"));
        };
        let bytes = read_module(p)?;
        for d in depends(&bytes) {
            visit(&d, idx, builtin, seen, order)?;
        }
        order.push((name.to_string(), bytes));
        Ok(())
    }
    for w in wanted {
        visit(w, &idx, &builtin, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// A `newc` cpio archive being written.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }

    /// A character device node.
    pub fn chardev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, (major, minor), &[]);
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out.resize(self.out.len().next_multiple_of(512), 0);
        self.out
    }
}

/// Writes the initramfs for the kernel whose modules are in `modules` to `out`.
pub fn build(modules: &Path, out: &Path) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    let bb = std::fs::read(busybox).map_err(|e| {
        format!(
            "{}: {e} (the busybox-static package provides it)",
            busybox.display()
        )
    })?;
    let mods = resolve(modules, MODULES)?;
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "host", "lib", "lib/modules"] {
        c.dir(d);
    }
    c.chardev("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &bb);
    c.file("init", 0o755, INIT.as_bytes());
    let mut order = String::new();
    for (name, bytes) in &mods {
        c.file(&format!("lib/modules/{name}.ko"), 0o644, bytes);
        order.push_str(name);
        order.push('\n');
    }
    c.file("modules.order", 0o644, order.as_bytes());
    std::fs::write(out, c.finish()).map_err(|e| format!("{}: {e}", out.display()))
}
