//! One netmap ring seen from user space, and the receive/transmit steps on it. No syscalls:
//! the kernel's part (the sync) happens elsewhere, between calls.
//!
//! Ownership, in netmap's terms: on an RX ring the user owns slots `[head, tail)` (received
//! packets); on a TX ring the user owns slots `[head, tail)` (free slots to fill). The user
//! moves `head` (and `cur` with it); the kernel moves `tail` during a sync. The kernel writes
//! ring memory only inside the sync ioctl issued by this thread, so plain (bounds-checked)
//! reads and writes of the [`SharedMap`] suffice; a fence orders them around each sync.
//!
//! Receive swaps buffers instead of lending slots: the packet's buffer goes to the caller and
//! the slot gets a free extra buffer (`NS_BUF_CHANGED`), so `head` moves on at once and the ring
//! never waits for a payload to be dropped.

use std::mem::{offset_of, size_of};
use std::sync::Arc;

use nethuns_sys_linux::SharedMap;

use crate::abi::{
    netmap_ring, netmap_slot, nm_ring_empty, nm_ring_next, nm_ring_space, SlotHead, NS_BUF_CHANGED,
    NS_MOREFRAG, RING_HEADER,
};
use crate::extra::{BufMem, ExtraPool};

const HEAD: usize = offset_of!(netmap_ring, head);
#[cfg(test)]
const FLAGS: usize = offset_of!(netmap_ring, flags);
const TS: usize = offset_of!(netmap_ring, ts);
const TS_SEC: usize = offset_of!(libc::timeval, tv_sec);
const TS_USEC: usize = offset_of!(libc::timeval, tv_usec);
const SLOT_BUF: usize = offset_of!(netmap_slot, buf_idx);
const SLOT_LEN: usize = offset_of!(netmap_slot, len);
const SLOT_FLAGS: usize = offset_of!(netmap_slot, flags);
// `head`, `cur`, `tail` are three consecutive u32s (read together), `len` and `flags` two
// consecutive u16s (written together).
const _: () = assert!(offset_of!(netmap_ring, cur) == HEAD + 4);
const _: () = assert!(offset_of!(netmap_ring, tail) == HEAD + 8);
const _: () = assert!(SLOT_FLAGS == SLOT_LEN + 2);

/// A ring of a mapped netmap region: the offset of its header in the [`SharedMap`].
///
/// Only the thread using this value writes `head`/`cur`/slots, and the kernel touches them
/// only during syncs issued by that thread (the engine is not `Sync`).
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    map: Arc<SharedMap>,
    /// Offset of the ring header.
    at: usize,
    num_slots: u32,
    /// The ring's position in the interface's TX or RX ring list.
    pub(crate) index: u32,
}

impl Ring {
    /// The ring whose header is at offset `at` of `map` (checked by `attach` to hold the
    /// header and its slots); `num_slots` is read once, here.
    pub(crate) fn new(map: Arc<SharedMap>, at: usize, index: u32) -> Ring {
        let num_slots = map.read::<u32>(at + offset_of!(netmap_ring, num_slots));
        Ring {
            map,
            at,
            num_slots,
            index,
        }
    }

    /// `head` and `tail` (one read of `head`, `cur`, `tail`).
    #[inline]
    fn head_tail(&self) -> (u32, u32) {
        let [head, _cur, tail] = self.map.read::<[u32; 3]>(self.at + HEAD);
        (head, tail)
    }

    /// `head`: the first slot the user owns.
    #[inline]
    pub(crate) fn head(&self) -> u32 {
        self.map.read::<u32>(self.at + HEAD)
    }

    /// `tail`: the first slot the kernel owns.
    #[cfg(test)]
    pub(crate) fn tail(&self) -> u32 {
        self.head_tail().1
    }

    /// Moves `head` and `cur` to `i`, giving the slots before it to the kernel.
    #[inline]
    fn advance(&self, i: u32) {
        debug_assert!(i < self.num_slots);
        self.map.write::<[u32; 2]>(self.at + HEAD, [i, i]);
    }

    /// The ring's `NR_*` flags.
    #[cfg(test)]
    pub(crate) fn flags(&self) -> u32 {
        self.map.read::<u32>(self.at + FLAGS)
    }

    /// The time of the last sync (`ts`).
    #[inline]
    pub(crate) fn ts(&self) -> libc::timeval {
        use std::mem::size_of as size;
        let b = self.map.read::<[u8; size::<libc::timeval>()]>(self.at + TS);
        let sec = &b[TS_SEC..TS_SEC + size::<libc::time_t>()];
        let usec = &b[TS_USEC..TS_USEC + size::<libc::suseconds_t>()];
        libc::timeval {
            tv_sec: libc::time_t::from_ne_bytes(sec.try_into().expect("time_t")),
            tv_usec: libc::suseconds_t::from_ne_bytes(usec.try_into().expect("suseconds_t")),
        }
    }

    /// The offset of slot `i` (`i < num_slots`).
    #[inline]
    fn slot_at(&self, i: u32) -> usize {
        debug_assert!(i < self.num_slots);
        self.at + RING_HEADER + i as usize * size_of::<netmap_slot>()
    }

    /// Slot `i`'s buffer, length and flags (one read of its first 8 bytes).
    #[inline]
    fn slot(&self, i: u32) -> SlotHead {
        self.map.read::<SlotHead>(self.slot_at(i))
    }

    /// The buffer index of slot `i`.
    #[inline]
    fn slot_buf(&self, i: u32) -> u32 {
        self.map.read::<u32>(self.slot_at(i) + SLOT_BUF)
    }

    /// Sets the buffer index, length and flags of slot `i` (one write of its first 8 bytes).
    #[inline]
    fn set_slot(&self, i: u32, buf_idx: u32, len: u16, flags: u16) {
        let head = SlotHead {
            buf_idx,
            len,
            flags,
        };
        self.map.write::<SlotHead>(self.slot_at(i), head);
    }

    /// Sets the length and flags of slot `i`.
    #[inline]
    fn set_slot_len_flags(&self, i: u32, len: u16, flags: u16) {
        self.map
            .write::<[u16; 2]>(self.slot_at(i) + SLOT_LEN, [len, flags]);
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
    let (head, tail) = ring.head_tail();
    if nm_ring_empty(head, tail) {
        return Rx::Empty;
    }
    let n = ring.num_slots;
    if tail >= n {
        // Walking towards a tail outside the ring would never stop (and hand out slots the
        // kernel never filled).
        return Rx::BadTail { tail, num_slots: n };
    }
    // `head` is below `num_slots` (we only ever set it with `nm_ring_next`).
    let slot = ring.slot(head);
    let (buf, len) = (slot.buf_idx, u32::from(slot.len));
    if slot.flags & NS_MOREFRAG != 0 {
        // Walk to the last fragment; report the packet only once it is complete.
        let (mut i, mut total, mut slots) = (head, len as usize, 1u32);
        loop {
            i = nm_ring_next(n, i);
            if i == tail {
                return Rx::Empty;
            }
            let s = ring.slot(i);
            total += usize::from(s.len);
            slots += 1;
            if s.flags & NS_MOREFRAG == 0 {
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
    // The slot is ours until `head` moves past it; the extra buffer was free.
    ring.set_slot(head, extra, slot.len, NS_BUF_CHANGED);
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
        // The chain's slots are in the user's part of the ring (`rx_take` walked them).
        let s = ring.slot(i);
        let (buf, len) = (s.buf_idx, usize::from(s.len));
        if bad.is_none() {
            if !mem.valid(buf) || len > mem.buf_size() as usize || off + len > dst.len() {
                bad = Some(i);
            } else {
                // `buf` is left to the user until `head` passes its slot.
                mem.copy_out(buf, &mut dst[off..off + len]);
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
    let n = ring.num_slots;
    let (head, tail) = ring.head_tail();
    let room = (mem.buf_size() as usize).min(u16::MAX as usize);
    let k = data.len().div_ceil(room).max(1) as u32;
    // A tail outside the ring (never from a sane kernel): nothing is owned for certain until
    // a sync rewrites it.
    if tail >= n || nm_ring_space(n, head, tail) < k {
        return Tx::Full;
    }
    if k == 1 && !data.is_empty() {
        // One slot (the common case): its buffer read once.
        let buf = ring.slot_buf(head);
        if !mem.valid(buf) {
            // A slot the kernel left without a usable buffer: never write through it.
            return Tx::Full;
        }
        mem.copy_in(buf, data);
        ring.set_slot_len_flags(head, data.len() as u16, 0);
        ring.advance(nm_ring_next(n, head));
        return Tx::Queued;
    }
    let mut i = head;
    for _ in 0..k {
        // The slot is in the user's part of the ring.
        if !mem.valid(ring.slot_buf(i)) {
            // A slot the kernel left without a usable buffer: never write through it.
            return Tx::Full;
        }
        i = nm_ring_next(n, i);
    }
    let mut i = head;
    let mut chunks = data.chunks(room).peekable();
    while let Some(chunk) = chunks.next() {
        // The slot's buffer (valid, checked above) belongs to the user side until `head`
        // passes it, and `chunk` fits in it.
        mem.copy_in(ring.slot_buf(i), chunk);
        let more = if chunks.peek().is_some() {
            NS_MOREFRAG
        } else {
            0
        };
        ring.set_slot_len_flags(i, chunk.len() as u16, more);
        i = nm_ring_next(n, i);
    }
    ring.advance(i);
    Tx::Queued
}

/// The buffer of the free TX slot at `head`, if there is one (for a frame of at most one
/// buffer, which [`tx_commit`] then queues): where `send_with` builds a frame in place.
pub(crate) fn tx_reserve(ring: &Ring, mem: &BufMem) -> Option<u32> {
    let n = ring.num_slots;
    let (head, tail) = ring.head_tail();
    if tail >= n || nm_ring_space(n, head, tail) < 1 {
        return None;
    }
    let buf = ring.slot_buf(head);
    // A slot the kernel left without a usable buffer: never write through it.
    mem.valid(buf).then_some(buf)
}

/// Queues the slot at `head` (whose buffer [`tx_reserve`] gave out) with a frame of `len`
/// bytes, at most one buffer, and moves `head` on.
pub(crate) fn tx_commit(ring: &Ring, len: usize) {
    let head = ring.head();
    debug_assert!(head < ring.num_slots && len <= u16::MAX as usize);
    // `tx_reserve` checked the space, and only this thread moves `head`.
    ring.set_slot_len_flags(head, len as u16, 0);
    ring.advance(nm_ring_next(ring.num_slots, head));
}

/// How many slots of a TX ring hold packets not yet completed by the kernel.
pub(crate) fn tx_pending(ring: &Ring) -> u32 {
    // The user owns [head, tail); the kernel holds the rest but one.
    let (head, tail) = ring.head_tail();
    let free = nm_ring_space(ring.num_slots, head, tail);
    ring.num_slots - 1 - free.min(ring.num_slots - 1)
}
