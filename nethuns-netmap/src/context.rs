//! [`NetmapContext`]: the netmap memory region of a socket as a nethuns [`Context`].
//!
//! A [`BufferDesc`] is a netmap buffer index. Payloads and tokens own buffers that were swapped
//! out of RX slots, so the kernel never writes them; releasing one pushes its index onto the
//! free extra-buffer pool (lock-free, from any thread).
//!
//! A packet spanning several slots (`NS_MOREFRAG`) is copied whole into a *jumbo buffer* of
//! the context (a heap pool of [`JUMBO_BUFFERS`] buffers of [`JUMBO_SIZE`] bytes, lock-free as
//! well), so that its payload is one slice; a jumbo buffer's descriptor is [`JUMBO_BASE`] plus
//! its index in that pool (netmap buffer indices are `u32`, so the two never meet).

use std::any::Any;
use std::sync::Arc;

use nethuns_core::pool::BufferPool;
use nethuns_core::{next_pool_id, BufferDesc, Context, Token};

use crate::extra::ExtraPool;
use crate::region::NI_BUFS_HEAD;

/// Jumbo buffers per context: multi-slot packets that can be held at once.
pub const JUMBO_BUFFERS: usize = 16;
/// Bytes per jumbo buffer: the longest multi-slot packet received whole (longer ones are
/// skipped with `TooBigPacket`).
pub const JUMBO_SIZE: usize = 65536;
/// Descriptors at and above this name jumbo buffers.
pub const JUMBO_BASE: usize = 1 << 32;

/// What a context shares between its clones.
pub(crate) struct Shared {
    /// The free extra buffers; their memory (the mapped region) is in here.
    pub(crate) pool: ExtraPool,
    /// Buffers for packets spanning several slots.
    pub(crate) jumbo: BufferPool,
    pool_id: u32,
    /// Offset of the `netmap_if` in the region.
    nifp: usize,
    /// What else must outlive the region (a real port's descriptor); dropped last.
    _owner: Box<dyn Any + Send + Sync>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Hand the free extra buffers back in netmap's list format so that the kernel frees
        // them when the port is closed (the owner, dropped after this, closes it).
        let head = self.pool.head_idx();
        self.pool
            .mem()
            .map()
            .write::<u32>(self.nifp + NI_BUFS_HEAD, head);
    }
}

/// The buffer memory of a netmap socket: the port's shared memory region and its pool of extra
/// buffers. Cheap to clone (an `Arc`); clones share the pool and pool id.
///
/// The region stays mapped (and the port registered) until the socket and every clone of its
/// context are gone, so payloads and tokens stay valid after the socket is dropped. Then the
/// free extra buffers are linked back into `ni_bufs_head` for the kernel to free at close. A
/// [`Token`](nethuns_core::Token) dropped unconsumed is counted by
/// [`leaked_tokens`](nethuns_core::leaked_tokens) and its buffer is lost: out of the pool for
/// the context's life, and not handed back to netmap at close.
#[derive(Clone)]
pub struct NetmapContext {
    pub(crate) shared: Arc<Shared>,
}

impl NetmapContext {
    /// A context over `pool`, writing the free list back to the `netmap_if` at offset `nifp`
    /// of the pool's region when the last clone goes.
    pub(crate) fn new(
        pool: ExtraPool,
        nifp: usize,
        owner: Box<dyn Any + Send + Sync>,
    ) -> NetmapContext {
        NetmapContext {
            shared: Arc::new(Shared {
                pool,
                jumbo: BufferPool::new(JUMBO_BUFFERS, JUMBO_SIZE),
                pool_id: next_pool_id(),
                nifp,
                _owner: owner,
            }),
        }
    }

    /// The token of a packet of `len` bytes in buffer `desc` (a netmap buffer index, or
    /// [`JUMBO_BASE`] plus a jumbo buffer's), which the caller just took for it: swapped out
    /// of its RX slot (so no slot, pool entry or other token names it), `len` checked against
    /// the buffer's size.
    ///
    /// # Safety
    /// As said: the caller alone owns buffer `desc`, which holds at least `len` bytes, and
    /// gives it up to the token.
    #[inline]
    pub(crate) unsafe fn token(&self, desc: usize, len: u32) -> Token {
        // SAFETY: the caller hands over a buffer it alone owns, holding `len` bytes (this
        // function's contract); the token names this context's pool.
        unsafe { Token::new(BufferDesc::new(desc), len, self.shared.pool_id) }
    }

    /// Takes a jumbo buffer and lets `fill` write a packet of at most `len` bytes
    /// ([`JUMBO_SIZE`] at most) into it; `fill` returns the length written and a value, or an
    /// error, in which case the buffer goes back. `None` when every jumbo buffer is held.
    pub(crate) fn jumbo_packet<T, E>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> std::result::Result<(usize, T), E>,
    ) -> Option<std::result::Result<(Token, T), E>> {
        let jumbo = &self.shared.jumbo;
        assert!(
            len <= jumbo.buffer_size(),
            "netmap: {len} bytes for a jumbo buffer"
        );
        let desc = jumbo.get()?;
        // SAFETY: `desc` was just taken from the jumbo pool: this call owns the buffer, and
        // `len` is at most its size.
        let p = unsafe { jumbo.buffer_ptr(desc, len) };
        // SAFETY: `p` is the owned buffer's first `len` bytes, referred to by nothing else.
        let dst = unsafe { &mut *p };
        Some(match fill(dst) {
            // SAFETY: the jumbo buffer `desc` is this call's (taken above), `n` ≤ `len` bytes
            // of it written; it passes to the token.
            Ok((n, v)) => Ok((unsafe { self.token(JUMBO_BASE + desc.get(), n as u32) }, v)),
            Err(e) => {
                // SAFETY: `desc` is ours and handed to nobody (`dst` is not used any more).
                unsafe { jumbo.put(desc) };
                Err(e)
            }
        })
    }

    /// Lends the first `len` bytes of netmap buffer `buf` to `f`: only for the buffer of the
    /// free TX slot at `head` that `ring::tx_reserve` gave out, which belongs to the user side
    /// until `tx_commit` moves `head` past it (on this thread: the engine is not `Sync`).
    ///
    /// # Safety
    /// `buf` is that buffer, `len` at most its size, and nothing else refers to its bytes
    /// while `f` runs.
    #[inline]
    pub(crate) unsafe fn lend_tx_buffer<R>(
        &self,
        buf: u32,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        let mem = self.shared.pool.mem();
        // Both checked by the engine already (`tx_reserve`, the frame size).
        debug_assert!(mem.valid(buf) && len <= mem.buf_size() as usize);
        // SAFETY: `buf` is a buffer of the region (above) and `range` checks that its `len`
        // bytes are inside the mapping, which the context keeps mapped; the kernel does not
        // touch a TX slot's buffer before a sync after `head` passed it, and nothing else
        // refers to it meanwhile (this function's contract).
        f(unsafe { &mut *mem.range(buf, len) })
    }

    /// How many extra buffers netmap granted (`nr_extra_bufs` after registration): the most
    /// packets that can be held (as payloads or tokens) at once.
    pub fn extra_buffers(&self) -> u32 {
        self.shared.pool.total()
    }

    /// How many extra buffers are free now (not held by a payload or token).
    pub fn free_extra_buffers(&self) -> u32 {
        self.shared.pool.free()
    }

    /// Jumbo buffers free now (for packets spanning several slots).
    pub fn free_jumbo_buffers(&self) -> usize {
        self.shared.jumbo.free_count()
    }

    /// The size of every netmap buffer (`nr_buf_size`): the largest packet a slot holds.
    pub fn buf_size(&self) -> u32 {
        self.shared.pool.mem().buf_size()
    }

    #[inline]
    pub(crate) fn pool(&self) -> &ExtraPool {
        &self.shared.pool
    }
}

impl std::fmt::Debug for NetmapContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetmapContext")
            .field("pool_id", &self.shared.pool_id)
            .field("buf_size", &self.buf_size())
            .field("extra_buffers", &self.extra_buffers())
            .field("free_extra_buffers", &self.free_extra_buffers())
            .finish()
    }
}

impl Context for NetmapContext {
    #[inline]
    fn pool_id(&self) -> u32 {
        self.shared.pool_id
    }

    #[inline]
    unsafe fn unsafe_buffer(&self, buf_idx: BufferDesc, size: usize) -> *mut [u8] {
        if buf_idx.get() >= JUMBO_BASE {
            // SAFETY: (caller's contract) the jumbo buffer is owned by the caller and `size`
            // is within it.
            return unsafe {
                self.shared
                    .jumbo
                    .buffer_ptr(BufferDesc::new(buf_idx.get() - JUMBO_BASE), size)
            };
        }
        let mem = self.shared.pool.mem();
        let idx = buf_idx.get() as u32;
        assert!(
            mem.valid(idx) && buf_idx.get() <= u32::MAX as usize,
            "netmap: buffer {} is not in this region",
            buf_idx.get()
        );
        debug_assert!(size <= mem.buf_size() as usize);
        // `idx` is a buffer of the region (checked above), which the context keeps mapped;
        // the caller guarantees exclusive ownership.
        mem.range(idx, size.min(mem.buf_size() as usize))
    }

    #[inline]
    unsafe fn release(&self, buf_idx: BufferDesc) {
        nethuns_core::ledger::released(self.pool_id(), buf_idx);
        if buf_idx.get() >= JUMBO_BASE {
            // SAFETY: (caller's contract) a jumbo buffer this context handed out, released once.
            unsafe {
                self.shared
                    .jumbo
                    .put(BufferDesc::new(buf_idx.get() - JUMBO_BASE))
            };
            return;
        }
        // SAFETY: (caller's contract) a buffer this context handed out, released once: no
        // slot names it and it is not in the list.
        unsafe { self.shared.pool.list.push(buf_idx.get() as u32) };
    }
}
