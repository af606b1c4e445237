//! [`AfPacketContext`] and the block accounting: who owns which RX block, counted per block.
//!
//! A block the kernel handed over (`TP_STATUS_USER`) is *opened* by the socket, which sets the
//! block's count to `num_pkts + 1`: one reference per packet it will hand out, plus its own.
//! Every payload or token names one packet, so it carries one reference; dropping the payload
//! (on any thread) takes one away, and the socket drops its own once it has handed out the
//! last packet. Whoever takes the count to zero gives the block back to the kernel by storing
//! `TP_STATUS_KERNEL` in it. That is one atomic subtraction per release, no lock, no retry.
//!
//! Opening a block also sets [`OPENED`] in its status word (the kernel looks only at
//! `TP_STATUS_USER` there, or compares with `TP_STATUS_KERNEL`, and rewrites the whole word when
//! it next fills the block). So the socket, walking the ring in order, tells a block it still
//! holds from the previous lap (`USER | OPENED`) from a fresh one (`USER`) by the status word
//! alone: one load, which is all an empty poll costs.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use nethuns_core::{next_pool_id, BufferDesc, Context};

use nethuns_sys_linux::SharedMap;

use crate::geometry::RxGeometry;
use crate::ring::{Block, Rings};

/// The bit of a block's status word that says the socket opened the block (and payloads or
/// the socket may still hold it). The kernel never sets it.
pub(crate) const OPENED: u32 = 1 << 31;

/// A reference count on its own cache line: counts are released from several threads.
#[repr(align(64))]
struct BlockRefs(AtomicU32);

/// Memory and bookkeeping shared by a socket and every clone of its context.
pub(crate) struct Shared {
    // Field order is drop order: unmap before closing the socket.
    rings: Rings,
    /// `rx.block_size`, known not zero (a division by it needs no check).
    block_size: std::num::NonZeroU32,
    refs: Box<[BlockRefs]>,
    fd: Option<OwnedFd>,
}

/// A block the socket opened: where its first packet is and how many it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenBlock {
    pub(crate) first: u32,
    pub(crate) num_pkts: u32,
}

impl Shared {
    /// Bookkeeping over `map`, whose first bytes are the RX ring of layout `rx`.
    pub(crate) fn new(map: SharedMap, rx: RxGeometry, fd: Option<OwnedFd>) -> Self {
        Shared {
            rings: Rings::new(map, rx),
            block_size: std::num::NonZeroU32::new(rx.block_size).expect("RX blocks of 0 bytes"),
            refs: (0..rx.block_count)
                .map(|_| BlockRefs(AtomicU32::new(0)))
                .collect(),
            fd,
        }
    }

    /// The socket (none for the kernel-less test ring).
    pub(crate) fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    /// The socket's descriptor (-1 for the kernel-less test ring).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// The mapped rings.
    #[inline]
    pub(crate) fn rings(&self) -> &Rings {
        &self.rings
    }

    /// The mapped rings, before the context is shared (to lay out the TX slots).
    pub(crate) fn rings_mut(&mut self) -> &mut Rings {
        &mut self.rings
    }

    /// Layout of the RX ring.
    #[inline]
    pub(crate) fn rx(&self) -> &RxGeometry {
        self.rings.rx()
    }

    /// The status word of block `block`.
    #[inline]
    pub(crate) fn status(&self, block: Block) -> &AtomicU32 {
        self.rings.block_status(block)
    }

    /// Opens block `block` if the kernel has handed it over (and it is not still held from the
    /// previous lap); takes `num_pkts + 1` references.
    #[inline]
    pub(crate) fn try_open(&self, block: Block) -> Option<OpenBlock> {
        // Acquire pairs with the kernel's write barrier before it sets TP_STATUS_USER: the
        // packets are complete once we see the status. A block still held from the previous
        // lap has OPENED set.
        let status = self.status(block).load(Ordering::Acquire);
        if status & (libc::TP_STATUS_USER | OPENED) != libc::TP_STATUS_USER {
            return None;
        }
        self.open(block, status)
    }

    #[inline]
    fn open(&self, block: Block, status: u32) -> Option<OpenBlock> {
        // Every packet takes at least its header, so a block holds at most this many: a
        // larger count (not from a sane kernel) must neither overflow the count below nor
        // make the walk repeat itself (the walk drops the rest of a block that ends early).
        let max_pkts = self.block_size.get() / crate::ring::HDR as u32;
        let num_pkts = self
            .rings
            .num_pkts(block)
            .load(Ordering::Relaxed)
            .min(max_pkts);
        let first = self.rings.first_pkt(block).load(Ordering::Relaxed);
        // Nobody else touches the count of a block that is not open: the socket is the only
        // one that opens blocks, and every reference of the previous lap is gone (the last
        // one stored TP_STATUS_KERNEL, which the kernel replaced with USER).
        self.refs[block.index() as usize]
            .0
            .store(num_pkts + 1, Ordering::Relaxed);
        // The kernel does not write the status of a block that is the user's.
        self.status(block).store(status | OPENED, Ordering::Relaxed);
        Some(OpenBlock { first, num_pkts })
    }

    /// Whether payloads or tokens of the previous lap still hold `block` (the socket waits for
    /// it, not for the kernel).
    #[inline]
    pub(crate) fn held(&self, block: Block) -> bool {
        self.status(block).load(Ordering::Relaxed) & OPENED != 0
    }

    /// Drops `n` references to `block`; the last one gives the block back to the kernel.
    #[inline]
    pub(crate) fn release(&self, block: Block, n: u32) {
        let i = block.index();
        self.release_refs(&self.refs[i as usize].0, i, n);
    }

    #[inline]
    fn release_refs(&self, refs: &AtomicU32, block: u32, n: u32) {
        // AcqRel: every use of the block's bytes by the releasers happens before the last
        // release, whose Release store hands the block to the kernel.
        let prev = refs.fetch_sub(n, Ordering::AcqRel);
        if prev <= n {
            self.last_release(block, prev, n);
        }
    }

    /// The count reached zero (or would have gone below: a release nobody took a reference
    /// for, which the ledger catches in debug builds).
    #[cold]
    #[inline(never)]
    fn last_release(&self, block: u32, prev: u32, n: u32) {
        assert!(
            prev == n,
            "block {block}: releasing {n} of {prev} references"
        );
        let block = self.rings.block(block).expect("a block of this ring");
        self.status(block)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// Number of RX blocks held by the socket or by payloads/tokens right now.
    pub(crate) fn blocks_in_use(&self) -> usize {
        self.refs
            .iter()
            .filter(|r| r.0.load(Ordering::Relaxed) != 0)
            .count()
    }
}

/// The [`Context`] of an AF_PACKET socket: the mapped RX ring, shared by every clone.
///
/// A [`BufferDesc`] is the byte offset of a packet's first byte from the start of the mapping,
/// so its block is `offset / block_size`. Payloads point straight into the ring (no copy); the
/// block stays out of the kernel's reach until every payload and token from it was released.
/// A token dropped unconsumed therefore pins its block for the life of the context: the ring
/// has one block fewer, and when all are pinned nothing more is received.
#[derive(Clone)]
pub struct AfPacketContext {
    shared: Arc<Shared>,
    id: u32,
}

impl AfPacketContext {
    pub(crate) fn new(shared: Shared) -> Self {
        AfPacketContext {
            shared: Arc::new(shared),
            id: next_pool_id(),
        }
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Number of RX blocks currently held by the socket or by payloads/tokens (the rest belong
    /// to the kernel).
    pub fn blocks_in_use(&self) -> usize {
        self.shared.blocks_in_use()
    }

    /// Number of RX blocks of the ring.
    pub fn block_count(&self) -> usize {
        self.shared.rx().block_count as usize
    }
}

impl std::fmt::Debug for AfPacketContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketContext")
            .field("pool_id", &self.id)
            .field("rx", self.shared.rx())
            .field("blocks_in_use", &self.blocks_in_use())
            .finish()
    }
}

impl Context for AfPacketContext {
    #[inline]
    fn pool_id(&self) -> u32 {
        self.id
    }

    #[inline]
    unsafe fn unsafe_buffer(&self, buf_idx: BufferDesc, size: usize) -> *mut [u8] {
        // The caller owns buf_idx, a packet of this ring, whose `size` bytes lie in its block
        // (the walker handed out no other), so the range is inside the mapping.
        self.shared.rings.payload_ptr(buf_idx.get(), size)
    }

    #[inline]
    unsafe fn release(&self, buf_idx: BufferDesc) {
        nethuns_core::ledger::released(self.id, buf_idx);
        let s = &*self.shared;
        // The RX ring is smaller than 4 GiB (the kernel's limit): a 32-bit division.
        let Ok(off) = u32::try_from(buf_idx.get()) else {
            not_in_ring(buf_idx)
        };
        let block = off / s.block_size;
        match s.refs.get(block as usize) {
            Some(refs) => s.release_refs(&refs.0, block, 1),
            None => not_in_ring(buf_idx),
        }
    }
}

/// A release of a buffer outside the RX ring: not a payload of this context.
#[cold]
#[inline(never)]
fn not_in_ring(buf_idx: BufferDesc) -> ! {
    panic!("buffer {} is not in this RX ring", buf_idx.get())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nethuns_core::Token;

    /// A ring of `blocks` blocks of 4096 bytes over anonymous memory, kernel-less.
    pub(crate) fn test_ring(blocks: u32) -> AfPacketContext {
        let rx = RxGeometry {
            block_size: 4096,
            block_count: blocks,
            frame_size: 2048,
        };
        let map = crate::sys::anonymous_rings(rx.bytes(), false);
        AfPacketContext::new(Shared::new(map, rx, None))
    }

    /// Block `i` of the test ring.
    pub(crate) fn blk(ctx: &AfPacketContext, i: u32) -> Block {
        ctx.shared()
            .rings()
            .block(i)
            .expect("a block of the test ring")
    }

    /// Plays the kernel: block `b` now holds `n` packets and belongs to user space.
    pub(crate) fn kernel_fill(ctx: &AfPacketContext, b: u32, n: u32) {
        let b = blk(ctx, b);
        let r = ctx.shared().rings();
        r.num_pkts(b).store(n, Ordering::Relaxed);
        r.first_pkt(b).store(48, Ordering::Relaxed);
        r.block_status(b)
            .store(libc::TP_STATUS_USER, Ordering::Release);
    }

    /// Plays a broken kernel: block `b` claims `n` packets.
    pub(crate) fn kernel_set_num_pkts(ctx: &AfPacketContext, b: u32, n: u32) {
        ctx.shared()
            .rings()
            .num_pkts(blk(ctx, b))
            .store(n, Ordering::Relaxed);
    }

    pub(crate) fn status(ctx: &AfPacketContext, b: u32) -> u32 {
        ctx.shared().status(blk(ctx, b)).load(Ordering::Acquire)
    }

    /// A token for the packet at `off` of block `b` (the tests name distinct packets of an
    /// opened block).
    fn token(ctx: &AfPacketContext, b: u32, off: usize) -> Token {
        crate::sys::test_token(BufferDesc::new(b as usize * 4096 + off), 10, ctx.pool_id())
    }

    #[test]
    fn block_returns_after_last_release() {
        let ctx = test_ring(2);
        let s = ctx.shared();
        assert!(
            s.try_open(blk(&ctx, 0)).is_none(),
            "kernel's block must not open"
        );
        kernel_fill(&ctx, 0, 3);
        let open = s.try_open(blk(&ctx, 0)).unwrap();
        assert_eq!(
            open,
            OpenBlock {
                first: 48,
                num_pkts: 3
            }
        );
        let toks: Vec<_> = (0..3).map(|i| token(&ctx, 0, 100 + i * 100)).collect();
        s.release(blk(&ctx, 0), 1); // the socket handed out everything
        assert_eq!(ctx.blocks_in_use(), 1);
        let mut it = toks.into_iter();
        drop(ctx.packet(it.next().unwrap()));
        drop(ctx.packet(it.next().unwrap()));
        assert_eq!(status(&ctx, 0), libc::TP_STATUS_USER | OPENED);
        assert!(s.held(blk(&ctx, 0)));
        assert!(
            s.try_open(blk(&ctx, 0)).is_none(),
            "a held block must not reopen"
        );
        drop(ctx.packet(it.next().unwrap()));
        assert_eq!(status(&ctx, 0), libc::TP_STATUS_KERNEL);
        assert_eq!(ctx.blocks_in_use(), 0);
    }

    #[test]
    fn stale_user_status_with_held_block_is_not_reopened() {
        // The kernel never rewrites a held block, so a USER status on a block with references
        // is the previous lap's: the socket must wait.
        let ctx = test_ring(1);
        kernel_fill(&ctx, 0, 1);
        ctx.shared().try_open(blk(&ctx, 0)).unwrap();
        let t = token(&ctx, 0, 64);
        ctx.shared().release(blk(&ctx, 0), 1);
        assert!(ctx.shared().try_open(blk(&ctx, 0)).is_none());
        drop(ctx.packet(t));
        assert!(
            ctx.shared().try_open(blk(&ctx, 0)).is_none(),
            "kernel's again"
        );
        kernel_fill(&ctx, 0, 2);
        assert!(ctx.shared().try_open(blk(&ctx, 0)).is_some());
    }

    #[test]
    fn releases_from_many_threads() {
        let ctx = test_ring(4);
        for round in 0..200u32 {
            let b = round % 4;
            kernel_fill(&ctx, b, 64);
            ctx.shared().try_open(blk(&ctx, b)).unwrap();
            let toks: Vec<_> = (0..64).map(|i| token(&ctx, b, 64 + i * 60)).collect();
            let mut chunks: Vec<Vec<Token>> = vec![vec![], vec![], vec![], vec![]];
            for (i, t) in toks.into_iter().enumerate() {
                chunks[i % 4].push(t);
            }
            std::thread::scope(|sc| {
                for chunk in chunks {
                    let c = ctx.clone();
                    sc.spawn(move || {
                        for t in chunk {
                            drop(c.packet(t));
                        }
                    });
                }
                ctx.shared().release(blk(&ctx, b), 1);
            });
            assert_eq!(status(&ctx, b), libc::TP_STATUS_KERNEL, "round {round}");
            assert_eq!(ctx.blocks_in_use(), 0);
        }
    }

    #[test]
    fn bulk_release_of_unhanded_packets() {
        let ctx = test_ring(1);
        kernel_fill(&ctx, 0, 5);
        ctx.shared().try_open(blk(&ctx, 0)).unwrap();
        let t = token(&ctx, 0, 64);
        // The socket goes away having handed out one of five: four + its own go at once.
        ctx.shared().release(blk(&ctx, 0), 5);
        assert_eq!(status(&ctx, 0), libc::TP_STATUS_USER | OPENED);
        drop(ctx.packet(t));
        assert_eq!(status(&ctx, 0), libc::TP_STATUS_KERNEL);
    }

    #[test]
    #[should_panic(expected = "not in this RX ring")]
    fn foreign_offset_panics() {
        let ctx = test_ring(1);
        // The test checks that an offset outside the ring is refused.
        let t = crate::sys::test_token(BufferDesc::new(1 << 20), 0, ctx.pool_id());
        drop(ctx.packet(t));
    }
}
