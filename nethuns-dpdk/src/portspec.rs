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
    /// or `net_DRIVER[ID]` (letters, digits, `_`).
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
            let p = PortSpec::parse(&s).unwrap();
            proptest::prop_assert_eq!(p.kind, PortKind::Vdev);
            proptest::prop_assert_eq!(p.devargs(), s);
        }
    }
}
