//! The two ways the lab tests bind: zero-copy (`XDP_ZEROCOPY`) and copy (`XDP_COPY`), both in
//! native (driver) mode; whether the device can, asked from the kernel (its XDP features,
//! `NETDEV_CMD_DEV_GET`), not from a list of driver names.

use std::time::{Duration, Instant};

use nethuns_afxdp::{
    xdp_features, AfXdpFlags, Sock, Socket, XDP_COPY, XDP_FLAGS_DRV_MODE, XDP_ZEROCOPY,
};

use crate::hw;

/// How a lab test binds its sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `XDP_ZEROCOPY` in native mode: the NIC DMAs into the UMEM.
    ZeroCopy,
    /// `XDP_COPY` in native mode: the driver runs the XDP program, the kernel copies.
    NativeCopy,
}

impl Mode {
    /// As the messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ZeroCopy => "zero-copy (XDP_ZEROCOPY, native mode)",
            Mode::NativeCopy => "copy-mode (XDP_COPY, native mode)",
        }
    }
}

fn driver(iface: &str) -> String {
    nethuns_afxdp::driver_name(iface).unwrap_or_else(|| format!("{iface}'s driver"))
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "this kernel".into())
}

/// Whether `iface` can run the tests of `mode`, from the kernel's answer; prints
/// `SKIPPED TEST: DRIVER on KERNEL has no AF_XDP zero-copy` (or no native XDP) when not. A
/// kernel without the `netdev` netlink family (before 6.3) is asked by a zero-copy bind
/// instead: `EOPNOTSUPP` means no zero-copy.
pub fn supported(test: &str, iface: &str, mode: Mode) -> bool {
    let (native, zero_copy) = match xdp_features(iface) {
        Ok(f) => (f.native(), f.zero_copy()),
        Err(e) => {
            eprintln!("{test}: {e}; trying a zero-copy bind instead");
            let zc = match Sock::create(iface, Some(0), flags(iface, Mode::ZeroCopy)) {
                Ok(_) => true,
                Err(e) => e.raw_os_error() != Some(libc::EOPNOTSUPP),
            };
            (true, zc)
        }
    };
    let (what, ok) = match mode {
        Mode::ZeroCopy => ("AF_XDP zero-copy", zero_copy),
        Mode::NativeCopy => ("native XDP (driver mode)", native),
    };
    if !ok {
        eprintln!(
            "SKIPPED {test}: {} on {} has no {what} (the kernel's XDP features of {iface})",
            driver(iface),
            kernel()
        );
    }
    ok
}

/// Native mode and the mode's bind flag; 4096-byte frames when the MTU needs them.
pub fn flags(iface: &str, mode: Mode) -> AfXdpFlags {
    let frame_size = if hw::mtu(iface) + 18 > 2048 - 256 {
        4096
    } else {
        2048
    };
    AfXdpFlags {
        xdp_flags: XDP_FLAGS_DRV_MODE,
        bind_flags: match mode {
            Mode::ZeroCopy => XDP_ZEROCOPY,
            Mode::NativeCopy => XDP_COPY,
        },
        frame_size,
        ..AfXdpFlags::default()
    }
}

/// Opens a socket of `mode` on `queue` and checks the kernel reports that mode. A queue a
/// just-closed socket is still releasing (EBUSY) is retried for 3 s.
pub fn try_open(iface: &str, queue: u32, mode: Mode) -> Result<Sock, String> {
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        match Sock::create(iface, Some(queue as usize), flags(iface, mode)) {
            Ok(s) if s.is_zero_copy() != (mode == Mode::ZeroCopy) => {
                return Err(format!(
                    "{iface} queue {queue}: bound {} but XDP_OPTIONS reports zero-copy = {}",
                    mode.name(),
                    s.is_zero_copy()
                ))
            }
            Ok(s) => {
                assert_eq!(s.xdp_mode(), XDP_FLAGS_DRV_MODE);
                assert_eq!(s.queue(), queue);
                return Ok(s);
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(format!(
                    "{} socket on {iface} queue {queue}: {e}",
                    mode.name()
                ))
            }
        }
    }
}

/// [`try_open`], panicking with its message.
pub fn open(iface: &str, queue: u32, mode: Mode) -> Sock {
    try_open(iface, queue, mode).unwrap_or_else(|e| panic!("{e}"))
}
