//! A simulated netmap port for tests: a memory region in ordinary memory with netmap's real
//! layout (`netmap_if`, rings, slots, buffers, extra-buffer list), and a kernel stand-in that
//! does what netmap's sync does, checking the user's side of the protocol as it goes.
//!
//! RX sync: slots between the kernel's `hwcur` and the user's `head` come back (checking that a
//! slot flagged `NS_BUF_CHANGED` names a valid buffer), then queued packets are written into the
//! free slots from `tail` on, keeping one slot empty. TX sync: slots between `hwcur` and `head`
//! are "transmitted" (copied out to `sent`) and, unless `tx_complete` is off, completed
//! (`tail` moves to one before `head`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::mem::{offset_of, size_of};
use std::rc::Rc;
use std::sync::Arc;

use nethuns_core::Result;
use nethuns_sys_linux::SharedMap;

use crate::abi::{
    self, netmap_if, netmap_ring, netmap_slot, nm_ring_next, NS_BUF_CHANGED, NS_MOREFRAG,
};
use crate::engine::{Engine, Port};
use crate::portspec::Rings;
use crate::region::{attach, Region};

/// Shape of a simulated port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SimConfig {
    pub nic_rings: u32,
    pub host_rings: u32,
    pub slots: u32,
    pub buf_size: u32,
    pub extra: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nic_rings: 1,
            host_rings: 0,
            slots: 8,
            buf_size: 256,
            extra: 16,
        }
    }
}

/// Offsets of the fields the simulated kernel reads and writes.
pub(crate) mod at {
    use super::*;

    pub const NI_TX_RINGS: usize = offset_of!(netmap_if, ni_tx_rings);
    pub const NI_RX_RINGS: usize = offset_of!(netmap_if, ni_rx_rings);
    pub const NI_HOST_TX_RINGS: usize = offset_of!(netmap_if, ni_host_tx_rings);
    pub const NI_HOST_RX_RINGS: usize = offset_of!(netmap_if, ni_host_rx_rings);
    pub const NI_VERSION: usize = offset_of!(netmap_if, ni_version);
    pub const NI_BUFS_HEAD: usize = offset_of!(netmap_if, ni_bufs_head);
    pub const RING_OFS: usize = offset_of!(netmap_if, ring_ofs);
    pub const BUF_OFS: usize = offset_of!(netmap_ring, buf_ofs);
    pub const NUM_SLOTS: usize = offset_of!(netmap_ring, num_slots);
    pub const NR_BUF_SIZE: usize = offset_of!(netmap_ring, nr_buf_size);
    pub const RINGID: usize = offset_of!(netmap_ring, ringid);
    pub const DIR: usize = offset_of!(netmap_ring, dir);
    pub const HEAD: usize = offset_of!(netmap_ring, head);
    pub const TAIL: usize = offset_of!(netmap_ring, tail);
    pub const TS_SEC: usize = offset_of!(netmap_ring, ts) + offset_of!(libc::timeval, tv_sec);
    pub const TS_USEC: usize = offset_of!(netmap_ring, ts) + offset_of!(libc::timeval, tv_usec);
    pub const SLOT_BUF: usize = offset_of!(netmap_slot, buf_idx);
    pub const SLOT_LEN: usize = offset_of!(netmap_slot, len);
    pub const SLOT_FLAGS: usize = offset_of!(netmap_slot, flags);

    /// The offset of slot `i` of the ring whose header is at `ring`.
    pub fn slot(ring: usize, i: u32) -> usize {
        ring + abi::RING_HEADER + i as usize * size_of::<netmap_slot>()
    }
}

struct KRing {
    /// Offset of the ring header in the region.
    at: usize,
    hwcur: u32,
    /// The kernel's own copy of `tail` (netmap's `rtail`): a `tail` in ring memory outside
    /// the ring is not trusted by the sync.
    tail: u32,
}

/// The kernel side of a simulated port.
pub(crate) struct SimKernel {
    /// The region, an anonymous mapping laid out as netmap lays out its own; the `netmap_if`
    /// is at offset 0.
    map: Arc<SharedMap>,
    /// Where the buffers start.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    buf_base: usize,
    pub cfg: SimConfig,
    /// Extra buffers granted (may be fewer than configured, to test that).
    pub granted: u32,
    tx: Vec<KRing>,
    rx: Vec<KRing>,
    /// Packets waiting to be "received", per RX ring (NIC rings then host rings): bytes and
    /// slot flags (`NS_MOREFRAG` for fragments).
    pub pending: Vec<VecDeque<(Vec<u8>, u16)>>,
    /// Packets "transmitted", per TX ring.
    pub sent: Vec<Vec<Vec<u8>>>,
    /// Whether TX sync completes transmissions (moves `tail`).
    pub tx_complete: bool,
    /// Syncs performed.
    pub rx_syncs: u64,
    /// TX syncs performed.
    pub tx_syncs: u64,
    /// When set, every sync fails with this errno (the port left netmap mode: `ENXIO`).
    pub sync_errno: Option<i32>,
    clock: i64,
}

fn round_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

fn dist(n: u32, a: u32, b: u32) -> u32 {
    (b + n - a) % n
}

impl SimKernel {
    /// Lays out a region for `cfg`.
    pub(crate) fn build(cfg: SimConfig) -> SimKernel {
        let rings_per_dir = (cfg.nic_rings + cfg.host_rings) as usize;
        let total = 2 * rings_per_dir;
        let ring_size = round_up(abi::RING_HEADER + 16 * cfg.slots as usize, 128);
        let nifp_size = round_up(size_of::<netmap_if>() + 8 * total, 128);
        let buf_base = round_up(nifp_size + total * ring_size, 4096);
        let nbufs = 2 + total * cfg.slots as usize + cfg.extra as usize;
        let len = buf_base + nbufs * cfg.buf_size as usize;
        let map = SharedMap::anonymous(len, false).expect("the simulated region");
        let mut tx = Vec::new();
        let mut rx = Vec::new();
        map.write::<u32>(at::NI_TX_RINGS, cfg.nic_rings);
        map.write::<u32>(at::NI_RX_RINGS, cfg.nic_rings);
        map.write::<u32>(at::NI_HOST_TX_RINGS, cfg.host_rings);
        map.write::<u32>(at::NI_HOST_RX_RINGS, cfg.host_rings);
        map.write::<u32>(at::NI_VERSION, abi::NETMAP_API as u32);
        for r in 0..total {
            let ring = nifp_size + r * ring_size;
            map.write::<isize>(at::RING_OFS + r * size_of::<isize>(), ring as isize);
            let is_rx = r >= rings_per_dir;
            map.write::<i64>(ring + at::BUF_OFS, buf_base as i64 - ring as i64);
            map.write::<u32>(ring + at::NUM_SLOTS, cfg.slots);
            map.write::<u32>(ring + at::NR_BUF_SIZE, cfg.buf_size);
            map.write::<u16>(ring + at::RINGID, (r % rings_per_dir) as u16);
            map.write::<u16>(ring + at::DIR, is_rx as u16);
            let tail = if is_rx { 0 } else { cfg.slots - 1 };
            map.write::<u32>(ring + at::TAIL, tail);
            for s in 0..cfg.slots {
                let buf = 2 + (r as u32) * cfg.slots + s;
                map.write::<u32>(at::slot(ring, s) + at::SLOT_BUF, buf);
            }
            let k = KRing {
                at: ring,
                hwcur: 0,
                tail,
            };
            if is_rx {
                rx.push(k)
            } else {
                tx.push(k)
            }
        }
        let first_extra = 2 + total as u32 * cfg.slots;
        for e in 0..cfg.extra {
            let idx = first_extra + e;
            let next = if e + 1 == cfg.extra { 0 } else { idx + 1 };
            map.write::<u32>(buf_base + idx as usize * cfg.buf_size as usize, next);
        }
        let head = if cfg.extra == 0 { 0 } else { first_extra };
        map.write::<u32>(at::NI_BUFS_HEAD, head);
        SimKernel {
            map: Arc::new(map),
            buf_base,
            cfg,
            granted: cfg.extra,
            tx,
            rx,
            pending: (0..rings_per_dir).map(|_| VecDeque::new()).collect(),
            sent: (0..rings_per_dir).map(|_| Vec::new()).collect(),
            tx_complete: true,
            rx_syncs: 0,
            tx_syncs: 0,
            sync_errno: None,
            clock: 0,
        }
    }

    /// The region as a registration reports it.
    pub(crate) fn region(&self) -> Region {
        Region {
            map: self.map.clone(),
            nifp_offset: 0,
            extra_granted: self.granted,
        }
    }

    /// The region, for tests that read or corrupt the layout (the `netmap_if` is at 0).
    pub(crate) fn map(&self) -> &Arc<SharedMap> {
        &self.map
    }

    /// The offset of the first ring header, for tests that corrupt it.
    #[cfg(test)]
    pub(crate) fn first_ring(&self) -> usize {
        self.tx[0].at
    }

    #[cfg(feature = "fuzzing")]
    /// The length of the region's part before the buffers (the `netmap_if`, the rings and
    /// their slots), for tests that corrupt any of it.
    pub(crate) fn metadata_len(&self) -> usize {
        self.buf_base
    }

    #[cfg(feature = "fuzzing")]
    /// The offset of the link word of extra buffer `e` (0-based, in the order `build`
    /// chained them).
    pub(crate) fn extra_link(&self, e: u32) -> usize {
        let rings = 2 * (self.cfg.nic_rings + self.cfg.host_rings);
        let idx = 2 + rings * self.cfg.slots + e;
        assert!(e < self.cfg.extra);
        self.buf_base + idx as usize * self.cfg.buf_size as usize
    }

    #[cfg(feature = "fuzzing")]
    /// The offset of the header of RX ring `r` (`rx`) or TX ring `r`.
    pub(crate) fn ring_at(&self, rx: bool, r: usize) -> usize {
        if rx {
            self.rx[r].at
        } else {
            self.tx[r].at
        }
    }

    /// The total number of buffers of the region.
    pub(crate) fn nbufs(&self) -> u32 {
        let rings = 2 * (self.cfg.nic_rings + self.cfg.host_rings);
        2 + rings * self.cfg.slots + self.cfg.extra
    }

    /// The offset of buffer `idx` as the ring at `ring` describes the buffer area.
    fn buf(&self, ring: usize, idx: u32) -> usize {
        assert!(
            (abi::FIRST_BUF_IDX..self.nbufs()).contains(&idx),
            "kernel: slot names buffer {idx}, outside the region"
        );
        let buf_ofs = self.map.read::<i64>(ring + at::BUF_OFS);
        let size = self.map.read::<u32>(ring + at::NR_BUF_SIZE);
        (ring as i64 + buf_ofs) as usize + idx as usize * size as usize
    }

    /// The `tail` a sync starts from: the one in ring memory when it is a slot of the ring (a
    /// test may move it, as a kernel would), else the kernel's own copy.
    fn sane_tail(&self, k: &KRing, n: u32) -> u32 {
        let t = self.map.read::<u32>(k.at + at::TAIL);
        if t < n {
            t
        } else {
            k.tail
        }
    }

    /// What a sync of ring `k` starts from: `head`, `tail` and `hwcur`, checking that the
    /// user's `head` is a slot between `hwcur` and `tail` (`dir`: "RX" or "TX").
    fn check_head(&self, k: &KRing, dir: &str) -> (u32, u32, u32) {
        let n = self.cfg.slots;
        let head = self.map.read::<u32>(k.at + at::HEAD);
        let (tail, hwcur) = (self.sane_tail(k, n), k.hwcur);
        assert!(head < n, "kernel: {dir} head {head} out of range");
        assert!(
            dist(n, hwcur, head) <= dist(n, hwcur, tail),
            "kernel: {dir} head {head} not between hwcur {hwcur} and tail {tail}"
        );
        (head, tail, hwcur)
    }

    /// Queues a packet for RX ring `ring`.
    pub(crate) fn inject(&mut self, ring: usize, pkt: Vec<u8>) {
        self.pending[ring].push_back((pkt, 0));
    }

    /// Queues one packet split over several slots (`NS_MOREFRAG`).
    pub(crate) fn inject_fragments(&mut self, ring: usize, frags: Vec<Vec<u8>>) {
        let n = frags.len();
        for (i, f) in frags.into_iter().enumerate() {
            let flags = if i + 1 < n { NS_MOREFRAG } else { 0 };
            self.pending[ring].push_back((f, flags));
        }
    }

    /// Every buffer index currently in a ring slot.
    pub(crate) fn ring_buffers(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for k in self.tx.iter().chain(&self.rx) {
            for s in 0..self.cfg.slots {
                v.push(self.map.read::<u32>(at::slot(k.at, s) + at::SLOT_BUF));
            }
        }
        v
    }

    /// Overwrites the buffer index of the first received slot (`head`) of RX ring `ring`, as a
    /// faulty kernel would (corruption tests).
    pub(crate) fn corrupt_head_rx_slot(&mut self, ring: usize, idx: u32) {
        let k = &self.rx[ring];
        let head = self.map.read::<u32>(k.at + at::HEAD);
        self.map
            .write::<u32>(at::slot(k.at, head) + at::SLOT_BUF, idx);
    }

    #[cfg(feature = "fuzzing")]
    /// The kernel moves `tail` of RX ring `ring` (`rx`) or TX ring `ring`, as a sync may: a
    /// `value` below `num_slots` moves it forward by `value` modulo the slots the kernel may
    /// still hand over (up to one before `hwcur`), and becomes its own copy too; any other
    /// value lands only in ring memory (a corrupted `tail`, which the next sync does not
    /// trust).
    pub(crate) fn kernel_set_tail(&mut self, rx: bool, ring: usize, value: u32) {
        let n = self.cfg.slots;
        let k = if rx {
            &mut self.rx[ring]
        } else {
            &mut self.tx[ring]
        };
        let tail = if value < n {
            let room = dist(n, k.tail, (k.hwcur + n - 1) % n);
            let t = (k.tail + value % (room + 1)) % n;
            k.tail = t;
            t
        } else {
            value
        };
        self.map.write::<u32>(k.at + at::TAIL, tail);
    }

    /// Overwrites `tail` in the memory of RX ring `ring`, as a faulty kernel would.
    pub(crate) fn set_rx_tail(&mut self, ring: usize, tail: u32) {
        self.map.write::<u32>(self.rx[ring].at + at::TAIL, tail);
    }

    /// Overwrites `tail` in the memory of TX ring `ring`, as a faulty kernel would.
    pub(crate) fn set_tx_tail(&mut self, ring: usize, tail: u32) {
        self.map.write::<u32>(self.tx[ring].at + at::TAIL, tail);
    }

    fn rx_sync(&mut self) {
        self.rx_syncs += 1;
        self.clock += 1;
        let n = self.cfg.slots;
        let map = self.map.clone();
        for r in 0..self.rx.len() {
            // The user does not run during a sync.
            let ring = self.rx[r].at;
            let (head, tail, hwcur) = self.check_head(&self.rx[r], "RX");
            let mut i = hwcur;
            while i != head {
                let slot = at::slot(ring, i);
                let flags = map.read::<u16>(slot + at::SLOT_FLAGS);
                if flags & NS_BUF_CHANGED != 0 {
                    let _ = self.buf(ring, map.read::<u32>(slot + at::SLOT_BUF));
                    map.write::<u16>(slot + at::SLOT_FLAGS, flags & !NS_BUF_CHANGED);
                }
                i = nm_ring_next(n, i);
            }
            self.rx[r].hwcur = head;
            let mut t = tail;
            while nm_ring_next(n, t) != head {
                let Some((pkt, flags)) = self.pending[r].pop_front() else {
                    break;
                };
                let slot = at::slot(ring, t);
                assert!(pkt.len() <= self.cfg.buf_size as usize);
                let b = self.buf(ring, map.read::<u32>(slot + at::SLOT_BUF));
                map.copy_to(b, &pkt);
                map.write::<u16>(slot + at::SLOT_LEN, pkt.len() as u16);
                map.write::<u16>(slot + at::SLOT_FLAGS, flags);
                t = nm_ring_next(n, t);
            }
            map.write::<u32>(ring + at::TAIL, t);
            self.rx[r].tail = t;
            map.write::<libc::time_t>(ring + at::TS_SEC, self.clock as _);
            map.write::<libc::suseconds_t>(ring + at::TS_USEC, 0);
        }
    }

    fn tx_sync(&mut self) {
        self.tx_syncs += 1;
        let n = self.cfg.slots;
        let map = self.map.clone();
        for r in 0..self.tx.len() {
            let ring = self.tx[r].at;
            let (head, tail, hwcur) = self.check_head(&self.tx[r], "TX");
            let mut i = hwcur;
            // A packet over several slots (`NS_MOREFRAG`) leaves as one frame.
            let mut frame = Vec::new();
            while i != head {
                let slot = at::slot(ring, i);
                let len = map.read::<u16>(slot + at::SLOT_LEN) as usize;
                assert!(len <= self.cfg.buf_size as usize);
                let b = self.buf(ring, map.read::<u32>(slot + at::SLOT_BUF));
                let start = frame.len();
                frame.resize(start + len, 0);
                map.copy_from(b, &mut frame[start..]);
                if map.read::<u16>(slot + at::SLOT_FLAGS) & NS_MOREFRAG == 0 {
                    self.sent[r].push(std::mem::take(&mut frame));
                }
                i = nm_ring_next(n, i);
            }
            assert!(
                frame.is_empty(),
                "kernel: TX head inside a multi-slot packet"
            );
            self.tx[r].hwcur = head;
            let tail = if self.tx_complete {
                (head + n - 1) % n
            } else {
                tail
            };
            map.write::<u32>(ring + at::TAIL, tail);
            self.tx[r].tail = tail;
        }
    }
}

/// The simulated kernel as a [`Port`].
pub(crate) struct SimPort(pub Rc<RefCell<SimKernel>>);

impl Port for SimPort {
    fn rx_sync(&self) -> io::Result<()> {
        if let Some(errno) = self.0.borrow().sync_errno {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.0.borrow_mut().rx_sync();
        Ok(())
    }

    fn tx_sync(&self) -> io::Result<()> {
        if let Some(errno) = self.0.borrow().sync_errno {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.0.borrow_mut().tx_sync();
        Ok(())
    }

    fn wait_rx(&self, _timeout_ms: i32) -> io::Result<bool> {
        let mut k = self.0.borrow_mut();
        k.rx_sync();
        Ok(k.pending.iter().any(|p| !p.is_empty())
            || k.rx
                .iter()
                .any(|r| k.map.read::<u32>(r.at + at::HEAD) != k.map.read::<u32>(r.at + at::TAIL)))
    }
}

/// An engine over a fresh simulated port bound to `rings`, and its kernel.
pub(crate) fn open(
    cfg: SimConfig,
    rings: Rings,
) -> Result<(Engine<SimPort>, Rc<RefCell<SimKernel>>)> {
    attach_kernel(SimKernel::build(cfg), rings)
}

/// An engine over an already built (possibly tampered) simulated port.
pub(crate) fn attach_kernel(
    kernel: SimKernel,
    rings: Rings,
) -> Result<(Engine<SimPort>, Rc<RefCell<SimKernel>>)> {
    attach_kernel_with(kernel, rings, |p| p)
}

/// [`attach_kernel`] with the port wrapped by `wrap` (a port that plays more than the
/// simulator does).
pub(crate) fn attach_kernel_with<P: Port>(
    kernel: SimKernel,
    rings: Rings,
    wrap: impl FnOnce(SimPort) -> P,
) -> Result<(Engine<P>, Rc<RefCell<SimKernel>>)> {
    let attached = attach(kernel.region(), rings, "sim:port", Box::new(()))?;
    let k = Rc::new(RefCell::new(kernel));
    Ok((
        Engine::new(wrap(SimPort(k.clone())), attached, "sim:port".into()),
        k,
    ))
}

/// Walks the `ni_bufs_head` list the way the kernel does at close.
pub(crate) fn walk_bufs_head(k: &SimKernel) -> Vec<u32> {
    let mut v = Vec::new();
    let ring = k.rx.first().or(k.tx.first()).unwrap().at;
    let mut i = k.map.read::<u32>(at::NI_BUFS_HEAD);
    while i != 0 {
        assert!(v.len() <= k.nbufs() as usize, "list loops");
        v.push(i);
        i = k.map.read::<u32>(k.buf(ring, i));
    }
    v
}
