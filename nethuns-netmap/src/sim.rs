//! A simulated netmap port for tests: a memory region in ordinary memory with netmap's real
//! layout (`netmap_if`, rings, slots, buffers, extra-buffer list), and a kernel stand-in that
//! does what netmap's sync does, checking the user's side of the protocol as it goes.
//!
//! RX sync: slots between the kernel's `hwcur` and the user's `head` come back (checking that a
//! slot flagged `NS_BUF_CHANGED` names a valid buffer), then queued packets are written into the
//! free slots from `tail` on, keeping one slot empty. TX sync: slots between `hwcur` and `head`
//! are "transmitted" (copied out to `sent`) and, unless `tx_complete` is off, completed
//! (`tail` moves to one before `head`).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::ptr::addr_of_mut;
use std::rc::Rc;
use std::sync::Arc;

use nethuns_core::Result;

use crate::engine::{Engine, Port};
use crate::portspec::Rings;
use crate::region::{attach, Region};
use crate::sys::{self, netmap_if, netmap_ring, nm_ring_next, NS_BUF_CHANGED, NS_MOREFRAG};

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

struct SimRegion {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: owns a heap allocation; no thread affinity.
unsafe impl Send for SimRegion {}
// SAFETY: exposes nothing but its address.
unsafe impl Sync for SimRegion {}

impl Drop for SimRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `build` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

struct KRing {
    ptr: *mut netmap_ring,
    hwcur: u32,
    /// The kernel's own copy of `tail` (netmap's `rtail`): a `tail` in ring memory outside
    /// the ring is not trusted by the sync.
    tail: u32,
}

/// The kernel side of a simulated port.
pub(crate) struct SimKernel {
    region: Arc<SimRegion>,
    len: usize,
    /// Where the buffers start.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    buf_base: usize,
    nifp: *mut netmap_if,
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

/// The `tail` a sync starts from: the one in ring memory when it is a slot of the ring (a
/// test may move it, as a kernel would), else the kernel's own copy.
///
/// # Safety
/// `ring` is the ring header of `k`.
unsafe fn sane_tail(ring: *mut netmap_ring, k: &KRing, n: u32) -> u32 {
    let t = (*ring).tail;
    if t < n {
        t
    } else {
        k.tail
    }
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
        let ring_size = round_up(sys::RING_HEADER + 16 * cfg.slots as usize, 128);
        let nifp_size = round_up(std::mem::size_of::<netmap_if>() + 8 * total, 128);
        let buf_base = round_up(nifp_size + total * ring_size, 4096);
        let nbufs = 2 + total * cfg.slots as usize + cfg.extra as usize;
        let len = buf_base + nbufs * cfg.buf_size as usize;
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        let region = Arc::new(SimRegion { ptr, layout });
        let nifp = ptr.cast::<netmap_if>();
        let mut tx = Vec::new();
        let mut rx = Vec::new();
        // SAFETY: all writes below are inside the zeroed allocation of `len` bytes, laid out
        // just above.
        unsafe {
            (*nifp).ni_tx_rings = cfg.nic_rings;
            (*nifp).ni_rx_rings = cfg.nic_rings;
            (*nifp).ni_host_tx_rings = cfg.host_rings;
            (*nifp).ni_host_rx_rings = cfg.host_rings;
            (*nifp).ni_version = sys::NETMAP_API as u32;
            let ofs = addr_of_mut!((*nifp).ring_ofs).cast::<isize>();
            for r in 0..total {
                let at = nifp_size + r * ring_size;
                ofs.add(r).write(at as isize);
                let ring = ptr.add(at).cast::<netmap_ring>();
                let is_rx = r >= rings_per_dir;
                (*ring).buf_ofs = buf_base as i64 - at as i64;
                (*ring).num_slots = cfg.slots;
                (*ring).nr_buf_size = cfg.buf_size;
                (*ring).ringid = (r % rings_per_dir) as u16;
                (*ring).dir = is_rx as u16;
                (*ring).tail = if is_rx { 0 } else { cfg.slots - 1 };
                for s in 0..cfg.slots {
                    let slot = sys::ring_slot(ring, s);
                    (*slot).buf_idx = 2 + (r as u32) * cfg.slots + s;
                }
                let k = KRing {
                    ptr: ring,
                    hwcur: 0,
                    tail: (*ring).tail,
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
                ptr.add(buf_base + idx as usize * cfg.buf_size as usize)
                    .cast::<u32>()
                    .write(next);
            }
            (*nifp).ni_bufs_head = if cfg.extra == 0 { 0 } else { first_extra };
        }
        SimKernel {
            region,
            len,
            buf_base,
            nifp,
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
            base: self.region.ptr,
            len: self.len,
            nifp_offset: 0,
            extra_granted: self.granted,
        }
    }

    /// Raw access for tests that corrupt the layout.
    pub(crate) fn nifp(&self) -> *mut netmap_if {
        self.nifp
    }

    #[cfg(feature = "fuzzing")]
    /// The start of the region and the length of its part before the buffers (the
    /// `netmap_if`, the rings and their slots), for tests that corrupt any of it.
    pub(crate) fn metadata(&self) -> (*mut u8, usize) {
        (self.region.ptr, self.buf_base)
    }

    #[cfg(feature = "fuzzing")]
    /// The link word of extra buffer `e` (0-based, in the order `build` chained them).
    pub(crate) fn extra_link(&self, e: u32) -> *mut u32 {
        let rings = 2 * (self.cfg.nic_rings + self.cfg.host_rings);
        let idx = 2 + rings * self.cfg.slots + e;
        let (base, meta) = self.metadata();
        assert!(e < self.cfg.extra);
        // SAFETY: buffer `idx` is inside the region (the buffers follow the metadata).
        unsafe { base.add(meta + idx as usize * self.cfg.buf_size as usize) }.cast()
    }

    #[cfg(feature = "fuzzing")]
    /// The header of RX ring `r` (`rx`) or TX ring `r`.
    pub(crate) fn ring_ptr(&self, rx: bool, r: usize) -> *mut netmap_ring {
        if rx {
            self.rx[r].ptr
        } else {
            self.tx[r].ptr
        }
    }

    /// The total number of buffers of the region.
    pub(crate) fn nbufs(&self) -> u32 {
        let rings = 2 * (self.cfg.nic_rings + self.cfg.host_rings);
        2 + rings * self.cfg.slots + self.cfg.extra
    }

    fn buf(&self, ring: *mut netmap_ring, idx: u32) -> *mut u8 {
        assert!(
            (sys::FIRST_BUF_IDX..self.nbufs()).contains(&idx),
            "kernel: slot names buffer {idx}, outside the region"
        );
        // SAFETY: `idx` is a buffer of the region (checked).
        unsafe { sys::netmap_buf(ring, idx) }
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
                // SAFETY: `s` is below `num_slots` of a ring of the region.
                v.push(unsafe { (*sys::ring_slot(k.ptr, s)).buf_idx });
            }
        }
        v
    }

    /// Overwrites the buffer index of the first received slot (`head`) of RX ring `ring`, as a
    /// faulty kernel would (corruption tests).
    pub(crate) fn corrupt_head_rx_slot(&mut self, ring: usize, idx: u32) {
        let k = &self.rx[ring];
        // SAFETY: `head` is below `num_slots`.
        unsafe { (*sys::ring_slot(k.ptr, (*k.ptr).head)).buf_idx = idx };
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
        // SAFETY: the ring header is inside the region.
        unsafe { (*k.ptr).tail = tail };
    }

    /// Overwrites `tail` in the memory of RX ring `ring`, as a faulty kernel would.
    pub(crate) fn set_rx_tail(&mut self, ring: usize, tail: u32) {
        // SAFETY: the ring header is inside the region.
        unsafe { (*self.rx[ring].ptr).tail = tail };
    }

    /// Overwrites `tail` in the memory of TX ring `ring`, as a faulty kernel would.
    pub(crate) fn set_tx_tail(&mut self, ring: usize, tail: u32) {
        // SAFETY: the ring header is inside the region.
        unsafe { (*self.tx[ring].ptr).tail = tail };
    }

    fn rx_sync(&mut self) {
        self.rx_syncs += 1;
        self.clock += 1;
        let n = self.cfg.slots;
        for r in 0..self.rx.len() {
            let ring = self.rx[r].ptr;
            // SAFETY: the ring header and slots are inside the region; the user does not run
            // during a sync.
            unsafe {
                let (head, tail) = ((*ring).head, sane_tail(ring, &self.rx[r], n));
                let hwcur = self.rx[r].hwcur;
                assert!(head < n, "kernel: RX head {head} out of range");
                assert!(
                    dist(n, hwcur, head) <= dist(n, hwcur, tail),
                    "kernel: RX head {head} not between hwcur {hwcur} and tail {tail}"
                );
                let mut i = hwcur;
                while i != head {
                    let slot = sys::ring_slot(ring, i);
                    if (*slot).flags & NS_BUF_CHANGED != 0 {
                        let _ = self.buf(ring, (*slot).buf_idx);
                        (*slot).flags &= !NS_BUF_CHANGED;
                    }
                    i = nm_ring_next(n, i);
                }
                self.rx[r].hwcur = head;
                let mut t = tail;
                while nm_ring_next(n, t) != head {
                    let Some((pkt, flags)) = self.pending[r].pop_front() else {
                        break;
                    };
                    let slot = sys::ring_slot(ring, t);
                    assert!(pkt.len() <= self.cfg.buf_size as usize);
                    let b = self.buf(ring, (*slot).buf_idx);
                    std::ptr::copy_nonoverlapping(pkt.as_ptr(), b, pkt.len());
                    (*slot).len = pkt.len() as u16;
                    (*slot).flags = flags;
                    t = nm_ring_next(n, t);
                }
                (*ring).tail = t;
                self.rx[r].tail = t;
                (*ring).ts = libc::timeval {
                    tv_sec: self.clock as _,
                    tv_usec: 0,
                };
            }
        }
    }

    fn tx_sync(&mut self) {
        self.tx_syncs += 1;
        let n = self.cfg.slots;
        for r in 0..self.tx.len() {
            let ring = self.tx[r].ptr;
            // SAFETY: as in `rx_sync`.
            unsafe {
                let (head, tail) = ((*ring).head, sane_tail(ring, &self.tx[r], n));
                let hwcur = self.tx[r].hwcur;
                assert!(head < n, "kernel: TX head {head} out of range");
                assert!(
                    dist(n, hwcur, head) <= dist(n, hwcur, tail),
                    "kernel: TX head {head} not between hwcur {hwcur} and tail {tail}"
                );
                let mut i = hwcur;
                // A packet over several slots (`NS_MOREFRAG`) leaves as one frame.
                let mut frame = Vec::new();
                while i != head {
                    let slot = sys::ring_slot(ring, i);
                    let len = (*slot).len as usize;
                    assert!(len <= self.cfg.buf_size as usize);
                    let b = self.buf(ring, (*slot).buf_idx);
                    frame.extend_from_slice(std::slice::from_raw_parts(b, len));
                    if (*slot).flags & NS_MOREFRAG == 0 {
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
                (*ring).tail = tail;
                self.tx[r].tail = tail;
            }
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
        Ok(k.pending.iter().any(|p| !p.is_empty()) || {
            // SAFETY: ring headers are inside the region.
            k.rx.iter()
                .any(|r| unsafe { (*r.ptr).head != (*r.ptr).tail })
        })
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
    let region = kernel.region();
    let owner = Box::new(kernel.region.clone());
    // SAFETY: the region is the allocation `owner` keeps alive, laid out by `build`.
    let attached = unsafe { attach(&region, rings, "sim:port", owner)? };
    let k = Rc::new(RefCell::new(kernel));
    Ok((
        Engine::new(wrap(SimPort(k.clone())), attached, "sim:port".into()),
        k,
    ))
}

/// Walks the `ni_bufs_head` list the way the kernel does at close.
pub(crate) fn walk_bufs_head(k: &SimKernel) -> Vec<u32> {
    let mut v = Vec::new();
    // SAFETY: the nifp and the list's buffers are inside the region.
    unsafe {
        let ring = k.rx.first().or(k.tx.first()).unwrap().ptr;
        let mut i = (*k.nifp).ni_bufs_head;
        while i != 0 {
            assert!(v.len() <= k.nbufs() as usize, "list loops");
            v.push(i);
            i = k.buf(ring, i).cast::<u32>().read();
        }
    }
    v
}
