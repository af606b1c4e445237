//! The context of a pcap socket: core's [`PoolContext`], a heap pool of `buffer_count`
//! buffers, with no context of its own. libpcap hands each packet over in its own ring,
//! which it reuses at the next call, so a packet is copied once into a buffer of the pool and
//! the payload or token borrows that buffer as long as needed.
//!
//! [`RxPool`] is the socket's side of it: the pool and the one buffer the socket holds for
//! the next packet (taken before a receive, so that a full pool is reported before a packet
//! is consumed; kept across empty polls, which so write nothing).

use std::cell::Cell;

use nethuns_core::pool::PoolContext;
use nethuns_core::{BufferDesc, Context, Payload, Token};

/// The receive pool of a socket: the context and the buffer held for the next packet.
pub(crate) struct RxPool {
    ctx: PoolContext,
    /// A buffer of `ctx`'s pool, taken and owned here until a packet lands in it.
    spare: Cell<Option<BufferDesc>>,
}

impl RxPool {
    /// The receive side of `ctx`.
    pub(crate) fn new(ctx: PoolContext) -> Self {
        RxPool {
            ctx,
            spare: Cell::new(None),
        }
    }

    /// The context.
    #[inline]
    pub(crate) fn ctx(&self) -> &PoolContext {
        &self.ctx
    }

    /// Buffers a receive may fill now: the free ones and the spare.
    #[inline]
    pub(crate) fn available(&self) -> usize {
        self.ctx.free_buffers() + usize::from(self.spare.get().is_some())
    }

    /// Whether a buffer waits for the next packet; takes one from the pool if none does.
    /// (Not an `Option`/`Result`: the empty poll stays a few loads.)
    #[inline]
    pub(crate) fn ready(&self) -> bool {
        if self.spare.get().is_some() {
            return true;
        }
        match self.ctx.pool().get() {
            Some(d) => {
                self.spare.set(Some(d));
                true
            }
            None => false,
        }
    }

    /// Copies `data` (at most a buffer of it) into the spare buffer, which stays the spare;
    /// the bytes copied, `None` if there is no spare (see [`RxPool::ready`]).
    #[inline(always)]
    pub(crate) fn fill_spare(&self, data: &[u8]) -> Option<usize> {
        let desc = self.spare.get()?;
        let n = data.len().min(self.ctx.buffer_size());
        // SAFETY: the spare is a buffer of this pool owned here (taken by `ready`, not
        // handed out), so nothing else reaches its bytes; n ≤ its size.
        let buf = unsafe { self.ctx.unsafe_buffer(desc, n) };
        // SAFETY: as above: `buf` is the first n bytes of a buffer only this call touches,
        // and `data` is outside the pool.
        unsafe { (*buf).copy_from_slice(&data[..n]) };
        Some(n)
    }

    /// The spare's first `n` bytes (written by [`RxPool::fill_spare`]) become a packet, with
    /// the metadata `meta` makes of them; `None` if there is no spare.
    #[inline(always)]
    pub(crate) fn take_spare<M>(
        &self,
        n: usize,
        meta: impl FnOnce(&[u8]) -> M,
    ) -> Option<(Fresh<'_>, M)> {
        let desc = self.spare.take()?;
        let n = n.min(self.ctx.buffer_size());
        // SAFETY: `desc` was the spare, owned here and now by this call alone; n ≤ its size.
        let buf = unsafe { self.ctx.unsafe_buffer(desc, n) };
        // SAFETY: as above; the bytes are only read, and before the token below owns them.
        let m = meta(unsafe { &*buf });
        Some((self.mint(desc, n), m))
    }

    /// Copies `data` (at most a buffer of it) into the spare, else a free buffer; `None` if
    /// the pool has none.
    #[inline(always)]
    pub(crate) fn copy_in(&self, data: &[u8]) -> Option<Fresh<'_>> {
        if let Some(n) = self.fill_spare(data) {
            let desc = self.spare.take()?;
            return Some(self.mint(desc, n));
        }
        let token = self
            .ctx
            .alloc_with(|buf| {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                n
            })
            .ok()?;
        Some(Fresh {
            token,
            ctx: &self.ctx,
        })
    }

    /// The token of buffer `desc`, owned by the caller, holding `n` bytes.
    #[inline(always)]
    fn mint(&self, desc: BufferDesc, n: usize) -> Fresh<'_> {
        // SAFETY: the caller owned `desc`, a buffer of this pool of at least n bytes, and
        // hands it to the token.
        let token = unsafe { Token::new(desc, n as u32, self.ctx.pool_id()) };
        Fresh {
            token,
            ctx: &self.ctx,
        }
    }
}

impl Drop for RxPool {
    fn drop(&mut self) {
        if let Some(d) = self.spare.take() {
            // SAFETY: the spare was taken from the pool and never handed out; the socket is
            // going away, so nothing uses it after this.
            unsafe { self.ctx.pool().put(d) };
        }
    }
}

/// A packet just copied into a buffer of `ctx`: a token known to be of that context, so
/// that it becomes a payload without comparing pool ids (the receive fast path).
pub(crate) struct Fresh<'c> {
    token: Token,
    ctx: &'c PoolContext,
}

impl<'c> Fresh<'c> {
    /// How many bytes were copied.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.token.size() as usize
    }

    /// The token, to hold or send elsewhere.
    #[inline]
    pub(crate) fn into_token(self) -> Token {
        self.token
    }

    /// The payload, borrowing the context the packet was copied into.
    #[inline]
    pub(crate) fn into_payload(self) -> Payload<'c, PoolContext> {
        // SAFETY: every `Fresh` is made by `RxPool` from a buffer of `self.ctx` (by
        // `alloc_with` of it or `mint`), so the token belongs to that context.
        unsafe { Payload::from_token_unchecked(self.token, self.ctx) }
    }
}
