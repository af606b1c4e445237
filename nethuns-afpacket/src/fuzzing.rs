//! The entry point of the `afpacket_block` fuzz target (feature `fuzzing`): the RX block
//! walker over blocks whose every byte the fuzzer wrote, as a broken or hostile kernel could.
//! Not part of the API.

use std::sync::atomic::Ordering;

use nethuns_core::{Context, Token};

use crate::context::{AfPacketContext, Shared};
use crate::geometry::RxGeometry;
use crate::rx::RxCursor;

/// Plays a kernel that wrote `data` into the RX blocks of a two-block ring (laps until the
/// input is used up), and walks them as the socket does, holding some packets as tokens
/// across blocks. Every packet handed out must lie inside its block (the ring is followed by
/// an inaccessible page, and every payload byte is read), the walk must end, and once
/// everything is released every block must be the kernel's again.
///
/// `data[0]`: bit 0 picks 4 or 8 KiB blocks, bit 1 `strip_vlan`, bits 2..8 which packets are
/// held; the rest is the blocks' contents, one block after the other.
pub fn walk_blocks(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let block_size = 4096u32 << (sel & 1);
    let rx = RxGeometry {
        block_size,
        block_count: 2,
        frame_size: 2048,
    };
    let map = crate::sys::anonymous_rings(rx.bytes(), true);
    let ctx = AfPacketContext::new(Shared::new(map, rx, None));
    let s = ctx.shared();
    let cursor = RxCursor::new(s.rings(), sel & 2 != 0);
    let hold = sel >> 2;
    let mut held: Vec<Token> = Vec::new();
    let mut handed_out = 0u32;
    // Each packet takes at least a header: a bound on what a block can hand out.
    let per_block = block_size / std::mem::size_of::<libc::tpacket3_hdr>() as u32;
    for _lap in 0..4 {
        // The kernel's turn: fill every block it owns with the next piece of input.
        for i in 0..rx.block_count {
            if rest.is_empty() {
                break;
            }
            let b = s.rings().block(i).expect("a block of the ring");
            if s.held(b) || s.status(b).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0 {
                continue;
            }
            let (chunk, more) = rest.split_at(rest.len().min(block_size as usize));
            rest = more;
            let start = rx.block_offset(i);
            // Block `b` is the kernel's (not held, status not USER), so nothing else reads or
            // writes it; the chunk is at most one block long.
            let map = s.rings().map();
            map.fill(start, block_size as usize, 0);
            map.copy_to(start, chunk);
            s.status(b).store(libc::TP_STATUS_USER, Ordering::Release);
        }
        // The socket's turn: walk until nothing more comes.
        let mut n = 0u32;
        while let Some(p) = cursor.next(s) {
            n += 1;
            assert!(n <= 2 * per_block, "the walk does not end");
            let off = p.offset();
            let block = rx.block_of(off);
            let end = rx.block_offset(block) + block_size as usize;
            assert!(block < rx.block_count, "packet at {off} outside the ring");
            assert!(
                off + p.caplen() as usize <= end,
                "packet at {off} leaves its block"
            );
            assert_eq!(p.meta.caplen, p.caplen());
            let payload = ctx.packet(p.into_token(&ctx));
            let sum: u32 = payload.iter().map(|&b| b as u32).sum();
            std::hint::black_box(sum);
            if hold & (1 << (handed_out % 6)) != 0 {
                held.push(payload.into_token());
            }
            handed_out += 1;
        }
        // Some held packets go back between laps, some stay across the next lap.
        let keep = held.len() / 2;
        for t in held.drain(keep..) {
            drop(ctx.packet(t));
        }
        if rest.is_empty() && held.is_empty() {
            break;
        }
    }
    cursor.close(s);
    for t in held {
        drop(ctx.packet(t));
    }
    assert_eq!(ctx.blocks_in_use(), 0, "a block was never given back");
}
