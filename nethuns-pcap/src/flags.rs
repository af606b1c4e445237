//! [`PcapFlags`] (the spec's fields) and [`PcapOptions`] (libpcap settings beyond them).

use nethuns_core::metadata::TsPrecision;
use nethuns_core::{Error, Flags, Result};

use crate::format::MAX_SNAPLEN;

/// Configuration of a [`Sock`](crate::Sock), exactly the spec's fields.
#[derive(Clone, Debug)]
pub struct PcapFlags {
    /// Maximum number of bytes to capture per packet (libpcap's snaplen; at most 262144). The
    /// pool's buffers are made large enough for it (see `buffer_size`), so a frame of up to
    /// `snaplen` bytes is never cut by the pool; a longer one arrives with `caplen < len`.
    pub snaplen: i32,

    /// Enable promiscuous mode.
    pub promiscuous: bool,

    /// Read timeout in milliseconds (libpcap's buffer timeout; `recv` itself never blocks).
    pub timeout_ms: i32,

    /// Enable immediate delivery mode (deliver each packet as it arrives, no buffering).
    pub immediate: bool,

    /// BPF filter expression (tcpdump syntax).
    pub filter: Option<String>,

    /// Size of each buffer: the largest frame `send` accepts (longer ones are
    /// [`Error::TooBigPacket`]), and the smallest size of the receive pool's buffers. The
    /// receive pool follows `snaplen`: its buffers hold `max(buffer_size, snaplen)` bytes (for
    /// a savefile, `snaplen` at most the file's own snapshot length), so what libpcap captures
    /// is what `recv` delivers. This is not libpcap's kernel buffer
    /// ([`PcapOptions::kernel_buffer_bytes`]).
    pub buffer_size: usize,

    /// Number of buffers in the pool: how many received packets (payloads and tokens) can be
    /// held at once before `recv` returns [`Error::NoMemory`]. At most 2^24, and
    /// `buffer_count × buffer_size` at most 4 GiB. The pool's memory is reserved at create
    /// and committed page by page as packets are copied in.
    pub buffer_count: usize,
}

impl Default for PcapFlags {
    fn default() -> Self {
        Self {
            snaplen: 65535,
            promiscuous: true,
            timeout_ms: 1,
            immediate: true,
            filter: None,
            buffer_size: 2048,
            buffer_count: 32,
        }
    }
}

impl Flags for PcapFlags {}

impl PcapFlags {
    /// Checks every field before anything is opened.
    pub fn validate(&self) -> Result<()> {
        if self.snaplen <= 0 || self.snaplen as u32 > MAX_SNAPLEN {
            return Err(Error::flag(
                "snaplen",
                format!(
                    "{}: must be between 1 and {MAX_SNAPLEN} (libpcap's largest snaplen)",
                    self.snaplen
                ),
            ));
        }
        if self.timeout_ms < 0 {
            return Err(Error::flag(
                "timeout_ms",
                format!("{}: must not be negative", self.timeout_ms),
            ));
        }
        // libpcap captures at most 256 KiB of a packet (MAXIMUM_SNAPLEN); `send_with` builds
        // a frame in a scratch buffer of this size.
        if self.buffer_size < 14 || self.buffer_size > 262_144 {
            return Err(Error::flag(
                "buffer_size",
                format!(
                    "{}: must hold an Ethernet header (≥ 14) and be at most 262144 (libpcap's \
                     largest snaplen)",
                    self.buffer_size
                ),
            ));
        }
        if self.buffer_count == 0 || self.buffer_count > (1 << 24) {
            return Err(Error::flag(
                "buffer_count",
                format!("{}: must be between 1 and 2^24", self.buffer_count),
            ));
        }
        // The pool itself: at most 4 GiB in all (its memory is committed as packets arrive).
        nethuns_core::pool::check_size(self.buffer_count, self.buffer_size)?;
        if let Some(f) = &self.filter {
            if f.contains('\0') {
                return Err(Error::flag("filter", "contains a NUL byte"));
            }
        }
        Ok(())
    }

    /// The size of the receive pool's buffers for a source whose packets are at most
    /// `source_snaplen` bytes (the file's snapshot length; [`MAX_SNAPLEN`] for an interface):
    /// `max(buffer_size, min(snaplen, source_snaplen))`.
    pub(crate) fn rx_buffer_size(&self, source_snaplen: u32) -> usize {
        let capture = (self.snaplen as u32).min(source_snaplen.clamp(1, MAX_SNAPLEN));
        self.buffer_size.max(capture as usize)
    }
}

/// libpcap settings beyond the spec's [`PcapFlags`], given to
/// [`Sock::create_with_options`](crate::Sock::create_with_options) ([`Socket::create`
/// ](nethuns_core::Socket::create) uses [`PcapOptions::default`]).
///
/// ```no_run
/// use nethuns_pcap::{PcapFlags, PcapOptions, Sock};
/// use nethuns_pcap::metadata::TsPrecision;
///
/// let opts = PcapOptions { kernel_buffer_bytes: Some(8 << 20), precision: TsPrecision::Nano };
/// let sock = Sock::create_with_options("eth0", None, PcapFlags::default(), opts)?;
/// println!("stamped in {:?}", sock.ts_precision());
/// # Ok::<(), nethuns_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapOptions {
    /// The size of libpcap's kernel capture buffer (`pcap_set_buffer_size`: on Linux the
    /// TPACKET ring) in bytes; `None` means [`DEFAULT_KERNEL_BUFFER_BYTES`] (32 MiB), not
    /// libpcap's own 2 MiB: in immediate mode libpcap gives each frame a slot of `snaplen`
    /// bytes, so 2 MiB at the default `snaplen` of 65535 holds 32 frames and drops at a few
    /// tens of kpps. Not the pool's [`PcapFlags::buffer_size`].
    pub kernel_buffer_bytes: Option<u32>,
    /// The timestamp precision asked of a live capture (`pcap_set_tstamp_precision`). Where
    /// libpcap cannot stamp in nanoseconds the socket falls back to microseconds, and each
    /// packet's [`Meta::ts_precision`](crate::Meta) says which it got. A savefile is always
    /// read at its own precision.
    pub precision: TsPrecision,
}

/// The kernel capture buffer a live socket asks for when [`PcapOptions::kernel_buffer_bytes`]
/// is `None`: 32 MiB, 512 slots of the default `snaplen`.
pub const DEFAULT_KERNEL_BUFFER_BYTES: u32 = 32 << 20;

impl Default for PcapOptions {
    fn default() -> Self {
        PcapOptions {
            kernel_buffer_bytes: None,
            precision: TsPrecision::Nano,
        }
    }
}

impl PcapOptions {
    /// Checks every field before anything is opened.
    pub fn validate(&self) -> Result<()> {
        if let Some(b) = self.kernel_buffer_bytes {
            if b < 4096 || b > i32::MAX as u32 {
                return Err(Error::flag(
                    "kernel_buffer_bytes",
                    format!("{b}: must be between 4096 and 2^31 - 1 bytes"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(f: PcapFlags) -> &'static str {
        match f.validate() {
            Err(Error::InvalidFlag { field, .. }) => field,
            other => panic!("expected InvalidFlag, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        PcapFlags::default().validate().unwrap();
        PcapOptions::default().validate().unwrap();
        // The pool follows snaplen; a savefile's own snaplen bounds it.
        assert_eq!(PcapFlags::default().rx_buffer_size(MAX_SNAPLEN), 65535);
        assert_eq!(PcapFlags::default().rx_buffer_size(1500), 2048);
        let small = PcapFlags {
            snaplen: 96,
            ..PcapFlags::default()
        };
        assert_eq!(small.rx_buffer_size(MAX_SNAPLEN), 2048);
    }

    #[test]
    fn each_bad_field_is_named() {
        let d = PcapFlags::default;
        assert_eq!(field(PcapFlags { snaplen: 0, ..d() }), "snaplen");
        assert_eq!(
            field(PcapFlags {
                snaplen: 262_145,
                ..d()
            }),
            "snaplen"
        );
        match (PcapOptions {
            kernel_buffer_bytes: Some(1),
            ..PcapOptions::default()
        })
        .validate()
        {
            Err(Error::InvalidFlag { field, .. }) => assert_eq!(field, "kernel_buffer_bytes"),
            other => panic!("expected InvalidFlag, got {other:?}"),
        }
        assert_eq!(
            field(PcapFlags {
                timeout_ms: -1,
                ..d()
            }),
            "timeout_ms"
        );
        assert_eq!(
            field(PcapFlags {
                buffer_size: 4,
                ..d()
            }),
            "buffer_size"
        );
        assert_eq!(
            field(PcapFlags {
                buffer_count: 0,
                ..d()
            }),
            "buffer_count"
        );
        assert_eq!(
            field(PcapFlags {
                filter: Some("ip\0".into()),
                ..d()
            }),
            "filter"
        );
        // 2^24 buffers of 256 KiB would be 4 TiB: refused with the total.
        match (PcapFlags {
            buffer_count: 1 << 24,
            buffer_size: 262_144,
            ..d()
        })
        .validate()
        {
            Err(Error::InvalidFlag {
                field: "buffer_count",
                reason,
            }) => assert!(reason.contains("4398046511104 bytes"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
