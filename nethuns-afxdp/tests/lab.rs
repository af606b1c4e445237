//! Lab tests: AF_XDP in native (driver) mode on a real NIC, with the same exact-delivery checks
//! as the veth tests, each twice: **zero-copy** (`XDP_ZEROCOPY`) and copy mode (`XDP_COPY`).
//! Whether the NIC's driver has zero-copy is asked from the kernel (its XDP features,
//! `NETDEV_CMD_DEV_GET`); where it has not, the zero-copy tests print
//! `SKIPPED TEST: DRIVER on Linux RELEASE has no AF_XDP zero-copy` and the copy-mode ones run.
//! `#[ignore]`d; run by `cargo xtask test-hw --iface IF` (root, a NIC with native XDP) and by
//! `cargo xtask test-vm` (virtio_net in a QEMU guest), as
//! `cargo test -p nethuns-afxdp --release -- --ignored --test-threads=1` with:
//!
//! * `NETHUNS_HW_IFACE=IF` — the NIC. The tests take it over while they run (an XDP program
//!   steers every frame of its bound queues to the test sockets, and the receive tests make it
//!   promiscuous): not the management interface. Unset: every test prints why it skips.
//! * `NETHUNS_HW_PEER=IF2` (optional) — a kernel interface of this host cabled to IF. Frames
//!   go between a plain `AF_PACKET` socket on IF2 and the AF_XDP sockets on IF.
//! * `NETHUNS_HW_LOOPBACK=1` (optional, when no peer is given) — IF is cabled back to itself
//!   or to a reflector: frames sent by an AF_XDP socket come back to the AF_XDP sockets.
//! * `NETHUNS_HW_TIME_SCALE=K` (optional) — stretches every traffic deadline K times (emulated
//!   NICs; `cargo xtask test-vm` sets 5).
//!
//! Without a peer or loopback, the bind, TX-counter and program-lifetime tests run; the
//! delivery tests print why they skip. Frames are those of `nethuns_testnet::frames`
//! (60/64/512/1514 bytes, EtherType 0x88B5, sequence number and pattern checked). Incoming
//! frames may land on any queue (RSS): every receive test opens one socket per queue
//! of the NIC, each on its own thread, and checks that each frame arrived exactly once, in
//! order within its queue. Every loop is bounded by count and time.
//!
//! Frame accounting in zero-copy mode: the driver moves frames from the fill ring into its
//! hardware RX ring ahead of traffic, so `FrameAudit::unaccounted` counts those too; the tests
//! check that no frame is duplicated, none is held by a payload, every TX frame is back on the
//! free list, and the frames neither in a ring nor a list are no more than the driver's RX ring
//! holds (`ethtool -g`). After 1 000 000 frames (each RX frame recycled hundreds of times) a
//! leak would also have starved the socket.
//!
//! By hand: `NETHUNS_HW_IFACE=eth1 NETHUNS_HW_PEER=eth2 cargo test -p nethuns-afxdp --release
//! --test lab -- --ignored --test-threads=1`.
#![cfg(target_os = "linux")]

#[path = "lab/hw.rs"]
mod hw;
#[path = "lab/mode.rs"]
mod mode;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hw::Raw;
use mode::{open, try_open, Mode};
use nethuns_afxdp::{AfXdpFlags, Error, FrameAudit, Sock, Socket, XdpStatistics};
use nethuns_testnet::frames;

/// Test frame sizes: minimum Ethernet, 64, medium, full MTU.
const SIZES: [usize; 4] = [60, 64, 512, 1514];
/// Frames per delivery test (each size 1000 times).
const N: u64 = 4000;
/// At most this many frames in flight toward AF_XDP receivers (an RX ring has 2048 slots).
const WINDOW: u64 = 1024;
/// At most this many frames in flight toward an `AF_PACKET` receiver.
const RAW_WINDOW: u64 = 256;

fn len_of(seq: u32) -> usize {
    SIZES[(seq % 4) as usize]
}

/// Time allowed to move `n` frames: 20 s plus 50 µs a frame (70 s for the 1M run), times
/// `NETHUNS_HW_TIME_SCALE` (default 1; `cargo xtask test-vm` sets it for emulated NICs,
/// which move frames far slower than a NIC). A bound against hangs, not a speed check.
fn deadline(n: u64) -> Instant {
    let scale: u32 = std::env::var("NETHUNS_HW_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s >= 1)
        .unwrap_or(1);
    Instant::now() + (Duration::from_secs(20) + Duration::from_micros(50 * n)) * scale
}

/// The NIC under test, if set and able to run `mode` (else the printed skip).
fn iface(test: &str, mode: Mode) -> Option<String> {
    match std::env::var("NETHUNS_HW_IFACE") {
        Ok(v) if !v.is_empty() => mode::supported(test, &v, mode).then_some(v),
        _ => {
            eprintln!(
                "SKIPPED {test}: NETHUNS_HW_IFACE is not set (cargo xtask test-hw --iface IF sets it)"
            );
            None
        }
    }
}

/// Who is at the other end of the NIC's cable.
enum Peer {
    /// A kernel interface of this host.
    Iface(String),
    /// The NIC itself (loopback plug or reflector).
    Loopback,
}

fn peer(test: &str, iface: &str) -> Option<Peer> {
    match std::env::var("NETHUNS_HW_PEER") {
        Ok(p) if !p.is_empty() => return Some(Peer::Iface(p)),
        _ => {}
    }
    if std::env::var("NETHUNS_HW_LOOPBACK").is_ok_and(|v| v == "1") {
        return Some(Peer::Loopback);
    }
    eprintln!(
        "SKIPPED {test}: no peer for {iface}: set NETHUNS_HW_PEER=IF2 (a kernel interface cabled \
         to {iface}) or NETHUNS_HW_LOOPBACK=1 ({iface} cabled back to itself or to a reflector)"
    );
    None
}

/// Flushes until every TX frame is back on the free list (or `end`); the final audit.
fn wait_tx_complete(sock: &Sock, end: Instant) -> FrameAudit {
    let tx_size = AfXdpFlags::default().tx_size;
    loop {
        sock.flush();
        let a = sock.audit_frames();
        if a.tx_free == tx_size || Instant::now() >= end {
            return a;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn assert_tx_returned(iface: &str, queue: u32, a: &FrameAudit) {
    let tx_size = AfXdpFlags::default().tx_size;
    assert!(a.duplicated.is_empty(), "{iface} queue {queue}: {a:?}");
    assert_eq!(
        (a.tx_free, a.tx_ring, a.completion_ring),
        (tx_size, 0, 0),
        "{iface} queue {queue}: TX frames not all back on the free list: {a:?}"
    );
}

/// Frames the kernel (the driver's hardware ring) holds: in no ring, list or payload.
fn held_by_kernel(a: &FrameAudit) -> u64 {
    (a.unaccounted as u64).saturating_sub(a.in_use)
}

/// What one queue's socket saw during a receive test.
struct QueueReport {
    queue: u32,
    /// Sequence numbers of the test frames received, in arrival order.
    seqs: Vec<u32>,
    /// Test frames this queue's socket sent (loopback).
    sent: u64,
    /// Frames the driver held once the socket had settled, before traffic.
    held_before: u64,
    audit: FrameAudit,
    stats: XdpStatistics,
}

/// Where the frames of a receive test come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// An `AF_PACKET` socket on the peer, driven by the calling thread.
    Raw(&'a Raw),
    /// The zero-copy socket of this queue (loopback).
    Queue(u32),
}

struct Shared {
    received: AtomicU64,
    stop: AtomicBool,
    go: AtomicBool,
    end: Instant,
}

/// Sets `stop` if the thread panics, so the others and the sender give up at once.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// The body of one queue's thread: open, settle, then receive (and send, for loopback) until
/// `n` test frames arrived over all queues, then account for every frame.
fn queue_worker(
    iface: &str,
    mode: Mode,
    queue: u32,
    n: u64,
    send: bool,
    sh: &Shared,
    ready: mpsc::Sender<Result<(), String>>,
) -> Option<QueueReport> {
    let _guard = StopOnPanic(&sh.stop);
    let sock = match try_open(iface, queue, mode) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return None;
        }
    };
    // Let the driver fill its hardware ring from the fill ring; what it holds is the baseline.
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        // Nothing counts yet (a late frame of an earlier test would show as a duplicate).
        while sock.recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(10));
    }
    let held_before = held_by_kernel(&sock.audit_frames());
    let _ = ready.send(Ok(()));
    while !sh.go.load(Ordering::Acquire) {
        if sh.stop.load(Ordering::Relaxed) || Instant::now() >= sh.end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    let mut seqs = Vec::with_capacity(n as usize);
    let mut buf = vec![0u8; SIZES[3]];
    let mut sent = 0u64;
    let tx_n = if send { n } else { 0 };
    let take = |p: &[u8], meta_len: u32, seqs: &mut Vec<u32>| {
        let Some(seq) = frames::seq_of(p) else {
            return; // other traffic on the link
        };
        assert_eq!(
            meta_len as usize,
            p.len(),
            "{iface} queue {queue}: metadata length"
        );
        if let Err(e) = frames::check(p, seq, len_of(seq)) {
            panic!("{iface} queue {queue}: {e}");
        }
        if let Some(&last) = seqs.last() {
            assert!(
                seq > last,
                "{iface} queue {queue}: frame {seq} after {last}: out of order or duplicated"
            );
        }
        seqs.push(seq);
        sh.received.fetch_add(1, Ordering::Relaxed);
    };
    while sh.received.load(Ordering::Relaxed) < n
        && !sh.stop.load(Ordering::Relaxed)
        && Instant::now() < sh.end
    {
        let mut idle = true;
        if sent < tx_n {
            let mut batch = 0;
            while sent < tx_n
                && batch < 64
                && sent.saturating_sub(sh.received.load(Ordering::Relaxed)) < WINDOW
            {
                let len = len_of(sent as u32);
                frames::fill(&mut buf[..len], sent as u32);
                match sock.send(&buf[..len]) {
                    Ok(()) => {
                        sent += 1;
                        batch += 1;
                    }
                    Err(Error::NoMemory) => break,
                    Err(e) => panic!("{iface} queue {queue}: send: {e}"),
                }
            }
            sock.flush();
            idle = batch == 0;
        }
        for _ in 0..64 {
            match sock.recv() {
                Ok((p, meta)) => {
                    idle = false;
                    take(&p, meta.len, &mut seqs);
                }
                Err(Error::NoPacket) => break,
                Err(e) => panic!("{iface} queue {queue}: recv: {e}"),
            }
        }
        if idle {
            if sent < tx_n {
                std::thread::yield_now();
            } else {
                hw::poll_in(sock.as_raw_fd(), Duration::from_millis(1));
            }
        }
    }
    if sent > 0 {
        assert_tx_returned(
            iface,
            queue,
            &wait_tx_complete(&sock, Instant::now() + Duration::from_secs(5)),
        );
    }
    // Late or duplicated test frames would show up here (and fail the exact count).
    let drain = Instant::now() + Duration::from_millis(100);
    while Instant::now() < drain {
        match sock.recv() {
            Ok((p, meta)) => take(&p, meta.len, &mut seqs),
            Err(Error::NoPacket) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{iface} queue {queue}: recv: {e}"),
        }
    }
    // A stray frame arriving while the rings are walked can make one audit inconsistent.
    let mut audit = sock.audit_frames();
    for _ in 0..3 {
        if audit.duplicated.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        audit = sock.audit_frames();
    }
    Some(QueueReport {
        queue,
        seqs,
        sent,
        held_before,
        audit,
        stats: sock.native_stats().unwrap(),
    })
}

/// Opens a socket of `mode` on every queue of `iface` (one thread each), has `source` send `n`
/// test frames, and checks that every frame arrived exactly once, intact, in order within its
/// queue, and that every UMEM frame is accounted for afterwards.
fn receive_on_every_queue(iface: &str, mode: Mode, n: u64, source: Source) -> Vec<QueueReport> {
    let queues = hw::rx_queues(iface);
    let ring = hw::rx_ring_size(iface);
    let sh = Shared {
        received: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        go: AtomicBool::new(false),
        end: deadline(n),
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let start = Instant::now();
    let reports = std::thread::scope(|s| {
        let handles: Vec<_> = (0..queues)
            .map(|q| {
                let ready = ready_tx.clone();
                let send = matches!(source, Source::Queue(sq) if sq == q);
                let sh = &sh;
                s.spawn(move || queue_worker(iface, mode, q, n, send, sh, ready))
            })
            .collect();
        drop(ready_tx);
        let mut errors = Vec::new();
        for _ in 0..queues {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("a queue thread never reported: {e}")),
            }
        }
        // A panic here (a failed send) stops the queue threads before the scope joins them.
        let _guard = StopOnPanic(&sh.stop);
        let mut peer_sent = None;
        if errors.is_empty() {
            sh.go.store(true, Ordering::Release);
            if let Source::Raw(raw) = source {
                let mut buf = vec![0u8; SIZES[3]];
                let mut sent = 0u64;
                while sent < n && !sh.stop.load(Ordering::Relaxed) && Instant::now() < sh.end {
                    if sent.saturating_sub(sh.received.load(Ordering::Relaxed)) >= WINDOW {
                        std::thread::yield_now();
                        continue;
                    }
                    let len = len_of(sent as u32);
                    frames::fill(&mut buf[..len], sent as u32);
                    raw.send(&buf[..len], sh.end);
                    sent += 1;
                }
                peer_sent = Some(sent);
            }
        } else {
            sh.stop.store(true, Ordering::Relaxed);
        }
        let mut panics = Vec::new();
        let mut reports = Vec::new();
        for h in handles {
            match h.join() {
                Ok(Some(r)) => reports.push(r),
                Ok(None) => {}
                Err(p) => panics.push(p),
            }
        }
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        if let Some(p) = panics.pop() {
            std::panic::resume_unwind(p);
        }
        if let Some(sent) = peer_sent {
            assert_eq!(
                sent, n,
                "the peer sent {sent} of {n} frames before the deadline"
            );
        }
        reports
    });
    let secs = start.elapsed().as_secs_f64();
    let per_queue: Vec<String> = reports
        .iter()
        .map(|r| format!("q{}: {} rx {} tx", r.queue, r.seqs.len(), r.sent))
        .collect();
    eprintln!(
        "{iface}: {n} frames in {secs:.1} s over {queues} queue(s) [{}]; driver RX ring {ring:?}",
        per_queue.join(", ")
    );
    // Exactly once each, over all queues.
    let mut all: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.seqs.iter().copied())
        .collect();
    let stats: Vec<String> = reports
        .iter()
        .map(|r| format!("q{}: {:?}", r.queue, r.stats))
        .collect();
    assert_eq!(
        all.len() as u64,
        n,
        "{iface}: received {} of {n} test frames; socket statistics:\n{}",
        all.len(),
        stats.join("\n")
    );
    all.sort_unstable();
    if let Some((i, seq)) = all.iter().enumerate().find(|&(i, &seq)| seq as usize != i) {
        panic!("{iface}: frame {i} missing or duplicated (found {seq} at that place)");
    }
    for r in &reports {
        let (q, a) = (r.queue, &r.audit);
        assert!(a.duplicated.is_empty(), "{iface} queue {q}: {a:?}");
        assert_eq!(a.in_use, 0, "{iface} queue {q}: payloads still held: {a:?}");
        let bound = ring.map_or(0, u64::from).max(r.held_before) + 64;
        let held = held_by_kernel(a);
        assert!(
            held <= bound,
            "{iface} queue {q}: {held} frames in no ring or list, more than the driver's RX ring \
             ({ring:?}, {} held before traffic) can hold: frames lost. {a:?}",
            r.held_before
        );
        assert_eq!(
            r.stats.rx_invalid_descs, 0,
            "{iface} queue {q}: {:?}",
            r.stats
        );
        assert_eq!(
            r.stats.tx_invalid_descs, 0,
            "{iface} queue {q}: {:?}",
            r.stats
        );
    }
    reports
}

/// One socket of `mode` on `queue` sends `n` test frames to an `AF_PACKET` socket on `peer`,
/// which checks count, order, length and content; then every TX frame must be back.
fn send_to_peer(iface: &str, mode: Mode, queue: u32, peer: &str, n: u64) {
    let raw = Raw::open(peer);
    let sock = open(iface, queue, mode);
    let end = deadline(n);
    let got = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let _guard = StopOnPanic(&stop);
            let mut buf = vec![0u8; 4096];
            let mut next = 0u32;
            while (next as u64) < n && !stop.load(Ordering::Relaxed) && Instant::now() < end {
                let Some(len) = raw.recv(&mut buf) else {
                    continue;
                };
                let Some(seq) = frames::seq_of(&buf[..len]) else {
                    continue;
                };
                assert_eq!(seq, next, "{peer}: frame {seq} when {next} was due");
                if let Err(e) = frames::check(&buf[..len], seq, len_of(seq)) {
                    panic!("{peer}: {e}");
                }
                next += 1;
                got.store(next as u64, Ordering::Relaxed);
            }
        });
        // A panic here (a failed send) stops the receiver before the scope joins it.
        let _guard = StopOnPanic(&stop);
        let mut buf = vec![0u8; SIZES[3]];
        let mut sent = 0u64;
        while sent < n && !stop.load(Ordering::Relaxed) && Instant::now() < end {
            if sent - got.load(Ordering::Relaxed) >= RAW_WINDOW {
                sock.flush();
                std::thread::yield_now();
                continue;
            }
            let len = len_of(sent as u32);
            frames::fill(&mut buf[..len], sent as u32);
            match sock.send(&buf[..len]) {
                Ok(()) => sent += 1,
                Err(Error::NoMemory) => sock.flush(),
                Err(e) => panic!("{iface} queue {queue}: send: {e}"),
            }
        }
        sock.flush();
        let a = wait_tx_complete(&sock, Instant::now() + Duration::from_secs(5));
        if let Err(p) = receiver.join() {
            std::panic::resume_unwind(p);
        }
        assert_eq!(sent, n, "{iface}: sent {sent} of {n} before the deadline");
        assert_eq!(
            got.load(Ordering::Relaxed),
            n,
            "{peer} received {} of {n} frames from {iface} queue {queue}",
            got.load(Ordering::Relaxed)
        );
        assert_tx_returned(iface, queue, &a);
    });
    eprintln!(
        "{iface} queue {queue} -> {peer}: {n} frames in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(sock.native_stats().unwrap().tx_invalid_descs, 0);
}

/// Each lab test twice: zero-copy, where the kernel says the driver has it (otherwise
/// `SKIPPED ...: DRIVER on KERNEL has no AF_XDP zero-copy`), and copy mode in native mode.
macro_rules! lab_tests {
    ($($body:ident: $zc:ident, $copy:ident;)*) => {$(
        #[test]
        #[ignore = "lab: needs a NIC with native XDP (cargo xtask test-hw --iface IF, or test-vm)"]
        fn $zc() {
            $body(stringify!($zc), Mode::ZeroCopy);
        }

        #[test]
        #[ignore = "lab: needs a NIC with native XDP (cargo xtask test-hw --iface IF, or test-vm)"]
        fn $copy() {
            $body(stringify!($copy), Mode::NativeCopy);
        }
    )*};
}

lab_tests! {
    bind_on_every_queue: lab_zero_copy_bind_on_every_queue, lab_native_copy_bind_on_every_queue;
    tx_completes_and_counts:
        lab_zero_copy_tx_completes_and_counts, lab_native_copy_tx_completes_and_counts;
    peer_to_socket_rx_exact: lab_peer_to_zero_copy_rx_exact, lab_peer_to_native_copy_rx_exact;
    tx_to_peer_exact: lab_zero_copy_tx_to_peer_exact, lab_native_copy_tx_to_peer_exact;
    one_million_frames_accounted:
        lab_zero_copy_one_million_frames_accounted, lab_native_copy_one_million_frames_accounted;
    program_attached_while_open_and_gone_after_drop:
        lab_zero_copy_program_attached_while_open_and_gone_after_drop,
        lab_native_copy_program_attached_while_open_and_gone_after_drop;
}

fn bind_on_every_queue(test: &str, mode: Mode) {
    let Some(iface) = iface(test, mode) else {
        return;
    };
    drop(open(&iface, 0, mode));
    let queues = hw::rx_queues(&iface);
    // One socket per queue, each opened on its own thread, all open at once.
    let release = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for q in 0..queues {
            let (tx, release, iface) = (tx.clone(), &release, &iface);
            s.spawn(move || {
                let sock = try_open(iface, q, mode);
                let _ = tx.send((q, sock.as_ref().map(|_| ()).map_err(Clone::clone)));
                // Hold the socket (if any) until the main thread has looked, 30 s at most.
                let end = Instant::now() + Duration::from_secs(30);
                while sock.is_ok() && !release.load(Ordering::Relaxed) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(sock);
            });
        }
        drop(tx);
        let mut errors = Vec::new();
        let mut opened = 0;
        for _ in 0..queues {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok((_, Ok(()))) => opened += 1,
                Ok((_, Err(e))) => errors.push(e),
                Err(e) => errors.push(format!("a queue thread never reported: {e}")),
            }
        }
        let (attached, text) = hw::xdp_program(&iface);
        release.store(true, Ordering::Relaxed);
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        assert_eq!(opened, queues);
        assert!(attached, "{queues} sockets open but no XDP program: {text}");
    });
    eprintln!("{iface}: {} sockets on all {queues} queue(s)", mode.name());
    // A queue the NIC does not have (RX or TX) is refused, naming it.
    let beyond = queues.max(hw::tx_queues(&iface));
    match Sock::create(&iface, Some(beyond as usize), mode::flags(&iface, mode)) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&iface) && msg.contains(&format!("queue {beyond}")),
                "{msg}"
            );
        }
        Ok(_) => panic!("{iface} has {beyond} queues but queue {beyond} was bound"),
    }
}

fn tx_completes_and_counts(test: &str, mode: Mode) {
    let Some(iface) = iface(test, mode) else {
        return;
    };
    let sock = open(&iface, 0, mode);
    assert!(
        sock.link_is_up(),
        "{iface} has no carrier: the TX test needs a link (a peer, a switch or a \
         loopback plug)"
    );
    let before = hw::tx_packets(&iface);
    let end = deadline(N);
    let mut buf = vec![0u8; SIZES[3]];
    let mut sent = 0u64;
    while sent < N {
        let len = len_of(sent as u32);
        frames::fill(&mut buf[..len], sent as u32);
        match sock.send(&buf[..len]) {
            Ok(()) => sent += 1,
            Err(Error::NoMemory) => {
                assert!(
                    Instant::now() < end,
                    "{iface}: TX frames never completed ({sent} of {N} sent)"
                );
                sock.flush();
                std::thread::yield_now();
            }
            Err(e) => panic!("{iface}: send {sent}: {e}"),
        }
    }
    sock.flush();
    let audit = wait_tx_complete(&sock, Instant::now() + Duration::from_secs(5));
    assert_tx_returned(&iface, 0, &audit);
    assert_eq!(audit.in_use, 0, "{audit:?}");
    // Some drivers refresh their counters periodically: give them a few seconds.
    let end = Instant::now() + Duration::from_secs(5);
    let mut after = hw::tx_packets(&iface);
    while after < before + N && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        after = hw::tx_packets(&iface);
    }
    assert!(
        after >= before + N,
        "{iface}: tx_packets rose by {} for {N} frames sent",
        after - before
    );
    assert_eq!(sock.native_stats().unwrap().tx_invalid_descs, 0);
}

fn peer_to_socket_rx_exact(test: &str, mode: Mode) {
    let Some(iface) = iface(test, mode) else {
        return;
    };
    let Some(peer) = peer(test, &iface) else {
        return;
    };
    let _promisc = Raw::open(&iface);
    match peer {
        Peer::Iface(p) => {
            let raw = Raw::open(&p);
            receive_on_every_queue(&iface, mode, N, Source::Raw(&raw));
        }
        Peer::Loopback => {
            receive_on_every_queue(&iface, mode, N, Source::Queue(0));
        }
    }
}

fn tx_to_peer_exact(test: &str, mode: Mode) {
    let Some(iface) = iface(test, mode) else {
        return;
    };
    let Some(peer) = peer(test, &iface) else {
        return;
    };
    match peer {
        Peer::Iface(p) => send_to_peer(&iface, mode, 0, &p, N),
        Peer::Loopback => {
            // Sent from the last queue's TX ring (queue 0's is covered by the RX test).
            let _promisc = Raw::open(&iface);
            let last = hw::rx_queues(&iface) - 1;
            receive_on_every_queue(&iface, mode, N, Source::Queue(last));
        }
    }
}

fn soak_packets() -> u64 {
    std::env::var("NETHUNS_AFXDP_SOAK_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        })
}

fn one_million_frames_accounted(test: &str, mode: Mode) {
    let Some(iface) = iface(test, mode) else {
        return;
    };
    let Some(peer) = peer(test, &iface) else {
        return;
    };
    let n = soak_packets();
    let _promisc = Raw::open(&iface);
    let reports = match &peer {
        Peer::Iface(p) => {
            let raw = Raw::open(p);
            receive_on_every_queue(&iface, mode, n, Source::Raw(&raw))
        }
        Peer::Loopback => receive_on_every_queue(&iface, mode, n, Source::Queue(0)),
    };
    // Every RX frame cycled through the rings many times: none was lost on the way.
    for r in &reports {
        assert_eq!(r.audit.in_use, 0);
    }
    if let Peer::Iface(p) = &peer {
        send_to_peer(&iface, mode, 0, p, n);
    }
}

fn program_attached_while_open_and_gone_after_drop(test: &str, mode: Mode) {
    let Some(iface) = iface(test, mode) else {
        return;
    };
    let (attached, text) = hw::xdp_program(&iface);
    assert!(
        !attached,
        "{iface} has an XDP program before the test (remove it: `ip link set dev {iface} xdp off`): {text}"
    );
    let queues = hw::rx_queues(&iface);
    let mut socks: Vec<Sock> = (0..queues).map(|q| open(&iface, q, mode)).collect();
    let (attached, text) = hw::xdp_program(&iface);
    assert!(
        attached,
        "no XDP program with {queues} sockets open: {text}"
    );
    assert!(!text.contains("xdpgeneric"), "not in native mode: {text}");
    let last = socks.pop().unwrap();
    drop(socks);
    assert!(
        hw::xdp_program(&iface).0,
        "the program went while a socket is still open"
    );
    drop(last);
    let end = Instant::now() + Duration::from_secs(2);
    let mut state = hw::xdp_program(&iface);
    while state.0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        state = hw::xdp_program(&iface);
    }
    assert!(
        !state.0,
        "XDP program left on {iface} after drop: {}",
        state.1
    );
    // Frames reach the kernel stack again.
    let sender = match std::env::var("NETHUNS_HW_PEER") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("NETHUNS_HW_LOOPBACK").is_ok_and(|v| v == "1") => Some(iface.clone()),
        _ => None,
    };
    let Some(sender) = sender else {
        eprintln!(
            "{test}: stack delivery after drop not checked: set NETHUNS_HW_PEER or NETHUNS_HW_LOOPBACK=1"
        );
        return;
    };
    let stack = Raw::open(&iface);
    let tx = Raw::open(&sender);
    let end = Instant::now() + Duration::from_secs(5);
    for seq in 0..20 {
        tx.send(&frames::frame(seq, 64), end);
    }
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while got < 20 && Instant::now() < end {
        if let Some(len) = stack.recv(&mut buf) {
            if frames::seq_of(&buf[..len]) == Some(got) {
                got += 1;
            }
        }
    }
    assert_eq!(
        got, 20,
        "frames from {sender} reach {iface}'s stack after drop"
    );
}
