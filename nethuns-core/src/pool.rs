//! A fixed-size buffer pool with a lock-free free list, and [`PoolContext`], the [`Context`]
//! of the copy-based backends (pcap, and the TX side of others).
//!
//! The free list is core's [`FreeList`]: get and put are one compare-and-swap each, from any
//! thread, so a payload may be released on another thread than the socket's.
//!
//! The buffers are one anonymous private mapping (a `SharedMap` of nethuns-sys-linux): nothing is written at create, so a page
//! costs memory only once a packet was copied into it (the free list is LIFO, so a pool larger
//! than the traffic needs touches only the buffers in actual use). The whole pool is capped at
//! [`MAX_POOL_BYTES`].

use std::sync::Arc;

use crate::context::{next_pool_id, BufferDesc, Context};
use crate::error::{Error, Result};
use crate::freelist::FreeList;
use crate::token::{Payload, Token};
use nethuns_sys_linux::SharedMap;

const NIL: u32 = u32::MAX;

/// The largest pool, `buffer_count × buffer_size` (4 GiB, as AF_PACKET's largest RX ring):
/// more is almost surely a typo, and would be address space reserved for nothing.
pub const MAX_POOL_BYTES: u64 = 1 << 32;

/// Checks a pool of `count` buffers of `buf_size` bytes before anything is allocated: both
/// positive, `count` below 2^32 − 1 and the total at most [`MAX_POOL_BYTES`]. The error names
/// the field (`buffer_count` or `buffer_size`) and, for the total, the product.
pub fn check_size(count: usize, buf_size: usize) -> Result<()> {
    if count == 0 || count >= NIL as usize {
        return Err(Error::flag(
            "buffer_count",
            format!("{count} buffers: must be between 1 and {}", NIL - 1),
        ));
    }
    if buf_size == 0 {
        return Err(Error::flag("buffer_size", "must be at least 1 byte"));
    }
    let total = (count as u128) * (buf_size as u128);
    if total > MAX_POOL_BYTES as u128 {
        return Err(Error::flag(
            "buffer_count",
            format!(
                "{count} buffers × {buf_size} bytes = {total} bytes: the pool is capped at \
                 {MAX_POOL_BYTES} bytes (4 GiB)"
            ),
        ));
    }
    Ok(())
}

/// `count` buffers of `buf_size` bytes each in one allocation, and the list of free ones.
pub struct BufferPool {
    /// Zero-filled memory from an anonymous private mapping: the kernel supplies each page on
    /// first touch, so creating the pool commits nothing.
    mem: SharedMap,
    buf_size: usize,
    count: u32,
    list: FreeList,
}

impl BufferPool {
    /// A pool of `count` buffers of `buf_size` bytes, all free. Panics only on a size
    /// [`check_size`] refuses (broken configuration, checked by callers that take user input
    /// through [`BufferPool::try_new`]).
    pub fn new(count: usize, buf_size: usize) -> Self {
        match Self::try_new(count, buf_size) {
            Ok(p) => p,
            Err(e) => panic!("BufferPool::new: {e}"),
        }
    }

    /// A pool of `count` buffers of `buf_size` bytes, or an error naming the bad size (see
    /// [`check_size`]). The buffers' memory is reserved, not written: it is committed page by
    /// page as packets are copied in.
    pub fn try_new(count: usize, buf_size: usize) -> Result<Self> {
        check_size(count, buf_size)?;
        let mem = SharedMap::anonymous(count * buf_size, false).map_err(|_| Error::NoMemory)?;
        Ok(BufferPool {
            mem,
            buf_size,
            count: count as u32,
            list: FreeList::full(count as u32),
        })
    }

    /// Takes a free buffer, or `None` if all are in use.
    ///
    /// Safe: taking a buffer makes the caller its only owner. Its bytes are reached only
    /// through the `unsafe` [`BufferPool::buffer_ptr`], and it goes back only through the
    /// `unsafe` [`BufferPool::put`] (a buffer taken and never put back is lost, not shared).
    #[inline]
    pub fn get(&self) -> Option<BufferDesc> {
        self.list.pop().map(|idx| BufferDesc::new(idx as usize))
    }

    /// Returns a buffer to the free list.
    ///
    /// Debug builds panic on a buffer put back twice, naming it.
    ///
    /// ```compile_fail
    /// # // Safe code cannot put back a buffer that a payload still owns.
    /// use nethuns_core::pool::PoolContext;
    /// let ctx = PoolContext::new(2, 64);
    /// let p1 = ctx.alloc_payload(b"AAAA").unwrap();
    /// ctx.pool().put(p1.buffer_desc()); // error[E0133]: call to unsafe function
    /// ```
    ///
    /// # Safety
    /// `desc` must have come from [`BufferPool::get`] of this pool, not been put back since,
    /// and no token, payload or pointer may use it afterwards.
    #[inline]
    pub unsafe fn put(&self, desc: BufferDesc) {
        let idx = u32::try_from(desc.get()).unwrap_or(u32::MAX);
        // SAFETY: the caller gives up buffer `desc`, taken from this pool's list and not put
        // back since (this function's contract); `push` panics on an index outside the pool.
        unsafe { self.list.push(idx) }
    }

    /// Number of buffers in the pool.
    pub fn capacity(&self) -> usize {
        self.count as usize
    }

    /// Size of each buffer in bytes.
    pub fn buffer_size(&self) -> usize {
        self.buf_size
    }

    /// Number of free buffers right now (a snapshot when other threads are active).
    pub fn free_count(&self) -> usize {
        self.list.free() as usize
    }

    /// Pointer to the whole of buffer `desc`.
    ///
    /// # Safety
    /// `desc` must be a buffer of this pool owned by the caller; the caller must not create
    /// overlapping mutable access to it.
    #[inline]
    pub unsafe fn buffer_ptr(&self, desc: BufferDesc, size: usize) -> *mut [u8] {
        debug_assert!(desc.get() < self.count as usize && size <= self.buf_size);
        let size = size.min(self.buf_size);
        // No check of its own on this hot path: the caller's contract keeps desc < count, so
        // the range lies inside the mapping of count × buf_size bytes.
        let p = self.mem.as_ptr().wrapping_add(desc.get() * self.buf_size);
        std::ptr::slice_from_raw_parts_mut(p, size)
    }
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("count", &self.count)
            .field("buf_size", &self.buf_size)
            .field("free", &self.free_count())
            .finish()
    }
}

/// A [`Context`] over a shared [`BufferPool`]: what a copy-based backend's payloads borrow.
#[derive(Clone, Debug)]
pub struct PoolContext {
    pool: Arc<BufferPool>,
    id: u32,
}

impl PoolContext {
    /// A context with `count` buffers of `buf_size` bytes. Panics on a zero or oversized count;
    /// [`PoolContext::try_new`] returns an error instead.
    pub fn new(count: usize, buf_size: usize) -> Self {
        PoolContext {
            pool: Arc::new(BufferPool::new(count, buf_size)),
            id: next_pool_id(),
        }
    }

    /// A context with `count` buffers of `buf_size` bytes, or an error naming the bad field.
    pub fn try_new(count: usize, buf_size: usize) -> Result<Self> {
        Ok(PoolContext {
            pool: Arc::new(BufferPool::try_new(count, buf_size)?),
            id: next_pool_id(),
        })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Number of free buffers right now.
    pub fn free_buffers(&self) -> usize {
        self.pool.free_count()
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.pool.buffer_size()
    }

    /// Takes a buffer and lets `fill` write the packet into it (the whole buffer is offered);
    /// `fill` returns the packet length. Errors: [`Error::NoMemory`] when the pool is empty.
    /// A length larger than the buffer is clamped to it.
    #[inline]
    pub fn alloc_with(&self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<Token> {
        let Some(desc) = self.pool.get() else {
            return Err(Error::NoMemory);
        };
        // SAFETY: `desc` was just taken from the free list, so it is a buffer of this pool.
        let ptr = unsafe { self.pool.buffer_ptr(desc, self.pool.buffer_size()) };
        // SAFETY: we own `desc` exclusively (just taken), so nothing else reaches its bytes;
        // the pointer spans the buffer inside the pool's mapping, zero-filled or written.
        let buf = unsafe { &mut *ptr };
        let len = fill(buf).min(buf.len());
        // SAFETY: ownership of `desc` passes to the token; len ≤ capacity.
        Ok(unsafe { Token::new(desc, len as u32, self.id) })
    }

    /// Copies `data` into a free buffer and returns its token. Errors:
    /// [`Error::TooBigPacket`] if `data` is larger than a buffer, [`Error::NoMemory`] if none
    /// is free.
    #[inline]
    pub fn alloc_token(&self, data: &[u8]) -> Result<Token> {
        if data.len() > self.pool.buffer_size() {
            return Err(Error::TooBigPacket(data.len()));
        }
        self.alloc_with(|buf| {
            buf[..data.len()].copy_from_slice(data);
            data.len()
        })
    }

    /// Copies `data` into a free buffer and returns it as a payload of this context.
    pub fn alloc_payload(&self, data: &[u8]) -> Result<Payload<'_, Self>> {
        let t = self.alloc_token(data)?;
        // SAFETY: the token was made by this context just now.
        Ok(unsafe { Payload::from_token_unchecked(t, self) })
    }
}

impl Context for PoolContext {
    #[inline]
    fn pool_id(&self) -> u32 {
        self.id
    }

    #[inline]
    unsafe fn unsafe_buffer(&self, buf_idx: BufferDesc, size: usize) -> *mut [u8] {
        // SAFETY: forwarded contract: the caller owns `buf_idx` of this pool.
        unsafe { self.pool.buffer_ptr(buf_idx, size) }
    }

    #[inline]
    unsafe fn release(&self, buf_idx: BufferDesc) {
        crate::ledger::released(self.id, buf_idx);
        // SAFETY: forwarded contract: the caller owns `buf_idx` of this pool and gives it up.
        unsafe { self.pool.put(buf_idx) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_and_return() {
        let ctx = PoolContext::new(3, 64);
        let a = ctx.alloc_token(b"a").unwrap();
        let b = ctx.alloc_token(b"bb").unwrap();
        let c = ctx.alloc_token(b"ccc").unwrap();
        assert!(matches!(ctx.alloc_token(b"d"), Err(Error::NoMemory)));
        assert_eq!(&ctx.packet(b)[..], b"bb");
        assert_eq!(ctx.free_buffers(), 1);
        drop(ctx.packet(a));
        drop(ctx.packet(c));
        assert_eq!(ctx.free_buffers(), 3);
    }

    #[test]
    fn too_big() {
        let ctx = PoolContext::new(1, 8);
        assert!(matches!(
            ctx.alloc_token(&[0; 9]),
            Err(Error::TooBigPacket(9))
        ));
        assert_eq!(ctx.free_buffers(), 1);
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(matches!(
            PoolContext::try_new(0, 10),
            Err(Error::InvalidFlag {
                field: "buffer_count",
                ..
            })
        ));
        assert!(matches!(
            PoolContext::try_new(10, 0),
            Err(Error::InvalidFlag {
                field: "buffer_size",
                ..
            })
        ));
    }

    /// Resident set size of this process in bytes (`/proc/self/statm`, field 2, in pages).
    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * nethuns_sys_linux::map::page_size() as u64
    }

    #[test]
    fn create_commits_no_buffer_memory() {
        // 2^20 buffers of 1 KiB: 1 GiB of buffers, 4 MiB of free list.
        let before = rss_bytes();
        let ctx = PoolContext::try_new(1 << 20, 1024).unwrap();
        let grown = rss_bytes().saturating_sub(before);
        assert!(
            grown < 64 << 20,
            "creating a 1 GiB pool made the process {grown} bytes larger"
        );
        // The memory is there when used, zero-filled, at both ends.
        let first = ctx.alloc_with(|b| b.len()).unwrap();
        assert!(ctx.packet(first).iter().all(|&b| b == 0));
        let held: Vec<_> = (0..(1 << 20) - 1)
            .map(|_| ctx.pool().get().unwrap())
            .collect();
        let last = *held.last().unwrap();
        // SAFETY: `last` was taken from the pool above.
        let ptr = unsafe { ctx.pool().buffer_ptr(last, 1024) };
        // SAFETY: `last` is owned here, so nothing else reaches these 1024 bytes.
        let buf = unsafe { &mut *ptr };
        buf.fill(0xAB);
        assert_eq!(buf[1023], 0xAB);
        for d in held {
            // SAFETY: each was taken from this pool above and is put back once.
            unsafe { ctx.pool().put(d) };
        }
        assert_eq!(ctx.free_buffers(), 1 << 20);
    }

    #[test]
    fn the_total_is_capped_and_named() {
        for (count, size) in [(1 << 24, 262_144), (1 << 22, 1025), (usize::MAX / 2, 4)] {
            match PoolContext::try_new(count, size) {
                Err(Error::InvalidFlag {
                    field: "buffer_count",
                    reason,
                }) => assert!(
                    reason.contains(&(count as u128 * size as u128).to_string())
                        || count >= NIL as usize,
                    "{reason}"
                ),
                other => panic!("{count} × {size}: {other:?}"),
            }
        }
        PoolContext::try_new(1 << 22, 1024).unwrap();
    }

    #[test]
    fn concurrent_get_put_keeps_every_buffer() {
        let ctx = PoolContext::new(64, 32);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ctx = ctx.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u32 {
                        if let Ok(tok) = ctx.alloc_token(&i.to_le_bytes()) {
                            let p = ctx.packet(tok);
                            assert_eq!(&p[..], &i.to_le_bytes(), "thread {t}");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ctx.free_buffers(), 64);
    }
}
