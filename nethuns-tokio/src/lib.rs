//! # nethuns-tokio
//!
//! nethuns sockets in async Rust on tokio: [`AsyncSocket`] wraps any nethuns [`Socket`] that
//! has a pollable descriptor ([`Capabilities::pollable_fd`](nethuns_core::Capabilities):
//! libpcap on a live interface or a savefile, AF_PACKET, AF_XDP, netmap) in tokio's
//! [`AsyncFd`], so that a task waits for packets in the runtime's reactor instead of spinning:
//! [`recv`](AsyncSocket::recv)`.await`, [`recv_token`](AsyncSocket::recv_token)`.await`,
//! [`send`](AsyncSocket::send)`.await` + [`flush`](AsyncSocket::flush)`.await`, and a
//! [`Stream`] of tokens.
//!
//! ```no_run
//! use nethuns_core::{Error, Socket};
//! use nethuns_tokio::AsyncSocket;
//!
//! async fn echo<S: Socket>(sock: S) -> nethuns_core::Result<()> {
//!     let sock = AsyncSocket::new(sock)?;
//!     loop {
//!         let (payload, _meta) = match sock.recv().await {
//!             Ok(p) => p,
//!             Err(Error::Eof) => return Ok(()),
//!             Err(e) => return Err(e),
//!         };
//!         sock.send(&payload).await?;
//!         drop(payload);
//!         sock.flush().await?;
//!     }
//! }
//! ```
//!
//! The futures of an `AsyncSocket` are `Send` (the socket sits behind a mutex that only one
//! call at a time takes, for the length of one non-blocking receive or send), so it can be
//! moved into `tokio::spawn` or shared behind an `Arc` between a receiving and a sending task.
//! The socket's fd is registered with the reactor of the runtime that is current when
//! [`AsyncSocket::new`] runs.
//!
//! ## DPDK and other sockets without a descriptor
//! DPDK's poll-mode drivers have no descriptor to wait on (`pollable_fd` is `None`), so
//! [`AsyncSocket::new`] refuses them with [`Error::Unsupported`]. Run a DPDK socket beside
//! tokio on a thread of its own: a receive loop in [`std::thread::spawn`] (or
//! `tokio::task::spawn_blocking`, which takes a runtime thread for as long as it runs) that
//! waits with [`nethuns_core::wait::recv_token_timeout`] and hands tokens to async tasks over
//! a channel (`tokio::sync::mpsc`, or `flume`, whose receiver also has `recv_async`); the
//! tasks turn tokens back into bytes with a clone of the socket's context.
//!
//! ## Cost
//! One uncontended mutex lock per call, and a trip through the reactor only when the socket
//! was empty. For the highest rates keep a dedicated thread on the synchronous API; the
//! adapter is for programs whose packets are one part of the work of an async service.
//!
//! ## Where the unsafe code is
//! One call, in `lib.rs`: tokio's `AsyncFd::register_with_interest` in
//! [`AsyncSocket::new`], which asks that the descriptor stay open for the life of the
//! registration (the socket is owned by the `AsyncSocket` and outlives it).

#![cfg_attr(docsrs, feature(doc_cfg))]

use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context as TaskContext, Poll};

use futures_core::Stream;
use nethuns_core::{Context, Error, Payload, Result, Socket, Token, Unsent};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How many times [`AsyncSocket::send`] flushes and yields to the runtime while the transmit
/// side has no free buffer, before it gives up with [`Error::NoMemory`].
pub const SEND_RETRIES: u32 = 10_000;

/// The socket's descriptor as tokio registers it (the socket owns and closes it).
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A nethuns socket driven by tokio: receives wait in the reactor on the socket's pollable
/// descriptor. See the [crate docs](crate).
pub struct AsyncSocket<S: Socket> {
    // Declared first: deregistered from the reactor before the socket closes the fd.
    fd: AsyncFd<Fd>,
    sock: Mutex<S>,
    /// A clone of the socket's context, for payloads that outlive the lock.
    ctx: S::Context,
}

impl<S: Socket> AsyncSocket<S> {
    /// Registers `sock`'s pollable descriptor with the current tokio runtime.
    ///
    /// Errors with [`Error::Unsupported`] if the socket has no pollable descriptor (DPDK: see
    /// the crate docs), and with [`Error::Os`] if there is no current runtime with I/O enabled
    /// or the reactor refuses the descriptor.
    pub fn new(sock: S) -> Result<Self> {
        let Some(fd) = sock.capabilities().pollable_fd else {
            return Err(Error::Unsupported(
                "the socket has no pollable descriptor (DPDK's poll-mode drivers have none): \
                 run it on its own thread with nethuns_core::wait and hand tokens to async \
                 tasks over a channel"
                    .into(),
            ));
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Unsupported(
                "AsyncSocket::new outside a tokio runtime: create it inside one (with I/O \
                 enabled)"
                    .into(),
            ));
        }
        // SAFETY: `fd` is the socket's open descriptor; the socket is moved into the
        // `AsyncSocket` below, whose `fd` field is dropped (deregistered) before its `sock`
        // field, and `into_inner` deregisters before it returns the socket: the descriptor
        // stays open and the same for the whole life of the registration. `Fd::as_raw_fd`
        // always returns it.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) }.map_err(
            |e| {
                let (Fd(fd), source) = e.into_parts();
                Error::Os {
                    context: format!(
                        "registering the socket's fd {fd} with the tokio reactor (a runtime \
                         with I/O enabled?)"
                    ),
                    source,
                }
            },
        )?;
        let ctx = sock.context().clone();
        Ok(AsyncSocket {
            fd,
            sock: Mutex::new(sock),
            ctx,
        })
    }

    /// The socket, locked for the life of the guard (for `stats()`, `capabilities()` and the
    /// backend's own calls). Do not hold it across an `.await`.
    pub fn socket(&self) -> MutexGuard<'_, S> {
        self.sock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket's context (a clone sharing its pool): turns tokens back into payloads.
    pub fn context(&self) -> &S::Context {
        &self.ctx
    }

    /// Deregisters the descriptor and gives the socket back.
    pub fn into_inner(self) -> S {
        let AsyncSocket { fd, sock, ctx } = self;
        let _deregistered: Fd = fd.into_inner();
        drop(ctx);
        sock.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Receives the next packet, waiting in the reactor while there is none.
    ///
    /// Errors are the socket's: [`Error::Eof`] at the end of a savefile, [`Error::NoMemory`]
    /// while every buffer is held, [`Error::InterfaceDown`] …; never `NoPacket`.
    pub async fn recv(&self) -> Result<(Payload<'_, S::Context>, S::Metadata)> {
        let (token, meta) = self.recv_token().await?;
        Ok((self.ctx.packet(token), meta))
    }

    /// Receives the next packet as a [`Token`], waiting in the reactor while there is none.
    /// Give the token to [`AsyncSocket::context`] (or a clone of it) to read it.
    pub async fn recv_token(&self) -> Result<(Token, S::Metadata)> {
        std::future::poll_fn(|cx| self.poll_recv_token(cx)).await
    }

    /// Polls for the next packet: `Ready` with what [`Socket::recv_token`] returned, or
    /// `Pending` with `cx` registered to wake when the socket's descriptor is readable.
    pub fn poll_recv_token(&self, cx: &mut TaskContext<'_>) -> Poll<Result<(Token, S::Metadata)>> {
        loop {
            // Try first: frames already in the ring need no trip through the reactor.
            match self.socket().recv_token() {
                Err(Error::NoPacket) => {}
                r => return Poll::Ready(r),
            }
            let mut guard = ready!(self.fd.poll_read_ready(cx)).map_err(|e| Error::Os {
                context: "waiting for the socket's fd in the tokio reactor".into(),
                source: e,
            })?;
            match self.socket().recv_token() {
                // Clears the readiness only if no new event came in since it was seen, so a
                // frame arriving now still wakes the next poll.
                Err(Error::NoPacket) => guard.clear_ready(),
                r => return Poll::Ready(r),
            }
        }
    }

    /// Queues `packet` for transmission ([`Socket::send`]). While the transmit side has no
    /// free buffer ([`Error::NoMemory`]) it flushes and yields to the runtime, up to
    /// [`SEND_RETRIES`] times, then returns `NoMemory`; a flush error is returned at once.
    pub async fn send(&self, packet: &[u8]) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.socket().send(packet) {
                Err(Error::NoMemory) if tries < SEND_RETRIES => {}
                r => return r,
            }
            self.socket().try_flush()?;
            tries += 1;
            tokio::task::yield_now().await;
        }
    }

    /// Queues a frame of `len` bytes that `fill` writes in place ([`Socket::send_with`]),
    /// flushing and yielding while the transmit side is full, as [`AsyncSocket::send`] does.
    /// `fill` may run more than once when the engine refuses the frame after it was written
    /// (never for `NoMemory` on the backends that write in place, which find room first).
    pub async fn send_with<F: FnMut(&mut [u8])>(&self, len: usize, mut fill: F) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.socket().send_with(len, &mut fill) {
                Err(Error::NoMemory) if tries < SEND_RETRIES => {}
                r => return r,
            }
            self.socket().try_flush()?;
            tries += 1;
            tokio::task::yield_now().await;
        }
    }

    /// Transmits a received packet ([`Socket::send_payload`]: without a copy where the engine
    /// can), flushing and yielding while the transmit side is full, as [`AsyncSocket::send`]
    /// does. On failure the packet comes back in the [`Unsent`].
    pub async fn send_payload<'p, C: Context>(
        &self,
        payload: Payload<'p, C>,
    ) -> std::result::Result<(), Unsent<'p, C>> {
        let mut payload = payload;
        let mut tries = 0;
        loop {
            match self.socket().send_payload(payload) {
                Err(u) if matches!(u.error, Error::NoMemory) && tries < SEND_RETRIES => {
                    payload = u.payload;
                }
                r => return r,
            }
            if let Err(error) = self.socket().try_flush() {
                return Err(Unsent { error, payload });
            }
            tries += 1;
            tokio::task::yield_now().await;
        }
    }

    /// Submits what `send` queued and reports the first error of this flush
    /// ([`Socket::try_flush`]). It yields to the runtime once, so a task that sends and
    /// flushes in a loop does not starve the others.
    pub async fn flush(&self) -> Result<()> {
        let r = self.socket().try_flush();
        tokio::task::yield_now().await;
        r
    }
}

/// Nothing of an `AsyncSocket` is pinned structurally (the stream polls through `&self`), so
/// it may move whatever `S` is.
impl<S: Socket> Unpin for AsyncSocket<S> {}

/// The packets of the socket as tokens, until the end of a savefile ([`Error::Eof`] ends the
/// stream). Other errors are items; the stream goes on after them (stop on the first one if
/// it is [`Error::InterfaceDown`], which repeats). Every token must be given to the socket's
/// [`context`](AsyncSocket::context): a dropped token is counted as leaked.
impl<S: Socket> Stream for AsyncSocket<S> {
    type Item = Result<(Token, S::Metadata)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.poll_recv_token(cx)) {
            Err(Error::Eof) => Poll::Ready(None),
            r => Poll::Ready(Some(r)),
        }
    }
}

impl<S: Socket + std::fmt::Debug> std::fmt::Debug for AsyncSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSocket")
            .field("fd", &self.fd.get_ref().0)
            .field("sock", &self.sock)
            .finish()
    }
}
