//! [`Metadata`] and [`MetadataType`]: what a receive reports beside the bytes.
//!
//! The spec puts one variant per backend in `MetadataType`, behind that backend's feature.
//! Here the per-backend metadata structs are plain data defined in core (no engine types in
//! them), so the enum is complete without core depending on any backend; each backend crate
//! re-exports its struct as `Meta` (`nethuns_pcap::Meta` is [`PcapMeta`]).

/// A `struct timeval` (seconds, microseconds), as libpcap and netmap report time.
pub type TimeVal = libc::timeval;

/// Trait for packet metadata.
pub trait Metadata: Send {
    /// The metadata as the backend-independent enum.
    fn into_enum(self) -> MetadataType;
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

/// Metadata of the pcap backend (`nethuns_pcap::Meta`).
#[derive(Clone, Copy, Debug)]
pub struct PcapMeta {
    /// Packet arrival timestamp.
    pub timestamp: TimeVal,
    /// Original packet length (before truncation).
    pub len: u32,
    /// Captured length (≤ `len`; smaller when snaplen truncated the packet).
    pub caplen: u32,
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
}

/// Metadata of the AF_XDP backend (`nethuns_afxdp::Meta`). AF_XDP descriptors carry no
/// timestamp; the kernel offers none cheaply in copy mode.
#[derive(Clone, Copy, Debug)]
pub struct AfXdpMeta {
    /// Frame length.
    pub len: u32,
    /// The queue the socket is bound to.
    pub queue: u32,
    /// Descriptor options (`XDP_PKT_CONTD` …).
    pub options: u32,
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
    /// VLAN TCI, where the PMD stripped one.
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
    /// Whether the kernel stripped a VLAN tag into `vlan_tci`/`vlan_tpid`.
    pub vlan_valid: bool,
    /// RX hash computed by the kernel (0 if none).
    pub rxhash: u32,
    /// `tp_status` bits of the frame.
    pub status: u32,
}

macro_rules! into_enum {
    ($($ty:ident => $var:ident),*) => {$(
        impl Metadata for $ty {
            #[inline]
            fn into_enum(self) -> MetadataType {
                MetadataType::$var(self)
            }
        }
    )*};
}

into_enum!(PcapMeta => Pcap, NetmapMeta => Netmap, AfXdpMeta => AfXdp, DpdkMeta => Dpdk,
    AfPacketMeta => AfPacket);
