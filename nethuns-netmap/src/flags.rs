//! [`NetmapFlags`]: the configuration of a netmap socket.

/// Configuration of a netmap socket.
///
/// ```
/// use nethuns_netmap::NetmapFlags;
///
/// let flags = NetmapFlags { extra_buf: 4096 };
/// assert_eq!(NetmapFlags::default().extra_buf, 1024);
/// # let _ = flags;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetmapFlags {
    /// Number of extra buffers to request from netmap (`nr_extra_bufs`).
    ///
    /// Every received packet is handed out by swapping its buffer out of the RX slot for a free
    /// extra buffer, so this is the most packets the program can hold at once (as payloads or
    /// tokens); at that point `recv` returns `Error::NoMemory` and leaves the packet in the
    /// ring. Must be at least 1. netmap may grant fewer than asked
    /// ([`NetmapContext::extra_buffers`](crate::NetmapContext::extra_buffers) says how many).
    pub extra_buf: u32,
}

impl Default for NetmapFlags {
    fn default() -> Self {
        NetmapFlags { extra_buf: 1024 }
    }
}

impl nethuns_core::Flags for NetmapFlags {}

impl NetmapFlags {
    /// Checks the values `create` would refuse.
    pub fn validate(&self) -> nethuns_core::Result<()> {
        if self.extra_buf == 0 {
            return Err(nethuns_core::Error::flag(
                "extra_buf",
                "0: at least 1 extra buffer is needed, each received packet is swapped out \
                 of its RX slot for one",
            ));
        }
        Ok(())
    }
}
