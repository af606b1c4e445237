//! SIGINT/SIGTERM: a stop flag every loop of every tool checks, in every branch.
//!
//! The first signal sets the flag: workers leave their loops within one wait step (at most
//! [`crate::wait::STEP`]) and the tool prints its totals. A second signal ends the process
//! at once (status 130), for a tool that is stuck somewhere no loop can see.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALS.fetch_add(1, Ordering::Relaxed) >= 1 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    STOP.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM (with `sigaction`, no `SA_RESTART`, so a
/// blocking call returns `EINTR`).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data (a handler address, a mask, flags); all-zero is a
        // valid value of it.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        sa.sa_flags = 0;
        // SAFETY: `sa_mask` is a sigset_t we own, alive for the call.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is a valid sigaction alive for the call; the handler only touches
        // atomics and calls _exit, both async-signal-safe.
        unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    }
}

/// Whether a stop was requested (signal, or [`request_stop`]).
#[inline]
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Asks every worker to stop (a limit was reached, or a worker failed).
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Whether the stop came from a signal.
pub fn signalled() -> bool {
    SIGNALS.load(Ordering::Relaxed) > 0
}
