//! The conformance suite: one behaviour, tested once, on every backend.
//!
//! Each case is a function generic over a [`Backend`] (a [`Socket`] type and how to open it).
//! It runs the socket under test in namespace `a` on one end of a fresh veth pair and a
//! [`RawPeer`] (a plain AF_PACKET socket, no nethuns) on the other end, and makes the same
//! assertion whatever the engine: exact delivery both ways (payload = wire frame, VLAN tags
//! included), the size rules of `send`, pool exhaustion and recovery, tokens across threads
//! and foreign tokens, channel batches, a deleted interface, link down/up, tcpdump filters,
//! the end of a savefile, statistics, and waiting for a packet ([`nethuns_core::wait`]).
//!
//! A backend crate instantiates it in a test file:
//!
//! ```ignore
//! struct AfPacket;
//! impl nethuns_testnet::conformance::Backend for AfPacket {
//!     type S = nethuns_afpacket::Sock;
//!     const NAME: &'static str = "af-packet";
//!     fn portspec(iface: &str) -> String { iface.to_owned() }
//!     fn flags() -> nethuns_afpacket::AfPacketFlags { Default::default() }
//! }
//! nethuns_testnet::conformance_tests!(AfPacket);
//! ```
//!
//! [`conformance_tests!`](crate::conformance_tests) makes one `#[test]` per case; a backend
//! that allows one engine instance per process (DPDK's EAL) calls [`run_all`] from a single
//! test instead. Every case prints one line, `conformance: BACKEND CASE: pass` (or `n/a:
//! reason`, or `FAIL: what differs`), so the README's table can be read off a test run.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_core::pool::PoolContext;
use nethuns_core::{Error, Metadata, Socket};

use crate::peer::RawPeer;
use crate::{frames, NetPair};

mod batch;
mod tx;
mod wait;

/// How a backend is opened for the suite.
pub trait Backend: 'static {
    /// The socket under test.
    type S: Socket;
    /// Short name in reports: `"af-packet"`, `"af-xdp-skb"`, `"dpdk-af-packet"` …
    const NAME: &'static str;
    /// What to pass to [`Socket::create`] for interface `iface`.
    fn portspec(iface: &str) -> String;
    /// The queue to pass to [`Socket::create`].
    fn queue() -> Option<usize> {
        None
    }
    /// Flags of an ordinary socket.
    fn flags() -> <Self::S as Socket>::Flags;
    /// Flags giving at most about `buffers` receive buffers (the pool-exhaustion case), or
    /// `None` where that cannot be set.
    fn small_pool_flags(_buffers: usize) -> Option<<Self::S as Socket>::Flags> {
        None
    }
    /// Flags with the tcpdump filter expression `expr`, or `None` if the backend takes no
    /// filters.
    fn filter_flags(_expr: &str) -> Option<<Self::S as Socket>::Flags> {
        None
    }
    /// Flags of a socket that carries frames of [`JUMBO_MTU`] + 18 bytes both ways (the
    /// `jumbo` case), or `Err(reason)` where the backend cannot.
    fn jumbo_flags() -> Result<<Self::S as Socket>::Flags, String> {
        Ok(Self::flags())
    }
    /// The portspec replaying savefile `path`, for backends that read savefiles.
    fn savefile_portspec(_path: &str) -> Option<String> {
        None
    }
    /// Frames the soak keeps in flight towards the socket at most: below what its kernel ring
    /// holds, so that a receiver that falls behind loses nothing.
    fn soak_window() -> u64 {
        256
    }
    /// A backend-only check run on the socket under test at the end of each case (frames
    /// audit, blocks in use, mempool in use …).
    fn check(_sock: &Self::S) -> Result<(), String> {
        Ok(())
    }
    /// Why fault scenario `scenario` ([`crate::faults`]) does not apply to this backend (a
    /// limitation of the engine, documented), or `None` where it runs.
    fn fault_not_applicable(_scenario: &str) -> Option<&'static str> {
        None
    }
}

/// What a case found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The backend behaves as the contract says.
    Pass,
    /// The case does not apply to this backend, and why.
    NotApplicable(String),
}

type CaseResult = Result<Verdict, String>;

/// MTU of the veth pair every case runs on.
pub const MTU: usize = 1500;
/// MTU of the veth pair of the `jumbo` case.
pub const JUMBO_MTU: usize = 9000;
const VLAN: u16 = 7;
const WAIT: Duration = Duration::from_secs(3);

/// Every case, by name, in the order [`run_all`] runs them.
pub const CASES: &[&str] = &[
    "rx_exact",
    "tx_exact",
    "oversize",
    "undersize",
    "pool_exhaustion",
    "token_threads",
    "foreign_token",
    "channel",
    "link_deleted",
    "link_down_up",
    "filter",
    "savefile_eof",
    "stats",
    "double_release",
    "jumbo",
    "batch_exact",
    "send_with_exact",
    "send_payload_forward",
    "soak",
    "wait",
];

/// Runs case `name` on backend `B`, prints its line, and panics if it failed. Returns the
/// verdict, or `None` where the machine cannot run network tests and nothing demands it.
pub fn run_case<B: Backend>(name: &str) -> Option<Verdict> {
    let r = match name {
        "savefile_eof" => Some(savefile_eof::<B>()),
        "jumbo" => {
            let opts = crate::PairOptions {
                mtu: JUMBO_MTU as u32,
                ..Default::default()
            };
            let pair = NetPair::for_test_with("confjumbo", opts)?;
            Some(jumbo::<B>(&pair))
        }
        _ => {
            let pair = NetPair::for_test(&format!("conf{}", name.replace('_', "")))?;
            Some(match name {
                "rx_exact" => rx_exact::<B>(&pair),
                "tx_exact" => tx_exact::<B>(&pair),
                "oversize" => oversize::<B>(&pair),
                "undersize" => undersize::<B>(&pair),
                "pool_exhaustion" => pool_exhaustion::<B>(&pair),
                "token_threads" => token_threads::<B>(&pair),
                "foreign_token" => foreign_token::<B>(&pair),
                "channel" => channel::<B>(&pair),
                "link_deleted" => link_deleted::<B>(&pair),
                "link_down_up" => link_down_up::<B>(&pair),
                "filter" => filter::<B>(&pair),
                "stats" => stats::<B>(&pair),
                "double_release" => double_release::<B>(&pair),
                "batch_exact" => batch::batch_exact::<B>(&pair),
                "send_with_exact" => tx::send_with_exact::<B>(&pair),
                "send_payload_forward" => tx::send_payload_forward::<B>(&pair),
                "soak" => crate::soak::soak::<B>(&pair),
                "wait" => wait::wait::<B>(&pair),
                other => Err(format!("no case named {other:?}")),
            })
        }
    }?;
    log(B::NAME, name, &r);
    match r {
        Ok(Verdict::Pass) => {
            println!("conformance: {} {name}: pass", B::NAME);
            Some(Verdict::Pass)
        }
        Ok(Verdict::NotApplicable(why)) => {
            println!("conformance: {} {name}: n/a: {why}", B::NAME);
            Some(Verdict::NotApplicable(why))
        }
        Err(e) => {
            println!("conformance: {} {name}: FAIL: {e}", B::NAME);
            panic!("conformance: {} {name}: {e}", B::NAME);
        }
    }
}

/// The environment variable naming a file to which every case appends one line,
/// `BACKEND<TAB>CASE<TAB>pass|n/a: reason|FAIL: what`; `cargo xtask test` sets it and prints
/// the case × backend table from it.
pub const LOG_ENV: &str = "NETHUNS_CONFORMANCE_LOG";

fn log(backend: &str, case: &str, r: &CaseResult) {
    let Some(path) = std::env::var_os(LOG_ENV) else {
        return;
    };
    let verdict = match r {
        Ok(Verdict::Pass) => "pass".to_string(),
        Ok(Verdict::NotApplicable(why)) => format!("n/a: {why}"),
        Err(e) => format!("FAIL: {e}"),
    };
    let line = format!(
        "{backend}\t{case}\t{}\n",
        verdict.replace(['\n', '\t'], " ")
    );
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The case × backend table of a log written under [`LOG_ENV`], as Markdown: one row per
/// case, one column per backend, `pass`, `n/a` or `FAIL`; the reasons of `n/a` and `FAIL`
/// follow the table.
pub fn table(log: &str) -> String {
    let mut backends: Vec<&str> = vec![];
    let mut cells = std::collections::BTreeMap::new();
    for l in log.lines() {
        let mut it = l.splitn(3, '\t');
        let (Some(b), Some(c), Some(v)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if !backends.contains(&b) {
            backends.push(b);
        }
        cells.insert((c, b), v);
    }
    let mut out = format!(
        "| case | {} |\n|---|{}\n",
        backends.join(" | "),
        "---|".repeat(backends.len())
    );
    let mut notes = vec![];
    for case in CASES {
        let row: Vec<String> = backends
            .iter()
            .map(|b| match cells.get(&(*case, *b)) {
                None => "—".to_string(),
                Some(v) if *v == "pass" => "pass".to_string(),
                Some(v) => {
                    notes.push(format!("- {b} {case}: {v}"));
                    v.split(':').next().unwrap_or(v).to_string()
                }
            })
            .collect();
        out.push_str(&format!("| {case} | {} |\n", row.join(" | ")));
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

/// Runs every case on `B` in this one test (for engines initialised once per process),
/// printing a line per case; panics at the end naming every failed case.
pub fn run_all<B: Backend>() {
    let mut failed = vec![];
    for name in CASES {
        let r = std::panic::catch_unwind(|| run_case::<B>(name));
        if r.is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "conformance: {} failed {failed:?}",
        B::NAME
    );
}

/// One `#[test]` per conformance case for backend type `$b`.
#[macro_export]
macro_rules! conformance_tests {
    (@cases $b:ty; $($case:ident)*) => {$(
        #[test]
        fn $case() {
            let _ = $crate::conformance::run_case::<$b>(stringify!($case));
        }
    )*};
    ($b:ty) => {
        $crate::conformance_tests!(@cases $b; rx_exact tx_exact oversize undersize
            pool_exhaustion token_threads foreign_token channel link_deleted link_down_up
            filter savefile_eof stats double_release jumbo batch_exact send_with_exact
            send_payload_forward soak wait);
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn open<B: Backend>(iface: &str, flags: <B::S as Socket>::Flags) -> Result<B::S, String> {
    let spec = B::portspec(iface);
    B::S::create(&spec, B::queue(), flags).map_err(|e| format!("create {spec}: {e}"))
}

fn finish<B: Backend>(sock: &B::S) -> CaseResult {
    B::check(sock).map_err(|e| format!("backend check: {e}"))?;
    Ok(Verdict::Pass)
}

/// The frames of the delivery cases: 60, 64, 512, MTU+14 untagged, and 64, 512, MTU+18
/// tagged with TCI 7, `per` of each, sequence numbers from `first`.
fn delivery_set(first: u32, per: usize) -> Vec<Vec<u8>> {
    let untagged = [60, 64, 512, MTU + 14];
    let tagged = [64, 512, MTU + 18];
    let mut v = vec![];
    let mut seq = first;
    for _ in 0..per {
        for &l in &untagged {
            v.push(frames::frame(seq, l));
            seq += 1;
        }
        for &l in &tagged {
            v.push(frames::tagged(seq, l, VLAN));
            seq += 1;
        }
    }
    v
}

/// Receives test frames until `n` arrived or `timeout` passed: (bytes, len, caplen, vlan).
type Got = (Vec<u8>, u32, u32, Option<u16>);

fn recv_n<S: Socket>(sock: &S, n: usize, timeout: Duration) -> Result<Vec<Got>, String> {
    let deadline = Instant::now() + timeout;
    let mut got = vec![];
    while got.len() < n && Instant::now() < deadline {
        match sock.recv() {
            Ok((p, m)) => {
                if frames::is_test_frame(&p) {
                    got.push((p.to_vec(), m.len(), m.caplen(), m.vlan()));
                }
            }
            Err(Error::NoPacket) => std::thread::yield_now(),
            Err(e) => return Err(format!("recv after {} frames: {e}", got.len())),
        }
    }
    Ok(got)
}

/// Sends `frames` from the peer in chunks, receiving each chunk with `sock` before the next.
fn peer_to_sock<S: Socket>(
    peer: &RawPeer,
    sock: &S,
    frames: &[Vec<u8>],
) -> Result<Vec<Got>, String> {
    let mut got = vec![];
    for chunk in frames.chunks(16) {
        for f in chunk {
            peer.send(f)
                .map_err(|e| format!("peer send on {}: {e}", peer.ifname()))?;
        }
        let g = recv_n(sock, chunk.len(), WAIT)?;
        let short = g.len() < chunk.len();
        got.extend(g);
        if short {
            break;
        }
    }
    Ok(got)
}

fn compare(sent: &[Vec<u8>], got: &[Vec<u8>]) -> Result<(), String> {
    if got.len() != sent.len() {
        return Err(format!("{} of {} frames arrived", got.len(), sent.len()));
    }
    for (i, (s, g)) in sent.iter().zip(got).enumerate() {
        if s != g {
            let at = s.iter().zip(g.iter()).position(|(a, b)| a != b);
            return Err(format!(
                "frame {i} ({} bytes sent) differs from the wire frame: {} bytes arrived, first \
                 difference at byte {at:?}",
                s.len(),
                g.len()
            ));
        }
    }
    Ok(())
}

fn with_peer<R>(
    pair: &NetPair,
    f: impl FnOnce(&RawPeer) -> Result<R, String>,
) -> Result<R, String> {
    let peer = pair
        .in_b(|| RawPeer::open(&pair.veth_b))
        .map_err(|e| format!("peer on {}: {e}", pair.veth_b))?;
    f(&peer)
}

// ---------------------------------------------------------------------------------------------
// Cases

/// Frames from the peer arrive exactly: bytes equal the wire frame (tags included), `len()`
/// and `caplen()` equal its length, `vlan()` names the tag.
fn rx_exact<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let sent = delivery_set(0, 8);
            let got = peer_to_sock(peer, &sock, &sent)?;
            let bytes: Vec<Vec<u8>> = got.iter().map(|g| g.0.clone()).collect();
            compare(&sent, &bytes)?;
            for (i, (f, len, caplen, vlan)) in got.iter().enumerate() {
                if *len as usize != f.len() || *caplen as usize != f.len() {
                    return Err(format!(
                        "frame {i}: len() {len}, caplen() {caplen}, frame {} bytes",
                        f.len()
                    ));
                }
                let want = frames::outer_vlan_of(f);
                if *vlan != want {
                    return Err(format!(
                        "frame {i}: vlan() {vlan:?}, the frame's tag {want:?}"
                    ));
                }
            }
            finish::<B>(&sock)
        })
    })
}

/// On a link of MTU 9000, frames of 9000, MTU + 14 and (802.1Q-tagged) MTU + 18 bytes, with
/// small ones between them, arrive whole both ways: content exact, `len()` = `caplen()` = the
/// frame's length; `capabilities().max_frame` says MTU + 14.
fn jumbo<B: Backend>(pair: &NetPair) -> CaseResult {
    if let Err(why) = B::jumbo_flags() {
        return Ok(Verdict::NotApplicable(why));
    }
    let set = |first: u32| {
        let mut v = vec![];
        for (i, &(len, tagged)) in [
            (9000, false),
            (60, false),
            (JUMBO_MTU + 14, false),
            (4000, false),
            (JUMBO_MTU + 18, true),
            (1514, false),
        ]
        .iter()
        .cycle()
        .take(24)
        .enumerate()
        {
            let seq = first + i as u32;
            v.push(if tagged {
                frames::tagged(seq, len, VLAN)
            } else {
                frames::frame(seq, len)
            });
        }
        v
    };
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::jumbo_flags()?)?;
            let max = sock.capabilities().max_frame;
            if max != JUMBO_MTU + 14 {
                return Err(format!(
                    "capabilities().max_frame {max} on an MTU {JUMBO_MTU} link (want {})",
                    JUMBO_MTU + 14
                ));
            }
            let sent = set(0);
            let got = peer_to_sock(peer, &sock, &sent)?;
            let bytes: Vec<Vec<u8>> = got.iter().map(|g| g.0.clone()).collect();
            compare(&sent, &bytes).map_err(|e| format!("receive: {e}"))?;
            for (i, (f, len, caplen, _)) in got.iter().enumerate() {
                if *len as usize != f.len() || *caplen as usize != f.len() {
                    return Err(format!(
                        "frame {i}: len() {len}, caplen() {caplen}, frame {} bytes",
                        f.len()
                    ));
                }
            }
            drop(bytes);
            let sent = set(5000);
            let mut got = vec![];
            for f in &sent {
                send_retry(&sock, f)?;
                sock.try_flush().map_err(|e| format!("try_flush: {e}"))?;
                let deadline = Instant::now() + WAIT;
                while got.len() < sent.len() && Instant::now() < deadline {
                    match peer.recv(Duration::from_millis(50)) {
                        Some(f) if frames::is_test_frame(&f) => {
                            got.push(f);
                            break;
                        }
                        _ => sock.flush(),
                    }
                }
            }
            compare(&sent, &got).map_err(|e| format!("send: {e}"))?;
            finish::<B>(&sock)
        })
    })
}

/// Frames sent with `send` + `flush` arrive at the peer exactly as given.
fn tx_exact<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let sent = delivery_set(1000, 8);
            let mut got = vec![];
            for chunk in sent.chunks(16) {
                for f in chunk {
                    send_retry(&sock, f)?;
                }
                sock.try_flush().map_err(|e| format!("try_flush: {e}"))?;
                let deadline = Instant::now() + WAIT;
                let want = got.len() + chunk.len();
                while got.len() < want && Instant::now() < deadline {
                    match peer.recv(Duration::from_millis(50)) {
                        Some(f) if frames::is_test_frame(&f) => got.push(f),
                        _ => sock.flush(),
                    }
                }
            }
            compare(&sent, &got)?;
            let st = sock.stats().map_err(|e| format!("stats: {e}"))?;
            if st.sent != sent.len() as u64 || st.send_errors != 0 {
                return Err(format!(
                    "stats after {} frames sent: sent {}, send_errors {}",
                    sent.len(),
                    st.sent,
                    st.send_errors
                ));
            }
            finish::<B>(&sock)
        })
    })
}

fn send_retry<S: Socket>(sock: &S, f: &[u8]) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match sock.send(f) {
            Ok(()) => return Ok(()),
            Err(Error::NoMemory) if Instant::now() < deadline => {
                sock.flush();
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(format!("send of {} bytes: {e}", f.len())),
        }
    }
}

/// A frame over the link's limit gets `TooBigPacket` from `send` (MTU + 14 untagged,
/// MTU + 18 tagged), and `capabilities().max_frame` says MTU + 14.
fn oversize<B: Backend>(pair: &NetPair) -> CaseResult {
    pair.in_a(|| {
        let sock = open::<B>(&pair.veth_a, B::flags())?;
        let caps = sock.capabilities();
        if caps.max_frame != MTU + 14 {
            return Err(format!(
                "capabilities().max_frame {} on an MTU {MTU} link (want {})",
                caps.max_frame,
                MTU + 14
            ));
        }
        for f in [
            frames::frame(1, MTU + 15),
            frames::tagged(2, MTU + 19, VLAN),
            frames::frame(3, 9000),
        ] {
            match sock.send(&f) {
                Err(Error::TooBigPacket(n)) if n == f.len() => {}
                other => {
                    return Err(format!(
                        "send of {} bytes ({}): {other:?}, want TooBigPacket({})",
                        f.len(),
                        if frames::outer_vlan_of(&f).is_some() {
                            "tagged"
                        } else {
                            "untagged"
                        },
                        f.len()
                    ))
                }
            }
        }
        finish::<B>(&sock)
    })
}

/// A frame shorter than an Ethernet header gets `TooSmallPacket` from `send`; 14 bytes pass.
fn undersize<B: Backend>(pair: &NetPair) -> CaseResult {
    pair.in_a(|| {
        let sock = open::<B>(&pair.veth_a, B::flags())?;
        for n in [0usize, 5, 13] {
            let f = vec![0x02u8; n];
            match sock.send(&f) {
                Err(Error::TooSmallPacket(m)) if m == n => {}
                other => return Err(format!("send of {n} bytes: {other:?}, want TooSmallPacket")),
            }
        }
        let mut f = frames::frame(0, 18);
        f.truncate(14);
        sock.send(&f)
            .map_err(|e| format!("send of a 14-byte frame: {e}"))?;
        sock.try_flush()
            .map_err(|e| format!("try_flush after a 14-byte frame: {e}"))?;
        if sock.capabilities().min_frame != 14 {
            return Err(format!(
                "capabilities().min_frame {}",
                sock.capabilities().min_frame
            ));
        }
        finish::<B>(&sock)
    })
}

/// With every buffer held, `recv` says `NoMemory` (not `NoPacket` while frames are lost),
/// and receives again once the buffers are released.
fn pool_exhaustion<B: Backend>(pair: &NetPair) -> CaseResult {
    if B::small_pool_flags(64).is_none() {
        return Ok(Verdict::NotApplicable(
            "the receive pool size cannot be set".into(),
        ));
    }
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let flags = B::small_pool_flags(64).ok_or("small_pool_flags changed its mind")?;
            let sock = open::<B>(&pair.veth_a, flags)?;
            let ctx = sock.context().clone();
            let mut held = vec![];
            let mut seq = 0u32;
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut saw_nomem = false;
            'outer: while Instant::now() < deadline && seq < 20_000 {
                for _ in 0..32 {
                    peer.send(&frames::frame(seq, 64))
                        .map_err(|e| format!("peer send: {e}"))?;
                    seq += 1;
                }
                let until = Instant::now() + Duration::from_millis(20);
                while Instant::now() < until {
                    match sock.recv_token() {
                        Ok((t, _)) => held.push(t),
                        Err(Error::NoPacket) => std::thread::yield_now(),
                        Err(Error::NoMemory) => {
                            saw_nomem = true;
                            break 'outer;
                        }
                        Err(e) => return Err(format!("recv with {} held: {e}", held.len())),
                    }
                }
            }
            let n_held = held.len();
            for t in held.drain(..) {
                drop(t.consume(&ctx));
            }
            if !saw_nomem {
                return Err(format!(
                    "{n_held} buffers held after {seq} frames sent, and recv never said NoMemory"
                ));
            }
            if n_held == 0 {
                return Err("NoMemory before any packet was received".into());
            }
            // Recovery: frames sent now arrive.
            let deadline = Instant::now() + WAIT;
            let mut again = 0;
            while again == 0 && Instant::now() < deadline {
                peer.send(&frames::frame(seq, 64))
                    .map_err(|e| format!("peer send: {e}"))?;
                seq += 1;
                let until = Instant::now() + Duration::from_millis(20);
                while Instant::now() < until {
                    match sock.recv() {
                        Ok((p, _)) if frames::is_test_frame(&p) => again += 1,
                        Ok(_) | Err(Error::NoPacket) | Err(Error::NoMemory) => {
                            std::thread::yield_now()
                        }
                        Err(e) => return Err(format!("recv after release: {e}")),
                    }
                }
            }
            if again == 0 {
                return Err(format!(
                    "no packet received within {WAIT:?} after releasing {n_held} buffers"
                ));
            }
            finish::<B>(&sock)
        })
    })
}

/// Tokens received on the socket's thread are consumed on another thread with a clone of
/// the context; their bytes are intact and the socket keeps receiving.
fn token_threads<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let sent: Vec<Vec<u8>> = (0..32).map(|i| frames::frame(i, 128)).collect();
            let (tx, rx) = mpsc::channel();
            let ctx = sock.context().clone();
            let consumer = std::thread::spawn(move || {
                let mut got = vec![];
                while let Ok(t) = rx.recv_timeout(WAIT) {
                    let t: nethuns_core::Token = t;
                    let p = t.consume(&ctx);
                    got.push(p.to_vec());
                    if got.len() == 32 {
                        break;
                    }
                }
                got
            });
            for f in &sent {
                peer.send(f).map_err(|e| format!("peer send: {e}"))?;
            }
            let deadline = Instant::now() + WAIT;
            let mut n = 0;
            while n < sent.len() && Instant::now() < deadline {
                match sock.recv_token() {
                    Ok((t, _)) => {
                        n += 1;
                        tx.send(t).map_err(|_| "consumer gone".to_string())?;
                    }
                    Err(Error::NoPacket) => std::thread::yield_now(),
                    Err(e) => return Err(format!("recv_token: {e}")),
                }
            }
            drop(tx);
            let got: Vec<Vec<u8>> = consumer
                .join()
                .map_err(|_| "consumer thread panicked".to_string())?
                .into_iter()
                .filter(|f| frames::is_test_frame(f))
                .collect();
            compare(&sent, &got)?;
            let more = peer_to_sock(peer, &sock, &[frames::frame(99, 64)])?;
            if more.len() != 1 {
                return Err("no packet after the tokens were consumed elsewhere".into());
            }
            finish::<B>(&sock)
        })
    })
}

/// A token presented to another context is refused (`check_token` false, `try_consume`
/// hands it back) and still consumed by its own.
fn foreign_token<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let foreign = PoolContext::new(1, 64);
            peer.send(&frames::frame(5, 64))
                .map_err(|e| format!("peer send: {e}"))?;
            let deadline = Instant::now() + WAIT;
            let token = loop {
                match sock.recv_token() {
                    Ok((t, _)) => break t,
                    Err(Error::NoPacket) if Instant::now() < deadline => std::thread::yield_now(),
                    Err(e) => return Err(format!("recv_token: {e}")),
                }
            };
            if token.check_token(&foreign) {
                return Err("check_token accepted a foreign context".into());
            }
            if !token.check_token(sock.context()) {
                return Err("check_token refused the token's own context".into());
            }
            let token = match token.try_consume(&foreign) {
                Ok(_) => return Err("try_consume accepted a foreign context".into()),
                Err(f) => f.token,
            };
            let p = token.consume(sock.context());
            if p.is_empty() {
                return Err("empty payload".into());
            }
            drop(p);
            finish::<B>(&sock)
        })
    })
}

/// `create_with_channel` over the spec's `flume::bounded`: batches of tokens pushed on the
/// socket's thread come out in order as payloads on another.
fn channel<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let (sock, mut pusher, popper) = B::S::create_with_channel::<8>(
                &B::portspec(&pair.veth_a),
                B::queue(),
                B::flags(),
                nethuns_core::flume::bounded(4),
            )
            .map_err(|e| format!("create_with_channel: {e}"))?;
            let consumer = std::thread::spawn(move || {
                let mut got = vec![];
                while let Some(batch) = popper.pop() {
                    for p in batch {
                        if frames::is_test_frame(&p) {
                            got.push(p.to_vec());
                        }
                    }
                }
                got
            });
            let sent: Vec<Vec<u8>> = (0..60).map(|i| frames::frame(i, 100)).collect();
            let mut n = 0;
            for chunk in sent.chunks(16) {
                for f in chunk {
                    peer.send(f).map_err(|e| format!("peer send: {e}"))?;
                }
                let deadline = Instant::now() + WAIT;
                let want = n + chunk.len();
                while n < want && Instant::now() < deadline {
                    match sock.recv_token() {
                        Ok((t, _)) => {
                            n += 1;
                            pusher
                                .push_token(t)
                                .map_err(|e| format!("push_token: {e}"))?;
                        }
                        Err(Error::NoPacket) => std::thread::yield_now(),
                        Err(e) => return Err(format!("recv_token: {e}")),
                    }
                }
            }
            pusher.flush().map_err(|e| format!("pusher flush: {e}"))?;
            drop(pusher);
            let got = consumer
                .join()
                .map_err(|_| "consumer thread panicked".to_string())?;
            compare(&sent, &got)?;
            finish::<B>(&sock)
        })
    })
}

/// After `ip link del`, `recv` returns `InterfaceDown` within 100 ms (never `NoPacket`
/// forever), and keeps returning an error rather than hanging.
fn link_deleted<B: Backend>(pair: &NetPair) -> CaseResult {
    pair.in_a(|| {
        let sock = open::<B>(&pair.veth_a, B::flags())?;
        for _ in 0..100 {
            match sock.recv() {
                Ok(_) | Err(Error::NoPacket) => {}
                Err(e) => return Err(format!("recv before the deletion: {e}")),
            }
        }
        let fd = sock.capabilities().pollable_fd;
        pair.ip_a(&["link", "del", &pair.veth_a])?;
        let t0 = Instant::now();
        if let Some(fd) = fd {
            // A thread waiting in poll(2) on the socket wakes up: it does not sleep its
            // whole timeout on a dead interface.
            let r = nethuns_sys_linux::netdev::poll_raw(fd, libc::POLLIN, 1000);
            let waited = t0.elapsed();
            if !matches!(r, Ok(revents) if revents != 0) || waited > Duration::from_millis(100) {
                return Err(format!(
                    "poll on the socket's fd after the deletion: revents {r:?}, after \
                     {waited:?} (want a wake-up within 100 ms)"
                ));
            }
        }
        loop {
            match sock.recv() {
                Ok(_) | Err(Error::NoPacket) => {}
                Err(Error::InterfaceDown(_)) => break,
                Err(e) => {
                    return Err(format!(
                        "recv after the deletion: {e} (want InterfaceDown) after {:?}",
                        t0.elapsed()
                    ))
                }
            }
            if t0.elapsed() > Duration::from_secs(2) {
                return Err("recv still says NoPacket 2 s after the interface was deleted".into());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let took = t0.elapsed();
        if took > Duration::from_millis(100) {
            return Err(format!(
                "InterfaceDown came {took:?} after the deletion (limit 100 ms)"
            ));
        }
        match sock.recv() {
            Err(Error::InterfaceDown(_)) => {}
            other => {
                return Err(format!(
                    "second recv after the deletion: {:?}",
                    other.map(|_| ())
                ))
            }
        }
        Ok(Verdict::Pass)
    })
}

/// Link down, then up: the socket receives again without being reopened.
fn link_down_up<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let first = peer_to_sock(peer, &sock, &[frames::frame(0, 64)])?;
            if first.len() != 1 {
                return Err("nothing received before the link went down".into());
            }
            pair.ip_a(&["link", "set", &pair.veth_a, "down"])?;
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                match sock.recv() {
                    Ok(_) | Err(Error::NoPacket) | Err(Error::InterfaceDown(_)) => {}
                    Err(e) => return Err(format!("recv while down: {e}")),
                }
            }
            pair.ip_a(&["link", "set", &pair.veth_a, "up"])?;
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut seq = 1;
            loop {
                let _ = peer.send(&frames::frame(seq, 64));
                seq += 1;
                let until = Instant::now() + Duration::from_millis(20);
                while Instant::now() < until {
                    match sock.recv() {
                        Ok((p, _)) if frames::is_test_frame(&p) => {
                            drop(p);
                            return finish::<B>(&sock);
                        }
                        Ok(_) | Err(Error::NoPacket) | Err(Error::InterfaceDown(_)) => {
                            std::thread::yield_now()
                        }
                        Err(e) => return Err(format!("recv after the link came up: {e}")),
                    }
                }
                if Instant::now() > deadline {
                    return Err("no packet within 5 s of the link coming back up".into());
                }
            }
        })
    })
}

/// A tcpdump filter expression selects exactly the frames `tcpdump -i` selects on the same
/// interface at the same time (on Linux that is not what `tcpdump -r` selects from the wire
/// frames: with the kernel holding VLAN tags out of band, `tcp` also matches tagged TCP).
fn filter<B: Backend>(pair: &NetPair) -> CaseResult {
    if B::filter_flags("tcp").is_none() {
        return Ok(Verdict::NotApplicable(
            "the backend takes no filters".into(),
        ));
    }
    let mut set = vec![];
    let mut id = 1u16;
    for _ in 0..10 {
        for (proto, vlan) in [
            (6, None),
            (6, Some(VLAN)),
            (6, Some(9)),
            (17, None),
            (17, Some(VLAN)),
        ] {
            set.push(frames::ipv4(id, proto, vlan));
            id += 1;
        }
    }
    with_peer(pair, |peer| {
        for expr in ["vlan and tcp", "tcp", "vlan 7", "not vlan"] {
            let dump = Tcpdump::start(pair, expr)?;
            let got = pair.in_a(|| -> Result<Vec<u16>, String> {
                let flags =
                    B::filter_flags(expr).ok_or(format!("filter_flags({expr:?}) is None"))?;
                let sock = open::<B>(&pair.veth_a, flags)?;
                for f in &set {
                    peer.send(f).map_err(|e| format!("peer send: {e}"))?;
                }
                let mut ids = vec![];
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until {
                    match sock.recv() {
                        Ok((p, _)) => ids.extend(frames::ipv4_id(&p)),
                        Err(Error::NoPacket) => std::thread::yield_now(),
                        Err(e) => return Err(format!("recv with filter {expr:?}: {e}")),
                    }
                }
                B::check(&sock)?;
                Ok(ids)
            })?;
            let mut want = dump.stop()?;
            if want.is_empty() {
                return Err(format!("tcpdump -i printed no frame for {expr:?}"));
            }
            want.sort_unstable();
            let mut got = got;
            got.sort_unstable();
            if got != want {
                return Err(format!(
                    "filter {expr:?} selected {} frames, tcpdump -i {}: ids {got:?} vs {want:?}",
                    got.len(),
                    want.len()
                ));
            }
        }
        Ok(Verdict::Pass)
    })
}

/// `tcpdump -i veth_a -v EXPR` running in namespace a, stopped (by its pid) on drop.
struct Tcpdump {
    child: std::process::Child,
    out: std::sync::mpsc::Receiver<String>,
}

impl Tcpdump {
    fn start(pair: &NetPair, expr: &str) -> Result<Tcpdump, String> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut args = vec![
            "netns",
            "exec",
            &pair.ns_a,
            "tcpdump",
            "-i",
            &pair.veth_a,
            "-nn",
            "-v",
            "-l",
            "--immediate-mode",
            "-Q",
            "in",
        ];
        args.extend(expr.split(' '));
        let mut child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting tcpdump: {e}"))?;
        let (tx, out) = mpsc::channel();
        let stdout = child.stdout.take().ok_or("tcpdump without stdout")?;
        let stderr = child.stderr.take().ok_or("tcpdump without stderr")?;
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
            {
                let _ = tx.send(l);
            }
        });
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stderr)
                .lines()
                .map_while(|l| l.ok())
            {
                if l.contains("listening on") {
                    let _ = ready_tx.send(());
                }
                let _ = tx2.send(format!("stderr: {l}"));
            }
        });
        let mut dump = Tcpdump { child, out };
        if ready.recv_timeout(Duration::from_secs(5)).is_err() {
            let _ = dump.child.kill();
            let msgs: Vec<String> = dump.out.try_iter().collect();
            return Err(format!(
                "tcpdump -i {} {expr:?} did not start: {msgs:?}",
                pair.veth_a
            ));
        }
        Ok(dump)
    }

    /// Stops tcpdump and returns the IP ids of the frames it printed.
    fn stop(mut self) -> Result<Vec<u16>, String> {
        std::thread::sleep(Duration::from_millis(100));
        crate::sys::terminate(&self.child);
        let _ = self.child.wait();
        let mut ids = vec![];
        // Both reader threads end when tcpdump's pipes close.
        while let Ok(l) = self.out.recv_timeout(Duration::from_secs(2)) {
            if let Some(rest) = l.split(", id ").nth(1) {
                if let Some(n) = rest.split(',').next().and_then(|n| n.parse::<u16>().ok()) {
                    ids.push(n);
                }
            }
        }
        Ok(ids)
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A savefile replays exactly, then `recv` says `Eof` (and again on the next call).
fn savefile_eof<B: Backend>() -> CaseResult {
    let dir = std::env::temp_dir().join(format!("nethuns-conf-{}-{}", std::process::id(), B::NAME));
    let file = dir.join("eof.pcap");
    let Some(spec) = B::savefile_portspec(&file.to_string_lossy()) else {
        return Ok(Verdict::NotApplicable(
            "the backend reads no savefiles".into(),
        ));
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sent = delivery_set(0, 4);
    frames::write_savefile(&file, &sent, 1_700_000_000)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let r = (|| {
        let sock =
            B::S::create(&spec, None, B::flags()).map_err(|e| format!("create {spec}: {e}"))?;
        let mut got = vec![];
        let deadline = Instant::now() + WAIT;
        loop {
            match sock.recv() {
                Ok((p, m)) => {
                    if m.timestamp() != Some((1_700_000_000 + got.len() as u64) * 1_000_000_000) {
                        return Err(format!(
                            "frame {}: timestamp {:?}",
                            got.len(),
                            m.timestamp()
                        ));
                    }
                    got.push(p.to_vec());
                }
                Err(Error::Eof) => break,
                Err(Error::NoPacket) if Instant::now() < deadline => {}
                Err(e) => return Err(format!("recv after {} frames: {e} (want Eof)", got.len())),
            }
        }
        compare(&sent, &got)?;
        match sock.recv() {
            Err(Error::Eof) => {}
            other => return Err(format!("recv after Eof: {:?}", other.map(|_| ()))),
        }
        finish::<B>(&sock)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// `stats()` counts exactly what was received and sent.
fn stats<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let sent: Vec<Vec<u8>> = (0..100).map(|i| frames::frame(i, 80)).collect();
            let got = peer_to_sock(peer, &sock, &sent)?;
            if got.len() != sent.len() {
                return Err(format!("{} of {} frames arrived", got.len(), sent.len()));
            }
            let st = sock.stats().map_err(|e| format!("stats: {e}"))?;
            if st.received != 100 {
                return Err(format!("stats().received {} after 100 frames", st.received));
            }
            if let Some(d) = st.dropped {
                if d != 0 {
                    return Err(format!("stats().dropped {d} with nothing lost"));
                }
            }
            for f in sent.iter().take(50) {
                send_retry(&sock, f)?;
            }
            sock.try_flush().map_err(|e| format!("try_flush: {e}"))?;
            let st = sock.stats().map_err(|e| format!("stats: {e}"))?;
            if st.sent != 50 || st.send_errors != 0 {
                return Err(format!(
                    "stats after 50 sends: sent {}, send_errors {}",
                    st.sent, st.send_errors
                ));
            }
            finish::<B>(&sock)
        })
    })
}

/// In debug builds, releasing a buffer twice (possible only through `unsafe`) panics naming
/// the buffer, before the engine's free list, fill ring or mempool is touched.
fn double_release<B: Backend>(pair: &NetPair) -> CaseResult {
    if !cfg!(debug_assertions) {
        return Ok(Verdict::NotApplicable(
            "the double-release check is a debug-build check".into(),
        ));
    }
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            peer.send(&frames::frame(1, 64))
                .map_err(|e| format!("peer send: {e}"))?;
            let deadline = Instant::now() + WAIT;
            let (p, _) = loop {
                match sock.recv() {
                    Ok(r) => break r,
                    Err(Error::NoPacket) if Instant::now() < deadline => std::thread::yield_now(),
                    Err(e) => return Err(format!("recv: {e}")),
                }
            };
            let desc = p.buffer_desc();
            // SAFETY: none — this is the misuse under test. The buffer is released once here
            // and a second time when `p` drops; the check must panic at the second release,
            // before the engine sees it.
            unsafe { nethuns_core::Context::release(sock.context(), desc) };
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(p)));
            std::panic::set_hook(hook);
            match r {
                Ok(()) => Err("a double release did not panic".into()),
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    if msg.contains("released twice") && msg.contains(&format!("{:#x}", desc.get()))
                    {
                        Ok(Verdict::Pass)
                    } else {
                        Err(format!(
                            "the double-release panic does not name the buffer: {msg:?}"
                        ))
                    }
                }
            }
        })
    })
}
