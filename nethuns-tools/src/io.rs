//! The receive and send steps every tool shares: each error branch waits boundedly, looks at
//! the stop flag, keeps the counters current and tells a link that is down from one that is
//! gone.

use std::time::{Duration, Instant};

use nethuns::api::{Context, Payload, Received};
use nethuns::batch::Slot;
use nethuns::errors::Error;
use nethuns_sys_linux::netdev;

use crate::backend::Engine;
use crate::exit::ToolError;
use crate::report::Worker;
use crate::signal;
use crate::wait::{self, Backoff};

/// What a receive that returned no packet means for the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Idle {
    /// Nothing yet (waited up to [`wait::STEP`]); go on.
    Again,
    /// The savefile is done.
    Eof,
}

/// A socket of a tool with what the error paths need.
pub struct Port<S: Engine> {
    /// The socket.
    pub sock: S,
    /// Its portspec, for messages.
    pub portspec: String,
    ifname: Option<String>,
    fd: Option<std::os::fd::RawFd>,
    next_link_check: Instant,
}

impl<S: Engine> Port<S> {
    /// Wraps an open socket.
    pub fn new(sock: S, portspec: &str) -> Self {
        let fd = sock.capabilities().pollable_fd;
        Port {
            sock,
            portspec: portspec.to_string(),
            ifname: S::interface(portspec),
            fd,
            next_link_check: Instant::now(),
        }
    }

    /// Reads the engine's counters into `w` (drops, send errors), and whether the link is up.
    pub fn stats(&self, w: &mut Worker) {
        if let Ok(s) = self.sock.stats() {
            w.t.take_stats(&s);
        }
        if let Some(up) = self.ifname.as_deref().and_then(link_up) {
            w.t.down = !up;
        }
    }

    /// After a burst was handled: the idle backoff starts over, and the engine's counters are
    /// read when due.
    #[inline]
    pub fn burst_done(&self, w: &mut Worker, idle: &mut Backoff) {
        idle.reset();
        if w.tick() {
            self.stats(w);
        }
    }

    /// The end of a worker: the engine's counters read a last time, the totals published.
    pub fn finish(&self, w: &mut Worker) {
        self.stats(w);
        w.finish();
    }

    /// Every 100 ms at most: whether the link is down (`None`: cannot tell), and an error if
    /// the interface is gone.
    fn check_link(&mut self, w: &mut Worker) -> Result<(), ToolError> {
        let now = Instant::now();
        if now < self.next_link_check {
            return Ok(());
        }
        self.next_link_check = now + Duration::from_millis(100);
        if let Some(name) = &self.ifname {
            if !wait::interface_exists(name) {
                return Err(ToolError::NoInterface(format!(
                    "{}: interface {name} is gone",
                    self.portspec
                )));
            }
            if let Some(up) = link_up(name) {
                w.t.down = !up;
            }
        }
        Ok(())
    }

    /// The no-packet branch of a receive loop: `e` is what `recv` returned.
    pub fn rx_idle(
        &mut self,
        e: Error,
        w: &mut Worker,
        idle: &mut Backoff,
    ) -> Result<Idle, ToolError> {
        if w.idle() {
            self.stats(w);
        }
        match e {
            Error::NoPacket => {
                wait::readable(self.fd, idle);
                self.check_link(w)?;
                Ok(Idle::Again)
            }
            Error::Eof => Ok(Idle::Eof),
            // Every buffer is held (by a payload, a token, the channel): let them come back.
            Error::NoMemory => {
                idle.wait();
                Ok(Idle::Again)
            }
            Error::InterfaceDown(_) => {
                w.t.down = true;
                self.next_link_check = Instant::now();
                self.check_link(w)?;
                w.t.down = true;
                std::thread::sleep(wait::STEP);
                Ok(Idle::Again)
            }
            e => Err(ToolError::from_run(
                &format!("receive on {}", self.portspec),
                e,
            )),
        }
    }

    /// One `recv_batch` into `buf`: the burst, or why none came (`Error::NoPacket` for an
    /// empty one, as `recv` says it), for [`Port::rx_idle`].
    #[inline]
    pub fn recv_burst<'a>(
        &'a self,
        buf: &'a mut [Slot<S::Metadata>],
    ) -> Result<Received<'a, S::Context, S::Metadata>, Error> {
        match self.sock.recv_batch(buf) {
            Ok(burst) if burst.is_empty() => Err(Error::NoPacket),
            r => r,
        }
    }

    /// Sends `frame`, waiting while the transmit side is full or the link down; `Ok(false)`
    /// when a stop was requested before it could go.
    pub fn send(
        &mut self,
        frame: &[u8],
        w: &mut Worker,
        backoff: &mut Backoff,
    ) -> Result<bool, ToolError> {
        self.send_retry(frame, w, backoff, |s, f| s.send(f).map_err(|e| (e, f)))
    }

    /// Sends a frame of `len` bytes that `fill` builds where the engine sends it from
    /// (`send_with`), waiting as [`Port::send`] does; `fill` runs again on a retry.
    pub fn send_with(
        &mut self,
        len: usize,
        mut fill: impl FnMut(&mut [u8]),
        w: &mut Worker,
        backoff: &mut Backoff,
    ) -> Result<bool, ToolError> {
        self.send_retry((), w, backoff, |s, ()| {
            s.send_with(len, &mut fill).map_err(|e| (e, ()))
        })
    }

    /// Transmits a received packet (`send_payload`: without a copy where the engine can),
    /// waiting as [`Port::send`] does; the packet is released once sent or given up.
    pub fn send_payload<C: Context>(
        &mut self,
        payload: Payload<'_, C>,
        w: &mut Worker,
        backoff: &mut Backoff,
    ) -> Result<bool, ToolError> {
        self.send_retry(payload, w, backoff, |s, p| {
            s.send_payload(p).map_err(|u| (u.error, u.payload))
        })
    }

    /// The retry loop of the sends: `try_send` gives the item back with the error.
    fn send_retry<T>(
        &mut self,
        mut item: T,
        w: &mut Worker,
        backoff: &mut Backoff,
        mut try_send: impl FnMut(&S, T) -> Result<(), (Error, T)>,
    ) -> Result<bool, ToolError> {
        loop {
            let e = match try_send(&self.sock, item) {
                Ok(()) => {
                    backoff.reset();
                    return Ok(true);
                }
                Err((e, back)) => {
                    item = back;
                    e
                }
            };
            match e {
                Error::NoMemory | Error::NoPacket => {
                    self.sock.flush();
                    self.check_link(w)?;
                }
                Error::InterfaceDown(_) => {
                    w.t.down = true;
                    self.next_link_check = Instant::now();
                    self.check_link(w)?;
                    w.t.down = true;
                }
                e @ (Error::TooBigPacket(_) | Error::TooSmallPacket(_)) => {
                    return Err(ToolError::Config(format!(
                        "send on {}: {e} (the link takes {} to {} bytes)",
                        self.portspec,
                        self.sock.capabilities().min_frame,
                        self.sock.capabilities().max_frame
                    )))
                }
                e => {
                    return Err(ToolError::from_run(
                        &format!("send on {}", self.portspec),
                        e,
                    ))
                }
            }
            if signal::stopped() {
                return Ok(false);
            }
            if w.idle() {
                self.stats(w);
            }
            backoff.wait();
        }
    }
}

/// The flush rule of the sending tools: a flush every `batch` frames, and before any wait.
#[derive(Debug)]
pub struct TxBatch {
    pending: u64,
    batch: u64,
}

impl TxBatch {
    /// Flushes every `batch` frames (at least 1).
    pub fn new(batch: u64) -> Self {
        TxBatch {
            pending: 0,
            batch: batch.max(1),
        }
    }

    /// A frame of `len` bytes was sent on `port`: counted in `w`, flushed with its batch, the
    /// engine's counters read when due.
    #[inline]
    pub fn sent<S: Engine>(&mut self, port: &Port<S>, w: &mut Worker, len: usize) {
        w.sent(len);
        self.pending += 1;
        if self.pending >= self.batch {
            port.sock.flush();
            self.pending = 0;
        }
        if w.tick() {
            port.stats(w);
        }
    }

    /// Flushes what is pending, before the sender waits.
    #[inline]
    pub fn before_wait<S: Engine>(&mut self, port: &Port<S>) {
        if self.pending > 0 {
            port.sock.flush();
            self.pending = 0;
        }
    }

    /// The end of a sending worker: a last flush, then [`Port::finish`].
    pub fn finish<S: Engine>(self, port: &Port<S>, w: &mut Worker) {
        port.sock.flush();
        port.finish(w);
    }
}

/// Whether interface `name` is up and running (`SIOCGIFFLAGS`), `None` if it cannot be read.
pub fn link_up(name: &str) -> Option<bool> {
    let ctl = netdev::ctl_socket().ok()?;
    let flags = netdev::flags(ctl, name).ok()?;
    Some(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
}

/// Opens one socket per queue of `queues` on `portspec`, in order (AF_PACKET fanout members
/// are numbered in join order).
pub fn open_all<S: Engine>(
    portspec: &str,
    queues: &[Option<usize>],
    opts: &crate::backend::BackendOpts,
    mut role: crate::backend::Role,
) -> Result<Vec<Port<S>>, ToolError> {
    role.members = queues.len();
    if let Some(path) = portspec.strip_prefix("file:") {
        if !std::path::Path::new(path).is_file() {
            return Err(ToolError::File(format!("{portspec}: no such savefile")));
        }
    }
    queues
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            role.member = i;
            S::open(portspec, q, opts, role).map(|s| Port::new(s, portspec))
        })
        .collect()
}
