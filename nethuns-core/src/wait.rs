//! Waiting for packets without spinning a core: [`recv_timeout`], [`recv_token_timeout`] and
//! [`wait_readable`], generic over every backend.
//!
//! [`Socket::recv`] never blocks. These helpers wait for the next packet up to a deadline:
//! where the socket has a [`Capabilities::pollable_fd`](crate::Capabilities) (pcap on a live
//! interface, AF_PACKET, AF_XDP, netmap) they sleep in `poll(2)` on it, so an idle receiver
//! costs no CPU; where it has none (DPDK, whose poll-mode drivers have no descriptor, and a
//! pcap savefile, which never waits) they spin with a backoff — a few
//! [`spin_loop`](std::hint::spin_loop) hints, then [`yield_now`](std::thread::yield_now), then
//! sleeps growing to [`MAX_BACKOFF`] — so a DPDK receiver that waits with them answers within
//! about `MAX_BACKOFF` and leaves the core to other threads in between.
//!
//! ```no_run
//! use std::time::Duration;
//! use nethuns_core::{wait, Error, Socket};
//!
//! fn next_frame<S: Socket>(sock: &S) -> nethuns_core::Result<Option<usize>> {
//!     match wait::recv_timeout(sock, Some(Duration::from_millis(500))) {
//!         Ok((payload, _meta)) => Ok(Some(payload.len())),
//!         Err(Error::NoPacket) => Ok(None), // nothing in 500 ms
//!         Err(e) => Err(e),
//!     }
//! }
//! ```

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::socket::Socket;
use crate::token::{Payload, Token};

/// The longest sleep between two receive attempts on a socket without a pollable fd.
pub const MAX_BACKOFF: Duration = Duration::from_micros(200);

/// Receives the next packet, waiting up to `timeout` for it (`None`: as long as it takes).
///
/// Returns what [`Socket::recv`] returns, except that "nothing yet" is waited out: after the
/// timeout with nothing received the answer is [`Error::NoPacket`]. Any other error (the
/// interface gone, the end of a savefile, a full pool) is returned at once.
pub fn recv_timeout<S: Socket>(
    sock: &S,
    timeout: Option<Duration>,
) -> Result<(Payload<'_, S::Context>, S::Metadata)> {
    let (token, meta) = recv_token_timeout(sock, timeout)?;
    // SAFETY: the token was made by this socket from its own context.
    Ok((
        unsafe { Payload::from_token_unchecked(token, sock.context()) },
        meta,
    ))
}

/// Like [`recv_timeout`], returning a [`Token`] ([`Socket::recv_token`]).
pub fn recv_token_timeout<S: Socket>(
    sock: &S,
    timeout: Option<Duration>,
) -> Result<(Token, S::Metadata)> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let fd = sock.capabilities().pollable_fd;
    let mut backoff = Backoff::default();
    loop {
        match sock.recv_token() {
            Err(Error::NoPacket) => {}
            r => return r,
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(Error::NoPacket),
            },
            None => None,
        };
        match fd {
            Some(fd) => {
                if poll_in(fd, left)? == Readiness::Error {
                    // The fd reports an error condition the next receive did not turn into
                    // an error: do not loop hot on it.
                    backoff.snooze(left);
                }
            }
            None => backoff.snooze(left),
        }
    }
}

/// Waits until `sock` may have a packet to receive, or `timeout` passed (`None`: no limit).
///
/// Returns `true` when the socket's fd is readable (or reports an error condition, which the
/// next receive turns into an error), `false` on timeout. A socket without a pollable fd is
/// always reported ready at once: its caller must spin on `recv` (see the module docs).
pub fn wait_readable<S: Socket>(sock: &S, timeout: Option<Duration>) -> Result<bool> {
    match sock.capabilities().pollable_fd {
        Some(fd) => Ok(poll_in(fd, timeout)? != Readiness::Timeout),
        None => Ok(true),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    Readable,
    Error,
    Timeout,
}

/// `poll(2)` for `POLLIN` on `fd`, retried on `EINTR`.
fn poll_in(fd: RawFd, timeout: Option<Duration>) -> Result<Readiness> {
    let ms = match timeout {
        // Round up, so a sub-millisecond remainder still sleeps rather than spins.
        Some(t) => i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
        None => -1,
    };
    loop {
        match nethuns_sys_linux::netdev::poll_raw(fd, libc::POLLIN, ms) {
            Ok(0) => return Ok(Readiness::Timeout),
            Ok(revents) if revents & libc::POLLIN != 0 => return Ok(Readiness::Readable),
            Ok(_) => return Ok(Readiness::Error),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Os {
                    context: format!("poll(2) on the socket's fd {fd}"),
                    source: e,
                })
            }
        }
    }
}

/// Spin, then yield, then sleep with a doubling period up to [`MAX_BACKOFF`].
#[derive(Default)]
struct Backoff {
    step: u32,
}

impl Backoff {
    const SPINS: u32 = 16;
    const YIELDS: u32 = 16;

    fn snooze(&mut self, left: Option<Duration>) {
        if self.step < Self::SPINS {
            std::hint::spin_loop();
        } else if self.step < Self::SPINS + Self::YIELDS {
            std::thread::yield_now();
        } else {
            let n = (self.step - Self::SPINS - Self::YIELDS).min(8);
            let mut t = Duration::from_micros(1 << n).min(MAX_BACKOFF);
            if let Some(left) = left {
                t = t.min(left);
            }
            std::thread::sleep(t);
        }
        self.step = self.step.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_times_out_on_a_silent_pipe() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (rx, mut tx) = std::os::unix::net::UnixStream::pair().unwrap();
        let r = poll_in(rx.as_raw_fd(), Some(Duration::from_millis(5))).unwrap();
        assert_eq!(r, Readiness::Timeout);
        tx.write_all(b"x").unwrap();
        assert_eq!(poll_in(rx.as_raw_fd(), None).unwrap(), Readiness::Readable);
    }
}
