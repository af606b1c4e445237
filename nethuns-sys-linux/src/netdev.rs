//! Interface ioctls and socket queries shared by the kernel backends. Each returns an
//! `io::Error` with the kernel's errno; the backend adds the interface and queue it was for.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

#[cfg(target_os = "linux")]
/// An `ifreq` naming one interface, built without allocating (the link checks run on idle
/// receive paths that must not allocate).
#[derive(Clone, Copy)]
pub struct Ifreq(libc::ifreq);

#[cfg(target_os = "linux")]
impl Ifreq {
    /// An `ifreq` for interface `name`, or `InvalidInput` if the name is empty, has a NUL
    /// byte or is longer than the kernel's 15 bytes.
    pub fn new(name: &str) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an interface name (1 to 15 bytes, no NUL)"),
            ));
        }
        // SAFETY: ifreq is plain data (a name array and a union of integers and pointers);
        // all-zero is a valid value of it.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        Ok(Ifreq(req))
    }

    fn ioctl(&mut self, fd: impl AsFd, request: libc::Ioctl) -> io::Result<()> {
        // SAFETY: the interface ioctls used here (SIOCGIFMTU, SIOCGIFINDEX, SIOCGIFFLAGS,
        // SIOCSIFFLAGS, SIOCGIFHWADDR) read ifr_name and read or write one plain-data member
        // of the union of the ifreq we own, alive for the call.
        let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), request, &mut self.0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// A socket for interface ioctls in the calling thread's network namespace. A socket stays in
/// the namespace it was made in, so ioctls through it reach the same interfaces from any
/// thread later.
pub fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The index of interface `name` in the calling thread's network namespace
/// (`if_nametoindex`): `ENODEV` if there is none.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} contains a NUL byte"),
        )
    })?;
    // SAFETY: `c` is a valid NUL-terminated string, alive for the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(0) {
            io::Error::from_raw_os_error(libc::ENODEV)
        } else {
            e
        });
    }
    Ok(idx)
}

#[cfg(target_os = "linux")]
/// The index of interface `name` of `ctl`'s namespace (`SIOCGIFINDEX`).
pub fn index_of(ctl: impl AsFd, name: &str) -> io::Result<u32> {
    let mut req = Ifreq::new(name)?;
    req.ioctl(ctl, libc::SIOCGIFINDEX)?;
    // SAFETY: after a successful SIOCGIFINDEX the union holds ifru_ifindex.
    Ok(unsafe { req.0.ifr_ifru.ifru_ifindex } as u32)
}

#[cfg(target_os = "linux")]
/// The MTU of interface `name` of `ctl`'s namespace (`SIOCGIFMTU`).
pub fn mtu(ctl: impl AsFd, name: &str) -> io::Result<u32> {
    let mut req = Ifreq::new(name)?;
    req.ioctl(ctl, libc::SIOCGIFMTU)?;
    // SAFETY: after a successful SIOCGIFMTU the union holds ifru_mtu.
    Ok(unsafe { req.0.ifr_ifru.ifru_mtu } as u32)
}

#[cfg(target_os = "linux")]
/// The flags (`IFF_UP`, `IFF_RUNNING`, `IFF_PROMISC`, …) of interface `name` of `ctl`'s
/// namespace (`SIOCGIFFLAGS`).
pub fn flags(ctl: impl AsFd, name: &str) -> io::Result<i32> {
    let mut req = Ifreq::new(name)?;
    req.ioctl(ctl, libc::SIOCGIFFLAGS)?;
    // SAFETY: after a successful SIOCGIFFLAGS the union holds ifru_flags.
    Ok(i32::from(unsafe { req.0.ifr_ifru.ifru_flags }) & 0xffff)
}

#[cfg(target_os = "linux")]
/// The hardware type (`ARPHRD_ETHER`, `ARPHRD_LOOPBACK`, `ARPHRD_NONE`, …) of interface
/// `name` of `ctl`'s namespace (`SIOCGIFHWADDR`: the family of its hardware address).
pub fn hw_type(ctl: impl AsFd, name: &str) -> io::Result<u16> {
    let mut req = Ifreq::new(name)?;
    req.ioctl(ctl, libc::SIOCGIFHWADDR)?;
    // SAFETY: after a successful SIOCGIFHWADDR the union holds ifru_hwaddr.
    Ok(unsafe { req.0.ifr_ifru.ifru_hwaddr.sa_family })
}

#[cfg(target_os = "linux")]
/// Sets the flags of interface `name` of `ctl`'s namespace (`SIOCSIFFLAGS`; needs
/// CAP_NET_ADMIN).
pub fn set_flags(ctl: impl AsFd, name: &str, flags: i32) -> io::Result<()> {
    let mut req = Ifreq::new(name)?;
    req.0.ifr_ifru.ifru_flags = flags as libc::c_short;
    req.ioctl(ctl, libc::SIOCSIFFLAGS)
}

#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

#[cfg(target_os = "linux")]
const ETHTOOL_GCHANNELS: u32 = 0x3c;

#[cfg(target_os = "linux")]
/// The number of RX queues of interface `name` of `ctl`'s namespace (rx + combined channels,
/// `ETHTOOL_GCHANNELS`); `EOPNOTSUPP` where the driver does not report channels.
pub fn rx_queues(ctl: impl AsFd, name: &str) -> io::Result<u32> {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: ETHTOOL_GCHANNELS reads and writes one struct ethtool_channels, `ch`'s layout.
    unsafe { ethtool(ctl, name, &mut ch) }?;
    Ok(ch.rx_count.max(ch.combined_count))
}

#[cfg(target_os = "linux")]
/// One `SIOCETHTOOL` request on interface `name`: the kernel reads the command in the first
/// word of `data` and writes its answer there.
///
/// # Safety
/// `T` is the struct (`#[repr(C)]`, its first field the command) that the command in it
/// reads and writes.
unsafe fn ethtool<T>(ctl: impl AsFd, name: &str, data: &mut T) -> io::Result<()> {
    let mut req = Ifreq::new(name)?;
    req.0.ifr_ifru.ifru_data = (data as *mut T).cast();
    // SAFETY: ifru_data points to `data`, alive for the call and of the layout the command
    // writes (the caller's contract).
    let rc = unsafe { libc::ioctl(ctl.as_fd().as_raw_fd(), libc::SIOCETHTOOL, &mut req.0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct ethtool_drvinfo` (196 bytes).
#[cfg(target_os = "linux")]
#[repr(C)]
struct EthtoolDrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[cfg(target_os = "linux")]
const ETHTOOL_GDRVINFO: u32 = 3;

#[cfg(target_os = "linux")]
/// The driver of interface `name` of `ctl`'s namespace (`ETHTOOL_GDRVINFO`, what `ethtool -i`
/// shows: `veth`, `virtio_net`, `ice`, ...); an empty string where the driver gives none.
pub fn driver_name(ctl: impl AsFd, name: &str) -> io::Result<String> {
    let mut info = EthtoolDrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    // SAFETY: ETHTOOL_GDRVINFO reads and writes one struct ethtool_drvinfo, `info`'s layout.
    unsafe { ethtool(ctl, name, &mut info) }?;
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// The pending error of socket `fd` (`SO_ERROR`, which the read clears), if any.
pub fn socket_error(fd: impl AsFd) -> io::Result<Option<i32>> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` is a live c_int and `len` its size; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((err != 0).then_some(err))
}

/// Polls one descriptor for `events` for at most `timeout_ms` (0: do not wait, negative:
/// forever) and returns its `revents` (0 on timeout). `EINTR` is returned as an error for
/// the caller to retry or give up on.
pub fn poll1(fd: impl AsFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    poll_raw(fd.as_fd().as_raw_fd(), events, timeout_ms)
}

/// [`poll1`] of a raw descriptor number (what `Capabilities::pollable_fd` gives). Safe for
/// any value: poll(2) reports a descriptor that is not open as `POLLNVAL` and touches no
/// memory of it.
#[inline]
pub fn poll_raw(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, alive for the call; poll(2) only writes its `revents`.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if rc == 0 { 0 } else { p.revents })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn ethtool_channels_layout() {
        assert_eq!(std::mem::size_of::<EthtoolChannels>(), 36);
        assert_eq!(std::mem::offset_of!(EthtoolChannels, combined_count), 32);
        assert_eq!(std::mem::size_of::<EthtoolDrvInfo>(), 196);
        assert_eq!(std::mem::offset_of!(EthtoolDrvInfo, n_priv_flags), 176);
    }

    #[test]
    fn names_are_checked_before_any_ioctl() {
        for bad in ["", "0123456789abcdef", "a\0b"] {
            assert_eq!(
                Ifreq::new(bad).err().map(|e| e.kind()),
                Some(io::ErrorKind::InvalidInput),
                "{bad:?}"
            );
        }
        assert!(Ifreq::new("lo").is_ok());
    }

    #[test]
    fn loopback() {
        let ctl = ctl_socket().unwrap();
        let idx = if_index("lo").unwrap();
        assert_eq!(index_of(&ctl, "lo").unwrap(), idx);
        assert!(mtu(&ctl, "lo").unwrap() >= 1280);
        assert_ne!(flags(&ctl, "lo").unwrap() & libc::IFF_UP, 0);
        assert_eq!(hw_type(&ctl, "lo").unwrap(), libc::ARPHRD_LOOPBACK);
        assert_eq!(
            if_index("nethuns-none").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
        assert_eq!(
            mtu(&ctl, "nethuns-none").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
        assert_eq!(socket_error(&ctl).unwrap(), None);
        assert_eq!(poll1(&ctl, libc::POLLIN, 0).unwrap(), 0);
    }
}
