//! The buffer region of a netmap port and the lock-free pool of its free extra buffers.
//!
//! netmap hands out extra buffers at registration (`nr_extra_bufs`) as a linked list that starts
//! at `netmap_if.ni_bufs_head`, each buffer's first 4 bytes holding the next index and 0 ending
//! the list. [`ExtraPool`] keeps exactly that format: it is nethuns-core's [`FreeList`] with its
//! links in the free buffers themselves ([`BufMem`] is its [`Links`]), so at teardown its head
//! is written back to `ni_bufs_head` and the kernel frees the very same list.
//!
//! Concurrency: a release (a payload dropped) may push from any thread; pops run on the thread
//! that owns the socket (the socket is not `Sync`). The list's head carries a generation tag,
//! so a stale compare-and-swap can never succeed.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use nethuns_core::freelist::{FreeList, Links};
use nethuns_sys_linux::SharedMap;

use crate::abi::FIRST_BUF_IDX;

/// The buffer area of a netmap memory region: buffer `i` is at offset `base + i * buf_size` of
/// the mapping.
#[derive(Clone, Debug)]
pub(crate) struct BufMem {
    map: Arc<SharedMap>,
    base: usize,
    buf_size: u32,
    nbufs: u32,
}

impl BufMem {
    /// Describes `nbufs` buffers of `buf_size` bytes at offset `base` of `map`. Panics unless
    /// they fit the mapping and `base` and `buf_size` are multiples of 4 (the link words), `buf_size` at least 4.
    pub(crate) fn new(map: Arc<SharedMap>, base: usize, buf_size: u32, nbufs: u32) -> BufMem {
        assert!(
            base % 4 == 0
                && buf_size % 4 == 0
                && buf_size >= 4
                && (nbufs as usize)
                    .checked_mul(buf_size as usize)
                    .and_then(|n| n.checked_add(base))
                    .is_some_and(|end| end <= map.len()),
            "netmap: {nbufs} buffers of {buf_size} bytes at {base} leave the region"
        );
        BufMem {
            map,
            base,
            buf_size,
            nbufs,
        }
    }

    /// The mapping the buffers are in.
    #[inline]
    pub(crate) fn map(&self) -> &SharedMap {
        &self.map
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

    /// The offset of buffer `idx` in the mapping.
    #[inline]
    fn at(&self, idx: u32) -> usize {
        debug_assert!(self.valid(idx), "buffer index {idx} out of range");
        self.base + idx as usize * self.buf_size as usize
    }

    /// The raw slice pointer to the first `len` bytes of buffer `idx` (`valid(idx)`, `len` at
    /// most the buffer size), for the payload that owns the buffer.
    #[inline]
    pub(crate) fn range(&self, idx: u32, len: usize) -> *mut [u8] {
        debug_assert!(len <= self.buf_size as usize);
        self.map.range_ptr(self.at(idx), len)
    }

    /// Copies the first `dst.len()` bytes of buffer `idx` into `dst`.
    #[inline]
    pub(crate) fn copy_out(&self, idx: u32, dst: &mut [u8]) {
        debug_assert!(dst.len() <= self.buf_size as usize);
        self.map.copy_from(self.at(idx), dst);
    }

    /// Copies `src` to the start of buffer `idx`.
    #[inline]
    pub(crate) fn copy_in(&self, idx: u32, src: &[u8]) {
        debug_assert!(src.len() <= self.buf_size as usize);
        self.map.copy_to(self.at(idx), src);
    }

    /// A copy of the first `N` bytes of buffer `idx` (`N` at most 64, the smallest buffer).
    #[inline]
    pub(crate) fn start<const N: usize>(&self, idx: u32) -> [u8; N] {
        debug_assert!(N <= self.buf_size as usize);
        self.map.read::<[u8; N]>(self.at(idx))
    }
}

// SAFETY: the link of buffer `idx` is the atomic over its first 4 bytes, at a fixed offset of
// the mapping this value keeps alive (so the same atomic for its whole life), and buffers are
// `buf_size >= 4` bytes apart (checked in `new`), so no two valid indices share one. While a
// buffer is in the list only the list writes it: no ring slot names it (netmap granted it as
// an extra buffer, and `recv` swaps into a slot only a buffer it popped), and no payload
// holds it (a payload's buffer comes back only through `push`). `END` (0) is never valid
// (`valid` starts at `FIRST_BUF_IDX`).
unsafe impl Links for BufMem {
    const END: u32 = 0;

    #[inline]
    fn capacity(&self) -> u32 {
        self.nbufs
    }

    #[inline]
    fn valid(&self, idx: u32) -> bool {
        BufMem::valid(self, idx)
    }

    /// The link word (first 4 bytes) of buffer `idx`: the next buffer of the list it is in.
    #[inline]
    fn link(&self, idx: u32) -> &AtomicU32 {
        self.map.atomic_u32(self.at(idx))
    }
}

/// The free extra buffers: a lock-free stack linked through the buffers, in netmap's
/// `ni_bufs_head` list format.
pub(crate) struct ExtraPool {
    /// The list; pushing onto it (`unsafe`) is the context's `release`.
    pub(crate) list: FreeList<BufMem>,
    total: u32,
}

impl ExtraPool {
    /// Takes over netmap's extra-buffer list starting at `head`, of at most `limit` buffers
    /// (which no ring slot names): an index outside the region, a list longer than `limit` or
    /// one that loops is an error saying which.
    pub(crate) fn from_list(mem: BufMem, head: u32, limit: u32) -> Result<ExtraPool, String> {
        let list = FreeList::adopt(mem, head, limit)
            .map_err(|e| e.replacen("free list", "extra buffer list", 1))?;
        let total = list.free();
        Ok(ExtraPool { list, total })
    }

    /// The buffer region.
    #[inline]
    pub(crate) fn mem(&self) -> &BufMem {
        self.list.links()
    }

    /// How many extra buffers the port was granted.
    #[inline]
    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    /// How many are free now.
    #[inline]
    pub(crate) fn free(&self) -> u32 {
        self.list.free()
    }

    /// The first buffer of the free list (0: empty), for `ni_bufs_head` at teardown.
    pub(crate) fn head_idx(&self) -> u32 {
        self.list.head()
    }

    /// The free list, head first (tests: buffer accounting).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn free_list(&self) -> Vec<u32> {
        self.list.snapshot()
    }

    /// Takes a free extra buffer. Must only be called by the socket's thread (see module docs).
    #[inline]
    pub(crate) fn pop(&self) -> Option<u32> {
        self.list.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::tests::give_back;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A region of `n` buffers of 64 bytes with buffers `2..2+k` chained as an extra list.
    fn region(n: u32, k: u32) -> (Arc<SharedMap>, u32) {
        let map = Arc::new(SharedMap::anonymous(n as usize * 64, false).unwrap());
        for i in 0..k {
            let idx = 2 + i;
            map.write::<u32>(idx as usize * 64, if i + 1 == k { 0 } else { idx + 1 });
        }
        (map, if k == 0 { 0 } else { 2 })
    }

    /// The link word of buffer `i` of a [`region`].
    fn link(map: &SharedMap, i: u32) -> u32 {
        map.read::<u32>(i as usize * 64)
    }

    #[test]
    fn takes_over_the_list_and_writes_it_back() {
        let (map, head) = region(16, 5);
        let mem = BufMem::new(map.clone(), 0, 64, 16);
        let pool = ExtraPool::from_list(mem, head, 5).unwrap();
        assert_eq!((pool.total(), pool.free()), (5, 5));
        let a = pool.pop().unwrap();
        let b = pool.pop().unwrap();
        assert_ne!(a, b);
        give_back(&pool, a);
        assert_eq!(pool.free(), 4);
        // Walk the list as the kernel would at close.
        let mut seen = BTreeSet::new();
        let mut i = pool.head_idx();
        while i != 0 {
            assert!(seen.insert(i));
            i = link(&map, i);
        }
        assert_eq!(seen.len(), 4);
        assert!(!seen.contains(&b));
    }

    #[test]
    fn rejects_bad_lists() {
        let (map, head) = region(8, 4);
        let mem = BufMem::new(map.clone(), 0, 64, 8);
        let e = ExtraPool::from_list(mem, head, 3).err().unwrap();
        assert!(e.contains("longer than the 3"), "{e}");
        map.write::<u32>(5 * 64, 99); // last link points outside
        let mem = BufMem::new(map.clone(), 0, 64, 8);
        let e = ExtraPool::from_list(mem, head, 10).err().unwrap();
        assert!(e.contains("index 99"), "{e}");
    }

    #[test]
    fn a_cyclic_list_is_an_error_not_a_panic() {
        // 2 -> 3 -> 4 -> 2: the kernel's list (input) loops. This used to panic in debug
        // builds ("extra buffer 2 released twice") instead of returning the error.
        let (map, head) = region(8, 3);
        map.write::<u32>(4 * 64, 2);
        for limit in [3, 4, 100, u32::MAX] {
            let mem = BufMem::new(map.clone(), 0, 64, 8);
            let e = ExtraPool::from_list(mem, head, limit).err().unwrap();
            assert!(
                e.contains("loops") || e.contains("longer than the"),
                "limit {limit}: {e}"
            );
        }
        // A buffer linked to itself.
        map.write::<u32>(2 * 64, 2);
        let mem = BufMem::new(map.clone(), 0, 64, 8);
        let e = ExtraPool::from_list(mem, head, 100).err().unwrap();
        assert!(e.contains("loops (back to index 2"), "{e}");
    }

    #[test]
    fn concurrent_release_loses_nothing() {
        let (map, head) = region(1030, 1024);
        let mem = BufMem::new(map.clone(), 0, 64, 1030);
        let pool = ExtraPool::from_list(mem, head, 1024).unwrap();
        let taken: Vec<u32> = std::iter::from_fn(|| pool.pop()).collect();
        assert_eq!(taken.len(), 1024);
        std::thread::scope(|s| {
            for chunk in taken.chunks(256) {
                let pool = &pool;
                s.spawn(move || chunk.iter().for_each(|&i| give_back(pool, i)));
            }
        });
        let back: BTreeSet<u32> = std::iter::from_fn(|| pool.pop()).collect();
        assert_eq!(back.len(), 1024);
        assert_eq!(back, taken.into_iter().collect());
    }

    proptest! {
        #[test]
        fn pop_push_conserves_buffers(ops in proptest::collection::vec(any::<(bool, u8)>(), 0..200)) {
            let (map, head) = region(40, 32);
            let mem = BufMem::new(map.clone(), 0, 64, 40);
            let pool = ExtraPool::from_list(mem, head, 32).unwrap();
            let mut out: Vec<u32> = Vec::new();
            for (take, pick) in ops {
                if take {
                    match pool.pop() {
                        Some(i) => { prop_assert!(!out.contains(&i)); out.push(i) }
                        None => prop_assert_eq!(out.len(), 32),
                    }
                } else if !out.is_empty() {
                    let i = out.swap_remove(pick as usize % out.len());
                    give_back(&pool, i);
                }
                prop_assert_eq!(pool.free() as usize + out.len(), 32);
            }
        }
    }
}
