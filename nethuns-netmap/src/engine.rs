//! The socket logic, generic over the [`Port`] that performs the syncs: the real `/dev/netmap`
//! file descriptor, or, in tests, a simulator playing the kernel's part in ordinary memory.

use std::cell::Cell;
use std::io;

use nethuns_core::metadata::NetmapMeta;
use nethuns_core::{Error, Result, Token};

use crate::context::NetmapContext;
use crate::region::Attached;
use crate::ring::{rx_take, tx_pending, tx_put, Ring, Rx, Tx};

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
    // Last: the context keeps the region (and the port's descriptor) alive.
    ctx: NetmapContext,
}

impl<P: Port> Engine<P> {
    /// An engine over attached rings; `label` names the port in errors (`netmap:eth0-1`).
    pub(crate) fn new(port: P, attached: Attached, label: String) -> Self {
        Engine {
            port,
            rx: attached.rx.into_boxed_slice(),
            tx: attached.tx.into_boxed_slice(),
            rx_cur: Cell::new(0),
            tx_cur: Cell::new(0),
            label,
            ctx: attached.ctx,
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
        let n = self.rx.len();
        for attempt in 0..2 {
            let start = self.rx_cur.get();
            for k in 0..n {
                let i = (start + k) % n;
                let ring = &self.rx[i];
                match rx_take(ring, self.ctx.pool()) {
                    Rx::Empty => continue,
                    Rx::Packet { buf, len } => {
                        self.rx_cur.set(i);
                        let meta = NetmapMeta {
                            timestamp: ring.ts(),
                            len,
                            ring: ring.index,
                            vlan: None,
                        };
                        // SAFETY: `buf` was just swapped out of the slot: no slot, pool entry
                        // or other token names it; `len` was checked against the buffer size.
                        let token = unsafe {
                            Token::new(
                                nethuns_core::BufferDesc::new(buf as usize),
                                len,
                                nethuns_core::Context::pool_id(&self.ctx),
                            )
                        };
                        return Ok((token, meta));
                    }
                    Rx::NoExtra => return Err(Error::NoMemory),
                    Rx::Fragmented { len } => return Err(Error::TooBigPacket(len)),
                    Rx::Corrupt { slot, buf, len } => {
                        return Err(Error::engine(
                            "netmap",
                            format!("receiving on {} RX ring {}", self.label, ring.index),
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("slot {slot} holds buffer {buf} of length {len}; skipped"),
                            ),
                        ))
                    }
                }
            }
            if attempt == 0 {
                self.rx_sync()?;
            }
        }
        Err(Error::NoPacket)
    }

    fn rx_sync(&self) -> Result<()> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let r = self.port.rx_sync();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        r.map_err(|e| Error::os(format!("NIOCRXSYNC on {}", self.label), e))
    }

    /// Issues a TX sync: the kernel sends what `send` queued and reclaims completed slots.
    pub(crate) fn tx_sync(&self) -> Result<()> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let r = self.port.tx_sync();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        r.map_err(|e| Error::os(format!("NIOCTXSYNC on {}", self.label), e))
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
        let mem = *self.ctx.pool().mem();
        if packet.len() > mem.buf_size() as usize || packet.len() > u16::MAX as usize {
            return Err(Error::TooBigPacket(packet.len()));
        }
        let n = self.tx.len();
        for attempt in 0..2 {
            let start = self.tx_cur.get();
            for k in 0..n {
                let i = (start + k) % n;
                if tx_put(&self.tx[i], &mem, packet) == Tx::Queued {
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

    /// Slots queued or in flight on the bound TX rings.
    pub(crate) fn tx_pending(&self) -> u32 {
        self.tx.iter().map(tx_pending).sum()
    }

    /// Waits up to `timeout_ms` for packets (`poll`).
    pub(crate) fn wait_rx(&self, timeout_ms: i32) -> Result<bool> {
        self.port
            .wait_rx(timeout_ms)
            .map_err(|e| Error::os(format!("poll on {}", self.label), e))
    }
}
