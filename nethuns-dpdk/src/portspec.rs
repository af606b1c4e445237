//! Parsing of DPDK portspecs (pure, no EAL): a PCI address or a virtual device with arguments.

use nethuns_core::{Error, Result};

/// What a portspec names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// A PCI device (`0000:01:00.0`), probed on the `pci` bus (needs EAL without `--no-pci`
    /// and the NIC bound to vfio-pci/uio).
    Pci,
    /// A virtual device (`net_ring0`, `net_af_packet0,iface=veth0` …) on the `vdev` bus.
    Vdev,
}

/// A parsed portspec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// PCI or virtual device.
    pub kind: PortKind,
    /// The device name, which is also its ethdev port name (`0000:01:00.0`, `net_ring0`).
    pub name: String,
    /// Driver arguments after the first comma (`iface=veth0,qpairs=1`), possibly empty.
    pub args: String,
}

const FORMS: &str = "expected a PCI address (0000:01:00.0, optionally ,ARGS) or a DPDK virtual \
device: net_ring0, net_null0, net_af_packet0,iface=IF, net_af_xdp0,iface=IF, net_tap0 …";

impl PortSpec {
    /// Parses `spec`: `NAME[,ARGS]` where NAME is a PCI address (`DDDD:BB:DD.F` or `BB:DD.F`)
    /// or `net_DRIVER[ID]` (letters, digits, `_`). The arguments of the virtual devices
    /// nethuns knows (net_null, net_ring, net_af_packet, net_af_xdp, net_tap, net_tun,
    /// net_pcap) are checked here: an unknown key, a missing value or a value out of range is
    /// an [`Error::InvalidPortspec`] naming the argument (`size=0`, `qpairs=100000` …).
    pub fn parse(spec: &str) -> Result<PortSpec> {
        let bad = |reason: String| Error::portspec(spec, reason);
        if spec.trim() != spec || spec.is_empty() {
            return Err(bad(format!("empty or surrounded by blanks; {FORMS}")));
        }
        let (name, args) = match spec.split_once(',') {
            Some((n, a)) => (n, a),
            None => (spec, ""),
        };
        if spec.contains(',') && args.is_empty() {
            return Err(bad("empty driver arguments after ','".into()));
        }
        if args.split(',').any(|kv| kv.is_empty() && !args.is_empty())
            || args.chars().any(|c| c.is_whitespace() || c == '\0')
        {
            return Err(bad(format!("malformed driver arguments {args:?}")));
        }
        if let Some(pci) = parse_pci(name) {
            return Ok(PortSpec {
                kind: PortKind::Pci,
                name: pci,
                args: args.into(),
            });
        }
        if looks_like_pci(name) {
            return Err(bad(format!(
                "{name:?} is not a valid PCI address (DDDD:BB:DD.F, hex, function 0-7)"
            )));
        }
        match name.strip_prefix("net_") {
            Some(rest)
                if !rest.is_empty()
                    && rest.starts_with(|c: char| c.is_ascii_alphabetic())
                    && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                check_vdev_args(name, args).map_err(bad)?;
                Ok(PortSpec {
                    kind: PortKind::Vdev,
                    name: name.into(),
                    args: args.into(),
                })
            }
            _ => Err(bad(format!("unknown device {name:?}; {FORMS}"))),
        }
    }

    /// The devargs string for `rte_dev_probe` (`NAME[,ARGS]`, PCI address normalised).
    pub fn devargs(&self) -> String {
        if self.args.is_empty() {
            self.name.clone()
        } else {
            format!("{},{}", self.name, self.args)
        }
    }

    /// The kernel interface a virtual device runs over (its `iface=` argument), if any.
    pub fn iface(&self) -> Option<&str> {
        if self.kind != PortKind::Vdev {
            return None;
        }
        self.args
            .split(',')
            .find_map(|kv| kv.strip_prefix("iface="))
            .filter(|i| !i.is_empty())
    }

    /// The DPDK bus name (`pci` or `vdev`).
    pub fn bus(&self) -> &'static str {
        match self.kind {
            PortKind::Pci => "pci",
            PortKind::Vdev => "vdev",
        }
    }
}

/// What a driver argument's value may be.
#[derive(Clone, Copy)]
enum Value {
    /// Any non-empty text (an interface name, a path).
    Text,
    /// An integer in `lo..=hi` (decimal, or hex with `0x`, as DPDK's `strtoul(.., 0)`).
    Int(u64, u64),
    /// `0` or `1`.
    Bool,
    /// `fixed` or a MAC address `xx:xx:xx:xx:xx:xx`.
    Mac,
    /// `NAME:NODE:ACTION`, ACTION `CREATE` or `ATTACH` (net_ring's `nodeaction`).
    NodeAction,
}

/// The most queue pairs a net_af_packet or net_af_xdp port may be given: one AF_PACKET socket
/// (with its own ring) or XSK per pair, and a nethuns socket uses one queue.
pub const MAX_VDEV_QUEUES: u64 = 128;

/// The arguments nethuns knows for the virtual devices of DPDK 22.11 (their
/// `RTE_PMD_REGISTER_PARAM_STRING`), with the values each takes. A device name selects its
/// driver by prefix, as DPDK's vdev bus does (`net_null0`, `net_nullA` → `net_null`). Other
/// drivers' arguments are passed to DPDK unchecked.
const VDEV_ARGS: &[(&str, &[(&str, Value)])] = &[
    (
        "net_null",
        &[
            // The dummy packet's size: an mbuf's data_len is 16 bits, and 0 makes no packet.
            ("size", Value::Int(1, 65_535)),
            ("copy", Value::Bool),
            ("no-rx", Value::Bool),
        ],
    ),
    ("net_ring", &[("nodeaction", Value::NodeAction)]),
    (
        "net_af_packet",
        &[
            ("iface", Value::Text),
            ("qpairs", Value::Int(1, MAX_VDEV_QUEUES)),
            ("blocksz", Value::Int(1, 1 << 28)),
            ("framesz", Value::Int(1, 1 << 20)),
            ("framecnt", Value::Int(1, 1 << 20)),
            ("qdisc_bypass", Value::Bool),
        ],
    ),
    (
        "net_af_xdp",
        &[
            ("iface", Value::Text),
            ("start_queue", Value::Int(0, 1023)),
            ("queue_count", Value::Int(1, MAX_VDEV_QUEUES)),
            ("shared_umem", Value::Bool),
            ("xdp_prog", Value::Text),
            ("busy_budget", Value::Int(0, u16::MAX as u64)),
            ("force_copy", Value::Bool),
        ],
    ),
    (
        "net_tap",
        &[
            ("iface", Value::Text),
            ("mac", Value::Mac),
            ("remote", Value::Text),
        ],
    ),
    ("net_tun", &[("iface", Value::Text)]),
    (
        "net_pcap",
        &[
            ("rx_pcap", Value::Text),
            ("tx_pcap", Value::Text),
            ("rx_iface", Value::Text),
            ("rx_iface_in", Value::Text),
            ("tx_iface", Value::Text),
            ("iface", Value::Text),
            ("phy_mac", Value::Bool),
            ("infinite_rx", Value::Bool),
        ],
    ),
];

/// Checks the arguments of virtual device `name` against [`VDEV_ARGS`]: a known driver's
/// unknown key, missing value or value out of range is refused, naming the argument.
fn check_vdev_args(name: &str, args: &str) -> std::result::Result<(), String> {
    let Some((driver, known)) = VDEV_ARGS.iter().find(|(d, _)| name.starts_with(d)) else {
        return Ok(());
    };
    if args.is_empty() {
        return Ok(());
    }
    for kv in args.split(',') {
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        let keys = || known.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
        let Some((_, kind)) = known.iter().find(|(k, _)| *k == key) else {
            return Err(format!(
                "argument {kv:?}: {driver} has no argument {key:?} (it takes {})",
                keys()
            ));
        };
        check_value(*kind, value).map_err(|why| format!("argument {kv:?} of {driver}: {why}"))?;
    }
    Ok(())
}

fn check_value(kind: Value, v: &str) -> std::result::Result<(), String> {
    if v.is_empty() {
        return Err("needs a value".into());
    }
    match kind {
        Value::Text => Ok(()),
        Value::Bool if v == "0" || v == "1" => Ok(()),
        Value::Bool => Err(format!("{v:?} is not 0 or 1")),
        Value::Int(lo, hi) => {
            let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse::<u64>(),
            };
            match n {
                Ok(n) if (lo..=hi).contains(&n) => Ok(()),
                Ok(_) => Err(format!("{v} is out of range: expected {lo} to {hi}")),
                Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                    Err(format!("{v} is out of range: expected {lo} to {hi}"))
                }
                Err(_) => Err(format!("{v:?} is not an integer: expected {lo} to {hi}")),
            }
        }
        Value::Mac => {
            let parts: Vec<&str> = v.split(':').collect();
            if v == "fixed" || (parts.len() == 6 && parts.iter().all(|p| hex_field(p, 2))) {
                Ok(())
            } else {
                Err(format!(
                    "{v:?} is neither \"fixed\" nor a MAC address xx:xx:xx:xx:xx:xx"
                ))
            }
        }
        Value::NodeAction => match v.split(':').collect::<Vec<_>>().as_slice() {
            [name, node, "CREATE" | "ATTACH"]
                if !name.is_empty() && node.parse::<u32>().is_ok() =>
            {
                Ok(())
            }
            _ => Err(format!("{v:?} is not NAME:NODE:CREATE or NAME:NODE:ATTACH")),
        },
    }
}

fn looks_like_pci(s: &str) -> bool {
    s.contains(':') && s.contains('.')
}

fn hex_field(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `DDDD:BB:DD.F` or `BB:DD.F` → lower-case `DDDD:BB:DD.F`.
fn parse_pci(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (dom, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    let ok = hex_field(dom, 4)
        && hex_field(bus, 2)
        && hex_field(dev, 2)
        && u8::from_str_radix(dev, 16).ok()? < 32
        && func.len() == 1
        && matches!(func.as_bytes()[0], b'0'..=b'7');
    ok.then(|| format!("{dom}:{bus}:{dev}.{func}").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_forms() {
        let p = PortSpec::parse("0000:01:00.0").unwrap();
        assert_eq!(
            (p.kind, p.name.as_str(), p.args.as_str()),
            (PortKind::Pci, "0000:01:00.0", "")
        );
        let p = PortSpec::parse("3B:00.1,rxq_cqe_comp_en=0").unwrap();
        assert_eq!(p.name, "0000:3b:00.1");
        assert_eq!(p.devargs(), "0000:3b:00.1,rxq_cqe_comp_en=0");
        assert_eq!(p.bus(), "pci");
    }

    #[test]
    fn vdev_forms() {
        for (s, name, args) in [
            ("net_ring0", "net_ring0", ""),
            ("net_null0", "net_null0", ""),
            (
                "net_af_packet0,iface=veth0",
                "net_af_packet0",
                "iface=veth0",
            ),
            (
                "net_af_xdp1,iface=veth0,start_queue=0",
                "net_af_xdp1",
                "iface=veth0,start_queue=0",
            ),
            ("net_tap0", "net_tap0", ""),
        ] {
            let p = PortSpec::parse(s).unwrap();
            assert_eq!(
                (p.kind, p.name.as_str(), p.args.as_str()),
                (PortKind::Vdev, name, args)
            );
            assert_eq!(p.devargs(), s);
            assert_eq!(p.bus(), "vdev");
        }
    }

    #[test]
    fn bad_forms_are_refused_with_reason() {
        for s in [
            "",
            " net_ring0",
            "eth0",
            "net_",
            "net_0",
            "net_ring0,",
            "net_ring0,,a=1",
            "net_ring0,iface=a b",
            "0000:zz:00.0",
            "0000:01:00.9",
            "01:00",
            "netmap:eth0",
            "net-ring0",
            "0000:01:40.0",
        ] {
            match PortSpec::parse(s) {
                Err(Error::InvalidPortspec { spec, reason }) => {
                    assert_eq!(spec, s);
                    assert!(!reason.is_empty());
                }
                other => panic!("{s:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn known_drivers_arguments_are_checked_and_named() {
        for (s, arg) in [
            ("net_null0,size=abc", "size=abc"),
            ("net_null0,size=0", "size=0"),
            ("net_null0,size=99999999999", "size=99999999999"),
            ("net_null0,size=", "size="),
            ("net_null0,copy=7", "copy=7"),
            ("net_null0,no-rx=yes", "no-rx=yes"),
            ("net_ring0,foo=bar", "foo=bar"),
            ("net_ring0,nodeaction=r:0:DESTROY", "nodeaction=r:0:DESTROY"),
            ("net_af_packet0,iface=veth0,qpairs=100000", "qpairs=100000"),
            ("net_af_packet0,iface=veth0,qpairs=0", "qpairs=0"),
            ("net_af_packet0,iface=veth0,framecnt=-1", "framecnt=-1"),
            ("net_af_packet0,ifname=veth0", "ifname=veth0"),
            ("net_af_packet0,iface", "iface"),
            ("net_af_xdp0,iface=veth0,start_queue=x", "start_queue=x"),
            ("net_af_xdp0,iface=veth0,force_copy=2", "force_copy=2"),
            ("net_af_xdp0,iface=veth0,queue_count=0", "queue_count=0"),
            ("net_tap0,mac=01:02", "mac=01:02"),
            ("net_pcap0,infinite_rx=true", "infinite_rx=true"),
        ] {
            match PortSpec::parse(s) {
                Err(Error::InvalidPortspec { reason, .. }) => {
                    assert!(reason.contains(&format!("{arg:?}")), "{s}: {reason}");
                    if arg.ends_with("abc") {
                        assert!(reason.contains("not an integer"), "{reason}");
                    }
                }
                other => panic!("{s:?}: {other:?}"),
            }
        }
        for s in [
            "net_null0,size=64,copy=1,no-rx=0",
            "net_null0,size=0x40",
            "net_ring0,nodeaction=r0:0:CREATE",
            "net_af_packet0,iface=veth0,qpairs=1,blocksz=4096,framesz=2048,framecnt=512,qdisc_bypass=1",
            "net_af_xdp0,iface=veth0,start_queue=0,queue_count=1,busy_budget=0,force_copy=1",
            "net_tap0,iface=tap0,mac=fixed",
            "net_tap1,mac=02:00:00:00:00:01",
            "net_pcap0,rx_pcap=/tmp/a.pcap,infinite_rx=1",
            // Drivers nethuns does not know are left to DPDK.
            "net_vhost0,iface=/tmp/sock,queues=1",
        ] {
            PortSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,40}") {
            if let Ok(p) = PortSpec::parse(&s) {
                let again = PortSpec::parse(&p.devargs()).unwrap();
                proptest::prop_assert_eq!(again, p);
            }
        }

        #[test]
        fn every_pci_address_parses(dom in 0u16.., bus in 0u8.., dev in 0u8..32, f in 0u8..8) {
            let s = format!("{dom:04X}:{bus:02x}:{dev:02x}.{f}");
            let p = PortSpec::parse(&s).unwrap();
            proptest::prop_assert_eq!(p.kind, PortKind::Pci);
            proptest::prop_assert_eq!(p.name, s.to_ascii_lowercase());
        }

        #[test]
        fn vdev_with_args(drv in "[a-z][a-z0-9_]{0,12}", id in 0u8..100, args in "[a-z]{1,6}=[a-z0-9_]{1,8}") {
            let s = format!("net_{drv}{id},{args}");
            // Known drivers check their keys (above); any other takes any argument.
            proptest::prop_assume!(!VDEV_ARGS.iter().any(|(d, _)| s.starts_with(d)));
            let p = PortSpec::parse(&s).unwrap();
            proptest::prop_assert_eq!(p.kind, PortKind::Vdev);
            proptest::prop_assert_eq!(p.devargs(), s);
        }
    }
}
