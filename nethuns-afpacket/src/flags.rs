//! [`AfPacketFlags`] and their validation, which happens entirely before the kernel is asked
//! for anything: every refused value comes back as [`Error::InvalidFlag`] naming its field.

use nethuns_core::{Error, Result};

use crate::geometry::{Geometry, RxGeometry, TxGeometry, TPACKET3_HDRLEN, TPACKET_ALIGNMENT};

/// The largest block the ring accepts (256 MiB): larger ones are almost surely a typo.
pub const MAX_BLOCK_SIZE: u32 = 1 << 28;
/// The largest TX frame (1 MiB).
pub const MAX_FRAME_SIZE: u32 = 1 << 20;
/// The largest number of TX frames.
pub const MAX_TX_FRAMES: u32 = 1 << 20;
/// The largest block retire timeout in milliseconds.
pub const MAX_BLOCK_TIMEOUT_MS: u32 = 60_000;
/// The most instructions a classic BPF program may have (the kernel's `BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`
/// (`{ u16 code; u8 jt; u8 jf; u32 k; }`), as `tcpdump -dd` prints them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BpfInstruction {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Generic field (constant, offset).
    pub k: u32,
}

impl BpfInstruction {
    /// An instruction from its four fields (the order of `tcpdump -dd` output).
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        BpfInstruction { code, jt, jf, k }
    }
}

/// A socket filter: the kernel runs it on every packet before it reaches the ring, so frames it
/// refuses cost no ring space.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// A classic BPF program (e.g. from `tcpdump -dd EXPR`), attached as is.
    Classic(Vec<BpfInstruction>),
    /// A tcpdump expression (feature `pcap`), compiled with libpcap for the socket's
    /// interface so that it selects exactly what `tcpdump -i IF EXPR` selects.
    #[cfg(feature = "pcap")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pcap")))]
    Expression(String),
}

/// How a fanout group spreads packets over its member sockets (`PACKET_FANOUT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FanoutMode {
    /// By the kernel's flow hash (`PACKET_FANOUT_HASH`): one flow always reaches one member.
    /// Non-IP frames all share one hash, so they all reach the same member.
    Hash,
    /// Round robin (`PACKET_FANOUT_LB`).
    LoadBalance,
    /// By the CPU the packet arrived on (`PACKET_FANOUT_CPU`).
    Cpu,
    /// Fill one member until its ring is full, then the next (`PACKET_FANOUT_ROLLOVER`).
    Rollover,
    /// At random (`PACKET_FANOUT_RND`).
    Random,
    /// By the NIC RX queue the packet came from (`PACKET_FANOUT_QM`): with as many members as
    /// queues, member `i` (the `i`-th to join) gets queue `i`.
    QueueMapping,
}

impl FanoutMode {
    /// The kernel's `PACKET_FANOUT_*` value.
    pub fn raw(self) -> u32 {
        match self {
            FanoutMode::Hash => libc::PACKET_FANOUT_HASH,
            FanoutMode::LoadBalance => libc::PACKET_FANOUT_LB,
            FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
            FanoutMode::Rollover => libc::PACKET_FANOUT_ROLLOVER,
            FanoutMode::Random => libc::PACKET_FANOUT_RND,
            FanoutMode::QueueMapping => libc::PACKET_FANOUT_QM,
        }
    }
}

/// Membership of a fanout group: every socket (of this process or another) that joins group
/// `group` on the same interface with the same mode gets a share of the traffic, each packet
/// going to exactly one member. Open one socket per thread to spread capture over cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fanout {
    /// Group id (per network namespace).
    pub group: u16,
    /// How packets are spread.
    pub mode: FanoutMode,
    /// `PACKET_FANOUT_FLAG_ROLLOVER`: when the chosen member's ring is full, try the others.
    pub rollover: bool,
    /// `PACKET_FANOUT_FLAG_DEFRAG`: reassemble IP fragments before hashing.
    pub defrag: bool,
}

impl Fanout {
    /// Group `group` in mode `mode`, no extra flags.
    pub fn new(group: u16, mode: FanoutMode) -> Self {
        Fanout {
            group,
            mode,
            rollover: false,
            defrag: false,
        }
    }

    /// The `PACKET_FANOUT` socket option argument.
    pub fn raw_arg(&self) -> u32 {
        let mut type_flags = self.mode.raw();
        if self.rollover {
            type_flags |= libc::PACKET_FANOUT_FLAG_ROLLOVER;
        }
        if self.defrag {
            type_flags |= libc::PACKET_FANOUT_FLAG_DEFRAG;
        }
        (type_flags << 16) | self.group as u32
    }
}

/// Configuration of an AF_PACKET socket.
///
/// RX is a TPACKET_v3 ring of `block_count` blocks of `block_size` bytes; the kernel packs
/// packets of any size into the current block and hands the block over when it is full or
/// `block_timeout_ms` passed. TX is a ring of `tx_frame_count` frames of `frame_size` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketFlags {
    /// Size of an RX block in bytes: a multiple of the page size. A block goes back to the
    /// kernel only when every packet in it was released, so smaller blocks pin less memory
    /// per held packet. The largest packet captured whole is about `block_size - 128`.
    pub block_size: u32,
    /// Number of RX blocks (≥ 1; 2 or more to keep receiving while one block is read).
    pub block_count: u32,
    /// Frame size in bytes: a multiple of 16 (`TPACKET_ALIGNMENT`), at least 80, at most
    /// `block_size`. For TX it is the slot size (largest frame sent = `frame_size - 48`);
    /// for RX it is the kernel's accounting unit (TPACKET_v3 packs packets tightly).
    pub frame_size: u32,
    /// Milliseconds after which the kernel hands over a block that is not full (0: the
    /// kernel derives one from the link speed). Bounds latency at low packet rates.
    pub block_timeout_ms: u32,
    /// Number of TX frames (0: no TX ring; `send` then fails with `Unsupported`).
    pub tx_frame_count: u32,
    /// Put the interface in promiscuous mode while the socket lives.
    pub promiscuous: bool,
    /// `PACKET_QDISC_BYPASS`: transmit straight to the driver, skipping the qdisc layer
    /// (faster, but no traffic shaping and no local taps see the frames).
    pub qdisc_bypass: bool,
    /// `PACKET_IGNORE_OUTGOING`: do not capture frames this host transmits on the interface.
    pub ignore_outgoing: bool,
    /// Join a fanout group (see [`Fanout`]; required when `queue` is `Some`).
    pub fanout: Option<Fanout>,
    /// Socket filter run by the kernel before the ring.
    pub filter: Option<Filter>,
    /// Leave received frames as the kernel stores them: the outer VLAN tag taken out of the
    /// payload and reported only in [`Meta`](crate::Meta) (`vlan_tci`, `vlan_tpid`,
    /// `vlan_valid`). By default (`false`) the tag is put back, so that the payload is the
    /// frame as on the wire (as libpcap does, and as every other nethuns backend delivers).
    pub strip_vlan: bool,
}

impl Default for AfPacketFlags {
    /// 32 blocks of 256 KiB (8 MiB of RX ring), 2048-byte frames, 2 ms block timeout, 1024 TX
    /// frames, promiscuous, no qdisc bypass, no fanout, no filter, VLAN tags in the payload.
    fn default() -> Self {
        AfPacketFlags {
            block_size: 1 << 18,
            block_count: 32,
            frame_size: 2048,
            block_timeout_ms: 2,
            tx_frame_count: 1024,
            promiscuous: true,
            qdisc_bypass: false,
            ignore_outgoing: false,
            fanout: None,
            filter: None,
            strip_vlan: false,
        }
    }
}

impl nethuns_core::Flags for AfPacketFlags {}

/// The system page size.
pub fn page_size() -> usize {
    nethuns_sys_linux::map::page_size()
}

impl AfPacketFlags {
    /// Checks every field and computes the ring layout, with the system page size.
    pub fn validate(&self) -> Result<Geometry> {
        self.validate_with_page_size(page_size())
    }

    /// Checks every field and computes the ring layout for pages of `page` bytes.
    pub fn validate_with_page_size(&self, page: usize) -> Result<Geometry> {
        let page = page as u64;
        let bs = self.block_size as u64;
        if bs == 0 || bs % page != 0 {
            return Err(Error::flag(
                "block_size",
                format!("{bs} is not a positive multiple of the page size ({page})"),
            ));
        }
        if bs > MAX_BLOCK_SIZE as u64 {
            return Err(Error::flag(
                "block_size",
                format!("{bs} is larger than {MAX_BLOCK_SIZE}"),
            ));
        }
        if self.block_count == 0 {
            return Err(Error::flag("block_count", "must be at least 1"));
        }
        if bs * self.block_count as u64 > u32::MAX as u64 {
            return Err(Error::flag(
                "block_count",
                format!(
                    "{} blocks of {bs} bytes exceed the kernel's 4 GiB ring limit",
                    self.block_count
                ),
            ));
        }
        let fs = self.frame_size as u64;
        let min_frame = TPACKET3_HDRLEN.next_multiple_of(TPACKET_ALIGNMENT) as u64;
        if fs % TPACKET_ALIGNMENT as u64 != 0 || fs < min_frame {
            return Err(Error::flag(
                "frame_size",
                format!("{fs} must be a multiple of {TPACKET_ALIGNMENT} and at least {min_frame}"),
            ));
        }
        if fs > MAX_FRAME_SIZE as u64 {
            return Err(Error::flag(
                "frame_size",
                format!("{fs} is larger than {MAX_FRAME_SIZE}"),
            ));
        }
        if fs > bs {
            return Err(Error::flag(
                "frame_size",
                format!("{fs} is larger than block_size ({bs}): a block must hold one frame"),
            ));
        }
        if self.block_timeout_ms > MAX_BLOCK_TIMEOUT_MS {
            return Err(Error::flag(
                "block_timeout_ms",
                format!(
                    "{} ms is longer than {MAX_BLOCK_TIMEOUT_MS} ms",
                    self.block_timeout_ms
                ),
            ));
        }
        if self.tx_frame_count > MAX_TX_FRAMES {
            return Err(Error::flag(
                "tx_frame_count",
                format!("{} is more than {MAX_TX_FRAMES}", self.tx_frame_count),
            ));
        }
        let rx = RxGeometry {
            block_size: self.block_size,
            block_count: self.block_count,
            frame_size: self.frame_size,
        };
        let tx = (self.tx_frame_count > 0)
            .then(|| TxGeometry::new(self.frame_size, self.tx_frame_count, page as u32));
        // The kernel refuses a ring of more than 4 GiB (tp_block_size × tp_block_nr must fit
        // in 32 bits), and commits every page of a ring at setsockopt: the TX ring gets the
        // same bound as the RX ring, checked here with the total in the message.
        if let Some(t) = tx {
            let bytes = t.block_size as u64 * t.block_count as u64;
            if bytes > u32::MAX as u64 {
                return Err(Error::flag(
                    "tx_frame_count",
                    format!(
                        "{} frames of {fs} bytes make a TX ring of {bytes} bytes ({} blocks of \
                         {}): more than the kernel's 4 GiB ring limit",
                        self.tx_frame_count, t.block_count, t.block_size
                    ),
                ));
            }
        }
        let filter = match &self.filter {
            None => None,
            Some(f) => Some(compile_filter(f)?),
        };
        Ok(Geometry { rx, tx, filter })
    }
}

/// The classic BPF program of `filter`, checked for length (and compiled, for expressions).
pub fn compile_filter(filter: &Filter) -> Result<Vec<BpfInstruction>> {
    let prog = match filter {
        Filter::Classic(p) => p.clone(),
        #[cfg(feature = "pcap")]
        Filter::Expression(e) => compile_expression(e)?,
    };
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return Err(Error::flag(
            "filter",
            format!(
                "a classic BPF program has 1 to {BPF_MAXINSNS} instructions, not {}",
                prog.len()
            ),
        ));
    }
    Ok(prog)
}

/// Compiles a tcpdump expression with libpcap for a dead Ethernet handle: the program that
/// `tcpdump -r` would run on a savefile of wire frames (a `vlan` test reads the tag from the
/// frame). This checks the expression; [`Socket::create`](nethuns_core::Socket::create)
/// compiles it again for the live interface with [`compile_expression_for`], because the
/// kernel has taken the outer VLAN tag out of the frame before a socket filter runs.
#[cfg(feature = "pcap")]
#[cfg_attr(docsrs, doc(cfg(feature = "pcap")))]
pub fn compile_expression(expr: &str) -> Result<Vec<BpfInstruction>> {
    if expr.trim().is_empty() {
        return Err(Error::flag("filter", "empty filter expression"));
    }
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)
        .map_err(|e| Error::engine("pcap", "opening a dead capture to compile a filter", e))?;
    let prog = dead
        .compile(expr, true)
        .map_err(|e| Error::flag("filter", format!("cannot compile {expr:?}: {e}")))?;
    instructions(&prog)
}

/// The snapshot length tcpdump uses (libpcap's `MAXIMUM_SNAPLEN`): the value a matching
/// filter returns.
#[cfg(feature = "pcap")]
const PCAP_SNAPLEN: i32 = 262_144;

/// Compiles a tcpdump expression exactly as `tcpdump -i ifname EXPR` does on Linux: with a
/// live libpcap handle on the interface (opened, never read, closed at once), for which libpcap
/// tests VLAN tags with the kernel's ancillary loads (`vlan_tci`, `vlan_avail`) where the
/// kernel took the outer tag out of the frame. A dead handle's program would look for the tag
/// in the frame and so never match a tagged frame on a live socket. Call it in the network
/// namespace of the interface; needs `CAP_NET_RAW`.
#[cfg(feature = "pcap")]
#[cfg_attr(docsrs, doc(cfg(feature = "pcap")))]
pub fn compile_expression_for(expr: &str, ifname: &str) -> Result<Vec<BpfInstruction>> {
    if expr.trim().is_empty() {
        return Err(Error::flag("filter", "empty filter expression"));
    }
    let what = || format!("opening {ifname} with libpcap to compile the filter {expr:?}");
    let live = pcap::Capture::from_device(ifname)
        .map_err(|e| Error::engine("pcap", what(), e))?
        .snaplen(PCAP_SNAPLEN)
        .promisc(false)
        .buffer_size(1 << 16)
        .open()
        .map_err(|e| Error::engine("pcap", what(), e))?;
    let prog = live.compile(expr, true).map_err(|e| {
        Error::flag(
            "filter",
            format!("cannot compile {expr:?} for {ifname}: {e}"),
        )
    })?;
    instructions(&prog)
}

/// The instructions of a libpcap program.
#[cfg(feature = "pcap")]
fn instructions(prog: &pcap::BpfProgram) -> Result<Vec<BpfInstruction>> {
    prog.get_instructions()
        .iter()
        .map(|insn| {
            // The pcap crate exposes an instruction's fields only through Display
            // ("code jt jf k"), which is stable and safe to parse.
            let text = insn.to_string();
            let mut it = text.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next(), it.next(), it.next()) {
                (Some(Ok(code)), Some(Ok(jt)), Some(Ok(jf)), Some(Ok(k))) => Ok(
                    BpfInstruction::new(code as u16, jt as u8, jf as u8, k as u32),
                ),
                _ => Err(Error::flag(
                    "filter",
                    format!("unexpected instruction {text:?} from libpcap"),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<Geometry>) -> &'static str {
        match r {
            Err(Error::InvalidFlag { field, .. }) => field,
            other => panic!("expected InvalidFlag, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        let g = AfPacketFlags::default()
            .validate_with_page_size(4096)
            .unwrap();
        assert_eq!(g.rx.block_count, 32);
        assert_eq!(g.rx.frames_per_block(), (1 << 18) / 2048);
        assert_eq!(g.tx.unwrap().frame_count, 1024);
        assert!(g.filter.is_none());
    }

    #[test]
    fn each_bad_field_is_named() {
        let d = AfPacketFlags::default;
        let v = |f: AfPacketFlags| f.validate_with_page_size(4096);
        assert_eq!(
            field(v(AfPacketFlags {
                block_size: 0,
                ..d()
            })),
            "block_size"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                block_size: 5000,
                ..d()
            })),
            "block_size"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                block_size: 1 << 29,
                ..d()
            })),
            "block_size"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                block_count: 0,
                ..d()
            })),
            "block_count"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                block_size: 1 << 28,
                block_count: 16,
                ..d()
            })),
            "block_count"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                frame_size: 2024,
                ..d()
            })),
            "frame_size"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                frame_size: 64,
                ..d()
            })),
            "frame_size"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                frame_size: 0,
                ..d()
            })),
            "frame_size"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                block_size: 4096,
                frame_size: 8192,
                ..d()
            })),
            "frame_size"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                block_timeout_ms: 100_000,
                ..d()
            })),
            "block_timeout_ms"
        );
        assert_eq!(
            field(v(AfPacketFlags {
                tx_frame_count: u32::MAX,
                ..d()
            })),
            "tx_frame_count"
        );
        // 2^20 frames of 1 MiB: a 1 TiB TX ring, refused with its size.
        match v(AfPacketFlags {
            block_size: MAX_FRAME_SIZE,
            frame_size: MAX_FRAME_SIZE,
            tx_frame_count: MAX_TX_FRAMES,
            ..d()
        }) {
            Err(Error::InvalidFlag {
                field: "tx_frame_count",
                reason,
            }) => assert!(reason.contains("1099511627776 bytes"), "{reason}"),
            other => panic!("expected the TX ring refused, got {other:?}"),
        }
        // 4095 frames of 1 MiB fit (the kernel takes up to 4 GiB − 1 byte).
        assert!(v(AfPacketFlags {
            block_size: MAX_FRAME_SIZE,
            frame_size: MAX_FRAME_SIZE,
            tx_frame_count: 4095,
            ..d()
        })
        .is_ok());
        assert_eq!(
            field(v(AfPacketFlags {
                filter: Some(Filter::Classic(vec![])),
                ..d()
            })),
            "filter"
        );
        let huge = vec![BpfInstruction::new(6, 0, 0, 0); BPF_MAXINSNS + 1];
        assert_eq!(
            field(v(AfPacketFlags {
                filter: Some(Filter::Classic(huge)),
                ..d()
            })),
            "filter"
        );
    }

    #[test]
    fn page_size_matters() {
        let f = AfPacketFlags {
            block_size: 8192,
            frame_size: 4096,
            ..Default::default()
        };
        assert!(f.validate_with_page_size(4096).is_ok());
        assert_eq!(field(f.validate_with_page_size(16384)), "block_size");
    }

    #[test]
    fn smallest_frame_is_80() {
        let ok = AfPacketFlags {
            frame_size: 80,
            ..Default::default()
        };
        assert!(ok.validate_with_page_size(4096).is_ok());
        let bad = AfPacketFlags {
            frame_size: 64,
            ..Default::default()
        };
        assert_eq!(field(bad.validate_with_page_size(4096)), "frame_size");
    }

    #[test]
    fn no_tx_ring() {
        let g = AfPacketFlags {
            tx_frame_count: 0,
            ..Default::default()
        }
        .validate_with_page_size(4096)
        .unwrap();
        assert!(g.tx.is_none());
    }

    #[test]
    fn fanout_arg() {
        let f = Fanout {
            group: 0x1234,
            mode: FanoutMode::LoadBalance,
            rollover: true,
            defrag: true,
        };
        assert_eq!(
            f.raw_arg(),
            0x1234 | (1 << 16) | (0x1000 << 16) | (0x8000 << 16)
        );
        assert_eq!(Fanout::new(7, FanoutMode::Hash).raw_arg(), 7);
        assert_eq!(
            Fanout::new(7, FanoutMode::QueueMapping).raw_arg(),
            7 | (5 << 16)
        );
    }

    #[test]
    fn bpf_instruction_matches_sock_filter() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(size_of::<BpfInstruction>(), size_of::<libc::sock_filter>());
        assert_eq!(
            align_of::<BpfInstruction>(),
            align_of::<libc::sock_filter>()
        );
        assert_eq!(
            offset_of!(BpfInstruction, code),
            offset_of!(libc::sock_filter, code)
        );
        assert_eq!(
            offset_of!(BpfInstruction, jt),
            offset_of!(libc::sock_filter, jt)
        );
        assert_eq!(
            offset_of!(BpfInstruction, jf),
            offset_of!(libc::sock_filter, jf)
        );
        assert_eq!(
            offset_of!(BpfInstruction, k),
            offset_of!(libc::sock_filter, k)
        );
    }

    #[cfg(feature = "pcap")]
    #[test]
    fn expression_compiles_like_tcpdump() {
        let p = compile_expression("ether proto 0x88b5").unwrap();
        // tcpdump -dd 'ether proto 0x88b5'
        assert_eq!(
            p,
            vec![
                BpfInstruction::new(0x28, 0, 0, 12),
                BpfInstruction::new(0x15, 0, 1, 0x88b5),
                BpfInstruction::new(0x06, 0, 0, 65535),
                BpfInstruction::new(0x06, 0, 0, 0),
            ]
        );
        let bad = AfPacketFlags {
            filter: Some(Filter::Expression("not a filter (".into())),
            ..Default::default()
        };
        assert_eq!(field(bad.validate_with_page_size(4096)), "filter");
    }
}
