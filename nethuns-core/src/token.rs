//! [`Token`] and [`Payload`]: ownership of one received buffer.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::{BufferDesc, Context, ForeignToken};

static LEAKED_TOKENS: AtomicU64 = AtomicU64::new(0);

/// How many tokens were dropped without being consumed, process-wide.
///
/// A [`Token`] owns a buffer but borrows no context, so it cannot give the buffer back by
/// itself. Dropping one unconsumed loses that buffer for the life of its context (the memory is
/// freed when the context goes, never reused before): the drop is counted here, and in debug
/// builds reported on stderr, so a leak is visible in tests and long-running programs. Consume
/// tokens with [`Token::consume`] / [`Context::packet`] and let the payload drop instead.
pub fn leaked_tokens() -> u64 {
    LEAKED_TOKENS.load(Ordering::Relaxed)
}

/// Ownership of one received buffer that borrows nothing: it can be stored, or sent to another
/// thread, and turned back into a [`Payload`] with the [`Context`] it came from (or a clone).
///
/// A token is checked against the context it is presented to: one from another pool is refused
/// ([`Token::check_token`] is false, [`Token::try_consume`] hands it back, [`Token::consume`]
/// panics as the spec says).
#[must_use = "a dropped token loses its buffer until the context is dropped; consume it"]
#[derive(Debug)]
pub struct Token {
    idx: BufferDesc,
    len: u32,
    buffer_pool: u32,
}

impl Token {
    /// A token for buffer `idx` holding `len` bytes, of the context whose pool id is `pool`.
    ///
    /// # Safety
    /// The caller transfers exclusive ownership of buffer `idx` of that context to the token:
    /// no other token or payload names the same buffer until this one is consumed and released,
    /// and `len` does not exceed the buffer's capacity.
    #[inline]
    pub unsafe fn new(idx: BufferDesc, len: u32, pool: u32) -> Self {
        crate::ledger::minted(pool, idx);
        Token {
            idx,
            len,
            buffer_pool: pool,
        }
    }

    /// The buffer descriptor.
    #[inline]
    pub fn buffer_desc(&self) -> BufferDesc {
        self.idx
    }

    /// The packet size in bytes.
    #[inline]
    pub fn size(&self) -> u32 {
        self.len
    }

    /// The pool id this token belongs to.
    #[inline]
    pub fn pool_id(&self) -> u32 {
        self.buffer_pool
    }

    /// Whether this token belongs to `ctx`.
    #[inline]
    pub fn check_token<Ctx: Context>(&self, ctx: &Ctx) -> bool {
        self.buffer_pool == ctx.pool_id()
    }

    /// Consume the token to get a [`Payload`].
    ///
    /// # Panics
    /// Panics if the token belongs to another context; see [`Token::try_consume`].
    #[inline]
    pub fn consume<Ctx: Context>(self, ctx: &Ctx) -> Payload<'_, Ctx> {
        ctx.packet(self)
    }

    /// Consume the token to get a [`Payload`], or get it back if it belongs to another context.
    #[inline]
    pub fn try_consume<Ctx: Context>(
        self,
        ctx: &Ctx,
    ) -> std::result::Result<Payload<'_, Ctx>, ForeignToken> {
        ctx.try_packet(self)
    }

    /// Give up the token without releasing or counting it, returning its parts. For backends
    /// that take a buffer back by other means (e.g. reclaiming everything at teardown).
    #[inline]
    pub fn into_raw(self) -> (BufferDesc, u32, u32) {
        let t = ManuallyDrop::new(self);
        crate::ledger::forget(t.buffer_pool, t.idx);
        (t.idx, t.len, t.buffer_pool)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        LEAKED_TOKENS.fetch_add(1, Ordering::Relaxed);
        #[cfg(debug_assertions)]
        eprintln!(
            "nethuns: token for buffer {} of pool {} dropped unconsumed; buffer lost until its context is dropped",
            self.idx.get(),
            self.buffer_pool
        );
    }
}

/// A received packet: the bytes of a buffer, borrowed from its [`Context`], released back to
/// it when dropped. Derefs to `[u8]`.
///
/// ```
/// use nethuns_core::{pool::PoolContext, Context};
///
/// let ctx = PoolContext::new(4, 2048);
/// let payload = ctx.alloc_payload(b"hello").unwrap();
/// assert_eq!(&payload[..], b"hello");
/// drop(payload); // the buffer is back in the pool
/// assert_eq!(ctx.free_buffers(), 4);
/// ```
pub struct Payload<'ctx, Ctx: Context> {
    token: ManuallyDrop<Token>,
    ctx: &'ctx Ctx,
}

impl<'ctx, Ctx: Context> Payload<'ctx, Ctx> {
    /// Pairs an already checked token with its context.
    #[inline]
    pub(crate) fn new(token: Token, ctx: &'ctx Ctx) -> Self {
        debug_assert!(token.check_token(ctx));
        Payload {
            token: ManuallyDrop::new(token),
            ctx,
        }
    }

    /// Pairs a token with a context without comparing pool ids: the receive fast path of a
    /// backend, which has just made the token from `ctx` itself.
    ///
    /// # Safety
    /// `token` must belong to `ctx` (`token.check_token(ctx)` holds).
    #[inline]
    pub unsafe fn from_token_unchecked(token: Token, ctx: &'ctx Ctx) -> Self {
        debug_assert!(token.check_token(ctx));
        Payload {
            token: ManuallyDrop::new(token),
            ctx,
        }
    }

    /// Turns the payload back into a token without releasing the buffer.
    #[inline]
    pub fn into_token(self) -> Token {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped, so the token is moved out exactly once.
        unsafe { ManuallyDrop::take(&mut me.token) }
    }

    /// The context the buffer belongs to.
    #[inline]
    pub fn context(&self) -> &'ctx Ctx {
        self.ctx
    }

    /// The buffer descriptor.
    #[inline]
    pub fn buffer_desc(&self) -> BufferDesc {
        self.token.idx
    }

    /// Shortens the packet to `len` bytes (no effect if it is not longer).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.token.len as usize {
            self.token.len = len as u32;
        }
    }
}

impl<Ctx: Context> Deref for Payload<'_, Ctx> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the payload owns its buffer (Token::new's contract, checked pool id) and the
        // length never exceeds the buffer's capacity.
        let p = unsafe {
            self.ctx
                .unsafe_buffer(self.token.idx, self.token.len as usize)
        };
        // SAFETY: the pointer is to the payload's own bytes, which nothing else reaches while
        // the payload lives, and the context outlives `'ctx`.
        unsafe { &*p }
    }
}

impl<Ctx: Context> DerefMut for Payload<'_, Ctx> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`.
        let p = unsafe {
            self.ctx
                .unsafe_buffer(self.token.idx, self.token.len as usize)
        };
        // SAFETY: as in `deref`; `&mut self` makes this the only access to the buffer.
        unsafe { &mut *p }
    }
}

impl<Ctx: Context> AsRef<[u8]> for Payload<'_, Ctx> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl<Ctx: Context> std::fmt::Debug for Payload<'_, Ctx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("buffer", &self.token.idx)
            .field("len", &self.token.len)
            .field("pool", &self.token.buffer_pool)
            .finish()
    }
}

impl<Ctx: Context> Drop for Payload<'_, Ctx> {
    #[inline]
    fn drop(&mut self) {
        // The token is not dropped (ManuallyDrop): releasing is how its ownership ends.
        // SAFETY: the payload owns its buffer (Token::new's contract, pool id checked when it
        // was made), and nothing uses the buffer after this: the payload is being dropped and
        // its token is never taken out again.
        unsafe { self.ctx.release(self.token.idx) };
    }
}
