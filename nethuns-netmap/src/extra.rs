//! The buffer region of a netmap port and the lock-free pool of its free extra buffers.
//!
//! netmap hands out extra buffers at registration (`nr_extra_bufs`) as a linked list that starts
//! at `netmap_if.ni_bufs_head`, each buffer's first 4 bytes holding the next index and 0 ending
//! the list. [`ExtraPool`] keeps exactly that format: it is a Treiber stack whose links live in
//! the free buffers themselves, so at teardown its head is written back to `ni_bufs_head` and
//! the kernel frees the very same list.
//!
//! Concurrency: [`ExtraPool::push`] (a payload released) may run on any thread; [`ExtraPool::pop`]
//! runs only on the thread that owns the socket (the socket is not `Sync`), so a popper never
//! reads the link of a buffer that another popper already took. The head carries a generation
//! tag all the same, so a stale compare-and-swap can never succeed.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys::FIRST_BUF_IDX;

/// The buffer area of a netmap memory region: buffer `i` is at `base + i * buf_size`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BufMem {
    base: *mut u8,
    buf_size: u32,
    nbufs: u32,
}

// SAFETY: a plain description of memory owned elsewhere (the mapping kept alive by the
// context); the pointer is only dereferenced under the ownership rules of buffer indices.
unsafe impl Send for BufMem {}
// SAFETY: as above; `BufMem` itself holds no mutable state.
unsafe impl Sync for BufMem {}

impl BufMem {
    /// Describes `nbufs` buffers of `buf_size` bytes at `base`.
    ///
    /// # Safety
    /// `base .. base + nbufs * buf_size` is mapped, readable and writable, and stays so while
    /// this value (or any copy) is used. `base` and `buf_size` are multiples of 4.
    pub(crate) unsafe fn new(base: *mut u8, buf_size: u32, nbufs: u32) -> BufMem {
        debug_assert!(base as usize % 4 == 0 && buf_size % 4 == 0);
        BufMem {
            base,
            buf_size,
            nbufs,
        }
    }

    /// The size of every buffer.
    #[inline]
    pub(crate) fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// Whether `idx` names a packet buffer of this region (not 0 or 1, not past the end).
    #[inline]
    pub(crate) fn valid(&self, idx: u32) -> bool {
        idx >= FIRST_BUF_IDX && idx < self.nbufs
    }

    /// The start of buffer `idx`.
    ///
    /// # Safety
    /// `self.valid(idx)`.
    #[inline]
    pub(crate) unsafe fn buf(&self, idx: u32) -> *mut u8 {
        debug_assert!(self.valid(idx), "buffer index {idx} out of range");
        self.base.add(idx as usize * self.buf_size as usize)
    }

    /// The link word (first 4 bytes) of buffer `idx`.
    ///
    /// # Safety
    /// `self.valid(idx)`, and the caller owns buffer `idx` or it is in the free list.
    #[inline]
    unsafe fn link(&self, idx: u32) -> &AtomicU32 {
        // SAFETY: the buffer is mapped and 4-aligned (`new`'s contract); AtomicU32 has the
        // size and alignment of u32.
        &*(self.buf(idx) as *const AtomicU32)
    }
}

#[inline]
fn pack(tag: u32, idx: u32) -> u64 {
    ((tag as u64) << 32) | idx as u64
}

#[inline]
fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// The free extra buffers: a lock-free stack linked through the buffers, in netmap's
/// `ni_bufs_head` list format.
pub(crate) struct ExtraPool {
    mem: BufMem,
    head: AtomicU64,
    free: AtomicU32,
    total: u32,
    /// Debug builds: one bit per buffer of the region, set while the buffer is in the pool, to
    /// catch a buffer released twice.
    #[cfg(debug_assertions)]
    in_pool: Box<[AtomicU64]>,
}

impl ExtraPool {
    /// Takes over netmap's extra-buffer list starting at `head`, of at most `limit` buffers.
    ///
    /// # Safety
    /// `mem` describes the port's mapped region and the buffers of the list are owned by the
    /// caller (no ring slot names them).
    pub(crate) unsafe fn from_list(
        mem: BufMem,
        head: u32,
        limit: u32,
    ) -> std::result::Result<ExtraPool, String> {
        let pool = ExtraPool {
            mem,
            head: AtomicU64::new(pack(0, 0)),
            free: AtomicU32::new(0),
            total: 0,
            #[cfg(debug_assertions)]
            in_pool: (0..(mem.nbufs as usize).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        };
        let mut count = 0u32;
        let mut idx = head;
        while idx != 0 {
            if !mem.valid(idx) {
                return Err(format!(
                    "extra buffer list: index {idx} outside the region's {} buffers",
                    mem.nbufs
                ));
            }
            if count >= limit {
                return Err(format!("extra buffer list longer than the {limit} granted"));
            }
            // A list that comes back to a buffer it named already loops forever: in debug
            // builds the pool's bitmap sees the repeat at once; without it, a list longer than
            // the region has buffers must repeat one.
            if pool.marked(idx) || count >= mem.nbufs {
                return Err(format!(
                    "extra buffer list loops (back to index {idx} after {count} buffers)"
                ));
            }
            count += 1;
            pool.mark(idx, true);
            idx = mem.link(idx).load(Ordering::Relaxed);
        }
        let mut pool = pool;
        pool.head = AtomicU64::new(pack(0, head));
        pool.free = AtomicU32::new(count);
        pool.total = count;
        Ok(pool)
    }

    /// The buffer region.
    #[inline]
    pub(crate) fn mem(&self) -> &BufMem {
        &self.mem
    }

    /// How many extra buffers the port was granted.
    #[inline]
    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    /// How many are free now.
    #[inline]
    pub(crate) fn free(&self) -> u32 {
        self.free.load(Ordering::Relaxed)
    }

    /// The first buffer of the free list (0: empty), for `ni_bufs_head` at teardown.
    pub(crate) fn head_idx(&self) -> u32 {
        unpack(self.head.load(Ordering::Acquire)).1
    }

    /// The free list, head first (tests: buffer accounting).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn free_list(&self) -> Vec<u32> {
        let mut v = Vec::new();
        let mut i = self.head_idx();
        while i != 0 {
            assert!(v.len() <= self.total as usize, "free list loops");
            v.push(i);
            // SAFETY: `i` is in the free list (tests run this with no concurrent pop).
            i = unsafe { self.mem.link(i) }.load(Ordering::Relaxed);
        }
        v
    }

    /// Takes a free extra buffer. Must only be called by the socket's thread (see module docs).
    #[inline]
    pub(crate) fn pop(&self) -> Option<u32> {
        let mut cur = self.head.load(Ordering::Acquire);
        loop {
            let (tag, idx) = unpack(cur);
            if idx == 0 {
                return None;
            }
            // SAFETY: `idx` is in the free list (it is the head), so its link word is ours to
            // read; only pushes can race with us and they do not touch `idx`'s link.
            let next = unsafe { self.mem.link(idx) }.load(Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                cur,
                pack(tag.wrapping_add(1), next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.free.fetch_sub(1, Ordering::Relaxed);
                    self.mark(idx, false);
                    return Some(idx);
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Returns buffer `idx` to the pool, from any thread.
    ///
    /// # Panics
    /// If `idx` is not a buffer of the region (a broken invariant: descriptors come from this
    /// crate only), and in debug builds if it is already in the pool.
    #[inline]
    pub(crate) fn push(&self, idx: u32) {
        assert!(
            self.mem.valid(idx),
            "netmap: release of foreign buffer {idx}"
        );
        self.mark(idx, true);
        let mut cur = self.head.load(Ordering::Relaxed);
        loop {
            let (tag, head) = unpack(cur);
            // SAFETY: the caller owned `idx` until now; nobody else reads or writes it.
            unsafe { self.mem.link(idx) }.store(head, Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                cur,
                pack(tag.wrapping_add(1), idx),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.free.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Whether `idx` is marked as in the pool (debug builds; always false without the bitmap).
    #[inline]
    #[allow(unused_variables)]
    fn marked(&self, idx: u32) -> bool {
        #[cfg(debug_assertions)]
        {
            let (w, b) = (idx as usize / 64, 1u64 << (idx % 64));
            self.in_pool[w].load(Ordering::Relaxed) & b != 0
        }
        #[cfg(not(debug_assertions))]
        false
    }

    #[inline]
    #[allow(unused_variables)]
    fn mark(&self, idx: u32, in_pool: bool) {
        #[cfg(debug_assertions)]
        {
            let (w, b) = (idx as usize / 64, 1u64 << (idx % 64));
            let old = if in_pool {
                self.in_pool[w].fetch_or(b, Ordering::Relaxed)
            } else {
                self.in_pool[w].fetch_and(!b, Ordering::Relaxed)
            };
            assert_eq!(
                old & b != 0,
                !in_pool,
                "netmap: extra buffer {idx} {}",
                if in_pool {
                    "released twice"
                } else {
                    "taken twice"
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A region of `n` buffers of 64 bytes with buffers `2..2+k` chained as an extra list.
    fn region(n: u32, k: u32) -> (Vec<u32>, u32) {
        let mut words = vec![0u32; (n * 16) as usize];
        for i in 0..k {
            let idx = 2 + i;
            words[(idx * 16) as usize] = if i + 1 == k { 0 } else { idx + 1 };
        }
        (words, if k == 0 { 0 } else { 2 })
    }

    #[test]
    fn takes_over_the_list_and_writes_it_back() {
        let (mut words, head) = region(16, 5);
        // SAFETY: `words` outlives the pool and has 16 buffers of 64 bytes.
        let mem = unsafe { BufMem::new(words.as_mut_ptr().cast(), 64, 16) };
        // SAFETY: the list buffers belong to nobody else.
        let pool = unsafe { ExtraPool::from_list(mem, head, 5) }.unwrap();
        assert_eq!((pool.total(), pool.free()), (5, 5));
        let a = pool.pop().unwrap();
        let b = pool.pop().unwrap();
        assert_ne!(a, b);
        pool.push(a);
        assert_eq!(pool.free(), 4);
        // Walk the list as the kernel would at close.
        let mut seen = BTreeSet::new();
        let mut i = pool.head_idx();
        while i != 0 {
            assert!(seen.insert(i));
            i = words[(i * 16) as usize];
        }
        assert_eq!(seen.len(), 4);
        assert!(!seen.contains(&b));
    }

    #[test]
    fn rejects_bad_lists() {
        let (mut words, head) = region(8, 4);
        // SAFETY: as above.
        let mem = unsafe { BufMem::new(words.as_mut_ptr().cast(), 64, 8) };
        // SAFETY: as above.
        let e = unsafe { ExtraPool::from_list(mem, head, 3) }.err().unwrap();
        assert!(e.contains("longer than the 3"), "{e}");
        words[(5 * 16) as usize] = 99; // last link points outside
                                       // SAFETY: as above.
        let mem = unsafe { BufMem::new(words.as_mut_ptr().cast(), 64, 8) };
        // SAFETY: as above.
        let e = unsafe { ExtraPool::from_list(mem, head, 10) }
            .err()
            .unwrap();
        assert!(e.contains("index 99"), "{e}");
    }

    #[test]
    fn a_cyclic_list_is_an_error_not_a_panic() {
        // 2 -> 3 -> 4 -> 2: the kernel's list (input) loops. This used to panic in debug
        // builds ("extra buffer 2 released twice") instead of returning the error.
        let (mut words, head) = region(8, 3);
        words[(4 * 16) as usize] = 2;
        for limit in [3, 4, 100, u32::MAX] {
            // SAFETY: as above.
            let mem = unsafe { BufMem::new(words.as_mut_ptr().cast(), 64, 8) };
            // SAFETY: as above.
            let e = unsafe { ExtraPool::from_list(mem, head, limit) }
                .err()
                .unwrap();
            assert!(
                e.contains("loops") || e.contains("longer than the"),
                "limit {limit}: {e}"
            );
        }
        // A buffer linked to itself.
        words[(2 * 16) as usize] = 2;
        // SAFETY: as above.
        let mem = unsafe { BufMem::new(words.as_mut_ptr().cast(), 64, 8) };
        // SAFETY: as above.
        let e = unsafe { ExtraPool::from_list(mem, head, 100) }
            .err()
            .unwrap();
        assert!(e.contains("loops (back to index 2"), "{e}");
    }

    #[test]
    fn concurrent_release_loses_nothing() {
        let (mut words, head) = region(1030, 1024);
        // SAFETY: as above.
        let mem = unsafe { BufMem::new(words.as_mut_ptr().cast(), 64, 1030) };
        // SAFETY: as above.
        let pool = unsafe { ExtraPool::from_list(mem, head, 1024) }.unwrap();
        let taken: Vec<u32> = std::iter::from_fn(|| pool.pop()).collect();
        assert_eq!(taken.len(), 1024);
        std::thread::scope(|s| {
            for chunk in taken.chunks(256) {
                let pool = &pool;
                s.spawn(move || chunk.iter().for_each(|&i| pool.push(i)));
            }
        });
        let back: BTreeSet<u32> = std::iter::from_fn(|| pool.pop()).collect();
        assert_eq!(back.len(), 1024);
        assert_eq!(back, taken.into_iter().collect());
    }

    proptest! {
        #[test]
        fn pop_push_conserves_buffers(ops in proptest::collection::vec(any::<(bool, u8)>(), 0..200)) {
            let (mut words, head) = region(40, 32);
            // SAFETY: as above.
            let mem = unsafe { BufMem::new(words.as_mut_ptr().cast(), 64, 40) };
            // SAFETY: as above.
            let pool = unsafe { ExtraPool::from_list(mem, head, 32) }.unwrap();
            let mut out: Vec<u32> = Vec::new();
            for (take, pick) in ops {
                if take {
                    match pool.pop() {
                        Some(i) => { prop_assert!(!out.contains(&i)); out.push(i) }
                        None => prop_assert_eq!(out.len(), 32),
                    }
                } else if !out.is_empty() {
                    let i = out.swap_remove(pick as usize % out.len());
                    pool.push(i);
                }
                prop_assert_eq!(pool.free() as usize + out.len(), 32);
            }
        }
    }
}
