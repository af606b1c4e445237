//! The real port: opening `/dev/netmap`, registering the port, mapping its region and the
//! sync and poll calls, over the system-call wrappers of [`sys`](crate::sys).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nethuns_core::{Error, Result};

use crate::engine::Port;
use crate::portspec::PortSpec;
use crate::region::{attach, Attached, Region};
use crate::sys;

/// The device every netmap port is opened through.
pub const NETMAP_DEVICE: &str = "/dev/netmap";

/// A registered netmap file descriptor as a [`Port`]. The context holds the descriptor too
/// (and closes it last, after unmapping the region).
pub(crate) struct DevPort {
    fd: Arc<OwnedFd>,
}

impl DevPort {
    /// The registered `/dev/netmap` descriptor (what `poll(2)` waits on).
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Port for DevPort {
    #[inline]
    fn rx_sync(&self) -> io::Result<()> {
        sys::rx_sync(self.fd.as_fd())
    }

    #[inline]
    fn tx_sync(&self) -> io::Result<()> {
        sys::tx_sync(self.fd.as_fd())
    }

    fn wait_rx(&self, timeout_ms: i32) -> io::Result<bool> {
        sys::poll_in(self.fd.as_fd(), timeout_ms)
    }
}

/// The MTU of interface `name` (`SIOCGIFMTU`), or `None` if it cannot be read (a VALE port
/// has no interface; an interface gone since registration). Linux only: elsewhere `None`.
pub(crate) fn interface_mtu(name: &str) -> Option<u32> {
    sys::interface_mtu(name)
}

/// Whether `/dev/netmap` exists (the netmap module is loaded).
pub fn netmap_available() -> bool {
    std::path::Path::new(NETMAP_DEVICE).exists()
}

/// Opens `/dev/netmap`, registers `spec` with `extra` extra buffers, maps the region and
/// attaches to the bound rings.
pub(crate) fn open(spec: &PortSpec, extra: u32) -> Result<(DevPort, Attached)> {
    let fd = sys::open_device().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => Error::Unsupported(format!(
            "netmap: cannot open {NETMAP_DEVICE} for {spec} ({e}): the netmap kernel \
             module is not loaded (build netmap and `insmod netmap.ko`, or \
             `kldload netmap` on FreeBSD)"
        )),
        _ => crate::netmap_error(
            format!("opening {NETMAP_DEVICE} for {spec} (needs read-write access, usually root)"),
            e,
        ),
    })?;

    let (mode, ringid) = spec.rings.register_mode();
    // The parser keeps names below NETMAP_REQ_IFNAMSIZ.
    let reg = sys::register(fd.as_fd(), &spec.name, mode, ringid, extra).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::ENXIO) | Some(libc::ENOENT) | Some(libc::ENODEV) => {
                "no such interface, or its driver has no netmap support"
            }
            Some(libc::EINVAL) => {
                "ring number out of range, or the kernel does not speak netmap API 14"
            }
            Some(libc::EBUSY) => "the rings are already bound exclusively",
            Some(libc::ENOMEM) => "netmap memory exhausted (reduce extra_buf)",
            Some(libc::ENOTTY) => "/dev/netmap is not a netmap device",
            _ => "",
        };
        crate::netmap_error(
            format!(
                "NIOCCTRL NETMAP_REQ_REGISTER of {spec} with {extra} extra buffers{}{hint}",
                if hint.is_empty() { "" } else { ": " }
            ),
            e,
        )
    })?;
    if reg.nr_memsize == 0 || reg.nr_memsize > isize::MAX as u64 {
        return Err(crate::netmap_error(
            format!("registering {spec}"),
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("region size {}", reg.nr_memsize),
            ),
        ));
    }
    if extra > 0 && reg.nr_extra_bufs == 0 {
        return Err(crate::netmap_error(
            format!("registering {spec}"),
            io::Error::other(format!(
                "netmap granted 0 of the {extra} extra buffers requested (extra_buf): its buffer \
                 pool is exhausted; raise the module's buf_num or lower extra_buf"
            )),
        ));
    }
    let len = reg.nr_memsize as usize;
    let map = sys::map_region(fd.as_fd(), len).map_err(|e| {
        crate::netmap_error(format!("mmap of the {len}-byte netmap region of {spec}"), e)
    })?;
    let fd = Arc::new(fd);
    let region = Region {
        map: Arc::new(map),
        nifp_offset: usize::try_from(reg.nr_offset).unwrap_or(usize::MAX),
        extra_granted: reg.nr_extra_bufs,
    };
    // The context keeps the descriptor open until the region is unmapped.
    let attached = attach(region, spec.rings, &spec.to_string(), Box::new(fd.clone()))?;
    Ok((DevPort { fd }, attached))
}
