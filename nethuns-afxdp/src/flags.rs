//! [`AfXdpFlags`]: the configuration of an AF_XDP socket, and its validation (pure, no kernel).

use nethuns_core::{Error, Flags, Result};

/// `bind_flags` bit: share the UMEM of another socket. Not supported (each socket owns its UMEM).
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
/// `bind_flags` bit: force copy mode.
pub const XDP_COPY: u16 = 1 << 1;
/// `bind_flags` bit: force zero-copy mode (the driver must support it; veth does not).
pub const XDP_ZEROCOPY: u16 = 1 << 2;
/// `bind_flags` bit: let the kernel say when it needs a wakeup syscall. Always set by this crate.
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

/// `bind_flags` bit: multi-buffer frames (a frame may span several UMEM frames; Linux 6.6+).
/// Set by this crate when the interface's MTU needs it ([`AfXdpFlags::segments_for`]).
pub const XDP_USE_SG: u16 = 1 << 4;

/// `xdp_flags` bit: accepted and ignored (a bpf_link never replaces another program anyway).
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
/// `xdp_flags` bit: generic (SKB) mode: works on every device, copies through an skb.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `xdp_flags` bit: native (driver) mode: the driver runs the program before allocating an skb.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `xdp_flags` bit: offload to the NIC. Not supported (a redirect to a socket cannot be
/// offloaded).
pub const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
/// The mode bits of `xdp_flags`.
pub const XDP_FLAGS_MODES: u32 = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE;

/// The kernel's headroom in front of a received frame (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Largest accepted `num_frames` (2^20 frames: 4 GiB of UMEM at 4096 bytes a frame).
pub const MAX_FRAMES: u32 = 1 << 20;
/// Largest accepted ring size.
pub const MAX_RING: u32 = 1 << 16;

/// Configuration of an AF_XDP socket (the spec's fields, exactly).
///
/// The UMEM has `num_frames` frames of `frame_size` bytes: `tx_size` of them are reserved for
/// transmission (one per TX ring slot), the rest are receive frames, all of which fit in the
/// fill ring at once (its size is the receive frame count rounded up to a power of two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpFlags {
    /// Bind flags: [`XDP_COPY`] or [`XDP_ZEROCOPY`] (neither: the kernel tries zero-copy and
    /// falls back to copy). [`XDP_USE_NEED_WAKEUP`] is always added; [`XDP_SHARED_UMEM`] is
    /// refused.
    pub bind_flags: u16,
    /// XDP flags: [`XDP_FLAGS_SKB_MODE`] (generic) or [`XDP_FLAGS_DRV_MODE`] (native); `0` lets
    /// the kernel pick native mode where the driver has it, generic otherwise.
    pub xdp_flags: u32,
    /// Number of UMEM frames (power of two, > `tx_size` + `rx_size` - 1).
    pub num_frames: u32,
    /// Size of each UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// TX ring size (power of two); also the number of TX frames and the completion ring size.
    pub tx_size: u32,
    /// RX ring size (power of two). In generic (SKB) mode a 64-byte flood dies at the RX ring
    /// (`XDP_STATISTICS.rx_ring_full`) whenever the receiving thread falls behind for a
    /// moment: the ring's size is the burst it absorbs. Measured on a veth pair (the
    /// `rx_ring` example, 7 interleaved rounds of 1.5 s, ≈ 0.2 Mpps offered): 2048 slots
    /// received 0.79 of what was sent (0.74–0.89), 4096 slots 0.995 (0.93–1.00), 8192 slots
    /// (32 MiB of UMEM) 1.000 over 5 rounds; the default is 4096, as C nethuns'.
    pub rx_size: u32,
}

impl Default for AfXdpFlags {
    /// Works on any device: generic (SKB) mode, copy or zero-copy as the kernel decides
    /// (always copy in SKB mode), 8192 frames of 2048 bytes (16 MiB), 1024 TX and 4096 RX
    /// slots (see `rx_size` for why 4096).
    /// On a NIC with a native XDP driver set `xdp_flags: XDP_FLAGS_DRV_MODE` (and
    /// `bind_flags: XDP_ZEROCOPY` where the driver supports it) for speed.
    fn default() -> Self {
        AfXdpFlags {
            bind_flags: 0,
            xdp_flags: XDP_FLAGS_SKB_MODE,
            num_frames: 8192,
            frame_size: 2048,
            tx_size: 1024,
            rx_size: 4096,
        }
    }
}

impl Flags for AfXdpFlags {}

/// The sizes a validated configuration gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub num_frames: u32,
    pub frame_size: u32,
    pub rx_frames: u32,
    pub tx_frames: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub bind_flags: u16,
    pub xdp_mode: u32,
}

fn pow2(field: &'static str, v: u32, max: u32) -> Result<()> {
    if v == 0 || !v.is_power_of_two() || v > max {
        return Err(Error::flag(
            field,
            format!("{v}: must be a power of two between 1 and {max}"),
        ));
    }
    Ok(())
}

impl AfXdpFlags {
    /// Checks every field before anything touches the kernel; each error names its field.
    pub fn validate(&self) -> Result<()> {
        self.layout().map(|_| ())
    }

    pub(crate) fn layout(&self) -> Result<Layout> {
        let known = XDP_COPY | XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP | XDP_SHARED_UMEM | XDP_USE_SG;
        if self.bind_flags & !known != 0 {
            return Err(Error::flag(
                "bind_flags",
                format!(
                    "{:#x}: unknown bits {:#x} (known: XDP_COPY, XDP_ZEROCOPY, XDP_USE_NEED_WAKEUP)",
                    self.bind_flags,
                    self.bind_flags & !known
                ),
            ));
        }
        if self.bind_flags & XDP_SHARED_UMEM != 0 {
            return Err(Error::flag(
                "bind_flags",
                "XDP_SHARED_UMEM is not supported: each socket owns its UMEM (its Context)",
            ));
        }
        if self.bind_flags & (XDP_COPY | XDP_ZEROCOPY) == XDP_COPY | XDP_ZEROCOPY {
            return Err(Error::flag(
                "bind_flags",
                "XDP_COPY and XDP_ZEROCOPY exclude each other",
            ));
        }
        let known = XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_MODES;
        if self.xdp_flags & !known != 0 {
            return Err(Error::flag(
                "xdp_flags",
                format!(
                    "{:#x}: unknown bits {:#x} (known: XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST)",
                    self.xdp_flags,
                    self.xdp_flags & !known
                ),
            ));
        }
        let mode = self.xdp_flags & XDP_FLAGS_MODES;
        if mode.count_ones() > 1 {
            return Err(Error::flag(
                "xdp_flags",
                "at most one of XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE",
            ));
        }
        if mode == XDP_FLAGS_HW_MODE {
            return Err(Error::flag(
                "xdp_flags",
                "XDP_FLAGS_HW_MODE is not supported: a redirect to an AF_XDP socket runs on the host",
            ));
        }
        if mode == XDP_FLAGS_SKB_MODE && self.bind_flags & XDP_ZEROCOPY != 0 {
            return Err(Error::flag(
                "bind_flags",
                "XDP_ZEROCOPY needs native mode (XDP_FLAGS_DRV_MODE); generic (SKB) mode always copies",
            ));
        }
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(Error::flag(
                "frame_size",
                format!("{}: must be 2048 or 4096", self.frame_size),
            ));
        }
        pow2("tx_size", self.tx_size, MAX_RING)?;
        pow2("rx_size", self.rx_size, MAX_RING)?;
        pow2("num_frames", self.num_frames, MAX_FRAMES)?;
        if self.num_frames < self.tx_size + self.rx_size {
            return Err(Error::flag(
                "num_frames",
                format!(
                    "{}: must be at least tx_size + rx_size = {} (one frame per TX slot, a full RX ring's worth for receive)",
                    self.num_frames,
                    self.tx_size + self.rx_size
                ),
            ));
        }
        let rx_frames = self.num_frames - self.tx_size;
        Ok(Layout {
            num_frames: self.num_frames,
            frame_size: self.frame_size,
            rx_frames,
            tx_frames: self.tx_size,
            fill_size: rx_frames.next_power_of_two(),
            comp_size: self.tx_size,
            rx_size: self.rx_size,
            tx_size: self.tx_size,
            bind_flags: self.bind_flags | XDP_USE_NEED_WAKEUP,
            xdp_mode: mode,
        })
    }

    /// Checks that a frame of the largest size the interface can carry (`mtu` + Ethernet and
    /// VLAN headers) can be received: in one frame after the kernel's headroom, or else as a
    /// multi-buffer frame (`XDP_USE_SG`, Linux 6.6+) of at most [`MAX_SEGMENTS`] frames. The
    /// error says which `frame_size` or MTU would work.
    pub fn check_mtu(&self, ifname: &str, mtu: u32) -> Result<()> {
        let room = self.frame_size.saturating_sub(XDP_PACKET_HEADROOM);
        let need = mtu.saturating_add(18);
        if self.segments_for(mtu) > MAX_SEGMENTS {
            let fit = |fs: u32| (fs - XDP_PACKET_HEADROOM) * MAX_SEGMENTS - 18;
            let hint =
                if self.frame_size < 4096 && need <= (4096 - XDP_PACKET_HEADROOM) * MAX_SEGMENTS {
                    format!(
                        "use frame_size 4096 (frames of up to MTU {}) or lower the MTU to {}",
                        fit(4096),
                        fit(self.frame_size)
                    )
                } else {
                    format!(
                        "lower the MTU to {} or less",
                        fit(self.frame_size.max(2048))
                    )
                };
            return Err(Error::flag(
                "frame_size",
                format!(
                    "{}: {ifname} has MTU {mtu}, so a frame needs {need} bytes, more than \
                     {MAX_SEGMENTS} frames of {room} bytes (after the {XDP_PACKET_HEADROOM}-byte \
                     headroom) can hold; {hint}",
                    self.frame_size
                ),
            ));
        }
        Ok(())
    }

    /// How many UMEM frames the largest frame of an interface of MTU `mtu` takes (1: no
    /// multi-buffer frames).
    pub fn segments_for(&self, mtu: u32) -> u32 {
        let room = self.frame_size.saturating_sub(XDP_PACKET_HEADROOM).max(1);
        mtu.saturating_add(18).div_ceil(room)
    }
}

/// The most UMEM frames one multi-buffer frame may span (the kernel's `MAX_SKB_FRAGS` + 1).
pub const MAX_SEGMENTS: u32 = 18;

/// A human name for an XDP mode.
pub(crate) fn mode_name(mode: u32) -> &'static str {
    match mode {
        XDP_FLAGS_SKB_MODE => "generic (SKB) mode",
        XDP_FLAGS_DRV_MODE => "native (DRV) mode",
        _ => "kernel-chosen mode",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: Error) -> &'static str {
        match e {
            Error::InvalidFlag { field, .. } => field,
            other => panic!("not an InvalidFlag: {other}"),
        }
    }

    #[test]
    fn default_is_valid() {
        let l = AfXdpFlags::default().layout().unwrap();
        assert_eq!(l.rx_frames, 7168);
        assert_eq!(l.fill_size, 8192);
        assert_eq!(l.bind_flags & XDP_USE_NEED_WAKEUP, XDP_USE_NEED_WAKEUP);
        AfXdpFlags::default().check_mtu("eth0", 1500).unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        let d = AfXdpFlags::default;
        let cases: Vec<(AfXdpFlags, &str)> = vec![
            (
                AfXdpFlags {
                    frame_size: 3000,
                    ..d()
                },
                "frame_size",
            ),
            (
                AfXdpFlags {
                    frame_size: 1024,
                    ..d()
                },
                "frame_size",
            ),
            (
                AfXdpFlags {
                    tx_size: 1000,
                    ..d()
                },
                "tx_size",
            ),
            (AfXdpFlags { tx_size: 0, ..d() }, "tx_size"),
            (AfXdpFlags { rx_size: 3, ..d() }, "rx_size"),
            (
                AfXdpFlags {
                    num_frames: 5000,
                    ..d()
                },
                "num_frames",
            ),
            (
                AfXdpFlags {
                    num_frames: 2048,
                    ..d()
                },
                "num_frames",
            ),
            (
                AfXdpFlags {
                    bind_flags: 0x100,
                    ..d()
                },
                "bind_flags",
            ),
            (
                AfXdpFlags {
                    bind_flags: XDP_SHARED_UMEM,
                    ..d()
                },
                "bind_flags",
            ),
            (
                AfXdpFlags {
                    bind_flags: XDP_COPY | XDP_ZEROCOPY,
                    ..d()
                },
                "bind_flags",
            ),
            (
                AfXdpFlags {
                    bind_flags: XDP_ZEROCOPY,
                    ..d()
                },
                "bind_flags",
            ),
            (
                AfXdpFlags {
                    xdp_flags: 1 << 7,
                    ..d()
                },
                "xdp_flags",
            ),
            (
                AfXdpFlags {
                    xdp_flags: XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE,
                    ..d()
                },
                "xdp_flags",
            ),
            (
                AfXdpFlags {
                    xdp_flags: XDP_FLAGS_HW_MODE,
                    ..d()
                },
                "xdp_flags",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(field(f.validate().unwrap_err()), want, "{f:?}");
        }
    }

    #[test]
    fn mtu_against_frame_size() {
        let f = AfXdpFlags::default();
        // 9000 needs multi-buffer frames: 6 of 1792 bytes.
        f.check_mtu("veth0", 9000).unwrap();
        assert_eq!(f.segments_for(1500), 1);
        assert_eq!(f.segments_for(9000), 6);
        let big = AfXdpFlags {
            frame_size: 4096,
            ..f.clone()
        };
        assert_eq!(big.segments_for(3000), 1);
        assert_eq!(big.segments_for(9000), 3);
        // Beyond what 18 frames hold: the error names a frame_size or MTU that works.
        let e = f.check_mtu("veth0", 65_000).unwrap_err();
        assert_eq!(field(e), "frame_size");
        let msg = f.check_mtu("veth0", 40_000).unwrap_err().to_string();
        assert!(
            msg.contains("use frame_size 4096 (frames of up to MTU 69102)"),
            "{msg}"
        );
        assert!(msg.contains("lower the MTU to 32238"), "{msg}");
        let msg = big.check_mtu("veth0", 70_000).unwrap_err().to_string();
        assert!(msg.contains("lower the MTU to 69102"), "{msg}");
        assert!(f.check_mtu("veth0", u32::MAX).is_err());
    }

    #[test]
    fn huge_mtu_is_refused_not_wrapped() {
        // `mtu + 18` used to overflow (a panic with overflow checks, Ok after wrapping).
        for mtu in [u32::MAX - 17, u32::MAX - 1, u32::MAX] {
            let e = AfXdpFlags::default().check_mtu("veth0", mtu).unwrap_err();
            assert_eq!(field(e), "frame_size", "MTU {mtu}");
        }
    }
}
