//! [`DpdkFlags`] (the spec's three mempool fields) and [`DpdkOptions`] (the port's other
//! settings), each validated before anything is allocated.

use std::sync::Mutex;

use nethuns_core::{Error, Flags, Result};

/// RX/TX burst size: packets moved per `rte_eth_rx_burst` / `rte_eth_tx_burst` call.
pub const BURST: usize = 32;

/// Headroom DPDK reserves at the start of every mbuf's data room (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: u16 = dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;

/// Largest per-lcore mempool cache (`RTE_MEMPOOL_CACHE_MAX_SIZE`).
pub const MEMPOOL_CACHE_MAX: u32 = dpdk_sys::RTE_MEMPOOL_CACHE_MAX_SIZE;

/// Fewest mbufs a socket's mempool may have: two bursts (one being received, one being sent).
pub const MIN_MBUFS: u32 = 2 * BURST as u32;

/// Smallest frame an mbuf must hold beyond its headroom (a minimum Ethernet frame, no FCS).
pub const MIN_FRAME: u16 = 60;

/// The mempool of a DPDK socket (its [`Context`](nethuns_core::Context)): the spec's struct,
/// field for field. The port's other settings (ring sizes, offloads, promiscuous mode) are
/// [`DpdkOptions`].
///
/// ```
/// use nethuns_dpdk::DpdkFlags;
/// let flags = DpdkFlags {
///     num_mbufs: 8192,
///     mbuf_cache_size: 250,
///     mbuf_default_buf_size: 2176,
/// };
/// assert!(flags.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct DpdkFlags {
    /// Number of mbufs in the mempool: every buffer the socket receives into, holds in
    /// payloads/tokens, posts to the NIC's RX ring, or sends from. At least [`MIN_MBUFS`].
    /// DPDK is most memory-efficient with 2^n − 1.
    pub num_mbufs: u32,
    /// Per-core mbuf cache size: ≤ [`MEMPOOL_CACHE_MAX`] and ≤ `num_mbufs / 1.5`; 0 disables
    /// the cache. Only EAL threads (lcores) use it.
    pub mbuf_cache_size: u32,
    /// Default buffer size for mbufs: the data room, headroom ([`HEADROOM`], 128) included.
    /// The largest frame is `mbuf_default_buf_size - 128`, and it must hold the port's MTU plus
    /// an Ethernet header and a VLAN tag. DPDK's default is 2176.
    pub mbuf_default_buf_size: u16,
}

impl Default for DpdkFlags {
    fn default() -> Self {
        DpdkFlags {
            num_mbufs: 8191,
            mbuf_cache_size: 250,
            mbuf_default_buf_size: dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
        }
    }
}

impl Flags for DpdkFlags {}

impl DpdkFlags {
    /// Checks the values DPDK would refuse (or that could not work), naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.num_mbufs < MIN_MBUFS {
            return Err(Error::flag(
                "num_mbufs",
                format!("{} is too few: at least {MIN_MBUFS}", self.num_mbufs),
            ));
        }
        if self.mbuf_cache_size > MEMPOOL_CACHE_MAX {
            return Err(Error::flag(
                "mbuf_cache_size",
                format!(
                    "{} exceeds RTE_MEMPOOL_CACHE_MAX_SIZE ({MEMPOOL_CACHE_MAX})",
                    self.mbuf_cache_size
                ),
            ));
        }
        // DPDK: cache_size * 1.5 must not exceed n.
        if u64::from(self.mbuf_cache_size) * 3 > u64::from(self.num_mbufs) * 2 {
            return Err(Error::flag(
                "mbuf_cache_size",
                format!(
                    "{} exceeds num_mbufs / 1.5 ({})",
                    self.mbuf_cache_size,
                    u64::from(self.num_mbufs) * 2 / 3
                ),
            ));
        }
        if self.mbuf_default_buf_size < HEADROOM + MIN_FRAME {
            return Err(Error::flag(
                "mbuf_default_buf_size",
                format!(
                    "{} leaves no room for a frame: at least headroom {HEADROOM} + {MIN_FRAME}",
                    self.mbuf_default_buf_size
                ),
            ));
        }
        Ok(())
    }

    /// The largest frame one mbuf holds (`mbuf_default_buf_size` minus the headroom).
    pub fn max_frame(&self) -> usize {
        usize::from(self.mbuf_default_buf_size.saturating_sub(HEADROOM))
    }
}

/// The process-wide options [`Socket::create`](nethuns_core::Socket::create) uses; `None` =
/// [`DpdkOptions::default`].
static PROCESS_OPTIONS: Mutex<Option<DpdkOptions>> = Mutex::new(None);

/// The port settings of a DPDK socket beyond its mempool ([`DpdkFlags`]): ring sizes,
/// offloads, promiscuous mode.
///
/// Given per socket with [`Sock::create_with_options`](crate::Sock::create_with_options), or
/// for every later [`Socket::create`](nethuns_core::Socket::create) of the process with
/// [`DpdkOptions::set_process_default`] (for generic code that only passes flags).
///
/// ```
/// use nethuns_dpdk::DpdkOptions;
/// let opts = DpdkOptions { rx_ring_size: 256, ..DpdkOptions::default() };
/// assert!(opts.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkOptions {
    /// RX descriptors of the queue, adjusted to the driver's limits and to the mempool: at
    /// most half of `num_mbufs` (rounded down to a power of two), since drivers that post
    /// mbufs to the RX ring at start (NICs, net_af_xdp) fill all of it.
    pub rx_ring_size: u16,
    /// TX descriptors of the queue (adjusted to the driver's limits).
    pub tx_ring_size: u16,
    /// Put the port in promiscuous mode (ignored where the driver cannot). On by default,
    /// as every other nethuns backend and libpcap are: a capture socket sees all of the
    /// link's traffic, not only the frames addressed to the interface's MAC.
    ///
    /// Over a kernel interface (net_af_packet, net_af_xdp, net_tap) nethuns does not use
    /// DPDK's promiscuous mode, which sets the interface's `PROMISC` flag and leaves it set
    /// when the process is killed; it holds a promiscuous membership of the interface instead
    /// (an AF_PACKET socket that receives nothing), which the kernel counts and drops with
    /// the socket, at drop or at the process's death. Other users' promiscuity is untouched.
    pub promiscuous: bool,
    /// Ask the driver for RX timestamps where it offers them (the NIC clock's value in
    /// [`Meta::timestamp`](crate::Meta); [`Metadata::timestamp`](nethuns_core::Metadata)
    /// stays `None`, not being time since the epoch).
    pub rx_timestamp: bool,
    /// Leave VLAN tags out of the received data where the driver strips them (the TCI is then
    /// only in [`Meta::vlan_tci`](crate::Meta)). Off by default: a tag the driver stripped is
    /// put back, so the payload equals the wire frame.
    pub vlan_strip: bool,
}

impl Default for DpdkOptions {
    fn default() -> Self {
        DpdkOptions {
            rx_ring_size: 1024,
            tx_ring_size: 1024,
            promiscuous: true,
            rx_timestamp: true,
            vlan_strip: false,
        }
    }
}

impl DpdkOptions {
    /// Checks the values that could not work, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.rx_ring_size == 0 {
            return Err(Error::flag("rx_ring_size", "must be at least 1"));
        }
        if self.tx_ring_size == 0 {
            return Err(Error::flag("tx_ring_size", "must be at least 1"));
        }
        Ok(())
    }

    /// Makes `opts` the options of every later [`Socket::create`](nethuns_core::Socket::create)
    /// in this process (sockets already open keep theirs); `None` restores the defaults.
    pub fn set_process_default(opts: Option<DpdkOptions>) -> Result<()> {
        if let Some(o) = &opts {
            o.validate()?;
        }
        *PROCESS_OPTIONS.lock().unwrap_or_else(|p| p.into_inner()) = opts;
        Ok(())
    }

    /// The options [`Socket::create`](nethuns_core::Socket::create) uses now.
    pub fn process_default() -> DpdkOptions {
        PROCESS_OPTIONS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<()>) -> &'static str {
        match r {
            Err(Error::InvalidFlag { field, .. }) => field,
            other => panic!("expected InvalidFlag, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_spec_example_are_valid() {
        DpdkFlags::default().validate().unwrap();
        DpdkOptions::default().validate().unwrap();
        let spec = DpdkFlags {
            num_mbufs: 8192,
            mbuf_cache_size: 250,
            mbuf_default_buf_size: 2176,
        };
        spec.validate().unwrap();
        assert_eq!(spec.max_frame(), 2048);
    }

    #[test]
    fn each_bad_field_is_named() {
        let d = DpdkFlags::default;
        let f = |x: DpdkFlags| field(x.validate());
        assert_eq!(
            f(DpdkFlags {
                num_mbufs: 10,
                ..d()
            }),
            "num_mbufs"
        );
        assert_eq!(
            f(DpdkFlags {
                mbuf_cache_size: 513,
                ..d()
            }),
            "mbuf_cache_size"
        );
        assert_eq!(
            f(DpdkFlags {
                num_mbufs: 300,
                mbuf_cache_size: 250,
                ..d()
            }),
            "mbuf_cache_size"
        );
        assert_eq!(
            f(DpdkFlags {
                mbuf_default_buf_size: 150,
                ..d()
            }),
            "mbuf_default_buf_size"
        );
        let o = DpdkOptions::default;
        assert_eq!(
            field(
                DpdkOptions {
                    rx_ring_size: 0,
                    ..o()
                }
                .validate()
            ),
            "rx_ring_size"
        );
        assert_eq!(
            field(
                DpdkOptions {
                    tx_ring_size: 0,
                    ..o()
                }
                .validate()
            ),
            "tx_ring_size"
        );
        // the 1.5 rule's boundary: 200 * 1.5 = 300
        DpdkFlags {
            num_mbufs: 300,
            mbuf_cache_size: 200,
            ..d()
        }
        .validate()
        .unwrap();
        DpdkFlags {
            num_mbufs: 64,
            mbuf_cache_size: 0,
            ..d()
        }
        .validate()
        .unwrap();
    }
}
