//! The transmit path of [`Sock`]: a stash of empty mbufs (one `rte_pktmbuf_alloc_bulk`), the
//! TX burst submitted by one `rte_eth_tx_burst`, and the in-place paths: `send_with` builds
//! the frame in the mbuf it is sent from, `send_payload` hands a received mbuf itself to the
//! driver.

use std::any::Any;

use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::{check_frame_len, Context, Error, Payload, Result, Socket, Unsent};

use crate::context::DpdkContext;
use crate::mbuf::{Flushed, Fresh, Mbuf};
use crate::sock::{Sock, TX_RETRIES};

/// The `ol_flags` bits a transmitted mbuf keeps: what its buffer is (attached, external);
/// the receive flags go (a driver would read nothing of them, but no TX offload is asked).
const F_KEEP_ON_TX: u64 = dpdk_sys::RTE_MBUF_F_INDIRECT | dpdk_sys::RTE_MBUF_F_EXTERNAL;

impl Sock {
    /// Submits the pending TX burst; frees what the driver would not take (counted in
    /// `tx_dropped`, and reported by the next `try_flush`).
    pub(crate) fn flush_tx(&self) {
        let f = self.tx.submit(&self.q, TX_RETRIES);
        self.account(f);
    }

    /// Counts a submission.
    #[inline(always)]
    fn account(&self, f: Flushed) {
        self.sent.set(self.sent.get() + f.sent as u64);
        if f.refused > 0 {
            self.tx_dropped
                .set(self.tx_dropped.get() + f.refused as u64);
            self.tx_unreported
                .set(self.tx_unreported.get() + f.refused as u64);
        }
    }

    /// An mbuf holding a copy of `packet` (at most the mbuf room) for `send`, from the stash
    /// (refilled in bulk) or the pool.
    #[inline(always)]
    fn take_copy(&self, packet: &[u8]) -> Result<Mbuf> {
        match self.stash.take_copy(packet) {
            Fresh::Mbuf(m) => Ok(m),
            Fresh::TooBig => Err(Error::TooBigPacket(packet.len())),
            Fresh::Empty => self.restock_copy(packet),
        }
    }

    /// [`Sock::restock`], then the copy of `packet`.
    #[cold]
    #[inline(never)]
    fn restock_copy(&self, packet: &[u8]) -> Result<Mbuf> {
        let mut m = self.restock(packet.len())?;
        m.data_mut().copy_from_slice(packet);
        Ok(m)
    }

    /// An mbuf whose data is `len` bytes (at most the mbuf room), to be written, from the
    /// stash or the pool.
    #[inline(always)]
    fn take_sized(&self, len: usize) -> Result<Mbuf> {
        match self.stash.take(len) {
            Fresh::Mbuf(m) => Ok(m),
            Fresh::TooBig => Err(Error::TooBigPacket(len)),
            Fresh::Empty => self.restock(len),
        }
    }

    /// Refills the empty stash with one `rte_pktmbuf_alloc_bulk` and takes one of `len`
    /// bytes; near exhaustion one mbuf at a time, after giving back released ones and what
    /// the driver completed.
    #[inline(never)]
    fn restock(&self, len: usize) -> Result<Mbuf> {
        if self.stash.refill(self.ctx.mempool()) {
            if let Fresh::Mbuf(m) = self.stash.take(len) {
                return Ok(m);
            }
        }
        self.ctx.flush_released();
        let mut m = self.ctx.mempool().alloc();
        if m.is_none() && self.tx.len() > 0 {
            // Submitting what is pending lets the driver give completed mbufs back.
            self.flush_tx();
            m = self.ctx.mempool().alloc();
        }
        let mut m = m.ok_or(Error::NoMemory)?;
        if m.append(len).is_none() {
            return Err(Error::TooBigPacket(len));
        }
        Ok(m)
    }

    /// Queues filled mbuf `m` for transmission; submits a full burst.
    #[inline(always)]
    pub(crate) fn push_tx(&self, m: Mbuf) {
        if let Some(f) = self.tx.push(m, &self.q, TX_RETRIES) {
            self.account(f);
        }
    }

    /// `send`: the size rule, an mbuf with the copy, queued.
    #[inline(always)]
    pub(crate) fn queue_copy(&self, packet: &[u8]) -> Result<()> {
        // The mbuf room bounds it too (checked by the stash: a frame over it is TooBigPacket).
        let limit = frame::send_limit(packet, self.max_untagged);
        check_frame_len(packet.len(), ETH_HLEN, limit)?;
        let m = self.take_copy(packet)?;
        self.push_tx(m);
        Ok(())
    }

    /// [`Socket::send_with`](nethuns_core::Socket::send_with): `fill` writes straight into
    /// the mbuf's data.
    #[inline]
    pub(crate) fn send_in_place<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        // The mbuf room bounds it too (checked by the stash).
        check_frame_len(len, ETH_HLEN, self.max_frame() + VLAN_HLEN)?;
        // If `fill` panics or the frame is refused, dropping `m` frees it.
        let mut m = self.take_sized(len)?;
        let data = m.data_mut();
        fill(data);
        // (len is within the mbuf room: the stash checked.)
        check_frame_len(len, ETH_HLEN, frame::send_limit(data, self.max_frame()))?;
        self.push_tx(m);
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
        // The payload owned its mbuf exclusively: a DpdkContext's buffers are received
        // single-segment mbufs, `len` (the payload's length, at most its data_len) bytes of
        // data. Ownership moves to the TX burst (the debug ledger forgets it: the driver frees
        // it, not a release).
        let mut m = match Mbuf::from_token(payload.into_token(), src) {
            Ok(m) => m,
            Err(_) => unreachable!("a payload's token belongs to its context"),
        };
        m.truncate(len);
        m.keep_ol_flags(F_KEEP_ON_TX);
        self.push_tx(m);
        Ok(())
    }
}
