//! Tests of `cargo xtask test-hw`: argument parsing and the prerequisite checks against fake
//! `/sys` and `/proc` trees.

use super::*;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The options as `cargo xtask test-hw ARGS` parses them.
fn parse_args(args: &[String]) -> Result<HwArgs, clap::Error> {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        a: HwArgs,
    }
    use clap::Parser as _;
    Cli::try_parse_from(std::iter::once("test-hw".to_string()).chain(args.iter().cloned()))
        .map(|c| c.a)
}

/// A fake host tree under a fresh temp dir.
fn fake(name: &str) -> (PathBuf, Host) {
    let root = std::env::temp_dir().join(format!("test-hw-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let h = Host {
        root: root.clone(),
        euid: Some(0),
        xdp: Some(Ok((true, false))),
    };
    (root, h)
}

fn file(root: &Path, p: &str, text: &str) {
    let p = root.join(p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn nic(root: &Path, iface: &str, driver: &str) {
    let dev = root.join(format!("sys/class/net/{iface}/device"));
    std::fs::create_dir_all(&dev).unwrap();
    symlink(
        format!("../../../../bus/pci/drivers/{driver}"),
        dev.join("driver"),
    )
    .unwrap();
    file(root, &format!("sys/class/net/{iface}/operstate"), "up\n");
}

#[test]
fn parses_arguments() {
    let a = parse_args(&s(&[
        "--iface",
        "eth1",
        "--pci",
        "01:00.0",
        "--vale",
        "vale0:x",
        "--only",
        "netmap,dpdk",
        "--dry-run",
        "--",
        "lab_vale",
    ]))
    .unwrap();
    assert_eq!(a.iface.as_deref(), Some("eth1"));
    assert_eq!(a.pci.as_deref(), Some("0000:01:00.0"));
    assert_eq!(a.vale.as_deref(), Some("vale0:x"));
    assert_eq!(a.only, Some(vec![Backend::Netmap, Backend::Dpdk]));
    assert!(a.dry_run);
    assert_eq!(a.test_args, s(&["lab_vale"]));
    assert_eq!(
        parse_args(&s(&["--help"])).unwrap_err().kind(),
        clap::error::ErrorKind::DisplayHelp
    );
    for bad in [
        &["--iface"][..],
        &["--iface", "--pci"],
        &["--pci", "1:0"],
        &["--pci", "0000:01:00.9"],
        &["--vale", "foo"],
        &["--only", "pcap"],
        &["--bogus"],
        &["--iface", "a/b"],
    ] {
        assert!(parse_args(&s(bad)).is_err(), "{bad:?}");
    }
    assert_eq!(normalize_pci("0000:AF:00.1").unwrap(), "0000:af:00.1");
}

#[test]
fn missing_everything_is_named_per_backend() {
    let (root, mut h) = fake("empty");
    h.euid = Some(1000);
    let a = parse_args(&s(&["--iface", "eth9", "--pci", "0000:01:00.0"])).unwrap();
    let p = plan(&h, &a);
    let names: Vec<Backend> = p.iter().map(|(b, _)| *b).collect();
    assert_eq!(names, vec![Backend::Netmap, Backend::AfXdp, Backend::Dpdk]);
    let all = |b: Backend| {
        p.iter()
            .find(|(x, _)| *x == b)
            .unwrap()
            .1
            .missing
            .join("\n")
    };
    let nm = all(Backend::Netmap);
    assert!(
        nm.contains("uid 1000") && nm.contains("/dev/netmap") && nm.contains("eth9"),
        "{nm}"
    );
    assert!(nm.contains("not loaded"), "{nm}");
    let xdp = all(Backend::AfXdp);
    assert!(xdp.contains("/sys/class/net/eth9 does not exist"), "{xdp}");
    let dpdk = all(Backend::Dpdk);
    assert!(
        dpdk.contains("/sys/bus/pci/devices/0000:01:00.0 does not exist"),
        "{dpdk}"
    );
    assert!(
        dpdk.contains("/proc/meminfo") && dpdk.contains("hugetlbfs"),
        "{dpdk}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_ready_lab_passes_every_check() {
    let (root, h) = fake("ready");
    file(&root, "dev/netmap", "");
    nic(&root, "ens1f0", "ice");
    let dev = root.join("sys/bus/pci/devices/0000:3b:00.0");
    std::fs::create_dir_all(&dev).unwrap();
    symlink("../../../bus/pci/drivers/vfio-pci", dev.join("driver")).unwrap();
    std::fs::create_dir_all(root.join("dev/vfio")).unwrap();
    file(
        &root,
        "proc/meminfo",
        "MemTotal: 1 kB\nHugePages_Total:    1024\nHugePages_Free:     1000\n",
    );
    file(
        &root,
        "proc/mounts",
        "proc /proc proc rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime 0 0\n",
    );
    let a = parse_args(&s(&[
        "--iface", "ens1f0", "--vale", "vale0", "--pci", "3b:00.0",
    ]))
    .unwrap();
    for (b, c) in plan(&h, &a) {
        assert!(c.missing.is_empty(), "{b}: {:?}", c.missing);
        match b {
            Backend::Netmap => {
                assert!(c.env.contains(&("NETHUNS_HW_IFACE", "ens1f0".into())));
                assert!(c.env.contains(&("NETHUNS_HW_VALE", "vale0".into())));
                assert!(c.notes.iter().any(|n| n.contains("driver ice")));
            }
            Backend::AfXdp => {
                assert_eq!(c.env, vec![("NETHUNS_HW_IFACE", "ens1f0".to_string())])
            }
            Backend::Dpdk => {
                assert_eq!(c.env, vec![("NETHUNS_HW_PCI", "0000:3b:00.0".to_string())])
            }
            other => panic!("{other} has no lab tests"),
        }
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn wrong_drivers_and_exhausted_hugepages_are_reported() {
    let (root, h) = fake("wrong");
    nic(&root, "eth0", "r8169");
    let dev = root.join("sys/bus/pci/devices/0000:01:00.0");
    std::fs::create_dir_all(&dev).unwrap();
    symlink("../../../bus/pci/drivers/ixgbe", dev.join("driver")).unwrap();
    file(
        &root,
        "proc/meminfo",
        "HugePages_Total: 8\nHugePages_Free: 0\n",
    );
    file(&root, "proc/mounts", "");
    file(&root, "proc/sys/kernel/osrelease", "6.12.9\n");
    // The kernel's word decides: native without zero-copy runs (zero-copy tests skip), no
    // native XDP is missing, zero-copy is noted.
    let xdp = check_af_xdp(&h, "eth0");
    assert!(xdp.missing.is_empty(), "{:?}", xdp.missing);
    let notes = xdp.notes.join("\n");
    assert!(
        notes.contains("driver r8169 on Linux 6.12.9 has no AF_XDP zero-copy"),
        "{notes}"
    );
    let none = Host {
        xdp: Some(Ok((false, false))),
        ..fake("wrong-nonative").1
    };
    nic(&none.root, "eth0", "r8169");
    let m = check_af_xdp(&none, "eth0").missing.join("\n");
    assert!(
        m.contains("driver r8169") && m.contains("runs no XDP itself"),
        "{m}"
    );
    std::fs::remove_dir_all(&none.root).unwrap();
    let zc = Host {
        xdp: Some(Ok((true, true))),
        ..fake("wrong-zc").1
    };
    nic(&zc.root, "eth0", "ice");
    let n = check_af_xdp(&zc, "eth0").notes.join("\n");
    assert!(
        n.contains("driver ice") && n.contains("advertises AF_XDP zero-copy"),
        "{n}"
    );
    std::fs::remove_dir_all(&zc.root).unwrap();
    let d = check_dpdk(&h, "0000:01:00.0").missing.join("\n");
    assert!(d.contains("bound to ixgbe, not vfio-pci"), "{d}");
    assert!(d.contains("all 8 reserved hugepages are in use"), "{d}");
    let nm = check_netmap(&h, Some("eth0"), None);
    assert!(
        nm.notes.iter().any(|n| n.contains("r8169")),
        "{:?}",
        nm.notes
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn only_restricts_and_vale_alone_selects_netmap() {
    let h = Host {
        root: PathBuf::from("/nonexistent-test-hw"),
        euid: Some(0),
        xdp: None,
    };
    let a = parse_args(&s(&["--iface", "eth0", "--only", "af-xdp"])).unwrap();
    let p = plan(&h, &a);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, Backend::AfXdp);
    let a = parse_args(&s(&["--vale", "vale1:p"])).unwrap();
    let p = plan(&h, &a);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, Backend::Netmap);
    assert_eq!(p[0].1.env, vec![("NETHUNS_HW_VALE", "vale1:p".to_string())]);
}

#[test]
fn the_real_machine_without_devices_fails_clearly() {
    // No --iface/--vale/--pci: an error, not a silent success.
    let e = run(&HwArgs::default()).unwrap_err();
    assert!(e.contains("nothing to test"), "{e}");
    let e = run(&parse_args(&s(&["--vale", "vale0", "--dry-run"])).unwrap());
    if !Path::new("/dev/netmap").exists() {
        let e = e.unwrap_err();
        assert!(e.contains("netmap: cannot run"), "{e}");
    }
}
