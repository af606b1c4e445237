//! One netmap ring seen from user space, and the receive/transmit steps on it. No syscalls:
//! the kernel's part (the sync) happens elsewhere, between calls.
//!
//! Ownership, in netmap's terms: on an RX ring the user owns slots `[head, tail)` (received
//! packets); on a TX ring the user owns slots `[head, tail)` (free slots to fill). The user
//! moves `head` (and `cur` with it); the kernel moves `tail` during a sync. The kernel writes
//! ring memory only inside the sync ioctl issued by this thread, so plain volatile accesses
//! suffice; a fence orders them around each sync.
//!
//! Receive swaps buffers instead of lending slots: the packet's buffer goes to the caller and
//! the slot gets a free extra buffer (`NS_BUF_CHANGED`), so `head` moves on at once and the ring
//! never waits for a payload to be dropped.

use std::ptr::{addr_of, addr_of_mut, NonNull};

use crate::extra::{BufMem, ExtraPool};
use crate::sys::{self, netmap_ring, nm_ring_next, NS_BUF_CHANGED, NS_MOREFRAG};

/// A ring of a mapped netmap region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ring {
    ptr: NonNull<netmap_ring>,
    num_slots: u32,
    /// The ring's position in the interface's TX or RX ring list.
    pub(crate) index: u32,
}

impl Ring {
    /// Wraps the ring at `ptr`.
    ///
    /// # Safety
    /// `ptr` points to a valid ring header followed by `num_slots` slots in a region that stays
    /// mapped while the `Ring` is used; `head` is below `num_slots`; only the thread using this
    /// value writes `head`/`cur`/slots, and the kernel touches them only during syncs issued
    /// by that thread.
    pub(crate) unsafe fn new(ptr: NonNull<netmap_ring>, index: u32) -> Ring {
        let num_slots = addr_of!((*ptr.as_ptr()).num_slots).read_volatile();
        Ring {
            ptr,
            num_slots,
            index,
        }
    }

    #[inline]
    fn raw(&self) -> *mut netmap_ring {
        self.ptr.as_ptr()
    }

    /// `head`: the first slot the user owns.
    #[inline]
    pub(crate) fn head(&self) -> u32 {
        // SAFETY: `new`'s contract: the header is mapped.
        unsafe { addr_of!((*self.raw()).head).read_volatile() }
    }

    /// `tail`: the first slot the kernel owns.
    #[inline]
    pub(crate) fn tail(&self) -> u32 {
        // SAFETY: as in `head`.
        unsafe { addr_of!((*self.raw()).tail).read_volatile() }
    }

    /// Moves `head` and `cur` to `i`, giving the slots before it to the kernel.
    #[inline]
    fn advance(&self, i: u32) {
        debug_assert!(i < self.num_slots);
        // SAFETY: as in `head`; only this thread writes `head`/`cur`.
        unsafe {
            addr_of_mut!((*self.raw()).head).write_volatile(i);
            addr_of_mut!((*self.raw()).cur).write_volatile(i);
        }
    }

    /// The ring's `NR_*` flags.
    #[cfg(test)]
    pub(crate) fn flags(&self) -> u32 {
        // SAFETY: as in `head`.
        unsafe { addr_of!((*self.raw()).flags).read_volatile() }
    }

    /// The time of the last sync (`ts`).
    #[inline]
    pub(crate) fn ts(&self) -> libc::timeval {
        // SAFETY: as in `head`.
        unsafe { addr_of!((*self.raw()).ts).read_volatile() }
    }

    /// Slot `i`.
    ///
    /// # Safety
    /// `i < num_slots`.
    #[inline]
    unsafe fn slot(&self, i: u32) -> *mut sys::netmap_slot {
        debug_assert!(i < self.num_slots);
        sys::ring_slot(self.raw(), i)
    }
}

/// What one receive step found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rx {
    /// No complete packet in the user's part of the ring.
    Empty,
    /// A packet: its buffer now belongs to the caller.
    Packet {
        /// The netmap buffer index.
        buf: u32,
        /// Length in bytes.
        len: u32,
    },
    /// A packet is waiting but no extra buffer is free: nothing was taken, the packet stays.
    NoExtra,
    /// A packet spanning `slots` slots from `head` (`NS_MOREFRAG` on all but the last), `len`
    /// bytes in all; nothing taken yet ([`rx_copy_chain`] or [`rx_skip`] next).
    Chain {
        /// Slots of the packet.
        slots: u32,
        /// Total length.
        len: usize,
    },
    /// The kernel's `tail` is not a slot of the ring: nothing was taken (the ring cannot be
    /// read until a sync rewrites it).
    BadTail {
        /// The value read.
        tail: u32,
        /// The ring's size.
        num_slots: u32,
    },
    /// Slot `slot` named an invalid buffer or length; it was skipped.
    Corrupt {
        /// The slot.
        slot: u32,
        /// Its buffer index.
        buf: u32,
        /// Its length.
        len: u32,
    },
}

/// Takes the packet at `head` of an RX ring, swapping an extra buffer into its slot.
pub(crate) fn rx_take(ring: &Ring, pool: &ExtraPool) -> Rx {
    let head = ring.head();
    let tail = ring.tail();
    if sys::nm_ring_empty(head, tail) {
        return Rx::Empty;
    }
    let n = ring.num_slots;
    if tail >= n {
        // Walking towards a tail outside the ring would never stop (and hand out slots the
        // kernel never filled).
        return Rx::BadTail { tail, num_slots: n };
    }
    // SAFETY: `head` is below `num_slots` (we only ever set it with `nm_ring_next`).
    let slot = unsafe { ring.slot(head) };
    // SAFETY: the slot is in the user's part of the ring and mapped.
    let (buf, len, flags) = unsafe {
        (
            addr_of!((*slot).buf_idx).read_volatile(),
            addr_of!((*slot).len).read_volatile() as u32,
            addr_of!((*slot).flags).read_volatile(),
        )
    };
    if flags & NS_MOREFRAG != 0 {
        // Walk to the last fragment; report the packet only once it is complete.
        let (mut i, mut total, mut slots) = (head, len as usize, 1u32);
        loop {
            i = nm_ring_next(n, i);
            if i == tail {
                return Rx::Empty;
            }
            // SAFETY: `i` is below `num_slots` and in the user's part of the ring.
            let (l, f) = unsafe {
                let s = ring.slot(i);
                (
                    addr_of!((*s).len).read_volatile() as usize,
                    addr_of!((*s).flags).read_volatile(),
                )
            };
            total += l;
            slots += 1;
            if f & NS_MOREFRAG == 0 {
                return Rx::Chain { slots, len: total };
            }
        }
    }
    let mem = pool.mem();
    if !mem.valid(buf) || len > mem.buf_size() {
        ring.advance(nm_ring_next(n, head));
        return Rx::Corrupt {
            slot: head,
            buf,
            len,
        };
    }
    let Some(extra) = pool.pop() else {
        return Rx::NoExtra;
    };
    // SAFETY: the slot is ours until `head` moves past it; the extra buffer was free.
    unsafe {
        addr_of_mut!((*slot).buf_idx).write_volatile(extra);
        addr_of_mut!((*slot).flags).write_volatile(NS_BUF_CHANGED);
    }
    ring.advance(nm_ring_next(n, head));
    Rx::Packet { buf, len }
}

/// Copies the packet of `slots` slots at `head` of an RX ring (an [`Rx::Chain`]) into `dst`
/// (at least its length) and gives the slots back. `Err(slot)` if a slot names an invalid
/// buffer or length: the whole chain is skipped.
pub(crate) fn rx_copy_chain(
    ring: &Ring,
    mem: &BufMem,
    slots: u32,
    dst: &mut [u8],
) -> Result<usize, u32> {
    let (n, head) = (ring.num_slots, ring.head());
    let (mut i, mut off) = (head, 0usize);
    let mut bad = None;
    for _ in 0..slots {
        // SAFETY: the chain's slots are in the user's part of the ring (`rx_take` walked
        // them), each index below `num_slots`.
        let (buf, len) = unsafe {
            let s = ring.slot(i);
            (
                addr_of!((*s).buf_idx).read_volatile(),
                addr_of!((*s).len).read_volatile() as usize,
            )
        };
        if bad.is_none() {
            if !mem.valid(buf) || len > mem.buf_size() as usize || off + len > dst.len() {
                bad = Some(i);
            } else {
                // SAFETY: `buf` is a valid buffer of the region holding `len` bytes, left to
                // the user until `head` passes its slot.
                unsafe {
                    std::ptr::copy_nonoverlapping(mem.buf(buf), dst[off..].as_mut_ptr(), len)
                };
                off += len;
            }
        }
        i = nm_ring_next(n, i);
    }
    ring.advance(i);
    bad.map_or(Ok(off), Err)
}

/// Gives the `slots` slots at `head` of an RX ring back without reading them.
pub(crate) fn rx_skip(ring: &Ring, slots: u32) {
    let (n, mut i) = (ring.num_slots, ring.head());
    for _ in 0..slots {
        i = nm_ring_next(n, i);
    }
    ring.advance(i);
}

/// Whether a TX step queued the packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tx {
    /// Copied into the slot at the old `head`.
    Queued,
    /// No free slot until the kernel completes transmissions (a TX sync).
    Full,
}

/// Copies `data` into the slots from `head` of a TX ring and moves `head` on: one slot, or,
/// for a packet larger than a buffer, as many as it takes with `NS_MOREFRAG` on all but the
/// last (all in this ring, or none).
pub(crate) fn tx_put(ring: &Ring, mem: &BufMem, data: &[u8]) -> Tx {
    let (n, head) = (ring.num_slots, ring.head());
    let tail = ring.tail();
    let room = (mem.buf_size() as usize).min(u16::MAX as usize);
    let k = data.len().div_ceil(room).max(1) as u32;
    // A tail outside the ring (never from a sane kernel): nothing is owned for certain until
    // a sync rewrites it.
    if tail >= n || sys::nm_ring_space(n, head, tail) < k {
        return Tx::Full;
    }
    let mut i = head;
    for _ in 0..k {
        // SAFETY: `i` is below `num_slots`; the slot is in the user's part of the ring.
        let buf = unsafe { addr_of!((*ring.slot(i)).buf_idx).read_volatile() };
        if !mem.valid(buf) {
            // A slot the kernel left without a usable buffer: never write through it.
            return Tx::Full;
        }
        i = nm_ring_next(n, i);
    }
    let mut i = head;
    let mut chunks = data.chunks(room).peekable();
    while let Some(chunk) = chunks.next() {
        // SAFETY: as above; the slot's buffer (valid, checked above) belongs to the user side
        // until `head` passes it, and `chunk` fits in it.
        unsafe {
            let slot = ring.slot(i);
            let buf = addr_of!((*slot).buf_idx).read_volatile();
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), mem.buf(buf), chunk.len());
            addr_of_mut!((*slot).len).write_volatile(chunk.len() as u16);
            let more = if chunks.peek().is_some() {
                NS_MOREFRAG
            } else {
                0
            };
            addr_of_mut!((*slot).flags).write_volatile(more);
        }
        i = nm_ring_next(n, i);
    }
    ring.advance(i);
    Tx::Queued
}

/// The buffer of the free TX slot at `head`, if there is one (for a frame of at most one
/// buffer, which [`tx_commit`] then queues): where `send_with` builds a frame in place.
pub(crate) fn tx_reserve(ring: &Ring, mem: &BufMem) -> Option<*mut u8> {
    let (n, head) = (ring.num_slots, ring.head());
    let tail = ring.tail();
    if tail >= n || sys::nm_ring_space(n, head, tail) < 1 {
        return None;
    }
    // SAFETY: `head` is below `num_slots`; the slot is in the user's part of the ring.
    let buf = unsafe { addr_of!((*ring.slot(head)).buf_idx).read_volatile() };
    // A slot the kernel left without a usable buffer: never write through it.
    // SAFETY: checked valid: the buffer lies in the mapped region.
    mem.valid(buf).then(|| unsafe { mem.buf(buf) })
}

/// Queues the slot at `head` (whose buffer [`tx_reserve`] gave out) with a frame of `len`
/// bytes, at most one buffer, and moves `head` on.
pub(crate) fn tx_commit(ring: &Ring, len: usize) {
    let head = ring.head();
    debug_assert!(head < ring.num_slots && len <= u16::MAX as usize);
    // SAFETY: `head` is below `num_slots` and its slot in the user's part of the ring
    // (`tx_reserve` checked the space, and only this thread moves `head`).
    unsafe {
        let slot = ring.slot(head);
        addr_of_mut!((*slot).len).write_volatile(len as u16);
        addr_of_mut!((*slot).flags).write_volatile(0);
    }
    ring.advance(nm_ring_next(ring.num_slots, head));
}

/// How many slots of a TX ring hold packets not yet completed by the kernel.
pub(crate) fn tx_pending(ring: &Ring) -> u32 {
    // The user owns [head, tail); the kernel holds the rest but one.
    let free = sys::nm_ring_space(ring.num_slots, ring.head(), ring.tail());
    ring.num_slots - 1 - free.min(ring.num_slots - 1)
}
