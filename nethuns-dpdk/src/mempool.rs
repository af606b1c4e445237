//! [`DpdkContext`]: a DPDK mbuf mempool as the nethuns [`Context`]. A buffer is an mbuf; its
//! [`BufferDesc`] is the mbuf's address.
//!
//! Invariants the unsafe code here relies on:
//! - the mempool stays allocated while any clone of the context exists (`Arc<Mempool>`);
//! - a `BufferDesc` given to this context names a single-segment mbuf of this mempool that the
//!   caller owns (it came from a token/payload this context's socket made), so its data is
//!   `data_len` bytes at `buf_addr + data_off` and nothing else touches it.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dpdk_sys::{rte_mbuf, rte_mempool};
use nethuns_core::{next_pool_id, BufferDesc, Context, Result};

use crate::error;
use crate::flags::DpdkFlags;

static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

/// Owner of one `rte_mempool` of packet mbufs; frees it on drop.
pub(crate) struct Mempool {
    mp: NonNull<rte_mempool>,
    name: String,
}

// SAFETY: an rte_mempool is made for use from many threads: get/put go through its lock-free
// ring (ring_mp_mc ops) or the calling lcore's private cache; non-EAL threads use no cache.
unsafe impl Send for Mempool {}
// SAFETY: as above; `&Mempool` only exposes those thread-safe operations.
unsafe impl Sync for Mempool {}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the last owner is going; the port using the pool was stopped and closed
        // before (Sock drops its port before its context), and mbufs still named by unconsumed
        // tokens can no longer be turned into payloads (that needs a context).
        unsafe { dpdk_sys::rte_mempool_free(self.mp.as_ptr()) };
    }
}

/// The [`Context`] of a DPDK socket: its mbuf mempool.
///
/// Cheap to clone (an `Arc`); clones share the mempool and the pool id, so a clone can move to
/// another thread and turn tokens back into payloads there. Dropping a payload frees its mbuf
/// back to the mempool (`rte_pktmbuf_free`), which is thread-safe; on a non-EAL thread it goes
/// straight to the pool's shared ring (such threads have no per-lcore cache).
#[derive(Clone)]
pub struct DpdkContext {
    pool: Arc<Mempool>,
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
        // SAFETY: cname is a valid C string; numeric arguments were validated by
        // DpdkFlags::validate; EAL is initialised (Sock::create ensures it first).
        let mp = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                flags.num_mbufs,
                flags.mbuf_cache_size,
                0,
                flags.mbuf_default_buf_size,
                socket,
            )
        };
        let Some(mp) = NonNull::new(mp) else {
            return Err(error::last(format!(
                "creating mempool {name} of {} mbufs x {} B for {what} (raise the EAL memory, \
                 -m, or lower num_mbufs)",
                flags.num_mbufs, flags.mbuf_default_buf_size
            )));
        };
        Ok(DpdkContext {
            pool: Arc::new(Mempool { mp, name }),
            pool_id: next_pool_id(),
        })
    }

    /// The raw mempool, for queue setup and allocation.
    #[inline]
    pub(crate) fn raw(&self) -> *mut rte_mempool {
        self.pool.mp.as_ptr()
    }

    /// The mempool's name.
    pub fn name(&self) -> &str {
        &self.pool.name
    }

    /// Mbufs currently in the mempool (not held by payloads, tokens, the NIC or in-flight
    /// transmissions). Sums every lcore's cache: not for the fast path.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive (held by self).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw()) }
    }

    /// Mbufs currently out of the mempool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is alive (held by self).
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw()) }
    }

    /// What the calling thread could allocate now: the shared ring plus its own lcore cache.
    #[inline]
    pub(crate) fn available_here(&self) -> u32 {
        // SAFETY: the pool is alive (held by self).
        unsafe { dpdk_sys::nh_mempool_avail_here(self.raw()) }
    }
}

impl Context for DpdkContext {
    #[inline]
    fn pool_id(&self) -> u32 {
        self.pool_id
    }

    #[inline]
    unsafe fn unsafe_buffer(&self, buf_idx: BufferDesc, size: usize) -> *mut [u8] {
        let m = buf_idx.get() as *mut rte_mbuf;
        // SAFETY: per the trait's contract buf_idx is an mbuf of this pool the caller owns
        // (module invariants); its first segment's data starts data_off bytes into buf_addr
        // and size <= data_len.
        let data = unsafe { ((*m).buf_addr as *mut u8).add(usize::from((*m).data_off)) };
        std::ptr::slice_from_raw_parts_mut(data, size)
    }

    #[inline]
    unsafe fn release(&self, buf_idx: BufferDesc) {
        nethuns_core::ledger::released(self.pool_id, buf_idx);
        // SAFETY: the caller owns this mbuf of our pool and gives it up (trait contract);
        // rte_pktmbuf_free returns it to its pool, thread-safely.
        unsafe { dpdk_sys::nh_pktmbuf_free(buf_idx.get() as *mut rte_mbuf) }
    }
}
