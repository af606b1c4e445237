//! Portspec parsing: which netmap port and which of its rings a socket binds. Pure: no I/O.
//!
//! | portspec | port | rings |
//! |---|---|---|
//! | `netmap:eth0` | interface `eth0` | all hardware ring pairs (`NR_REG_ALL_NIC`) |
//! | `netmap:eth0-2` | interface `eth0` | hardware ring pair 2 (`NR_REG_ONE_NIC`) |
//! | `netmap:eth0^` | interface `eth0` | all host-stack ring pairs (`NR_REG_SW`) |
//! | `netmap:eth0^1` | interface `eth0` | host-stack ring pair 1 (`NR_REG_ONE_SW`) |
//! | `netmap:eth0*` | interface `eth0` | hardware and host rings (`NR_REG_NIC_SW`) |
//! | `vale0:p1` | port `p1` of VALE switch `vale0` (created on demand) | all its rings |
//! | `vale0:p1-0` | port `p1` of VALE switch `vale0` | ring pair 0 |
//!
//! As in netmap's own parser, a trailing `-N` always means a ring: an interface whose name ends
//! in `-<digits>` cannot be named without a ring suffix. The `queue` argument of `create`
//! selects one ring pair: `netmap:eth0` with `Some(3)` is `netmap:eth0-3` (and `netmap:eth0^`
//! with `Some(1)` is `netmap:eth0^1`); a queue that contradicts the portspec is refused.
//! netmap's pipes (`{`/`}`), memory ids (`@`) and `/` flags are not supported.

use std::fmt;

use nethuns_core::{Error, Result};

use crate::sys;

/// The largest ring number netmap accepts (`NETMAP_RING_MASK`).
pub const MAX_RING: u16 = 0x0fff;
/// The longest interface name (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = sys::IFNAMSIZ - 1;

/// What kind of netmap port a portspec names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// A network interface put in netmap mode (`netmap:IF`).
    Interface,
    /// A port of a VALE software switch (`valeSW:PORT`).
    Vale {
        /// The switch name (`vale0`).
        switch: String,
        /// The port name on that switch.
        port: String,
    },
}

/// Which rings of the port to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rings {
    /// All hardware ring pairs.
    AllNic,
    /// One hardware ring pair.
    OneNic(u16),
    /// All host-stack ring pairs.
    Host,
    /// One host-stack ring pair.
    OneHost(u16),
    /// Hardware and host rings.
    NicAndHost,
}

impl Rings {
    /// `(nr_mode, nr_ringid)` of a `NETMAP_REQ_REGISTER` for these rings.
    pub fn register_mode(self) -> (u32, u16) {
        match self {
            Rings::AllNic => (sys::NR_REG_ALL_NIC, 0),
            Rings::OneNic(r) => (sys::NR_REG_ONE_NIC, r),
            Rings::Host => (sys::NR_REG_SW, 0),
            Rings::OneHost(r) => (sys::NR_REG_ONE_SW, r),
            Rings::NicAndHost => (sys::NR_REG_NIC_SW, 0),
        }
    }
}

/// A parsed portspec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The name given to netmap (`nmreq_header.nr_name`): `eth0`, `vale0:p1`.
    pub name: String,
    /// Interface or VALE port.
    pub kind: PortKind,
    /// The rings to bind.
    pub rings: Rings,
}

impl PortSpec {
    /// Parses a portspec (see the module docs for the forms).
    pub fn parse(spec: &str) -> Result<PortSpec> {
        let bad = |reason: String| Error::portspec(spec, reason);
        if let Some(c) = spec.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(format!("contains the character {c:?}")));
        }
        for (c, what) in [
            ('{', "netmap pipes"),
            ('}', "netmap pipes"),
            ('@', "memory ids (@)"),
            ('/', "register flags (/...)"),
        ] {
            if spec.contains(c) {
                return Err(bad(format!("{what} are not supported")));
            }
        }
        if let Some(rest) = spec.strip_prefix("netmap:") {
            let (name, rings) = split_rings(rest).map_err(bad)?;
            check_ifname(name).map_err(bad)?;
            return Ok(PortSpec {
                name: name.to_string(),
                kind: PortKind::Interface,
                rings,
            });
        }
        if spec.starts_with("vale") {
            let (sw, rest) = spec.split_once(':').ok_or_else(|| {
                bad("a VALE port is written `valeSWITCH:PORT`, e.g. `vale0:p1`".into())
            })?;
            let (port, rings) = split_rings(rest).map_err(bad)?;
            check_word("VALE switch suffix", &sw["vale".len()..], true).map_err(bad)?;
            check_word("VALE port name", port, false).map_err(bad)?;
            match rings {
                Rings::AllNic | Rings::OneNic(_) => {}
                _ => return Err(bad("a VALE port has no host rings (`^`, `*`)".into())),
            }
            let name = format!("{sw}:{port}");
            if name.len() >= sys::NETMAP_REQ_IFNAMSIZ {
                return Err(bad(format!(
                    "`{name}` is {} bytes; netmap allows {}",
                    name.len(),
                    sys::NETMAP_REQ_IFNAMSIZ - 1
                )));
            }
            return Ok(PortSpec {
                name,
                kind: PortKind::Vale {
                    switch: sw.to_string(),
                    port: port.to_string(),
                },
                rings,
            });
        }
        Err(bad(
            "expected `netmap:IFNAME` (optionally `-RING`, `^`, `^RING`, `*`) or `valeSWITCH:PORT`"
                .into(),
        ))
    }

    /// Applies `create`'s `queue` argument: `Some(q)` selects ring pair `q` (host ring pair `q`
    /// for `^`); a queue that contradicts the portspec is an error naming both.
    pub fn with_queue(mut self, spec: &str, queue: Option<usize>) -> Result<PortSpec> {
        let Some(q) = queue else { return Ok(self) };
        let bad = |reason: String| Error::portspec(spec, reason);
        let q16 = u16::try_from(q)
            .ok()
            .filter(|&r| r <= MAX_RING)
            .ok_or_else(|| {
                bad(format!(
                    "queue {q} is above netmap's largest ring {MAX_RING}"
                ))
            })?;
        self.rings = match self.rings {
            Rings::AllNic => Rings::OneNic(q16),
            Rings::Host => Rings::OneHost(q16),
            Rings::OneNic(r) | Rings::OneHost(r) if r == q16 => self.rings,
            Rings::OneNic(r) | Rings::OneHost(r) => {
                return Err(bad(format!(
                    "queue {q} contradicts ring {r} named in the portspec"
                )))
            }
            Rings::NicAndHost => {
                return Err(bad(format!(
                    "queue {q} selects one ring pair but `*` asks for all hardware and host rings"
                )))
            }
        };
        Ok(self)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == PortKind::Interface {
            write!(f, "netmap:")?;
        }
        write!(f, "{}", self.name)?;
        match self.rings {
            Rings::AllNic => Ok(()),
            Rings::OneNic(r) => write!(f, "-{r}"),
            Rings::Host => write!(f, "^"),
            Rings::OneHost(r) => write!(f, "^{r}"),
            Rings::NicAndHost => write!(f, "*"),
        }
    }
}

/// Splits the ring suffix off a port name.
fn split_rings(s: &str) -> std::result::Result<(&str, Rings), String> {
    if let Some(name) = s.strip_suffix('*') {
        return Ok((name, Rings::NicAndHost));
    }
    if let Some(name) = s.strip_suffix('^') {
        return Ok((name, Rings::Host));
    }
    let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 {
        let (head, num) = s.split_at(s.len() - digits);
        if let Some(name) = head.strip_suffix('^') {
            return Ok((name, Rings::OneHost(ring_number(num)?)));
        }
        if let Some(name) = head.strip_suffix('-') {
            return Ok((name, Rings::OneNic(ring_number(num)?)));
        }
    }
    if s.ends_with('-') {
        return Err("`-` must be followed by a ring number".into());
    }
    Ok((s, Rings::AllNic))
}

fn ring_number(num: &str) -> std::result::Result<u16, String> {
    num.parse::<u16>()
        .ok()
        .filter(|&r| r <= MAX_RING)
        .ok_or_else(|| format!("ring {num} is above netmap's largest ring {MAX_RING}"))
}

fn check_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the interface name is empty".into());
    }
    if name.len() > MAX_IFNAME {
        return Err(format!(
            "interface name `{name}` is {} bytes; at most {MAX_IFNAME}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|&c| matches!(c, ':' | '^' | '*')) {
        return Err(format!("interface name `{name}` contains {c:?}"));
    }
    Ok(())
}

fn check_word(what: &str, s: &str, may_be_empty: bool) -> std::result::Result<(), String> {
    if s.is_empty() && !may_be_empty {
        return Err(format!("the {what} is empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "the {what} `{s}` contains {c:?} (letters, digits and `_` only)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> PortSpec {
        PortSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match PortSpec::parse(s) {
            Ok(p) => panic!("{s} parsed as {p:?}"),
            Err(e @ Error::InvalidPortspec { .. }) => e.to_string(),
            Err(e) => panic!("{s}: wrong error kind {e:?}"),
        }
    }

    #[test]
    fn interface_forms() {
        let p = ok("netmap:eth0");
        assert_eq!(p.name, "eth0");
        assert_eq!(p.kind, PortKind::Interface);
        assert_eq!(p.rings, Rings::AllNic);
        assert_eq!(ok("netmap:eth0-3").rings, Rings::OneNic(3));
        assert_eq!(ok("netmap:eth0-3").name, "eth0");
        assert_eq!(ok("netmap:eth0^").rings, Rings::Host);
        assert_eq!(ok("netmap:eth0^2").rings, Rings::OneHost(2));
        assert_eq!(ok("netmap:eth0*").rings, Rings::NicAndHost);
        assert_eq!(ok("netmap:br-lan").name, "br-lan");
        assert_eq!(ok("netmap:br-lan-1").name, "br-lan");
        assert_eq!(ok("netmap:enp1s0f1").name, "enp1s0f1");
        assert_eq!(ok("netmap:eth0-4095").rings, Rings::OneNic(4095));
    }

    #[test]
    fn vale_forms() {
        let p = ok("vale0:p1");
        assert_eq!(p.name, "vale0:p1");
        assert_eq!(
            p.kind,
            PortKind::Vale {
                switch: "vale0".into(),
                port: "p1".into()
            }
        );
        assert_eq!(p.rings, Rings::AllNic);
        assert_eq!(ok("vale:x").name, "vale:x");
        let p = ok("valeA_1:port_2-1");
        assert_eq!(p.name, "valeA_1:port_2");
        assert_eq!(p.rings, Rings::OneNic(1));
    }

    #[test]
    fn rejects_with_reasons() {
        assert!(err("eth0").contains("expected `netmap:IFNAME`"));
        assert!(err("").contains("expected"));
        assert!(err("netmap:").contains("empty"));
        assert!(err("netmap:-1").contains("empty"));
        assert!(err("netmap:eth0-").contains("ring number"));
        assert!(err("netmap:eth0-4096").contains("largest ring"));
        assert!(err("netmap:eth0-99999999999").contains("largest ring"));
        assert!(err("netmap:averyveryverylongname").contains("at most 15"));
        assert!(err("netmap:a:b").contains("':'"));
        assert!(err("netmap:eth0^^").contains("'^'"));
        assert!(err("netmap:eth 0").contains("' '"));
        assert!(err("netmap:eth0{1").contains("pipes"));
        assert!(err("netmap:eth0/R").contains("flags"));
        assert!(err("netmap:eth0@2").contains("memory ids"));
        assert!(err("vale0").contains("valeSWITCH:PORT"));
        assert!(err("vale0:").contains("empty"));
        assert!(err("vale0:p^").contains("host rings"));
        assert!(err("vale0:p*").contains("host rings"));
        assert!(err("vale0:p.1").contains("'.'"));
        assert!(err("vale-x:p").contains("'-'"));
        let long = format!("vale0:{}", "p".repeat(60));
        assert!(err(&long).contains("netmap allows 63"));
    }

    #[test]
    fn queue_selects_a_ring_pair() {
        let q = |s: &str, q| PortSpec::parse(s).unwrap().with_queue(s, q);
        assert_eq!(q("netmap:eth0", None).unwrap().rings, Rings::AllNic);
        assert_eq!(q("netmap:eth0", Some(2)).unwrap().rings, Rings::OneNic(2));
        assert_eq!(q("netmap:eth0^", Some(1)).unwrap().rings, Rings::OneHost(1));
        assert_eq!(q("netmap:eth0-2", Some(2)).unwrap().rings, Rings::OneNic(2));
        assert_eq!(q("vale0:a", Some(0)).unwrap().rings, Rings::OneNic(0));
        let e = q("netmap:eth0-2", Some(3)).unwrap_err().to_string();
        assert!(e.contains("queue 3 contradicts ring 2"), "{e}");
        let e = q("netmap:eth0*", Some(0)).unwrap_err().to_string();
        assert!(e.contains("`*`"), "{e}");
        let e = q("netmap:eth0", Some(5000)).unwrap_err().to_string();
        assert!(e.contains("queue 5000"), "{e}");
        let e = q("netmap:eth0", Some(usize::MAX)).unwrap_err().to_string();
        assert!(e.contains("largest ring"), "{e}");
    }

    #[test]
    fn register_modes() {
        assert_eq!(Rings::AllNic.register_mode(), (sys::NR_REG_ALL_NIC, 0));
        assert_eq!(Rings::OneNic(7).register_mode(), (sys::NR_REG_ONE_NIC, 7));
        assert_eq!(Rings::Host.register_mode(), (sys::NR_REG_SW, 0));
        assert_eq!(Rings::OneHost(1).register_mode(), (sys::NR_REG_ONE_SW, 1));
        assert_eq!(Rings::NicAndHost.register_mode(), (sys::NR_REG_NIC_SW, 0));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "netmap:eth0",
            "netmap:eth0-1",
            "netmap:eth0^",
            "netmap:eth0^3",
            "netmap:eth0*",
            "vale0:p",
            "vale1:q-2",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = PortSpec::parse(&s).and_then(|p| p.with_queue(&s, Some(1)));
        }

        #[test]
        fn never_panics_near_valid(s in "(netmap:|vale[0-9]?:|vale)[a-z0-9_^*:\\-]{0,24}", q in proptest::option::of(0usize..6000)) {
            if let Ok(p) = PortSpec::parse(&s) {
                // Whatever parses prints back to something that parses to the same thing.
                let again = PortSpec::parse(&p.to_string()).unwrap();
                prop_assert_eq!(&again, &p);
                prop_assert!(p.name.len() < sys::NETMAP_REQ_IFNAMSIZ);
                let _ = p.with_queue(&s, q);
            }
        }
    }
}
