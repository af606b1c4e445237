//! Waiting without spinning where the engine lets us, and never longer than [`STEP`], so the
//! stop flag is seen within 100 ms whatever the socket is doing.

use std::os::fd::RawFd;
use std::time::Duration;

use nethuns_sys_linux::netdev;

/// The longest single wait: a stop request is seen at most this late.
pub const STEP: Duration = Duration::from_millis(10);

/// Waits until `fd` is readable or [`STEP`] passed (`poll(2)`). Without an fd (DPDK), yields
/// the CPU: the engine is polled, as DPDK programs do.
pub fn readable(fd: Option<RawFd>, idle: &mut Backoff) {
    match fd {
        Some(fd) => {
            // Readable, an error condition, a timeout or EINTR: the caller's next receive
            // tells which.
            let _ = netdev::poll_raw(fd, libc::POLLIN, STEP.as_millis() as libc::c_int);
        }
        None => idle.wait(),
    }
}

/// A growing pause for loops that wait on something without an fd (a full TX ring, a link
/// that is down): first a few yields, then sleeps doubling from 20 µs up to [`STEP`].
#[derive(Debug, Default)]
pub struct Backoff {
    n: u32,
}

impl Backoff {
    /// A backoff at its shortest.
    pub fn new() -> Self {
        Backoff { n: 0 }
    }

    /// Back to the shortest pause (progress was made).
    #[inline]
    pub fn reset(&mut self) {
        self.n = 0;
    }

    /// Pauses once, a bit longer than last time.
    pub fn wait(&mut self) {
        if self.n < 16 {
            std::thread::yield_now();
        } else {
            let us = (20u64 << (self.n - 16).min(10)).min(STEP.as_micros() as u64);
            std::thread::sleep(Duration::from_micros(us));
        }
        self.n = self.n.saturating_add(1);
    }
}

/// Sleeps until `deadline` (or until a stop request), spinning only the last 200 µs: the
/// pacing of `nethuns-gen` and `nethuns-replay`.
pub fn until(deadline: std::time::Instant) {
    loop {
        let now = std::time::Instant::now();
        if now >= deadline || crate::signal::stopped() {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(300) {
            std::thread::sleep((left - Duration::from_micros(200)).min(STEP));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Whether interface `name` exists in this network namespace (`if_nametoindex`).
pub fn interface_exists(name: &str) -> bool {
    netdev::if_index(name).is_ok()
}
