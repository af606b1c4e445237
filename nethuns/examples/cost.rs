//! `cost`: the nethuns side of `cargo xtask bench --cost`, the same shape as the raw engine
//! loops' `--mode cost-*` (xtask/raw/raw_common.h), run under callgrind.
//!
//! - `--mode rx`: sets up, prints `ready`, waits for a line on stdin (the traffic is queued
//!   in the ring meanwhile), then `cost_drain` receives `--count` packets and `cost_empty`
//!   makes `--polls` polls of the empty ring.
//! - `--mode tx`: `tx_loop` sends `--count` frames, a flush every 32 (as `pkt-gen`).
//! - `--mode loop`: a loopback port (DPDK `net_ring0`): `--count` frames sent and drained in
//!   rounds of 512, then the empty polls.
//! - `--mode fwd`: as `rx`, but `cost_fwd` sends each received packet back on the same
//!   socket: `send_payload` (zero-copy where the engine can), or `send` with `--copy`.
//! - `--mode loop-fwd`: as `loop`, each round's frames forwarded once (`cost_fwd`) before
//!   they are drained.
//!
//! `--batch` receives with `recv_batch` and sends with `send_batch`; `--send-with` sends with
//! `send_with` (the frame written in place).
//!
//! Each phase is its own function, never inlined, so callgrind reports its instructions. One
//! JSON line at the end:
//! `{"packets":N,"drain_empty":N,"polls":N,"late":N,"bytes":N,"seconds":F}` (seconds: of the
//! loopback rounds).

mod common;

use std::io::{BufRead, Write};

use clap::Parser;
use nethuns::api::Socket;
use nethuns::errors::Error;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Rx,
    Tx,
    Loop,
    Fwd,
    LoopFwd,
}

#[derive(Parser, Debug)]
#[command(about = "The abstraction-cost loops (run under callgrind)")]
struct Args {
    /// Engine.
    #[arg(long, value_enum, default_value = "pcap")]
    backend: common::Backend,
    /// Portspec: interface name, or the backend's port form.
    #[arg(long)]
    iface: String,
    /// What to measure.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Packets to receive or send.
    #[arg(long, default_value_t = 1024)]
    count: u64,
    /// Empty polls measured after the drain.
    #[arg(long, default_value_t = 10_000)]
    polls: u64,
    /// Frame size (tx, loop).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Receive with `recv_batch` (bursts of 32) instead of `recv`; send with `send_batch`.
    #[arg(long)]
    batch: bool,
    /// Send with `send_with` (the frame written in place) instead of `send`.
    #[arg(long)]
    send_with: bool,
    /// Forward with `send` (a copy) instead of `send_payload`.
    #[arg(long)]
    copy: bool,
}

/// Packets per `recv_batch` / `send_batch` call.
const BATCH: usize = 32;

/// [`cost_drain`] with `recv_batch`: one call per burst of up to [`BATCH`]; an empty burst
/// counts as one empty poll.
#[inline(never)]
fn cost_drain_batch<S: Socket>(sock: &S, n: u64, bytes: &mut u64) -> Result<(u64, u64), String> {
    let mut buf = nethuns::batch::buffer::<S::Metadata, BATCH>();
    let (mut got, mut empty, mut idle) = (0u64, 0u64, 0u64);
    while got < n && idle < GIVEUP {
        let burst = sock
            .recv_batch(&mut buf)
            .map_err(|e| format!("recv_batch: {e}"))?;
        if burst.is_empty() {
            empty += 1;
            idle += 1;
            continue;
        }
        idle = 0;
        for (payload, _meta) in burst {
            got += 1;
            *bytes += payload.len() as u64;
        }
    }
    Ok((got, empty))
}

/// [`cost_empty`] with `recv_batch`.
#[inline(never)]
fn cost_empty_batch<S: Socket>(sock: &S, polls: u64) -> Result<u64, String> {
    let mut buf = nethuns::batch::buffer::<S::Metadata, BATCH>();
    let mut late = 0;
    for _ in 0..polls {
        late += sock
            .recv_batch(&mut buf)
            .map_err(|e| format!("recv_batch: {e}"))?
            .len() as u64;
    }
    Ok(late)
}

/// [`tx_loop`] with `send_batch`: bursts of [`BATCH`] frames (one buffer per frame of the
/// burst, each numbered), retried while the transmit side is full.
#[inline(never)]
fn tx_loop_batch<S: Socket>(sock: &S, f: &mut [u8], seq: u64, n: u64) -> Result<u64, String> {
    let mut frames = vec![f.to_vec(); BATCH];
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(BATCH as u64) as usize;
        for (i, fr) in frames[..k].iter_mut().enumerate() {
            common::set_seq(fr, seq + sent + i as u64);
        }
        let refs: [&[u8]; BATCH] = std::array::from_fn(|i| frames[i].as_slice());
        match sock.send_batch(&refs[..k]) {
            Ok(q) => sent += q as u64,
            Err(Error::NoMemory) | Err(Error::NoPacket) => {}
            Err(e) => return Err(format!("send_batch: {e}")),
        }
    }
    Ok(sent)
}

/// Dispatches on `--batch`.
fn drain<S: Socket>(a: &Args, sock: &S, n: u64, bytes: &mut u64) -> Result<(u64, u64), String> {
    if a.batch {
        cost_drain_batch(sock, n, bytes)
    } else {
        cost_drain(sock, n, bytes)
    }
}

fn empty_polls<S: Socket>(a: &Args, sock: &S) -> Result<u64, String> {
    if a.batch {
        cost_empty_batch(sock, a.polls)
    } else {
        cost_empty(sock, a.polls)
    }
}

fn send_n<S: Socket>(a: &Args, sock: &S, f: &mut [u8], seq: u64, n: u64) -> Result<u64, String> {
    if a.batch {
        tx_loop_batch(sock, f, seq, n)
    } else if a.send_with {
        tx_loop_send_with(sock, f, seq, n)
    } else {
        tx_loop(sock, f, seq, n)
    }
}

fn forward<S: Socket>(a: &Args, sock: &S, n: u64, bytes: &mut u64) -> Result<Fwd, String> {
    if a.copy {
        cost_fwd::<S, true>(sock, n, bytes)
    } else {
        cost_fwd::<S, false>(sock, n, bytes)
    }
}

/// What [`cost_fwd`] did.
struct Fwd {
    got: u64,
    empty: u64,
    sent: u64,
}

/// Receives until `n` packets came (as [`cost_drain`]) and sends each back on the same
/// socket as it comes: `send_payload` (`COPY`: `send`), a flush every 32 and at the end. A
/// packet the transmit side has no room for is dropped after a flush.
#[inline(never)]
fn cost_fwd<S: Socket, const COPY: bool>(sock: &S, n: u64, bytes: &mut u64) -> Result<Fwd, String> {
    let (mut got, mut empty, mut idle, mut sent, mut pending) = (0u64, 0u64, 0u64, 0u64, 0u64);
    while got < n && idle < GIVEUP {
        match sock.recv() {
            Ok((payload, _meta)) => {
                got += 1;
                idle = 0;
                *bytes += payload.len() as u64;
                let r = if COPY {
                    sock.send(&payload)
                } else {
                    sock.send_payload(payload).map_err(|u| u.error)
                };
                match r {
                    Ok(()) => {
                        sent += 1;
                        pending += 1;
                    }
                    Err(Error::NoMemory) => pending = 32,
                    Err(e) => return Err(format!("send: {e}")),
                }
                if pending >= 32 {
                    sock.flush();
                    pending = 0;
                }
            }
            Err(Error::NoPacket) => {
                empty += 1;
                idle += 1;
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    sock.flush();
    Ok(Fwd { got, empty, sent })
}

/// Consecutive empty polls after which the drain gives up (frames lost before the ring).
const GIVEUP: u64 = 100_000;

/// Receives until `n` packets came (or [`GIVEUP`] empty polls in a row); returns the packets
/// and the empty polls among the calls.
#[inline(never)]
fn cost_drain<S: Socket>(sock: &S, n: u64, bytes: &mut u64) -> Result<(u64, u64), String> {
    let (mut got, mut empty, mut idle) = (0u64, 0u64, 0u64);
    while got < n && idle < GIVEUP {
        match sock.recv() {
            Ok((payload, _meta)) => {
                got += 1;
                idle = 0;
                *bytes += payload.len() as u64;
            }
            Err(Error::NoPacket) => {
                empty += 1;
                idle += 1;
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    Ok((got, empty))
}

/// `polls` polls; returns the packets that came anyway (0 expected).
#[inline(never)]
fn cost_empty<S: Socket>(sock: &S, polls: u64) -> Result<u64, String> {
    let mut late = 0;
    for _ in 0..polls {
        match sock.recv() {
            Ok(_) => late += 1,
            Err(Error::NoPacket) => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    Ok(late)
}

/// Sends `n` frames numbered from `seq`, as `pkt-gen`: a flush every 32 and when the
/// transmit side is full; a flush at the end.
#[inline(never)]
fn tx_loop<S: Socket>(sock: &S, f: &mut [u8], seq: u64, n: u64) -> Result<u64, String> {
    tx_each(sock, n, "send", |i| {
        common::set_seq(f, seq + i);
        sock.send(f)
    })
}

/// [`tx_loop`] with `send_with`: each frame written in place (the template, then its
/// number).
#[inline(never)]
fn tx_loop_send_with<S: Socket>(sock: &S, f: &[u8], seq: u64, n: u64) -> Result<u64, String> {
    tx_each(sock, n, "send_with", |i| {
        sock.send_with(f.len(), |buf| {
            buf.copy_from_slice(f);
            common::set_seq(buf, seq + i);
        })
    })
}

/// The transmit loop around `one(i)`, which queues frame `i`: retried after a flush while
/// the transmit side is full, a flush every 32 and at the end.
#[inline(always)]
fn tx_each<S: Socket>(
    sock: &S,
    n: u64,
    what: &str,
    mut one: impl FnMut(u64) -> Result<(), Error>,
) -> Result<u64, String> {
    let mut sent = 0u64;
    while sent < n {
        match one(sent) {
            Ok(()) => sent += 1,
            Err(Error::NoMemory) | Err(Error::NoPacket) => {
                sock.flush();
                continue;
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
        if sent % 32 == 0 {
            sock.flush();
        }
    }
    sock.flush();
    Ok(sent)
}

fn wait_go() -> Result<(), String> {
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => Ok(()),
        _ => Err("stdin closed before the go line".into()),
    }
}

fn cost<S: Socket>(flags: S::Flags, a: &Args) -> Result<(), String> {
    let sock = S::create(&a.iface, None, flags).map_err(|e| e.to_string())?;
    let mut bytes = 0u64;
    let mut seconds = 0.0;
    let (got, empty, late, polls) = match a.mode {
        Mode::Rx => {
            wait_go()?;
            let (got, e) = drain(a, &sock, a.count, &mut bytes)?;
            (got, e, empty_polls(a, &sock)?, a.polls)
        }
        Mode::Tx => {
            let mut f = common::frame(0, a.size);
            (send_n(a, &sock, &mut f, 0, a.count)?, 0, 0, 0)
        }
        Mode::Fwd => {
            wait_go()?;
            let fwd = forward(a, &sock, a.count, &mut bytes)?;
            (fwd.got, fwd.empty, empty_polls(a, &sock)?, a.polls)
        }
        Mode::Loop | Mode::LoopFwd => {
            let mut f = common::frame(0, a.size);
            wait_go()?;
            let t0 = std::time::Instant::now();
            let (mut total, mut got, mut empty) = (0u64, 0u64, 0u64);
            while total < a.count {
                let k = (a.count - total).min(512);
                let sent = send_n(a, &sock, &mut f, total, k)?;
                let (g, e) = if a.mode == Mode::LoopFwd {
                    let fwd = forward(a, &sock, sent, &mut bytes)?;
                    // The forwarded frames come round again: drained before the next round.
                    drain(a, &sock, fwd.sent, &mut 0)?;
                    (fwd.got, fwd.empty)
                } else {
                    drain(a, &sock, sent, &mut bytes)?
                };
                got += g;
                empty += e;
                total += sent;
            }
            seconds = t0.elapsed().as_secs_f64();
            (got, empty, empty_polls(a, &sock)?, a.polls)
        }
    };
    println!("{{\"packets\":{got},\"drain_empty\":{empty},\"polls\":{polls},\"late\":{late},\"bytes\":{bytes},\"seconds\":{seconds:.6}}}");
    Ok(())
}

fn main() {
    let args = Args::parse();
    common::exit_on_error("cost", with_backend!(args.backend, cost(&args)));
}
