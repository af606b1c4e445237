//! [`Sock`]: one RX/TX queue pair of a DPDK port as a nethuns [`Socket`].
//!
//! RX (`rx.rs`): `rte_eth_rx_burst` refills a local array of up to [`BURST`](crate::BURST) mbufs, handed out
//! one by one as tokens naming the mbuf (no copy). TX (`tx.rs`): `send` takes an mbuf from a
//! local stash (refilled with one `rte_pktmbuf_alloc_bulk`), copies the frame in and queues
//! it; a full burst or `flush` submits with `rte_eth_tx_burst`, and frees what the driver did
//! not take.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use nethuns_core::frame::ETH_HLEN;
use nethuns_core::{
    batch::BatchSink, Capabilities, Context, Error, Payload, Result, Socket, Stats, Token, Unsent,
};

use crate::context::DpdkContext;
use crate::eal;
use crate::error;
use crate::flags::{DpdkFlags, DpdkOptions};
use crate::mbuf::{RxBurst, Stash, TxBurst};
use crate::port::{LinkStatus, Liveness, Port, PortInfo, PortStats};
use crate::rx::{Failed, Refill};
use crate::sys::EthQueue;
use crate::Meta;

/// How many times `flush` offers the rest of a burst to a driver that took only part of it.
pub(crate) const TX_RETRIES: usize = 8;

/// Most bursts `Sock::drop` reads to empty the RX queue before the port stops.
const DRAIN_BURSTS: usize = 256;

/// A DPDK socket: one queue (RX and TX) of a port that it owns, and a mempool as its
/// [`Context`].
///
/// Created with [`Socket::create`] from a portspec: a PCI address (`0000:01:00.0`) or a virtual
/// device (`net_ring0`, `net_null0`, `net_af_packet0,iface=veth0`, `net_af_xdp0,iface=veth0`,
/// `net_tap0`), which is hot-plugged and removed again when the socket is dropped. The EAL is
/// initialised at the first socket (see [`Eal`](crate::Eal)). A device in a network namespace
/// (AF_PACKET/AF_XDP vdevs) must be created from a thread inside that namespace.
///
/// `Send` but not `Sync`: one thread at a time drives the queue; payloads and tokens may travel
/// to other threads with a clone of the context.
pub struct Sock {
    // Field order matters: the bursts (mbufs of the mempool) and the port (whose queues
    // reference the mempool) are dropped before the context (the mempool).
    /// The last RX burst (mbufs not handed out yet).
    pub(crate) rx: RxBurst,
    /// Filled mbufs waiting for `rte_eth_tx_burst`.
    pub(crate) tx: TxBurst,
    /// Fresh mbufs for the next sends.
    pub(crate) stash: Stash,
    /// The queue pair the bursts use.
    pub(crate) q: EthQueue,
    pub(crate) port: Port,
    pub(crate) ctx: DpdkContext,
    /// The largest untagged frame `send` accepts: min(MTU + 14, mbuf room).
    pub(crate) max_untagged: usize,
    /// Leave stripped VLAN tags out of the data ([`DpdkOptions::vlan_strip`]).
    pub(crate) vlan_strip: bool,
    /// Single-segment frames taken from the driver (the ones still in the RX burst are not
    /// handed out yet: `stats` subtracts them).
    pub(crate) received: Cell<u64>,
    /// Frames the driver took for transmission.
    pub(crate) sent: Cell<u64>,
    pub(crate) tx_dropped: Cell<u64>,
    /// Frames the driver refused since the last `try_flush` (which reports them).
    pub(crate) tx_unreported: Cell<u64>,
    pub(crate) rx_multiseg_dropped: Cell<u64>,
    /// Other sockets' mempools whose mbufs `send_payload` queued here (the driver frees them
    /// there, maybe later than their own socket lives), kept until this socket drops.
    foreign: RefCell<Vec<DpdkContext>>,
    /// The port's counters at `create` (`stats` counts from there).
    base: PortStats,
    /// When the idle receive path next checks the interface.
    pub(crate) next_check: Cell<Instant>,
    /// What the last `Refill::Failed` was.
    pub(crate) failed: Cell<Failed>,
    /// Empty polls left before the next idle check (0: the next empty poll checks; so does
    /// every one while the link is not up).
    pub(crate) idle_countdown: Cell<u32>,
    /// What the last check found (`Gone` sticks).
    pub(crate) liveness: Cell<Liveness>,
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("port", &self.port.info)
            .field("queue", &self.port.queue)
            .field("context", &self.ctx)
            .finish()
    }
}

impl Sock {
    /// Opens queue `queue` (`None` = 0) of the port named by `portspec`, with a mempool of
    /// `flags` and the port settings `options` (ring sizes, offloads, promiscuous mode).
    /// [`Socket::create`] is this with [`DpdkOptions::process_default`].
    pub fn create_with_options(
        portspec: &str,
        queue: Option<usize>,
        flags: DpdkFlags,
        options: DpdkOptions,
    ) -> Result<Self> {
        flags.validate()?;
        options.validate()?;
        eal::ensure()?;
        let (port, ctx, q) = Port::setup(portspec, queue, &flags, &options, |socket, what| {
            DpdkContext::create(&flags, socket, what)
        })?;
        let base = port.stats().unwrap_or_default();
        // What one mbuf holds (the data room minus headroom).
        let mbuf_room = flags.max_frame();
        Ok(Sock {
            max_untagged: (port.send_mtu() + ETH_HLEN).min(mbuf_room),
            vlan_strip: options.vlan_strip,
            rx: RxBurst::new(),
            tx: TxBurst::new(),
            stash: Stash::new(ctx.mempool()),
            q,
            port,
            ctx,
            received: Cell::new(0),
            sent: Cell::new(0),
            tx_dropped: Cell::new(0),
            tx_unreported: Cell::new(0),
            rx_multiseg_dropped: Cell::new(0),
            base,
            next_check: Cell::new(Instant::now()),
            idle_countdown: Cell::new(0),
            failed: Cell::new(Failed::NoMemory),
            foreign: RefCell::new(Vec::new()),
            liveness: Cell::new(Liveness::Up),
        })
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    /// The queue this socket receives from and sends on.
    pub fn queue(&self) -> u16 {
        self.port.queue
    }

    /// Facts about the port (name, driver, queues, MTU, MAC).
    pub fn port_info(&self) -> &PortInfo {
        &self.port.info
    }

    /// The largest untagged frame `send` accepts: the interface MTU + 14, bounded by the mbuf
    /// room (an 802.1Q-tagged frame may be 4 bytes longer).
    pub fn max_frame(&self) -> usize {
        self.max_untagged
    }

    /// Whether received packets carry a timestamp in [`Meta::timestamp`](crate::Meta) (the
    /// driver offers one and [`DpdkOptions::rx_timestamp`] asked for it).
    pub fn has_rx_timestamp(&self) -> bool {
        self.port.timestamp.is_some()
    }

    /// Whether RSS is configured on the port: the driver hashes IPv4/IPv6 TCP/UDP flows, and
    /// reports the hash in [`Meta::rss_hash`](crate::Meta) of such packets.
    pub fn rss_enabled(&self) -> bool {
        self.port.rss
    }

    /// The port's link (up, speed, duplex), as the driver knows it now (no waiting).
    pub fn link(&self) -> Result<LinkStatus> {
        self.port.link()
    }

    /// Submits pending frames, then asks the driver to free the mbufs of completed
    /// transmissions still held by the TX ring (`rte_eth_tx_done_cleanup`); returns how many
    /// it freed. Drivers otherwise free them lazily, when the ring fills. Not every driver
    /// implements it: those report an [`Error::Engine`] with code `ENOTSUP`.
    pub fn tx_done_cleanup(&self) -> Result<u32> {
        self.flush();
        self.port.tx_done_cleanup(&self.q)
    }

    /// The port's own counters (`rte_eth_stats_get`, port-wide, since the port was started),
    /// with the frames the driver refused from this socket in `tx_dropped`. The engine-neutral
    /// numbers are [`Socket::stats`].
    pub fn native_stats(&self) -> Result<PortStats> {
        let mut s = self.port.stats()?;
        s.tx_dropped = self.tx_dropped.get();
        Ok(s)
    }

    /// Received multi-segment packets this socket dropped (nethuns hands out single-segment
    /// mbufs only; RX scatter is not enabled, so drivers should not produce them).
    pub fn rx_multiseg_dropped(&self) -> u64 {
        self.rx_multiseg_dropped.get()
    }

    /// Keeps mempool `src` (another socket's) alive as long as this socket: its mbufs are
    /// in this socket's TX path.
    pub(crate) fn keep_pool(&self, src: &DpdkContext) {
        let mut f = self.foreign.borrow_mut();
        if !f.iter().any(|c| c.pool_id() == src.pool_id()) {
            src.lend();
            f.push(src.clone());
        }
    }

    /// Frames queued by `send` and not yet submitted.
    pub fn pending(&self) -> usize {
        self.tx.len()
    }
}

impl Socket for Sock {
    type Context = DpdkContext;
    type Metadata = Meta;
    type Flags = DpdkFlags;

    /// [`Sock::create_with_options`] with the process's [`DpdkOptions`] (the defaults unless
    /// [`DpdkOptions::set_process_default`] changed them).
    fn create(portspec: &str, queue: Option<usize>, flags: DpdkFlags) -> Result<Self> {
        Self::create_with_options(portspec, queue, flags, DpdkOptions::process_default())
    }

    #[inline]
    fn recv_token(&self) -> Result<(Token, Meta)> {
        self.recv_as(|s, m| m.into_token(&s.ctx))
    }

    #[inline]
    fn recv(&self) -> Result<(Payload<'_, DpdkContext>, Meta)> {
        self.recv_as(|s, m| m.into_payload(&s.ctx))
    }

    /// One `rte_eth_rx_burst` (unless the last burst has packets left), its packets straight
    /// into `sink`.
    #[inline]
    fn fill_batch(&self, sink: &mut BatchSink<'_, Meta>) -> Result<()> {
        if sink.remaining() == 0 {
            return Ok(());
        }
        if self.rx.is_empty() {
            match self.refill() {
                Refill::Got => {}
                // Nothing to read: an empty batch.
                Refill::Empty => return Ok(()),
                Refill::Failed => return Err(self.failure()),
            }
        }
        // As many as the sink takes (a multi-segment mbuf, dropped, uses up its place).
        for _ in 0..self.rx.len().min(sink.remaining()) {
            let Some(mut m) = self.rx.pop() else {
                break;
            };
            if m.nb_segs() != 1 {
                self.drop_multiseg(m);
                continue;
            }
            let meta = self.meta_of(&mut m);
            if let Err((t, _)) = sink.push(m.into_token(&self.ctx), meta) {
                // Unreachable (room was checked); kept total.
                drop(self.ctx.packet(t));
            }
        }
        Ok(())
    }

    #[inline]
    fn send(&self, packet: &[u8]) -> Result<()> {
        self.queue_copy(packet)
    }

    /// Queues the frames in order, with one `rte_eth_tx_burst` per 32 (the mbufs come from
    /// one `rte_pktmbuf_alloc_bulk` per 32).
    #[inline]
    fn send_batch(&self, packets: &[&[u8]]) -> Result<usize> {
        let mut n = 0;
        for p in packets {
            match self.queue_copy(p) {
                Ok(()) => n += 1,
                Err(e) if n == 0 => {
                    if self.tx.len() > 0 {
                        self.flush_tx();
                    }
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        if self.tx.len() > 0 {
            self.flush_tx();
        }
        Ok(n)
    }

    /// `fill` writes straight into the mbuf that is sent.
    #[inline]
    fn send_with<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        self.send_in_place(len, fill)
    }

    /// A payload of any DPDK socket of this process (an mbuf) is handed to the driver itself,
    /// no copy (its mempool is kept alive as long as this socket); any other is copied.
    #[inline]
    fn send_payload<'p, C: Context>(
        &self,
        payload: Payload<'p, C>,
    ) -> std::result::Result<(), Unsent<'p, C>> {
        self.send_mbuf_or_copy(payload)
    }

    fn flush(&self) {
        if self.tx.len() > 0 {
            self.flush_tx();
        }
    }

    /// Submits what is queued; an error if the driver refused frames since the last
    /// `try_flush` (in this flush or in one `send` made when a burst filled):
    /// [`Error::InterfaceDown`] if the interface is gone or down, else an [`Error::Engine`]
    /// (`ENOBUFS`) with the count.
    fn try_flush(&self) -> Result<()> {
        self.flush();
        let dropped = self.tx_unreported.replace(0);
        if dropped == 0 {
            return Ok(());
        }
        if self.port.liveness() != Liveness::Up {
            return Err(Error::InterfaceDown(self.port.down_name()));
        }
        Err(error::engine(
            format!(
                "flushing port {} ({}) queue {}: the driver refused {dropped} frame(s) (TX ring \
                 full after {TX_RETRIES} tries), freed",
                self.port.id, self.port.info.name, self.port.queue
            ),
            -libc::ENOBUFS,
        ))
    }

    /// `received` and `sent` are counted by the socket since `create` (`sent`: frames the
    /// driver took). The rest is the port's counters since `create`, port-wide (DPDK counts
    /// per port; the port is this socket's alone, but a multi-queue NIC's drops on other
    /// queues count too): `dropped` = `imissed` (RX ring full) + `rx_nombuf` (no mbuf to
    /// receive into); `filtered` is `None` (no filters); `send_errors` = frames the driver
    /// refused (freed by `flush`) + the port's `oerrors`.
    fn stats(&self) -> Result<Stats> {
        let s = self.port.stats()?;
        let since = |now: u64, base: u64| now.saturating_sub(base);
        let waiting = self.rx.len();
        Ok(Stats {
            received: self.received.get() - waiting as u64,
            dropped: Some(
                since(s.imissed, self.base.imissed) + since(s.rx_nombuf, self.base.rx_nombuf),
            ),
            filtered: None,
            sent: self.sent.get(),
            send_errors: self.tx_dropped.get() + since(s.oerrors, self.base.oerrors),
        })
    }

    /// `max_frame` = min(the interface MTU + 14, the mbuf room) (the kernel interface's MTU
    /// for net_af_packet / net_af_xdp / net_tap, else the port's); no epoch timestamps
    /// ([`Meta::timestamp`](crate::Meta) holds the NIC clock where the driver stamps);
    /// zero-copy receive (payloads are the mbufs); no pollable descriptor (poll-mode
    /// drivers); no filters.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_frame: self.max_untagged,
            min_frame: ETH_HLEN,
            timestamps: false,
            zero_copy: true,
            pollable_fd: None,
            filters: false,
        }
    }

    #[inline]
    fn context(&self) -> &DpdkContext {
        &self.ctx
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        if self.tx.len() > 0 {
            // Best effort: what the driver takes now goes out before the port stops.
            self.flush_tx();
        }
        self.stash.free_all();
        self.rx.free_all();
        // Drain the RX queue: mbufs of this pool may still wait there (a net_ring loops TX back
        // to RX, and keeps its rings after the port is closed). Bounded: net_null never ends.
        for _ in 0..DRAIN_BURSTS {
            if self.rx.receive(&self.q) == 0 {
                break;
            }
            self.rx.free_all();
        }
        // Then `port` (stop, close, remove) and `ctx` (mempool, once no clone is left) drop.
    }
}
