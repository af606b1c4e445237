//! The batch case: `recv_batch` and `send_batch` deliver exactly what `recv` and `send` do.

use std::time::{Duration, Instant};

use nethuns_core::{batch, Error, Metadata, Socket};

use super::{compare, delivery_set, finish, open, with_peer, Backend, CaseResult, WAIT};
use crate::{frames, NetPair};

/// Frames from the peer, received with `recv_batch` into 8 slots, arrive exactly and in order
/// (lengths in the metadata); a batch dropped with packets left in it releases them (the
/// backend's check finds nothing held); frames given to `send_batch` in chunks of 16 arrive
/// at the peer exactly and in order.
pub(super) fn batch_exact<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let mut buf = batch::buffer::<<B::S as Socket>::Metadata, 8>();
            let sent = delivery_set(0, 4);
            let mut got = vec![];
            for chunk in sent.chunks(16) {
                for f in chunk {
                    peer.send(f)
                        .map_err(|e| format!("peer send on {}: {e}", peer.ifname()))?;
                }
                let want = got.len() + chunk.len();
                let deadline = Instant::now() + WAIT;
                while got.len() < want && Instant::now() < deadline {
                    let burst = sock
                        .recv_batch(&mut buf)
                        .map_err(|e| format!("recv_batch after {} frames: {e}", got.len()))?;
                    if burst.is_empty() {
                        std::thread::yield_now();
                    }
                    for (p, m) in burst {
                        if !frames::is_test_frame(&p) {
                            continue;
                        }
                        if m.len() as usize != p.len() {
                            return Err(format!(
                                "frame {}: len() {}, {} bytes",
                                got.len(),
                                m.len(),
                                p.len()
                            ));
                        }
                        got.push(p.to_vec());
                    }
                }
            }
            compare(&sent, &got).map_err(|e| format!("recv_batch: {e}"))?;
            // A burst dropped after taking one packet: the rest goes back.
            for seq in 0..6 {
                peer.send(&frames::frame(9000 + seq, 64))
                    .map_err(|e| format!("peer send: {e}"))?;
            }
            let deadline = Instant::now() + WAIT;
            loop {
                let mut burst = sock.recv_batch(&mut buf).map_err(|e| e.to_string())?;
                if burst.next().is_some() || Instant::now() > deadline {
                    break;
                }
            }
            // Whatever else came (in later bursts) is drained and released too.
            std::thread::sleep(Duration::from_millis(20));
            while !sock
                .recv_batch(&mut buf)
                .map_err(|e| e.to_string())?
                .is_empty()
            {}
            let sent = delivery_set(5000, 4);
            let mut got = vec![];
            for chunk in sent.chunks(16) {
                let refs: Vec<&[u8]> = chunk.iter().map(|f| f.as_slice()).collect();
                let deadline = Instant::now() + WAIT;
                let mut off = 0;
                while off < refs.len() {
                    match sock.send_batch(&refs[off..]) {
                        Ok(n) => off += n,
                        Err(Error::NoMemory) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_micros(200))
                        }
                        Err(e) => return Err(format!("send_batch at frame {off}: {e}")),
                    }
                }
                let want = got.len() + chunk.len();
                while got.len() < want && Instant::now() < deadline {
                    match peer.recv(Duration::from_millis(50)) {
                        Some(f) if frames::is_test_frame(&f) => got.push(f),
                        _ => sock.flush(),
                    }
                }
            }
            compare(&sent, &got).map_err(|e| format!("send_batch: {e}"))?;
            finish::<B>(&sock)
        })
    })
}
