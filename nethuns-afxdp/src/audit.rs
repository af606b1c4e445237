//! Frame accounting: where every UMEM frame is, to prove none is lost.

use crate::sock::Sock;

/// Where the frames of a socket's UMEM are, frame by frame.
///
/// Receive frames cycle fill ring → (kernel) → RX ring → payload/token → released stack →
/// fill ring; transmit frames cycle TX free list → TX ring → (kernel) → completion ring → TX
/// free list. Take it while no traffic flows (the kernel moves frames between rings
/// concurrently otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameAudit {
    /// Frames in the UMEM, and jumbo buffers.
    pub total: u32,
    /// Frames on the fill ring, not yet taken by the kernel.
    pub fill_ring: u32,
    /// Frames on the RX ring, not yet received.
    pub rx_ring: u32,
    /// Frames held by payloads or tokens (received, not released): counted, not seen.
    pub in_use: u64,
    /// Frames released by payloads, waiting to go back to the fill ring.
    pub released: u32,
    /// Released frames that did not fit in the fill ring (always 0 with this crate's sizes).
    pub rx_spare: u32,
    /// TX frames free for `send`.
    pub tx_free: u32,
    /// Jumbo buffers free for multi-buffer frames (counted in `total`, after the frames).
    pub jumbo_free: u32,
    /// TX frames queued on the TX ring, not yet taken by the kernel.
    pub tx_ring: u32,
    /// TX frames on the completion ring, not yet reaped.
    pub completion_ring: u32,
    /// Frames found in no ring or list (should equal `in_use`; more means frames are lost,
    /// e.g. in flight in the kernel).
    pub unaccounted: u32,
    /// Frames found in two places at once (should be empty).
    pub duplicated: Vec<u32>,
}

impl FrameAudit {
    /// Whether every frame is in exactly one place and none is missing beyond those in use.
    pub fn is_consistent(&self) -> bool {
        self.duplicated.is_empty() && self.unaccounted as u64 == self.in_use
    }
}

impl Sock {
    /// Finds every frame of the UMEM (see [`FrameAudit`]). Meant for tests and debugging:
    /// it allocates and walks every ring; call it when no traffic flows.
    pub fn audit_frames(&self) -> FrameAudit {
        let total = self.layout.num_frames + self.umem.jumbo_count();
        let mut seen = vec![0u8; total as usize];
        let mut dup = Vec::new();
        let mut mark = |addr: u64| {
            let f = self.umem.frame_of(addr);
            match seen.get_mut(f as usize) {
                Some(c) => {
                    *c += 1;
                    if *c == 2 {
                        dup.push(f);
                    }
                }
                None => dup.push(f),
            }
        };
        let mut a = FrameAudit {
            total,
            ..Default::default()
        };
        for addr in self.fill.outstanding() {
            a.fill_ring += 1;
            mark(addr);
        }
        for d in self.rx.outstanding() {
            a.rx_ring += 1;
            mark(d.addr);
        }
        for f in self.umem.released_frames() {
            a.released += 1;
            mark(self.umem.addr_of(f));
        }
        for addr in self.umem.local_frames() {
            a.released += 1;
            mark(addr);
        }
        for &addr in self.rx_spare.borrow().iter() {
            a.rx_spare += 1;
            mark(addr);
        }
        for addr in self.tx_free.to_vec() {
            a.tx_free += 1;
            mark(addr);
        }
        for &j in self.jumbo_free.borrow().iter() {
            a.jumbo_free += 1;
            mark(self.umem.addr_of(j));
        }
        for d in self.tx.outstanding() {
            a.tx_ring += 1;
            mark(d.addr);
        }
        for addr in self.comp.outstanding() {
            a.completion_ring += 1;
            mark(addr);
        }
        a.in_use = self
            .handed_out
            .get()
            .saturating_sub(self.umem.released() + u64::from(a.released));
        a.unaccounted = seen.iter().filter(|&&c| c == 0).count() as u32;
        a.duplicated = dup;
        a
    }

    /// RX frames handed out as payloads/tokens since the socket was made.
    pub fn received_frames(&self) -> u64 {
        self.handed_out.get()
    }

    /// Released RX frames put back on the fill ring since the socket was made.
    pub fn recycled_frames(&self) -> u64 {
        self.recycled.get()
    }
}
