//! The context of a pcap socket: core's [`PoolContext`], a heap pool of `buffer_count`
//! buffers, with no context of its own. libpcap hands each packet over in its own ring,
//! which it reuses at the next call, so a packet is copied once into a buffer of the pool
//! ([`Fresh::copy_in`]) and the payload or token borrows that buffer as long as needed.

use nethuns_core::pool::PoolContext;
use nethuns_core::{Payload, Token};

/// A packet just copied into a buffer of `ctx`: a token known to be of that context, so
/// that it becomes a payload without comparing pool ids (the receive fast path).
pub(crate) struct Fresh<'c> {
    token: Token,
    ctx: &'c PoolContext,
}

impl<'c> Fresh<'c> {
    /// Copies `data` (at most a buffer of it) into a free buffer of `ctx`; `None` if the pool
    /// has none.
    #[inline(always)]
    pub(crate) fn copy_in(ctx: &'c PoolContext, data: &[u8]) -> Option<Self> {
        let token = ctx
            .alloc_with(|buf| {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                n
            })
            .ok()?;
        Some(Fresh { token, ctx })
    }

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
        // SAFETY: the token was made by `alloc_with` of `self.ctx` (the only constructor,
        // `copy_in`), so it belongs to that context.
        unsafe { Payload::from_token_unchecked(self.token, self.ctx) }
    }
}
