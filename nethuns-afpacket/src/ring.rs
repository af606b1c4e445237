//! [`Rings`]: the one mapping of a packet socket, the RX ring of blocks followed by the TX ring
//! of frames, reached only through byte offsets into its [`SharedMap`]. This is the only file
//! that touches the mapping; the layouts are libc's (`tpacket_block_desc`, `tpacket3_hdr`).
//!
//! RX: each block starts with its descriptor (`block_status`, `num_pkts`,
//! `offset_to_first_pkt`, read as atomics: the kernel writes them), followed by packets, each a
//! [`Hdr`] then its frame. TX: each frame slot is a `tpacket3_hdr` (its `tp_status` the
//! ownership word) then the frame data at [`TX_DATA_OFFSET`].
//!
//! The layout is checked against the mapping once, in [`Rings::new`]; a [`Block`] or a
//! [`TxSlot`] is made only by the `Rings` it belongs to (each socket has one), so the hot
//! accesses at their offsets need no bounds check of their own. The packet headers, at offsets
//! the kernel wrote, are checked against their block: that check is the walker's.

use std::mem::offset_of;
use std::sync::atomic::AtomicU32;

use nethuns_core::frame::{ETH_HLEN, VLAN_HLEN};
use nethuns_core::{Error, Result};
use nethuns_sys_linux::SharedMap;

use crate::geometry::{RxGeometry, TxGeometry, TPACKET_ALIGNMENT, TX_DATA_OFFSET};

/// Offset of `block_status` in a block (`tpacket_block_desc.hdr.bh1.block_status`).
pub(crate) const BLOCK_STATUS: usize = offset_of!(libc::tpacket_block_desc, hdr);
/// Offset of `num_pkts` in a block.
pub(crate) const NUM_PKTS: usize = BLOCK_STATUS + offset_of!(libc::tpacket_hdr_v1, num_pkts);
/// Offset of `offset_to_first_pkt` in a block.
pub(crate) const FIRST_PKT: usize =
    BLOCK_STATUS + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);

/// Size of the v3 packet header (`struct tpacket3_hdr`).
pub(crate) const HDR: usize = std::mem::size_of::<libc::tpacket3_hdr>();

/// An RX block of one [`Rings`]: its index, below the ring's block count, and where it
/// starts and ends in the mapping. Made only by that `Rings` ([`Rings::block`],
/// [`Rings::next_block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    index: u32,
    start: usize,
    end: usize,
}

impl Block {
    /// The block's index.
    #[inline]
    pub(crate) fn index(self) -> u32 {
        self.index
    }

    /// The block's offset in the mapping.
    #[inline]
    pub(crate) fn start(self) -> usize {
        self.start
    }

    /// The offset just past the block.
    #[inline]
    pub(crate) fn end(self) -> usize {
        self.end
    }
}

/// A TX frame slot of one [`Rings`]: the offset of its header in the mapping. Made only by
/// [`Rings::tx_slots`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxSlot(usize);

/// A frame that passed the size rule of `send` for the TX slots of one [`Rings`] (so it fits
/// a slot). Made only by [`Rings::tx_frame`].
pub(crate) struct TxFrame<'a>(&'a [u8]);

/// A frame length that passed the first check of `send_with` for the TX slots of one
/// [`Rings`] (so it fits a slot). Made only by [`Rings::tx_len`].
#[derive(Clone, Copy)]
pub(crate) struct TxLen(usize);

/// The mapped rings: the RX ring (`rx`) at offset 0, the TX ring after it.
pub(crate) struct Rings {
    map: SharedMap,
    rx: RxGeometry,
    /// Largest untagged frame a TX slot takes: MTU + Ethernet header, bounded by the slot's
    /// room (0 without a TX ring).
    tx_max_untagged: usize,
    /// Largest frame whose outer EtherType is 802.1Q: 4 bytes more, bounded by the room.
    tx_max_tagged: usize,
}

/// Whether `frame` may carry 4 bytes more than the MTU allows: its outer EtherType is 802.1Q.
///
/// The kernel's AF_PACKET transmit path (`packet_extra_vlan_len_allowed`) allows the extra
/// tag length only for TPID 0x8100: a longer frame under a 0x88A8 or 0x9100 outer tag is
/// discarded without an error (measured on Linux 6.x, `tests/vlan.rs`), so `send` refuses it.
#[inline]
fn extra_tag_allowed(frame: &[u8]) -> bool {
    frame.len() >= ETH_HLEN && u16::from_be_bytes([frame[12], frame[13]]) == 0x8100
}

impl Rings {
    /// The rings over `map`, whose first bytes are the RX ring of layout `rx`. Panics if the
    /// ring does not fit the mapping or its blocks could not hold their descriptor.
    pub(crate) fn new(map: SharedMap, rx: RxGeometry) -> Self {
        assert!(map.len() >= rx.bytes(), "mapping smaller than the RX ring");
        assert!(rx.block_count > 0, "an RX ring of no blocks");
        // Block descriptors hold 8-byte words at the start of each block, and a block must
        // hold at least one packet header.
        assert!(
            rx.block_size as usize % 8 == 0 && rx.block_size as usize >= HDR.max(FIRST_PKT + 4),
            "RX blocks of {} bytes",
            rx.block_size
        );
        Rings {
            map,
            rx,
            tx_max_untagged: 0,
            tx_max_tagged: 0,
        }
    }

    /// Layout of the RX ring.
    #[inline]
    pub(crate) fn rx(&self) -> &RxGeometry {
        &self.rx
    }

    /// Block `i`, if the ring has it.
    #[inline]
    pub(crate) fn block(&self, i: u32) -> Option<Block> {
        (i < self.rx.block_count).then(|| {
            let start = self.rx.block_offset(i);
            Block {
                index: i,
                start,
                end: start + self.rx.block_size as usize,
            }
        })
    }

    /// Block 0.
    #[inline]
    pub(crate) fn first_block(&self) -> Block {
        Block {
            index: 0,
            start: 0,
            end: self.rx.block_size as usize,
        }
    }

    /// The block after `b`, wrapping.
    #[inline]
    pub(crate) fn next_block(&self, b: Block) -> Block {
        if self.rx.next_block(b.index) == 0 {
            self.first_block()
        } else {
            Block {
                index: b.index + 1,
                start: b.end,
                end: b.end + self.rx.block_size as usize,
            }
        }
    }

    /// A 32-bit word of the descriptor of block `b`, shared with the kernel.
    #[inline(always)]
    fn block_word(&self, b: Block, offset: usize) -> &AtomicU32 {
        debug_assert!(b.index < self.rx.block_count && b.start == self.rx.block_offset(b.index));
        debug_assert!(offset % 4 == 0 && offset < FIRST_PKT + 4);
        // SAFETY: b < block_count (a Block of this ring), so the block lies in the mapping
        // (checked in `new`); the word is one of its descriptor's first FIRST_PKT + 4 ≤
        // block_size bytes, at a 4-aligned offset of an 8-aligned block.
        unsafe { self.map.atomic_u32_unchecked(b.start + offset) }
    }

    /// The status word of block `b`.
    #[inline(always)]
    pub(crate) fn block_status(&self, b: Block) -> &AtomicU32 {
        self.block_word(b, BLOCK_STATUS)
    }

    /// The packet count of block `b`.
    #[inline]
    pub(crate) fn num_pkts(&self, b: Block) -> &AtomicU32 {
        self.block_word(b, NUM_PKTS)
    }

    /// Where the first packet of block `b` is, from the block's start.
    #[inline]
    pub(crate) fn first_pkt(&self, b: Block) -> &AtomicU32 {
        self.block_word(b, FIRST_PKT)
    }

    /// The packet header at `off` (an offset in the mapping) in block `b`, or `None` if it
    /// leaves the block (the offset came from the kernel).
    #[inline(always)]
    pub(crate) fn header(&self, b: Block, off: usize) -> Option<Hdr<'_>> {
        // end - HDR does not wrap: blocks hold a header (checked in `new`).
        (off <= b.end - HDR).then_some(Hdr {
            map: &self.map,
            off,
        })
    }

    /// The four bytes after the MAC addresses of the frame at `data` (an offset in the mapping)
    /// in block `b`, where an 802.1Q tag would be, or `None` if they leave the block. (Put as
    /// the walker's clamp of the captured length, `end - data`, so that the compiler sees
    /// this check is the walker's `caplen ≥ 16` again and drops it.)
    #[inline(always)]
    pub(crate) fn frame_tag(&self, b: Block, data: usize) -> Option<[u8; 4]> {
        const MACS: usize = 12;
        if data > b.end || b.end - data < MACS + 4 {
            return None;
        }
        // SAFETY: data + 16 ≤ the end of block b (checked above), which lies in the mapping
        // (a Block of this ring, layout checked in `new`).
        Some(unsafe { self.map.read_unchecked(data + MACS) })
    }

    /// Puts a 4-byte tag back into the frame at `data` (an offset in the mapping): its first
    /// 12 bytes (the MAC addresses) move 4 bytes to the front, and the tag goes after them.
    /// The frame then starts at `data - 4`.
    pub(crate) fn insert_tag(&self, data: usize, tag: [u8; 4]) {
        const MACS: usize = 12;
        self.map.copy_within(data, data - tag.len(), MACS);
        self.map.write(data - tag.len() + MACS, tag);
    }

    /// The raw slice pointer to `len` bytes at `off`: a payload the walker handed out, which
    /// lies inside its block (not checked again here; making the pointer is safe, reading
    /// through it is the `Context` contract's business).
    #[inline(always)]
    pub(crate) fn payload_ptr(&self, off: usize, len: usize) -> *mut [u8] {
        debug_assert!(off + len <= self.rx.bytes());
        std::ptr::slice_from_raw_parts_mut(self.map.as_ptr().wrapping_add(off), len)
    }

    /// The slots of the TX ring of layout `geo`, which starts at `start` in the mapping (after
    /// the RX ring), for an interface of MTU `mtu`. Panics if it does not fit the mapping or
    /// its frames are misaligned.
    pub(crate) fn tx_slots(&mut self, geo: TxGeometry, start: usize, mtu: u32) -> Box<[TxSlot]> {
        assert!(
            start >= self.rx.bytes()
                && start <= self.map.len()
                && self.map.len() - start >= geo.bytes(),
            "the TX ring leaves the mapping"
        );
        assert!(
            [start, geo.block_size as usize, geo.frame_size as usize]
                .iter()
                .all(|n| n % TPACKET_ALIGNMENT == 0)
                && geo.frame_size as usize >= TX_DATA_OFFSET,
            "misaligned TX frames"
        );
        // What the kernel transmits: MTU + Ethernet header, + one tag for an 802.1Q-tagged
        // frame (larger ones it silently discards, so `send` refuses them). Both fit a slot.
        let room = geo.max_frame();
        self.tx_max_untagged = room.min(mtu as usize + ETH_HLEN);
        self.tx_max_tagged = room.min(mtu as usize + ETH_HLEN + VLAN_HLEN);
        (0..geo.frame_count)
            .map(|i| TxSlot(start + geo.frame_offset(i)))
            .collect()
    }

    /// The `tp_status` word of TX slot `slot`.
    #[inline(always)]
    pub(crate) fn tx_status(&self, slot: TxSlot) -> &AtomicU32 {
        // SAFETY: a slot of this ring's TX ring, which lies in the mapping with 16-aligned
        // frames of at least a header each (checked in `tx_slots`); tp_status is a 4-aligned
        // field of the header.
        unsafe {
            self.map
                .atomic_u32_unchecked(slot.0 + offset_of!(libc::tpacket3_hdr, tp_status))
        }
    }

    /// Writes the header of a TX frame of `len` bytes into slot `slot` (`tp_len`,
    /// `tp_snaplen`, and `tp_next_offset` 0).
    #[inline(always)]
    pub(crate) fn tx_header(&self, slot: TxSlot, len: u32) {
        const SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
        const NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
        const _: () = assert!(offset_of!(libc::tpacket3_hdr, tp_len) == SNAPLEN + 4);
        // SAFETY: the header of a slot of this ring (see `tx_status`); tp_snaplen and tp_len
        // are 8 consecutive bytes of it.
        unsafe { self.map.write_unchecked(slot.0 + SNAPLEN, [len, len]) };
        // SAFETY: as above, for the 4 bytes of tp_next_offset.
        unsafe { self.map.write_unchecked(slot.0 + NEXT, 0u32) };
    }

    /// Largest untagged frame `send` accepts (a tagged one may be 4 bytes longer).
    pub(crate) fn tx_max_untagged(&self) -> usize {
        self.tx_max_untagged
    }

    /// Largest frame `send` accepts whose outer EtherType is 802.1Q (0x8100).
    pub(crate) fn tx_max_tagged(&self) -> usize {
        self.tx_max_tagged
    }

    /// The size rule of `send`: at least an Ethernet header, at most the MTU + 14 (+ 4 under
    /// an 802.1Q outer tag), within a slot.
    #[inline(always)]
    pub(crate) fn tx_frame<'a>(&self, data: &'a [u8]) -> Result<TxFrame<'a>> {
        let len = data.len();
        if len < ETH_HLEN {
            return Err(Error::TooSmallPacket(len));
        }
        if len > self.tx_max_untagged && (len > self.tx_max_tagged || !extra_tag_allowed(data)) {
            return Err(Error::TooBigPacket(len));
        }
        Ok(TxFrame(data))
    }

    /// The first check of `send_with`, on the length alone: at least an Ethernet header, at
    /// most the largest tagged frame.
    #[inline(always)]
    pub(crate) fn tx_len(&self, len: usize) -> Result<TxLen> {
        if len < ETH_HLEN {
            return Err(Error::TooSmallPacket(len));
        }
        if len > self.tx_max_tagged {
            return Err(Error::TooBigPacket(len));
        }
        Ok(TxLen(len))
    }

    /// Copies `frame` into TX slot `slot`.
    #[inline(always)]
    pub(crate) fn tx_copy(&self, slot: TxSlot, frame: TxFrame<'_>) {
        // SAFETY: a slot of this ring (see `tx_status`), whose TX_DATA_OFFSET + room bytes lie
        // in the mapping (checked in `tx_slots`); a TxFrame of this ring is at most
        // tx_max_tagged ≤ room bytes long.
        unsafe { self.map.copy_to_unchecked(slot.0 + TX_DATA_OFFSET, frame.0) };
    }

    /// Lets `fill` write the `len` data bytes of TX slot `slot` in place.
    ///
    /// The caller owns the slot: its status word says it is neither the kernel's
    /// (`TP_STATUS_SEND_REQUEST`, `TP_STATUS_SENDING`) nor queued, and is marked so that
    /// nothing else takes it while `fill` runs.
    #[inline(always)]
    pub(crate) fn tx_fill<R, F: FnOnce(&mut [u8]) -> R>(
        &self,
        slot: TxSlot,
        len: TxLen,
        fill: F,
    ) -> R {
        let p = self.map.as_ptr().wrapping_add(slot.0 + TX_DATA_OFFSET);
        // SAFETY: a TxLen of this ring is at most tx_max_tagged ≤ room bytes, which lie in
        // the slot, in the mapping (see `tx_copy`), initialized (zeroed pages, or earlier
        // frames); the slot is the caller's (see above), so neither the kernel nor another
        // reference reaches these bytes while the slice lives, which ends with this call.
        fill(unsafe { std::slice::from_raw_parts_mut(p, len.0) })
    }

    /// The first `len` data bytes of TX slot `slot`.
    #[cfg(test)]
    pub(crate) fn tx_bytes(&self, slot: TxSlot, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.map.copy_from(slot.0 + TX_DATA_OFFSET, &mut v);
        v
    }

    /// The mapping, for tests that play the kernel.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn map(&self) -> &SharedMap {
        &self.map
    }
}

/// A v3 packet header (`tpacket3_hdr`) in an RX block of a [`Rings`], read field by field
/// (only the fields used are loaded). Made only by [`Rings::header`], for a header that lies
/// in its block.
#[derive(Clone, Copy)]
pub(crate) struct Hdr<'a> {
    map: &'a SharedMap,
    off: usize,
}

/// Offset of a field of `tpacket_hdr_variant1` in `tpacket3_hdr`.
const fn hv1(field: usize) -> usize {
    offset_of!(libc::tpacket3_hdr, hv1) + field
}

macro_rules! hdr_fields {
    ($($name:ident: $t:ident = $off:expr;)*) => {
        impl Hdr<'_> {
            $(
                #[inline(always)]
                pub(crate) fn $name(&self) -> $t {
                    const OFF: usize = $off;
                    const _: () = assert!(OFF + std::mem::size_of::<$t>() <= HDR);
                    // SAFETY: the header's HDR bytes lie in the mapping (checked by
                    // `Rings::header`), and the field is inside them (checked above).
                    unsafe { self.map.read_unchecked::<$t>(self.off + OFF) }
                }
            )*
        }
    };
}

hdr_fields! {
    next_offset: u32 = offset_of!(libc::tpacket3_hdr, tp_next_offset);
    sec: u32 = offset_of!(libc::tpacket3_hdr, tp_sec);
    nsec: u32 = offset_of!(libc::tpacket3_hdr, tp_nsec);
    snaplen: u32 = offset_of!(libc::tpacket3_hdr, tp_snaplen);
    len: u32 = offset_of!(libc::tpacket3_hdr, tp_len);
    status: u32 = offset_of!(libc::tpacket3_hdr, tp_status);
    mac: u16 = offset_of!(libc::tpacket3_hdr, tp_mac);
    rxhash: u32 = hv1(offset_of!(libc::tpacket_hdr_variant1, tp_rxhash));
    vlan_tci: u32 = hv1(offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci));
    vlan_tpid: u16 = hv1(offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a v3 packet header at `off`, as the kernel would.
    pub(crate) fn write_header(map: &SharedMap, off: usize, h: &libc::tpacket3_hdr) {
        let o = |f: usize| off + f;
        map.write(
            o(offset_of!(libc::tpacket3_hdr, tp_next_offset)),
            h.tp_next_offset,
        );
        map.write(o(offset_of!(libc::tpacket3_hdr, tp_sec)), h.tp_sec);
        map.write(o(offset_of!(libc::tpacket3_hdr, tp_nsec)), h.tp_nsec);
        map.write(o(offset_of!(libc::tpacket3_hdr, tp_snaplen)), h.tp_snaplen);
        map.write(o(offset_of!(libc::tpacket3_hdr, tp_len)), h.tp_len);
        map.write(o(offset_of!(libc::tpacket3_hdr, tp_status)), h.tp_status);
        map.write(o(offset_of!(libc::tpacket3_hdr, tp_mac)), h.tp_mac);
        map.write(o(offset_of!(libc::tpacket3_hdr, tp_net)), h.tp_net);
        let v = |f: usize| o(hv1(f));
        map.write(
            v(offset_of!(libc::tpacket_hdr_variant1, tp_rxhash)),
            h.hv1.tp_rxhash,
        );
        map.write(
            v(offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci)),
            h.hv1.tp_vlan_tci,
        );
        map.write(
            v(offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid)),
            h.hv1.tp_vlan_tpid,
        );
    }

    /// Overwrites the `u32` field at `field` of the header at `off` (tests that corrupt what
    /// the kernel wrote).
    pub(crate) fn poke_u32(map: &SharedMap, off: usize, field: usize, v: u32) {
        map.write(off + field, v);
    }

    /// Overwrites the `u16` field at `field` of the header at `off`.
    pub(crate) fn poke_u16(map: &SharedMap, off: usize, field: usize, v: u16) {
        map.write(off + field, v);
    }

    #[test]
    fn layout_offsets() {
        assert_eq!(BLOCK_STATUS, 8);
        assert_eq!(NUM_PKTS, 12);
        assert_eq!(FIRST_PKT, 16);
        assert_eq!(HDR, 48);
    }

    #[test]
    fn header_fields_are_libcs() {
        let map = crate::sys::anonymous_rings(4096, false);
        let h = libc::tpacket3_hdr {
            tp_next_offset: 1,
            tp_sec: 2,
            tp_nsec: 3,
            tp_snaplen: 4,
            tp_len: 5,
            tp_status: 6,
            tp_mac: 7,
            tp_net: 0,
            hv1: libc::tpacket_hdr_variant1 {
                tp_rxhash: 8,
                tp_vlan_tci: 9,
                tp_vlan_tpid: 10,
                tp_padding: 0,
            },
            tp_padding: [0; 8],
        };
        write_header(&map, 96, &h);
        let rings = Rings::new(
            map,
            RxGeometry {
                block_size: 4096,
                block_count: 1,
                frame_size: 2048,
            },
        );
        let r = rings.header(rings.first_block(), 96).unwrap();
        assert_eq!(
            (
                r.next_offset(),
                r.sec(),
                r.nsec(),
                r.snaplen(),
                r.len(),
                r.status()
            ),
            (1, 2, 3, 4, 5, 6)
        );
        assert_eq!(
            (r.mac(), r.rxhash(), r.vlan_tci(), r.vlan_tpid()),
            (7, 8, 9, 10)
        );
        assert!(rings.header(rings.first_block(), 4096 - HDR).is_some());
        assert!(rings
            .header(rings.block(0).unwrap(), 4096 - HDR + 1)
            .is_none());
        assert!(rings.frame_tag(rings.first_block(), 4080).is_some());
        assert!(rings.frame_tag(rings.first_block(), 4081).is_none());
        assert!(rings.frame_tag(rings.first_block(), 8192).is_none());
        assert_eq!(rings.block(1), None);
    }
}
