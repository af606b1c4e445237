//! [`DpdkContext`]: a DPDK mbuf mempool as the nethuns [`Context`]. A buffer is an mbuf; its
//! [`BufferDesc`] is the mbuf's address.
//!
//! Invariants the unsafe code here relies on:
//! - the mempool stays allocated while any clone of the context exists (`Arc<Mempool>`);
//! - a `BufferDesc` given to this context names a single-segment mbuf that the caller owns
//!   (it came from a token/payload this context's socket made), so its data is `data_len`
//!   bytes at `buf_addr + data_off` and nothing else touches it. It is an mbuf of this
//!   mempool, or of another socket's that `send_payload` sent into a loopback port (net_ring)
//!   this socket receives from: freeing returns it to its own pool (`m->pool`), which the
//!   sending socket keeps alive while it lives; a mempool some of whose mbufs went out that
//!   way is freed only once all its mbufs are back (see [`Mempool`]'s drop), so an mbuf
//!   held in another socket's ring, release cache, payload or token never outlives it.
//!
//! Releasing is batched: a released mbuf waits in the pool's [`ReleaseCache`] and goes back
//! to the mempool with the next 31 in one `rte_pktmbuf_free_bulk`, as a DPDK receive loop
//! frees its burst. The cache is shared by every clone of the context (any thread may release
//! into it); a thread that finds it taken frees its mbuf alone. The socket empties the cache
//! before it decides the pool is exhausted, and [`DpdkContext::available`] /
//! [`DpdkContext::in_use`] count it as free.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use dpdk_sys::{rte_mbuf, rte_mempool};
use nethuns_core::{next_pool_id, BufferDesc, Context, Result};

use crate::error;
use crate::flags::{DpdkFlags, BURST};

static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

/// Released mbufs waiting to go back to the mempool in one bulk free.
///
/// Invariant: `bufs[..len]` are mbufs whose owners gave them up (nothing else names them),
/// `len < BURST` between calls, and `len`/`bufs` are touched only by the thread that set
/// `busy` (or through `&mut`).
struct ReleaseCache {
    busy: AtomicBool,
    len: UnsafeCell<usize>,
    bufs: UnsafeCell<[*mut rte_mbuf; BURST]>,
}

// A panic cannot leave the cache half-updated: nothing between taking and giving back `busy`
// panics (no allocation, no indexing check, no caller code).
impl std::panic::RefUnwindSafe for ReleaseCache {}
impl std::panic::UnwindSafe for ReleaseCache {}

impl ReleaseCache {
    fn new() -> Self {
        ReleaseCache {
            busy: AtomicBool::new(false),
            len: UnsafeCell::new(0),
            bufs: UnsafeCell::new([std::ptr::null_mut(); BURST]),
        }
    }

    /// Queues `m` for the next bulk free (which happens now if the cache is full); frees it
    /// alone if another thread holds the cache.
    ///
    /// # Safety
    /// `m` is an mbuf the caller owns and gives up.
    #[inline]
    unsafe fn put(&self, m: *mut rte_mbuf) {
        if self.busy.swap(true, Ordering::Acquire) {
            // SAFETY: m is the caller's to give up; rte_pktmbuf_free is thread-safe.
            unsafe { dpdk_sys::nh_pktmbuf_free(m) };
            return;
        }
        // SAFETY: `busy` is ours, so len and bufs are ours alone (type invariant); len <
        // BURST, so the slot exists; a full cache is freed at once and emptied.
        unsafe {
            let len = &mut *self.len.get();
            let bufs = &mut *self.bufs.get();
            *bufs.get_unchecked_mut(*len) = m;
            *len += 1;
            if *len == BURST {
                dpdk_sys::rte_pktmbuf_free_bulk(bufs.as_mut_ptr(), BURST as u32);
                *len = 0;
            }
        }
        self.busy.store(false, Ordering::Release);
    }

    /// Frees what the cache holds (nothing if another thread holds it at this moment: that
    /// thread is releasing, so the pool is not starved).
    fn flush(&self) {
        if self.busy.swap(true, Ordering::Acquire) {
            return;
        }
        // SAFETY: `busy` is ours (see put); bufs[..len] are given-up mbufs.
        unsafe { Self::free(&mut *self.len.get(), &mut *self.bufs.get()) };
        self.busy.store(false, Ordering::Release);
    }

    /// # Safety
    /// `bufs[..*len]` are given-up mbufs, and the caller has exclusive access.
    unsafe fn free(len: &mut usize, bufs: &mut [*mut rte_mbuf; BURST]) {
        if *len > 0 {
            // SAFETY: per the contract.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(bufs.as_mut_ptr(), *len as u32) };
            *len = 0;
        }
    }
}

/// Owner of one `rte_mempool` of packet mbufs; frees it on drop.
pub(crate) struct Mempool {
    mp: NonNull<rte_mempool>,
    name: String,
    released: ReleaseCache,
    /// Whether `send_payload` handed some of its mbufs to another socket's port: they may
    /// come back through a loopback port into another socket's hands, so the pool is not
    /// freed while any of its mbufs is out.
    lent: AtomicBool,
}

/// Mempools whose last owner went while some of their mbufs were still out in other sockets
/// (lent by `send_payload`); each is freed by a later drop that finds all its mbufs back.
/// Mbufs leaked by unconsumed tokens keep theirs until the process ends.
static LENT_OUT: std::sync::Mutex<Vec<LentPool>> = std::sync::Mutex::new(Vec::new());

/// A mempool waiting in [`LENT_OUT`].
struct LentPool(NonNull<rte_mempool>);

// SAFETY: only the mempool's address, freed once by whichever thread finds it unused; the
// mempool calls made on it (in-use count, free) are thread-safe.
unsafe impl Send for LentPool {}

impl LentPool {
    /// Frees the mempool if all its mbufs are back; `false` if some are still out.
    ///
    /// # Safety
    /// The pool has no owner left but this entry.
    unsafe fn free_if_unused(&self) -> bool {
        // SAFETY: the pool is allocated (per the contract, nothing freed it).
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.0.as_ptr()) };
        if in_use > 0 {
            return false;
        }
        // SAFETY: no mbuf of it is out and nothing else owns it.
        unsafe { dpdk_sys::rte_mempool_free(self.0.as_ptr()) };
        true
    }
}

// SAFETY: an rte_mempool is made for use from many threads: get/put go through its lock-free
// ring (ring_mp_mc ops) or the calling lcore's private cache; non-EAL threads use no cache.
// The release cache's pointers are given-up mbufs, freeable from any thread.
unsafe impl Send for Mempool {}
// SAFETY: as above; `&Mempool` only exposes those thread-safe operations, and the release
// cache's cells are only touched by the thread holding its `busy` flag.
unsafe impl Sync for Mempool {}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the last owner is going; the port using the pool was stopped and closed
        // before (Sock drops its port before its context), and mbufs still named by unconsumed
        // tokens can no longer be turned into payloads (that needs a context). The released
        // mbufs still cached go back first (`&mut self`: no other thread is in the cache).
        unsafe {
            let c = &mut self.released;
            ReleaseCache::free(c.len.get_mut(), c.bufs.get_mut());
        }
        // A poisoned list (a panic while it was held) is still a valid list.
        let mut lent = LENT_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: the entries have no owner but the list.
        lent.retain(|p| !unsafe { p.free_if_unused() });
        let me = LentPool(self.mp);
        if *self.lent.get_mut() {
            // SAFETY: the last owner is going (see above).
            if !unsafe { me.free_if_unused() } {
                lent.push(me);
            }
        } else {
            // SAFETY: as above; none of its mbufs went to another socket.
            unsafe { dpdk_sys::rte_mempool_free(me.0.as_ptr()) };
        }
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
            pool: Arc::new(Mempool {
                mp,
                name,
                released: ReleaseCache::new(),
                lent: AtomicBool::new(false),
            }),
            pool_id: next_pool_id(),
        })
    }

    /// The raw mempool, for queue setup and allocation.
    #[inline]
    /// Marks the mempool as lending mbufs to another socket's port (`send_payload`).
    pub(crate) fn lend(&self) {
        self.pool.lent.store(true, Ordering::Relaxed);
    }

    pub(crate) fn raw(&self) -> *mut rte_mempool {
        self.pool.mp.as_ptr()
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
        // SAFETY: the pool is alive (held by self).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw()) }
    }

    /// Mbufs currently out of the mempool (released mbufs waiting for a bulk free are
    /// returned first).
    pub fn in_use(&self) -> u32 {
        self.flush_released();
        // SAFETY: the pool is alive (held by self).
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw()) }
    }

    /// What the calling thread could allocate now: the shared ring plus its own lcore cache.
    #[inline]
    pub(crate) fn available_here(&self) -> u32 {
        // SAFETY: the pool is alive (held by self).
        unsafe { dpdk_sys::nh_mempool_avail_here(self.raw()) }
    }

    /// Returns the released mbufs waiting for a bulk free to the mempool now.
    pub(crate) fn flush_released(&self) {
        self.pool.released.flush();
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
        // SAFETY: the caller owns this mbuf of our pool and gives it up (trait contract); the
        // release cache frees it with the next ones, thread-safely.
        unsafe { self.pool.released.put(buf_idx.get() as *mut rte_mbuf) }
    }
}
