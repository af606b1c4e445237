//! How the shared test suites (conformance, faults) open this backend, in both XDP modes.

use std::time::{Duration, Instant};

use nethuns_afxdp::{AfXdpFlags, Sock, Socket, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
use nethuns_testnet::conformance::Backend;

/// Flags with at most about `buffers` receive frames: the UMEM's receive frames are
/// `num_frames - tx_size`, and `num_frames` must hold one RX ring's worth besides TX.
fn small_pool(base: AfXdpFlags, buffers: usize) -> AfXdpFlags {
    let n = (buffers.max(2) as u32).next_power_of_two();
    AfXdpFlags {
        num_frames: 2 * n,
        tx_size: n,
        rx_size: n,
        ..base
    }
}

/// Every UMEM frame is in exactly one place, and none is missing beyond those held by
/// payloads/tokens (TX frames still in the kernel get 200 ms, with flushes, to come back).
/// Held frames are allowed: the suite's `link_down_up` runs the check from inside the match
/// arm that still holds the payload it received.
fn audit(sock: &Sock) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        sock.flush();
        let a = sock.audit_frames();
        if a.is_consistent() && a.in_use <= 1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("UMEM frames after the case: {a:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Generic (SKB) mode.
pub struct AfXdpSkb;

impl Backend for AfXdpSkb {
    type S = Sock;
    const NAME: &'static str = "af-xdp-skb";

    fn portspec(iface: &str) -> String {
        iface.to_owned()
    }

    fn flags() -> AfXdpFlags {
        AfXdpFlags {
            xdp_flags: XDP_FLAGS_SKB_MODE,
            ..AfXdpFlags::default()
        }
    }

    fn small_pool_flags(buffers: usize) -> Option<AfXdpFlags> {
        Some(small_pool(Self::flags(), buffers))
    }

    fn check(sock: &Sock) -> Result<(), String> {
        audit(sock)
    }
}

/// Native mode (veth's XDP driver, copy mode).
pub struct AfXdpDrv;

impl Backend for AfXdpDrv {
    type S = Sock;
    const NAME: &'static str = "af-xdp-drv";

    fn portspec(iface: &str) -> String {
        iface.to_owned()
    }

    fn flags() -> AfXdpFlags {
        AfXdpFlags {
            xdp_flags: XDP_FLAGS_DRV_MODE,
            ..AfXdpFlags::default()
        }
    }

    fn small_pool_flags(buffers: usize) -> Option<AfXdpFlags> {
        Some(small_pool(Self::flags(), buffers))
    }

    fn check(sock: &Sock) -> Result<(), String> {
        if sock.xdp_mode() != XDP_FLAGS_DRV_MODE {
            return Err(format!(
                "not in native mode: xdp_mode {:#x}",
                sock.xdp_mode()
            ));
        }
        audit(sock)
    }
}
