//! [`Sock`]: one RX/TX queue pair of a DPDK port as a nethuns [`Socket`].
//!
//! RX: `rte_eth_rx_burst` refills a local array of up to [`BURST`] mbufs, handed out one by one
//! as tokens naming the mbuf (no copy). TX: `send` takes an mbuf from a local stash (refilled
//! with one `rte_pktmbuf_alloc_bulk`), copies the frame in and queues it; a full burst or
//! `flush` submits with `rte_eth_tx_burst`, and frees what the driver did not take.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::time::{Duration, Instant};

use dpdk_sys::rte_mbuf;
use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::{
    batch::BatchSink, check_frame_len, BufferDesc, Capabilities, Context, Error, Payload, Result,
    Socket, Stats, Token, Unsent,
};

use crate::eal;
use crate::error;
use crate::flags::{DpdkFlags, DpdkOptions, BURST};
use crate::mempool::DpdkContext;
use crate::port::{LinkStatus, Liveness, Port, PortInfo, PortStats};
use crate::Meta;

/// How many times `flush` offers the rest of a burst to a driver that took only part of it.
const TX_RETRIES: usize = 8;

/// Most bursts `Sock::drop` reads to empty the RX queue before the port stops.
const DRAIN_BURSTS: usize = 256;

/// How often, at most, the idle receive path checks that the interface still exists and is
/// up (a deletion is reported within this, well under the contract's 100 ms).
const LIVENESS_EVERY: Duration = Duration::from_millis(10);
/// Empty polls in a row between two checks of the mempool and the link (the first empty poll
/// after traffic checks): each check costs more than the poll itself (the mempool count, the
/// clock read of the liveness check).
const IDLE_CHECK_EVERY: u32 = 32;

const F_RX_VLAN: u64 = dpdk_sys::RTE_MBUF_F_RX_VLAN as u64;
const F_RX_VLAN_STRIPPED: u64 = dpdk_sys::RTE_MBUF_F_RX_VLAN_STRIPPED as u64;
const F_RX_RSS_HASH: u64 = dpdk_sys::RTE_MBUF_F_RX_RSS_HASH as u64;

/// The last RX burst: `bufs[head..len]` are received mbufs not handed out yet
/// (`head <= len <= BURST`).
struct RxBurst {
    bufs: [*mut rte_mbuf; BURST],
    head: usize,
    len: usize,
}

/// `bufs[..len]`: filled mbufs waiting for `rte_eth_tx_burst` (`len < BURST` between calls);
/// `stash[..stash_len]`: pre-allocated empty mbufs for the next sends (`stash_len <= BURST`).
pub(crate) struct TxBurst {
    pub(crate) bufs: [*mut rte_mbuf; BURST],
    pub(crate) len: usize,
    pub(crate) stash: [*mut rte_mbuf; BURST],
    pub(crate) stash_len: usize,
}

impl TxBurst {
    fn new() -> Self {
        TxBurst {
            bufs: [std::ptr::null_mut(); BURST],
            len: 0,
            stash: [std::ptr::null_mut(); BURST],
            stash_len: 0,
        }
    }
}

/// What [`Sock::refill`] found.
enum Refill {
    Got,
    Empty,
    Failed,
}

/// Why a refill failed (the error is made when it is returned).
#[derive(Clone, Copy)]
enum Failed {
    NoMemory,
    Down,
}

/// What [`Sock::next_mbuf`] found.
enum Next {
    Mbuf(*mut rte_mbuf),
    Empty,
    Failed,
}

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
///
/// The burst arrays live in `UnsafeCell`s: `Sock` is `!Sync`, and each method takes its
/// `&mut` to them for a stretch that runs no caller code (`send_with` lets go before it calls
/// the caller's closure), so no two such references exist at once.
pub struct Sock {
    // Field order matters: the port (whose queues reference the mempool) is dropped before the
    // context (the mempool).
    port: Port,
    ctx: DpdkContext,
    pool_id: u32,
    /// The largest untagged frame `send` accepts: min(MTU + 14, mbuf room).
    max_untagged: usize,
    /// What one mbuf holds (the data room minus headroom).
    mbuf_room: usize,
    /// Leave stripped VLAN tags out of the data ([`DpdkOptions::vlan_strip`]).
    vlan_strip: bool,
    rx: UnsafeCell<RxBurst>,
    pub(crate) tx: UnsafeCell<TxBurst>,
    /// Single-segment frames taken from the driver (the ones still in the RX burst are not
    /// handed out yet: `stats` subtracts them).
    received: Cell<u64>,
    /// Frames the driver took for transmission.
    sent: Cell<u64>,
    tx_dropped: Cell<u64>,
    /// Frames the driver refused since the last `try_flush` (which reports them).
    tx_unreported: Cell<u64>,
    rx_multiseg_dropped: Cell<u64>,
    /// Other sockets' mempools whose mbufs `send_payload` queued here (the driver frees them
    /// there, maybe later than their own socket lives), kept until this socket drops.
    foreign: RefCell<Vec<DpdkContext>>,
    /// The port's counters at `create` (`stats` counts from there).
    base: PortStats,
    /// When the idle receive path next checks the interface.
    next_check: Cell<Instant>,
    /// What the last `Refill::Failed` was.
    failed: Cell<Failed>,
    /// Empty polls left before the next idle check (0: the next empty poll checks; so does
    /// every one while the link is not up).
    idle_countdown: Cell<u32>,
    /// What the last check found (`Gone` sticks).
    liveness: Cell<Liveness>,
}

// SAFETY: the raw mbuf pointers in the burst arrays are owned by this socket (not shared);
// DPDK's port queue may be polled from any thread as long as one thread at a time does, which
// `!Sync` (RefCell) guarantees.
unsafe impl Send for Sock {}

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
        let (port, ctx) = Port::setup(portspec, queue, &flags, &options, |socket, what| {
            DpdkContext::create(&flags, socket, what)
        })?;
        let base = port.stats().unwrap_or_default();
        let mbuf_room = flags.max_frame();
        Ok(Sock {
            pool_id: ctx.pool_id(),
            max_untagged: (port.send_mtu() + ETH_HLEN).min(mbuf_room),
            mbuf_room,
            vlan_strip: options.vlan_strip,
            port,
            ctx,
            rx: UnsafeCell::new(RxBurst {
                bufs: [std::ptr::null_mut(); BURST],
                head: 0,
                len: 0,
            }),
            tx: UnsafeCell::new(TxBurst::new()),
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
        self.port.tx_done_cleanup()
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

    /// What one mbuf holds (the data room minus headroom).
    pub(crate) fn mbuf_room(&self) -> usize {
        self.mbuf_room
    }

    /// Keeps mempool `src` (another socket's) alive as long as this socket: its mbufs are
    /// in this socket's TX path.
    pub(crate) fn keep_pool(&self, src: &DpdkContext) {
        let mut f = self.foreign.borrow_mut();
        if !f.iter().any(|c| c.pool_id() == src.pool_id()) {
            f.push(src.clone());
        }
    }

    /// Frames queued by `send` and not yet submitted.
    pub fn pending(&self) -> usize {
        // SAFETY: a read of the TX state, no other reference to it is live (type docs).
        unsafe { (*self.tx.get()).len }
    }

    /// Refills the RX burst from the driver (one `rte_eth_rx_burst`): `Got`, `Empty` (nothing
    /// came), or `Failed` with the idle checks' finding in `self.failed`. (No `Result`
    /// here: an `Error` passed up through the inlined layers is copied at each one, which
    /// costs the empty poll more than the poll itself.)
    #[inline(always)]
    fn refill(&self, rx: &mut RxBurst) -> Refill {
        // SAFETY: the port is started with this RX queue; bufs has room for BURST pointers,
        // and this socket (!Sync) is the only poller of the queue.
        let n = unsafe {
            dpdk_sys::inline::rx_burst(
                self.port.id,
                self.port.queue,
                rx.bufs.as_mut_ptr(),
                BURST as u16,
            )
        };
        if n == 0 {
            let left = self.idle_countdown.get();
            if left != 0 {
                self.idle_countdown.set(left - 1);
                return Refill::Empty;
            }
            return match self.idle_check(rx) {
                Ok(()) => Refill::Got,
                Err(Error::NoPacket) => Refill::Empty,
                Err(Error::NoMemory) => {
                    self.failed.set(Failed::NoMemory);
                    Refill::Failed
                }
                // check_alive's InterfaceDown, the only other error of idle_check.
                Err(_) => {
                    self.failed.set(Failed::Down);
                    Refill::Failed
                }
            };
        }
        self.got_burst(rx, usize::from(n));
        Refill::Got
    }

    /// The error of a `Refill::Failed`.
    #[cold]
    #[inline(never)]
    fn failure(&self) -> Error {
        match self.failed.get() {
            Failed::NoMemory => Error::NoMemory,
            Failed::Down => Error::InterfaceDown(self.port.down_name()),
        }
    }

    #[inline(always)]
    fn got_burst(&self, rx: &mut RxBurst, n: usize) {
        self.idle_countdown.set(0);
        self.received.set(self.received.get() + n as u64);
        rx.head = 0;
        rx.len = n;
    }

    /// The empty poll's occasional checks: the mempool (tell "nothing arrived" from "no mbuf
    /// to receive into") and the link.
    #[cold]
    #[inline(never)]
    fn idle_check(&self, rx: &mut RxBurst) -> Result<()> {
        // Released mbufs waiting for a bulk free go back first.
        self.ctx.flush_released();
        // Some drivers (net_null) allocate a whole burst at once and give nothing when fewer
        // are free.
        let mut avail = self.ctx.available_here() as usize;
        if avail < BURST {
            // Give the idle TX stash back first: receiving needs the mbufs more.
            // SAFETY: no other reference to the TX state is live (type docs).
            let tx = unsafe { &mut *self.tx.get() };
            if tx.stash_len > 0 {
                // SAFETY: the stash mbufs are allocated, unused and owned by this socket.
                unsafe {
                    dpdk_sys::rte_pktmbuf_free_bulk(tx.stash.as_mut_ptr(), tx.stash_len as u32)
                };
                tx.stash_len = 0;
                avail = self.ctx.available_here() as usize;
            }
        }
        self.check_alive()?;
        // Up: the next IDLE_CHECK_EVERY - 1 empty polls skip the checks (once the link is down
        // or gone, check_alive returned above and every poll says so).
        self.idle_countdown.set(IDLE_CHECK_EVERY - 1);
        if avail == 0 {
            return Err(Error::NoMemory);
        }
        if avail < BURST {
            // SAFETY: as in refill, with avail < BURST pointers of room.
            let n = unsafe {
                dpdk_sys::inline::rx_burst(
                    self.port.id,
                    self.port.queue,
                    rx.bufs.as_mut_ptr(),
                    avail as u16,
                )
            };
            if n > 0 {
                self.got_burst(rx, usize::from(n));
                return Ok(());
            }
        }
        Err(Error::NoPacket)
    }

    /// On an empty burst, at most every [`LIVENESS_EVERY`]: whether the interface still
    /// exists and is up. `InterfaceDown` once it is gone (for good) or while it is down.
    #[inline]
    fn check_alive(&self) -> Result<()> {
        if self.liveness.get() != Liveness::Gone {
            let now = Instant::now();
            if now >= self.next_check.get() {
                self.next_check.set(now + LIVENESS_EVERY);
                self.liveness.set(self.port.liveness());
            }
        }
        match self.liveness.get() {
            Liveness::Up => Ok(()),
            Liveness::Down | Liveness::Gone => Err(Error::InterfaceDown(self.port.down_name())),
        }
    }

    /// Puts back the VLAN tag the driver stripped (in front of the EtherType, in the mbuf's
    /// headroom), so the data is the wire frame; false if it cannot (no headroom, too short).
    ///
    /// # Safety
    /// `m` is a received, direct, single-segment mbuf this socket owns and has not handed out.
    unsafe fn reinsert_vlan(m: *mut rte_mbuf) -> bool {
        // SAFETY: per the contract m is ours alone; the headroom before data_off is part of the
        // mbuf's buffer, so data_off - 4 .. data_off + data_len is inside it.
        unsafe {
            let r = &mut *m;
            if usize::from(r.data_off) < VLAN_HLEN || usize::from(r.data_len) < 12 {
                return false;
            }
            r.data_off -= VLAN_HLEN as u16;
            r.data_len += VLAN_HLEN as u16;
            r.pkt_len += VLAN_HLEN as u32;
            let p = (r.buf_addr as *mut u8).add(usize::from(r.data_off));
            std::ptr::copy(p.add(VLAN_HLEN), p, 12);
            let tci = r.vlan_tci.to_be_bytes();
            std::ptr::copy_nonoverlapping([0x81, 0x00, tci[0], tci[1]].as_ptr(), p.add(12), 4);
            r.ol_flags &= !F_RX_VLAN_STRIPPED;
            true
        }
    }

    /// The next received single-segment mbuf (multi-segment ones are freed and counted),
    /// refilling the RX burst when it is used up; ownership moves to the caller.
    #[inline(always)]
    fn next_mbuf(&self, rx: &mut RxBurst) -> Next {
        if rx.head == rx.len {
            match self.refill(rx) {
                Refill::Got => {}
                Refill::Empty => return Next::Empty,
                Refill::Failed => return Next::Failed,
            }
        }
        // SAFETY: head < len <= BURST (RxBurst invariant).
        let m = unsafe { *rx.bufs.get_unchecked(rx.head) };
        rx.head += 1;
        // SAFETY: m was just received: a valid mbuf.
        if unsafe { (*m).nb_segs } != 1 {
            return self.next_after_multiseg(rx, m);
        }
        Next::Mbuf(m)
    }

    /// `next_mbuf` after multi-segment mbuf `m`: drops it, then the same in a loop (kept out
    /// of the fast path).
    #[cold]
    #[inline(never)]
    fn next_after_multiseg(&self, rx: &mut RxBurst, m: *mut rte_mbuf) -> Next {
        let mut m = m;
        loop {
            self.drop_multiseg(m);
            if rx.head == rx.len {
                match self.refill(rx) {
                    Refill::Got => {}
                    Refill::Empty => return Next::Empty,
                    Refill::Failed => return Next::Failed,
                }
            }
            // SAFETY: head < len <= BURST (RxBurst invariant).
            m = unsafe { *rx.bufs.get_unchecked(rx.head) };
            rx.head += 1;
            // SAFETY: m was just received: a valid mbuf.
            if unsafe { (*m).nb_segs } == 1 {
                return Next::Mbuf(m);
            }
        }
    }

    /// Frees received multi-segment mbuf `m` (ours, not handed out), counted.
    #[cold]
    #[inline(never)]
    fn drop_multiseg(&self, m: *mut rte_mbuf) {
        // SAFETY: m is ours and not handed out: free the whole chain.
        unsafe { dpdk_sys::nh_pktmbuf_free(m) };
        self.rx_multiseg_dropped
            .set(self.rx_multiseg_dropped.get() + 1);
        self.received.set(self.received.get() - 1);
    }

    /// `recv` / `recv_token` (`make` turns the token into what they return): the packet
    /// path, with no call in it, when the RX burst holds a single-segment mbuf; else
    /// [`Sock::recv_slow`].
    #[inline(always)]
    fn recv_as<'a, T, F: Fn(&'a Self, Token) -> T>(&'a self, make: F) -> Result<(T, Meta)> {
        // SAFETY: no other reference to the RX state is live (type docs).
        let rx = unsafe { &mut *self.rx.get() };
        if rx.head == rx.len {
            return self.recv_slow(make);
        }
        // SAFETY: head < len <= BURST (RxBurst invariant).
        let m = unsafe { *rx.bufs.get_unchecked(rx.head) };
        // SAFETY: m was received: a valid mbuf.
        if unsafe { (*m).nb_segs } != 1 {
            return self.recv_slow(make);
        }
        rx.head += 1;
        let (token, meta) = self.token_of(m);
        Ok((make(self, token), meta))
    }

    /// `recv_as` at the end of a burst (the refill, the empty poll) or after a multi-segment
    /// mbuf; out of line, so that the packet path saves no registers for its call.
    #[inline(never)]
    fn recv_slow<'a, T, F: Fn(&'a Self, Token) -> T>(&'a self, make: F) -> Result<(T, Meta)> {
        // SAFETY: no other reference to the RX state is live (type docs).
        let rx = unsafe { &mut *self.rx.get() };
        match self.next_mbuf(rx) {
            Next::Mbuf(m) => {
                let (token, meta) = self.token_of(m);
                Ok((make(self, token), meta))
            }
            Next::Empty => Err(Error::NoPacket),
            Next::Failed => Err(self.failure()),
        }
    }

    /// Turns received single-segment mbuf `m` (from `next_mbuf`) into a token and its
    /// metadata.
    #[inline(always)]
    fn token_of(&self, m: *mut rte_mbuf) -> (Token, Meta) {
        // SAFETY: m was just received: a valid single-segment mbuf of this socket's pool,
        // ours alone.
        let r = unsafe { &*m };
        let mut flags = r.ol_flags;
        if flags & F_RX_VLAN_STRIPPED != 0 && !self.vlan_strip {
            // SAFETY: m is a received single-segment mbuf (checked above), direct with one
            // reference as the driver made it, not handed out yet.
            unsafe { Self::reinsert_vlan(m) };
            // SAFETY: as above.
            flags = unsafe { (*m).ol_flags };
        }
        // SAFETY: as above (reinsert_vlan may have moved data_off / data_len).
        let r = unsafe { &*m };
        let data_len = r.data_len;
        // SAFETY: a single-segment mbuf's data is data_len bytes at buf_addr + data_off.
        let head = unsafe {
            std::slice::from_raw_parts(
                (r.buf_addr as *const u8).add(usize::from(r.data_off)),
                usize::from(data_len).min(ETH_HLEN + VLAN_HLEN),
            )
        };
        let meta = Meta {
            len: r.pkt_len,
            port: self.port.id,
            queue: self.port.queue,
            // SAFETY: the hash union is plain data (any bits are a valid u32); `rss` is the
            // member the flag says is set.
            rss_hash: (flags & F_RX_RSS_HASH != 0)
                .then_some(unsafe { r.__bindgen_anon_2.hash.rss }),
            // A tag still out of the data (`vlan_strip`) is in vlan_tci; otherwise the frame's
            // own outer tag, as on the wire.
            vlan_tci: if flags & (F_RX_VLAN | F_RX_VLAN_STRIPPED) == F_RX_VLAN | F_RX_VLAN_STRIPPED
            {
                Some(r.vlan_tci)
            } else {
                frame::outer_vlan(head)
            },
            timestamp: self.port.timestamp.and_then(|(off, mask)| {
                // SAFETY: the dynfield offset was registered by the driver for every mbuf: 8
                // bytes inside the mbuf header at `off`.
                (flags & mask != 0).then(|| unsafe {
                    std::ptr::read_unaligned((m as *const u8).add(off as usize).cast::<u64>())
                })
            }),
        };
        // SAFETY: ownership of the received mbuf m (of this socket's pool) moves into the
        // token (next_mbuf moved the RX burst's head past it).
        let token = unsafe {
            Token::new(
                BufferDesc::new(m as usize),
                u32::from(data_len),
                self.pool_id,
            )
        };
        (token, meta)
    }

    /// Submits the pending TX burst; frees what the driver would not take (counted in
    /// `tx_dropped`, and reported by the next `try_flush`).
    fn flush_tx(&self, tx: &mut TxBurst) {
        let mut sent = 0usize;
        for _ in 0..TX_RETRIES {
            if sent == tx.len {
                break;
            }
            // SAFETY: bufs[sent..len] are filled mbufs owned by this socket; the driver takes
            // ownership of the first `n` it returns; this socket is the queue's only user.
            let n = unsafe {
                dpdk_sys::inline::tx_burst(
                    self.port.id,
                    self.port.queue,
                    tx.bufs.as_mut_ptr().add(sent),
                    (tx.len - sent) as u16,
                )
            };
            sent += usize::from(n);
        }
        self.sent.set(self.sent.get() + sent as u64);
        if sent < tx.len {
            let rest = tx.len - sent;
            // SAFETY: bufs[sent..len] are still ours (not taken by the driver): free them.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(tx.bufs.as_mut_ptr().add(sent), rest as u32) };
            self.tx_dropped.set(self.tx_dropped.get() + rest as u64);
            self.tx_unreported
                .set(self.tx_unreported.get() + rest as u64);
        }
        tx.len = 0;
    }

    /// One empty, reset mbuf for `send`, from the stash (refilled in bulk) or the pool.
    #[inline(always)]
    pub(crate) fn take_mbuf(&self, tx: &mut TxBurst) -> Result<*mut rte_mbuf> {
        if tx.stash_len == 0 {
            return self.restock(tx);
        }
        tx.stash_len -= 1;
        // SAFETY: stash_len < BURST now (type invariant), and stash[..old len] are ours.
        Ok(unsafe { *tx.stash.get_unchecked(tx.stash_len) })
    }

    /// Refills the empty stash with one `rte_pktmbuf_alloc_bulk` and takes one; near
    /// exhaustion one mbuf at a time, after giving back released ones and what the driver
    /// completed.
    #[inline(never)]
    fn restock(&self, tx: &mut TxBurst) -> Result<*mut rte_mbuf> {
        // SAFETY: stash has room for BURST pointers; the pool is alive.
        let rc = unsafe {
            dpdk_sys::nh_pktmbuf_alloc_bulk(self.ctx.raw(), tx.stash.as_mut_ptr(), BURST as u32)
        };
        if rc == 0 {
            tx.stash_len = BURST - 1;
            return Ok(tx.stash[BURST - 1]);
        }
        self.ctx.flush_released();
        // SAFETY: the pool is alive.
        let mut m = unsafe { dpdk_sys::nh_pktmbuf_alloc(self.ctx.raw()) };
        if m.is_null() && tx.len > 0 {
            // Submitting what is pending lets the driver give completed mbufs back.
            self.flush_tx(tx);
            // SAFETY: as above.
            m = unsafe { dpdk_sys::nh_pktmbuf_alloc(self.ctx.raw()) };
        }
        if m.is_null() {
            Err(Error::NoMemory)
        } else {
            Ok(m)
        }
    }

    /// Queues filled mbuf `m` (ours) for transmission; submits a full burst.
    #[inline(always)]
    pub(crate) fn push_tx(&self, tx: &mut TxBurst, m: *mut rte_mbuf) {
        // SAFETY: len < BURST between calls (type invariant).
        unsafe { *tx.bufs.get_unchecked_mut(tx.len) = m };
        tx.len += 1;
        if tx.len == BURST {
            self.flush_tx(tx);
        }
    }

    /// `send` into `tx`: the size rule, an mbuf, the copy, queued.
    #[inline(always)]
    fn queue_copy(&self, tx: &mut TxBurst, packet: &[u8]) -> Result<()> {
        let limit = frame::send_limit(packet, self.max_untagged).min(self.mbuf_room);
        check_frame_len(packet.len(), ETH_HLEN, limit)?;
        let m = self.take_mbuf(tx)?;
        // SAFETY: m is a freshly allocated, reset, single-segment mbuf with at least
        // mbuf_room >= len bytes of data room after data_off; nothing else references it.
        unsafe {
            let dst = set_data_len(m, packet.len());
            std::ptr::copy_nonoverlapping(packet.as_ptr(), dst, packet.len());
        }
        self.push_tx(tx, m);
        Ok(())
    }
}

/// Sets a reset single-segment mbuf's data to its first `len` bytes; returns where they start.
///
/// # Safety
/// `m` is a reset, single-segment mbuf the caller owns, whose data room after `data_off`
/// holds `len` bytes.
#[inline(always)]
pub(crate) unsafe fn set_data_len(m: *mut rte_mbuf, len: usize) -> *mut u8 {
    // SAFETY: per the contract (what rte_pktmbuf_append does on a reset mbuf).
    unsafe {
        let r = &mut *m;
        debug_assert!(usize::from(r.data_off) + len <= usize::from(r.buf_len));
        r.data_len = len as u16;
        r.pkt_len = len as u32;
        (r.buf_addr as *mut u8).add(usize::from(r.data_off))
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
        self.recv_as(|_, t| t)
    }

    #[inline]
    fn recv(&self) -> Result<(Payload<'_, DpdkContext>, Meta)> {
        // SAFETY: the token was made just now from this socket's own context.
        self.recv_as(|s, t| unsafe { Payload::from_token_unchecked(t, &s.ctx) })
    }

    /// One `rte_eth_rx_burst` (unless the last burst has packets left), its packets straight
    /// into `sink`.
    #[inline]
    fn fill_batch(&self, sink: &mut BatchSink<'_, Meta>) -> Result<()> {
        // SAFETY: no other reference to the RX state is live (type docs).
        let rx = unsafe { &mut *self.rx.get() };
        if sink.remaining() == 0 {
            return Ok(());
        }
        if rx.head == rx.len {
            match self.refill(rx) {
                Refill::Got => {}
                // Nothing to read: an empty batch.
                Refill::Empty => return Ok(()),
                Refill::Failed => return Err(self.failure()),
            }
        }
        let end = rx.len.min(rx.head + sink.remaining());
        while rx.head < end {
            // SAFETY: head < end <= len <= BURST (RxBurst invariant).
            let m = unsafe { *rx.bufs.get_unchecked(rx.head) };
            rx.head += 1;
            // SAFETY: m was just received: a valid mbuf, ours.
            if unsafe { (*m).nb_segs } != 1 {
                self.drop_multiseg(m);
                continue;
            }
            let (t, meta) = self.token_of(m);
            if let Err((t, _)) = sink.push(t, meta) {
                // Unreachable (room was checked); kept total.
                drop(self.ctx.packet(t));
            }
        }
        Ok(())
    }

    #[inline]
    fn send(&self, packet: &[u8]) -> Result<()> {
        // SAFETY: no other reference to the TX state is live (type docs).
        let tx = unsafe { &mut *self.tx.get() };
        self.queue_copy(tx, packet)
    }

    /// Queues the frames in order, with one `rte_eth_tx_burst` per 32 (the mbufs come from
    /// one `rte_pktmbuf_alloc_bulk` per 32).
    #[inline]
    fn send_batch(&self, packets: &[&[u8]]) -> Result<usize> {
        // SAFETY: no other reference to the TX state is live (type docs).
        let tx = unsafe { &mut *self.tx.get() };
        let mut n = 0;
        for p in packets {
            match self.queue_copy(tx, p) {
                Ok(()) => n += 1,
                Err(e) if n == 0 => {
                    if tx.len > 0 {
                        self.flush_tx(tx);
                    }
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        if tx.len > 0 {
            self.flush_tx(tx);
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
        // SAFETY: no other reference to the TX state is live (type docs).
        let tx = unsafe { &mut *self.tx.get() };
        if tx.len > 0 {
            self.flush_tx(tx);
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
        // SAFETY: a read of the RX state, no other reference to it is live (type docs).
        let waiting = unsafe { (*self.rx.get()).len - (*self.rx.get()).head };
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
        let tx = self.tx.get_mut();
        if tx.len > 0 {
            // Best effort: what the driver takes now goes out before the port stops.
            let mut t = std::mem::replace(tx, TxBurst::new());
            self.flush_tx(&mut t);
            *self.tx.get_mut() = t;
        }
        let tx = self.tx.get_mut();
        if tx.stash_len > 0 {
            // SAFETY: the stash mbufs are ours and unused.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(tx.stash.as_mut_ptr(), tx.stash_len as u32) };
            tx.stash_len = 0;
        }
        let rx = self.rx.get_mut();
        if rx.head < rx.len {
            // SAFETY: bufs[head..len] were received and never handed out: ours to free.
            unsafe {
                dpdk_sys::rte_pktmbuf_free_bulk(
                    rx.bufs.as_mut_ptr().add(rx.head),
                    (rx.len - rx.head) as u32,
                )
            };
            rx.head = rx.len;
        }
        // Drain the RX queue: mbufs of this pool may still wait there (a net_ring loops TX back
        // to RX, and keeps its rings after the port is closed). Bounded: net_null never ends.
        let rx = self.rx.get_mut();
        for _ in 0..DRAIN_BURSTS {
            // SAFETY: the port is still started; bufs has room for BURST pointers.
            let n = unsafe {
                dpdk_sys::nh_rx_burst(
                    self.port.id,
                    self.port.queue,
                    rx.bufs.as_mut_ptr(),
                    BURST as u16,
                )
            };
            if n == 0 {
                break;
            }
            // SAFETY: the n mbufs were just received and are ours.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(rx.bufs.as_mut_ptr(), u32::from(n)) };
        }
        rx.head = 0;
        rx.len = 0;
        // Then `port` (stop, close, remove) and `ctx` (mempool, once no clone is left) drop.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag a driver stripped goes back in front of the EtherType, in the headroom.
    #[test]
    fn stripped_vlan_tag_is_put_back() {
        let mut room = vec![0u8; 256];
        let frame: Vec<u8> = (0..60u8).collect();
        room[128..188].copy_from_slice(&frame);
        // SAFETY: an all-zero rte_mbuf is plain data; only the fields below are used.
        let mut m: rte_mbuf = unsafe { std::mem::zeroed() };
        m.buf_addr = room.as_mut_ptr().cast();
        m.data_off = 128;
        m.data_len = 60;
        m.pkt_len = 60;
        m.nb_segs = 1;
        m.vlan_tci = 0x2007;
        m.ol_flags = F_RX_VLAN | F_RX_VLAN_STRIPPED;
        // SAFETY: m is a single-segment mbuf over `room`, owned here.
        assert!(unsafe { Sock::reinsert_vlan(&mut m) });
        assert_eq!((m.data_off, m.data_len, m.pkt_len), (124, 64, 64));
        assert_eq!(m.ol_flags, F_RX_VLAN);
        let data = &room[124..188];
        assert_eq!(&data[..12], &frame[..12]);
        assert_eq!(&data[12..16], &[0x81, 0x00, 0x20, 0x07]);
        assert_eq!(&data[16..], &frame[12..]);
        assert_eq!(frame::outer_vlan(data), Some(0x2007));
        // No headroom left: refused, untouched.
        m.data_off = 2;
        assert!(!unsafe { Sock::reinsert_vlan(&mut m) });
        assert_eq!(m.data_off, 2);
    }
}
