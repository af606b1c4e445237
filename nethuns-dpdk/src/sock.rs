//! [`Sock`]: one RX/TX queue pair of a DPDK port as a nethuns [`Socket`].
//!
//! RX: `rte_eth_rx_burst` refills a local array of up to [`BURST`] mbufs, handed out one by one
//! as tokens naming the mbuf (no copy). TX: `send` takes an mbuf from a local stash (refilled
//! with one `rte_pktmbuf_alloc_bulk`), copies the frame in and queues it; a full burst or
//! `flush` submits with `rte_eth_tx_burst`, and frees what the driver did not take.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use dpdk_sys::rte_mbuf;
use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::{
    check_frame_len, BufferDesc, Capabilities, Context, Error, Result, Socket, Stats, Token,
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
/// after traffic checks): each check costs more than the poll itself (the mempool count
/// walks every lcore's cache, the liveness check reads the clock).
const IDLE_CHECK_EVERY: u32 = 32;

const F_RX_VLAN: u64 = dpdk_sys::RTE_MBUF_F_RX_VLAN as u64;
const F_RX_VLAN_STRIPPED: u64 = dpdk_sys::RTE_MBUF_F_RX_VLAN_STRIPPED as u64;
const F_RX_RSS_HASH: u64 = dpdk_sys::RTE_MBUF_F_RX_RSS_HASH as u64;

struct RxBurst {
    bufs: [*mut rte_mbuf; BURST],
    head: usize,
    len: usize,
}

struct TxBurst {
    /// Filled mbufs waiting for `rte_eth_tx_burst`.
    bufs: [*mut rte_mbuf; BURST],
    len: usize,
    /// Pre-allocated empty mbufs for the next sends.
    stash: [*mut rte_mbuf; BURST],
    stash_len: usize,
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
    rx: RefCell<RxBurst>,
    tx: RefCell<TxBurst>,
    /// Frames handed out by `recv`/`recv_token`.
    received: Cell<u64>,
    /// Frames the driver took for transmission.
    sent: Cell<u64>,
    tx_dropped: Cell<u64>,
    /// Frames the driver refused since the last `try_flush` (which reports them).
    tx_unreported: Cell<u64>,
    rx_multiseg_dropped: Cell<u64>,
    /// The port's counters at `create` (`stats` counts from there).
    base: PortStats,
    /// When the idle receive path next checks the interface.
    next_check: Cell<Instant>,
    /// Empty polls since the last burst that brought packets.
    idle_polls: Cell<u32>,
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
            rx: RefCell::new(RxBurst {
                bufs: [std::ptr::null_mut(); BURST],
                head: 0,
                len: 0,
            }),
            tx: RefCell::new(TxBurst {
                bufs: [std::ptr::null_mut(); BURST],
                len: 0,
                stash: [std::ptr::null_mut(); BURST],
                stash_len: 0,
            }),
            received: Cell::new(0),
            sent: Cell::new(0),
            tx_dropped: Cell::new(0),
            tx_unreported: Cell::new(0),
            rx_multiseg_dropped: Cell::new(0),
            base,
            next_check: Cell::new(Instant::now()),
            idle_polls: Cell::new(0),
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

    /// Frames queued by `send` and not yet submitted.
    pub fn pending(&self) -> usize {
        self.tx.borrow().len
    }

    /// Refills the RX burst; returns how many mbufs arrived.
    #[inline]
    fn refill(&self, rx: &mut RxBurst) -> Result<usize> {
        // SAFETY: the port is started with this RX queue; bufs has room for BURST pointers,
        // and this socket (!Sync, borrow held) is the only poller of the queue.
        let mut n = usize::from(unsafe {
            dpdk_sys::nh_rx_burst(
                self.port.id,
                self.port.queue,
                rx.bufs.as_mut_ptr(),
                BURST as u16,
            )
        });
        if n == 0 {
            let idle = self.idle_polls.get();
            self.idle_polls.set(idle.wrapping_add(1));
            // Once the link is down or gone, every poll says so (no skipping).
            if idle % IDLE_CHECK_EVERY != 0 && self.liveness.get() == Liveness::Up {
                return Err(Error::NoPacket);
            }
            // Empty: tell "nothing arrived" from "no mbuf to receive into". Some drivers
            // (net_null) allocate a whole burst at once and give nothing when fewer are free.
            let mut avail = self.ctx.available_here() as usize;
            if avail < BURST {
                // Give the idle TX stash back first: receiving needs the mbufs more.
                let mut tx = self.tx.borrow_mut();
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
            if avail == 0 {
                return Err(Error::NoMemory);
            }
            if avail < BURST {
                // SAFETY: as above, with avail < BURST pointers of room.
                n = usize::from(unsafe {
                    dpdk_sys::nh_rx_burst(
                        self.port.id,
                        self.port.queue,
                        rx.bufs.as_mut_ptr(),
                        avail as u16,
                    )
                });
            }
            if n == 0 {
                return Err(Error::NoPacket);
            }
        }
        self.idle_polls.set(0);
        rx.head = 0;
        rx.len = n;
        Ok(n)
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

    fn meta_of(&self, m: *mut rte_mbuf) -> Meta {
        // SAFETY: m is a received mbuf this socket owns; reading its header fields and the
        // first bytes of its (single-segment) data.
        let (pkt_len, flags, vlan, rss, outer) = unsafe {
            let r = &*m;
            let data = std::slice::from_raw_parts(
                (r.buf_addr as *const u8).add(usize::from(r.data_off)),
                usize::from(r.data_len).min(ETH_HLEN + VLAN_HLEN),
            );
            (
                r.pkt_len,
                r.ol_flags,
                r.vlan_tci,
                r.__bindgen_anon_2.hash.rss,
                frame::outer_vlan(data),
            )
        };
        let timestamp = self.port.timestamp.and_then(|(off, mask)| {
            // SAFETY: the dynfield offset was registered by the driver for every mbuf.
            (flags & mask != 0).then(|| unsafe { dpdk_sys::nh_mbuf_dynfield_u64(m, off) })
        });
        Meta {
            len: pkt_len,
            port: self.port.id,
            queue: self.port.queue,
            rss_hash: (flags & F_RX_RSS_HASH != 0).then_some(rss),
            // A tag still out of the data (`vlan_strip`) is in vlan_tci; otherwise the frame's
            // own outer tag, as on the wire.
            vlan_tci: if flags & (F_RX_VLAN | F_RX_VLAN_STRIPPED) == F_RX_VLAN | F_RX_VLAN_STRIPPED
            {
                Some(vlan)
            } else {
                outer
            },
            timestamp,
        }
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
                dpdk_sys::nh_tx_burst(
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

    /// One empty mbuf for `send`, from the stash (refilled in bulk) or the pool.
    #[inline]
    fn take_mbuf(&self, tx: &mut TxBurst) -> Result<*mut rte_mbuf> {
        if tx.stash_len == 0 {
            // SAFETY: stash has room for BURST pointers; the pool is alive.
            let rc = unsafe {
                dpdk_sys::nh_pktmbuf_alloc_bulk(self.ctx.raw(), tx.stash.as_mut_ptr(), BURST as u32)
            };
            if rc == 0 {
                tx.stash_len = BURST;
            } else {
                // Nearly exhausted: one at a time; submitting what is pending lets the
                // driver give completed mbufs back.
                // SAFETY: the pool is alive.
                let mut m = unsafe { dpdk_sys::nh_pktmbuf_alloc(self.ctx.raw()) };
                if m.is_null() && tx.len > 0 {
                    self.flush_tx(tx);
                    // SAFETY: as above.
                    m = unsafe { dpdk_sys::nh_pktmbuf_alloc(self.ctx.raw()) };
                }
                return if m.is_null() {
                    Err(Error::NoMemory)
                } else {
                    Ok(m)
                };
            }
        }
        tx.stash_len -= 1;
        Ok(tx.stash[tx.stash_len])
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
        let mut rx = self.rx.borrow_mut();
        loop {
            if rx.head == rx.len {
                self.refill(&mut rx)?;
            }
            let m = rx.bufs[rx.head];
            rx.head += 1;
            // SAFETY: m is a valid mbuf just received; reading header fields.
            let (nb_segs, ol_flags) = unsafe { ((*m).nb_segs, (*m).ol_flags) };
            if nb_segs != 1 {
                // SAFETY: m is ours and not handed out: free the whole chain.
                unsafe { dpdk_sys::nh_pktmbuf_free(m) };
                self.rx_multiseg_dropped
                    .set(self.rx_multiseg_dropped.get() + 1);
                continue;
            }
            if ol_flags & F_RX_VLAN_STRIPPED != 0 && !self.vlan_strip {
                // SAFETY: m is a received single-segment mbuf (checked above), direct with
                // one reference as the driver made it, not handed out yet.
                unsafe { Self::reinsert_vlan(m) };
            }
            // SAFETY: as above; reading a header field.
            let data_len = unsafe { (*m).data_len };
            let meta = self.meta_of(m);
            self.received.set(self.received.get() + 1);
            // SAFETY: ownership of the received mbuf m (of this socket's pool) moves into the
            // token; it is no longer in the RX array's live range [head, len).
            let token = unsafe {
                Token::new(
                    BufferDesc::new(m as usize),
                    u32::from(data_len),
                    self.pool_id,
                )
            };
            return Ok((token, meta));
        }
    }

    #[inline]
    fn send(&self, packet: &[u8]) -> Result<()> {
        let limit = frame::send_limit(packet, self.max_untagged).min(self.mbuf_room);
        check_frame_len(packet.len(), ETH_HLEN, limit)?;
        let mut tx = self.tx.borrow_mut();
        let m = self.take_mbuf(&mut tx)?;
        // SAFETY: m is a freshly allocated, reset mbuf with a data room of at least
        // max_frame bytes after the headroom, so append(len) succeeds and returns a pointer to
        // `len` writable bytes; nothing else references m.
        unsafe {
            let dst = dpdk_sys::nh_pktmbuf_append(m, packet.len() as u16);
            debug_assert!(!dst.is_null());
            std::ptr::copy_nonoverlapping(packet.as_ptr(), dst.cast::<u8>(), packet.len());
        }
        let i = tx.len;
        tx.bufs[i] = m;
        tx.len += 1;
        if tx.len == BURST {
            self.flush_tx(&mut tx);
        }
        Ok(())
    }

    fn flush(&self) {
        let mut tx = self.tx.borrow_mut();
        if tx.len > 0 {
            self.flush_tx(&mut tx);
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
        Ok(Stats {
            received: self.received.get(),
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
            let mut t = std::mem::replace(
                tx,
                TxBurst {
                    bufs: [std::ptr::null_mut(); BURST],
                    len: 0,
                    stash: [std::ptr::null_mut(); BURST],
                    stash_len: 0,
                },
            );
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
