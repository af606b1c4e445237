//! [`Umem`]: the packet memory registered with the kernel, and the [`Context`] of this backend.
//!
//! A [`BufferDesc`] is a UMEM address: the byte offset of a packet's first byte in the UMEM
//! (frame base + the headroom the kernel left). Its frame is `addr / frame_size`.
//!
//! A socket whose frames may span several UMEM frames (multi-buffer AF_XDP, `XDP_USE_SG`)
//! also has *jumbo buffers*: a region mapped right after the registered UMEM (the kernel never
//! sees it), into which a multi-buffer frame is copied whole at receive. A jumbo buffer's
//! address is its offset in the whole mapping (≥ the UMEM's length), so payloads, tokens and
//! `release` treat it as any frame; its index comes after the UMEM's frames.
//!
//! Releasing a frame takes one of two paths:
//! - through the socket's own handle (the [`Umem`] inside the socket, which every payload of
//!   `recv` / `recv_batch` borrows): onto a plain, non-atomic stack of frame addresses that
//!   the socket moves to the fill ring once per receive window. A `Umem` is not `Sync`, so a
//!   payload borrowing the socket's handle is dropped on the thread that holds the socket:
//!   the socket and its payloads never touch that stack at the same time.
//! - through a clone (a token consumed with a cloned context, on any thread): onto core's
//!   lock-free [`FreeList`] (one compare-and-swap); the socket's thread takes the whole list
//!   at once ([`FreeList::take_all`]) when it refills the fill ring, in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nethuns_core::freelist::FreeList;
use nethuns_core::{next_pool_id, BufferDesc, Context, Error, Result};
use nethuns_sys_linux::SharedMap;

use crate::stack::FrameStack;
use crate::sys;

/// The UMEM of one socket: `num_frames` frames of `frame_size` bytes in one anonymous mapping.
/// Cheap to clone (an `Arc`); clones share the memory and the pool id. The memory lives as
/// long as any clone, so payloads stay readable after their socket is gone.
///
/// `Send` but not `Sync`: a clone travels to another thread (with tokens, to make payloads
/// there), a reference does not. Frames released through the socket's own handle go back
/// without an atomic operation (see the module documentation).
pub struct Umem {
    inner: Arc<Inner>,
    /// The socket's own handle only (clones have none): frames released through it, waiting
    /// for the socket's next refill.
    local: Option<FrameStack>,
}

impl Clone for Umem {
    /// Another handle on the same memory and pool; frames released through it take the
    /// lock-free path.
    fn clone(&self) -> Self {
        Umem {
            inner: self.inner.clone(),
            local: None,
        }
    }
}

struct Inner {
    /// The UMEM, then the jumbo buffers.
    map: SharedMap,
    /// Bytes registered with the kernel (`num_frames × frame_size`).
    len: usize,
    frame_shift: u32,
    num_frames: u32,
    /// Jumbo buffers after the UMEM (0 without multi-buffer frames).
    jumbo_count: u32,
    /// log2 of a jumbo buffer's size.
    jumbo_shift: u32,
    pool_id: u32,
    /// Frames (and jumbo buffers, by index) released through clones, waiting for the socket.
    released_list: FreeList,
    /// Frames released and taken back by the socket since creation (monotonic; added once
    /// per refill, not per release).
    released: AtomicU64,
    /// Debug builds: which frames are out with a payload or token (catches double release).
    #[cfg(debug_assertions)]
    out: Box<[std::sync::atomic::AtomicBool]>,
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem")
            .field("pool_id", &self.inner.pool_id)
            .field("num_frames", &self.inner.num_frames)
            .field("frame_size", &self.frame_size())
            .finish()
    }
}

impl Umem {
    /// Maps `num_frames × frame_size` bytes (both powers of two, checked by the flags).
    #[cfg(test)]
    pub(crate) fn new(num_frames: u32, frame_size: u32) -> Result<Self> {
        Self::with_jumbo(num_frames, frame_size, 0, 0)
    }

    /// Maps `num_frames × frame_size` bytes of UMEM followed by `jumbo_count` jumbo buffers of
    /// `jumbo_size` bytes (a power of two; both 0 without multi-buffer frames).
    pub(crate) fn with_jumbo(
        num_frames: u32,
        frame_size: u32,
        jumbo_count: u32,
        jumbo_size: u32,
    ) -> Result<Self> {
        let len = num_frames as usize * frame_size as usize;
        let mapped = len + jumbo_count as usize * jumbo_size as usize;
        let map = sys::map_umem(mapped).map_err(|e| {
            Error::os(
                format!(
                    "AF_XDP: mapping a UMEM of {num_frames} frames of {frame_size} bytes \
                     ({jumbo_count} jumbo buffers of {jumbo_size} bytes after it)"
                ),
                e,
            )
        })?;
        let all = num_frames + jumbo_count;
        Ok(Umem {
            local: None,
            inner: Arc::new(Inner {
                map,
                len,
                frame_shift: frame_size.trailing_zeros(),
                num_frames,
                jumbo_count,
                jumbo_shift: jumbo_size.max(1).trailing_zeros(),
                pool_id: next_pool_id(),
                released_list: FreeList::empty(all),
                released: AtomicU64::new(0),
                #[cfg(debug_assertions)]
                out: (0..all)
                    .map(|_| std::sync::atomic::AtomicBool::new(false))
                    .collect(),
            }),
        })
    }

    /// Base address and length of the UMEM (for `XDP_UMEM_REG`; the jumbo buffers after it
    /// are not registered).
    pub(crate) fn area(&self) -> (*mut u8, usize) {
        (self.inner.map.as_ptr(), self.inner.len)
    }

    /// Makes this handle the socket's own: frames released through it (up to `cap` at a
    /// time, more take the lock-free path) wait on a plain stack for [`Umem::take_local`].
    pub(crate) fn make_local(&mut self, cap: u32) {
        self.local = Some(FrameStack::with_capacity(cap));
    }

    /// Frames released through this handle since the last [`Umem::take_local`].
    #[inline]
    pub(crate) fn local_len(&self) -> u32 {
        self.local.as_ref().map_or(0, FrameStack::len)
    }

    /// Calls `f` with the start of every frame released through this handle, and empties the
    /// stack; returns how many there were. The caller owns them from now on.
    #[inline]
    pub(crate) fn take_local(&self, mut f: impl FnMut(u64)) -> u32 {
        let Some(l) = &self.local else { return 0 };
        let mask = !(u64::from(self.frame_size()) - 1);
        l.drain(|a| f(a & mask))
    }

    /// The frames waiting on the local stack (for the frame audit).
    pub(crate) fn local_frames(&self) -> Vec<u64> {
        self.local.as_ref().map_or(vec![], FrameStack::to_vec)
    }

    /// Jumbo buffers (0 without multi-buffer frames).
    pub(crate) fn jumbo_count(&self) -> u32 {
        self.inner.jumbo_count
    }

    /// Bytes per jumbo buffer.
    pub(crate) fn jumbo_size(&self) -> usize {
        1 << self.inner.jumbo_shift
    }

    /// Whether index `frame` (from [`Umem::take_released`]) is a jumbo buffer.
    #[inline]
    pub(crate) fn is_jumbo(&self, frame: u32) -> bool {
        frame >= self.inner.num_frames
    }

    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        1 << self.inner.frame_shift
    }

    /// Number of frames.
    pub fn num_frames(&self) -> u32 {
        self.inner.num_frames
    }

    /// Frames released by payloads and taken back by the socket since the UMEM was made. A
    /// frame is counted when the socket takes it from the released stack (its next receive
    /// batch), not at the release itself, which stays one compare-and-swap.
    pub fn released(&self) -> u64 {
        self.inner.released.load(Ordering::Relaxed)
    }

    /// Counts `n` frames taken back from the released stack.
    #[inline]
    pub(crate) fn count_released(&self, n: u64) {
        self.inner.released.fetch_add(n, Ordering::Relaxed);
    }

    /// The frame index of a UMEM address (a jumbo buffer's index after the frames).
    #[inline]
    pub(crate) fn frame_of(&self, addr: u64) -> u32 {
        let i = &*self.inner;
        if addr < i.len as u64 {
            (addr >> i.frame_shift) as u32
        } else {
            i.num_frames + ((addr - i.len as u64) >> i.jumbo_shift) as u32
        }
    }

    /// The address of a frame's (or jumbo buffer's) first byte.
    #[inline]
    pub(crate) fn addr_of(&self, frame: u32) -> u64 {
        let i = &*self.inner;
        if frame < i.num_frames {
            (frame as u64) << i.frame_shift
        } else {
            i.len as u64 + (((frame - i.num_frames) as u64) << i.jumbo_shift)
        }
    }

    /// Copies `n` bytes from address `from` to address `to` of the mapping (a received frame
    /// segment into a jumbo buffer, both owned by the socket's thread); panics if either range
    /// leaves the mapping.
    #[inline]
    pub(crate) fn copy_within(&self, from: u64, to: u64, n: usize) {
        self.inner.map.copy_within(from as usize, to as usize, n);
    }

    /// The raw slice pointer to the `len` bytes at `addr`, not bounds-checked (debug builds
    /// assert): the payload's every access comes through here, and the ranges it asks for lie
    /// in frames by construction. Making the pointer is safe; dereferencing it is the
    /// caller's promise that the range is in the mapping and owned by it.
    #[inline(always)]
    pub(crate) fn frame_ptr(&self, addr: u64, len: usize) -> *mut [u8] {
        debug_assert!(
            addr as usize + len <= self.inner.map.len(),
            "UMEM address out of range"
        );
        std::ptr::slice_from_raw_parts_mut(self.inner.map.as_ptr().wrapping_add(addr as usize), len)
    }

    /// Marks a frame as handed to a payload/token (debug builds check it was not already).
    #[inline]
    pub(crate) fn mark_out(&self, frame: u32) {
        #[cfg(debug_assertions)]
        assert!(
            !self.inner.out[frame as usize].swap(true, Ordering::Relaxed),
            "AF_XDP frame {frame} handed out twice"
        );
        let _ = frame;
    }

    /// Copies `data` into frame memory at `addr` (a TX frame the socket owns, `data` no
    /// longer than a frame: the callers check). Not bounds-checked (debug builds assert):
    /// this is the per-packet copy of `send`.
    #[inline]
    pub(crate) fn write(&self, addr: u64, data: &[u8]) {
        let dst = self.frame_ptr(addr, data.len()).cast::<u8>();
        // SAFETY: addr + len lies within the mapping (the callers check len against the frame
        // size, and TX frame addresses are frame starts), and TX frames on the socket's free
        // list are owned by the socket alone; `data` is not in the UMEM's TX frame.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) }
    }

    /// Reads `N` bytes at `addr` (e.g. the XDP RX metadata in front of a frame the socket
    /// owns); panics if they leave the mapping.
    #[inline]
    pub(crate) fn read<const N: usize>(&self, addr: u64) -> [u8; N] {
        self.inner.map.read(addr as usize)
    }

    /// Stores `N` bytes at `addr` (a frame the socket owns); panics if they leave the mapping.
    #[inline]
    pub(crate) fn write_bytes<const N: usize>(&self, addr: u64, v: [u8; N]) {
        self.inner.map.write(addr as usize, v)
    }

    /// Whether frames wait on the released list (one relaxed load of its count, on every
    /// window of the RX ring: a push seen late is taken at the next window; a count seen
    /// early, while `take_all` empties the list, makes one refill find nothing).
    #[inline]
    pub(crate) fn shared_pending(&self) -> bool {
        self.inner.released_list.free() != 0
    }

    /// The TCI of the outermost VLAN tag (TPID 0x8100, 0x88A8 or 0x9100) of the `len`-byte
    /// frame at `addr`, or `None` if it is untagged: [`frame::outer_vlan`] with one load.
    ///
    /// [`frame::outer_vlan`]: nethuns_core::frame::outer_vlan
    #[inline(always)]
    pub(crate) fn outer_vlan(&self, addr: u64, len: u32) -> Option<u16> {
        if len < 18 {
            return None;
        }
        // Bytes 12..14 (the TPID) and, if tagged, 14..16 (the TCI), unchecked against the
        // mapping (debug builds assert): this runs for every received frame. Both lie within
        // the frame's `len` >= 18 bytes, and the frame within the mapping (the kernel validates
        // RX descriptors against the registered UMEM; jumbo buffer addresses are ours).
        let tpid = u16::from_le_bytes(self.read2(addr + 12));
        // Compared as read (bytes in wire order): 0x8100 and 0x9100 differ in one bit, so
        // two comparisons cover the three TPIDs.
        if tpid & 0xFFEF == u16::from_le_bytes([0x81, 0x00])
            || tpid == u16::from_le_bytes([0x88, 0xA8])
        {
            return Some(u16::from_be_bytes(self.read2(addr + 14)));
        }
        None
    }

    /// The two bytes at `addr`, which lie in a received frame (see `outer_vlan`).
    #[inline(always)]
    fn read2(&self, addr: u64) -> [u8; 2] {
        let at = self.frame_ptr(addr, 2).cast::<[u8; 2]>();
        // SAFETY: the two bytes lie within a frame of the mapping (the caller's frame, see
        // `outer_vlan`); an unaligned read of plain bytes, no reference made.
        unsafe { at.read_unaligned() }
    }

    /// Takes every frame released through clones at once, handing each index to `f` (a
    /// jumbo buffer's after the frames); returns how many. Only the socket's thread calls this.
    #[inline]
    pub(crate) fn take_released(&self, f: impl FnMut(u32)) -> u32 {
        self.inner.released_list.take_all(f)
    }

    /// Frames on the released list now (call from the socket's thread only).
    pub(crate) fn released_frames(&self) -> Vec<u32> {
        self.inner.released_list.snapshot()
    }
}

impl Context for Umem {
    #[inline]
    fn pool_id(&self) -> u32 {
        self.inner.pool_id
    }

    #[inline]
    unsafe fn unsafe_buffer(&self, buf_idx: BufferDesc, size: usize) -> *mut [u8] {
        let addr = buf_idx.get();
        debug_assert!(
            addr + size <= self.inner.map.len(),
            "UMEM address out of range"
        );
        // The caller's contract puts addr + size within its frame, hence within the mapping.
        self.frame_ptr(addr as u64, size)
    }

    #[inline]
    unsafe fn release(&self, buf_idx: BufferDesc) {
        nethuns_core::ledger::released(self.inner.pool_id, buf_idx);
        self.recycle(buf_idx.get() as u64);
    }
}

impl Umem {
    /// Whether `other` is a handle on the same memory.
    #[inline]
    pub(crate) fn same_memory(&self, other: &Umem) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether `addr` lies in a UMEM frame (one the kernel can transmit from), not in a jumbo
    /// buffer.
    #[inline]
    pub(crate) fn in_frames(&self, addr: u64) -> bool {
        addr < self.inner.len as u64
    }

    /// `release` without the ledger: puts frame `addr`, handed out and now given back (by a
    /// payload, or by the completion ring after a zero-copy send), on a released stack.
    #[inline]
    pub(crate) fn recycle(&self, addr: u64) {
        if let Some(l) = &self.local {
            if addr < self.inner.len as u64 {
                #[cfg(debug_assertions)]
                let frame = (addr >> self.inner.frame_shift) as usize;
                #[cfg(debug_assertions)]
                assert!(
                    self.inner.out[frame].swap(false, Ordering::Relaxed),
                    "AF_XDP frame {frame} released twice"
                );
                // As released (the frame's start is taken when it goes to the fill ring).
                if l.push(addr) {
                    return;
                }
                #[cfg(debug_assertions)]
                self.inner.out[frame].store(true, Ordering::Relaxed);
            }
        }
        self.release_shared(addr);
    }
}

impl Umem {
    /// The lock-free path of `release`: a push on the released stack.
    fn release_shared(&self, addr: u64) {
        let frame = self.frame_of(addr);
        if frame >= self.inner.num_frames + self.inner.jumbo_count {
            debug_assert!(false, "release of UMEM address {addr} out of range");
            return;
        }
        #[cfg(debug_assertions)]
        assert!(
            self.inner.out[frame as usize].swap(false, Ordering::Relaxed),
            "AF_XDP frame {frame} released twice"
        );
        // SAFETY: `frame` is in range (checked above) and was handed out (debug builds checked
        // it above): the payload that owned it gives it up here, and it is not on the list.
        unsafe { self.inner.released_list.push(frame) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_vlan_matches_the_frame_rule() {
        let u = Umem::new(4, 2048).unwrap();
        for tpid in [
            0x8100u16, 0x88A8, 0x9100, 0x0800, 0x86DD, 0x88B5, 0x8000, 0x8110, 0x9000,
        ] {
            let mut f = [0u8; 64];
            f[12..14].copy_from_slice(&tpid.to_be_bytes());
            f[14..16].copy_from_slice(&[0x20, 0x07]);
            u.write(2048 + 100, &f);
            for len in [14u32, 17, 18, 64] {
                let got = u.outer_vlan(2048 + 100, len);
                let want = nethuns_core::frame::outer_vlan(&f[..len as usize]);
                assert_eq!(got, want, "tpid {tpid:#x} len {len}");
            }
        }
    }

    #[test]
    fn release_from_many_threads_then_take_all() {
        let u = Umem::new(1024, 2048).unwrap();
        for f in 0..1024 {
            u.mark_out(f);
        }
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let u = u.clone();
                s.spawn(move || {
                    for f in (t..1024).step_by(4) {
                        // Frame f is out and owned by this thread.
                        let tok = crate::sys::test_token((f as usize) << 11 | 256, 60, u.pool_id());
                        drop(tok.consume(&u));
                    }
                });
            }
        });
        let mut seen = vec![false; 1024];
        let n = u.take_released(|f| {
            assert!(!seen[f as usize], "frame {f} twice");
            seen[f as usize] = true;
        });
        assert_eq!(n, 1024);
        assert_eq!(u.take_released(|_| {}), 0);
    }
}
