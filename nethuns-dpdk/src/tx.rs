//! The transmit path of [`Sock`]: a stash of empty mbufs (one `rte_pktmbuf_alloc_bulk`), the
//! TX burst submitted by one `rte_eth_tx_burst`, and the in-place paths: `send_with` builds
//! the frame in the mbuf it is sent from, `send_payload` hands a received mbuf itself to the
//! driver.

use std::any::Any;

use dpdk_sys::rte_mbuf;
use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::{check_frame_len, Context, Error, Payload, Result, Socket, Unsent};

use crate::flags::BURST;
use crate::mempool::DpdkContext;
use crate::sock::{Sock, TX_RETRIES};

/// `bufs[..len]`: filled mbufs waiting for `rte_eth_tx_burst` (`len < BURST` between calls);
/// `stash[..stash_len]`: pre-allocated empty mbufs for the next sends (`stash_len <= BURST`).
pub(crate) struct TxBurst {
    pub(crate) bufs: [*mut rte_mbuf; BURST],
    pub(crate) len: usize,
    pub(crate) stash: [*mut rte_mbuf; BURST],
    pub(crate) stash_len: usize,
}

impl TxBurst {
    pub(crate) fn new() -> Self {
        TxBurst {
            bufs: [std::ptr::null_mut(); BURST],
            len: 0,
            stash: [std::ptr::null_mut(); BURST],
            stash_len: 0,
        }
    }
}

/// The `ol_flags` bits a transmitted mbuf keeps: what its buffer is (attached, external);
/// the receive flags go (a driver would read nothing of them, but no TX offload is asked).
const F_KEEP_ON_TX: u64 = dpdk_sys::RTE_MBUF_F_INDIRECT | dpdk_sys::RTE_MBUF_F_EXTERNAL;

/// Frees an mbuf on drop: the one `send_with` took, if `fill` panics or the frame is refused.
struct FreeOnDrop(*mut rte_mbuf);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        // SAFETY: the mbuf is owned by this guard alone (taken from the stash, not queued).
        unsafe { dpdk_sys::nh_pktmbuf_free(self.0) };
    }
}

impl Sock {
    /// Submits the pending TX burst; frees what the driver would not take (counted in
    /// `tx_dropped`, and reported by the next `try_flush`).
    pub(crate) fn flush_tx(&self, tx: &mut TxBurst) {
        let mut sent = 0usize;
        for _ in 0..TX_RETRIES {
            if sent == tx.len {
                break;
            }
            // SAFETY: bufs[sent..len] are filled mbufs owned by this socket; the driver takes
            // ownership of the first `n` it returns; this socket is the queue's only user.
            let n = unsafe {
                dpdk_sys::inline::tx_burst(
                    self.port.id,
                    self.port.queue,
                    tx.bufs.as_mut_ptr().add(sent),
                    (tx.len - sent) as u16,
                )
            };
            sent += usize::from(n);
        }
        self.sent.set(self.sent.get() + sent as u64);
        if sent < tx.len {
            let rest = tx.len - sent;
            // SAFETY: bufs[sent..len] are still ours (not taken by the driver): free them.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(tx.bufs.as_mut_ptr().add(sent), rest as u32) };
            self.tx_dropped.set(self.tx_dropped.get() + rest as u64);
            self.tx_unreported
                .set(self.tx_unreported.get() + rest as u64);
        }
        tx.len = 0;
    }

    /// One empty, reset mbuf for `send`, from the stash (refilled in bulk) or the pool.
    #[inline(always)]
    pub(crate) fn take_mbuf(&self, tx: &mut TxBurst) -> Result<*mut rte_mbuf> {
        if tx.stash_len == 0 {
            return self.restock(tx);
        }
        tx.stash_len -= 1;
        // SAFETY: stash_len < BURST now (type invariant), and stash[..old len] are ours.
        Ok(unsafe { *tx.stash.get_unchecked(tx.stash_len) })
    }

    /// Refills the empty stash with one `rte_pktmbuf_alloc_bulk` and takes one; near
    /// exhaustion one mbuf at a time, after giving back released ones and what the driver
    /// completed.
    #[inline(never)]
    pub(crate) fn restock(&self, tx: &mut TxBurst) -> Result<*mut rte_mbuf> {
        // SAFETY: stash has room for BURST pointers; the pool is alive.
        let rc = unsafe {
            dpdk_sys::nh_pktmbuf_alloc_bulk(self.ctx.raw(), tx.stash.as_mut_ptr(), BURST as u32)
        };
        if rc == 0 {
            tx.stash_len = BURST - 1;
            return Ok(tx.stash[BURST - 1]);
        }
        self.ctx.flush_released();
        // SAFETY: the pool is alive.
        let mut m = unsafe { dpdk_sys::nh_pktmbuf_alloc(self.ctx.raw()) };
        if m.is_null() && tx.len > 0 {
            // Submitting what is pending lets the driver give completed mbufs back.
            self.flush_tx(tx);
            // SAFETY: as above.
            m = unsafe { dpdk_sys::nh_pktmbuf_alloc(self.ctx.raw()) };
        }
        if m.is_null() {
            Err(Error::NoMemory)
        } else {
            Ok(m)
        }
    }

    /// Queues filled mbuf `m` (ours) for transmission; submits a full burst.
    #[inline(always)]
    pub(crate) fn push_tx(&self, tx: &mut TxBurst, m: *mut rte_mbuf) {
        // SAFETY: len < BURST between calls (type invariant).
        unsafe { *tx.bufs.get_unchecked_mut(tx.len) = m };
        tx.len += 1;
        if tx.len == BURST {
            self.flush_tx(tx);
        }
    }

    /// `send` into `tx`: the size rule, an mbuf, the copy, queued.
    #[inline(always)]
    pub(crate) fn queue_copy(&self, tx: &mut TxBurst, packet: &[u8]) -> Result<()> {
        let limit = frame::send_limit(packet, self.max_untagged).min(self.mbuf_room);
        check_frame_len(packet.len(), ETH_HLEN, limit)?;
        let m = self.take_mbuf(tx)?;
        // SAFETY: m is a freshly allocated, reset, single-segment mbuf with at least
        // mbuf_room >= len bytes of data room after data_off; nothing else references it.
        unsafe {
            let dst = set_data_len(m, packet.len());
            std::ptr::copy_nonoverlapping(packet.as_ptr(), dst, packet.len());
        }
        self.push_tx(tx, m);
        Ok(())
    }

    /// [`Socket::send_with`](nethuns_core::Socket::send_with): `fill` writes straight into
    /// the mbuf's data.
    #[inline]
    pub(crate) fn send_in_place<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        check_frame_len(
            len,
            ETH_HLEN,
            (self.max_frame() + VLAN_HLEN).min(self.mbuf_room()),
        )?;
        let m = {
            // SAFETY: no other reference to the TX state is live (Sock's docs); it ends
            // before `fill` runs, which may use this socket again.
            let tx = unsafe { &mut *self.tx.get() };
            self.take_mbuf(tx)?
        };
        let guard = FreeOnDrop(m);
        // SAFETY: m is a reset, single-segment mbuf of this socket's pool, ours alone, with
        // at least mbuf_room >= len bytes of data room (its memory is the mempool's, written
        // before: initialized bytes).
        let data = unsafe { std::slice::from_raw_parts_mut(set_data_len(m, len), len) };
        fill(data);
        let limit = frame::send_limit(data, self.max_frame()).min(self.mbuf_room());
        check_frame_len(len, ETH_HLEN, limit)?;
        std::mem::forget(guard);
        // SAFETY: as above; `fill` has returned.
        let tx = unsafe { &mut *self.tx.get() };
        self.push_tx(tx, m);
        Ok(())
    }

    /// [`Socket::send_payload`](nethuns_core::Socket::send_payload): a payload of any DPDK
    /// context (an mbuf of this process) is queued itself; another is copied.
    #[inline]
    pub(crate) fn send_mbuf_or_copy<'p, C: Context>(
        &self,
        payload: Payload<'p, C>,
    ) -> std::result::Result<(), Unsent<'p, C>> {
        let Some(src) = (payload.context() as &dyn Any).downcast_ref::<DpdkContext>() else {
            return match self.send(&payload) {
                Ok(()) => Ok(()),
                Err(error) => Err(Unsent { error, payload }),
            };
        };
        let len = payload.len();
        let limit = frame::send_limit(&payload, self.max_frame());
        if let Err(error) = check_frame_len(len, ETH_HLEN, limit) {
            return Err(Unsent { error, payload });
        }
        if src.pool_id() != self.context().pool_id() {
            // The driver frees the mbuf into its own mempool, maybe after the payload's
            // context is gone: this socket keeps that mempool alive as long as it lives.
            self.keep_pool(src);
        }
        let (desc, _, _) = payload.into_token().into_raw();
        let m = desc.get() as *mut rte_mbuf;
        // SAFETY: the payload owned m exclusively: a DpdkContext's buffers are received
        // single-segment mbufs, `len` (the payload's length, at most its data_len) bytes of
        // data at data_off. Ownership moves to the TX burst (the debug ledger forgot it with
        // `into_raw`: the driver frees it, not a release).
        unsafe {
            let r = &mut *m;
            r.data_len = len as u16;
            r.pkt_len = len as u32;
            r.ol_flags &= F_KEEP_ON_TX;
        }
        // SAFETY: no other reference to the TX state is live (Sock's docs).
        let tx = unsafe { &mut *self.tx.get() };
        self.push_tx(tx, m);
        Ok(())
    }
}

/// Sets a reset single-segment mbuf's data to its first `len` bytes; returns where they start.
///
/// # Safety
/// `m` is a reset, single-segment mbuf the caller owns, whose data room after `data_off`
/// holds `len` bytes.
#[inline(always)]
pub(crate) unsafe fn set_data_len(m: *mut rte_mbuf, len: usize) -> *mut u8 {
    // SAFETY: per the contract (what rte_pktmbuf_append does on a reset mbuf).
    unsafe {
        let r = &mut *m;
        debug_assert!(usize::from(r.data_off) + len <= usize::from(r.buf_len));
        r.data_len = len as u16;
        r.pkt_len = len as u32;
        (r.buf_addr as *mut u8).add(usize::from(r.data_off))
    }
}
