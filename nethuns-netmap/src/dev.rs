//! The real port: `/dev/netmap`, `NIOCCTRL` registration, `mmap` of the shared region, and the
//! sync ioctls. The only module that makes syscalls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nethuns_core::{Error, Result};

use crate::engine::Port;
use crate::portspec::PortSpec;
use crate::region::{attach, Attached, Region};
use crate::sys;

/// The device every netmap port is opened through.
pub const NETMAP_DEVICE: &str = "/dev/netmap";

/// A registered netmap file descriptor as a [`Port`].
pub(crate) struct DevPort {
    fd: RawFd,
}

impl DevPort {
    /// The registered `/dev/netmap` descriptor (what `poll(2)` waits on).
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }
}

impl Port for DevPort {
    fn rx_sync(&self) -> io::Result<()> {
        ioctl0(self.fd, sys::NIOCRXSYNC)
    }

    fn tx_sync(&self) -> io::Result<()> {
        ioctl0(self.fd, sys::NIOCTXSYNC)
    }

    fn wait_rx(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: `pfd` is a valid pollfd array of length 1 for the duration of the call.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if r >= 0 {
                // POLLERR/POLLHUP/POLLNVAL: the port is gone; "ready" so `recv` reports it.
                let ready = libc::POLLIN | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
                return Ok(r > 0 && pfd.revents & ready != 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fn ioctl0(fd: RawFd, req: u64) -> io::Result<()> {
    // SAFETY: the sync ioctls take no argument; `fd` is a registered netmap descriptor kept
    // open by the context for as long as the engine lives.
    let r = unsafe { libc::ioctl(fd, req as _) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The mapping and the descriptor, released in that order.
struct Mapping {
    base: *mut u8,
    len: usize,
    _fd: OwnedFd,
}

// SAFETY: owns a shared mapping and a descriptor; no thread affinity.
unsafe impl Send for Mapping {}
// SAFETY: exposes nothing; only dropped.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` is the mapping made in `open`; nothing uses it any more (the
        // context that owns this value is being dropped).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The MTU of interface `name` (`SIOCGIFMTU`), or `None` if it cannot be read (a VALE port
/// has no interface; an interface gone since registration). Linux only: elsewhere `None`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn interface_mtu(_name: &str) -> Option<u32> {
    None
}

/// The MTU of interface `name` (`SIOCGIFMTU`), or `None` if it cannot be read (a VALE port
/// has no interface; an interface gone since registration).
#[cfg(target_os = "linux")]
pub(crate) fn interface_mtu(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: socket(2) has no memory preconditions; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor we own; `OwnedFd` closes it.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as std::os::raw::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the NUL-terminated name (shorter than IFNAMSIZ, checked above)
    // and writes `ifru_mtu` of the `ifreq`, which lives across the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU as _, &mut ifr) };
    if r < 0 {
        return None;
    }
    // SAFETY: the ioctl succeeded, so it wrote the `ifru_mtu` member of the union.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).ok().filter(|&m| m > 0)
}

/// Whether `/dev/netmap` exists (the netmap module is loaded).
pub fn netmap_available() -> bool {
    std::path::Path::new(NETMAP_DEVICE).exists()
}

/// Opens `/dev/netmap`, registers `spec` with `extra` extra buffers, maps the region and
/// attaches to the bound rings.
pub(crate) fn open(spec: &PortSpec, extra: u32) -> Result<(DevPort, Attached)> {
    let path = c"/dev/netmap";
    // SAFETY: `path` is NUL-terminated; open has no other preconditions.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                Error::Unsupported(format!(
                    "netmap: cannot open {NETMAP_DEVICE} for {spec} ({e}): the netmap kernel \
                     module is not loaded (build netmap and `insmod netmap.ko`, or \
                     `kldload netmap` on FreeBSD)"
                ))
            }
            _ => crate::netmap_error(
                format!(
                    "opening {NETMAP_DEVICE} for {spec} (needs read-write access, usually root)"
                ),
                e,
            ),
        });
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    let (mode, ringid) = spec.rings.register_mode();
    let mut reg = sys::nmreq_register {
        nr_mode: mode,
        nr_ringid: ringid,
        nr_extra_bufs: extra,
        ..Default::default()
    };
    let mut hdr = sys::nmreq_header {
        nr_version: sys::NETMAP_API,
        nr_reqtype: sys::NETMAP_REQ_REGISTER,
        nr_reserved: 0,
        nr_name: [0; sys::NETMAP_REQ_IFNAMSIZ],
        nr_options: 0,
        nr_body: &mut reg as *mut sys::nmreq_register as u64,
    };
    // The parser keeps names below NETMAP_REQ_IFNAMSIZ; the last byte stays NUL.
    for (d, s) in hdr.nr_name[..sys::NETMAP_REQ_IFNAMSIZ - 1]
        .iter_mut()
        .zip(spec.name.bytes())
    {
        *d = s as std::os::raw::c_char;
    }
    // SAFETY: NIOCCTRL reads and writes one nmreq_header, whose nr_body points to `reg`; both
    // live across the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), sys::NIOCCTRL as _, &mut hdr) };
    if r < 0 {
        let e = io::Error::last_os_error();
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
        return Err(crate::netmap_error(
            format!(
                "NIOCCTRL NETMAP_REQ_REGISTER of {spec} with {extra} extra buffers{}{hint}",
                if hint.is_empty() { "" } else { ": " }
            ),
            e,
        ));
    }
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
    // SAFETY: mapping a registered netmap descriptor with the size it reported; we check the
    // result before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(crate::netmap_error(
            format!("mmap of the {len}-byte netmap region of {spec}"),
            io::Error::last_os_error(),
        ));
    }
    let port = DevPort { fd: fd.as_raw_fd() };
    let region = Region {
        base: base.cast(),
        len,
        nifp_offset: reg.nr_offset as usize,
        extra_granted: reg.nr_extra_bufs,
    };
    let owner = Mapping {
        base: base.cast(),
        len,
        _fd: fd,
    };
    // SAFETY: the region is the mapping `owner` keeps alive, laid out by netmap for this
    // registration of `spec.rings`.
    let attached = unsafe { attach(&region, spec.rings, &spec.to_string(), Box::new(owner))? };
    Ok((port, attached))
}
