//! What XDP program an interface has, who holds it, and the removal of one that a dead
//! process left behind.
//!
//! nethuns attaches its program through a bpf_link, which the kernel detaches when the owning
//! process dies. libxdp (and so DPDK's net_af_xdp) attaches `xsk_def_prog` through netlink
//! instead: when such a process is killed, the program stays on the interface and every later
//! attach fails with `EEXIST`. [`clear_stale`] removes that program only when it is certainly
//! stale: named `xsk_def_prog`, attached through netlink (no bpf_link owns it), and with no
//! process holding a descriptor of it or of its maps (a live libxdp user holds both).
//! Anything else is left alone and described, with the command that would remove it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys;

const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// The name of the AF_XDP program libxdp and libbpf load by default (DPDK's net_af_xdp uses it).
pub(crate) const LIBXDP_XSK_PROG: &str = "xsk_def_prog";

/// One program attached to an interface: its id and its mode (`XDP_FLAGS_*` bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attached {
    pub(crate) prog_id: u32,
    pub(crate) mode_flag: u32,
}

fn mode_flag(attached: u8) -> u32 {
    match attached {
        XDP_ATTACHED_SKB => crate::flags::XDP_FLAGS_SKB_MODE,
        XDP_ATTACHED_HW => 1 << 3,
        _ => crate::flags::XDP_FLAGS_DRV_MODE,
    }
}

/// A netlink request of `kind` on interface `ifindex` with attributes `attrs`; returns the
/// kernel's first answer.
fn request(kind: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> io::Result<Vec<u8>> {
    let len = 16 + 16 + attrs.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
                                                // struct ifinfomsg: family, pad, type, index, flags, change.
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    msg.extend_from_slice(&[0; 8]);
    msg.extend_from_slice(attrs);
    let fd = sys::netlink_socket(libc::NETLINK_ROUTE)?;
    sys::send(&fd, &msg)?;
    let mut buf = vec![0u8; 32 * 1024];
    let n = sys::recv(&fd, &mut buf, 0)?;
    buf.truncate(n);
    if buf.len() < 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink answer",
        ));
    }
    if u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let code = i32::from_ne_bytes(buf[16..20].try_into().expect("4 bytes"));
        if code != 0 {
            return Err(io::Error::from_raw_os_error(-code));
        }
    }
    Ok(buf)
}

/// The attributes in `b` (`struct rtattr`s): `(type without flags, payload)`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = vec![];
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

fn u32_of(p: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}

/// The XDP programs attached to interface `ifindex` of the calling thread's namespace.
pub(crate) fn attached(ifindex: u32) -> io::Result<Vec<Attached>> {
    let answer = request(RTM_GETLINK, 0, ifindex, &[])?;
    let body = answer.get(32..).unwrap_or_default();
    let Some((_, xdp)) = attrs(body).into_iter().find(|(t, _)| *t == IFLA_XDP) else {
        return Ok(vec![]);
    };
    let xdp = attrs(xdp);
    let get = |t| {
        xdp.iter()
            .find(|(k, _)| *k == t)
            .and_then(|(_, p)| u32_of(p))
    };
    let how = xdp
        .iter()
        .find(|(k, _)| *k == IFLA_XDP_ATTACHED)
        .and_then(|(_, p)| p.first().copied())
        .unwrap_or(0);
    let mut out = vec![];
    match how {
        0 => {}
        XDP_ATTACHED_DRV | XDP_ATTACHED_SKB | XDP_ATTACHED_HW => {
            if let Some(id) = get(IFLA_XDP_PROG_ID) {
                out.push(Attached {
                    prog_id: id,
                    mode_flag: mode_flag(how),
                });
            }
        }
        _ => {
            for (t, a) in [
                (IFLA_XDP_DRV_PROG_ID, XDP_ATTACHED_DRV),
                (IFLA_XDP_SKB_PROG_ID, XDP_ATTACHED_SKB),
                (IFLA_XDP_HW_PROG_ID, XDP_ATTACHED_HW),
            ] {
                if let Some(id) = get(t) {
                    out.push(Attached {
                        prog_id: id,
                        mode_flag: mode_flag(a),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + payload.len().next_multiple_of(4));
    v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(payload);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// Detaches the netlink-attached program of `ifindex` in mode `mode_flag`, only if it is
/// still the program `expected` (the kernel compares, atomically: `EEXIST` otherwise).
fn detach_netlink(ifindex: u32, expected: &OwnedFd, mode_flag: u32) -> io::Result<()> {
    let mut nested = attr(IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    nested.extend(attr(
        IFLA_XDP_EXPECTED_FD,
        &expected.as_raw_fd().to_ne_bytes(),
    ));
    nested.extend(attr(
        IFLA_XDP_FLAGS,
        &(mode_flag | XDP_FLAGS_REPLACE).to_ne_bytes(),
    ));
    request(
        RTM_SETLINK,
        NLM_F_ACK,
        ifindex,
        &attr(IFLA_XDP | NLA_F_NESTED, &nested),
    )
    .map(|_| ())
}

/// The other processes holding a descriptor of a BPF object: lines of `/proc/PID/fdinfo/FD`
/// equal to one of `keys` (`prog_id:\t7`, `map_id:\t3`, `link_id:\t5`), as `PID (COMM)`.
fn holders(keys: &[String]) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = vec![];
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        let holds = fds.flatten().any(|f| {
            std::fs::read_to_string(f.path()).is_ok_and(|info| {
                info.lines()
                    .any(|l| keys.iter().any(|k| l.trim_end() == k.as_str()))
            })
        });
        if holds {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push(format!("{pid} ({})", comm.trim()));
        }
    }
    out
}

/// Who has the XDP program of an interface.
enum Owner {
    /// No program is attached.
    Nothing,
    /// A live process uses it (through a bpf_link, or holding the program or its maps):
    /// the description says which.
    Live(String),
    /// A program nethuns does not know (or whose owner is exiting): described, left alone.
    Other(String),
    /// libxdp's AF_XDP program, attached through netlink, held by no process.
    Stale {
        what: String,
        fd: OwnedFd,
        mode_flag: u32,
    },
}

fn inspect(ifname: &str, ifindex: u32) -> Result<Owner, String> {
    let progs = attached(ifindex).map_err(|e| format!("reading {ifname}'s XDP state: {e}"))?;
    let Some(a) = progs.first().copied() else {
        return Ok(Owner::Nothing);
    };
    let off = format!("`ip link set dev {ifname} xdp off` removes it");
    let unreadable = |e: io::Error| {
        format!(
            "XDP program {} is attached to {ifname} ({e}); {off}",
            a.prog_id
        )
    };
    let fd = sys::prog_fd_by_id(a.prog_id).map_err(unreadable)?;
    let info = sys::prog_info(&fd).map_err(unreadable)?;
    let what = format!("XDP program {} ({})", a.prog_id, info.name);
    let link = sys::xdp_links(ifindex)
        .unwrap_or_default()
        .into_iter()
        .find(|&(_, prog)| prog == a.prog_id)
        .map(|(link, _)| link);
    if let Some(link) = link {
        let by = holders(&[format!("link_id:\t{link}")]);
        return Ok(if by.is_empty() {
            Owner::Other(format!(
                "{what} is attached to {ifname} through bpf_link {link}, whose owner is exiting"
            ))
        } else {
            Owner::Live(format!(
                "{what} is attached to {ifname} through bpf_link {link}, held by process {}: \
                 the AF_XDP sockets of one process own an interface",
                by.join(", ")
            ))
        });
    }
    let mut keys = vec![format!("prog_id:\t{}", a.prog_id)];
    keys.extend(info.map_ids.iter().map(|m| format!("map_id:\t{m}")));
    let by = holders(&keys);
    if !by.is_empty() {
        return Ok(Owner::Live(format!(
            "{what} is attached to {ifname} through netlink and in use by process {} \
             (stop it first; {off})",
            by.join(", ")
        )));
    }
    if info.name != LIBXDP_XSK_PROG {
        return Ok(Owner::Other(format!(
            "{what} is attached to {ifname} through netlink, not by nethuns; if nothing \
             needs it, {off}"
        )));
    }
    Ok(Owner::Stale {
        what,
        fd,
        mode_flag: a.mode_flag,
    })
}

/// After an attach on `ifname` failed because a program is there: removes that program if it
/// is certainly stale (see the module docs) and says what was removed, or says what holds
/// the interface and how it could be freed.
pub(crate) fn clear_stale(ifname: &str, ifindex: u32) -> Result<String, String> {
    match inspect(ifname, ifindex)? {
        Owner::Nothing => Ok(format!("{ifname} has no XDP program any more")),
        Owner::Live(why) | Owner::Other(why) => Err(why),
        Owner::Stale {
            what,
            fd,
            mode_flag,
        } => {
            detach_netlink(ifindex, &fd, mode_flag).map_err(|e| {
                format!(
                    "{what}, left on {ifname} by a process that is gone, could not be removed \
                     ({e}); `ip link set dev {ifname} xdp off` removes it"
                )
            })?;
            Ok(format!(
                "removed {what}: libxdp's AF_XDP program, left on {ifname} by a process that \
                 is gone (no process holds it or its maps)"
            ))
        }
    }
}

/// Whether a live process of another kind uses `ifname`'s XDP program (and so, likely, its
/// AF_XDP queues): the description naming it, or `None`.
pub(crate) fn live_owner(ifname: &str, ifindex: u32) -> Option<String> {
    match inspect(ifname, ifindex) {
        Ok(Owner::Live(why)) => Some(why),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut b = attr(IFLA_XDP_ATTACHED, &[2]);
        b.extend(attr(IFLA_XDP_PROG_ID, &7u32.to_ne_bytes()));
        let a = attrs(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], (IFLA_XDP_ATTACHED, &[2u8][..]));
        assert_eq!(u32_of(a[1].1), Some(7));
        // Truncated or zero-length attributes end the walk, never panic.
        assert!(attrs(&[8, 0, 1, 0, 1]).is_empty());
        assert!(attrs(&[0, 0, 1, 0]).is_empty());
    }
}
