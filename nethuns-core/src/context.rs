//! [`Context`]: the owner of buffer memory, and the descriptors that name its buffers.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::token::{Payload, Token};

/// Names one buffer of a [`Context`]: an index into a pool, a UMEM frame address, an mbuf
/// pointer, a netmap buffer index — whatever the backend's memory uses. A plain value: the
/// memory stays with the context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferDesc(pub(crate) usize);

impl BufferDesc {
    /// Wraps a backend-defined buffer name.
    #[inline]
    pub const fn new(raw: usize) -> Self {
        BufferDesc(raw)
    }

    /// The backend-defined buffer name.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }
}

/// A reference to a buffer by position (e.g. a ring slot), the counterpart of [`BufferDesc`]
/// where an engine distinguishes slot from buffer (netmap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferRef(pub(crate) usize);

impl BufferRef {
    /// Wraps a backend-defined buffer reference.
    #[inline]
    pub const fn new(raw: usize) -> Self {
        BufferRef(raw)
    }

    /// The backend-defined buffer reference.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }
}

impl From<BufferDesc> for BufferRef {
    fn from(d: BufferDesc) -> Self {
        BufferRef(d.0)
    }
}

impl From<BufferRef> for BufferDesc {
    fn from(r: BufferRef) -> Self {
        BufferDesc(r.0)
    }
}

static NEXT_POOL_ID: AtomicU32 = AtomicU32::new(1);

/// A process-wide unique pool id for a new context. Never returns 0 (reserved for "no pool").
pub fn next_pool_id() -> u32 {
    loop {
        let id = NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}

/// Manages buffer pools and provides safe access to packet memory.
///
/// A context owns the buffer memory of a socket (a heap pool, a UMEM, a mempool, netmap
/// buffers). It is cheap to clone; clones share the same memory and pool id, so a clone can
/// travel to another thread and turn [`Token`]s back into [`Payload`]s there.
pub trait Context: Sized + Clone + Send + 'static {
    /// The unique pool id of this context, used to validate tokens.
    fn pool_id(&self) -> u32;

    /// A raw pointer to the first `size` bytes of buffer `buf_idx`.
    ///
    /// # Safety
    /// `buf_idx` must name a buffer of this context that the caller owns (it came from a token
    /// or payload of this context that has not been released), `size` must not exceed the
    /// buffer's capacity, and the caller must ensure exclusive access to the buffer region for
    /// as long as it uses the pointer.
    unsafe fn unsafe_buffer(&self, buf_idx: BufferDesc, size: usize) -> *mut [u8];

    /// Release a buffer back to the pool (to the fill ring, the mempool, the free list).
    ///
    /// Called automatically when a [`Payload`] is dropped; code outside a backend never needs
    /// to call it.
    ///
    /// **Deviation from the spec:** the spec declares `fn release(&self, buf_idx: BufferDesc)`
    /// safe. A safe `release` lets safe code hand back a buffer that a live [`Payload`] still
    /// points into, so the next receive or allocation makes a second owner of the same bytes
    /// (the pool rewrites them under the first payload, DPDK frees an mbuf twice, AF_XDP's
    /// free list turns into a cycle). Releasing is therefore `unsafe`: the misuse no longer
    /// compiles without an `unsafe` block that states the caller's promise.
    ///
    /// ```compile_fail
    /// # // Safe code cannot release a buffer that a payload still owns.
    /// use nethuns_core::{pool::PoolContext, Context};
    /// let ctx = PoolContext::new(2, 64);
    /// let p1 = ctx.alloc_payload(b"AAAA").unwrap();
    /// ctx.release(p1.buffer_desc()); // error[E0133]: call to unsafe function
    /// ```
    ///
    /// In debug builds every backend checks the promise: releasing a buffer that is not
    /// handed out panics, naming the buffer and the pool.
    ///
    /// # Safety
    /// `buf_idx` must name a buffer of this context that the caller owns (it came from a
    /// token or payload of this context and has not been released since), and nothing may use
    /// the buffer afterwards: no payload, token or pointer to it may remain.
    unsafe fn release(&self, buf_idx: BufferDesc);

    /// Convert a token into a [`Payload`].
    ///
    /// # Panics
    /// Panics if the token's pool id doesn't match this context. [`Context::try_packet`] is the
    /// fallible form.
    fn packet(&self, token: Token) -> Payload<'_, Self> {
        match self.try_packet(token) {
            Ok(p) => p,
            Err(e) => panic!("Context::packet: {e}"),
        }
    }

    /// Convert a token into a [`Payload`], or give it back inside the error if it belongs to
    /// another context.
    fn try_packet(&self, token: Token) -> std::result::Result<Payload<'_, Self>, ForeignToken> {
        if token.check_token(self) {
            Ok(Payload::new(token, self))
        } else {
            Err(ForeignToken {
                context_pool: self.pool_id(),
                token,
            })
        }
    }
}

/// A token refused by a context because it came from another pool. The token is handed back so
/// that it can still be given to its own context.
#[derive(Debug)]
pub struct ForeignToken {
    /// The pool id of the context that refused the token.
    pub context_pool: u32,
    /// The refused token.
    pub token: Token,
}

impl std::fmt::Display for ForeignToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "token of pool {} presented to context of pool {}",
            self.token.pool_id(),
            self.context_pool
        )
    }
}

impl std::error::Error for ForeignToken {}

impl From<ForeignToken> for Error {
    fn from(f: ForeignToken) -> Self {
        // The token's buffer belongs to another context and cannot be released here: turning
        // the refusal into an `Error` drops the token, which counts it in `leaked_tokens()`.
        // Keep the `ForeignToken` instead to hand the token to its own context.
        let token_pool = f.token.pool_id();
        Error::ForeignToken {
            token_pool,
            context_pool: f.context_pool,
        }
    }
}

/// Convenience: `try_packet` as a [`Result`] with the crate's [`Error`].
pub fn try_packet<C: Context>(ctx: &C, token: Token) -> Result<Payload<'_, C>> {
    ctx.try_packet(token).map_err(Error::from)
}
