//! The TX ring: `send` copies a frame into the next free slot and marks it
//! `TP_STATUS_SEND_REQUEST`; `flush` asks the kernel, with one `sendto`, to transmit every
//! marked slot. The kernel marks a slot `TP_STATUS_AVAILABLE` again once the frame is gone.
//!
//! Why a TX ring rather than `sendmmsg`: `docs/af-packet.md`. The slots' memory is
//! [`Rings`](crate::ring::Rings)'s.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use nethuns_core::{Error, Result};

use crate::context::Shared;
use crate::geometry::TxGeometry;
use crate::ring::TxSlot;
use crate::sys;

/// How a submission (`flush`) went: the errno of a failure the caller should hear about.
pub(crate) type FlushResult = std::result::Result<(), i32>;

/// The TX side of a socket (single-threaded: lives in the `!Sync` socket).
pub(crate) struct TxRing {
    geo: TxGeometry,
    /// Each frame slot of the mapping (the TX ring follows the RX ring; frames never
    /// straddle blocks, so the arithmetic is done once, in `Rings::tx_slots`).
    slots: Box<[TxSlot]>,
    /// The slot `send` fills next.
    next: Cell<u32>,
    /// Frames queued and not yet taken by the kernel: the slots just before `next`.
    pending: Cell<u32>,
    /// Frames the kernel took (cumulative).
    sent: Cell<u64>,
    errors: Cell<u64>,
    last_error: Cell<Option<i32>>,
    saw_down: Cell<bool>,
}

/// A slot's status while `send_with`'s closure writes it (a value the kernel never stores).
const FILLING: u32 = 1 << 31;

/// Gives a slot back (TP_STATUS_AVAILABLE) if `send_with`'s closure panics.
struct Unmark<'a>(&'a AtomicU32);

impl Drop for Unmark<'_> {
    fn drop(&mut self) {
        self.0.store(libc::TP_STATUS_AVAILABLE, Ordering::Relaxed);
    }
}

impl TxRing {
    /// The TX side over `slots` (`Rings::tx_slots` of layout `geo`).
    pub(crate) fn new(geo: TxGeometry, slots: Box<[TxSlot]>) -> Self {
        assert_eq!(slots.len(), geo.frame_count as usize);
        TxRing {
            geo,
            slots,
            next: Cell::new(0),
            pending: Cell::new(0),
            sent: Cell::new(0),
            errors: Cell::new(0),
            last_error: Cell::new(None),
            saw_down: Cell::new(false),
        }
    }

    /// Slot `i`.
    #[inline]
    fn slot(&self, i: u32) -> TxSlot {
        self.slots[i as usize]
    }

    /// The status word of slot `i`, shared with the kernel.
    #[inline]
    fn status<'a>(&self, s: &'a Shared, i: u32) -> &'a AtomicU32 {
        s.rings().tx_status(self.slot(i))
    }

    #[inline]
    fn wrap(&self, i: u32) -> u32 {
        if i + 1 == self.geo.frame_count {
            0
        } else {
            i + 1
        }
    }

    /// The next slot, free (where it is, and its status word): if it is still queued or in
    /// flight, the queued frames are submitted first; `NoMemory` if it is still not free then.
    #[inline(always)]
    fn free_slot<'a>(&self, s: &'a Shared) -> Result<(TxSlot, &'a AtomicU32)> {
        let slot = self.slot(self.next.get());
        let status = s.rings().tx_status(slot);
        if !self.is_free(status.load(Ordering::Acquire)) {
            self.reap_for(s, status)?;
        }
        Ok((slot, status))
    }

    /// The next slot is not free: submit what is queued (the kernel frees slots as frames
    /// leave) and look again.
    #[inline(never)]
    fn reap_for(&self, s: &Shared, status: &AtomicU32) -> Result<()> {
        if self.pending.get() > 0 {
            let _ = self.flush(s);
        }
        if self.is_free(status.load(Ordering::Acquire)) {
            Ok(())
        } else {
            Err(Error::NoMemory)
        }
    }

    /// Queues the frame written into the next slot, whose header says its length.
    #[inline(always)]
    fn commit(&self, status: &AtomicU32) {
        // The slot is free (TP_STATUS_AVAILABLE, acquired), so the kernel does not read it
        // until SEND_REQUEST is stored here.
        status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.next.set(self.wrap(self.next.get()));
        self.pending.set(self.pending.get() + 1);
    }

    /// Copies `data` into the next free slot and queues it.
    #[inline(always)]
    pub(crate) fn send(&self, s: &Shared, data: &[u8]) -> Result<()> {
        let frame = s.rings().tx_frame(data)?;
        let (slot, status) = self.free_slot(s)?;
        // The slot is free, so nothing else reads or writes its bytes (the header first: the
        // copy is a call, after which the mapping's address would be loaded again).
        s.rings().tx_header(slot, data.len() as u32);
        s.rings().tx_copy(slot, frame);
        self.commit(status);
        Ok(())
    }

    /// Lets `fill` write a frame of `len` bytes straight into the next free slot, then
    /// queues it if it passes the size rule of `send` (checked on `len` first, then on the
    /// written frame, whose outer EtherType decides whether a tag's 4 extra bytes are
    /// allowed). A refused frame leaves the slot free.
    #[inline(always)]
    pub(crate) fn send_with<F: FnOnce(&mut [u8])>(
        &self,
        s: &Shared,
        len: usize,
        fill: F,
    ) -> Result<()> {
        let n = s.rings().tx_len(len)?;
        let (slot, status) = self.free_slot(s)?;
        // While `fill` runs the slot is marked in use, so that a `send` from inside `fill`
        // does not take it too (it finds the slot busy); the kernel sends SEND_REQUEST slots
        // only and leaves the word alone otherwise. The slot is free and now marked, so
        // nothing else reads or writes its bytes while `fill` has them; len ≤ max_tagged ≤
        // the slot's room.
        status.store(FILLING, Ordering::Relaxed);
        s.rings().tx_header(slot, len as u32);
        let guard = Unmark(status);
        let checked = s.rings().tx_fill(slot, n, |buf| {
            fill(buf);
            s.rings().tx_frame(buf).map(drop)
        });
        std::mem::forget(guard);
        if let Err(e) = checked {
            status.store(libc::TP_STATUS_AVAILABLE, Ordering::Relaxed);
            return Err(e);
        }
        self.commit(status);
        Ok(())
    }

    #[inline]
    fn is_free(&self, status: u32) -> bool {
        if status == libc::TP_STATUS_AVAILABLE {
            return true;
        }
        if status & libc::TP_STATUS_WRONG_FORMAT != 0 {
            // The kernel refused this frame (should not happen with PACKET_LOSS set); the slot
            // is ours again.
            self.errors.set(self.errors.get() + 1);
            return true;
        }
        false
    }

    /// Submits the queued frames with one `sendto`, then counts the frames the kernel took
    /// (their slots are no longer `SEND_REQUEST`). Frames it could not take now (`EAGAIN`: the
    /// socket's send buffer is full; `ENOBUFS`: the qdisc refused one; interface down) stay
    /// queued for the next flush. Returns the errno of a failure that is not one of the two
    /// transient ones; failures other than those are counted.
    pub(crate) fn flush(&self, s: &Shared) -> FlushResult {
        if self.pending.get() == 0 {
            return Ok(());
        }
        let mut r = sys::kick_tx(s.raw_fd());
        if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ENETDOWN)) {
            // A socket error left by an earlier link-down event is reported (and cleared) by
            // the first send after it, even when the link is up again: try once more. The
            // receive side must still learn of it.
            self.saw_down.set(true);
            r = sys::kick_tx(s.raw_fd());
        }
        self.reap(s);
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = e.raw_os_error().unwrap_or(libc::EIO);
                if matches!(code, libc::ENETDOWN | libc::ENXIO | libc::ENODEV) {
                    self.saw_down.set(true);
                }
                if matches!(code, libc::EAGAIN | libc::ENOBUFS) {
                    Ok(())
                } else {
                    self.errors.set(self.errors.get() + 1);
                    self.last_error.set(Some(code));
                    Err(code)
                }
            }
        }
    }

    /// Walks the queued slots from the oldest: those no longer `SEND_REQUEST` were taken by
    /// the kernel (it takes them in ring order and stops at the first it cannot send).
    fn reap(&self, s: &Shared) {
        let mut pending = self.pending.get();
        let count = self.geo.frame_count;
        if pending == 0 {
            return;
        }
        // The newest queued frame taken means all were (the common case: one look).
        let newest = self.next.get().checked_sub(1).unwrap_or(count - 1);
        let st = self.status(s, newest).load(Ordering::Acquire);
        if st != libc::TP_STATUS_SEND_REQUEST {
            self.pending.set(0);
            self.sent.set(self.sent.get() + u64::from(pending));
            return;
        }
        let mut i = self.next.get() + count - pending;
        if i >= count {
            i -= count;
        }
        let mut taken = 0u64;
        while pending > 0 {
            let st = self.status(s, i).load(Ordering::Acquire);
            if st == libc::TP_STATUS_SEND_REQUEST {
                break;
            }
            taken += 1;
            pending -= 1;
            i = self.wrap(i);
        }
        self.pending.set(pending);
        self.sent.set(self.sent.get() + taken);
    }

    /// Whether a submission failed because the interface was down since the last call.
    pub(crate) fn take_saw_down(&self) -> bool {
        self.saw_down.replace(false)
    }

    /// Frames queued by `send` and not yet taken by the kernel.
    pub(crate) fn pending(&self) -> u32 {
        self.pending.get()
    }

    /// Frames the kernel took for transmission so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.get()
    }

    /// Failed submissions so far, and the errno of the last one.
    pub(crate) fn errors(&self) -> (u64, Option<i32>) {
        (self.errors.get(), self.last_error.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::RxGeometry;

    /// A TX ring of 4 slots of 2048 bytes after a one-block RX ring, over anonymous memory
    /// (no kernel: a submission fails with EBADF and takes nothing), for an MTU of 1500.
    fn ring() -> (Shared, TxRing) {
        let rx = RxGeometry {
            block_size: 4096,
            block_count: 1,
            frame_size: 2048,
        };
        let geo = TxGeometry::new(2048, 4, 4096);
        let map = sys::anonymous_rings(rx.bytes() + geo.bytes(), false);
        let mut s = Shared::new(map, rx, None);
        let slots = s.rings_mut().tx_slots(geo, rx.bytes(), 1500);
        let tx = TxRing::new(geo, slots);
        (s, tx)
    }

    fn slot_status(s: &Shared, tx: &TxRing, i: u32) -> u32 {
        tx.status(s, i).load(Ordering::Acquire)
    }

    fn slot_bytes(s: &Shared, tx: &TxRing, i: u32, len: usize) -> Vec<u8> {
        s.rings().tx_bytes(tx.slot(i), len)
    }

    #[test]
    fn send_with_writes_in_place() {
        let (s, tx) = ring();
        tx.send_with(&s, 60, |f| {
            assert_eq!(f.len(), 60);
            f.fill(0xab);
        })
        .unwrap();
        assert_eq!(slot_status(&s, &tx, 0), libc::TP_STATUS_SEND_REQUEST);
        assert_eq!(slot_bytes(&s, &tx, 0, 60), vec![0xab; 60]);
        assert_eq!(tx.pending(), 1);
        tx.send(&s, &[1; 64]).unwrap();
        assert_eq!(slot_bytes(&s, &tx, 1, 64), vec![1; 64]);
        assert_eq!(tx.pending(), 2);
    }

    #[test]
    fn send_with_applies_the_size_rule_and_refusals_leave_the_slot_free() {
        let (s, tx) = ring();
        assert!(matches!(
            tx.send_with(&s, 13, |_| panic!("not called")),
            Err(Error::TooSmallPacket(13))
        ));
        assert!(matches!(
            tx.send_with(&s, 1519, |_| panic!("not called")),
            Err(Error::TooBigPacket(1519))
        ));
        // 1518 bytes pass only with an 802.1Q outer tag, decided on the written frame.
        assert!(matches!(
            tx.send_with(&s, 1518, |f| f[12..14].copy_from_slice(&[0x88, 0xa8])),
            Err(Error::TooBigPacket(1518))
        ));
        assert_eq!(slot_status(&s, &tx, 0), libc::TP_STATUS_AVAILABLE);
        assert_eq!(tx.pending(), 0);
        tx.send_with(&s, 1518, |f| f[12..14].copy_from_slice(&[0x81, 0x00]))
            .unwrap();
        assert_eq!(tx.pending(), 1);
        assert_eq!(slot_status(&s, &tx, 0), libc::TP_STATUS_SEND_REQUEST);
    }

    #[test]
    fn a_send_inside_send_with_does_not_take_the_slot_being_filled() {
        let (s, tx) = ring();
        tx.send_with(&s, 60, |f| {
            assert!(matches!(tx.send(&s, &[2; 60]), Err(Error::NoMemory)));
            f.fill(3);
        })
        .unwrap();
        assert_eq!(tx.pending(), 1);
        assert_eq!(slot_bytes(&s, &tx, 0, 60), vec![3; 60]);
    }

    #[test]
    fn a_panicking_fill_leaves_the_slot_free() {
        let (s, tx) = ring();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = tx.send_with(&s, 60, |_| panic!("fill failed"));
        }));
        assert!(r.is_err());
        assert_eq!(slot_status(&s, &tx, 0), libc::TP_STATUS_AVAILABLE);
        assert_eq!(tx.pending(), 0);
        tx.send(&s, &[4; 60]).unwrap();
        assert_eq!(slot_bytes(&s, &tx, 0, 60), vec![4; 60]);
    }

    #[test]
    fn a_full_ring_is_no_memory_and_reaping_counts_what_the_kernel_took() {
        let (s, tx) = ring();
        for i in 0..4u8 {
            tx.send(&s, &[i; 60]).unwrap();
        }
        assert!(matches!(tx.send(&s, &[9; 60]), Err(Error::NoMemory)));
        assert!(matches!(
            tx.send_with(&s, 60, |_| panic!("not called")),
            Err(Error::NoMemory)
        ));
        // Plays the kernel: the two oldest went out.
        for i in 0..2 {
            tx.status(&s, i)
                .store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
        }
        tx.reap(&s);
        assert_eq!((tx.pending(), tx.sent()), (2, 2));
        // Then all of them.
        for i in 2..4 {
            tx.status(&s, i)
                .store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
        }
        tx.reap(&s);
        assert_eq!((tx.pending(), tx.sent()), (0, 4));
        tx.send(&s, &[5; 60]).unwrap();
    }
}
