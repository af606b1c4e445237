//! The transmit-in-place cases: `send_with` puts on the wire exactly what its closure wrote,
//! under the size rule of `send`; `send_payload` transmits a received packet byte-identical
//! and leaks no buffer. Both run on every backend: natively where the engine has transmit
//! memory of its own, through the copying defaults of `Socket` elsewhere.

use std::time::{Duration, Instant};

use nethuns_core::pool::PoolContext;
use nethuns_core::{leaked_tokens, Context, Error, Payload, Socket};

use super::{compare, delivery_set, finish, open, with_peer, Backend, CaseResult, MTU, VLAN, WAIT};
use crate::peer::RawPeer;
use crate::{frames, NetPair};

/// `send_with` refuses what `send` refuses, with the same error (a length below 14 or above
/// any allowance before the closure runs, an untagged frame 1 byte too long after it), and
/// queues nothing it refused; the delivery set built in place arrives exactly, the closure
/// getting exactly the length asked for.
pub(super) fn send_with_exact<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            for n in [0usize, 5, 13] {
                let mut called = false;
                match sock.send_with(n, |_| called = true) {
                    Err(Error::TooSmallPacket(m)) if m == n && !called => {}
                    other => {
                        return Err(format!(
                            "send_with({n}): {other:?} (closure called: {called}), want \
                             TooSmallPacket({n}) without calling it"
                        ))
                    }
                }
            }
            for f in [
                frames::frame(1, MTU + 15),
                frames::tagged(2, MTU + 19, VLAN),
                frames::frame(3, 9000),
            ] {
                let by_send = format!("{:?}", sock.send(&f));
                let by_send_with =
                    format!("{:?}", sock.send_with(f.len(), |b| b.copy_from_slice(&f)));
                if by_send != by_send_with || !by_send.starts_with("Err(TooBigPacket") {
                    return Err(format!(
                        "a {}-byte frame: send {by_send}, send_with {by_send_with} (want the \
                         same TooBigPacket)",
                        f.len()
                    ));
                }
            }
            let sent = delivery_set(2000, 4);
            let mut got = vec![];
            for chunk in sent.chunks(16) {
                for f in chunk {
                    retry_no_memory(&sock, || {
                        let mut len = None;
                        let r = sock.send_with(f.len(), |b| {
                            len = Some(b.len());
                            b.copy_from_slice(f);
                        });
                        match len {
                            Some(l) if l != f.len() => Err(Error::Unsupported(format!(
                                "the closure got {l} bytes for a {}-byte frame",
                                f.len()
                            ))),
                            _ => r,
                        }
                    })
                    .map_err(|e| format!("send_with of a {}-byte frame: {e}", f.len()))?;
                }
                sock.try_flush().map_err(|e| format!("try_flush: {e}"))?;
                collect(peer, &sock, &mut got, chunk.len());
            }
            compare(&sent, &got).map_err(|e| format!("send_with: {e}"))?;
            let st = sock.stats().map_err(|e| format!("stats: {e}"))?;
            if st.sent != sent.len() as u64 {
                return Err(format!(
                    "stats after {} frames built in place: sent {}",
                    sent.len(),
                    st.sent
                ));
            }
            finish::<B>(&sock)
        })
    })
}

/// Frames from the peer, each received and given back to `send_payload`, arrive at the peer
/// byte-identical and in order; a payload of another context (a heap pool) is sent too and
/// its buffer goes back to its pool; no token leaks and the backend's check finds every
/// buffer back where it belongs.
pub(super) fn send_payload_forward<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let leaked = leaked_tokens();
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let sent = delivery_set(3000, 4);
            let mut got = vec![];
            let mut forwarded = std::collections::HashSet::new();
            for chunk in sent.chunks(16) {
                for f in chunk {
                    peer.send(f)
                        .map_err(|e| format!("peer send on {}: {e}", peer.ifname()))?;
                }
                let deadline = Instant::now() + WAIT;
                let mut n = 0;
                while n < chunk.len() && Instant::now() < deadline {
                    match sock.recv() {
                        Ok((p, _)) => {
                            // Only the peer's test frames, once each (an engine that also
                            // captures what this host sends sees them again).
                            let fresh = frames::is_test_frame(&p)
                                && frames::seq_of(&p).is_some_and(|s| forwarded.insert(s));
                            if fresh {
                                forward(&sock, p)?;
                                n += 1;
                            }
                        }
                        Err(Error::NoPacket) => std::thread::yield_now(),
                        Err(e) => return Err(format!("recv after {} frames: {e}", got.len())),
                    }
                }
                sock.try_flush().map_err(|e| format!("try_flush: {e}"))?;
                collect(peer, &sock, &mut got, n);
            }
            compare(&sent, &got).map_err(|e| format!("send_payload of received frames: {e}"))?;
            let pool = PoolContext::new(4, 2048);
            let f = frames::frame(3900, 64);
            let p = pool
                .alloc_payload(&f)
                .map_err(|e| format!("allocating a payload of a heap pool: {e}"))?;
            forward(&sock, p)?;
            sock.try_flush().map_err(|e| format!("try_flush: {e}"))?;
            let mut got = vec![];
            collect(peer, &sock, &mut got, 1);
            compare(&[f], &got).map_err(|e| format!("send_payload of a pool's payload: {e}"))?;
            if pool.free_buffers() != 4 {
                return Err(format!(
                    "the pool's payload was sent but its buffer not released: {} of 4 free",
                    pool.free_buffers()
                ));
            }
            if leaked_tokens() != leaked {
                return Err(format!(
                    "{} tokens leaked (process-wide) during the case",
                    leaked_tokens() - leaked
                ));
            }
            finish::<B>(&sock)
        })
    })
}

/// `send_payload`, retried after a flush while the transmit side is full.
fn forward<S: Socket, C: Context>(sock: &S, mut p: Payload<'_, C>) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match sock.send_payload(p) {
            Ok(()) => return Ok(()),
            Err(u) if matches!(u.error, Error::NoMemory) && Instant::now() < deadline => {
                p = u.payload;
                sock.flush();
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(u) => {
                return Err(format!(
                    "send_payload of {} bytes: {}",
                    u.payload.len(),
                    u.error
                ))
            }
        }
    }
}

/// `send` (any form), retried after a flush while the transmit side is full.
fn retry_no_memory<S: Socket>(
    sock: &S,
    mut f: impl FnMut() -> nethuns_core::Result<()>,
) -> nethuns_core::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        match f() {
            Err(Error::NoMemory) if Instant::now() < deadline => {
                sock.flush();
                std::thread::sleep(Duration::from_micros(200));
            }
            r => return r,
        }
    }
}

/// Receives at the peer until `got` has `n` more test frames or [`WAIT`] passed, flushing
/// the socket meanwhile.
fn collect<S: Socket>(peer: &RawPeer, sock: &S, got: &mut Vec<Vec<u8>>, n: usize) {
    let deadline = Instant::now() + WAIT;
    let want = got.len() + n;
    while got.len() < want && Instant::now() < deadline {
        match peer.recv(Duration::from_millis(50)) {
            Some(f) if frames::is_test_frame(&f) => got.push(f),
            _ => sock.flush(),
        }
    }
}
