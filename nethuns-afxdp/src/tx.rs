//! The transmit half of [`Sock`]: copying into TX frames, the TX ring, the wakeup calls
//! (`sendto`) and the completion ring. Producer stores, kicks and reaps happen once per batch.

use nethuns_core::frame::{self, ETH_HLEN};
use nethuns_core::{Error, Result, Socket};

use crate::abi::XdpDesc;
use crate::sock::Sock;
use crate::sys;

/// Sent packets queued before `send` publishes them and kicks the kernel by itself.
const TX_BATCH: u32 = 64;
/// Upper bound of wakeup calls one flush makes (copy mode moves up to 32 frames per call).
const MAX_KICKS: u32 = 4096;
/// Wakeup calls in a row after which a flush gives up when the kernel takes no frame.
const MAX_STALLS: u32 = 8;

/// A TX frame taken off the free list for `send_with`, put back on drop (a refused frame, a
/// panicking closure); forgotten once the frame is on the TX ring.
struct TxFrame<'a> {
    free: &'a crate::stack::FrameStack,
    addr: u64,
}

impl Drop for TxFrame<'_> {
    fn drop(&mut self) {
        self.free.push(self.addr);
    }
}

/// What a flush's wakeup calls ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The kernel took everything, or is taking it (no error).
    Ok,
    /// The device is down or gone (errno, or the kernel took nothing for several calls).
    Down(Option<i32>),
    /// Another errno: frames stay on the ring for the next flush.
    Failed(i32),
}

impl Sock {
    /// Puts TX frame `addr` (`len` bytes) on the TX ring (the caller checked a slot is
    /// free) and counts it queued.
    #[inline]
    pub(crate) fn queue_frame(&self, addr: u64, len: u32) {
        self.tx.push(XdpDesc {
            addr,
            len,
            options: 0,
        });
        self.queued_one();
    }

    /// Counts a frame queued on the TX ring (however many descriptors it took); submits a
    /// full batch.
    #[inline]
    pub(crate) fn queued_one(&self) {
        let pending = self.tx_pending.get() + 1;
        self.tx_pending.set(pending);
        if pending >= TX_BATCH {
            self.submit_and_kick();
        }
    }

    /// Takes completed TX frames back onto the free list, in one batch.
    pub(crate) fn reap(&self) {
        let n = self.comp.avail(u32::MAX);
        if n == 0 {
            return;
        }
        let mask = !(self.layout.frame_size as u64 - 1);
        let rx_end = u64::from(self.layout.rx_frames) * u64::from(self.layout.frame_size);
        for _ in 0..n {
            let addr = self.comp.pop() & mask;
            if addr < rx_end {
                // A received frame sent by `send_payload`: released now, back to the fill
                // ring with the next refill.
                self.umem.recycle(addr);
            } else {
                let pushed = self.tx_free.push(addr);
                // There is room for every TX frame.
                debug_assert!(pushed, "TX free list full");
            }
        }
        self.comp.release();
    }

    /// Publishes pending TX descriptors and kicks the kernel while it needs it, until the TX
    /// ring is drained or the kernel cannot progress (bounded).
    pub(crate) fn submit_and_kick(&self) -> Kick {
        let pending = self.tx_pending.get();
        if pending > 0 {
            self.tx.submit();
            self.tx_pending.set(0);
            self.sent.set(self.sent.get() + pending as u64);
        }
        let mut outcome = Kick::Ok;
        // Copy mode transmits only inside sendto() (up to 32 frames a call), whatever the flag
        // says: call until the ring is drained. Zero-copy drivers transmit on their own: one
        // wakeup, and only when the ring asks for it.
        let max_kicks = if self.zero_copy { 1 } else { MAX_KICKS };
        let mut kicks = 0;
        let mut stalls = 0;
        self.link_down.set(false);
        while !self.tx.drained() && kicks < max_kicks && stalls < MAX_STALLS {
            if self.zero_copy && !self.tx.needs_wakeup() {
                break;
            }
            kicks += 1;
            let before = self.tx.kernel_consumer();
            let err = sys::kick_tx(&self.fd).err();
            if self.tx.kernel_consumer() == before {
                stalls += 1;
            } else {
                stalls = 0;
            }
            match err {
                None => {}
                // Budget used up (copy mode moves 32 frames a call) or the device queue is
                // busy: call again (while the kernel makes progress).
                Some(Some(libc::EAGAIN | libc::EBUSY | libc::EINTR)) => {}
                // No room in the device queue: completions must come first.
                Some(Some(libc::ENOBUFS)) => {
                    self.reap();
                    std::thread::yield_now();
                }
                // The device is down or gone: frames stay on the ring until it is back.
                // (ENXIO: the kernel unbound the socket, its interface was deleted.)
                Some(Some(e @ (libc::ENETDOWN | libc::ENXIO | libc::ENODEV))) => {
                    self.link_down.set(true);
                    if e == libc::ENXIO {
                        self.gone.set(true);
                    }
                    outcome = Kick::Down(Some(e));
                    break;
                }
                // Anything else: stop; frames stay on the ring for the next flush.
                Some(e) => {
                    outcome = Kick::Failed(e.unwrap_or(libc::EIO));
                    break;
                }
            }
        }
        if stalls >= MAX_STALLS {
            // The kernel took nothing for several calls: the carrier is off or the device
            // queue stopped.
            self.link_down.set(true);
            if outcome == Kick::Ok {
                outcome = Kick::Down(None);
            }
        }
        self.reap();
        outcome
    }

    /// `send_with` off its fast path: the size rule (before and after `fill`), a gone
    /// interface, a multi-buffer frame, a full TX side.
    #[inline(never)]
    pub(crate) fn send_with_slow<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        if let Err(e) = nethuns_core::check_frame_len(
            len,
            ETH_HLEN,
            self.max_tx_len + nethuns_core::frame::VLAN_HLEN,
        ) {
            return self.refuse(e);
        }
        if len > self.layout.frame_size as usize {
            let mut frame = vec![0u8; len];
            fill(&mut frame);
            return self.send(&frame);
        }
        if self.gone.get() {
            return self.refuse(Error::InterfaceDown(self.ifname.clone()));
        }
        let addr = self.reserve_tx_frame()?;
        self.fill_and_queue(addr, len, fill, true)
    }

    /// Lets `fill` write the `len` bytes (≤ a UMEM frame) of TX frame `addr`, just taken off
    /// the free list with a free TX slot, and queues it; `check_after`: apply the size rule
    /// to the written frame (its EtherType decides the 802.1Q allowance), not needed for an
    /// untagged-size length. The frame goes back to the free list if it is refused or `fill`
    /// panics.
    #[inline(always)]
    pub(crate) fn fill_and_queue<F: FnOnce(&mut [u8])>(
        &self,
        addr: u64,
        len: usize,
        fill: F,
        check_after: bool,
    ) -> Result<()> {
        let frame = TxFrame {
            free: &self.tx_free,
            addr,
        };
        let buf = self.umem.frame_ptr(addr, len);
        // SAFETY: a TX frame taken off the free list is the socket's alone (no ring holds
        // it); `len` ≤ the frame size (the callers check), so the range lies in the mapping;
        // the slice lives only during `fill`.
        let buf = unsafe { &mut *buf };
        fill(buf);
        if check_after {
            if let Err(e) = nethuns_core::check_frame_len(len, ETH_HLEN, self.max_len_for(buf)) {
                drop(frame);
                return self.refuse(e);
            }
        }
        // `fill` may have used the socket: look at the TX ring again.
        if self.tx.free_slots(1) == 0 {
            drop(frame);
            self.submit_and_kick();
            return Err(Error::NoMemory);
        }
        std::mem::forget(frame);
        self.queue_frame(addr, len as u32);
        Ok(())
    }

    /// `send` off its fast path: the size rule, a gone interface, a multi-buffer frame, a
    /// full TX side (kicks the kernel and reaps once before giving up with `NoMemory`).
    #[inline(never)]
    pub(crate) fn send_slow(&self, packet: &[u8]) -> Result<()> {
        if let Err(e) =
            nethuns_core::check_frame_len(packet.len(), ETH_HLEN, self.max_len_for(packet))
        {
            return self.refuse(e);
        }
        if self.gone.get() {
            return self.refuse(Error::InterfaceDown(self.ifname.clone()));
        }
        if packet.len() > self.layout.frame_size as usize {
            return self.send_multi(packet);
        }
        let addr = self.reserve_tx_frame()?;
        self.umem.write(addr, packet);
        self.queue_frame(addr, packet.len() as u32);
        Ok(())
    }

    /// A free TX frame for a send, after one kick and reap if none is free and a TX slot
    /// for it: `NoMemory` (back-pressure), `InterfaceDown` when the link is down.
    #[inline]
    pub(crate) fn reserve_tx_frame(&self) -> Result<u64> {
        if let Some(a) = self.tx_free.pop() {
            if self.tx.free_slots(1) != 0 {
                return Ok(a);
            }
            self.tx_free.push(a);
        }
        self.submit_and_kick();
        match self.tx_free.pop() {
            Some(a) if self.tx.free_slots(1) != 0 => Ok(a),
            Some(a) => {
                self.tx_free.push(a);
                Err(Error::NoMemory)
            }
            None if self.link_down.get() && !self.link_is_up() => {
                Err(self.refused(Error::InterfaceDown(self.ifname.clone())))
            }
            None => Err(Error::NoMemory),
        }
    }

    /// Queues `frame`, a received frame of this socket's UMEM, by its address: `Ok(true)`
    /// when it is on the TX ring (the caller gives up its payload without releasing it).
    #[inline]
    pub(crate) fn send_own(&self, addr: u64, frame: &[u8]) -> Result<bool> {
        // An untagged-size frame passes the size rule whatever its EtherType.
        let len = frame.len();
        if len < ETH_HLEN || len > self.max_tx_len {
            if let Err(e) = nethuns_core::check_frame_len(len, ETH_HLEN, self.max_len_for(frame)) {
                return Err(self.refused(e));
            }
        }
        if self.gone.get() {
            return Err(self.refused(Error::InterfaceDown(self.ifname.clone())));
        }
        if self.tx.free_slots(1) == 0 {
            self.submit_and_kick();
            if self.tx.free_slots(1) == 0 {
                return Err(Error::NoMemory);
            }
        }
        self.queue_frame(addr, frame.len() as u32);
        Ok(true)
    }

    /// Counts a refused send and returns its error.
    #[cold]
    pub(crate) fn refuse(&self, e: Error) -> Result<()> {
        Err(self.refused(e))
    }

    /// Counts a refused send; returns `e`.
    #[cold]
    pub(crate) fn refused(&self, e: Error) -> Error {
        self.refused.set(self.refused.get() + 1);
        e
    }

    /// The largest frame `send` takes for this one: MTU + 14, or MTU + 18 when its outer
    /// EtherType is 802.1Q (0x8100; the kernel's rule, [`frame::send_limit`]), at most a frame.
    #[inline]
    pub(crate) fn max_len_for(&self, packet: &[u8]) -> usize {
        let limit = frame::send_limit(packet, self.max_tx_len);
        if self.multi_buffer {
            limit
        } else {
            limit.min(self.layout.frame_size as usize)
        }
    }
}
