//! [`IndexRing`]: a single-producer/single-consumer ring shared with the kernel inside one
//! [`SharedMap`]: a producer index, a consumer index and a flags word (`u32` atomics), and a
//! power-of-two array of `T` slots reached by a free-running `u32` index (AF_XDP's four rings
//! have this layout, as io_uring's do).
//!
//! The geometry is checked once, when the ring is made; a slot access then costs the mask of
//! its index and nothing else, which the per-packet paths need. Which side may touch which
//! slot when (acquire/release on the indices) is the engine's protocol; this type only keeps
//! every access inside the mapping.

use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use crate::map::{Pod, SharedMap};

/// A ring of `T` slots with its three index words, all inside the [`SharedMap`] it owns.
pub struct IndexRing<T: Pod> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    slots: NonNull<T>,
    mask: u32,
    /// Declared last: unmapped after nothing points into it any more.
    map: SharedMap,
    _slot: PhantomData<T>,
}

// SAFETY: the pointers point into `map`, which is Send + Sync and moves with the ring; the
// slots hold Pod values (plain data, no references); shared access goes through the atomics
// or through raw copies of slots the ring protocol gives to one side at a time.
unsafe impl<T: Pod> Send for IndexRing<T> {}
// SAFETY: as above; no `&`/`&mut` to a slot is ever handed out.
unsafe impl<T: Pod> Sync for IndexRing<T> {}

/// The byte offsets, in the mapping, of a ring's parts (as the kernel reports them, e.g.
/// `struct xdp_ring_offset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingOffsets {
    /// The producer index (`u32`).
    pub producer: usize,
    /// The consumer index (`u32`).
    pub consumer: usize,
    /// The flags word (`u32`).
    pub flags: usize,
    /// The first slot.
    pub desc: usize,
}

impl<T: Pod> IndexRing<T> {
    /// A ring of `size` slots (a power of two) laid out in `map` at `off`. Fails with
    /// `InvalidInput` if `size` is not a power of two, or an index word or the slot array
    /// leaves the mapping or is misaligned.
    pub fn new(map: SharedMap, off: RingOffsets, size: u32) -> io::Result<Self> {
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ring of {size} slots in a {}-byte mapping: {what}",
                    map.len()
                ),
            )
        };
        if !size.is_power_of_two() {
            return Err(bad("the size is not a power of two"));
        }
        let word = |at: usize, what: &str| {
            map.try_atomic_u32(at)
                .map(NonNull::from)
                .ok_or_else(|| bad(what))
        };
        let producer = word(off.producer, "the producer index leaves it")?;
        let consumer = word(off.consumer, "the consumer index leaves it")?;
        let flags = word(off.flags, "the flags word leaves it")?;
        let bytes = (size as usize)
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| bad("the slots overflow"))?;
        if off.desc % std::mem::align_of::<T>() != 0 {
            return Err(bad("the slots are misaligned"));
        }
        let slots = map
            .try_range_ptr(off.desc, bytes)
            .and_then(|p| NonNull::new(p.cast::<T>()))
            .ok_or_else(|| bad("the slots leave it"))?;
        Ok(IndexRing {
            producer,
            consumer,
            flags,
            slots,
            mask: size - 1,
            map,
            _slot: PhantomData,
        })
    }

    /// The number of slots.
    #[inline]
    pub fn size(&self) -> u32 {
        self.mask + 1
    }

    /// The producer index word.
    #[inline(always)]
    pub fn producer(&self) -> &AtomicU32 {
        // SAFETY: checked inside the mapping and aligned at `new`; the mapping lives as long
        // as `self`; the other side accesses the word atomically too.
        unsafe { self.producer.as_ref() }
    }

    /// The consumer index word.
    #[inline(always)]
    pub fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as in `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// The flags word.
    #[inline(always)]
    pub fn flags(&self) -> &AtomicU32 {
        // SAFETY: as in `producer`.
        unsafe { self.flags.as_ref() }
    }

    /// A copy of slot `idx & (size - 1)`.
    #[inline(always)]
    pub fn read(&self, idx: u32) -> T {
        let p = self.slots.as_ptr().wrapping_add((idx & self.mask) as usize);
        // SAFETY: `idx & mask` < size, and the `size` slots lie inside the mapping, aligned
        // (checked at `new`); the read makes no reference, and any bits are a valid T (Pod).
        unsafe { p.read() }
    }

    /// Stores `v` in slot `idx & (size - 1)`.
    #[inline(always)]
    pub fn write(&self, idx: u32, v: T) {
        let p = self.slots.as_ptr().wrapping_add((idx & self.mask) as usize);
        // SAFETY: as in `read`, for a write; no reference is made.
        unsafe { p.write(v) }
    }

    /// The mapping the ring lives in.
    pub fn map(&self) -> &SharedMap {
        &self.map
    }
}

impl<T: Pod> std::fmt::Debug for IndexRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexRing")
            .field("size", &self.size())
            .field("map", &self.map)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn offsets() -> RingOffsets {
        RingOffsets {
            producer: 0,
            consumer: 64,
            flags: 128,
            desc: 192,
        }
    }

    #[test]
    fn slots_wrap_and_words_are_where_said() {
        let r = IndexRing::<u64>::new(SharedMap::anonymous(4096, false).unwrap(), offsets(), 8)
            .unwrap();
        assert_eq!(r.size(), 8);
        for i in 0..20u32 {
            r.write(i, u64::from(i));
        }
        assert_eq!(r.read(3), 19);
        assert_eq!(r.read(11), 19);
        r.producer().store(5, Ordering::Release);
        r.flags().store(1, Ordering::Relaxed);
        assert_eq!(r.map().read::<u32>(0), 5);
        assert_eq!(r.map().read::<u32>(128), 1);
        assert_eq!(r.map().read::<u64>(192 + 3 * 8), 19);
        assert_eq!(r.consumer().load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_geometry_is_checked() {
        let map = || SharedMap::anonymous(4096, false).unwrap();
        assert!(IndexRing::<u64>::new(map(), offsets(), 6).is_err());
        assert!(IndexRing::<u64>::new(map(), offsets(), 512).is_err());
        let mut o = offsets();
        o.flags = 4094;
        assert!(IndexRing::<u64>::new(map(), o, 8).is_err());
        let mut o = offsets();
        o.desc = 196;
        assert!(IndexRing::<u64>::new(map(), o, 8).is_err());
        assert!(IndexRing::<u64>::new(map(), offsets(), 488).is_err());
        assert!(IndexRing::<u64>::new(map(), offsets(), 256).is_ok());
    }
}
