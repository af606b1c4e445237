//! Ring layout arithmetic, with no kernel: where blocks and frames sit in the mapping, and how
//! a [`BufferDesc`](nethuns_core::BufferDesc) names a packet.
//!
//! The mapping holds the RX ring (`block_count` blocks of `block_size` bytes) followed by the
//! TX ring (blocks of whole frames). A received packet is named by the byte offset of its first
//! byte from the start of the mapping, so its block is `offset / block_size`.

use crate::flags::BpfInstruction;

/// `TPACKET_ALIGNMENT`: frames and packet headers are aligned to this.
pub const TPACKET_ALIGNMENT: usize = libc::TPACKET_ALIGNMENT;
/// `TPACKET3_HDRLEN`: the v3 frame header plus a `sockaddr_ll`.
pub const TPACKET3_HDRLEN: usize = libc::TPACKET3_HDRLEN;
/// Where the frame data starts in a TX frame: `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`.
pub const TX_DATA_OFFSET: usize =
    std::mem::size_of::<libc::tpacket3_hdr>().next_multiple_of(TPACKET_ALIGNMENT);

/// Layout of the RX ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxGeometry {
    /// Bytes per block.
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// The kernel's frame accounting unit.
    pub frame_size: u32,
}

impl RxGeometry {
    /// Frames per block, as the kernel counts them (`tp_frame_nr / tp_block_nr`).
    pub fn frames_per_block(&self) -> u32 {
        self.block_size / self.frame_size
    }

    /// `tp_frame_nr` of the ring request.
    pub fn frame_count(&self) -> u32 {
        self.frames_per_block() * self.block_count
    }

    /// Bytes of the RX ring.
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.block_count as usize
    }

    /// Offset of block `block` from the start of the mapping.
    #[inline]
    pub fn block_offset(&self, block: u32) -> usize {
        block as usize * self.block_size as usize
    }

    /// The block holding byte `offset` of the RX ring.
    #[inline]
    pub fn block_of(&self, offset: usize) -> u32 {
        (offset / self.block_size as usize) as u32
    }

    /// The block after `block`, wrapping.
    #[inline]
    pub fn next_block(&self, block: u32) -> u32 {
        if block + 1 == self.block_count {
            0
        } else {
            block + 1
        }
    }
}

/// Layout of the TX ring: frames of `frame_size` bytes, `frames_per_block` to a block of
/// `block_size` bytes (the smallest page multiple holding one frame), `frame_count` in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxGeometry {
    /// Bytes per frame.
    pub frame_size: u32,
    /// Bytes per block (a page multiple).
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// Number of frames (a multiple of the frames per block, ≥ the count asked for).
    pub frame_count: u32,
}

impl TxGeometry {
    /// The layout for at least `frames` frames of `frame_size` bytes on pages of `page` bytes.
    pub fn new(frame_size: u32, frames: u32, page: u32) -> Self {
        let block_size = frame_size.next_multiple_of(page);
        let per_block = block_size / frame_size;
        let block_count = frames.div_ceil(per_block);
        TxGeometry {
            frame_size,
            block_size,
            block_count,
            frame_count: block_count * per_block,
        }
    }

    /// Frames per block.
    pub fn frames_per_block(&self) -> u32 {
        self.block_size / self.frame_size
    }

    /// Bytes of the TX ring.
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.block_count as usize
    }

    /// Offset of frame `i` from the start of the TX ring (frames never straddle blocks).
    #[inline]
    pub fn frame_offset(&self, i: u32) -> usize {
        let per = self.frames_per_block();
        (i / per) as usize * self.block_size as usize
            + (i % per) as usize * self.frame_size as usize
    }

    /// The largest frame one slot carries.
    pub fn max_frame(&self) -> usize {
        self.frame_size as usize - TX_DATA_OFFSET
    }
}

/// What [`AfPacketFlags::validate`](crate::AfPacketFlags::validate) computes: ring layouts
/// and the filter program to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The RX ring.
    pub rx: RxGeometry,
    /// The TX ring, if any.
    pub tx: Option<TxGeometry>,
    /// The classic BPF program to attach, if any.
    pub filter: Option<Vec<BpfInstruction>>,
}

impl Geometry {
    /// Bytes of the whole mapping (RX ring then TX ring).
    pub fn map_bytes(&self) -> usize {
        self.rx.bytes() + self.tx.map_or(0, |t| t.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constants() {
        assert_eq!(TX_DATA_OFFSET, 48);
        assert_eq!(TPACKET3_HDRLEN, 68);
    }

    #[test]
    fn rx_blocks() {
        let g = RxGeometry {
            block_size: 8192,
            block_count: 3,
            frame_size: 2048,
        };
        assert_eq!(g.frames_per_block(), 4);
        assert_eq!(g.frame_count(), 12);
        assert_eq!(g.bytes(), 24576);
        assert_eq!(g.block_offset(2), 16384);
        assert_eq!(g.block_of(0), 0);
        assert_eq!(g.block_of(8191), 0);
        assert_eq!(g.block_of(8192), 1);
        assert_eq!(g.block_of(24575), 2);
        assert_eq!(g.next_block(0), 1);
        assert_eq!(g.next_block(2), 0);
        for b in 0..3 {
            assert_eq!(g.block_of(g.block_offset(b) + 100), b);
        }
    }

    #[test]
    fn tx_frames_never_straddle_blocks() {
        for (fs, n, page) in [
            (2048, 1024, 4096),
            (1600, 10, 4096),
            (80, 1000, 4096),
            (8192, 3, 4096),
        ] {
            let g = TxGeometry::new(fs, n, page);
            assert_eq!(g.block_size % page, 0);
            assert!(g.frame_count >= n);
            assert_eq!(g.frame_count % g.frames_per_block(), 0);
            assert_eq!(g.frame_count, g.frames_per_block() * g.block_count);
            for i in 0..g.frame_count {
                let off = g.frame_offset(i);
                let block = off / g.block_size as usize;
                assert_eq!(
                    block,
                    (off + fs as usize - 1) / g.block_size as usize,
                    "frame {i}"
                );
                assert!(off + fs as usize <= g.bytes());
                if i > 0 {
                    assert!(off >= g.frame_offset(i - 1) + fs as usize);
                }
            }
        }
        let g = TxGeometry::new(1600, 10, 4096);
        assert_eq!((g.block_size, g.block_count, g.frame_count), (4096, 5, 10));
        assert_eq!(g.frame_offset(3), 4096 + 1600);
        assert_eq!(g.max_frame(), 1552);
    }
}
