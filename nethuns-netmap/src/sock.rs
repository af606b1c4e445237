//! [`Sock`]: a netmap port bound to one ring pair (or all of them) as a nethuns [`Socket`].

use std::time::Duration;

use nethuns_core::metadata::NetmapMeta;
use nethuns_core::{Capabilities, Result, Socket, Stats, Token};

use crate::context::NetmapContext;
use crate::dev::{self, DevPort};
use crate::engine::Engine;
use crate::flags::NetmapFlags;
use crate::portspec::{PortKind, PortSpec};

/// A netmap socket: the rings of one netmap port (interface or VALE port) in this process's
/// memory.
///
/// * `recv`/`recv_token` take the next packet from the bound RX rings, swapping its buffer for a
///   free extra buffer so the ring moves on at once; with every RX ring empty they issue one
///   `NIOCRXSYNC` and look again, then return `Error::NoPacket`.
/// * `send` copies into the next free TX slot (a `NIOCTXSYNC` first if every bound TX ring is
///   full; `Error::NoMemory` if still full); `flush` issues `NIOCTXSYNC` when slots are queued
///   or in flight, and nothing otherwise; `try_flush` reports a failed sync.
/// * `send` takes frames of 14 bytes ([`Error::TooSmallPacket`] under) up to
///   [`Capabilities::max_frame`] = `min(buffer size, MTU + 14)` ([`Error::TooBigPacket`] over;
///   4 bytes more for an 802.1Q-tagged frame). A VALE port has no MTU: the buffer size is the limit.
/// * `stats`: `received`, `sent` and `send_errors` (every `send` that returned an error) are
///   counted here; `dropped` is `None` (netmap's ABI has no drop counter: a frame that finds a
///   full RX ring is lost in the NIC or the kernel without a trace) and so is `filtered`.
/// * When the interface is deleted or leaves netmap mode, the next sync fails with `ENXIO`, and
///   `recv` returns [`Error::InterfaceDown`].
///
/// [`Error::TooSmallPacket`]: nethuns_core::Error::TooSmallPacket
/// [`Error::TooBigPacket`]: nethuns_core::Error::TooBigPacket
/// [`Error::InterfaceDown`]: nethuns_core::Error::InterfaceDown
///
/// The socket is `Send` but not `Sync`: one thread drives the rings. Payloads and tokens can be
/// released on any thread through the [`NetmapContext`].
pub struct Sock {
    engine: Engine<DevPort>,
    spec: PortSpec,
}

impl Sock {
    /// The parsed portspec the socket is bound to (with the queue applied).
    pub fn portspec(&self) -> &PortSpec {
        &self.spec
    }

    /// Number of RX rings bound.
    pub fn rx_rings(&self) -> usize {
        self.engine.rx_rings()
    }

    /// Number of TX rings bound.
    pub fn tx_rings(&self) -> usize {
        self.engine.tx_rings()
    }

    /// Waits with `poll(2)` until packets are ready or `timeout` passes; `Ok(true)` if ready.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        self.engine.wait_rx(ms)
    }

    /// TX slots queued or not yet completed by the kernel (as of the last sync).
    pub fn tx_pending(&self) -> u32 {
        self.engine.tx_pending()
    }
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("port", &self.engine.label())
            .field("rx_rings", &self.rx_rings())
            .field("tx_rings", &self.tx_rings())
            .field("context", self.engine.context())
            .finish()
    }
}

impl Socket for Sock {
    type Context = NetmapContext;
    type Metadata = NetmapMeta;
    type Flags = NetmapFlags;

    #[inline]
    fn recv_token(&self) -> Result<(Token, NetmapMeta)> {
        self.engine.recv_token()
    }

    /// Walks the RX rings for the whole burst; one sync only if nothing was waiting.
    #[inline]
    fn fill_batch(&self, sink: &mut nethuns_core::batch::BatchSink<'_, NetmapMeta>) -> Result<()> {
        self.engine.fill_batch(sink)
    }

    #[inline]
    fn send(&self, packet: &[u8]) -> Result<()> {
        self.engine.send(packet)
    }

    /// Builds the frame straight in the next free TX slot's buffer.
    #[inline]
    fn send_with<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        self.engine.send_with(len, fill)
    }

    fn flush(&self) {
        // `try_flush` reports the error; a failed sync leaves the slots queued for the next.
        let _ = self.engine.flush();
    }

    fn try_flush(&self) -> Result<()> {
        self.engine.flush()
    }

    fn stats(&self) -> Result<Stats> {
        Ok(self.engine.stats())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_frame: self.engine.max_frame(),
            min_frame: nethuns_core::frame::ETH_HLEN,
            timestamps: true,
            zero_copy: true,
            pollable_fd: Some(self.engine.port().fd()),
            filters: false,
        }
    }

    fn create(portspec: &str, queue: Option<usize>, flags: NetmapFlags) -> Result<Self> {
        flags.validate()?;
        let spec = PortSpec::parse(portspec)?.with_queue(portspec, queue)?;
        let (port, attached) = dev::open(&spec, flags.extra_buf)?;
        let mtu = match spec.kind {
            PortKind::Interface => dev::interface_mtu(&spec.name),
            PortKind::Vale { .. } => None,
        };
        Ok(Sock {
            engine: Engine::new(port, attached, spec.to_string()).with_mtu(mtu),
            spec,
        })
    }

    #[inline]
    fn context(&self) -> &NetmapContext {
        self.engine.context()
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        // Send what is queued: closing the port discards unsynced TX slots.
        if self.engine.tx_pending() > 0 {
            let _ = self.engine.tx_sync();
        }
    }
}
