//! [`Socket`] and [`Flags`]: what every backend implements.

use std::fmt::Debug;

use crate::channel::{BatchChannel, NethunsPopper, NethunsPusher};
use crate::context::Context;
use crate::error::Result;
use crate::metadata::Metadata;
use crate::token::{Payload, Token};

/// Marker trait for backend-specific configuration.
pub trait Flags: Clone + Debug {}

/// The primary trait for all network I/O operations: one socket bound to one interface
/// (or one queue of it, or one savefile, or one virtual device).
///
/// `recv` never blocks: with nothing to read it returns [`Error::NoPacket`](crate::Error) and
/// the caller decides how to wait (spin, sleep, poll). `send` copies into the transmit side and
/// queues; `flush` (or a full batch) submits.
pub trait Socket: Send + Sized {
    /// The buffer memory of this socket.
    type Context: Context;
    /// What `recv` reports beside the bytes.
    type Metadata: Metadata;
    /// The configuration `create` takes.
    type Flags: Flags;

    /// Receive a packet from the socket.
    ///
    /// Returns the payload, which borrows the socket's context and releases its buffer when
    /// dropped, and the packet's metadata. Errors with `NoPacket` when nothing is there.
    fn recv(&self) -> Result<(Payload<'_, Self::Context>, Self::Metadata)> {
        let (token, meta) = self.recv_token()?;
        // SAFETY: the token was made by this socket from its own context.
        Ok((
            unsafe { Payload::from_token_unchecked(token, self.context()) },
            meta,
        ))
    }

    /// Receive a packet as a token (advanced API).
    ///
    /// Returns a token that must be explicitly consumed via `context.packet(token)` (or
    /// [`Token::consume`]); it borrows nothing and can cross threads.
    fn recv_token(&self) -> Result<(Token, Self::Metadata)>;

    /// Send a packet. The bytes are copied into the transmit side and queued.
    fn send(&self, packet: &[u8]) -> Result<()>;

    /// Flush pending transmissions: submit what `send` queued and kick the engine.
    fn flush(&self);

    /// Create a new socket bound to the specified interface.
    ///
    /// * `portspec` - interface name (e.g. `"eth0"`), or a backend-specific port form
    ///   (`"file:capture.pcap"`, `"netmap:eth0"`, `"net_null0"`, …)
    /// * `queue` - optional queue number for multi-queue NICs (see each backend for `None`)
    /// * `flags` - backend-specific configuration flags
    fn create(portspec: &str, queue: Option<usize>, flags: Self::Flags) -> Result<Self>;

    /// A reference to the socket's context.
    fn context(&self) -> &Self::Context;

    /// Create a socket together with a pusher/popper pair over `channel`, for a receiving
    /// thread that hands batches of `BATCH` tokens to a processing thread.
    ///
    /// ```no_run
    /// # use nethuns_core::{Socket, channel::{BatchChannel, NethunsPusher, NethunsPopper}};
    /// # fn demo<S: Socket + 'static>(flags: S::Flags) -> nethuns_core::Result<()> {
    /// let (socket, mut pusher, popper) =
    ///     S::create_with_channel::<32>("eth0", None, flags, crossbeam_channel::bounded(1024))?;
    /// let rx = std::thread::spawn(move || {
    ///     for _ in 0..1000 {
    ///         if let Ok((token, _meta)) = socket.recv_token() {
    ///             if pusher.push_token(token).is_err() { break; }
    ///         }
    ///     }
    ///     let _ = pusher.flush();
    /// });
    /// while let Some(batch) = popper.pop() {
    ///     for packet in batch {
    ///         let _first = packet.first();
    ///     }
    /// }
    /// rx.join().unwrap();
    /// # Ok(()) }
    /// ```
    #[allow(clippy::type_complexity)]
    fn create_with_channel<const BATCH: usize>(
        portspec: &str,
        queue: Option<usize>,
        flags: Self::Flags,
        channel: BatchChannel<BATCH>,
    ) -> Result<(
        Self,
        NethunsPusher<BATCH>,
        NethunsPopper<Self::Context, BATCH>,
    )> {
        let sock = Self::create(portspec, queue, flags)?;
        let ctx = sock.context().clone();
        let (tx, rx) = channel;
        let pusher = NethunsPusher::new(tx, ctx.pool_id());
        let popper = NethunsPopper::new(rx, ctx);
        Ok((sock, pusher, popper))
    }
}
