//! The receive path of [`Sock`]: the RX burst, refilled by one `rte_eth_rx_burst` and handed
//! out one mbuf at a time (or a whole burst into a batch sink), the metadata read from the
//! mbuf, and the occasional checks of an empty poll (mempool, link).

use std::time::{Duration, Instant};

use dpdk_sys::rte_mbuf;
use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::{BufferDesc, Error, Result, Token};

use crate::flags::BURST;
use crate::port::Liveness;
use crate::sock::Sock;
use crate::Meta;

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
pub(crate) struct RxBurst {
    pub(crate) bufs: [*mut rte_mbuf; BURST],
    pub(crate) head: usize,
    pub(crate) len: usize,
}

/// What [`Sock::refill`] found.
pub(crate) enum Refill {
    Got,
    Empty,
    Failed,
}

/// Why a refill failed (the error is made when it is returned).
#[derive(Clone, Copy)]
pub(crate) enum Failed {
    NoMemory,
    Down,
}

/// What [`Sock::next_mbuf`] found.
pub(crate) enum Next {
    Mbuf(*mut rte_mbuf),
    Empty,
    Failed,
}

impl Sock {
    /// Refills the RX burst from the driver (one `rte_eth_rx_burst`): `Got`, `Empty` (nothing
    /// came), or `Failed` with the idle checks' finding in `self.failed`. (No `Result`
    /// here: an `Error` passed up through the inlined layers is copied at each one, which
    /// costs the empty poll more than the poll itself.)
    #[inline(always)]
    pub(crate) fn refill(&self, rx: &mut RxBurst) -> Refill {
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
    pub(crate) fn failure(&self) -> Error {
        match self.failed.get() {
            Failed::NoMemory => Error::NoMemory,
            Failed::Down => Error::InterfaceDown(self.port.down_name()),
        }
    }

    #[inline(always)]
    pub(crate) fn got_burst(&self, rx: &mut RxBurst, n: usize) {
        self.idle_countdown.set(0);
        self.received.set(self.received.get() + n as u64);
        rx.head = 0;
        rx.len = n;
    }

    /// The empty poll's occasional checks: the mempool (tell "nothing arrived" from "no mbuf
    /// to receive into") and the link.
    #[cold]
    #[inline(never)]
    pub(crate) fn idle_check(&self, rx: &mut RxBurst) -> Result<()> {
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
    pub(crate) fn check_alive(&self) -> Result<()> {
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
    pub(crate) unsafe fn reinsert_vlan(m: *mut rte_mbuf) -> bool {
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
    pub(crate) fn next_mbuf(&self, rx: &mut RxBurst) -> Next {
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
    pub(crate) fn next_after_multiseg(&self, rx: &mut RxBurst, m: *mut rte_mbuf) -> Next {
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
    pub(crate) fn drop_multiseg(&self, m: *mut rte_mbuf) {
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
    pub(crate) fn recv_as<'a, T, F: Fn(&'a Self, Token) -> T>(
        &'a self,
        make: F,
    ) -> Result<(T, Meta)> {
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
    pub(crate) fn recv_slow<'a, T, F: Fn(&'a Self, Token) -> T>(
        &'a self,
        make: F,
    ) -> Result<(T, Meta)> {
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
    pub(crate) fn token_of(&self, m: *mut rte_mbuf) -> (Token, Meta) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag a driver stripped goes back in front of the EtherType, in the headroom.
    #[test]
    pub(crate) fn stripped_vlan_tag_is_put_back() {
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
