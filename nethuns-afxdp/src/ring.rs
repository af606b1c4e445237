//! The four AF_XDP rings as producer and consumer types: the fill and TX rings are
//! [`Producer`]s (this side writes entries, the kernel reads them), the RX and completion rings
//! are [`Consumer`]s (the kernel writes, this side reads), so that a producer cannot be read
//! from nor a consumer written to. Cached producer/consumer indices as libxdp's `xsk.h` keeps
//! them.
//!
//! Each ring is a power-of-two array of entries plus a producer and a consumer index and a
//! flags word, shared with the kernel in one mapping ([`IndexRing`], which checks the geometry
//! once). The side that produces reads the other side's consumer index with acquire ordering
//! and publishes its producer index with release ordering, and the reverse for consumers (the
//! kernel pairs them with `smp_load_acquire` / `smp_store_release`). Indices are free-running
//! `u32`s; `index & mask` is the slot.

use std::cell::Cell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use nethuns_sys_linux::{IndexRing, Pod, RingOffsets};

use crate::sys;

/// Maps a ring of `size` entries of `T` at page offset `pgoff` of socket `fd`, using the
/// offsets the kernel reported; with the kernel's current producer and consumer indices (zero
/// for a fresh socket), where the cached ones start.
fn map<T: Pod>(
    fd: &OwnedFd,
    off: &libc::xdp_ring_offset,
    size: u32,
    pgoff: u64,
) -> io::Result<(IndexRing<T>, Cell<u32>, Cell<u32>)> {
    let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
    let map = sys::map_ring(fd, len, pgoff)?;
    let ring = IndexRing::new(
        map,
        RingOffsets {
            producer: off.producer as usize,
            consumer: off.consumer as usize,
            flags: off.flags as usize,
            desc: off.desc as usize,
        },
        size,
    )?;
    let prod = Cell::new(ring.producer().load(Ordering::Acquire));
    let cons = Cell::new(ring.consumer().load(Ordering::Acquire));
    Ok((ring, prod, cons))
}

/// A ring this side produces into (fill: `u64` frame addresses; TX: descriptors).
///
/// Not `Sync` (the cached indices are `Cell`s): one thread at a time drives it.
pub(crate) struct Producer<T: Pod> {
    ring: IndexRing<T>,
    size: u32,
    /// Our next producer index.
    cached_prod: Cell<u32>,
    /// The last consumer index seen.
    cached_cons: Cell<u32>,
}

impl<T: Pod> Producer<T> {
    /// Maps the fill or TX ring (`pgoff`: `XDP_UMEM_PGOFF_FILL_RING`, `XDP_PGOFF_TX_RING`).
    pub(crate) fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
    ) -> io::Result<Self> {
        let (ring, cached_prod, cached_cons) = map::<T>(fd, off, size, pgoff)?;
        Ok(Producer {
            ring,
            size,
            cached_prod,
            cached_cons,
        })
    }

    /// Whether the kernel asks for a wakeup syscall (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.ring.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Free slots, refreshing the kernel's consumer index if fewer than `want` are known.
    #[inline]
    pub(crate) fn free_slots(&self, want: u32) -> u32 {
        let size = self.size;
        let free = self
            .cached_cons
            .get()
            .wrapping_add(size)
            .wrapping_sub(self.cached_prod.get());
        if free >= want {
            return free;
        }
        self.cached_cons
            .set(self.ring.consumer().load(Ordering::Acquire));
        self.cached_cons
            .get()
            .wrapping_add(size)
            .wrapping_sub(self.cached_prod.get())
    }

    /// Writes `v` in the next slot (the caller checked `free_slots`); not yet visible to the
    /// kernel. The slot belongs to this side until [`Producer::submit`].
    #[inline]
    pub(crate) fn push(&self, v: T) {
        let p = self.cached_prod.get();
        self.ring.write(p, v);
        self.cached_prod.set(p.wrapping_add(1));
    }

    /// Publishes every pushed entry to the kernel.
    #[inline]
    pub(crate) fn submit(&self) {
        self.ring
            .producer()
            .store(self.cached_prod.get(), Ordering::Release);
    }

    /// Entries published or pushed that the kernel has not consumed yet, and their values.
    pub(crate) fn outstanding(&self) -> impl Iterator<Item = T> + '_ {
        let cons = self.ring.consumer().load(Ordering::Acquire);
        let prod = self.cached_prod.get();
        (0..prod.wrapping_sub(cons)).map(move |i| self.ring.read(cons.wrapping_add(i)))
    }

    /// The kernel's consumer index now.
    pub(crate) fn kernel_consumer(&self) -> u32 {
        self.ring.consumer().load(Ordering::Acquire)
    }

    /// Whether the kernel has consumed everything we published.
    pub(crate) fn drained(&self) -> bool {
        self.ring.consumer().load(Ordering::Acquire) == self.ring.producer().load(Ordering::Relaxed)
    }
}

/// A ring this side consumes from (RX: descriptors; completion: `u64` frame addresses).
///
/// Not `Sync` (the cached indices are `Cell`s): one thread at a time drives it.
pub(crate) struct Consumer<T: Pod> {
    ring: IndexRing<T>,
    /// The end of the current window (the last producer index seen, or less).
    cached_prod: Cell<u32>,
    /// Our next consumer index.
    cached_cons: Cell<u32>,
}

impl<T: Pod> Consumer<T> {
    /// Maps the RX or completion ring (`pgoff`: `XDP_PGOFF_RX_RING`,
    /// `XDP_UMEM_PGOFF_COMPLETION_RING`).
    pub(crate) fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
    ) -> io::Result<Self> {
        let (ring, cached_prod, cached_cons) = map::<T>(fd, off, size, pgoff)?;
        Ok(Consumer {
            ring,
            cached_prod,
            cached_cons,
        })
    }

    /// Entries available to read. When the current window is used up, looks at the kernel's
    /// producer index again and opens a new window of at most `max` entries, so the caller
    /// comes back to this refresh (and to whatever it does at batch boundaries) at least every
    /// `max` entries.
    #[inline]
    pub(crate) fn avail(&self, max: u32) -> u32 {
        let n = self.window_left();
        if n != 0 {
            return n;
        }
        self.refresh(max)
    }

    /// [`Consumer::avail`] when the current window is known to be used up
    /// ([`Consumer::window_done`]): looks at the kernel's producer index at once.
    #[inline]
    pub(crate) fn refresh(&self, max: u32) -> u32 {
        let cons = self.cached_cons.get();
        let avail = self
            .ring
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(cons);
        let take = avail.min(max);
        self.cached_prod.set(cons.wrapping_add(take));
        take
    }

    /// Whether every entry of the current window was read (the next `avail` looks at the
    /// kernel's producer index again): the batch boundary where read slots are given back.
    #[inline]
    pub(crate) fn window_done(&self) -> bool {
        self.cached_prod.get() == self.cached_cons.get()
    }

    /// Entries of the current window not read yet.
    #[inline]
    pub(crate) fn window_left(&self) -> u32 {
        self.cached_prod.get().wrapping_sub(self.cached_cons.get())
    }

    /// Reads the next entry (the caller checked `avail`); the slot, published by the kernel
    /// (its producer index loaded with acquire), is not given back yet.
    #[inline]
    pub(crate) fn pop(&self) -> T {
        let c = self.cached_cons.get();
        self.cached_cons.set(c.wrapping_add(1));
        self.ring.read(c)
    }

    /// Entries available, the current window extended to everything the kernel published
    /// (the rest of a multi-buffer frame, which the kernel publishes whole).
    #[inline]
    pub(crate) fn more(&self) -> u32 {
        let cons = self.cached_cons.get();
        let avail = self
            .ring
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(cons);
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
        self.ring
            .consumer()
            .store(self.cached_cons.get(), Ordering::Release);
    }

    /// Entries the kernel published that we have not read yet, and their values.
    pub(crate) fn outstanding(&self) -> impl Iterator<Item = T> + '_ {
        let prod = self.ring.producer().load(Ordering::Acquire);
        let cons = self.cached_cons.get();
        (0..prod.wrapping_sub(cons)).map(move |i| self.ring.read(cons.wrapping_add(i)))
    }
}
