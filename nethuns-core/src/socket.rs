//! [`Socket`] and [`Flags`]: what every backend implements.

use std::fmt::Debug;

use crate::batch::{BatchSink, Received, Slot};
use crate::channel::{IntoBatchChannel, NethunsPopper, NethunsPusher};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::token::{Payload, Token};

/// Marker trait for backend-specific configuration.
pub trait Flags: Clone + Debug {}

/// What a socket counted, the same fields on every backend ([`Socket::stats`]).
///
/// `received` and `sent` are counted by nethuns itself and always known. The others come from
/// the engine and are `None` where it cannot know them (a savefile drops nothing; AF_XDP in
/// copy mode cannot see frames the driver dropped before XDP). Each backend also keeps the
/// engine's own numbers as an inherent `native_stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed out by `recv` / `recv_token` since the socket was created.
    pub received: u64,
    /// Frames that reached the engine for this socket but were dropped before `recv` could
    /// hand them out: ring full, no free buffer, kernel or driver drop.
    pub dropped: Option<u64>,
    /// Frames the socket's filter rejected, where the engine counts them.
    pub filtered: Option<u64>,
    /// Frames handed to the engine for transmission (`send` and `flush`) and not refused.
    pub sent: u64,
    /// Frames the engine refused or failed to transmit.
    pub send_errors: u64,
}

/// What a socket can do, answered the same way by every backend ([`Socket::capabilities`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The largest untagged frame `send` accepts (the interface MTU + 14), Ethernet header
    /// included, FCS excluded; a frame whose outer EtherType is 802.1Q (0x8100) may be 4
    /// bytes longer ([`frame::send_limit`](crate::frame::send_limit)). A larger frame gets
    /// [`Error::TooBigPacket`](crate::Error).
    pub max_frame: usize,
    /// The smallest frame `send` accepts ([`frame::ETH_HLEN`](crate::frame::ETH_HLEN)); a
    /// smaller one gets [`Error::TooSmallPacket`](crate::Error).
    pub min_frame: usize,
    /// Whether [`Metadata::timestamp`] answers `Some` for received packets.
    pub timestamps: bool,
    /// Whether received payloads point into the engine's memory (no copy on receive).
    pub zero_copy: bool,
    /// A file descriptor to `poll(2)` for readability, where the engine has one.
    pub pollable_fd: Option<std::os::fd::RawFd>,
    /// Whether the socket can take a tcpdump-style filter expression.
    pub filters: bool,
}

impl Capabilities {
    /// Checks `frame` against the size rule of `send`: at least `min_frame`, at most
    /// `max_frame` (4 bytes more under an 802.1Q tag, [`frame::send_limit`](crate::frame::send_limit)).
    ///
    /// ```
    /// # use nethuns_core::{Capabilities, Error};
    /// let caps = Capabilities { max_frame: 1514, min_frame: 14, timestamps: false,
    ///     zero_copy: false, pollable_fd: None, filters: false };
    /// assert!(matches!(caps.check_frame(&[0; 13]), Err(Error::TooSmallPacket(13))));
    /// assert!(matches!(caps.check_frame(&[0; 1515]), Err(Error::TooBigPacket(1515))));
    /// let mut tagged = vec![0u8; 1518];
    /// tagged[12..14].copy_from_slice(&[0x81, 0x00]);
    /// assert!(caps.check_frame(&tagged).is_ok());
    /// ```
    #[inline]
    pub fn check_frame(&self, frame: &[u8]) -> Result<()> {
        check_frame_len(
            frame.len(),
            self.min_frame,
            crate::frame::send_limit(frame, self.max_frame),
        )
    }
}

/// The size rule of `send` on every backend: [`Error::TooSmallPacket`](crate::Error) under
/// `min`, [`Error::TooBigPacket`](crate::Error) over `max`.
#[inline]
pub fn check_frame_len(len: usize, min: usize, max: usize) -> Result<()> {
    if len < min {
        Err(crate::Error::TooSmallPacket(len))
    } else if len > max {
        Err(crate::Error::TooBigPacket(len))
    } else {
        Ok(())
    }
}

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

    /// Receive up to `buf.len()` packets in one call, into caller-owned storage
    /// ([`batch::buffer`](crate::batch::buffer)). The [`Received`] yields `(Payload, Metadata)`
    /// pairs (or tokens) and releases the packets not taken when dropped. Nothing to read:
    /// an empty `Received`, not an error; the errors of [`Socket::recv`] otherwise, when no
    /// packet came.
    #[inline]
    fn recv_batch<'a>(
        &'a self,
        buf: &'a mut [Slot<Self::Metadata>],
    ) -> Result<Received<'a, Self::Context, Self::Metadata>> {
        let mut sink = BatchSink::new(buf);
        let r = self.fill_batch(&mut sink);
        // SAFETY: `fill_batch` pushes only tokens of this socket (its contract).
        let got = unsafe { sink.into_received(self.context()) };
        // Arms written out (no `_` over the result): the Ok arm must not reach the drop of
        // an `Error`, which is not inlined.
        match r {
            Ok(()) => Ok(got),
            Err(e) if got.is_empty() => Err(e),
            Err(e) => {
                drop(e);
                Ok(got)
            }
        }
    }

    /// The backend side of [`Socket::recv_batch`]: pushes up to `sink.remaining()` received
    /// packets of this socket (tokens of its own context only) into `sink`. Returns an error
    /// only when it pushed nothing (`NoPacket` or not: an empty ring may also be `Ok`). The
    /// default calls [`Socket::recv_token`] until the ring is empty or the sink full; a
    /// backend overrides it to take a whole burst at once.
    #[inline]
    fn fill_batch(&self, sink: &mut BatchSink<'_, Self::Metadata>) -> Result<()> {
        while sink.remaining() > 0 {
            match self.recv_token() {
                Ok((t, m)) => {
                    if let Err((t, _)) = sink.push(t, m) {
                        // Unreachable (room was checked); kept total.
                        drop(self.context().packet(t));
                    }
                }
                Err(crate::Error::NoPacket) => return Ok(()),
                Err(e) if sink.is_empty() => return Err(e),
                // The error comes again on the next call; hand out what came first.
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Send a packet. The bytes are copied into the transmit side and queued.
    fn send(&self, packet: &[u8]) -> Result<()>;

    /// Send a frame of `len` bytes that `fill` writes in place: straight into the transmit
    /// frame, ring slot or mbuf where the engine has one, so the frame is built where it is
    /// sent from, with no copy (C nethuns' `nethuns_get_buf_addr` + `nethuns_send_slot`).
    ///
    /// `fill` gets exactly `len` bytes whose content is unspecified (a previous frame's bytes,
    /// or zeros): it must write every byte it wants sent. The size rule of [`Socket::send`]
    /// applies: `len` is checked before `fill` runs (a frame that cannot fit gets its error
    /// and `fill` is not called) and the written frame after it (the 802.1Q allowance depends
    /// on its EtherType); a refused frame is not queued. Queued like `send`; `flush` submits.
    ///
    /// The default builds the frame in a per-thread scratch buffer (zeroed once, grown to the
    /// largest frame) and calls `send`; the backends whose engine has transmit memory of its
    /// own write into it.
    ///
    /// ```no_run
    /// # use nethuns_core::Socket;
    /// # fn demo<S: Socket>(sock: &S) -> nethuns_core::Result<()> {
    /// sock.send_with(64, |frame| {
    ///     frame[..12].copy_from_slice(&[0xff; 12]);
    ///     frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    ///     frame[14..].fill(0);
    /// })?;
    /// sock.flush();
    /// # Ok(()) }
    /// ```
    #[inline]
    fn send_with<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        let caps = self.capabilities();
        check_frame_len(
            len,
            caps.min_frame,
            caps.max_frame + crate::frame::VLAN_HLEN,
        )?;
        scratch::with(len, |frame| {
            fill(frame);
            self.send(frame)
        })
    }

    /// Transmit a received packet, without a copy where the engine can: where the payload's
    /// buffer lies in memory this socket's engine transmits from (AF_XDP: a frame of this
    /// socket's UMEM; DPDK: an mbuf of this process), the buffer itself is queued and goes
    /// back to its pool once sent. Otherwise the bytes are copied ([`Socket::send`]) and the
    /// payload is released. Queued like `send`; `flush` submits.
    ///
    /// On failure (`NoMemory` when the transmit side is full, the size rule, a gone
    /// interface) the payload comes back unchanged in [`Unsent`], to retry after a `flush`
    /// or to drop.
    ///
    /// ```no_run
    /// # use nethuns_core::{Error, Socket};
    /// # fn demo<S: Socket, T: Socket>(rx: &S, tx: &T) -> nethuns_core::Result<()> {
    /// if let Ok((payload, _meta)) = rx.recv() {
    ///     if let Err(unsent) = tx.send_payload(payload) {
    ///         if matches!(unsent.error, Error::NoMemory) {
    ///             tx.flush();
    ///         }
    ///         // Dropping `unsent` releases the packet.
    ///     }
    /// }
    /// tx.flush();
    /// # Ok(()) }
    /// ```
    #[inline]
    fn send_payload<'p, C: Context>(
        &self,
        payload: Payload<'p, C>,
    ) -> std::result::Result<(), Unsent<'p, C>> {
        match self.send(&payload) {
            Ok(()) => Ok(()),
            Err(error) => Err(Unsent { error, payload }),
        }
    }

    /// Queue `packets` in order and submit them (one [`Socket::flush`] at the end); returns
    /// how many were queued. It stops early when the transmit side is full (`NoMemory`) or a
    /// frame is refused after some were queued: the rest is for the next call, which reports
    /// the refusal. An error only when not even the first frame was queued.
    #[inline]
    fn send_batch(&self, packets: &[&[u8]]) -> Result<usize> {
        let mut n = 0;
        for p in packets {
            match self.send(p) {
                Ok(()) => n += 1,
                Err(e) if n == 0 => {
                    self.flush();
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        self.flush();
        Ok(n)
    }

    /// Flush pending transmissions: submit what `send` queued and kick the engine. Errors
    /// are counted in [`Stats::send_errors`]; [`Socket::try_flush`] reports them.
    fn flush(&self);

    /// Like [`Socket::flush`], but reports the first error of this flush: the engine refused
    /// a frame, the interface went away.
    fn try_flush(&self) -> Result<()>;

    /// What the socket counted: received, dropped, filtered, sent, send errors. The same
    /// fields on every backend; `None` where the engine cannot know.
    fn stats(&self) -> Result<Stats>;

    /// What the socket can do: largest frame, timestamps, zero-copy, a pollable fd, filters.
    fn capabilities(&self) -> Capabilities;

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
    /// `channel` is a bounded channel of [`Batch`](crate::channel::Batch)es, as
    /// `flume::bounded(n)` (the spec's) or `crossbeam_channel::bounded(n)` return it.
    ///
    /// ```no_run
    /// # use nethuns_core::{Socket, channel::{NethunsPusher, NethunsPopper}};
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
        channel: impl IntoBatchChannel<BATCH>,
    ) -> Result<(
        Self,
        NethunsPusher<BATCH>,
        NethunsPopper<Self::Context, BATCH>,
    )> {
        let sock = Self::create(portspec, queue, flags)?;
        let ctx = sock.context().clone();
        let (tx, rx) = channel.into_ends();
        let pusher = NethunsPusher::new(tx, ctx.pool_id());
        let popper = NethunsPopper::new(rx, ctx);
        Ok((sock, pusher, popper))
    }
}

/// A packet [`Socket::send_payload`] did not queue, and why. The packet is still owned:
/// retry it or drop it (which releases its buffer).
pub struct Unsent<'p, C: Context> {
    /// Why it was not queued: the errors of [`Socket::send`].
    pub error: Error,
    /// The packet, unchanged.
    pub payload: Payload<'p, C>,
}

impl<C: Context> std::fmt::Debug for Unsent<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsent")
            .field("error", &self.error)
            .field("payload", &self.payload)
            .finish()
    }
}

impl<C: Context> std::fmt::Display for Unsent<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "packet of {} bytes not sent: {}",
            self.payload.len(),
            self.error
        )
    }
}

impl<C: Context> std::error::Error for Unsent<'_, C> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<C: Context> From<Unsent<'_, C>> for Error {
    /// Keeps the error; the packet is released.
    fn from(u: Unsent<'_, C>) -> Self {
        u.error
    }
}

/// The per-thread buffer the default [`Socket::send_with`] builds frames in.
mod scratch {
    use std::cell::RefCell;

    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// Runs `f` over `len` bytes of this thread's scratch buffer; a nested call (a `fill` that
    /// sends on another socket) or one during the thread's exit gets a buffer of its own.
    pub(super) fn with<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut f = Some(f);
        let r = SCRATCH.try_with(|cell| {
            let mut buf = cell.try_borrow_mut().ok()?;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let f = f.take()?;
            Some(f(&mut buf[..len]))
        });
        // No scratch buffer (borrowed by an outer call, or this thread's storage is gone).
        let r = r.ok().flatten();
        match (r, f) {
            (Some(r), _) => r,
            (None, Some(f)) => f(&mut vec![0u8; len]),
            (None, None) => unreachable!("the scratch closure runs at most once"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scratch;

    #[test]
    fn scratch_is_reused_and_nests() {
        let first = scratch::with(64, |b| {
            b.fill(7);
            b.as_ptr() as usize
        });
        // The same buffer again, grown, with the old bytes (unspecified content).
        let (again, inner) = scratch::with(128, |b| {
            assert_eq!(b.len(), 128);
            assert_eq!(b[0], 7);
            let inner = scratch::with(16, |c| {
                assert_eq!(c.len(), 16);
                c.as_ptr() as usize
            });
            (b.as_ptr() as usize, inner)
        });
        assert_ne!(again, inner, "a nested call gets a buffer of its own");
        let _ = first;
    }
}
