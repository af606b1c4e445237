//! The mbuf memory: the owners of every raw DPDK pointer of the crate, and their DPDK calls.
//!
//! - [`Mbuf`]: one mbuf, freed on drop; safe accessors of its fields and data, and the
//!   conversions to and from the [`Token`] of a [`DpdkContext`].
//! - [`RxBurst`], [`TxBurst`], [`Stash`]: up to [`BURST`] mbufs in a row, what
//!   `rte_eth_rx_burst` fills, `rte_eth_tx_burst` takes and `rte_pktmbuf_alloc_bulk` stocks,
//!   changed through `&self` (cells: a socket is `!Sync`).
//! - [`Mempool`]: the owner of one `rte_mempool`, with the release cache its context's clones
//!   share ([`ReleaseCache`]) and the rule that frees it only once no mbuf of it can be used.
//!
//! Invariants the code here relies on:
//! - an [`Mbuf`] names a valid mbuf that it alone owns (the driver gave it, or a bulk
//!   allocation, or a token/payload gave it up); the mbuf's first segment's data is
//!   `data_len` bytes at `buf_addr + data_off`, inside its buffer of `buf_len` bytes;
//! - an mbuf's mempool outlives it: the socket frees its bursts before its context, a
//!   context's mempool lives while any clone of the context does, and a mempool some of whose
//!   mbufs `send_payload` lent to another socket is freed only once all its mbufs are back
//!   ([`Mempool`]'s drop);
//! - a [`Token`] of a [`DpdkContext`] names an mbuf it owns (made by [`Mbuf::into_token`]).

use std::cell::{Cell, UnsafeCell};
use std::ffi::CStr;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys::{rte_mbuf, rte_mempool};
use nethuns_core::{BufferDesc, Context, Payload, Token};

use crate::context::DpdkContext;
use crate::flags::BURST;
use crate::sys::{EthQueue, RxTimestamp};

/// One mbuf this value owns; dropping it frees the mbuf (`rte_pktmbuf_free`, the whole chain)
/// into its mempool.
pub(crate) struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an owned mbuf may be used and freed on any thread (mempool puts are thread-safe).
unsafe impl Send for Mbuf {}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: the mbuf is ours alone (type invariant) and given up here.
        unsafe { dpdk_sys::nh_pktmbuf_free(self.0.as_ptr()) };
    }
}

impl Mbuf {
    /// # Safety
    /// `m` is a valid mbuf the caller owns and gives up.
    #[inline(always)]
    unsafe fn from_raw(m: *mut rte_mbuf) -> Self {
        debug_assert!(!m.is_null());
        // SAFETY: non-null per the contract.
        Mbuf(unsafe { NonNull::new_unchecked(m) })
    }

    /// The mbuf a [`BufferDesc`] of a [`DpdkContext`] names.
    ///
    /// # Safety
    /// The caller owns that buffer (the trait contract of [`nethuns_core::Context::release`],
    /// or a token just given up) and gives it up.
    #[inline(always)]
    pub(crate) unsafe fn from_desc(desc: BufferDesc) -> Self {
        // SAFETY: a DpdkContext's buffer descriptor is an mbuf's address (`into_token`), and
        // the caller gives up its ownership.
        unsafe { Self::from_raw(desc.get() as *mut rte_mbuf) }
    }

    /// Gives the mbuf up (to the driver, or to a bulk free) without freeing it.
    #[inline(always)]
    fn into_raw(self) -> *mut rte_mbuf {
        ManuallyDrop::new(self).0.as_ptr()
    }

    #[inline(always)]
    fn raw(&self) -> &rte_mbuf {
        // SAFETY: a valid mbuf, ours alone (type invariant).
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn raw_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: a valid mbuf, ours alone (type invariant), borrowed mutably through us.
        unsafe { self.0.as_mut() }
    }

    /// Segments in the chain.
    #[inline(always)]
    pub(crate) fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The offload flags (`RTE_MBUF_F_*`).
    #[inline(always)]
    pub(crate) fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// Keeps only the `ol_flags` bits of `mask`.
    #[inline(always)]
    pub(crate) fn keep_ol_flags(&mut self, mask: u64) {
        self.raw_mut().ol_flags &= mask;
    }

    /// Bytes of data in the first segment.
    #[inline(always)]
    pub(crate) fn data_len(&self) -> u16 {
        self.raw().data_len
    }

    /// Bytes of the whole packet.
    #[inline(always)]
    pub(crate) fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// The TCI of a VLAN tag the driver stripped (valid with `RTE_MBUF_F_RX_VLAN`).
    #[inline(always)]
    pub(crate) fn vlan_tci(&self) -> u16 {
        self.raw().vlan_tci
    }

    /// The RSS hash (valid with `RTE_MBUF_F_RX_RSS_HASH`).
    #[inline(always)]
    pub(crate) fn rss(&self) -> u32 {
        // SAFETY: the hash unions are plain data: any bits are a valid value.
        let hash = unsafe { self.raw().__bindgen_anon_2.hash };
        // SAFETY: as above.
        unsafe { hash.rss }
    }

    /// The RX timestamp field (valid with the field's flag in `ol_flags`).
    #[inline(always)]
    pub(crate) fn timestamp(&self, f: &RxTimestamp) -> u64 {
        let field = self.0.as_ptr().cast::<u8>().wrapping_add(f.offset());
        // SAFETY: the registered field lies 8 bytes inside the mbuf header (RxTimestamp's
        // invariant), which is ours; read unaligned, as a u64 of any bits.
        unsafe { std::ptr::read_unaligned(field.cast::<u64>()) }
    }

    /// Where the first segment's data starts.
    #[inline(always)]
    fn data_start(r: &rte_mbuf) -> *mut u8 {
        r.buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(r.data_off))
    }

    /// The first segment's data.
    #[inline(always)]
    pub(crate) fn data(&self) -> &[u8] {
        let r = self.raw();
        // SAFETY: the first segment's data, `data_len` initialised bytes inside the buffer
        // (type invariant), borrowed through us.
        unsafe { std::slice::from_raw_parts(Self::data_start(r), usize::from(r.data_len)) }
    }

    /// The first segment's data, writable.
    #[inline(always)]
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        let r = self.raw_mut();
        // SAFETY: as in `data`, borrowed mutably through us.
        unsafe { std::slice::from_raw_parts_mut(Self::data_start(r), usize::from(r.data_len)) }
    }

    /// Moves the data start `n` bytes into the headroom (`rte_pktmbuf_prepend` of a
    /// single-segment mbuf); `false`, unchanged, if the headroom is smaller.
    #[inline]
    pub(crate) fn prepend(&mut self, n: u16) -> bool {
        let r = self.raw_mut();
        if r.data_off < n {
            return false;
        }
        r.data_off -= n;
        r.data_len += n;
        r.pkt_len += u32::from(n);
        true
    }

    /// Makes the data of a reset (empty, single-segment) mbuf its first `len` bytes
    /// (`rte_pktmbuf_append`) and returns them; `None`, unchanged, if the room after the
    /// headroom is smaller.
    #[inline(always)]
    pub(crate) fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let r = self.raw_mut();
        if usize::from(r.data_off) + len > usize::from(r.buf_len) {
            return None;
        }
        r.data_len = len as u16;
        r.pkt_len = len as u32;
        // SAFETY: data_off + len <= buf_len (checked): inside the buffer, ours, borrowed
        // mutably through us (the bytes are the mempool's memory, written before).
        Some(unsafe { std::slice::from_raw_parts_mut(Self::data_start(r), len) })
    }

    /// Makes a single-segment mbuf's data (and packet) its first `len` bytes (no effect if
    /// it has fewer).
    #[inline(always)]
    pub(crate) fn truncate(&mut self, len: usize) {
        let r = self.raw_mut();
        let len = len.min(usize::from(r.data_len));
        r.data_len = len as u16;
        r.pkt_len = len as u32;
    }

    /// The token of this mbuf in `ctx`: ownership moves into it, with the data's length.
    #[inline(always)]
    pub(crate) fn into_token(self, ctx: &DpdkContext) -> Token {
        let len = u32::from(self.data_len());
        let desc = BufferDesc::new(self.into_raw() as usize);
        // SAFETY: the mbuf was ours alone and now the token's; `len` is its data length. Any
        // DpdkContext serves any mbuf of the process (module invariants).
        unsafe { Token::new(desc, len, ctx.pool_id()) }
    }

    /// The payload of this mbuf in `ctx` (ownership moves into it).
    #[inline(always)]
    pub(crate) fn into_payload(self, ctx: &DpdkContext) -> Payload<'_, DpdkContext> {
        let t = self.into_token(ctx);
        // SAFETY: the token was made for `ctx` just now.
        unsafe { Payload::from_token_unchecked(t, ctx) }
    }

    /// The mbuf of a token of `ctx` (given back if it belongs to another context). The debug
    /// ledger forgets it: whoever takes the mbuf frees it, not a release.
    #[inline]
    pub(crate) fn from_token(t: Token, ctx: &DpdkContext) -> Result<Mbuf, Token> {
        if t.pool_id() != ctx.pool_id() {
            return Err(t);
        }
        let (desc, _, _) = t.into_raw();
        // SAFETY: a token of a DpdkContext owns its mbuf (module invariants), given up here.
        Ok(unsafe { Self::from_desc(desc) })
    }
}

/// The data of the mbuf `desc` names, `size` bytes.
///
/// # Safety
/// `desc` is an mbuf of a [`DpdkContext`] the caller owns, and `size <= data_len`.
#[inline(always)]
pub(crate) unsafe fn data_ptr(desc: BufferDesc, size: usize) -> *mut [u8] {
    let m = desc.get() as *const rte_mbuf;
    // SAFETY: a valid mbuf (the contract), read without forming a reference (the caller may
    // hold references to its data).
    let buf = unsafe { (*m).buf_addr };
    // SAFETY: as above.
    let off = unsafe { (*m).data_off };
    // SAFETY: the data starts data_off bytes into the buffer.
    let data = unsafe { buf.cast::<u8>().add(usize::from(off)) };
    std::ptr::slice_from_raw_parts_mut(data, size)
}

/// [`BURST`] mbuf slots, written through `&self` (cells, so `!Sync`); which of them hold
/// owned mbufs is the invariant of the type that has them.
struct Slots([Cell<*mut rte_mbuf>; BURST]);

impl Slots {
    fn new() -> Self {
        Slots([const { Cell::new(std::ptr::null_mut()) }; BURST])
    }

    /// Slot `i` and the ones after it, as DPDK's burst functions take them (writable: the
    /// slots are cells).
    #[inline(always)]
    fn at(&self, i: usize) -> *mut *mut rte_mbuf {
        debug_assert!(i <= BURST);
        self.0
            .as_ptr()
            .cast_mut()
            .cast::<*mut rte_mbuf>()
            .wrapping_add(i)
    }

    /// The pointer in slot `i`.
    ///
    /// # Safety
    /// `i < BURST`.
    #[inline(always)]
    unsafe fn get(&self, i: usize) -> *mut rte_mbuf {
        // SAFETY: i < BURST (the contract).
        unsafe { self.0.get_unchecked(i) }.get()
    }

    /// Frees the mbufs of slots `from..to` (one `rte_pktmbuf_free_bulk`).
    ///
    /// # Safety
    /// `from <= to <= BURST`, and the slots hold mbufs the caller owns and gives up.
    unsafe fn free(&self, from: usize, to: usize) {
        if from < to {
            // SAFETY: owned mbufs in bounds (the contract), given up here.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.at(from), (to - from) as u32) };
        }
    }
}

/// The last RX burst: slots `head..len` hold received mbufs not handed out yet (`head <= len
/// <= BURST`). Dropping it frees them.
pub(crate) struct RxBurst {
    slots: Slots,
    head: Cell<usize>,
    len: Cell<usize>,
}

// SAFETY: the mbufs it owns may move to another thread with it (Mbuf's reason).
unsafe impl Send for RxBurst {}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}

impl RxBurst {
    /// An empty burst.
    pub(crate) fn new() -> Self {
        RxBurst {
            slots: Slots::new(),
            head: Cell::new(0),
            len: Cell::new(0),
        }
    }

    /// The mbufs not handed out yet.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len.get() - self.head.get()
    }

    /// Whether every mbuf of the burst was handed out.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.get() == self.len.get()
    }

    /// Hands out the next mbuf.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<Mbuf> {
        let head = self.head.get();
        if head == self.len.get() {
            return None;
        }
        self.head.set(head + 1);
        // SAFETY: head < len <= BURST (type invariant).
        let m = unsafe { self.slots.get(head) };
        // SAFETY: an owned mbuf (type invariant), handed over now that head moved past it.
        Some(unsafe { Mbuf::from_raw(m) })
    }

    /// Frees the mbufs not handed out.
    pub(crate) fn free_all(&self) {
        // SAFETY: slots head..len hold owned mbufs (type invariant), given up here.
        unsafe { self.slots.free(self.head.get(), self.len.get()) };
        self.head.set(0);
        self.len.set(0);
    }

    /// Receives up to [`BURST`] mbufs from `q` into the used-up burst (one
    /// `rte_eth_rx_burst`); returns how many came.
    #[inline(always)]
    pub(crate) fn receive(&self, q: &EthQueue) -> usize {
        self.receive_at_most(q, BURST)
    }

    /// [`RxBurst::receive`] of at most `max` mbufs.
    #[inline(always)]
    fn receive_at_most(&self, q: &EthQueue, max: usize) -> usize {
        debug_assert!(max <= BURST);
        debug_assert!(
            self.is_empty(),
            "an RX burst refilled before it was used up"
        );
        // SAFETY: the queue pair is set up, ours alone, and polled by one thread (EthQueue's
        // invariant); the slots have room for `max` <= BURST pointers (both callers). Mbufs
        // still held would be overwritten, not freed: a leak, which the debug assertion
        // reports.
        let n = unsafe {
            dpdk_sys::inline::rx_burst(q.port(), q.queue(), self.slots.at(0), max as u16)
        };
        // The driver writes and returns at most `max` (rte_eth_rx_burst's contract, which
        // the array's bound relies on already).
        let n = usize::from(n);
        debug_assert!(n <= max);
        if n > 0 {
            self.head.set(0);
            self.len.set(n);
        }
        n
    }

    /// [`RxBurst::receive`] of at most `max` mbufs (fewer than [`BURST`] when the mempool
    /// runs low).
    #[cold]
    pub(crate) fn receive_up_to(&self, q: &EthQueue, max: usize) -> usize {
        self.receive_at_most(q, max.min(BURST))
    }
}

/// What a [`TxBurst`] submission did: frames the driver took, and frames it refused (freed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flushed {
    pub(crate) sent: usize,
    pub(crate) refused: usize,
}

/// Filled mbufs waiting for `rte_eth_tx_burst`: slots `..len` (`len < BURST` between calls: a
/// full burst is submitted at once). Dropping it frees them.
pub(crate) struct TxBurst {
    slots: Slots,
    len: Cell<usize>,
}

// SAFETY: as for RxBurst.
unsafe impl Send for TxBurst {}

impl Drop for TxBurst {
    fn drop(&mut self) {
        // SAFETY: slots ..len hold owned mbufs (type invariant), given up here.
        unsafe { self.slots.free(0, self.len.get()) };
    }
}

impl TxBurst {
    /// An empty burst.
    pub(crate) fn new() -> Self {
        TxBurst {
            slots: Slots::new(),
            len: Cell::new(0),
        }
    }

    /// The frames waiting.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// Queues `m`; a full burst is submitted to `q` at once (as [`TxBurst::submit`] with
    /// `tries`), which is then returned.
    #[inline(always)]
    pub(crate) fn push(&self, m: Mbuf, q: &EthQueue, tries: usize) -> Option<Flushed> {
        let len = self.len.get();
        // SAFETY: len < BURST (type invariant), so the slot exists; it is free.
        unsafe { self.slots.0.get_unchecked(len) }.set(m.into_raw());
        self.len.set(len + 1);
        (len + 1 == BURST).then(|| self.submit(q, tries))
    }

    /// Offers the waiting frames to the driver of `q`, at most `tries` times while it takes
    /// only part of them, and frees what it would not take; empty afterwards. Once per burst:
    /// out of line, to keep `send` small enough to inline.
    #[inline(never)]
    pub(crate) fn submit(&self, q: &EthQueue, tries: usize) -> Flushed {
        let len = self.len.get();
        let mut sent = 0usize;
        for _ in 0..tries {
            if sent == len {
                break;
            }
            // SAFETY: the queue pair is set up and ours alone (EthQueue's invariant); slots
            // sent..len hold owned mbufs, of which the driver takes (and owns) the first `n`.
            let n = unsafe {
                dpdk_sys::inline::tx_burst(
                    q.port(),
                    q.queue(),
                    self.slots.at(sent),
                    (len - sent) as u16,
                )
            };
            sent += usize::from(n).min(len - sent);
        }
        // SAFETY: slots sent..len still hold owned mbufs (the driver did not take them).
        unsafe { self.slots.free(sent, len) };
        self.len.set(0);
        Flushed {
            sent,
            refused: len - sent,
        }
    }
}

/// What [`Stash::take`] found.
pub(crate) enum Fresh {
    /// A fresh mbuf whose data is the asked length.
    Mbuf(Mbuf),
    /// The length does not fit an mbuf of the pool.
    TooBig,
    /// The stash is empty: refill it.
    Empty,
}

/// Fresh (reset, single-segment) mbufs of one mempool, taken by `send` before any other
/// allocation: slots `..len` (`len <= BURST`), each with `room` bytes of data room after its
/// headroom. Dropping it frees them.
pub(crate) struct Stash {
    slots: Slots,
    len: Cell<usize>,
    room: usize,
}

// SAFETY: as for RxBurst.
unsafe impl Send for Stash {}

impl Drop for Stash {
    fn drop(&mut self) {
        self.free_all();
    }
}

impl Stash {
    /// An empty stash for mbufs of `pool`.
    pub(crate) fn new(pool: &Mempool) -> Self {
        Stash {
            slots: Slots::new(),
            len: Cell::new(0),
            room: usize::from(pool.room()),
        }
    }

    /// Whether it holds none.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Fills the empty stash with [`BURST`] fresh mbufs of `pool` (one
    /// `rte_pktmbuf_alloc_bulk`); `false`, still empty, if the pool cannot give them all.
    pub(crate) fn refill(&self, pool: &Mempool) -> bool {
        // The room promised for the stash's mbufs.
        assert!(
            usize::from(pool.room()) >= self.room,
            "a stash refilled from another mempool"
        );
        if !self.is_empty() {
            return true;
        }
        // SAFETY: a live mempool (borrowed); the slots have room for BURST pointers, which
        // the call fills all or none of.
        let ret = unsafe {
            dpdk_sys::nh_pktmbuf_alloc_bulk(pool.as_ptr(), self.slots.at(0), BURST as u32)
        };
        if ret != 0 {
            return false;
        }
        self.len.set(BURST);
        true
    }

    /// Frees the mbufs it holds.
    pub(crate) fn free_all(&self) {
        // SAFETY: slots ..len hold owned mbufs (type invariant), given up here.
        unsafe { self.slots.free(0, self.len.get()) };
        self.len.set(0);
    }

    /// The last fresh mbuf, its data set to `len` bytes (uninitialised bytes are the
    /// mempool's memory, written before).
    #[inline(always)]
    fn pop_sized(&self, len: usize) -> Fresh {
        if len > self.room {
            return Fresh::TooBig;
        }
        let n = self.len.get();
        if n == 0 {
            return Fresh::Empty;
        }
        self.len.set(n - 1);
        // SAFETY: n - 1 < len <= BURST (type invariant).
        let m = unsafe { self.slots.get(n - 1) };
        // SAFETY: an owned fresh mbuf (type invariant), handed over now that len moved
        // before it.
        let mut m = unsafe { Mbuf::from_raw(m) };
        let r = m.raw_mut();
        r.data_len = len as u16;
        r.pkt_len = len as u32;
        Fresh::Mbuf(m)
    }

    /// A fresh mbuf whose data is `len` bytes (to be written), if one fits and the stash
    /// has one.
    #[inline(always)]
    pub(crate) fn take(&self, len: usize) -> Fresh {
        self.pop_sized(len)
    }

    /// A fresh mbuf holding a copy of `frame`, if it fits and the stash has one.
    #[inline(always)]
    pub(crate) fn take_copy(&self, frame: &[u8]) -> Fresh {
        let f = self.pop_sized(frame.len());
        if let Fresh::Mbuf(m) = &f {
            let dst = Mbuf::data_start(m.raw());
            // SAFETY: a fresh mbuf of the pool has `room` >= frame.len() bytes after
            // data_off (checked in pop_sized), ours alone; `frame` is another allocation.
            unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), dst, frame.len()) };
        }
        f
    }
}

/// Released mbufs waiting to go back to the mempool in one bulk free, shared by the clones
/// of a context on any threads: a thread takes it with the `busy` flag, and one that finds it
/// taken frees its mbuf alone.
///
/// Invariant: `bufs[..len]` are mbufs whose owners gave them up (nothing else names them),
/// `len < BURST` between calls, and `len`/`bufs` are touched only by the thread that set
/// `busy` (or through `&mut`).
pub(crate) struct ReleaseCache {
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
    #[inline]
    pub(crate) fn put(&self, m: Mbuf) {
        if self.busy.swap(true, Ordering::Acquire) {
            drop(m);
            return;
        }
        let m = m.into_raw();
        // SAFETY: `busy` is ours, so len and bufs are ours alone (type invariant).
        let len = unsafe { &mut *self.len.get() };
        // SAFETY: as above.
        let bufs = unsafe { &mut *self.bufs.get() };
        // SAFETY: len < BURST between calls (type invariant), so the slot exists.
        *unsafe { bufs.get_unchecked_mut(*len) } = m;
        *len += 1;
        if *len == BURST {
            // SAFETY: a full cache of given-up mbufs, freed and emptied.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(bufs.as_mut_ptr(), BURST as u32) };
            *len = 0;
        }
        self.busy.store(false, Ordering::Release);
    }

    /// Frees what the cache holds (nothing if another thread holds it at this moment: that
    /// thread is releasing, so the pool is not starved).
    pub(crate) fn flush(&self) {
        if self.busy.swap(true, Ordering::Acquire) {
            return;
        }
        // SAFETY: `busy` is ours (see put).
        let len = unsafe { &mut *self.len.get() };
        // SAFETY: as above.
        let bufs = unsafe { &mut *self.bufs.get() };
        Self::free(len, bufs);
        self.busy.store(false, Ordering::Release);
    }

    /// Frees `bufs[..*len]`, given-up mbufs the caller has exclusive access to.
    fn free(len: &mut usize, bufs: &mut [*mut rte_mbuf; BURST]) {
        if *len > 0 {
            // SAFETY: bufs[..len] are given-up mbufs (type invariant), freed once here.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(bufs.as_mut_ptr(), *len as u32) };
            *len = 0;
        }
    }
}

/// Owner of one `rte_mempool` of packet mbufs with its release cache; frees the pool on drop
/// (or, if some of its mbufs were lent to another socket, once they are all back).
pub(crate) struct Mempool {
    mp: NonNull<rte_mempool>,
    /// The data room of its mbufs after the headroom.
    room: u16,
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
    fn free_if_unused(&self) -> bool {
        // SAFETY: the pool is allocated (nothing freed it: it has no owner but this entry).
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.0.as_ptr()) };
        if in_use > 0 {
            return false;
        }
        // SAFETY: no mbuf of it is out, its port is closed, and nothing else owns it.
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
        // The last owner is going: the port using the pool was stopped and closed before
        // (Sock drops its port before its context), and mbufs still named by unconsumed
        // tokens can no longer be turned into payloads (that needs a context). The released
        // mbufs still cached go back first (`&mut self`: no other thread is in the cache).
        let c = &mut self.released;
        ReleaseCache::free(c.len.get_mut(), c.bufs.get_mut());
        // A poisoned list (a panic while it was held) is still a valid list.
        let mut lent = LENT_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lent.retain(|p| !p.free_if_unused());
        let me = LentPool(self.mp);
        if *self.lent.get_mut() {
            if !me.free_if_unused() {
                lent.push(me);
            }
        } else {
            // SAFETY: as above; none of its mbufs went to another socket.
            unsafe { dpdk_sys::rte_mempool_free(me.0.as_ptr()) };
        }
    }
}

impl Mempool {
    /// `rte_pktmbuf_pool_create(name, n, cache, 0, data_room, socket)`: `Err(rte_errno)`.
    pub(crate) fn create(
        name: &CStr,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Self, i32> {
        // SAFETY: a valid C string and plain numbers (checked by DpdkFlags::validate, and by
        // DPDK); the EAL is initialised (Sock::create ensures it first).
        let mp = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(name.as_ptr(), n, cache, 0, data_room, socket)
        };
        let mp = NonNull::new(mp).ok_or_else(crate::sys::errno)?;
        // SAFETY: a live pool (just made).
        let data_room = unsafe { dpdk_sys::nh_pktmbuf_data_room_size(mp.as_ptr()) };
        // A reset mbuf's data starts min(RTE_PKTMBUF_HEADROOM, buf_len) into its buffer.
        let headroom = (dpdk_sys::RTE_PKTMBUF_HEADROOM as u16).min(data_room);
        Ok(Mempool {
            mp,
            room: data_room - headroom,
            released: ReleaseCache::new(),
            lent: AtomicBool::new(false),
        })
    }

    /// The raw pool, for queue setup and allocation.
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.mp.as_ptr()
    }

    /// Marks the mempool as lending mbufs to another socket's port (`send_payload`).
    pub(crate) fn lend(&self) {
        self.lent.store(true, Ordering::Relaxed);
    }

    /// The data room of its mbufs after the headroom (what one frame may take).
    #[inline(always)]
    pub(crate) fn room(&self) -> u16 {
        self.room
    }

    /// The release cache.
    #[inline(always)]
    pub(crate) fn released(&self) -> &ReleaseCache {
        &self.released
    }

    /// Mbufs in the pool, every lcore's cache counted (`rte_mempool_avail_count`).
    pub(crate) fn avail_count(&self) -> u32 {
        // SAFETY: a live pool (borrowed).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Mbufs out of the pool (`rte_mempool_in_use_count`).
    pub(crate) fn in_use_count(&self) -> u32 {
        // SAFETY: a live pool (borrowed).
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// What the calling thread could allocate now: the shared ring plus its own lcore cache.
    #[inline]
    pub(crate) fn avail_here(&self) -> u32 {
        // SAFETY: a live pool (borrowed).
        unsafe { dpdk_sys::nh_mempool_avail_here(self.as_ptr()) }
    }

    /// One fresh (reset) mbuf (`rte_pktmbuf_alloc`), if the pool has one.
    pub(crate) fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: a live pool (borrowed).
        let m = unsafe { dpdk_sys::nh_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: a non-null result is a fresh mbuf, ours.
        (!m.is_null()).then(|| unsafe { Mbuf::from_raw(m) })
    }
}

/// A stand-in mbuf over a heap buffer, for tests of the safe mbuf code.
#[cfg(test)]
pub(crate) struct FakeMbuf {
    m: ManuallyDrop<Mbuf>,
    _header: Box<rte_mbuf>,
    _room: Vec<u8>,
}

#[cfg(test)]
impl FakeMbuf {
    /// An mbuf over a copy of `room` with its data at `data_off`, `data_len` bytes.
    pub(crate) fn new(room: &[u8], data_off: u16, data_len: u16) -> Self {
        let mut room = room.to_vec();
        // SAFETY: an all-zero rte_mbuf is plain data; only the fields below are used.
        let mut header: Box<rte_mbuf> = Box::new(unsafe { std::mem::zeroed() });
        header.buf_addr = room.as_mut_ptr().cast();
        header.buf_len = room.len() as u16;
        header.data_off = data_off;
        header.data_len = data_len;
        header.pkt_len = u32::from(data_len);
        header.nb_segs = 1;
        let p: *mut rte_mbuf = &mut *header;
        FakeMbuf {
            // SAFETY: a valid mbuf header over `room`, both owned here; never freed by DPDK
            // (ManuallyDrop).
            m: ManuallyDrop::new(unsafe { Mbuf::from_raw(p) }),
            _header: header,
            _room: room,
        }
    }

    /// The mbuf, with its VLAN fields set as a driver that stripped tag `tci` would.
    pub(crate) fn stripped_vlan(&mut self, tci: u16, flags: u64) -> &mut Mbuf {
        let r = self.m.raw_mut();
        r.vlan_tci = tci;
        r.ol_flags = flags;
        &mut self.m
    }

    /// The header fields tests look at: (data_off, data_len, pkt_len, ol_flags).
    pub(crate) fn fields(&self) -> (u16, u16, u32, u64) {
        let r = self.m.raw();
        (r.data_off, r.data_len, r.pkt_len, r.ol_flags)
    }
}
