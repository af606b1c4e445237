//! What the example tools share: backend selection on the command line, a Ctrl-C flag, test
//! frames, and rate formatting. The tools themselves are generic over `Socket`.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The engines a tool can run on (those compiled in; see the facade's features).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// libpcap
    Pcap,
    /// AF_PACKET TPACKET_v3 (feature `af-packet`)
    AfPacket,
    /// AF_XDP (feature `af-xdp`)
    AfXdp,
    /// netmap (feature `netmap`)
    Netmap,
    /// DPDK (feature `dpdk`)
    Dpdk,
}

impl Backend {
    /// Backends compiled into this binary.
    #[allow(clippy::vec_init_then_push)]
    pub fn compiled() -> Vec<Backend> {
        let mut v = vec![];
        #[cfg(feature = "pcap")]
        v.push(Backend::Pcap);
        #[cfg(feature = "af-packet")]
        v.push(Backend::AfPacket);
        #[cfg(feature = "af-xdp")]
        v.push(Backend::AfXdp);
        #[cfg(feature = "netmap")]
        v.push(Backend::Netmap);
        #[cfg(feature = "dpdk")]
        v.push(Backend::Dpdk);
        v
    }
}

/// Runs the generic function `$f::<Sock>(flags, args…)` for the chosen backend, with that
/// backend's default flags; evaluates to `Result<_, String>`.
#[macro_export]
macro_rules! with_backend {
    ($backend:expr, $f:ident ( $($arg:expr),* )) => {{
        use $crate::common::Backend;
        match $backend {
            #[cfg(feature = "pcap")]
            Backend::Pcap => $f::<nethuns::pcap::Sock>(nethuns::pcap::PcapFlags { buffer_count: 1024, ..Default::default() } $(, $arg)*),
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "backend {other:?} is not compiled in (compiled: {:?}); rebuild with its cargo feature",
                Backend::compiled()
            )),
        }
    }};
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT/SIGTERM set the stop flag instead of killing the process, so tools print
/// their totals.
pub fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether a stop was requested.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// A test frame: broadcast-free locally administered MACs, EtherType 0x88B5, sequence number.
pub fn frame(seq: u64, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(22)];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88B5u16.to_be_bytes());
    f[14..22].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Writes sequence number `seq` into a frame made by [`frame`].
#[inline]
pub fn set_seq(f: &mut [u8], seq: u64) {
    f[14..22].copy_from_slice(&seq.to_be_bytes());
}

/// Packets per second and bits per second over `elapsed`.
pub fn rates(pkts: u64, bytes: u64, elapsed: Duration) -> (f64, f64) {
    let s = elapsed.as_secs_f64().max(1e-9);
    (pkts as f64 / s, bytes as f64 * 8.0 / s)
}

/// `1.23 Mpps  4.56 Gbit/s`.
pub fn fmt_rate(pps: f64, bps: f64) -> String {
    format!("{:.3} Mpps  {:.3} Gbit/s", pps / 1e6, bps / 1e9)
}
