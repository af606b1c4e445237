//! `--backend` and every field of each backend's flags as command-line options, with the
//! flags' own defaults; [`Engine`] opens a socket of one backend for one role.
//!
//! How each backend keeps a receiver from seeing the frames its own process sends (what a
//! forwarder needs, [`Role::inbound_only`]):
//! - pcap: `pcap_setdirection(PCAP_D_IN)` on the live handle (`--pcap-direction in`);
//! - AF_PACKET: `PACKET_IGNORE_OUTGOING` (`--afp-ignore-outgoing`);
//! - AF_XDP, DPDK and netmap: by construction, their receive path sees only frames arriving
//!   from the wire (the XDP hook, the NIC's RX queue, the hardware ring).

// Flags are built with `..Default::default()` even where every field is set today, so that a
// field a backend adds later takes its default instead of breaking the build.
#![allow(clippy::needless_update)]

use clap::{Args, ValueEnum};
use nethuns::api::Socket;
use nethuns::errors::Error;

use crate::exit::ToolError;

mod table;

pub use table::Backend;

impl Backend {
    /// Whether this binary was built with it.
    pub fn compiled(self) -> bool {
        match self {
            Backend::Pcap => cfg!(feature = "pcap"),
            Backend::AfPacket => cfg!(feature = "af-packet"),
            Backend::AfXdp => cfg!(feature = "af-xdp"),
            Backend::Dpdk => cfg!(feature = "dpdk"),
            Backend::Netmap => cfg!(feature = "netmap"),
        }
    }

    /// The names of the backends compiled in.
    pub fn compiled_names() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|b| b.compiled())
            .map(|b| b.name())
            .collect()
    }

    /// [`ToolError::NotCompiled`] for this backend.
    pub fn not_compiled(self) -> ToolError {
        ToolError::NotCompiled {
            backend: self.name(),
            feature: self.feature(),
        }
    }
}

/// pcap capture direction (`pcap_setdirection`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcapDirection {
    /// Frames received and sent (libpcap's default).
    Inout,
    /// Only frames received.
    In,
    /// Only frames sent.
    Out,
}

/// Timestamp precision of a live pcap capture.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds (falls back to microseconds where libpcap cannot).
    Nano,
    /// Microseconds.
    Micro,
}

/// AF_PACKET fanout mode (`PACKET_FANOUT_*`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutMode {
    /// By flow hash.
    Hash,
    /// Round robin.
    Lb,
    /// By CPU.
    Cpu,
    /// Fill one member, then the next.
    Rollover,
    /// At random.
    Random,
    /// By NIC RX queue (member i gets queue i).
    Qm,
}

/// Every field of every backend's flags, as options. Defaults are the flags' own
/// (`Default::default()`); a test checks that they agree.
#[derive(Args, Clone, Debug)]
pub struct BackendOpts {
    /// tcpdump filter expression (pcap, af-packet; AF_XDP and DPDK take none).
    #[arg(long, short = 'f', help_heading = "Backend flags")]
    pub filter: Option<String>,

    /// pcap: largest number of bytes captured per packet (PcapFlags::snaplen).
    #[arg(long, default_value_t = 65535, help_heading = "pcap flags")]
    pub pcap_snaplen: i32,
    /// pcap: promiscuous mode (PcapFlags::promiscuous).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, help_heading = "pcap flags")]
    pub pcap_promiscuous: bool,
    /// pcap: libpcap's buffer timeout in ms (PcapFlags::timeout_ms).
    #[arg(long, default_value_t = 1, help_heading = "pcap flags")]
    pub pcap_timeout_ms: i32,
    /// pcap: immediate delivery (PcapFlags::immediate).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, help_heading = "pcap flags")]
    pub pcap_immediate: bool,
    /// pcap: size of each pool buffer, the largest packet held (PcapFlags::buffer_size).
    #[arg(long, default_value_t = 2048, help_heading = "pcap flags")]
    pub pcap_buffer_size: usize,
    /// pcap: buffers in the pool, packets held at once (PcapFlags::buffer_count; the flags'
    /// default is 32, the tools take 1024 to absorb bursts).
    #[arg(long, default_value_t = 1024, help_heading = "pcap flags")]
    pub pcap_buffer_count: usize,
    /// pcap: libpcap's kernel capture buffer in bytes (PcapOptions::kernel_buffer_bytes; 0:
    /// libpcap's 2 MiB). The tools take 32 MiB: in immediate mode libpcap's ring has one
    /// snaplen-sized slot per frame, so 2 MiB holds only ~30 frames at snaplen 65535.
    #[arg(long, default_value_t = 32 << 20, help_heading = "pcap flags")]
    pub pcap_kernel_buffer_bytes: u32,
    /// pcap: timestamp precision asked of a live capture (PcapOptions::precision).
    #[arg(long, value_enum, default_value = "nano", help_heading = "pcap flags")]
    pub pcap_precision: Precision,
    /// pcap: capture direction (default: inout; `in` for nethuns-forward).
    #[arg(long, value_enum, help_heading = "pcap flags")]
    pub pcap_direction: Option<PcapDirection>,

    /// af-packet: RX block size in bytes (AfPacketFlags::block_size).
    #[arg(long, default_value_t = 1 << 18, help_heading = "af-packet flags")]
    pub afp_block_size: u32,
    /// af-packet: RX blocks (AfPacketFlags::block_count).
    #[arg(long, default_value_t = 32, help_heading = "af-packet flags")]
    pub afp_block_count: u32,
    /// af-packet: frame size (AfPacketFlags::frame_size).
    #[arg(long, default_value_t = 2048, help_heading = "af-packet flags")]
    pub afp_frame_size: u32,
    /// af-packet: block retire timeout in ms (AfPacketFlags::block_timeout_ms).
    #[arg(long, default_value_t = 2, help_heading = "af-packet flags")]
    pub afp_block_timeout_ms: u32,
    /// af-packet: TX frames (AfPacketFlags::tx_frame_count).
    #[arg(long, default_value_t = 1024, help_heading = "af-packet flags")]
    pub afp_tx_frame_count: u32,
    /// af-packet: promiscuous mode (AfPacketFlags::promiscuous).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, help_heading = "af-packet flags")]
    pub afp_promiscuous: bool,
    /// af-packet: PACKET_QDISC_BYPASS (AfPacketFlags::qdisc_bypass).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, help_heading = "af-packet flags")]
    pub afp_qdisc_bypass: bool,
    /// af-packet: PACKET_IGNORE_OUTGOING (AfPacketFlags::ignore_outgoing; always on for
    /// nethuns-forward).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, help_heading = "af-packet flags")]
    pub afp_ignore_outgoing: bool,
    /// af-packet: fanout group id (AfPacketFlags::fanout; default with several queues: one
    /// group per process in mode qm).
    #[arg(long, help_heading = "af-packet flags")]
    pub afp_fanout_group: Option<u16>,
    /// af-packet: fanout mode.
    #[arg(
        long,
        value_enum,
        default_value = "qm",
        help_heading = "af-packet flags"
    )]
    pub afp_fanout_mode: FanoutMode,
    /// af-packet: PACKET_FANOUT_FLAG_ROLLOVER.
    #[arg(long, help_heading = "af-packet flags")]
    pub afp_fanout_rollover: bool,
    /// af-packet: PACKET_FANOUT_FLAG_DEFRAG.
    #[arg(long, help_heading = "af-packet flags")]
    pub afp_fanout_defrag: bool,
    /// af-packet: leave VLAN tags out of the payload (AfPacketFlags::strip_vlan).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, help_heading = "af-packet flags")]
    pub afp_strip_vlan: bool,

    /// af-xdp: bind flags (AfXdpFlags::bind_flags): `copy`, `zerocopy`, `auto` (0) or a number.
    #[arg(long, default_value = "auto", value_parser = parse_bind, help_heading = "af-xdp flags")]
    pub xdp_bind_flags: u16,
    /// af-xdp: XDP flags (AfXdpFlags::xdp_flags): `skb`, `drv`, `auto` (0) or a number.
    #[arg(long, default_value = "skb", value_parser = parse_xdp_mode, help_heading = "af-xdp flags")]
    pub xdp_flags: u32,
    /// af-xdp: UMEM frames (AfXdpFlags::num_frames).
    #[arg(long, default_value_t = 8192, help_heading = "af-xdp flags")]
    pub xdp_num_frames: u32,
    /// af-xdp: UMEM frame size (AfXdpFlags::frame_size).
    #[arg(long, default_value_t = 2048, help_heading = "af-xdp flags")]
    pub xdp_frame_size: u32,
    /// af-xdp: TX ring size (AfXdpFlags::tx_size).
    #[arg(long, default_value_t = 1024, help_heading = "af-xdp flags")]
    pub xdp_tx_size: u32,
    /// af-xdp: RX ring size (AfXdpFlags::rx_size).
    #[arg(long, default_value_t = 4096, help_heading = "af-xdp flags")]
    pub xdp_rx_size: u32,

    /// dpdk: mbufs in the mempool (DpdkFlags::num_mbufs).
    #[arg(long, default_value_t = 8191, help_heading = "dpdk flags")]
    pub dpdk_num_mbufs: u32,
    /// dpdk: per-core mbuf cache (DpdkFlags::mbuf_cache_size).
    #[arg(long, default_value_t = 250, help_heading = "dpdk flags")]
    pub dpdk_mbuf_cache_size: u32,
    /// dpdk: mbuf data room, headroom included (DpdkFlags::mbuf_default_buf_size).
    #[arg(long, default_value_t = 2176, help_heading = "dpdk flags")]
    pub dpdk_mbuf_default_buf_size: u16,
    /// dpdk: EAL arguments, whitespace-separated (default: NETHUNS_DPDK_EAL_ARGS, else
    /// --no-huge --no-pci …).
    #[arg(long, allow_hyphen_values = true, help_heading = "dpdk flags")]
    pub dpdk_eal_args: Option<String>,

    /// netmap: extra buffers, packets held at once (NetmapFlags::extra_buf).
    #[arg(long, default_value_t = 1024, help_heading = "netmap flags")]
    pub netmap_extra_buf: u32,
}

fn parse_bind(s: &str) -> Result<u16, String> {
    match s {
        "auto" => Ok(0),
        "copy" => Ok(1 << 1),
        "zerocopy" => Ok(1 << 2),
        n => parse_num(n)
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| format!("{s:?}: expected copy, zerocopy, auto or a number")),
    }
}

fn parse_xdp_mode(s: &str) -> Result<u32, String> {
    match s {
        "auto" => Ok(0),
        "skb" => Ok(1 << 1),
        "drv" | "native" => Ok(1 << 2),
        n => parse_num(n)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("{s:?}: expected skb, drv, auto or a number")),
    }
}

fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// What a socket is for; backends adapt their flags to it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Role {
    /// Must not see frames this host sends (a forwarder's receive side).
    pub inbound_only: bool,
    /// Only sends: receive as little as possible.
    pub tx_only: bool,
    /// Index of this socket among the tool's queues, and how many there are.
    pub member: usize,
    /// How many queues the tool opens on this interface.
    pub members: usize,
}

/// A backend as the tools use it: flags from the options, a socket opened for a role.
pub trait Engine: Socket + 'static {
    /// Opens a socket on `portspec` (queue `queue`) for `role`, with flags from `opts`.
    fn open(
        portspec: &str,
        queue: Option<usize>,
        opts: &BackendOpts,
        role: Role,
    ) -> Result<Self, ToolError>;

    /// The kernel interface behind `portspec`, if it names one (to tell "down" from "gone").
    fn interface(portspec: &str) -> Option<String>;
}

fn create<S: Socket>(
    portspec: &str,
    queue: Option<usize>,
    flags: S::Flags,
) -> Result<S, ToolError> {
    let what = match queue {
        Some(q) => format!("opening {portspec} queue {q}"),
        None => format!("opening {portspec}"),
    };
    S::create(portspec, queue, flags).map_err(|e| ToolError::from_create(&what, e))
}

#[cfg_attr(
    not(any(feature = "af-xdp", feature = "dpdk", feature = "netmap")),
    allow(dead_code)
)]
fn no_filter(opts: &BackendOpts, backend: &str) -> Result<(), ToolError> {
    match &opts.filter {
        Some(f) => Err(ToolError::Config(format!(
            "--filter {f:?}: the {backend} backend takes no filter expressions (use pcap or \
             af-packet)"
        ))),
        None => Ok(()),
    }
}

#[cfg(feature = "pcap")]
impl Engine for nethuns::pcap::Sock {
    fn open(
        portspec: &str,
        queue: Option<usize>,
        opts: &BackendOpts,
        role: Role,
    ) -> Result<Self, ToolError> {
        let flags = nethuns::pcap::PcapFlags {
            snaplen: opts.pcap_snaplen,
            promiscuous: opts.pcap_promiscuous,
            timeout_ms: opts.pcap_timeout_ms,
            immediate: opts.pcap_immediate,
            filter: opts.filter.clone(),
            buffer_size: opts.pcap_buffer_size,
            buffer_count: opts.pcap_buffer_count,
        };
        let options = nethuns::pcap::PcapOptions {
            kernel_buffer_bytes: (opts.pcap_kernel_buffer_bytes > 0)
                .then_some(opts.pcap_kernel_buffer_bytes),
            precision: match opts.pcap_precision {
                Precision::Nano => nethuns::pcap::metadata::TsPrecision::Nano,
                Precision::Micro => nethuns::pcap::metadata::TsPrecision::Micro,
            },
            ..Default::default()
        };
        let what = match queue {
            Some(q) => format!("opening {portspec} queue {q}"),
            None => format!("opening {portspec}"),
        };
        let s = Self::create_with_options(portspec, queue, flags, options)
            .map_err(|e| ToolError::from_create(&what, e))?;
        let live = !portspec.starts_with(nethuns::pcap::FILE_PREFIX);
        let dir = match (opts.pcap_direction, role.inbound_only, role.tx_only) {
            (Some(d), _, _) => Some(d),
            (None, true, _) | (None, _, true) => Some(PcapDirection::In),
            _ => None,
        };
        if let (Some(d), true) = (dir, live) {
            use nethuns::pcap::pcap::Direction;
            let d = match d {
                PcapDirection::Inout => Direction::InOut,
                PcapDirection::In => Direction::In,
                PcapDirection::Out => Direction::Out,
            };
            s.set_direction(d).map_err(|e| {
                ToolError::from_create(&format!("setting direction on {portspec}"), e)
            })?;
        }
        Ok(s)
    }

    fn interface(portspec: &str) -> Option<String> {
        (!portspec.starts_with(nethuns::pcap::FILE_PREFIX)).then(|| portspec.to_string())
    }
}

#[cfg(feature = "af-packet")]
impl Engine for nethuns::af_packet::Sock {
    fn open(
        portspec: &str,
        queue: Option<usize>,
        opts: &BackendOpts,
        role: Role,
    ) -> Result<Self, ToolError> {
        use nethuns::af_packet::{BpfInstruction, Fanout, FanoutMode as M, Filter};
        let mode = match opts.afp_fanout_mode {
            FanoutMode::Hash => M::Hash,
            FanoutMode::Lb => M::LoadBalance,
            FanoutMode::Cpu => M::Cpu,
            FanoutMode::Rollover => M::Rollover,
            FanoutMode::Random => M::Random,
            FanoutMode::Qm => M::QueueMapping,
        };
        let group = opts
            .afp_fanout_group
            .or_else(|| queue.map(|_| (std::process::id() & 0xffff) as u16));
        let fanout = group.map(|g| Fanout {
            group: g,
            mode,
            rollover: opts.afp_fanout_rollover,
            defrag: opts.afp_fanout_defrag,
        });
        let filter = match (&opts.filter, role.tx_only) {
            (Some(f), false) => Some(Filter::Expression(f.clone())),
            // A send-only socket takes nothing into its ring: a filter that accepts nothing.
            (_, true) => Some(Filter::Classic(vec![BpfInstruction::new(0x06, 0, 0, 0)])),
            (None, false) => None,
        };
        let flags = nethuns::af_packet::AfPacketFlags {
            block_size: opts.afp_block_size,
            block_count: opts.afp_block_count,
            frame_size: opts.afp_frame_size,
            block_timeout_ms: opts.afp_block_timeout_ms,
            tx_frame_count: opts.afp_tx_frame_count,
            promiscuous: opts.afp_promiscuous,
            qdisc_bypass: opts.afp_qdisc_bypass,
            ignore_outgoing: opts.afp_ignore_outgoing || role.inbound_only,
            fanout,
            filter,
            strip_vlan: opts.afp_strip_vlan,
            ..Default::default()
        };
        // Fanout members are numbered by the kernel in join order: the tools open queue
        // sockets in order, so member i is the i-th queue of the list.
        let member = queue.map(|_| role.member);
        create(portspec, member, flags)
    }

    fn interface(portspec: &str) -> Option<String> {
        Some(
            portspec
                .strip_prefix("afpacket:")
                .unwrap_or(portspec)
                .to_string(),
        )
    }
}

#[cfg(feature = "af-xdp")]
impl Engine for nethuns::af_xdp::Sock {
    fn open(
        portspec: &str,
        queue: Option<usize>,
        opts: &BackendOpts,
        _role: Role,
    ) -> Result<Self, ToolError> {
        no_filter(opts, "af-xdp")?;
        let flags = nethuns::af_xdp::AfXdpFlags {
            bind_flags: opts.xdp_bind_flags,
            xdp_flags: opts.xdp_flags,
            num_frames: opts.xdp_num_frames,
            frame_size: opts.xdp_frame_size,
            tx_size: opts.xdp_tx_size,
            rx_size: opts.xdp_rx_size,
            ..Default::default()
        };
        create(portspec, queue, flags)
    }

    fn interface(portspec: &str) -> Option<String> {
        Some(portspec.to_string())
    }
}

#[cfg(feature = "dpdk")]
impl Engine for nethuns::dpdk::Sock {
    fn open(
        portspec: &str,
        queue: Option<usize>,
        opts: &BackendOpts,
        _role: Role,
    ) -> Result<Self, ToolError> {
        no_filter(opts, "dpdk")?;
        if let Some(a) = &opts.dpdk_eal_args {
            // Initialises the EAL once; the same arguments again are accepted.
            nethuns::dpdk::Eal::new()
                .args(a.split_whitespace())
                .init()
                .map_err(|e| ToolError::from_create("initialising the DPDK EAL", e))?;
        }
        let flags = nethuns::dpdk::DpdkFlags {
            num_mbufs: opts.dpdk_num_mbufs,
            mbuf_cache_size: opts.dpdk_mbuf_cache_size,
            mbuf_default_buf_size: opts.dpdk_mbuf_default_buf_size,
            ..Default::default()
        };
        create(portspec, queue, flags)
    }

    fn interface(portspec: &str) -> Option<String> {
        portspec
            .split(',')
            .find_map(|kv| kv.strip_prefix("iface="))
            .map(str::to_string)
    }
}

#[cfg(feature = "netmap")]
impl Engine for nethuns::netmap::Sock {
    fn open(
        portspec: &str,
        queue: Option<usize>,
        opts: &BackendOpts,
        _role: Role,
    ) -> Result<Self, ToolError> {
        no_filter(opts, "netmap")?;
        let flags = nethuns::netmap::NetmapFlags {
            extra_buf: opts.netmap_extra_buf,
            ..Default::default()
        };
        create(portspec, queue, flags)
    }

    fn interface(portspec: &str) -> Option<String> {
        let name = portspec.strip_prefix("netmap:")?;
        let end = name
            .find(['-', '^', '*', '@', '/', '{', '}'])
            .unwrap_or(name.len());
        Some(name[..end].to_string())
    }
}

/// Runs `$f::<Sock>($args…)` for backend `$backend`, the socket type of that backend;
/// evaluates to `Result<_, ToolError>` ([`ToolError::NotCompiled`] for a backend not
/// compiled in).
#[macro_export]
macro_rules! dispatch {
    ($backend:expr, $f:ident ( $($arg:expr),* )) => {{
        use $crate::backend::Backend;
        match $backend {
            #[cfg(feature = "pcap")]
            Backend::Pcap => $f::<nethuns::pcap::Sock>($($arg),*),
            #[cfg(feature = "af-packet")]
            Backend::AfPacket => $f::<nethuns::af_packet::Sock>($($arg),*),
            #[cfg(feature = "af-xdp")]
            Backend::AfXdp => $f::<nethuns::af_xdp::Sock>($($arg),*),
            #[cfg(feature = "dpdk")]
            Backend::Dpdk => $f::<nethuns::dpdk::Sock>($($arg),*),
            #[cfg(feature = "netmap")]
            Backend::Netmap => $f::<nethuns::netmap::Sock>($($arg),*),
            #[allow(unreachable_patterns)]
            other => Err(other.not_compiled()),
        }
    }};
}

/// Whether `e` means "wait and try again" for a receive.
pub fn is_empty(e: &Error) -> bool {
    matches!(e, Error::NoPacket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        o: BackendOpts,
    }

    /// Each option `$o.$opt` equals the field `$field` of the flags `$d`.
    #[allow(unused_macros)]
    macro_rules! same_defaults {
        ($o:ident, $d:expr; $($opt:ident = $field:ident),+ $(,)?) => {{
            let d = $d;
            $(assert_eq!($o.$opt, d.$field, stringify!($opt));)+
        }};
    }

    #[test]
    fn option_defaults_are_the_flags_defaults() {
        let o = T::parse_from(["t"]).o;
        #[cfg(feature = "pcap")]
        same_defaults!(o, nethuns::pcap::PcapFlags::default();
            pcap_snaplen = snaplen,
            pcap_promiscuous = promiscuous,
            pcap_timeout_ms = timeout_ms,
            pcap_immediate = immediate,
            pcap_buffer_size = buffer_size,
        );
        #[cfg(feature = "af-packet")]
        same_defaults!(o, nethuns::af_packet::AfPacketFlags::default();
            afp_block_size = block_size,
            afp_block_count = block_count,
            afp_frame_size = frame_size,
            afp_block_timeout_ms = block_timeout_ms,
            afp_tx_frame_count = tx_frame_count,
            afp_promiscuous = promiscuous,
            afp_qdisc_bypass = qdisc_bypass,
            afp_ignore_outgoing = ignore_outgoing,
            afp_strip_vlan = strip_vlan,
        );
        #[cfg(feature = "af-xdp")]
        same_defaults!(o, nethuns::af_xdp::AfXdpFlags::default();
            xdp_bind_flags = bind_flags,
            xdp_flags = xdp_flags,
            xdp_num_frames = num_frames,
            xdp_frame_size = frame_size,
            xdp_tx_size = tx_size,
            xdp_rx_size = rx_size,
        );
        #[cfg(feature = "dpdk")]
        same_defaults!(o, nethuns::dpdk::DpdkFlags::default();
            dpdk_num_mbufs = num_mbufs,
            dpdk_mbuf_cache_size = mbuf_cache_size,
            dpdk_mbuf_default_buf_size = mbuf_default_buf_size,
        );
        #[cfg(feature = "netmap")]
        same_defaults!(o, nethuns::netmap::NetmapFlags::default(); netmap_extra_buf = extra_buf);
        let _ = o;
    }
}
