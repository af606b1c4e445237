//! The four AF_XDP rings (fill, completion, RX, TX) mapped from the socket, with cached
//! producer/consumer indices as libxdp's `xsk.h` keeps them.
//!
//! Each ring is a power-of-two array of entries plus a producer and a consumer index and a
//! flags word, shared with the kernel. The side that produces reads the other side's consumer
//! index with acquire ordering and publishes its producer index with release ordering, and
//! the reverse for consumers (the kernel pairs them with `smp_load_acquire` /
//! `smp_store_release`). Indices are free-running `u32`s; `index & mask` is the slot.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// One descriptor of the RX and TX rings (`struct xdp_desc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// An mmap'd ring region, unmapped on drop.
struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; nothing uses the ring after drop.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A ring of entries of type `T` (`u64` addresses for fill/completion, [`XdpDesc`] for RX/TX).
///
/// Not `Sync` (the cached indices are `Cell`s): one thread at a time drives it.
pub(crate) struct Ring<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    ring: *mut T,
    mask: u32,
    size: u32,
    /// Producer rings: our next producer index. Consumer rings: last seen producer index.
    cached_prod: Cell<u32>,
    /// Producer rings: last seen consumer index. Consumer rings: our next consumer index.
    cached_cons: Cell<u32>,
    _map: Mapping,
}

// SAFETY: the ring memory is shared with the kernel only (synchronised with atomics), and the
// cached indices move with the ring; Ring is not Sync, so one thread uses it at a time.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Maps a ring of `size` entries at page offset `pgoff` of socket `fd`, using the offsets
    /// the kernel reported.
    pub(crate) fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: i64,
    ) -> io::Result<Self> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: mapping a socket ring: fd is an AF_XDP socket whose ring of this size was
        // set up with setsockopt; the kernel validates pgoff and len.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        // SAFETY: the offsets lie inside the mapping (kernel-provided), and the index words
        // are 4-byte aligned u32s that the kernel accesses atomically.
        let (producer, consumer, flags, ring) = unsafe {
            (
                base.add(off.producer as usize) as *const AtomicU32,
                base.add(off.consumer as usize) as *const AtomicU32,
                base.add(off.flags as usize) as *const AtomicU32,
                base.add(off.desc as usize) as *mut T,
            )
        };
        let r = Ring {
            producer,
            consumer,
            flags,
            ring,
            mask: size - 1,
            size,
            cached_prod: Cell::new(0),
            cached_cons: Cell::new(0),
            _map: Mapping { base, len },
        };
        // Start from the kernel's current indices (zero for a fresh socket).
        r.cached_prod.set(r.prod().load(Ordering::Acquire));
        r.cached_cons.set(r.cons().load(Ordering::Acquire));
        Ok(r)
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (kept by `_map`), aligned, shared atomically.
        unsafe { &*self.producer }
    }

    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as in `prod`.
        unsafe { &*self.consumer }
    }

    /// Whether the kernel asks for a wakeup syscall (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: as in `prod`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    #[inline]
    fn write(&self, idx: u32, v: T) {
        // SAFETY: idx & mask < size, inside the mapped descriptor array; the slot belongs to
        // the producer (us) until the producer index is published.
        unsafe { self.ring.add((idx & self.mask) as usize).write(v) }
    }

    #[inline]
    fn read(&self, idx: u32) -> T {
        // SAFETY: idx & mask < size; the slot was published by the kernel (we loaded its
        // producer index with acquire) and is ours until we publish our consumer index.
        unsafe { self.ring.add((idx & self.mask) as usize).read() }
    }

    // ---- producer side (fill, TX) ----

    /// Free slots, refreshing the kernel's consumer index if fewer than `want` are known.
    #[inline]
    pub(crate) fn prod_free(&self, want: u32) -> u32 {
        let free = self
            .cached_cons
            .get()
            .wrapping_add(self.size)
            .wrapping_sub(self.cached_prod.get());
        if free >= want {
            return free;
        }
        self.cached_cons.set(self.cons().load(Ordering::Acquire));
        self.cached_cons
            .get()
            .wrapping_add(self.size)
            .wrapping_sub(self.cached_prod.get())
    }

    /// Writes `v` in the next slot (caller checked `prod_free`); not yet visible to the kernel.
    #[inline]
    pub(crate) fn push(&self, v: T) {
        let p = self.cached_prod.get();
        self.write(p, v);
        self.cached_prod.set(p.wrapping_add(1));
    }

    /// Publishes every pushed entry to the kernel.
    #[inline]
    pub(crate) fn submit(&self) {
        self.prod().store(self.cached_prod.get(), Ordering::Release);
    }

    /// Entries published or pushed that the kernel has not consumed yet, and their values.
    pub(crate) fn prod_outstanding(&self) -> impl Iterator<Item = T> + '_ {
        let cons = self.cons().load(Ordering::Acquire);
        let prod = self.cached_prod.get();
        (0..prod.wrapping_sub(cons)).map(move |i| self.read(cons.wrapping_add(i)))
    }

    /// The kernel's consumer index now.
    pub(crate) fn kernel_consumer(&self) -> u32 {
        self.cons().load(Ordering::Acquire)
    }

    /// Whether the kernel has consumed everything we published.
    pub(crate) fn prod_drained(&self) -> bool {
        self.cons().load(Ordering::Acquire) == self.prod().load(Ordering::Relaxed)
    }

    // ---- consumer side (RX, completion) ----

    /// Entries available to read. When the current window is used up, looks at the kernel's
    /// producer index again and opens a new window of at most `max` entries, so the caller
    /// comes back to this refresh (and to whatever it does at batch boundaries) at least every
    /// `max` entries.
    #[inline]
    pub(crate) fn cons_avail(&self, max: u32) -> u32 {
        let n = self.cons_window_left();
        if n != 0 {
            return n;
        }
        self.cons_refresh(max)
    }

    /// [`Ring::cons_avail`] when the current window is known to be used up
    /// ([`Ring::cons_window_done`]): looks at the kernel's producer index at once.
    #[inline]
    pub(crate) fn cons_refresh(&self, max: u32) -> u32 {
        let cons = self.cached_cons.get();
        let avail = self.prod().load(Ordering::Acquire).wrapping_sub(cons);
        let take = avail.min(max);
        self.cached_prod.set(cons.wrapping_add(take));
        take
    }

    /// Whether every entry of the current window was read (the next `cons_avail` looks at the
    /// kernel's producer index again): the batch boundary where read slots are given back.
    #[inline]
    pub(crate) fn cons_window_done(&self) -> bool {
        self.cached_prod.get() == self.cached_cons.get()
    }

    /// Entries of the current window not read yet.
    #[inline]
    pub(crate) fn cons_window_left(&self) -> u32 {
        self.cached_prod.get().wrapping_sub(self.cached_cons.get())
    }

    /// Reads the next entry (caller checked `cons_avail`); the slot is not yet given back.
    #[inline]
    pub(crate) fn pop(&self) -> T {
        let c = self.cached_cons.get();
        self.cached_cons.set(c.wrapping_add(1));
        self.read(c)
    }

    /// Entries available, the current window extended to everything the kernel published
    /// (the rest of a multi-buffer frame, which the kernel publishes whole).
    #[inline]
    pub(crate) fn cons_more(&self) -> u32 {
        let cons = self.cached_cons.get();
        let avail = self.prod().load(Ordering::Acquire).wrapping_sub(cons);
        self.cached_prod.set(cons.wrapping_add(avail));
        avail
    }

    /// Puts the last entry read back (its slot was not given back yet): it is read again by
    /// the next `pop`.
    #[inline]
    pub(crate) fn unpop(&self) {
        self.cached_cons.set(self.cached_cons.get().wrapping_sub(1));
    }

    /// Gives every read slot back to the kernel.
    #[inline]
    pub(crate) fn release(&self) {
        self.cons().store(self.cached_cons.get(), Ordering::Release);
    }

    /// Entries the kernel published that we have not read yet, and their values.
    pub(crate) fn cons_outstanding(&self) -> impl Iterator<Item = T> + '_ {
        let prod = self.prod().load(Ordering::Acquire);
        let cons = self.cached_cons.get();
        (0..prod.wrapping_sub(cons)).map(move |i| self.read(cons.wrapping_add(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desc_layout_matches_uapi() {
        assert_eq!(std::mem::size_of::<XdpDesc>(), 16);
        assert_eq!(std::mem::offset_of!(XdpDesc, len), 8);
        assert_eq!(std::mem::offset_of!(XdpDesc, options), 12);
    }
}
