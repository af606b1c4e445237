//! The in-place transmit paths of [`Sock`]: `send_with` builds the frame in the mbuf it is
//! sent from, `send_payload` hands a received mbuf itself to the driver.

use std::any::Any;

use dpdk_sys::rte_mbuf;
use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::{check_frame_len, Context, Payload, Result, Socket, Unsent};

use crate::mempool::DpdkContext;
use crate::sock::{set_data_len, Sock};

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
