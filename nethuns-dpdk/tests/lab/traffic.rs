//! Traffic helpers of the lab tests: pacing, sending, receiving with metadata checks, exact
//! comparison, IPv4/UDP frames for RSS. Every loop is bounded by count and time.

use std::thread::sleep;
use std::time::{Duration, Instant};

use nethuns_dpdk::{Error, LinkStatus, Meta, PortStats, Sock, Socket};
use nethuns_testnet::frames;

use crate::peer::Peer;

/// Prints to the process's stderr directly, past the test harness's output capture, so skip
/// reasons and what the lab found show in a normal run.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

/// How long any wait for traffic may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);
/// Rate towards (and from) the kernel peer, which drops beyond what it can take.
pub(crate) const PEER_PPS: f64 = 50_000.0;
/// Sequence numbers of the frames sent after the mempool recovered.
pub(crate) const AFTER: u32 = 1_000_000;

/// The test frame sizes, in turn: minimum, 64, medium, full MTU.
pub(crate) fn size_of_frame(seq: u32) -> usize {
    [60usize, 64, 512, 1514][seq as usize % 4]
}

/// Spaces frames out: at most half the link's speed, and at most `pps` frames a second.
pub(crate) struct Pacer {
    start: Instant,
    bits: f64,
    frames: f64,
    bps: f64,
    pps: f64,
}

impl Pacer {
    pub(crate) fn new(link: LinkStatus, pps: f64) -> Pacer {
        let mbps = if link.speed_mbps == 0 {
            1000
        } else {
            link.speed_mbps
        };
        Pacer {
            start: Instant::now(),
            bits: 0.0,
            frames: 0.0,
            bps: f64::from(mbps) * 1e6 / 2.0,
            pps,
        }
    }

    /// Waits until a frame of `len` bytes (+ preamble, FCS and gap) may go.
    pub(crate) fn wait(&mut self, len: usize) {
        let due = (self.bits / self.bps).max(self.frames / self.pps);
        let at = self.start + Duration::from_secs_f64(due);
        loop {
            let now = Instant::now();
            if now >= at {
                break;
            }
            if at - now > Duration::from_micros(300) {
                sleep(at - now - Duration::from_micros(200));
            } else {
                std::hint::spin_loop();
            }
        }
        self.bits += ((len + 24) * 8) as f64;
        self.frames += 1.0;
    }
}

/// The link, once up (bounded wait); fails if it stays down.
pub(crate) fn link_up(sock: &Sock) -> LinkStatus {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let l = sock.link().unwrap_or_else(|e| panic!("{e}"));
        if l.up {
            return l;
        }
        assert!(
            Instant::now() < end,
            "the link of {} stays down (15 s): the traffic checks need it cabled (to \
             NETHUNS_HW_PEER, a loopback plug, a reflector or a switch)",
            sock.port_info().name
        );
        sleep(Duration::from_millis(100));
    }
}

/// Sends every frame (paced), retrying while the mempool is exhausted (bounded); flushes.
pub(crate) fn send_paced<'a>(
    sock: &Sock,
    frames: impl IntoIterator<Item = &'a Vec<u8>>,
    pacer: &mut Pacer,
) {
    let end = Instant::now() + DEADLINE;
    for (i, f) in frames.into_iter().enumerate() {
        pacer.wait(f.len());
        loop {
            match sock.send(f) {
                Ok(()) => break,
                Err(Error::NoMemory) if Instant::now() < end => {
                    let _ = sock.tx_done_cleanup();
                    sleep(Duration::from_micros(100));
                }
                Err(e) => panic!("send of frame {i} on {}: {e}", sock.port_info().name),
            }
        }
    }
    sock.flush();
}

/// Port counters once `opackets` reached `target` (bounded), read again 100 ms later so an
/// overshoot shows.
pub(crate) fn stats_after_tx(sock: &Sock, target: u64) -> PortStats {
    let end = Instant::now() + DEADLINE;
    while sock.native_stats().unwrap().opackets < target && Instant::now() < end {
        sleep(Duration::from_millis(10));
    }
    sleep(Duration::from_millis(100));
    sock.native_stats().unwrap()
}

/// A received frame kept by a test.
pub(crate) struct Got {
    pub(crate) data: Vec<u8>,
    pub(crate) meta: Meta,
}

/// Receives what the socket has now (bounded), checking every packet's metadata, keeping the
/// frames `keep` selects; returns how many packets arrived.
pub(crate) fn drain(sock: &Sock, got: &mut Vec<Got>, keep: fn(&[u8]) -> bool) -> usize {
    for n in 0..4096 {
        match sock.recv() {
            Ok((p, meta)) => {
                assert_eq!(meta.len as usize, p.len(), "{meta:?}");
                assert_eq!((meta.port, meta.queue), (sock.port_id(), sock.queue()));
                assert_eq!(
                    meta.timestamp.is_some(),
                    sock.has_rx_timestamp(),
                    "{meta:?}"
                );
                if keep(&p) {
                    got.push(Got {
                        data: p.to_vec(),
                        meta,
                    });
                }
            }
            Err(Error::NoPacket) => return n,
            Err(e) => panic!("recv on {}: {e}", sock.port_info().name),
        }
    }
    4096
}

/// Receives until `want` kept frames arrived or the deadline, then 100 ms more.
pub(crate) fn receive(sock: &Sock, got: &mut Vec<Got>, want: usize, keep: fn(&[u8]) -> bool) {
    let end = Instant::now() + DEADLINE;
    while got.len() < want && Instant::now() < end {
        if drain(sock, got, keep) == 0 {
            sleep(Duration::from_micros(20));
        }
    }
    let linger = Instant::now() + Duration::from_millis(100);
    while Instant::now() < linger {
        drain(sock, got, keep);
        sleep(Duration::from_millis(1));
    }
}

/// Frames towards the socket: from the raw peer (the socket receiving on its own thread), or
/// in loopback from the socket itself. Returns the socket and the frames `keep` selected.
pub(crate) fn to_socket(
    peer: &Peer,
    sock: Sock,
    frames: &[Vec<u8>],
    keep: fn(&[u8]) -> bool,
) -> (Sock, Vec<Got>) {
    let want = frames.len();
    match peer {
        Peer::Raw(raw) => std::thread::scope(|s| {
            let h = s.spawn(move || {
                let mut got = Vec::new();
                receive(&sock, &mut got, want, keep);
                (sock, got)
            });
            sleep(Duration::from_millis(50));
            let mut pacer = Pacer::new(LinkStatus::default(), PEER_PPS);
            for f in frames {
                pacer.wait(f.len());
                raw.send(f);
            }
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        }),
        Peer::Loopback => {
            let mut pacer = Pacer::new(link_up(&sock), f64::INFINITY);
            let mut got = Vec::new();
            for chunk in frames.chunks(64) {
                send_paced(&sock, chunk, &mut pacer);
                drain(&sock, &mut got, keep);
            }
            receive(&sock, &mut got, want, keep);
            (sock, got)
        }
    }
}

/// Checks a frame against what was sent; MAC addresses only when the path keeps them.
pub(crate) fn same(got: &[u8], sent: &[u8], exact_macs: bool) -> Result<(), String> {
    if got.len() != sent.len() {
        return Err(format!("length {} != {}", got.len(), sent.len()));
    }
    let from = if exact_macs { 0 } else { 12 };
    match got[from..]
        .iter()
        .zip(&sent[from..])
        .position(|(a, b)| a != b)
    {
        Some(i) => Err(format!("byte {} differs", from + i)),
        None => Ok(()),
    }
}

/// Exactly the test frames `first..first + n`, in order, each of its size and content.
pub(crate) fn assert_exact(got: &[&[u8]], first: u32, n: u32, exact_macs: bool, what: &str) {
    let seqs: Vec<Option<u32>> = got.iter().map(|f| frames::seq_of(f)).collect();
    let want: Vec<Option<u32>> = (first..first + n).map(Some).collect();
    assert_eq!(got.len(), n as usize, "{what}: {} of {n} frames", got.len());
    assert_eq!(seqs, want, "{what}: frames lost, reordered or duplicated");
    for (f, seq) in got.iter().zip(first..) {
        let sent = frames::frame(seq, size_of_frame(seq));
        same(f, &sent, exact_macs).unwrap_or_else(|e| panic!("{what}: frame {seq}: {e}"));
    }
}

pub(crate) fn is_after(f: &[u8]) -> bool {
    frames::seq_of(f).is_some_and(|s| s >= AFTER)
}

/// An IPv4/UDP frame of flow `flow` (its UDP source port) carrying `seq`, so RSS hashes it.
pub(crate) fn udp_frame(flow: u32, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 64];
    f[0..6].copy_from_slice(&frames::DST);
    f[6..12].copy_from_slice(&frames::SRC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 92, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let sport = 10_000 + flow as u16;
    f[34..42].copy_from_slice(&[(sport >> 8) as u8, sport as u8, 0x13, 0x88, 0, 72, 0, 0]);
    f[42..48].copy_from_slice(b"NHRSS\0");
    f[48..52].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[52..].iter_mut().enumerate() {
        *b = (seq as usize * 7 + i) as u8;
    }
    f
}

pub(crate) fn udp_seq(f: &[u8]) -> Option<u32> {
    (f.len() == 106 && f[12..14] == [0x08, 0x00] && &f[42..48] == b"NHRSS\0")
        .then(|| u32::from_be_bytes([f[48], f[49], f[50], f[51]]))
}

pub(crate) fn is_udp_test(f: &[u8]) -> bool {
    udp_seq(f).is_some()
}
