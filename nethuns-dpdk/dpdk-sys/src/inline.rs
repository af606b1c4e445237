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
    // Only the address of the mutable static is taken, no reference to it is formed.
    let table = std::ptr::addr_of!(crate::rte_eth_fp_ops);
    // SAFETY: the table has RTE_MAX_ETHPORTS entries (caller's bound).
    unsafe { table.cast::<crate::rte_eth_fp_ops>().add(usize::from(port)) }
}

/// `rte_eth_rx_burst(port, queue, pkts, n)`.
///
/// # Safety
/// As `rte_eth_rx_burst`: `port` is a valid port id whose RX queue `queue` is set up, `pkts`
/// has room for `n` pointers, and no other thread polls the same queue.
#[inline(always)]
pub unsafe fn rx_burst(port: u16, queue: u16, pkts: *mut *mut rte_mbuf, n: u16) -> u16 {
    let q = usize::from(queue);
    // SAFETY: port < RTE_MAX_ETHPORTS (a valid port id, caller's contract).
    let p = unsafe { fp_ops(port) };
    // Per the caller's contract the entry of `port` and its queue arrays are set up (a
    // stopped port's entry holds DPDK's dummy functions and arrays, never NULL ones); the
    // fields are read through the raw pointer, no reference to the table is formed.
    // SAFETY: as above: a live entry of the table.
    let data = unsafe { (*p).rxq.data };
    // SAFETY: as above.
    let burst = unsafe { (*p).rx_pkt_burst };
    // SAFETY: `queue` is below the queue arrays' RTE_MAX_QUEUES_PER_PORT entries.
    let slot = unsafe { data.add(q) };
    // SAFETY: a live, aligned slot of the array.
    let qd = unsafe { slot.read() };
    let Some(burst) = burst else {
        return 0;
    };
    // SAFETY: the driver's burst function on its queue data, with the caller's array.
    let mut nb = unsafe { burst(qd, pkts, n) };
    // SAFETY: as for `data` (read after the call, as DPDK does).
    let clbk = unsafe { (*p).rxq.clbk };
    // SAFETY: as for `data`: the callback slot of the queue.
    let cb_slot = unsafe { clbk.add(q) };
    // SAFETY: the slot is aligned and live; it is read atomically as DPDK does (another
    // thread may install a callback).
    let cb = unsafe { AtomicPtr::from_ptr(cb_slot) }.load(Ordering::Relaxed);
    if !cb.is_null() {
        // SAFETY: DPDK's callback runner, with the arguments rte_eth_rx_burst gives it.
        nb = unsafe { rte_eth_call_rx_callbacks(port, queue, pkts, nb, n, cb) };
    }
    nb
}

/// `rte_eth_tx_burst(port, queue, pkts, n)`: returns how many of the first mbufs the driver
/// took (and now owns).
///
/// # Safety
/// As `rte_eth_tx_burst`: `port` is a valid port id whose TX queue `queue` is set up, `pkts`
/// holds `n` valid mbufs the caller owns, and no other thread uses the same queue.
#[inline(always)]
pub unsafe fn tx_burst(port: u16, queue: u16, pkts: *mut *mut rte_mbuf, n: u16) -> u16 {
    let q = usize::from(queue);
    // SAFETY: as in rx_burst, for the TX half of the entry.
    let p = unsafe { fp_ops(port) };
    // SAFETY: as in rx_burst.
    let data = unsafe { (*p).txq.data };
    // SAFETY: as above.
    let clbk = unsafe { (*p).txq.clbk };
    // SAFETY: as above.
    let burst = unsafe { (*p).tx_pkt_burst };
    // SAFETY: as in rx_burst.
    let slot = unsafe { data.add(q) };
    // SAFETY: as in rx_burst.
    let qd = unsafe { slot.read() };
    // SAFETY: as in rx_burst.
    let cb_slot = unsafe { clbk.add(q) };
    // SAFETY: as in rx_burst.
    let cb = unsafe { AtomicPtr::from_ptr(cb_slot) }.load(Ordering::Relaxed);
    let mut n = n;
    if !cb.is_null() {
        // SAFETY: DPDK's callback runner, with the arguments rte_eth_tx_burst gives it.
        n = unsafe { rte_eth_call_tx_callbacks(port, queue, pkts, n, cb) };
    }
    let Some(burst) = burst else {
        return 0;
    };
    // SAFETY: the driver's burst function on its queue data, with the caller's mbufs.
    unsafe { burst(qd, pkts, n) }
}
