//! Rust forms of DPDK's static-inline burst functions, which are loads from the exported
//! `rte_eth_fp_ops` table and an indirect call to the driver: written here, they inline into
//! the caller's loop instead of costing a call into the C shim and its prologue.
//!
//! Each follows DPDK 22.11's `rte_ethdev.h` line by line for a build with
//! `RTE_ETHDEV_RXTX_CALLBACKS` (Debian's) and without `RTE_ETHDEV_DEBUG_RX/TX` and
//! `RTE_ENABLE_TRACE_FP` (the defaults): the same table, the same queue data, the same
//! callback check. `rte_eth_fp_ops` and its layout are part of DPDK's stable ABI since 21.11
//! (applications inline these functions), and the layout is checked by bindgen's tests.

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::{rte_eth_call_rx_callbacks, rte_eth_call_tx_callbacks, rte_mbuf};

/// The fast-path entry of `port` (`&rte_eth_fp_ops[port]`).
///
/// # Safety
/// `port < RTE_MAX_ETHPORTS`.
#[inline(always)]
unsafe fn fp_ops(port: u16) -> *const crate::rte_eth_fp_ops {
    debug_assert!(u32::from(port) < crate::RTE_MAX_ETHPORTS);
    // SAFETY: the table has RTE_MAX_ETHPORTS entries (caller's bound); only its address is
    // taken here, no reference to the mutable static is formed.
    unsafe {
        std::ptr::addr_of!(crate::rte_eth_fp_ops)
            .cast::<crate::rte_eth_fp_ops>()
            .add(usize::from(port))
    }
}

/// `rte_eth_rx_burst(port, queue, pkts, n)`.
///
/// # Safety
/// As `rte_eth_rx_burst`: `port` is a valid port id whose RX queue `queue` is set up, `pkts`
/// has room for `n` pointers, and no other thread polls the same queue.
#[inline(always)]
pub unsafe fn rx_burst(port: u16, queue: u16, pkts: *mut *mut rte_mbuf, n: u16) -> u16 {
    // SAFETY: per the caller's contract the entry of `port` and its queue arrays are set up
    // (a stopped port's entry holds DPDK's dummy functions, never NULL ones); the callback
    // slot is read atomically as DPDK does (another thread may install a callback).
    unsafe {
        let p = fp_ops(port);
        let q = usize::from(queue);
        let qd = *(*p).rxq.data.add(q);
        let Some(burst) = (*p).rx_pkt_burst else {
            return 0;
        };
        let mut nb = burst(qd, pkts, n);
        let cb = AtomicPtr::from_ptr((*p).rxq.clbk.add(q)).load(Ordering::Relaxed);
        if !cb.is_null() {
            nb = rte_eth_call_rx_callbacks(port, queue, pkts, nb, n, cb);
        }
        nb
    }
}

/// `rte_eth_tx_burst(port, queue, pkts, n)`: returns how many of the first mbufs the driver
/// took (and now owns).
///
/// # Safety
/// As `rte_eth_tx_burst`: `port` is a valid port id whose TX queue `queue` is set up, `pkts`
/// holds `n` valid mbufs the caller owns, and no other thread uses the same queue.
#[inline(always)]
pub unsafe fn tx_burst(port: u16, queue: u16, pkts: *mut *mut rte_mbuf, n: u16) -> u16 {
    // SAFETY: as in rx_burst, for the TX half of the entry.
    unsafe {
        let p = fp_ops(port);
        let q = usize::from(queue);
        let qd = *(*p).txq.data.add(q);
        let mut n = n;
        let cb = AtomicPtr::from_ptr((*p).txq.clbk.add(q)).load(Ordering::Relaxed);
        if !cb.is_null() {
            n = rte_eth_call_tx_callbacks(port, queue, pkts, n, cb);
        }
        let Some(burst) = (*p).tx_pkt_burst else {
            return 0;
        };
        burst(qd, pkts, n)
    }
}
