//! [`PcapFlags`]: the configuration of a pcap socket.

use nethuns_core::{Error, Flags, Result};

/// Configuration of a [`Sock`](crate::Sock), exactly the spec's fields.
#[derive(Clone, Debug)]
pub struct PcapFlags {
    /// Maximum number of bytes to capture per packet. The capture is also limited to
    /// `buffer_size`, the size of the buffer a packet is copied into.
    pub snaplen: i32,

    /// Enable promiscuous mode.
    pub promiscuous: bool,

    /// Read timeout in milliseconds (libpcap's buffer timeout; `recv` itself never blocks).
    pub timeout_ms: i32,

    /// Enable immediate delivery mode (deliver each packet as it arrives, no buffering).
    pub immediate: bool,

    /// BPF filter expression (tcpdump syntax).
    pub filter: Option<String>,

    /// Size of each buffer in the pool: the largest packet `recv` can hold (longer ones are
    /// truncated, with `caplen < len`) and `send` accepts (longer ones are
    /// [`Error::TooBigPacket`]).
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
        if self.snaplen <= 0 {
            return Err(Error::flag(
                "snaplen",
                format!("{}: must be positive", self.snaplen),
            ));
        }
        if self.timeout_ms < 0 {
            return Err(Error::flag(
                "timeout_ms",
                format!("{}: must not be negative", self.timeout_ms),
            ));
        }
        // libpcap captures at most 256 KiB of a packet (MAXIMUM_SNAPLEN); the transmit queue
        // holds TX_BATCH buffers of this size.
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

    /// The snaplen given to libpcap: `snaplen`, at most `buffer_size`.
    pub(crate) fn effective_snaplen(&self) -> i32 {
        self.snaplen
            .min(self.buffer_size.min(i32::MAX as usize) as i32)
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
        assert_eq!(PcapFlags::default().effective_snaplen(), 2048);
    }

    #[test]
    fn each_bad_field_is_named() {
        let d = PcapFlags::default;
        assert_eq!(field(PcapFlags { snaplen: 0, ..d() }), "snaplen");
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
