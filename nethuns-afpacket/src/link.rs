//! Noticing that the interface went down or away, cheaply: only on the empty-ring path of
//! `recv`, at most every [`CHECK_INTERVAL`], with a zero-timeout `poll` for `POLLERR` (the
//! kernel sets `ENETDOWN` on the socket when its interface goes down or is unregistered).
//! Once down (or deleted: the same [`Error::InterfaceDown`]), every `recv` that finds the ring
//! empty reports it, until the same interface is up again (the kernel then resumes delivery by
//! itself).

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use nethuns_core::{Error, Result};

use crate::sys;

/// How often the empty-ring path looks at the socket's error state.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// Empty `recv` calls between two looks at the clock.
const CLOCK_EVERY: u32 = 32;

pub(crate) struct LinkWatch {
    idle: Cell<u32>,
    last: Cell<Instant>,
    down: Cell<bool>,
}

impl LinkWatch {
    pub(crate) fn new() -> Self {
        LinkWatch {
            idle: Cell::new(0),
            last: Cell::new(Instant::now()),
            down: Cell::new(false),
        }
    }

    /// Called when `recv` found nothing: `Err` if the interface is known to be down or gone.
    #[inline]
    pub(crate) fn on_idle(&self, fd: i32, ifname: &str, ifindex: i32) -> Result<()> {
        if self.down.get() {
            return self.recheck(fd, ifname, ifindex);
        }
        let n = self.idle.get().wrapping_add(1);
        self.idle.set(n);
        if n % CLOCK_EVERY != 0 {
            return Ok(());
        }
        let now = Instant::now();
        if now.duration_since(self.last.get()) < CHECK_INTERVAL {
            return Ok(());
        }
        self.last.set(now);
        self.check(fd, ifname, ifindex)
    }

    /// Records that the interface was seen down elsewhere (a failed transmission consumed the
    /// socket error that `poll` would have reported).
    pub(crate) fn mark_down(&self) {
        self.down.set(true);
    }

    /// Looks for a pending socket error now.
    pub(crate) fn check(&self, fd: i32, ifname: &str, ifindex: i32) -> Result<()> {
        match sys::pending_error(fd) {
            Ok(None) => Ok(()),
            Ok(Some(libc::ENETDOWN)) | Ok(Some(libc::ENXIO)) | Ok(Some(libc::ENODEV)) => {
                self.down.set(true);
                self.recheck(fd, ifname, ifindex)
            }
            Ok(Some(errno)) => Err(Error::os(
                format!("AF_PACKET socket on {ifname}"),
                io::Error::from_raw_os_error(errno),
            )),
            Err(e) => Err(Error::os(
                format!("polling the AF_PACKET socket on {ifname}"),
                e,
            )),
        }
    }

    fn recheck(&self, fd: i32, ifname: &str, ifindex: i32) -> Result<()> {
        match sys::if_state(fd, ifname, ifindex) {
            Ok(Some(true)) => {
                self.down.set(false);
                Ok(())
            }
            Ok(Some(false)) => Err(Error::InterfaceDown(ifname.to_string())),
            // Deleted: the same error as down, as on every backend.
            Ok(None) => Err(Error::InterfaceDown(ifname.to_string())),
            Err(e) => Err(Error::os(format!("reading the state of {ifname}"), e)),
        }
    }
}
