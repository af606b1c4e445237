//! The `wait` case: [`nethuns_core::wait`] on every backend.

use std::time::Duration;

use nethuns_core::{wait, Error, Socket};

use super::{finish, open, with_peer, Backend, CaseResult};
use crate::{frames, NetPair};

/// How long the waiting receive may take before the case gives up on the frame.
const LIMIT: Duration = Duration::from_secs(3);

/// A frame the peer sends 50 ms after the receiver started waiting arrives through
/// [`wait::recv_timeout`]; a later wait with nothing sent returns `NoPacket` once its timeout
/// has passed (it returns: it neither hangs nor errs). The helper sleeps in `poll(2)` on
/// `capabilities().pollable_fd` where there is one, and backs off where there is none.
pub(super) fn wait<B: Backend>(pair: &NetPair) -> CaseResult {
    with_peer(pair, |peer| {
        pair.in_a(|| {
            let sock = open::<B>(&pair.veth_a, B::flags())?;
            let frame = frames::frame(4242, 96);
            let got = std::thread::scope(|s| {
                let sender = s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(50));
                    peer.send(&frame)
                });
                let got = next_test_frame(&sock, LIMIT);
                let sent = sender.join().map_err(|_| "the peer's thread panicked")?;
                sent.map_err(|e| format!("peer send on {}: {e}", peer.ifname()))?;
                got
            })?;
            match got {
                Some(bytes) if bytes == frame => {}
                Some(bytes) => {
                    return Err(format!(
                        "recv_timeout returned a different frame: {} bytes, sent {}",
                        bytes.len(),
                        frame.len()
                    ))
                }
                None => {
                    return Err(format!(
                        "recv_timeout: the frame sent after 50 ms did not arrive within {LIMIT:?}"
                    ))
                }
            }
            // Nothing more is sent: a timed wait returns NoPacket (other traffic on the link,
            // e.g. IPv6 neighbour discovery, is skipped).
            if let Some(bytes) = next_test_frame(&sock, Duration::from_millis(100))? {
                return Err(format!(
                    "recv_timeout returned a test frame ({} bytes) when none was sent",
                    bytes.len()
                ));
            }
            match wait::wait_readable(&sock, Some(Duration::from_millis(1))) {
                Ok(_) => {}
                Err(e) => return Err(format!("wait_readable: {e}")),
            }
            finish::<B>(&sock)
        })
    })
}

/// The next test frame through `recv_timeout` within `limit`, `None` once a wait timed out.
fn next_test_frame<S: Socket>(sock: &S, limit: Duration) -> Result<Option<Vec<u8>>, String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match wait::recv_timeout(sock, Some(left)) {
            Ok((p, _)) if frames::is_test_frame(&p) => return Ok(Some(p.to_vec())),
            Ok(_) => {}
            Err(Error::NoPacket) => return Ok(None),
            Err(e) => return Err(format!("recv_timeout: {e}")),
        }
    }
}
