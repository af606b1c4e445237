//! [`Metadata`] and [`MetadataType`]: what a receive reports beside the bytes.
//!
//! The spec puts one variant per backend in `MetadataType`, behind that backend's feature.
//! Here the per-backend metadata structs are plain data defined in core (no engine types in
//! them), so the enum is complete without core depending on any backend; each backend crate
//! re-exports its struct as `Meta` (`nethuns_pcap::Meta` is [`PcapMeta`]).

/// A `struct timeval` (seconds, microseconds), as libpcap and netmap report time.
pub type TimeVal = libc::timeval;

/// Trait for packet metadata.
///
/// Beside the spec's `into_enum`, every backend's metadata answers the same accessors the
/// same way, so generic code never needs to match on the backend:
///
/// ```
/// use nethuns_core::Metadata;
///
/// fn describe<M: Metadata>(m: &M) -> String {
///     format!(
///         "{} of {} bytes, vlan {:?}, at {:?} ns",
///         m.caplen(),
///         m.len(),
///         m.vlan(),
///         m.timestamp()
///     )
/// }
/// # let m = nethuns_core::metadata::PcapMeta::new(
/// #     libc::timeval { tv_sec: 1, tv_usec: 2 }, 60, 60, None);
/// # assert_eq!(describe(&m), "60 of 60 bytes, vlan None, at Some(1000002000) ns");
/// ```
#[allow(clippy::len_without_is_empty)]
pub trait Metadata: Send {
    /// The metadata as the backend-independent enum.
    fn into_enum(self) -> MetadataType;

    /// The frame's length on the wire (before any truncation), VLAN tags included.
    fn len(&self) -> u32;

    /// How many bytes the payload holds (≤ `len()`; smaller when a snaplen truncated it).
    fn caplen(&self) -> u32;

    /// Arrival time in nanoseconds since the Unix epoch, or `None` where the engine does not
    /// stamp packets (AF_XDP in SKB mode, DPDK without a PTP-synchronised clock). A hardware
    /// stamp where the engine has one, a software stamp otherwise.
    fn timestamp(&self) -> Option<u64>;

    /// The TCI of the frame's outermost VLAN tag, `None` if untagged. The tag is in the
    /// payload too (payload = wire frame on every backend), whether or not the engine also
    /// reported it out of band.
    fn vlan(&self) -> Option<u16>;

    /// The receive hash the kernel or the NIC computed, where there is one.
    fn rx_hash(&self) -> Option<u32>;

    /// The queue (or netmap ring) the packet came from, where the socket is bound to one.
    fn queue(&self) -> Option<usize>;
}

/// Metadata of any backend.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum MetadataType {
    /// Netmap metadata.
    Netmap(NetmapMeta),
    /// AF_XDP metadata.
    AfXdp(AfXdpMeta),
    /// DPDK metadata.
    Dpdk(DpdkMeta),
    /// Pcap metadata.
    Pcap(PcapMeta),
    /// AF_PACKET (TPACKET_v3) metadata.
    AfPacket(AfPacketMeta),
}

/// The resolution of a timestamp as its source recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TsPrecision {
    /// Microseconds (classic pcap, `struct timeval`).
    #[default]
    Micro,
    /// Nanoseconds (nanosecond pcap, pcapng, live capture where libpcap offers it).
    Nano,
}

/// Metadata of the pcap backend (`nethuns_pcap::Meta`).
///
/// The arrival time is `timestamp.tv_sec` seconds plus `ts_nsec` nanoseconds;
/// `timestamp.tv_usec` is `ts_nsec / 1000` (a plain `timeval`, whatever the precision), and
/// [`Metadata::timestamp`] gives the full-resolution value in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct PcapMeta {
    /// Packet arrival timestamp, to the microsecond.
    pub timestamp: TimeVal,
    /// Nanoseconds within the second `timestamp.tv_sec` (a multiple of 1000 when
    /// `ts_precision` is [`TsPrecision::Micro`]).
    pub ts_nsec: u32,
    /// The resolution the source stamped the packet with: what libpcap gave for a live
    /// interface (nanoseconds where the kernel offers them), what the savefile records.
    pub ts_precision: TsPrecision,
    /// Original packet length (before truncation).
    pub len: u32,
    /// Captured length (≤ `len`; smaller when snaplen truncated the packet).
    pub caplen: u32,
    /// The outermost VLAN tag's TCI, read from the frame.
    pub vlan: Option<u16>,
}

impl PcapMeta {
    /// Metadata stamped with a microsecond `timeval` (`ts_nsec = tv_usec × 1000`).
    pub fn new(timestamp: TimeVal, len: u32, caplen: u32, vlan: Option<u16>) -> Self {
        PcapMeta {
            timestamp,
            ts_nsec: (timestamp.tv_usec as u32).saturating_mul(1000),
            ts_precision: TsPrecision::Micro,
            len,
            caplen,
            vlan,
        }
    }

    /// Metadata stamped `sec` seconds plus `nsec` nanoseconds since the epoch, at nanosecond
    /// precision.
    pub fn with_nanos(
        sec: libc::time_t,
        nsec: u32,
        len: u32,
        caplen: u32,
        vlan: Option<u16>,
    ) -> Self {
        PcapMeta {
            timestamp: TimeVal {
                tv_sec: sec,
                tv_usec: (nsec / 1000) as libc::suseconds_t,
            },
            ts_nsec: nsec,
            ts_precision: TsPrecision::Nano,
            len,
            caplen,
            vlan,
        }
    }
}

/// Metadata of the netmap backend (`nethuns_netmap::Meta`).
#[derive(Clone, Copy, Debug)]
pub struct NetmapMeta {
    /// Packet arrival timestamp (the ring's timestamp at the last sync).
    pub timestamp: TimeVal,
    /// Packet length (the slot's length).
    pub len: u32,
    /// The ring the packet came from.
    pub ring: u32,
    /// The outermost VLAN tag's TCI, read from the frame.
    pub vlan: Option<u16>,
}

/// Metadata of the AF_XDP backend (`nethuns_afxdp::Meta`). AF_XDP descriptors carry no
/// timestamp or hash: they come from XDP RX metadata, which the steering program asks of the
/// driver in native mode (see `nethuns_afxdp::Sock::rx_metadata`).
#[derive(Clone, Copy, Debug)]
pub struct AfXdpMeta {
    /// Frame length.
    pub len: u32,
    /// The queue the socket is bound to.
    pub queue: u32,
    /// Descriptor options (`XDP_PKT_CONTD` …).
    pub options: u32,
    /// The outermost VLAN tag's TCI, read from the frame.
    pub vlan: Option<u16>,
    /// The driver's RX timestamp (`bpf_xdp_metadata_rx_timestamp`: the NIC's clock, in
    /// nanoseconds), where the driver stamped the frame.
    pub rx_timestamp: Option<u64>,
    /// A software stamp in nanoseconds since the epoch, taken by the steering program when
    /// XDP saw the frame, where the driver gave no `rx_timestamp` (native mode only).
    pub xdp_timestamp: Option<u64>,
    /// The driver's RX hash (`bpf_xdp_metadata_rx_hash`), where it has one.
    pub rx_hash: Option<u32>,
}

/// Metadata of the DPDK backend (`nethuns_dpdk::Meta`).
#[derive(Clone, Copy, Debug)]
pub struct DpdkMeta {
    /// Packet length (`pkt_len` of the mbuf).
    pub len: u32,
    /// DPDK port id.
    pub port: u16,
    /// RX queue.
    pub queue: u16,
    /// RSS hash, where the PMD computed one.
    pub rss_hash: Option<u32>,
    /// The outermost VLAN tag's TCI: the one the PMD stripped (and nethuns put back into the
    /// frame), or the one read from the frame.
    pub vlan_tci: Option<u16>,
    /// Hardware timestamp, where the PMD provides one.
    pub timestamp: Option<u64>,
}

/// Metadata of the AF_PACKET backend (`nethuns_afpacket::Meta`), from the TPACKET_v3 frame
/// header.
#[derive(Clone, Copy, Debug)]
pub struct AfPacketMeta {
    /// Arrival time, seconds.
    pub sec: u32,
    /// Arrival time, nanoseconds within the second.
    pub nsec: u32,
    /// Original packet length.
    pub len: u32,
    /// Captured length.
    pub caplen: u32,
    /// VLAN TCI (valid when `vlan_valid`).
    pub vlan_tci: u16,
    /// VLAN TPID (valid when `vlan_valid`).
    pub vlan_tpid: u16,
    /// Whether the frame's outermost VLAN tag is in `vlan_tci`/`vlan_tpid` (the kernel
    /// stripped it; nethuns puts it back into the payload unless the socket was asked not to).
    pub vlan_valid: bool,
    /// RX hash computed by the kernel (0 if none).
    pub rxhash: u32,
    /// `tp_status` bits of the frame.
    pub status: u32,
}

impl Metadata for PcapMeta {
    #[inline]
    fn into_enum(self) -> MetadataType {
        MetadataType::Pcap(self)
    }
    #[inline]
    fn len(&self) -> u32 {
        self.len
    }
    #[inline]
    fn caplen(&self) -> u32 {
        self.caplen
    }
    #[inline]
    fn timestamp(&self) -> Option<u64> {
        if self.timestamp.tv_sec == 0 && self.ts_nsec == 0 {
            return None;
        }
        Some(self.timestamp.tv_sec as u64 * 1_000_000_000 + u64::from(self.ts_nsec))
    }
    #[inline]
    fn vlan(&self) -> Option<u16> {
        self.vlan
    }
    #[inline]
    fn rx_hash(&self) -> Option<u32> {
        None
    }
    #[inline]
    fn queue(&self) -> Option<usize> {
        None
    }
}

impl AfPacketMeta {
    /// Whether `sec`/`nsec` is the NIC's raw hardware stamp (`TP_STATUS_TS_RAW_HARDWARE`);
    /// otherwise a software one: the skb's (`TP_STATUS_TS_SOFTWARE`), or the time the ring
    /// took the frame.
    pub fn hardware_timestamp(&self) -> bool {
        self.status & (1 << 31) != 0
    }
}

impl Metadata for NetmapMeta {
    #[inline]
    fn into_enum(self) -> MetadataType {
        MetadataType::Netmap(self)
    }
    #[inline]
    fn len(&self) -> u32 {
        self.len
    }
    #[inline]
    fn caplen(&self) -> u32 {
        self.len
    }
    #[inline]
    fn timestamp(&self) -> Option<u64> {
        crate::frame::timeval_ns(self.timestamp)
    }
    #[inline]
    fn vlan(&self) -> Option<u16> {
        self.vlan
    }
    #[inline]
    fn rx_hash(&self) -> Option<u32> {
        None
    }
    #[inline]
    fn queue(&self) -> Option<usize> {
        Some(self.ring as usize)
    }
}

impl Metadata for AfXdpMeta {
    #[inline]
    fn into_enum(self) -> MetadataType {
        MetadataType::AfXdp(self)
    }
    #[inline]
    fn len(&self) -> u32 {
        self.len
    }
    #[inline]
    fn caplen(&self) -> u32 {
        self.len
    }
    /// The driver's stamp where there is one, else the program's software stamp.
    #[inline]
    fn timestamp(&self) -> Option<u64> {
        self.rx_timestamp.or(self.xdp_timestamp)
    }
    #[inline]
    fn vlan(&self) -> Option<u16> {
        self.vlan
    }
    #[inline]
    fn rx_hash(&self) -> Option<u32> {
        self.rx_hash
    }
    #[inline]
    fn queue(&self) -> Option<usize> {
        Some(self.queue as usize)
    }
}

impl Metadata for DpdkMeta {
    #[inline]
    fn into_enum(self) -> MetadataType {
        MetadataType::Dpdk(self)
    }
    #[inline]
    fn len(&self) -> u32 {
        self.len
    }
    #[inline]
    fn caplen(&self) -> u32 {
        self.len
    }
    #[inline]
    fn timestamp(&self) -> Option<u64> {
        // DPDK's mbuf timestamp counts in the NIC's clock, not since the epoch.
        None
    }
    #[inline]
    fn vlan(&self) -> Option<u16> {
        self.vlan_tci
    }
    #[inline]
    fn rx_hash(&self) -> Option<u32> {
        self.rss_hash
    }
    #[inline]
    fn queue(&self) -> Option<usize> {
        Some(self.queue as usize)
    }
}

impl Metadata for AfPacketMeta {
    #[inline]
    fn into_enum(self) -> MetadataType {
        MetadataType::AfPacket(self)
    }
    #[inline]
    fn len(&self) -> u32 {
        self.len
    }
    #[inline]
    fn caplen(&self) -> u32 {
        self.caplen
    }
    #[inline]
    fn timestamp(&self) -> Option<u64> {
        if self.sec == 0 && self.nsec == 0 {
            return None;
        }
        Some(self.sec as u64 * 1_000_000_000 + self.nsec as u64)
    }
    #[inline]
    fn vlan(&self) -> Option<u16> {
        self.vlan_valid.then_some(self.vlan_tci)
    }
    #[inline]
    fn rx_hash(&self) -> Option<u32> {
        (self.rxhash != 0).then_some(self.rxhash)
    }
    #[inline]
    fn queue(&self) -> Option<usize> {
        None
    }
}
