//! [`FreeList`]: the one lock-free free list of buffer indices that the buffer pools of
//! nethuns share (core's [`BufferPool`](crate::pool::BufferPool), AF_XDP's released UMEM
//! frames, netmap's extra buffers).
//!
//! A Treiber stack of `u32` indices whose head carries a generation tag in its upper 32 bits,
//! so a pop racing with a pop-push of the same index cannot succeed on a stale `next` (no
//! ABA). Pop and push are one compare-and-swap each, from any thread. Where each index's
//! `next` link lives is the [`Links`]' business: in an array beside the buffers
//! ([`OwnLinks`]), or in the free buffers themselves (netmap's list format, whose links the
//! kernel reads back at teardown).
//!
//! Debug builds keep one bit per index, set while it is in the list, and panic on an index
//! pushed twice or popped twice, naming it.
//!
//! ```
//! use nethuns_core::freelist::FreeList;
//!
//! let list = FreeList::full(3);
//! let a = list.pop().unwrap();
//! assert_eq!(list.free(), 2);
//! // SAFETY: `a` came from this list and is pushed back once.
//! unsafe { list.push(a) };
//! assert_eq!(list.snapshot().len(), 3);
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Where the `next` link of each index of a [`FreeList`] lives.
///
/// # Safety
/// For every index `i` with `self.valid(i)`, `link(i)` returns the same atomic for the life of
/// `self`, distinct from the link of every other valid index, and nobody but the free list
/// writes it while `i` is in the list. `END` is never valid.
pub unsafe trait Links: Send + Sync {
    /// The index that ends the list (never a buffer): `u32::MAX` for [`OwnLinks`], 0 in
    /// netmap's list format.
    const END: u32;
    /// How many indices there are (`0..capacity`, some of which may be invalid).
    fn capacity(&self) -> u32;
    /// Whether `idx` names a buffer that may be in the list.
    fn valid(&self, idx: u32) -> bool;
    /// The `next` link of index `idx` (`valid(idx)` holds).
    fn link(&self, idx: u32) -> &AtomicU32;
}

/// Links in an array of their own, one per index `0..capacity`, ending at `u32::MAX`.
pub struct OwnLinks(Box<[AtomicU32]>);

// SAFETY: one distinct atomic per index of the boxed slice, which lives as long as `self`;
// `END` (u32::MAX) is outside `0..capacity` because capacity < u32::MAX (checked in `new`).
unsafe impl Links for OwnLinks {
    const END: u32 = u32::MAX;
    #[inline]
    fn capacity(&self) -> u32 {
        self.0.len() as u32
    }
    #[inline]
    fn valid(&self, idx: u32) -> bool {
        (idx as usize) < self.0.len()
    }
    #[inline]
    fn link(&self, idx: u32) -> &AtomicU32 {
        &self.0[idx as usize]
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

/// A lock-free stack of free buffer indices (see the [module documentation](self)).
pub struct FreeList<L: Links = OwnLinks> {
    head: AtomicU64,
    free: AtomicU32,
    links: L,
    /// Debug builds: one bit per index, set while it is in the list.
    #[cfg(debug_assertions)]
    in_list: Box<[AtomicU64]>,
}

impl FreeList<OwnLinks> {
    /// A list of `count` indices `0..count`, all free, 0 on top. Panics if `count` is
    /// `u32::MAX` (the end marker).
    pub fn full(count: u32) -> Self {
        assert!(
            count < u32::MAX,
            "a free list holds fewer than 2^32 - 1 indices"
        );
        let links: Box<[AtomicU32]> = (0..count)
            .map(|i| AtomicU32::new(if i + 1 == count { u32::MAX } else { i + 1 }))
            .collect();
        let list = Self::bare(
            OwnLinks(links),
            if count == 0 { u32::MAX } else { 0 },
            count,
        );
        for i in 0..count {
            list.mark(i, true);
        }
        list
    }

    /// A list for `count` indices `0..count`, none of them free yet. Panics if `count` is
    /// `u32::MAX`.
    pub fn empty(count: u32) -> Self {
        assert!(
            count < u32::MAX,
            "a free list holds fewer than 2^32 - 1 indices"
        );
        let links: Box<[AtomicU32]> = (0..count).map(|_| AtomicU32::new(u32::MAX)).collect();
        Self::bare(OwnLinks(links), u32::MAX, 0)
    }
}

impl<L: Links> FreeList<L> {
    fn bare(links: L, head: u32, free: u32) -> Self {
        FreeList {
            head: AtomicU64::new(pack(0, head)),
            free: AtomicU32::new(free),
            #[cfg(debug_assertions)]
            in_list: (0..(links.capacity() as usize).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            links,
        }
    }

    /// Takes over a list already linked through `links`, starting at `head` (`L::END`: empty)
    /// and of at most `limit` indices, checking it on the way: an index that is not valid, a
    /// list longer than `limit`, or one that loops is an error saying which.
    pub fn adopt(links: L, head: u32, limit: u32) -> Result<Self, String> {
        let list = Self::bare(links, L::END, 0);
        let cap = list.links.capacity();
        let mut count = 0u32;
        let mut idx = head;
        while idx != L::END {
            if !list.links.valid(idx) {
                return Err(format!(
                    "free list: index {idx} is not a buffer of the {cap} here"
                ));
            }
            if count >= limit {
                return Err(format!("free list longer than the {limit} granted"));
            }
            // A list that comes back to an index it named loops forever: debug builds see the
            // repeat at once; without the bitmap, a list longer than the capacity repeats one.
            if list.marked(idx) || count >= cap {
                return Err(format!(
                    "free list loops (back to index {idx} after {count} buffers)"
                ));
            }
            count += 1;
            list.mark(idx, true);
            idx = list.links.link(idx).load(Ordering::Relaxed);
        }
        list.head.store(pack(0, head), Ordering::Relaxed);
        list.free.store(count, Ordering::Relaxed);
        Ok(list)
    }

    /// The links (netmap: the buffer memory they live in).
    #[inline]
    pub fn links(&self) -> &L {
        &self.links
    }

    /// Takes a free index, or `None` if the list is empty.
    ///
    /// Safe: taking an index makes the caller its only owner; it can come back only through
    /// the `unsafe` [`FreeList::push`].
    #[inline]
    pub fn pop(&self) -> Option<u32> {
        let mut cur = self.head.load(Ordering::Acquire);
        loop {
            let (tag, idx) = unpack(cur);
            if idx == L::END {
                return None;
            }
            let next = self.links.link(idx).load(Ordering::Relaxed);
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
                Err(actual) => cur = actual,
            }
        }
    }

    /// Puts index `idx` back on the list, from any thread.
    ///
    /// # Panics
    /// If `idx` is not valid for the links (a descriptor of another pool); in debug builds,
    /// if it is in the list already.
    ///
    /// # Safety
    /// `idx` is owned by the caller: it came from [`FreeList::pop`] (or was never in the list)
    /// and is not in the list now, and nothing uses it afterwards. Pushing an index twice
    /// would let two callers pop it, and, where the links live in the buffers, write a
    /// link into a buffer that is in use.
    #[inline]
    pub unsafe fn push(&self, idx: u32) {
        assert!(self.links.valid(idx), "buffer {idx} is not of this pool");
        self.mark(idx, true);
        let mut cur = self.head.load(Ordering::Relaxed);
        loop {
            let (tag, head) = unpack(cur);
            self.links.link(idx).store(head, Ordering::Relaxed);
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
                Err(actual) => cur = actual,
            }
        }
    }

    /// Empties the list at once and hands every index it held to `f`, top first; returns how
    /// many. For a single consumer that drains what many threads pushed (AF_XDP's released
    /// frames going back to the fill ring).
    #[inline]
    pub fn take_all(&self, mut f: impl FnMut(u32)) -> u32 {
        let (_, mut idx) = unpack(self.head.load(Ordering::Relaxed));
        if idx == L::END {
            return 0;
        }
        // The tag keeps counting so that a pop that read the old head fails.
        let mut cur = self.head.load(Ordering::Acquire);
        loop {
            let (tag, top) = unpack(cur);
            match self.head.compare_exchange_weak(
                cur,
                pack(tag.wrapping_add(1), L::END),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    idx = top;
                    break;
                }
                Err(actual) => cur = actual,
            }
        }
        let mut n = 0u32;
        while idx != L::END {
            let next = self.links.link(idx).load(Ordering::Relaxed);
            self.mark(idx, false);
            f(idx);
            n += 1;
            idx = next;
        }
        self.free.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// How many indices are free now (a snapshot when other threads are active).
    #[inline]
    pub fn free(&self) -> u32 {
        self.free.load(Ordering::Relaxed)
    }

    /// The index on top (`L::END` when empty): netmap writes it back to `ni_bufs_head`.
    pub fn head(&self) -> u32 {
        unpack(self.head.load(Ordering::Acquire)).1
    }

    /// The free indices, top first (tests and diagnostics; meaningful while nobody pops).
    /// Bounded by the capacity, so a list corrupted into a loop ends.
    pub fn snapshot(&self) -> Vec<u32> {
        let mut v = Vec::new();
        let mut i = self.head();
        while i != L::END && v.len() <= self.links.capacity() as usize && self.links.valid(i) {
            v.push(i);
            i = self.links.link(i).load(Ordering::Relaxed);
        }
        v
    }

    #[inline]
    #[allow(unused_variables)]
    fn marked(&self, idx: u32) -> bool {
        #[cfg(debug_assertions)]
        {
            let (w, b) = (idx as usize / 64, 1u64 << (idx % 64));
            self.in_list[w].load(Ordering::Relaxed) & b != 0
        }
        #[cfg(not(debug_assertions))]
        false
    }

    #[inline]
    #[allow(unused_variables)]
    fn mark(&self, idx: u32, in_list: bool) {
        #[cfg(debug_assertions)]
        {
            let (w, b) = (idx as usize / 64, 1u64 << (idx % 64));
            let old = if in_list {
                self.in_list[w].fetch_or(b, Ordering::Relaxed)
            } else {
                self.in_list[w].fetch_and(!b, Ordering::Relaxed)
            };
            assert_eq!(
                old & b != 0,
                !in_list,
                "buffer {idx} {}",
                if in_list {
                    "released twice (or never handed out)"
                } else {
                    "handed out twice"
                }
            );
        }
    }
}

impl<L: Links> std::fmt::Debug for FreeList<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreeList")
            .field("capacity", &self.links.capacity())
            .field("free", &self.free())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    #[test]
    fn pop_push_take_all() {
        let l = FreeList::full(4);
        assert_eq!(l.snapshot(), vec![0, 1, 2, 3]);
        let got: Vec<u32> = std::iter::from_fn(|| l.pop()).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(l.free(), 0);
        for i in [2, 0] {
            // SAFETY: popped above, pushed once.
            unsafe { l.push(i) };
        }
        let mut drained = Vec::new();
        assert_eq!(l.take_all(|i| drained.push(i)), 2);
        assert_eq!(drained, vec![0, 2]);
        assert_eq!(l.free(), 0);
        assert_eq!(l.pop(), None);
        let e = FreeList::empty(3);
        assert_eq!(e.pop(), None);
        // SAFETY: never in the list.
        unsafe { e.push(1) };
        assert_eq!(e.pop(), Some(1));
    }

    #[test]
    #[should_panic(expected = "not of this pool")]
    fn a_foreign_index_panics() {
        let l = FreeList::empty(3);
        // SAFETY: the call panics before touching the list.
        unsafe { l.push(3) };
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "buffer 1 released twice")]
    fn a_double_push_panics_in_debug() {
        let l = FreeList::full(3);
        // SAFETY: the second push is the bug this test shows; it panics before linking.
        unsafe { l.push(1) };
    }

    struct Every2nd(Box<[AtomicU32]>);
    // SAFETY: one atomic per index of the slice; END (0) is never valid.
    unsafe impl Links for Every2nd {
        const END: u32 = 0;
        fn capacity(&self) -> u32 {
            self.0.len() as u32
        }
        fn valid(&self, idx: u32) -> bool {
            idx >= 2 && idx < self.capacity()
        }
        fn link(&self, idx: u32) -> &AtomicU32 {
            &self.0[idx as usize]
        }
    }

    #[test]
    fn adopt_checks_the_list() {
        let links = |next: &[u32]| Every2nd(next.iter().map(|&n| AtomicU32::new(n)).collect());
        // 3 -> 5 -> 2 -> end
        let l = FreeList::adopt(links(&[0, 0, 0, 5, 0, 2]), 3, 8).unwrap();
        assert_eq!(l.snapshot(), vec![3, 5, 2]);
        assert_eq!(l.free(), 3);
        assert_eq!(l.head(), 3);
        assert!(FreeList::adopt(links(&[0, 0, 0, 5, 0, 2]), 3, 2)
            .unwrap_err()
            .contains("longer than the 2"));
        assert!(FreeList::adopt(links(&[0, 0, 0, 1, 0, 0]), 3, 8)
            .unwrap_err()
            .contains("index 1"));
        assert!(FreeList::adopt(links(&[0, 0, 3, 5, 0, 2]), 3, 8)
            .unwrap_err()
            .contains("loops"));
    }

    #[test]
    fn many_threads_lose_nothing() {
        let l = Arc::new(FreeList::full(256));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Some(i) = l.pop() {
                            // SAFETY: popped just now by this thread, pushed once.
                            unsafe { l.push(i) };
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all: BTreeSet<u32> = l.snapshot().into_iter().collect();
        assert_eq!(all.len(), 256);
        assert_eq!(l.free(), 256);
    }
}
