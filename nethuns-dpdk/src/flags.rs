//! [`DpdkFlags`]: mempool and port configuration, validated before anything is allocated.

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

/// Configuration of a DPDK socket: its mempool (the [`Context`](nethuns_core::Context)) and its
/// port. The first three fields are the spec's; the rest have defaults that suit virtual
/// devices and ordinary NICs.
///
/// ```
/// use nethuns_dpdk::DpdkFlags;
/// let flags = DpdkFlags { num_mbufs: 4096, ..DpdkFlags::default() };
/// assert!(flags.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkFlags {
    /// Number of mbufs in the socket's mempool (every buffer the socket receives into, holds in
    /// payloads/tokens, posts to the NIC's RX ring, or sends from). At least [`MIN_MBUFS`].
    /// DPDK is most memory-efficient with 2^n − 1.
    pub num_mbufs: u32,
    /// Per-lcore mempool cache size: ≤ [`MEMPOOL_CACHE_MAX`] and ≤ `num_mbufs / 1.5`; 0 disables
    /// the cache. Only EAL threads (lcores) use it.
    pub mbuf_cache_size: u32,
    /// Data room of each mbuf, headroom ([`HEADROOM`], 128) included: the largest frame is
    /// `mbuf_default_buf_size - 128`, and it must hold the port's MTU plus an Ethernet header
    /// and a VLAN tag. DPDK's default is 2176.
    pub mbuf_default_buf_size: u16,
    /// RX descriptors of the queue (adjusted to the driver's limits).
    pub rx_ring_size: u16,
    /// TX descriptors of the queue (adjusted to the driver's limits).
    pub tx_ring_size: u16,
    /// Put the port in promiscuous mode (ignored where the driver cannot).
    pub promiscuous: bool,
    /// Ask the driver for RX timestamps where it offers them (reported in
    /// [`Meta::timestamp`](crate::Meta)).
    pub rx_timestamp: bool,
    /// Ask the driver to strip VLAN tags from the data where it can. Either way the TCI is in
    /// [`Meta::vlan_tci`](crate::Meta) where the driver reports it (`RTE_MBUF_F_RX_VLAN`).
    pub vlan_strip: bool,
}

impl Default for DpdkFlags {
    fn default() -> Self {
        DpdkFlags {
            num_mbufs: 8191,
            mbuf_cache_size: 250,
            mbuf_default_buf_size: dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            rx_ring_size: 1024,
            tx_ring_size: 1024,
            promiscuous: true,
            rx_timestamp: true,
            vlan_strip: false,
        }
    }
}

impl Flags for DpdkFlags {}

impl DpdkFlags {
    /// The spec's three fields, the others at their defaults.
    ///
    /// ```
    /// let flags = nethuns_dpdk::DpdkFlags::new(8192, 250, 2176);
    /// assert_eq!(flags.rx_ring_size, 1024);
    /// ```
    pub fn new(num_mbufs: u32, mbuf_cache_size: u32, mbuf_default_buf_size: u16) -> Self {
        DpdkFlags {
            num_mbufs,
            mbuf_cache_size,
            mbuf_default_buf_size,
            ..DpdkFlags::default()
        }
    }

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
        if self.rx_ring_size == 0 {
            return Err(Error::flag("rx_ring_size", "must be at least 1"));
        }
        if self.tx_ring_size == 0 {
            return Err(Error::flag("tx_ring_size", "must be at least 1"));
        }
        Ok(())
    }

    /// The largest frame one mbuf holds (`mbuf_default_buf_size` minus the headroom).
    pub fn max_frame(&self) -> usize {
        usize::from(self.mbuf_default_buf_size.saturating_sub(HEADROOM))
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
        let spec = DpdkFlags {
            num_mbufs: 8192,
            mbuf_cache_size: 250,
            mbuf_default_buf_size: 2176,
            ..DpdkFlags::default()
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
        assert_eq!(
            f(DpdkFlags {
                rx_ring_size: 0,
                ..d()
            }),
            "rx_ring_size"
        );
        assert_eq!(
            f(DpdkFlags {
                tx_ring_size: 0,
                ..d()
            }),
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
