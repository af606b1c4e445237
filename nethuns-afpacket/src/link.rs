//! Noticing that the interface went down or away, cheaply: only on the empty-ring path of
//! `recv`, at most every [`CHECK_INTERVAL`], with a zero-timeout `poll` for `POLLERR` (the
//! kernel sets `ENETDOWN` on the socket when its interface goes down or is unregistered).
//! Once down (or deleted: the same [`Error::InterfaceDown`]), every `recv` that finds the ring
//! empty reports it, until the same interface is up again (the kernel then resumes delivery by
//! itself).

use std::cell::Cell;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nethuns_core::{Error, Result};

use crate::sys;

/// How often the empty-ring path looks at the socket's error state.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// Empty `recv` calls between two looks at the clock.
const CLOCK_EVERY: u32 = 32;

pub(crate) struct LinkWatch {
    /// Empty `recv` calls until the next look at the clock (1 while down: every one looks).
    countdown: Cell<u32>,
    last: Cell<Instant>,
    down: Cell<bool>,
}

impl LinkWatch {
    pub(crate) fn new() -> Self {
        LinkWatch {
            countdown: Cell::new(CLOCK_EVERY),
            last: Cell::new(Instant::now()),
            down: Cell::new(false),
        }
    }

    /// Called when `recv` found nothing: whether to call [`LinkWatch::on_idle`] now (every
    /// [`CLOCK_EVERY`] calls, every call while the interface is known to be down).
    #[inline]
    pub(crate) fn tick(&self) -> bool {
        let n = self.countdown.get() - 1;
        self.countdown.set(n);
        n == 0
    }

    /// The slow part of an empty `recv`, when [`LinkWatch::tick`] says so: `Err` if the
    /// interface is known to be down or gone. `saw_down`: a failed transmission found it down.
    #[cold]
    #[inline(never)]
    pub(crate) fn on_idle(
        &self,
        saw_down: bool,
        fd: BorrowedFd<'_>,
        ifname: &str,
        ifindex: i32,
    ) -> Result<()> {
        self.countdown.set(CLOCK_EVERY);
        if saw_down {
            self.mark_down();
        }
        if self.down.get() {
            let r = self.recheck(fd, ifname, ifindex);
            if self.down.get() {
                self.countdown.set(1);
            }
            return r;
        }
        let now = Instant::now();
        if now.duration_since(self.last.get()) < CHECK_INTERVAL {
            return Ok(());
        }
        self.last.set(now);
        let r = self.check(fd, ifname, ifindex);
        if self.down.get() {
            self.countdown.set(1);
        }
        r
    }

    /// Records that the interface was seen down elsewhere (a failed transmission consumed the
    /// socket error that `poll` would have reported): the next empty `recv` looks.
    pub(crate) fn mark_down(&self) {
        self.down.set(true);
        self.countdown.set(1);
    }

    /// Looks for a pending socket error now.
    pub(crate) fn check(&self, fd: BorrowedFd<'_>, ifname: &str, ifindex: i32) -> Result<()> {
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

    fn recheck(&self, fd: BorrowedFd<'_>, ifname: &str, ifindex: i32) -> Result<()> {
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
