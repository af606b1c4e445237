//! [`DpdkContext`]: a DPDK mbuf mempool as the nethuns [`Context`]. A buffer is an mbuf; its
//! [`BufferDesc`] is the mbuf's address (the mempool and the mbufs themselves are owned by
//! the types of [`crate::mbuf`]).
//!
//! A `BufferDesc` given to this context names a single-segment mbuf that the caller owns (it
//! came from a token/payload this context's socket made), so its data is `data_len` bytes at
//! `buf_addr + data_off` and nothing else touches it. It is an mbuf of this mempool, or of
//! another socket's that `send_payload` sent into a loopback port (net_ring) this socket
//! receives from: freeing returns it to its own pool, which the sending socket keeps alive
//! while it lives (see [`Mempool`]).
//!
//! Releasing is batched: a released mbuf waits in the pool's release cache and goes back
//! to the mempool with the next 31 in one `rte_pktmbuf_free_bulk`, as a DPDK receive loop
//! frees its burst. The cache is shared by every clone of the context (any thread may release
//! into it); a thread that finds it taken frees its mbuf alone. The socket empties the cache
//! before it decides the pool is exhausted, and [`DpdkContext::available`] /
//! [`DpdkContext::in_use`] count it as free.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use nethuns_core::{next_pool_id, BufferDesc, Context, Result};

use crate::error;
use crate::flags::DpdkFlags;
use crate::mbuf::{self, Mbuf, Mempool};

static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

/// A mempool and its name.
struct Pool {
    mp: Mempool,
    name: String,
}

/// The [`Context`] of a DPDK socket: its mbuf mempool.
///
/// Cheap to clone (an `Arc`); clones share the mempool and the pool id, so a clone can move to
/// another thread and turn tokens back into payloads there. Dropping a payload frees its mbuf
/// back to the mempool (`rte_pktmbuf_free`), which is thread-safe; on a non-EAL thread it goes
/// straight to the pool's shared ring (such threads have no per-lcore cache).
#[derive(Clone)]
pub struct DpdkContext {
    pool: Arc<Pool>,
    pool_id: u32,
}

impl std::fmt::Debug for DpdkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkContext")
            .field("mempool", &self.pool.name)
            .field("pool_id", &self.pool_id)
            .finish()
    }
}

impl DpdkContext {
    /// Creates a mempool of `flags.num_mbufs` packet mbufs on NUMA `socket` (negative: any).
    pub(crate) fn create(flags: &DpdkFlags, socket: i32, what: &str) -> Result<Self> {
        let n = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
        let name = format!("nh_mp_{}_{n}", std::process::id());
        let cname = CString::new(name.as_str()).expect("no NUL in mempool name");
        let mp = Mempool::create(
            &cname,
            flags.num_mbufs,
            flags.mbuf_cache_size,
            flags.mbuf_default_buf_size,
            socket,
        )
        .map_err(|code| {
            error::engine(
                format!(
                    "creating mempool {name} of {} mbufs x {} B for {what} (raise the EAL \
                     memory, -m, or lower num_mbufs)",
                    flags.num_mbufs, flags.mbuf_default_buf_size
                ),
                code,
            )
        })?;
        Ok(DpdkContext {
            pool: Arc::new(Pool { mp, name }),
            pool_id: next_pool_id(),
        })
    }

    /// Marks the mempool as lending mbufs to another socket's port (`send_payload`).
    pub(crate) fn lend(&self) {
        self.pool.mp.lend();
    }

    /// The mempool, for queue setup and allocation.
    #[inline(always)]
    pub(crate) fn mempool(&self) -> &Mempool {
        &self.pool.mp
    }

    /// The mempool's name.
    pub fn name(&self) -> &str {
        &self.pool.name
    }

    /// Mbufs currently in the mempool (not held by payloads, tokens, the NIC or in-flight
    /// transmissions); released mbufs waiting for a bulk free are returned first. Sums every
    /// lcore's cache: not for the fast path.
    pub fn available(&self) -> u32 {
        self.flush_released();
        self.pool.mp.avail_count()
    }

    /// Mbufs currently out of the mempool (released mbufs waiting for a bulk free are
    /// returned first).
    pub fn in_use(&self) -> u32 {
        self.flush_released();
        self.pool.mp.in_use_count()
    }

    /// What the calling thread could allocate now: the shared ring plus its own lcore cache.
    #[inline]
    pub(crate) fn available_here(&self) -> u32 {
        self.pool.mp.avail_here()
    }

    /// Returns the released mbufs waiting for a bulk free to the mempool now.
    pub(crate) fn flush_released(&self) {
        self.pool.mp.released().flush();
    }
}

impl Context for DpdkContext {
    #[inline]
    fn pool_id(&self) -> u32 {
        self.pool_id
    }

    #[inline]
    unsafe fn unsafe_buffer(&self, buf_idx: BufferDesc, size: usize) -> *mut [u8] {
        // SAFETY: per the trait's contract buf_idx is a buffer of this context the caller
        // owns (an mbuf, see the module docs), and size <= its data_len.
        unsafe { mbuf::data_ptr(buf_idx, size) }
    }

    #[inline]
    unsafe fn release(&self, buf_idx: BufferDesc) {
        nethuns_core::ledger::released(self.pool_id, buf_idx);
        // SAFETY: the caller owns this mbuf and gives it up (trait contract); the release
        // cache frees it with the next ones, thread-safely.
        self.pool
            .mp
            .released()
            .put(unsafe { Mbuf::from_desc(buf_idx) });
    }
}
