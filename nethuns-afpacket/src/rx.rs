//! Walking the packets of the RX block the kernel handed over, with no syscall and no atomic
//! operation per packet (references are taken for the whole block when it is opened).

use std::cell::Cell;
use std::sync::atomic::Ordering;

use nethuns_core::metadata::AfPacketMeta;
use nethuns_core::{BufferDesc, Payload, Token};

use crate::context::{AfPacketContext, Shared, OPENED};
use crate::ring::{Block, Hdr, Rings, HDR};
/// Where the frame may start at the earliest: after the header and its `sockaddr_ll`
/// (`TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll)`).
const MAC_MIN: usize = crate::geometry::TPACKET3_HDRLEN;
/// The two MAC addresses that move in front of a restored VLAN tag.
const MACS: usize = 12;
/// One 802.1Q tag.
const VLAN_HLEN: usize = nethuns_core::frame::VLAN_HLEN;

/// Where the socket is in the RX ring. With `remaining == 0` no block is open and `block` is
/// the next one to open; otherwise `block` is open (the socket holds one reference on it plus
/// one per packet not yet handed out) and `next` is the offset of the next packet header.
///
/// Changed in place through `&self` (the socket is `!Sync`), one `Cell` per field: each
/// access is a plain load or store, and nothing is copied in and out whole.
#[derive(Debug)]
pub(crate) struct RxCursor {
    block: Cell<Block>,
    next: Cell<usize>,
    remaining: Cell<u32>,
    /// Leave the outer VLAN tag where the kernel put it (in the header only).
    keep_stripped: bool,
}

/// The tag the kernel took out of the frame (`TP_STATUS_VLAN_VALID`) put back in front of the
/// frame at `data` (`caplen` bytes), where there is room: the frame's new start, captured and
/// wire lengths.
#[cold]
#[inline(never)]
fn put_tag_back(s: &Shared, h: Hdr<'_>, data: usize, caplen: u32, tpid: u16) -> (usize, u32, u32) {
    if caplen as usize >= MACS && h.mac() as usize >= MAC_MIN + VLAN_HLEN {
        // The kernel moved the outer tag out of the frame: put it back, as libpcap does, so
        // that the payload is the frame as on the wire. The socket holds this block (the
        // kernel does not touch it) and this packet was not handed out yet, so nobody else
        // sees these bytes; `data - 4 ≥ header + MAC_MIN` (checked) keeps the write after
        // the packet's header and sockaddr_ll, and `data + 12 ≤ block end` (caplen ≥ 12,
        // clamped to the block) keeps the moved bytes inside the block.
        let [t0, t1] = tpid.to_be_bytes();
        let [c0, c1] = (h.vlan_tci() as u16).to_be_bytes();
        s.rings().insert_tag(data, [t0, t1, c0, c1]);
        (
            data - VLAN_HLEN,
            caplen + VLAN_HLEN as u32,
            h.len().saturating_add(VLAN_HLEN as u32),
        )
    } else {
        (data, caplen, h.len())
    }
}

/// One received packet: where it is, its captured length, its metadata. Made only by
/// [`RxCursor::next`], which took one reference on the packet's block for it: turning it into
/// a token or payload (once: it is not `Clone`) hands that reference over.
pub(crate) struct RxPacket {
    desc: BufferDesc,
    caplen: u32,
    pub(crate) meta: AfPacketMeta,
}

impl RxPacket {
    /// The packet's offset in the mapping.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn offset(&self) -> usize {
        self.desc.get()
    }

    /// The captured length.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn caplen(&self) -> u32 {
        self.caplen
    }

    /// The token of this packet, of context `ctx` (the one whose ring the cursor walked).
    #[inline(always)]
    pub(crate) fn into_token(self, ctx: &AfPacketContext) -> Token {
        // SAFETY: the cursor took one reference on the packet's block for this packet, which
        // nothing else names (the walk hands out disjoint ranges, each once), and caplen lies
        // inside the block: the buffer is the token's alone.
        unsafe { Token::new(self.desc, self.caplen, nethuns_core::Context::pool_id(ctx)) }
    }

    /// This packet as a payload of `ctx`, and its metadata.
    #[inline(always)]
    pub(crate) fn into_payload(
        self,
        ctx: &AfPacketContext,
    ) -> (Payload<'_, AfPacketContext>, AfPacketMeta) {
        let meta = self.meta;
        let token = self.into_token(ctx);
        // SAFETY: the token was just made with ctx's pool id.
        (unsafe { Payload::from_token_unchecked(token, ctx) }, meta)
    }
}

impl RxCursor {
    /// A cursor at block 0 of `rings`; `keep_stripped` leaves the outer VLAN tag out of the
    /// payload ([`AfPacketFlags::strip_vlan`](crate::AfPacketFlags::strip_vlan)).
    pub(crate) fn new(rings: &Rings, keep_stripped: bool) -> Self {
        RxCursor {
            block: Cell::new(rings.first_block()),
            next: Cell::new(0),
            remaining: Cell::new(0),
            keep_stripped,
        }
    }

    /// Whether the cursor waits for a block that payloads or tokens of the previous lap still
    /// hold (rather than for the kernel): the ring is stuck until the user releases them.
    #[inline]
    pub(crate) fn blocked(&self, s: &Shared) -> bool {
        self.remaining.get() == 0 && s.held(self.block.get())
    }

    /// The next packet, or `None` when the open block is done and the next block is still the
    /// kernel's (or still held by payloads of the previous lap).
    ///
    /// Inlined whole into `recv`: an empty poll is the load of one status word; a packet is
    /// the reads of its header. Opening and finishing a block, and putting a stripped tag
    /// back, are out of line (once per block, or only for tagged frames).
    #[inline(always)]
    pub(crate) fn next(&self, s: &Shared) -> Option<RxPacket> {
        if self.remaining.get() == 0 && !self.open(s) {
            return None;
        }
        let block = self.block.get();
        let block_end = block.end();
        let hdr_off = self.next.get();
        // The kernel finished writing the open block before it set TP_STATUS_USER (acquired
        // in `open`) and does not touch it while we hold it. A header that leaves the block
        // drops the rest of it.
        let Some(h) = s.rings().header(block, hdr_off) else {
            self.drop_block(s);
            return None;
        };
        let mac = h.mac() as usize;
        let data = hdr_off + mac;
        if data >= block_end || mac < HDR {
            // Frame data past its block (its descriptor would name another block, or
            // none), or over its own header (where the next header could start too, and
            // hand out the same bytes again): the block is not a kernel's.
            self.drop_block(s);
            return None;
        }
        // Never trust an offset to leave the block: a payload derefs `caplen` bytes.
        let caplen = (h.snaplen() as usize).min(block_end - data) as u32;
        let mut pkt = RxPacket {
            desc: BufferDesc::new(data),
            caplen,
            meta: AfPacketMeta {
                sec: h.sec(),
                nsec: h.nsec(),
                len: h.len(),
                caplen,
                // As the kernel reports them (valid with TP_STATUS_VLAN_VALID only).
                vlan_tci: h.vlan_tci() as u16,
                vlan_tpid: if h.status() & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    h.vlan_tpid()
                } else {
                    0x8100
                },
                vlan_valid: false,
                rxhash: h.rxhash(),
                status: h.status(),
            },
        };
        if h.status() & libc::TP_STATUS_VLAN_VALID != 0 {
            pkt.meta.vlan_valid = true;
            if !self.keep_stripped {
                let (data, caplen, len) = put_tag_back(s, h, data, caplen, pkt.meta.vlan_tpid);
                pkt.desc = BufferDesc::new(data);
                pkt.caplen = caplen;
                pkt.meta.caplen = caplen;
                pkt.meta.len = len;
            }
        } else if caplen as usize >= MACS + VLAN_HLEN {
            // A tag the kernel leaves in the frame (0x9100, or an 802.1ad tag it did not
            // take out) is still the outermost: report it the same way. (caplen ≥ 16 bytes of
            // this held packet lie inside the block, so the tag is always there.)
            if let Some(tag) = s.rings().frame_tag(block, data) {
                let tpid = u16::from_be_bytes([tag[0], tag[1]]);
                if matches!(tpid, 0x8100 | 0x88A8 | 0x9100) {
                    pkt.meta.vlan_valid = true;
                    pkt.meta.vlan_tpid = tpid;
                    pkt.meta.vlan_tci = u16::from_be_bytes([tag[2], tag[3]]);
                }
            }
        }
        // The next header must start after this packet's bytes (a sane kernel puts it at
        // `TPACKET_ALIGN(tp_mac + tp_snaplen)`): one that overlaps them would hand out
        // the same bytes twice, or rewrite a payload already handed out when its tag is
        // put back. Such a block is cut short here.
        let next = hdr_off + h.next_offset() as usize;
        let end = pkt.desc.get() + pkt.caplen as usize;
        self.next.set(if next >= end.max(hdr_off + HDR) {
            next
        } else {
            block_end
        });
        let remaining = self.remaining.get() - 1;
        self.remaining.set(remaining);
        if remaining == 0 {
            self.finish_block(s);
        }
        Some(pkt)
    }

    /// Opens the next block if the kernel handed it over; whether it did (and holds packets).
    #[inline(always)]
    fn open(&self, s: &Shared) -> bool {
        let status = s.status(self.block.get()).load(Ordering::Acquire);
        if status & (libc::TP_STATUS_USER | OPENED) != libc::TP_STATUS_USER {
            return false;
        }
        self.open_block(s)
    }

    /// [`RxCursor::open`] once the status says the block is the user's and fresh.
    #[inline(never)]
    fn open_block(&self, s: &Shared) -> bool {
        let block = self.block.get();
        let Some(open) = s.try_open(block) else {
            return false;
        };
        if open.num_pkts == 0 {
            // An empty block handed over: give it straight back.
            s.release(block, 1);
            self.block.set(s.rings().next_block(block));
            return false;
        }
        self.next.set(block.start() + open.first as usize);
        self.remaining.set(open.num_pkts);
        true
    }

    /// Everything handed out: drops the socket's own reference; the block returns to the
    /// kernel as soon as the last payload is released.
    #[inline(never)]
    fn finish_block(&self, s: &Shared) {
        let block = self.block.get();
        s.release(block, 1);
        self.block.set(s.rings().next_block(block));
    }

    /// A header outside the block (never written by a sane kernel): drops the rest of the
    /// block rather than read outside it, and moves on to the next block.
    #[cold]
    #[inline(never)]
    fn drop_block(&self, s: &Shared) {
        let block = self.block.get();
        s.release(block, self.remaining.get() + 1);
        self.remaining.set(0);
        self.block.set(s.rings().next_block(block));
    }

    /// Gives up the open block (socket closing): the packets not handed out and the socket's
    /// own reference are released at once.
    pub(crate) fn close(&self, s: &Shared) {
        let remaining = self.remaining.replace(0);
        if remaining > 0 {
            s.release(self.block.get(), remaining + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::tests::{kernel_fill, kernel_set_num_pkts, status, test_ring};
    use crate::ring::tests::{poke_u16, poke_u32, write_header};
    use nethuns_core::{Context, Metadata};
    use std::mem::offset_of;

    /// A packet as the kernel writes it: its captured bytes, where they start (`tp_mac`), and
    /// the tag the kernel took out (TCI, TPID if reported).
    #[derive(Clone)]
    struct KPkt {
        data: Vec<u8>,
        mac: u16,
        vlan: Option<(u16, Option<u16>)>,
    }

    fn kpkt(i: usize, len: u32) -> KPkt {
        KPkt {
            data: (0..len as usize).map(|j| (i + j) as u8).collect(),
            mac: 80,
            vlan: None,
        }
    }

    /// Writes packets into block `b` as the kernel would.
    fn kernel_write_pkts(ctx: &crate::AfPacketContext, b: u32, pkts: &[KPkt]) {
        let map = ctx.shared().rings().map();
        let block = b as usize * 4096;
        let mut off = 48usize;
        for (i, p) in pkts.iter().enumerate() {
            let len = p.data.len() as u32;
            let next = if i + 1 == pkts.len() {
                0
            } else {
                (p.mac as u32 + len).next_multiple_of(16)
            };
            let mut h = libc::tpacket3_hdr {
                tp_next_offset: next,
                tp_sec: 7,
                tp_nsec: i as u32,
                tp_snaplen: len,
                tp_len: len + 1,
                tp_status: libc::TP_STATUS_USER,
                tp_mac: p.mac,
                tp_net: 0,
                hv1: libc::tpacket_hdr_variant1 {
                    tp_rxhash: 0xabcd,
                    tp_vlan_tci: 0,
                    tp_vlan_tpid: 0,
                    tp_padding: 0,
                },
                tp_padding: [0; 8],
            };
            if let Some((tci, tpid)) = p.vlan {
                h.tp_status |= libc::TP_STATUS_VLAN_VALID;
                h.hv1.tp_vlan_tci = tci as u32;
                if let Some(tpid) = tpid {
                    h.tp_status |= libc::TP_STATUS_VLAN_TPID_VALID;
                    h.hv1.tp_vlan_tpid = tpid;
                }
            }
            write_header(map, block + off, &h);
            // What the kernel leaves between the sockaddr_ll and the frame: garbage.
            if p.mac as usize > MAC_MIN {
                map.fill(block + off + MAC_MIN, p.mac as usize - MAC_MIN, 0xee);
            }
            map.copy_to(block + off + p.mac as usize, &p.data);
            off += next as usize;
        }
        kernel_fill(ctx, b, pkts.len() as u32);
    }

    /// Writes untagged packets of lengths `lens` into block `b` as the kernel would.
    fn kernel_write(ctx: &crate::AfPacketContext, b: u32, lens: &[u32]) {
        let pkts: Vec<_> = lens.iter().enumerate().map(|(i, &l)| kpkt(i, l)).collect();
        kernel_write_pkts(ctx, b, &pkts);
    }

    /// The payload and metadata of the next packet.
    fn take(ctx: &crate::AfPacketContext, c: &RxCursor) -> (Vec<u8>, AfPacketMeta) {
        let p = c.next(ctx.shared()).expect("a packet");
        let (payload, meta) = p.into_payload(ctx);
        (payload.to_vec(), meta)
    }

    #[test]
    fn walks_blocks_in_order_and_returns_them() {
        let ctx = test_ring(2);
        let s = ctx.shared();
        let c = RxCursor::new(ctx.shared().rings(), false);
        assert!(c.next(s).is_none());
        kernel_write(&ctx, 0, &[60, 100, 1000]);
        kernel_write(&ctx, 1, &[64]);
        let mut toks = vec![];
        for (i, len) in [60u32, 100, 1000, 64].into_iter().enumerate() {
            let p = c.next(s).unwrap();
            assert_eq!(p.caplen, len);
            assert_eq!(p.meta.len, len + 1);
            assert!(!p.meta.vlan_valid);
            assert_eq!(p.meta.vlan(), None);
            assert_eq!(p.meta.rxhash, 0xabcd);
            assert_eq!(p.meta.nsec, if i < 3 { i as u32 } else { 0 });
            toks.push(p.into_token(&ctx));
        }
        assert!(c.next(s).is_none(), "block 0 is still held");
        assert!(c.blocked(s), "the next block is the user's");
        assert_eq!(ctx.blocks_in_use(), 2);
        let payloads: Vec<_> = toks.into_iter().map(|t| ctx.packet(t)).collect();
        assert_eq!(payloads[2][0], 2);
        assert_eq!(payloads[2][999], (2 + 999) as u8);
        drop(payloads);
        assert_eq!(ctx.blocks_in_use(), 0);
        assert!(!c.blocked(s), "the next block is the kernel's again");
        assert!(c.next(s).is_none());
    }

    /// A frame as on the wire, tagged with `tpid`/`tci` after its MAC addresses.
    fn tagged(untagged: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
        [
            &untagged[..12],
            &tpid.to_be_bytes()[..],
            &tci.to_be_bytes()[..],
            &untagged[12..],
        ]
        .concat()
    }

    #[test]
    fn stripped_vlan_tags_are_put_back() {
        let ctx = test_ring(1);
        let plain = kpkt(0, 100);
        let mut with_tpid = kpkt(1, 60);
        with_tpid.vlan = Some((0x2007, Some(0x88a8)));
        let mut no_tpid = kpkt(2, 64);
        no_tpid.vlan = Some((0xa123, None));
        let mut prio_only = kpkt(3, 60);
        prio_only.vlan = Some((0, Some(0x8100)));
        kernel_write_pkts(
            &ctx,
            0,
            &[
                plain.clone(),
                with_tpid.clone(),
                no_tpid.clone(),
                prio_only.clone(),
            ],
        );
        let c = RxCursor::new(ctx.shared().rings(), false);
        let (b, m) = take(&ctx, &c);
        assert_eq!(b, plain.data);
        assert_eq!((m.vlan(), m.len, m.caplen), (None, 101, 100));
        for (p, tpid, tci) in [
            (&with_tpid, 0x88a8, 0x2007),
            (&no_tpid, 0x8100, 0xa123),
            (&prio_only, 0x8100, 0),
        ] {
            let (b, m) = take(&ctx, &c);
            assert_eq!(b, tagged(&p.data, tpid, tci), "the wire frame");
            assert_eq!(m.vlan(), Some(tci));
            assert_eq!(m.vlan_tpid, tpid);
            assert_eq!(m.caplen as usize, p.data.len() + 4);
            assert_eq!(m.len as usize, p.data.len() + 1 + 4);
        }
        assert_eq!(ctx.blocks_in_use(), 0);
    }

    #[test]
    fn strip_vlan_keeps_the_kernels_form() {
        let ctx = test_ring(1);
        let mut p = kpkt(0, 60);
        p.vlan = Some((0x0123, Some(0x8100)));
        kernel_write_pkts(&ctx, 0, &[p.clone()]);
        let c = RxCursor::new(ctx.shared().rings(), true);
        let (b, m) = take(&ctx, &c);
        assert_eq!(b, p.data);
        assert_eq!(
            (m.vlan(), m.vlan_tpid, m.caplen, m.len),
            (Some(0x123), 0x8100, 60, 61)
        );
    }

    #[test]
    fn no_room_in_front_leaves_the_tag_in_the_header() {
        let ctx = test_ring(1);
        // tp_mac 70: 2 bytes after the sockaddr_ll, too few for a tag.
        let mut p = kpkt(0, 60);
        p.mac = 70;
        p.vlan = Some((0x0042, None));
        // Exactly 4 bytes of room: enough.
        let mut q = kpkt(1, 60);
        q.mac = 72;
        q.vlan = Some((0x0043, None));
        // Under 12 captured bytes: nothing to move the tag behind.
        let mut r = kpkt(2, 8);
        r.vlan = Some((0x0044, None));
        kernel_write_pkts(&ctx, 0, &[p.clone(), q.clone(), r.clone()]);
        let c = RxCursor::new(ctx.shared().rings(), false);
        let (b, m) = take(&ctx, &c);
        assert_eq!(b, p.data);
        assert_eq!((m.vlan(), m.caplen), (Some(0x42), 60));
        let (b, m) = take(&ctx, &c);
        assert_eq!(b, tagged(&q.data, 0x8100, 0x43));
        assert_eq!((m.vlan(), m.caplen), (Some(0x43), 64));
        let (b, m) = take(&ctx, &c);
        assert_eq!(b, r.data);
        assert_eq!((m.vlan(), m.caplen), (Some(0x44), 8));
    }

    #[test]
    fn a_tag_left_in_the_frame_is_reported() {
        let ctx = test_ring(1);
        let mut p = kpkt(0, 60);
        p.data = tagged(&p.data, 0x9100, 0x0777);
        let mut short = kpkt(1, 15);
        short.data[12..14].copy_from_slice(&[0x91, 0x00]);
        kernel_write_pkts(&ctx, 0, &[p.clone(), short.clone()]);
        let c = RxCursor::new(ctx.shared().rings(), false);
        let (b, m) = take(&ctx, &c);
        assert_eq!(b, p.data);
        assert_eq!((m.vlan(), m.vlan_tpid), (Some(0x777), 0x9100));
        let (b, m) = take(&ctx, &c);
        assert_eq!(b, short.data);
        assert_eq!(m.vlan(), None, "a tag needs 16 bytes");
    }

    #[test]
    fn closing_mid_block_releases_it() {
        let ctx = test_ring(1);
        let s = ctx.shared();
        let c = RxCursor::new(ctx.shared().rings(), false);
        kernel_write(&ctx, 0, &[60, 60, 60]);
        let p = c.next(s).unwrap();
        c.close(s);
        assert_eq!(ctx.blocks_in_use(), 1);
        drop(ctx.packet(p.into_token(&ctx)));
        assert_eq!(ctx.blocks_in_use(), 0);
    }

    #[test]
    fn snaplen_is_clamped_to_the_block() {
        let ctx = test_ring(1);
        kernel_write(&ctx, 0, &[60]);
        corrupt(
            &ctx,
            48,
            offset_of!(libc::tpacket3_hdr, tp_snaplen),
            1 << 20,
        );
        let c = RxCursor::new(ctx.shared().rings(), false);
        let p = c.next(ctx.shared()).unwrap();
        assert_eq!(p.caplen as usize, 4096 - 48 - 80);
        drop(ctx.packet(p.into_token(&ctx)));
    }

    /// Overwrites field `field` (a `u32`) of the header at `off` of block 0, as a broken
    /// kernel would.
    fn corrupt(ctx: &crate::AfPacketContext, off: usize, field: usize, v: u32) {
        poke_u32(ctx.shared().rings().map(), off, field, v);
    }

    /// Overwrites the `tp_mac` of the header at `off` of block 0.
    fn corrupt_mac(ctx: &crate::AfPacketContext, off: usize, v: u16) {
        let field = offset_of!(libc::tpacket3_hdr, tp_mac);
        poke_u16(ctx.shared().rings().map(), off, field, v);
    }

    /// Takes every packet the cursor gives (at most `max`), checks that each lies inside
    /// block 0, releases them, and returns how many there were.
    fn walk_all(ctx: &crate::AfPacketContext, c: &RxCursor, max: usize) -> usize {
        let mut n = 0;
        while let Some(p) = c.next(ctx.shared()) {
            assert!(
                p.desc.get() + p.caplen as usize <= 4096,
                "packet leaves block 0"
            );
            drop(ctx.packet(p.into_token(ctx)));
            n += 1;
            assert!(n <= max, "more packets than the block can hold");
        }
        n
    }

    #[test]
    fn frame_data_past_the_block_drops_the_rest() {
        // tp_mac 0xffff put the frame in another block: its release used to panic ("buffer
        // … is not in this RX ring") or release another block's reference.
        let ctx = test_ring(1);
        kernel_write(&ctx, 0, &[60, 60]);
        corrupt_mac(&ctx, 48, 0xffff);
        let c = RxCursor::new(ctx.shared().rings(), false);
        assert_eq!(walk_all(&ctx, &c, 2), 0);
        assert_eq!(ctx.blocks_in_use(), 0);
        assert_eq!(status(&ctx, 0), libc::TP_STATUS_KERNEL);
    }

    #[test]
    fn an_absurd_packet_count_is_bounded() {
        // num_pkts u32::MAX: `num_pkts + 1` references used to overflow (a panic in debug
        // builds), and the walk handed out the last header over and over.
        let ctx = test_ring(1);
        kernel_write(&ctx, 0, &[60, 70]);
        kernel_set_num_pkts(&ctx, 0, u32::MAX);
        let c = RxCursor::new(ctx.shared().rings(), false);
        assert_eq!(walk_all(&ctx, &c, 2), 2);
        assert_eq!(ctx.blocks_in_use(), 0);
        assert_eq!(status(&ctx, 0), libc::TP_STATUS_KERNEL);
    }

    #[test]
    fn a_header_inside_the_previous_packet_cuts_the_block() {
        // The second header overlapping the first packet's bytes would hand them out twice
        // (and its tag put back would rewrite a payload already handed out).
        let ctx = test_ring(1);
        kernel_write(&ctx, 0, &[100, 60]);
        corrupt(&ctx, 48, offset_of!(libc::tpacket3_hdr, tp_next_offset), 64);
        let c = RxCursor::new(ctx.shared().rings(), false);
        assert_eq!(walk_all(&ctx, &c, 2), 1);
        assert_eq!(ctx.blocks_in_use(), 0);
    }

    #[test]
    fn frame_data_over_its_own_header_drops_the_rest() {
        // Found by fuzzing: a zero-length packet followed by a header at its data offset
        // with tp_mac 0 handed out the same buffer twice.
        let ctx = test_ring(1);
        kernel_write(&ctx, 0, &[0, 60]);
        corrupt(&ctx, 48, offset_of!(libc::tpacket3_hdr, tp_next_offset), 80);
        corrupt_mac(&ctx, 128, 0);
        let c = RxCursor::new(ctx.shared().rings(), false);
        assert_eq!(walk_all(&ctx, &c, 2), 1);
        assert_eq!(ctx.blocks_in_use(), 0);
    }

    #[test]
    fn a_huge_wire_length_with_a_tag_saturates() {
        // tp_len u32::MAX plus the restored tag used to overflow (a panic in debug builds).
        let ctx = test_ring(1);
        let mut p = kpkt(0, 60);
        p.vlan = Some((7, None));
        kernel_write_pkts(&ctx, 0, &[p]);
        corrupt(&ctx, 48, offset_of!(libc::tpacket3_hdr, tp_len), u32::MAX);
        let c = RxCursor::new(ctx.shared().rings(), false);
        let (b, m) = take(&ctx, &c);
        assert_eq!((b.len(), m.len, m.vlan()), (64, u32::MAX, Some(7)));
    }
}
