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
use nethuns_core::{next_pool_id, BufferDesc, Context};

use crate::extra::ExtraPool;
use crate::sys;

/// Jumbo buffers per context: multi-slot packets that can be held at once.
pub const JUMBO_BUFFERS: usize = 16;
/// Bytes per jumbo buffer: the longest multi-slot packet received whole (longer ones are
/// skipped with `TooBigPacket`).
pub const JUMBO_SIZE: usize = 65536;
/// Descriptors at and above this name jumbo buffers.
pub const JUMBO_BASE: usize = 1 << 32;

/// What a context shares between its clones.
pub(crate) struct Shared {
    pub(crate) pool: ExtraPool,
    /// Buffers for packets spanning several slots.
    pub(crate) jumbo: BufferPool,
    pool_id: u32,
    nifp: *mut sys::netmap_if,
    /// Keeps the memory (and, for a real port, the file descriptor) alive; dropped last.
    _owner: Box<dyn Any + Send + Sync>,
}

// SAFETY: `nifp` points into memory kept alive by `_owner`; it is written only in `Drop`
// (exclusive access). The pool is Sync (atomics) and the buffers it names are owned by one
// holder at a time.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // Hand the free extra buffers back in netmap's list format so that the kernel frees
        // them when the port is closed (the owner, dropped after this, closes it).
        // SAFETY: `nifp` is inside the region `_owner` still keeps mapped; no other user exists.
        unsafe {
            std::ptr::addr_of_mut!((*self.nifp).ni_bufs_head).write_volatile(self.pool.head_idx())
        };
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
    /// A context over `pool`, writing the free list back to `nifp` when the last clone goes.
    ///
    /// # Safety
    /// `nifp` and the pool's memory are inside the region that `owner` keeps mapped.
    pub(crate) unsafe fn new(
        pool: ExtraPool,
        nifp: *mut sys::netmap_if,
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
        // SAFETY: `idx` is a buffer of the region (checked above), which `_owner` keeps mapped;
        // the caller guarantees exclusive ownership and `size` within the buffer.
        std::ptr::slice_from_raw_parts_mut(mem.buf(idx), size.min(mem.buf_size() as usize))
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
        self.shared.pool.push(buf_idx.get() as u32);
    }
}
