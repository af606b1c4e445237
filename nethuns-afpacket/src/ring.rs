//! [`Rings`]: the one mapping of a packet socket, the RX ring of blocks followed by the TX ring
//! of frames, reached only through byte offsets into its [`SharedMap`]. This is the only file
//! that touches the mapping; the layouts are libc's (`tpacket_block_desc`, `tpacket3_hdr`).
//!
//! RX: each block starts with its descriptor (`block_status`, `num_pkts`,
//! `offset_to_first_pkt`, read as atomics: the kernel writes them), followed by packets, each a
//! [`Hdr`] then its frame. TX: each frame slot is a `tpacket3_hdr` (its `tp_status` the
//! ownership word) then the frame data at [`TX_DATA_OFFSET`].
//!
//! Accesses at offsets from the ring's own geometry use the panicking accessors (a panic is a
//! bug here); the packet headers, whose offsets the kernel wrote, use the `try_` ones, whose
//! bounds check is the walker's check that a header lies in the mapping.

use std::mem::offset_of;
use std::sync::atomic::AtomicU32;

use nethuns_sys_linux::SharedMap;

use crate::geometry::{RxGeometry, TX_DATA_OFFSET};

/// Offset of `block_status` in a block (`tpacket_block_desc.hdr.bh1.block_status`).
pub(crate) const BLOCK_STATUS: usize = offset_of!(libc::tpacket_block_desc, hdr);
/// Offset of `num_pkts` in a block.
pub(crate) const NUM_PKTS: usize = BLOCK_STATUS + offset_of!(libc::tpacket_hdr_v1, num_pkts);
/// Offset of `offset_to_first_pkt` in a block.
pub(crate) const FIRST_PKT: usize =
    BLOCK_STATUS + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);

/// Size of the v3 packet header (`struct tpacket3_hdr`).
pub(crate) const HDR: usize = std::mem::size_of::<libc::tpacket3_hdr>();

/// The mapped rings: the RX ring (`rx`) at offset 0, the TX ring after it.
pub(crate) struct Rings {
    map: SharedMap,
    rx: RxGeometry,
}

impl Rings {
    /// The rings over `map`, whose first bytes are the RX ring of layout `rx`.
    pub(crate) fn new(map: SharedMap, rx: RxGeometry) -> Self {
        assert!(map.len() >= rx.bytes(), "mapping smaller than the RX ring");
        Rings { map, rx }
    }

    /// Layout of the RX ring.
    #[inline]
    pub(crate) fn rx(&self) -> &RxGeometry {
        &self.rx
    }

    /// A 32-bit word of the descriptor of block `block`, shared with the kernel.
    #[inline]
    fn block_word(&self, block: u32, offset: usize) -> &AtomicU32 {
        debug_assert!(block < self.rx.block_count);
        self.map.atomic_u32(self.rx.block_offset(block) + offset)
    }

    /// The status word of block `block`.
    #[inline]
    pub(crate) fn block_status(&self, block: u32) -> &AtomicU32 {
        self.block_word(block, BLOCK_STATUS)
    }

    /// The packet count of block `block`.
    #[inline]
    pub(crate) fn num_pkts(&self, block: u32) -> &AtomicU32 {
        self.block_word(block, NUM_PKTS)
    }

    /// Where the first packet of block `block` is, from the block's start.
    #[inline]
    pub(crate) fn first_pkt(&self, block: u32) -> &AtomicU32 {
        self.block_word(block, FIRST_PKT)
    }

    /// The packet header at `off`, or `None` if it leaves the mapping (the offset came from
    /// the kernel).
    #[inline(always)]
    pub(crate) fn header(&self, off: usize) -> Option<Hdr> {
        self.map.try_read::<[u8; HDR]>(off).map(Hdr)
    }

    /// The four bytes at `off` of a received frame (where an 802.1Q tag would be).
    #[inline(always)]
    pub(crate) fn tag(&self, off: usize) -> [u8; 4] {
        self.map.read(off)
    }

    /// Puts a 4-byte tag back into the frame at `data`: its first 12 bytes (the MAC
    /// addresses) move 4 bytes to the front, and the tag goes after them. The frame then
    /// starts at `data - 4`.
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

    /// The `tp_status` word of the TX frame slot at `slot`.
    #[inline(always)]
    pub(crate) fn tx_status(&self, slot: usize) -> &AtomicU32 {
        self.map
            .atomic_u32(slot + offset_of!(libc::tpacket3_hdr, tp_status))
    }

    /// Writes the header of a TX frame of `len` bytes into slot `slot` (`tp_len`,
    /// `tp_snaplen`, and `tp_next_offset` 0).
    #[inline(always)]
    pub(crate) fn tx_header(&self, slot: usize, len: u32) {
        const _: () = assert!(
            offset_of!(libc::tpacket3_hdr, tp_len)
                == offset_of!(libc::tpacket3_hdr, tp_snaplen) + 4
        );
        self.map.write(
            slot + offset_of!(libc::tpacket3_hdr, tp_snaplen),
            [len, len],
        );
        self.map
            .write(slot + offset_of!(libc::tpacket3_hdr, tp_next_offset), 0u32);
    }

    /// Copies `data` into the TX frame slot at `slot`.
    #[inline(always)]
    pub(crate) fn tx_copy(&self, slot: usize, data: &[u8]) {
        self.map.copy_to(slot + TX_DATA_OFFSET, data);
    }

    /// Lets `fill` write the `len` data bytes of the TX frame slot at `slot` in place.
    ///
    /// The caller owns the slot: its status word says it is neither the kernel's
    /// (`TP_STATUS_SEND_REQUEST`, `TP_STATUS_SENDING`) nor queued, and is marked so that
    /// nothing else takes it while `fill` runs.
    #[inline(always)]
    pub(crate) fn tx_fill<R, F: FnOnce(&mut [u8]) -> R>(
        &self,
        slot: usize,
        len: usize,
        fill: F,
    ) -> R {
        let p = self.map.range_ptr(slot + TX_DATA_OFFSET, len);
        // SAFETY: the range lies in the mapping (checked by `range_ptr`), whose bytes are
        // initialized (zeroed pages, or earlier frames); the slot is the caller's (see above),
        // so neither the kernel nor another reference reaches these bytes while the slice
        // lives, which ends with this call.
        fill(unsafe { &mut *p })
    }

    /// The first `len` data bytes of the TX frame slot at `slot`.
    #[cfg(test)]
    pub(crate) fn tx_bytes(&self, slot: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.map.copy_from(slot + TX_DATA_OFFSET, &mut v);
        v
    }

    /// The mapping, for tests that play the kernel.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn map(&self) -> &SharedMap {
        &self.map
    }
}

/// A copy of a v3 packet header (`tpacket3_hdr`), read field by field (only the fields used
/// are loaded).
#[derive(Clone, Copy)]
pub(crate) struct Hdr([u8; HDR]);

/// Offset of a field of `tpacket_hdr_variant1` in `tpacket3_hdr`.
const fn hv1(field: usize) -> usize {
    offset_of!(libc::tpacket3_hdr, hv1) + field
}

macro_rules! hdr_fields {
    ($($name:ident: $t:ident = $off:expr;)*) => {
        impl Hdr {
            $(
                #[inline(always)]
                pub(crate) fn $name(&self) -> $t {
                    const OFF: usize = $off;
                    const N: usize = std::mem::size_of::<$t>();
                    let mut b = [0u8; N];
                    b.copy_from_slice(&self.0[OFF..OFF + N]);
                    $t::from_ne_bytes(b)
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
        let r = rings.header(96).unwrap();
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
        assert!(rings.header(4096 - HDR).is_some());
        assert!(rings.header(4096 - HDR + 1).is_none());
    }
}
