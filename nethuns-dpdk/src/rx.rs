//! The receive path of [`Sock`]: the RX burst, refilled by one `rte_eth_rx_burst` and handed
//! out one mbuf at a time (or a whole burst into a batch sink), the metadata read from the
//! mbuf, and the occasional checks of an empty poll (mempool, link).

use std::time::{Duration, Instant};

use nethuns_core::frame::{self, ETH_HLEN, VLAN_HLEN};
use nethuns_core::{Error, Result};

use crate::flags::BURST;
use crate::mbuf::Mbuf;
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
    Mbuf(Mbuf),
    Empty,
    Failed,
}

impl Sock {
    /// Refills the RX burst from the driver (one `rte_eth_rx_burst`): `Got`, `Empty` (nothing
    /// came), or `Failed` with the idle checks' finding in `self.failed`. (No `Result`
    /// here: an `Error` passed up through the inlined layers is copied at each one, which
    /// costs the empty poll more than the poll itself.)
    #[inline(always)]
    pub(crate) fn refill(&self) -> Refill {
        let n = self.rx.receive(&self.q);
        if n == 0 {
            let left = self.idle_countdown.get();
            if left != 0 {
                self.idle_countdown.set(left - 1);
                return Refill::Empty;
            }
            return match self.idle_check() {
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
        self.got_burst(n);
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
    pub(crate) fn got_burst(&self, n: usize) {
        self.idle_countdown.set(0);
        self.received.set(self.received.get() + n as u64);
    }

    /// The empty poll's occasional checks: the mempool (tell "nothing arrived" from "no mbuf
    /// to receive into") and the link.
    #[cold]
    #[inline(never)]
    pub(crate) fn idle_check(&self) -> Result<()> {
        // Released mbufs waiting for a bulk free go back first.
        self.ctx.flush_released();
        // Some drivers (net_null) allocate a whole burst at once and give nothing when fewer
        // are free.
        let mut avail = self.ctx.available_here() as usize;
        if avail < BURST && !self.stash.is_empty() {
            // Give the idle TX stash back first: receiving needs the mbufs more.
            self.stash.free_all();
            avail = self.ctx.available_here() as usize;
        }
        self.check_alive()?;
        // Up: the next IDLE_CHECK_EVERY - 1 empty polls skip the checks (once the link is down
        // or gone, check_alive returned above and every poll says so).
        self.idle_countdown.set(IDLE_CHECK_EVERY - 1);
        if avail == 0 {
            return Err(Error::NoMemory);
        }
        if avail < BURST {
            // As in refill, with room for only `avail`.
            let n = self.rx.receive_up_to(&self.q, avail);
            if n > 0 {
                self.got_burst(n);
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
    /// `m` is a received, direct, single-segment mbuf not handed out yet.
    pub(crate) fn reinsert_vlan(m: &mut Mbuf) -> bool {
        if usize::from(m.data_len()) < 12 || !m.prepend(VLAN_HLEN as u16) {
            return false;
        }
        let tci = m.vlan_tci().to_be_bytes();
        let d = m.data_mut();
        d.copy_within(VLAN_HLEN..VLAN_HLEN + 12, 0);
        d[12..16].copy_from_slice(&[0x81, 0x00, tci[0], tci[1]]);
        m.keep_ol_flags(!F_RX_VLAN_STRIPPED);
        true
    }

    /// The next received single-segment mbuf (multi-segment ones are freed and counted),
    /// refilling the RX burst when it is used up; ownership moves to the caller.
    #[inline(always)]
    pub(crate) fn next_mbuf(&self) -> Next {
        loop {
            match self.rx.pop() {
                Some(m) if m.nb_segs() == 1 => return Next::Mbuf(m),
                Some(m) => self.drop_multiseg(m),
                None => match self.refill() {
                    Refill::Got => {}
                    Refill::Empty => return Next::Empty,
                    Refill::Failed => return Next::Failed,
                },
            }
        }
    }

    /// Frees received multi-segment mbuf `m` (not handed out), counted.
    #[cold]
    #[inline(never)]
    pub(crate) fn drop_multiseg(&self, m: Mbuf) {
        // Dropping it frees the whole chain.
        drop(m);
        self.rx_multiseg_dropped
            .set(self.rx_multiseg_dropped.get() + 1);
        self.received.set(self.received.get() - 1);
    }

    /// `recv` / `recv_token` (`make` turns the mbuf into what they return): the packet
    /// path, with no call in it, when the RX burst holds a single-segment mbuf; else
    /// [`Sock::recv_slow`].
    #[inline(always)]
    pub(crate) fn recv_as<'a, T, F: Fn(&'a Self, Mbuf) -> T>(
        &'a self,
        make: F,
    ) -> Result<(T, Meta)> {
        match self.rx.pop() {
            Some(mut m) => {
                if m.nb_segs() != 1 {
                    return self.recv_after_multiseg(m, make);
                }
                let meta = self.meta_of(&mut m);
                Ok((make(self, m), meta))
            }
            None => self.recv_slow(make),
        }
    }

    /// `recv_as` at the end of a burst (the refill, the empty poll); out of line, so that the
    /// packet path saves no registers for its call.
    #[inline(never)]
    pub(crate) fn recv_slow<'a, T, F: Fn(&'a Self, Mbuf) -> T>(
        &'a self,
        make: F,
    ) -> Result<(T, Meta)> {
        match self.refill() {
            Refill::Got => {}
            Refill::Empty => return Err(Error::NoPacket),
            Refill::Failed => return Err(self.failure()),
        }
        self.recv_next(make)
    }

    /// `recv_as` after multi-segment mbuf `m`, which it drops.
    #[cold]
    #[inline(never)]
    pub(crate) fn recv_after_multiseg<'a, T, F: Fn(&'a Self, Mbuf) -> T>(
        &'a self,
        m: Mbuf,
        make: F,
    ) -> Result<(T, Meta)> {
        self.drop_multiseg(m);
        self.recv_next(make)
    }

    /// `recv_as` from the next single-segment mbuf ([`Sock::next_mbuf`]); out of line, so
    /// that the empty poll (`recv_slow` up to its refill) saves few registers.
    #[inline(never)]
    fn recv_next<'a, T, F: Fn(&'a Self, Mbuf) -> T>(&'a self, make: F) -> Result<(T, Meta)> {
        match self.next_mbuf() {
            Next::Mbuf(mut m) => {
                let meta = self.meta_of(&mut m);
                Ok((make(self, m), meta))
            }
            Next::Empty => Err(Error::NoPacket),
            Next::Failed => Err(self.failure()),
        }
    }

    /// The metadata of received single-segment mbuf `m` (from `next_mbuf`), with a stripped
    /// VLAN tag put back into its data unless [`DpdkOptions::vlan_strip`](crate::DpdkOptions).
    #[inline(always)]
    pub(crate) fn meta_of(&self, m: &mut Mbuf) -> Meta {
        let mut flags = m.ol_flags();
        if flags & F_RX_VLAN_STRIPPED != 0 && !self.vlan_strip {
            Self::reinsert_vlan(m);
            flags = m.ol_flags();
        }
        let data = m.data();
        let head = &data[..data.len().min(ETH_HLEN + VLAN_HLEN)];
        Meta {
            len: m.pkt_len(),
            port: self.port.id,
            queue: self.port.queue,
            rss_hash: (flags & F_RX_RSS_HASH != 0).then_some(m.rss()),
            // A tag still out of the data (`vlan_strip`) is in vlan_tci; otherwise the frame's
            // own outer tag, as on the wire.
            vlan_tci: if flags & (F_RX_VLAN | F_RX_VLAN_STRIPPED) == F_RX_VLAN | F_RX_VLAN_STRIPPED
            {
                Some(m.vlan_tci())
            } else {
                frame::outer_vlan(head)
            },
            timestamp: self
                .port
                .timestamp
                .as_ref()
                .and_then(|ts| (flags & ts.mask() != 0).then(|| m.timestamp(ts))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbuf::FakeMbuf;

    /// The tag a driver stripped goes back in front of the EtherType, in the headroom.
    #[test]
    pub(crate) fn stripped_vlan_tag_is_put_back() {
        let mut room = vec![0u8; 256];
        let frame: Vec<u8> = (0..60u8).collect();
        room[128..188].copy_from_slice(&frame);
        let mut fake = FakeMbuf::new(&room, 128, 60);
        let m = fake.stripped_vlan(0x2007, F_RX_VLAN | F_RX_VLAN_STRIPPED);
        assert!(Sock::reinsert_vlan(m));
        let data = m.data().to_vec();
        assert_eq!(fake.fields(), (124, 64, 64, F_RX_VLAN));
        assert_eq!(&data[..12], &frame[..12]);
        assert_eq!(&data[12..16], &[0x81, 0x00, 0x20, 0x07]);
        assert_eq!(&data[16..], &frame[12..]);
        assert_eq!(frame::outer_vlan(&data), Some(0x2007));
        // No headroom left: refused, untouched.
        let mut fake = FakeMbuf::new(&room, 2, 60);
        let m = fake.stripped_vlan(0x2007, F_RX_VLAN | F_RX_VLAN_STRIPPED);
        assert!(!Sock::reinsert_vlan(m));
        assert_eq!(fake.fields().0, 2);
    }
}
