//! What the kernel says a device can do with XDP: the `netdev` generic-netlink family's
//! `NETDEV_CMD_DEV_GET` (Linux 6.3+), and the device's driver name (`ETHTOOL_GDRVINFO`).
//! Used to tell "this driver has no zero-copy" from other bind failures, and by lab tests to
//! pick zero-copy or copy mode from the kernel's answer rather than a list of driver names.

use std::io;
use std::os::fd::OwnedFd;

use nethuns_core::{Error, Result};

use crate::{netdev, sys};

/// `NETDEV_XDP_ACT_BASIC`: XDP programs run in the driver (native mode).
pub const NETDEV_XDP_ACT_BASIC: u64 = 1;
/// `NETDEV_XDP_ACT_REDIRECT`: the driver can redirect (to an AF_XDP socket, among others).
pub const NETDEV_XDP_ACT_REDIRECT: u64 = 2;
/// `NETDEV_XDP_ACT_XSK_ZEROCOPY`: AF_XDP zero-copy (`XDP_ZEROCOPY` binds).
pub const NETDEV_XDP_ACT_XSK_ZEROCOPY: u64 = 8;

/// A device's XDP capabilities as the kernel reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpFeatures {
    /// `NETDEV_A_DEV_XDP_FEATURES`: a mask of `NETDEV_XDP_ACT_*`.
    pub xdp_features: u64,
    /// `NETDEV_A_DEV_XDP_ZC_MAX_SEGS` (Linux 6.6+; 0 if absent): fragments per zero-copy
    /// frame.
    pub zc_max_segs: u32,
}

impl XdpFeatures {
    /// The driver supports AF_XDP zero-copy.
    pub fn zero_copy(&self) -> bool {
        self.xdp_features & NETDEV_XDP_ACT_XSK_ZEROCOPY != 0
    }

    /// The driver runs XDP programs itself (native mode).
    pub fn native(&self) -> bool {
        self.xdp_features & NETDEV_XDP_ACT_BASIC != 0
    }
}

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;
const NLMSG_ERROR: u16 = 2;

/// One request: nlmsghdr + genlmsghdr + attributes.
fn request(family: u16, cmd: u8, version: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 20];
    for (ty, data) in attrs {
        let len = 4 + data.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(data);
        m.resize(m.len().next_multiple_of(4), 0);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&family.to_ne_bytes());
    m[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes());
    m[16] = cmd;
    m[17] = version;
    m
}

/// The attributes of the first reply (after its genlmsghdr), or the kernel's error.
pub(crate) fn attributes(reply: &[u8]) -> io::Result<Vec<(u16, &[u8])>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short netlink reply");
    if reply.len() < 20 {
        return Err(bad());
    }
    let len = u32::from_ne_bytes(reply.get(0..4).ok_or_else(bad)?.try_into().unwrap()) as usize;
    let ty = u16::from_ne_bytes(reply[4..6].try_into().unwrap());
    let msg = reply.get(..len).ok_or_else(bad)?;
    if ty == NLMSG_ERROR {
        let code = i32::from_ne_bytes(msg.get(16..20).ok_or_else(bad)?.try_into().unwrap());
        return Err(io::Error::from_raw_os_error(-code));
    }
    let mut out = Vec::new();
    let mut at = 20;
    while at + 4 <= msg.len() {
        let alen = u16::from_ne_bytes(msg[at..at + 2].try_into().unwrap()) as usize;
        let aty = u16::from_ne_bytes(msg[at + 2..at + 4].try_into().unwrap()) & 0x3fff;
        if alen < 4 || at + alen > msg.len() {
            break;
        }
        out.push((aty, &msg[at + 4..at + alen]));
        at += alen.next_multiple_of(4);
    }
    Ok(out)
}

fn transact(fd: &OwnedFd, req: &[u8], buf: &mut [u8]) -> io::Result<usize> {
    sys::send(fd, req)?;
    sys::recv(fd, buf, 0)
}

fn query(ifindex: u32) -> io::Result<XdpFeatures> {
    let fd = sys::netlink_socket(libc::NETLINK_GENERIC)?;
    let mut buf = vec![0u8; 8192];
    let n = transact(
        &fd,
        &request(
            GENL_ID_CTRL,
            CTRL_CMD_GETFAMILY,
            2,
            &[(CTRL_ATTR_FAMILY_NAME, b"netdev\0")],
        ),
        &mut buf,
    )?;
    let family = attributes(&buf[..n])?
        .into_iter()
        .find(|(t, d)| *t == CTRL_ATTR_FAMILY_ID && d.len() >= 2)
        .map(|(_, d)| u16::from_ne_bytes([d[0], d[1]]))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no netdev family id"))?;
    let n = transact(
        &fd,
        &request(
            family,
            NETDEV_CMD_DEV_GET,
            1,
            &[(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes())],
        ),
        &mut buf,
    )?;
    let mut f = XdpFeatures::default();
    for (t, d) in attributes(&buf[..n])? {
        match (t, d.len()) {
            (NETDEV_A_DEV_XDP_FEATURES, 8) => {
                f.xdp_features = u64::from_ne_bytes(d.try_into().unwrap())
            }
            (NETDEV_A_DEV_XDP_FEATURES, 4) => {
                f.xdp_features = u32::from_ne_bytes(d.try_into().unwrap()).into()
            }
            (NETDEV_A_DEV_XDP_ZC_MAX_SEGS, 4) => {
                f.zc_max_segs = u32::from_ne_bytes(d.try_into().unwrap())
            }
            _ => {}
        }
    }
    Ok(f)
}

/// Asks the kernel what XDP the device `iface` (of the calling thread's network namespace)
/// supports (`NETDEV_CMD_DEV_GET` of the `netdev` generic-netlink family). Fails naming the
/// interface: no such device, or a kernel older than 6.3 (no `netdev` family: `ENOENT`).
pub fn xdp_features(iface: &str) -> Result<XdpFeatures> {
    let name = netdev::ifname(iface)?;
    let idx = netdev::ifindex(&name, 0)?;
    query(idx).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::ENOENT) {
            " (no netdev netlink family: Linux before 6.3)"
        } else {
            ""
        };
        Error::os(format!("XDP features of {iface}{hint}"), e)
    })
}

/// The name of the driver behind `iface` (`ETHTOOL_GDRVINFO`, what `ethtool -i` shows:
/// `veth`, `virtio_net`, `ice`, ...; else the `/sys/class/net/IF/device/driver` link), if
/// either says.
pub fn driver_name(iface: &str) -> Option<String> {
    drvinfo(iface).or_else(|| {
        let link = std::fs::read_link(format!("/sys/class/net/{iface}/device/driver")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    })
}

fn drvinfo(iface: &str) -> Option<String> {
    let name = netdev::ifname(iface).ok()?;
    let s = netdev::ctl_socket().ok()?;
    let d = nethuns_sys_linux::netdev::driver_name(&s, &name.to_string_lossy()).ok()?;
    (!d.is_empty()).then_some(d)
}

/// The running kernel's release (`uname -r`).
pub(crate) fn kernel_release() -> String {
    sys::kernel_release().unwrap_or_else(|| "an unknown kernel".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_shapes() {
        let r = request(0x10, 3, 2, &[(2, b"netdev\0")]);
        assert_eq!(r.len(), 20 + 4 + 8);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 32);
        // The request itself parses as a message with one attribute.
        assert_eq!(attributes(&r).unwrap(), vec![(2, &b"netdev\0"[..])]);
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(
            attributes(&err).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}
