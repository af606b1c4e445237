//! What the guest needs from the host: QEMU and busybox-static (apt, with Debian's
//! `bookworm-backports` suite added for QEMU and the kernel), the backports kernel unpacked
//! into a cache directory, and the lab test binaries built on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{root, sh};

/// The suite QEMU and the kernel come from.
const BACKPORTS: &str = "bookworm-backports";
/// The apt source added when no configured source names the backports suite.
const BACKPORTS_SOURCE: &str = "/etc/apt/sources.list.d/nethuns-bookworm-backports.sources";

fn dpkg_version(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", pkg])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (status, version) = text.split_once('\t')?;
    status
        .contains("install ok installed")
        .then(|| version.to_string())
}

/// Whether an apt source of this machine names the backports suite.
fn backports_configured() -> bool {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.iter().any(|f| {
        let enabled = f.extension().is_some_and(|e| e == "list" || e == "sources");
        enabled
            && std::fs::read_to_string(f).is_ok_and(|t| {
                t.lines()
                    .any(|l| !l.trim_start().starts_with('#') && l.contains(BACKPORTS))
            })
    })
}

/// The Debian mirror the machine's own sources use (deb.debian.org if none is found).
fn mirror() -> String {
    let text = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .or_else(|_| std::fs::read_to_string("/etc/apt/sources.list"))
        .unwrap_or_default();
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.trim_end_matches('/').ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}

/// QEMU from backports is at least 8 (bookworm's 7.2 breaks next to a newer qemu-utils).
fn qemu_ok() -> bool {
    dpkg_version("qemu-system-x86").is_some_and(|v| {
        let v = v.split_once(':').map_or(v.as_str(), |(_, r)| r);
        v.split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m >= 8)
    })
}

/// Installs QEMU (backports) and busybox-static when missing; as root only.
pub fn ensure_packages(install: bool) -> Result<(), String> {
    let need_qemu = !qemu_ok();
    let need_busybox = dpkg_version("busybox-static").is_none();
    let have_backports = backports_configured();
    if !need_qemu && !need_busybox && have_backports {
        return Ok(());
    }
    if !install || !nethuns_testnet::is_root() {
        return Err(format!(
            "test-vm needs qemu-system-x86 from {BACKPORTS} and busybox-static; run as root \
             (it adds the {BACKPORTS} suite and installs them) or install them yourself"
        ));
    }
    if !have_backports {
        eprintln!("test-vm: adding the {BACKPORTS} suite ({BACKPORTS_SOURCE})");
        let text = format!(
            "Types: deb\nURIs: {}\nSuites: {BACKPORTS}\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            mirror()
        );
        std::fs::write(BACKPORTS_SOURCE, text)
            .map_err(|e| format!("writing {BACKPORTS_SOURCE}: {e}"))?;
    }
    sh("apt-get update -qq")?;
    let apt = "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends";
    if need_qemu {
        sh(&format!("{apt} -t {BACKPORTS} qemu-system-x86"))?;
    }
    if need_busybox {
        sh(&format!("{apt} busybox-static"))?;
    }
    if !qemu_ok() {
        return Err(format!(
            "qemu-system-x86 {:?} is installed; test-vm needs the {BACKPORTS} one (8 or later)",
            dpkg_version("qemu-system-x86")
        ));
    }
    Ok(())
}

/// The unpacked guest kernel.
pub struct Kernel {
    /// The release (`uname -r` in the guest), e.g. `6.12.95+deb12-amd64`.
    pub release: String,
    /// `boot/vmlinuz-RELEASE`.
    pub vmlinuz: PathBuf,
    /// `lib/modules/RELEASE`.
    pub modules: PathBuf,
}

fn apt_show_depends(pkg: &str) -> Option<String> {
    let out = Command::new("apt-cache")
        .args(["show", &format!("{pkg}/{BACKPORTS}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let deps = text.lines().find_map(|l| l.strip_prefix("Depends: "))?;
    deps.split([',', ' '])
        .find(|d| d.starts_with("linux-image-"))
        .map(str::to_string)
}

fn unpacked(dir: &Path) -> Option<Kernel> {
    let release = dir
        .file_name()?
        .to_str()?
        .strip_prefix("linux-image-")?
        .to_string();
    let k = Kernel {
        vmlinuz: dir.join(format!("boot/vmlinuz-{release}")),
        modules: dir.join(format!("lib/modules/{release}")),
        release,
    };
    (k.vmlinuz.exists() && k.modules.is_dir()).then_some(k)
}

/// The backports kernel (`linux-image-amd64` of bookworm-backports resolved to its image
/// package), downloaded with `apt-get download` and unpacked with `dpkg-deb -x` into `cache`
/// once; a cached one is reused when apt cannot say which is current.
pub fn kernel(cache: &Path) -> Result<Kernel, String> {
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let Some(pkg) = apt_show_depends("linux-image-amd64") else {
        let cached = std::fs::read_dir(cache)
            .into_iter()
            .flatten()
            .filter_map(|e| unpacked(&e.ok()?.path()))
            .max_by(|a, b| a.release.cmp(&b.release));
        return cached.ok_or_else(|| {
            format!(
                "apt-cache knows no linux-image-amd64 in {BACKPORTS} (apt-get update?) and \
                 {} holds no unpacked kernel",
                cache.display()
            )
        });
    };
    let dir = cache.join(&pkg);
    if let Some(k) = unpacked(&dir) {
        return Ok(k);
    }
    eprintln!(
        "test-vm: downloading {pkg} ({BACKPORTS}) into {}",
        cache.display()
    );
    let dl = cache.join("download");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl).map_err(|e| format!("{}: {e}", dl.display()))?;
    sh(&format!(
        "cd '{}' && apt-get download -qq '{pkg}/{BACKPORTS}' 2>&1 | grep -v unsandboxed || true",
        dl.display()
    ))?;
    let deb = std::fs::read_dir(&dl)
        .map_err(|e| format!("{}: {e}", dl.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {pkg} left no .deb in {}", dl.display()))?;
    let tmp = cache.join(format!("{pkg}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    sh(&format!(
        "dpkg-deb -x '{}' '{}'",
        deb.display(),
        tmp.display()
    ))?;
    std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&dl);
    unpacked(&dir).ok_or_else(|| format!("{pkg} unpacked into {} has no vmlinuz", dir.display()))
}

/// `cargo ARGS` in the workspace root: its stdout (stderr shows the build).
fn cargo_output(args: &[&str]) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(args)
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("cargo {} failed: {}", args.join(" "), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A lab test binary built on the host.
pub struct Binary {
    /// The package (`nethuns-afxdp`, `nethuns-dpdk`).
    pub package: String,
    /// The executable.
    pub path: PathBuf,
    /// Its `#[ignore]`d tests (the lab tests).
    pub tests: Vec<String>,
}

/// Builds the `lab` test targets (`cargo test --no-run`, JSON messages) of the workspace, with
/// the features `cargo xtask test` builds (so its artifacts serve), and lists the `#[ignore]`d
/// tests of those of `packages`.
pub fn build_lab_tests(packages: &[&str], release: bool) -> Result<Vec<Binary>, String> {
    let mut args = vec![
        "test",
        "--no-run",
        "--message-format=json",
        "--workspace",
        "--all-features",
        "--test",
        "lab",
    ];
    if release {
        args.push("--release");
    }
    let out = cargo_output(&args)?;
    let mut bins = Vec::new();
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        if v["target"]["name"] != "lab" {
            continue;
        }
        let id = v["package_id"].as_str().unwrap_or_default();
        let Some(package) = packages
            .iter()
            .find(|p| id.contains(&format!("/{p}#")) || id.starts_with(&format!("{p} ")))
        else {
            continue;
        };
        let list = Command::new(exe)
            .args(["--ignored", "--list"])
            .output()
            .map_err(|e| format!("{exe} --list: {e}"))?;
        let tests: Vec<String> = String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_string)
            .collect();
        bins.push(Binary {
            package: package.to_string(),
            path: PathBuf::from(exe),
            tests,
        });
    }
    for p in packages {
        if !bins.iter().any(|b| b.package == *p) {
            return Err(format!("cargo built no `lab` test binary for {p}"));
        }
    }
    Ok(bins)
}
