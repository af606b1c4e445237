//! What the example tools share: backend selection on the command line, a Ctrl-C flag, test
//! frames, and rate formatting. The tools themselves are generic over `Socket`.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Counts heap allocations, so the tools can report allocations per packet in steady state.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by this process so far.
pub fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Pins the calling thread to `cpu` (`None`: leave it).
pub fn pin(cpu: Option<usize>) -> Result<(), String> {
    let Some(cpu) = cpu else { return Ok(()) };
    // SAFETY: cpu_set_t is plain data (a bit array); all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit inside `set`, which we own (it ignores a cpu past the
    // set's size).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of `set`, alive for the
    // call.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(format!(
            "pinning to cpu {cpu}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// CPU time (user + system) this process has used, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data (timevals and integers); all-zero is a valid value of it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given, alive for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

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
            #[cfg(feature = "af-packet")]
            Backend::AfPacket => $f::<nethuns::af_packet::Sock>(Default::default() $(, $arg)*),
            #[cfg(feature = "af-xdp")]
            Backend::AfXdp => $f::<nethuns::af_xdp::Sock>(Default::default() $(, $arg)*),
            #[cfg(feature = "netmap")]
            Backend::Netmap => $f::<nethuns::netmap::Sock>(Default::default() $(, $arg)*),
            #[cfg(feature = "dpdk")]
            Backend::Dpdk => $f::<nethuns::dpdk::Sock>(Default::default() $(, $arg)*),
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
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Ends the process with status 1 and `tool: error` on stderr if `r` is an error.
pub fn exit_on_error(tool: &str, r: Result<(), String>) {
    if let Err(e) = r {
        eprintln!("{tool}: {e}");
        std::process::exit(1);
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
