//! The socket logic, generic over the [`Port`] that performs the syncs: the real `/dev/netmap`
//! file descriptor, or, in tests, a simulator playing the kernel's part in ordinary memory.

use std::cell::Cell;
use std::io;

use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::metadata::NetmapMeta;
use nethuns_core::{check_frame_len, Error, Result, Stats, Token};

use crate::context::{NetmapContext, JUMBO_SIZE};
use crate::region::Attached;
use crate::ring::{
    rx_copy_chain, rx_skip, rx_take, tx_commit, tx_pending, tx_put, tx_reserve, Ring, Rx, Tx,
};
use nethuns_core::batch::BatchSink;

/// The kernel's side of a port: the syncs that move `tail` and exchange slots.
pub(crate) trait Port {
    /// `NIOCRXSYNC`: release the RX slots before `head`, learn new packets (`tail`).
    fn rx_sync(&self) -> io::Result<()>;
    /// `NIOCTXSYNC`: transmit the TX slots before `head`, reclaim completed ones (`tail`).
    fn tx_sync(&self) -> io::Result<()>;
    /// `poll(POLLIN)` for at most `timeout_ms`: whether packets are ready.
    fn wait_rx(&self, timeout_ms: i32) -> io::Result<bool>;
}

/// A bound port: its rings, its context, the current ring of each direction.
pub(crate) struct Engine<P: Port> {
    port: P,
    rx: Box<[Ring]>,
    tx: Box<[Ring]>,
    rx_cur: Cell<usize>,
    tx_cur: Cell<usize>,
    label: String,
    /// The largest untagged frame `send` takes: MTU + 14 (over several slots where it exceeds
    /// a buffer), the buffer size where the MTU is unknown.
    max_frame: usize,
    /// Packets handed out by `recv_token`.
    received: Cell<u64>,
    /// Frames queued in a TX slot by `send`.
    sent: Cell<u64>,
    /// `send` calls that returned an error (size, ring full after a sync, failed sync).
    send_errors: Cell<u64>,
    // Last: the context keeps the region (and the port's descriptor) alive.
    ctx: NetmapContext,
}

impl<P: Port> Engine<P> {
    /// An engine over attached rings; `label` names the port in errors (`netmap:eth0-1`).
    /// `send` takes frames up to the buffer size until [`Engine::with_mtu`] says more.
    pub(crate) fn new(port: P, attached: Attached, label: String) -> Self {
        let buf = Self::buf_limit(&attached.ctx);
        Engine {
            port,
            rx: attached.rx.into_boxed_slice(),
            tx: attached.tx.into_boxed_slice(),
            rx_cur: Cell::new(0),
            tx_cur: Cell::new(0),
            label,
            max_frame: buf,
            received: Cell::new(0),
            sent: Cell::new(0),
            send_errors: Cell::new(0),
            ctx: attached.ctx,
        }
    }

    /// The largest frame a TX slot holds: the buffer size (a slot's length is a `u16`).
    fn buf_limit(ctx: &NetmapContext) -> usize {
        (ctx.pool().mem().buf_size() as usize).min(u16::MAX as usize)
    }

    /// Limits `send` to what the link carries: `MTU + 14` bytes untagged, `MTU + 18` with an
    /// 802.1Q outer tag ([`frame::send_limit`]), never more than a buffer. `None` (MTU unknown: a VALE port) keeps the buffer
    /// size as the only limit.
    pub(crate) fn with_mtu(mut self, mtu: Option<u32>) -> Self {
        if let Some(mtu) = mtu {
            // Frames larger than a buffer go out over several slots (`NS_MOREFRAG`).
            self.max_frame = (mtu as usize + ETH_HLEN).min(JUMBO_SIZE);
        }
        self
    }

    /// The largest untagged frame `send` takes.
    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The kernel's side of the port.
    pub(crate) fn port(&self) -> &P {
        &self.port
    }

    /// What nethuns counted: received, sent, send errors. netmap's ABI has no drop counter
    /// (neither the rings nor `nmreq_register` report frames the NIC or the kernel dropped
    /// while a ring was full), so `dropped` is `None`; netmap takes no filters.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            received: self.received.get(),
            dropped: None,
            filtered: None,
            sent: self.sent.get(),
            send_errors: self.send_errors.get(),
        }
    }

    pub(crate) fn context(&self) -> &NetmapContext {
        &self.ctx
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn rx_rings(&self) -> usize {
        self.rx.len()
    }

    pub(crate) fn tx_rings(&self) -> usize {
        self.tx.len()
    }

    #[cfg(test)]
    pub(crate) fn rings(&self) -> (&[Ring], &[Ring]) {
        (&self.rx, &self.tx)
    }

    /// Receives one packet as a token: scans the bound RX rings from the current one, syncs
    /// once if all are empty, and scans again.
    pub(crate) fn recv_token(&self) -> Result<(Token, NetmapMeta)> {
        if let Some(r) = self.take() {
            return r;
        }
        self.rx_sync()?;
        self.take().unwrap_or(Err(Error::NoPacket))
    }

    /// A burst: walks the bound RX rings taking packets until `sink` is full or every ring
    /// is empty; syncs (once) only if nothing was waiting. An error after some packets ends
    /// the burst (it comes again on the next call).
    pub(crate) fn fill_batch(&self, sink: &mut BatchSink<'_, NetmapMeta>) -> Result<()> {
        for attempt in 0..2 {
            while sink.remaining() > 0 {
                match self.take() {
                    Some(Ok((t, m))) => {
                        if let Err((t, _)) = sink.push(t, m) {
                            // Unreachable (room was checked); kept total.
                            drop(nethuns_core::Context::packet(&self.ctx, t));
                        }
                    }
                    Some(Err(e)) if sink.is_empty() => return Err(e),
                    Some(Err(_)) => return Ok(()),
                    None => break,
                }
            }
            if attempt == 0 && sink.is_empty() && sink.remaining() > 0 {
                self.rx_sync()?;
            } else {
                break;
            }
        }
        Ok(())
    }

    /// The next packet of the bound RX rings from the current one, without a sync; `None`
    /// if every ring is empty.
    #[inline]
    fn take(&self) -> Option<Result<(Token, NetmapMeta)>> {
        let n = self.rx.len();
        let start = self.rx_cur.get();
        for k in 0..n {
            let i = (start + k) % n;
            let ring = &self.rx[i];
            return Some(match rx_take(ring, self.ctx.pool()) {
                Rx::Empty => continue,
                Rx::Packet { buf, len } => {
                    self.rx_cur.set(i);
                    let head = (len as usize).min(ETH_HLEN + VLAN_HLEN);
                    // `buf` is a valid buffer index (checked by `rx_take`) that now belongs
                    // to this call alone, and `head <= len <= buf_size`.
                    let start: [u8; ETH_HLEN + VLAN_HLEN] = self.ctx.pool().mem().start(buf);
                    let meta = NetmapMeta {
                        timestamp: ring.ts(),
                        len,
                        ring: ring.index,
                        vlan: frame::outer_vlan(&start[..head]),
                    };
                    // SAFETY: `buf` was just swapped out of the slot, so nothing else names
                    // it; `len` was checked against the buffer size.
                    let token = unsafe { self.ctx.token(buf as usize, len) };
                    self.received.set(self.received.get() + 1);
                    Ok((token, meta))
                }
                Rx::NoExtra => Err(Error::NoMemory),
                Rx::Chain { slots, len } => {
                    self.rx_cur.set(i);
                    self.recv_chain(ring, slots, len)
                }
                Rx::BadTail { tail, num_slots } => {
                    // A sync makes the kernel write `tail` again; the next call sees it.
                    let _ = self.rx_sync();
                    Err(crate::netmap_error(
                        format!("receiving on {} RX ring {}", self.label, ring.index),
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("tail {tail} outside the {num_slots}-slot ring"),
                        ),
                    ))
                }
                Rx::Corrupt { slot, buf, len } => Err(crate::netmap_error(
                    format!("receiving on {} RX ring {}", self.label, ring.index),
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("slot {slot} holds buffer {buf} of length {len}; skipped"),
                    ),
                )),
            });
        }
        None
    }

    /// Receives the packet of `slots` slots at `head` of `ring` into a jumbo buffer.
    #[cold]
    fn recv_chain(&self, ring: &Ring, slots: u32, len: usize) -> Result<(Token, NetmapMeta)> {
        if len > JUMBO_SIZE {
            rx_skip(ring, slots);
            return Err(Error::TooBigPacket(len));
        }
        // Every jumbo buffer held: the packet stays in the ring.
        let mem = self.ctx.pool().mem();
        let got = self
            .ctx
            .jumbo_packet(len, |dst| {
                let n = rx_copy_chain(ring, mem, slots, dst)?;
                Ok::<_, u32>((n, frame::outer_vlan(&dst[..n])))
            })
            .ok_or(Error::NoMemory)?;
        let (token, vlan) = got.map_err(|slot| {
            crate::netmap_error(
                format!("receiving on {} RX ring {}", self.label, ring.index),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("slot {slot} of a {slots}-slot packet is invalid; skipped"),
                ),
            )
        })?;
        let meta = NetmapMeta {
            timestamp: ring.ts(),
            len: token.size(),
            ring: ring.index,
            vlan,
        };
        self.received.set(self.received.get() + 1);
        Ok((token, meta))
    }

    fn rx_sync(&self) -> Result<()> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let r = self.port.rx_sync();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        r.map_err(|e| self.sync_error("NIOCRXSYNC", e))
    }

    /// Issues a TX sync: the kernel sends what `send` queued and reclaims completed slots.
    pub(crate) fn tx_sync(&self) -> Result<()> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let r = self.port.tx_sync();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        r.map_err(|e| self.sync_error("NIOCTXSYNC", e))
    }

    /// A failed sync: `ENXIO` means the port left netmap mode (its interface was deleted or
    /// unregistered), reported as [`Error::InterfaceDown`]; anything else is netmap's error.
    fn sync_error(&self, what: &str, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENXIO) | Some(libc::ENODEV) => Error::InterfaceDown(self.label.clone()),
            _ => crate::netmap_error(format!("{what} on {}", self.label), e),
        }
    }

    /// `flush`: a TX sync if anything is queued or in flight (no syscall otherwise).
    pub(crate) fn flush(&self) -> Result<()> {
        if self.tx_pending() == 0 {
            return Ok(());
        }
        self.tx_sync()
    }

    /// Copies `packet` into the next free TX slot of the current ring (moving to the next bound
    /// ring when it is full); syncs once if every ring is full.
    pub(crate) fn send(&self, packet: &[u8]) -> Result<()> {
        let r = self.send_inner(packet);
        match r {
            Ok(()) => self.sent.set(self.sent.get() + 1),
            Err(_) => self.send_errors.set(self.send_errors.get() + 1),
        }
        r
    }

    fn send_inner(&self, packet: &[u8]) -> Result<()> {
        let max = frame::send_limit(packet, self.max_frame);
        check_frame_len(packet.len(), ETH_HLEN, max)?;
        let mem = self.ctx.pool().mem();
        let n = self.tx.len();
        for attempt in 0..2 {
            let start = self.tx_cur.get();
            for k in 0..n {
                let i = (start + k) % n;
                if tx_put(&self.tx[i], mem, packet) == Tx::Queued {
                    self.tx_cur.set(i);
                    return Ok(());
                }
            }
            if attempt == 0 {
                self.tx_sync()?;
            }
        }
        Err(Error::NoMemory)
    }

    /// `send_with`: `fill` writes the frame straight into the buffer of the next free TX
    /// slot (a frame over one buffer is built aside and sent as `send` does); the slot is
    /// queued only if the written frame passes the size rule.
    pub(crate) fn send_with<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        let r = self.send_with_inner(len, fill);
        match r {
            Ok(()) => self.sent.set(self.sent.get() + 1),
            Err(_) => self.send_errors.set(self.send_errors.get() + 1),
        }
        r
    }

    fn send_with_inner<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        check_frame_len(len, ETH_HLEN, self.max_frame + VLAN_HLEN)?;
        let mem = self.ctx.pool().mem();
        if len > (mem.buf_size() as usize).min(u16::MAX as usize) {
            let mut v = vec![0u8; len];
            fill(&mut v);
            return self.send_inner(&v);
        }
        let n = self.tx.len();
        for attempt in 0..2 {
            let start = self.tx_cur.get();
            for k in 0..n {
                let i = (start + k) % n;
                let Some(buf) = tx_reserve(&self.tx[i], mem) else {
                    continue;
                };
                self.tx_cur.set(i);
                // SAFETY: the buffer of the free TX slot `tx_reserve` gave out: the user side's
                // until `head` passes it, `buf_size >= len` bytes, referred to by nothing else.
                unsafe {
                    self.ctx.lend_tx_buffer(buf, len, |frame| {
                        fill(frame);
                        check_frame_len(len, ETH_HLEN, frame::send_limit(frame, self.max_frame))
                    })
                }?;
                tx_commit(&self.tx[i], len);
                return Ok(());
            }
            if attempt == 0 {
                self.tx_sync()?;
            }
        }
        Err(Error::NoMemory)
    }

    /// Slots queued or in flight on the bound TX rings.
    pub(crate) fn tx_pending(&self) -> u32 {
        self.tx.iter().map(tx_pending).sum()
    }

    /// Waits up to `timeout_ms` for packets (`poll`).
    pub(crate) fn wait_rx(&self, timeout_ms: i32) -> Result<bool> {
        self.port
            .wait_rx(timeout_ms)
            .map_err(|e| crate::netmap_error(format!("poll on {}", self.label), e))
    }
}
