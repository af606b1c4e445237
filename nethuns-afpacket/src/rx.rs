//! Walking the packets of the RX block the kernel handed over, with no syscall and no atomic
//! operation per packet (references are taken for the whole block when it is opened).

use nethuns_core::metadata::AfPacketMeta;
use nethuns_core::BufferDesc;

use crate::ring::Shared;

/// Size of the v3 packet header (`struct tpacket3_hdr`).
const HDR: usize = std::mem::size_of::<libc::tpacket3_hdr>();

/// Where the socket is in the RX ring. With `remaining == 0` no block is open and `block` is
/// the next one to open; otherwise `block` is open (the socket holds one reference on it plus
/// one per packet not yet handed out) and `next` is the offset of the next packet header.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RxCursor {
    block: u32,
    next: usize,
    remaining: u32,
}

/// One received packet: where it is, its captured length, its metadata.
pub(crate) struct RxPacket {
    pub(crate) desc: BufferDesc,
    pub(crate) caplen: u32,
    pub(crate) meta: AfPacketMeta,
}

impl RxCursor {
    /// The next packet, or `None` when the open block is done and the next block is still the
    /// kernel's (or still held by payloads of the previous lap).
    #[inline]
    pub(crate) fn next(&mut self, s: &Shared) -> Option<RxPacket> {
        let rx = *s.rx();
        if self.remaining == 0 {
            let open = s.try_open(self.block)?;
            if open.num_pkts == 0 {
                // An empty block handed over: give it straight back.
                s.release(self.block, 1);
                self.block = rx.next_block(self.block);
                return None;
            }
            self.next = rx.block_offset(self.block) + open.first as usize;
            self.remaining = open.num_pkts;
        }
        let block_end = rx.block_offset(self.block) + rx.block_size as usize;
        let hdr_off = self.next;
        let pkt = if hdr_off + HDR <= block_end {
            // SAFETY: the header lies inside the open block (checked just above), which the
            // kernel finished writing before it set TP_STATUS_USER (acquired in try_open) and
            // does not touch while we hold it. The kernel aligns headers to 16 bytes; the
            // unaligned read costs nothing and stays sound whatever the offsets say.
            let h = unsafe {
                std::ptr::read_unaligned(s.base().add(hdr_off) as *const libc::tpacket3_hdr)
            };
            let data = hdr_off + h.tp_mac as usize;
            // Never trust an offset to leave the block: a payload derefs `caplen` bytes.
            let caplen = (h.tp_snaplen as usize).min(block_end.saturating_sub(data)) as u32;
            self.next = hdr_off + h.tp_next_offset as usize;
            Some(RxPacket {
                desc: BufferDesc::new(data),
                caplen,
                meta: AfPacketMeta {
                    sec: h.tp_sec,
                    nsec: h.tp_nsec,
                    len: h.tp_len,
                    caplen,
                    vlan_tci: h.hv1.tp_vlan_tci as u16,
                    vlan_tpid: h.hv1.tp_vlan_tpid,
                    vlan_valid: h.tp_status & libc::TP_STATUS_VLAN_VALID != 0,
                    rxhash: h.hv1.tp_rxhash,
                    status: h.tp_status,
                },
            })
        } else {
            None
        };
        if pkt.is_none() {
            // A header outside the block (never written by a sane kernel): drop the rest of
            // the block rather than read outside it.
            s.release(self.block, self.remaining + 1);
            self.remaining = 0;
            self.block = rx.next_block(self.block);
            return None;
        }
        self.remaining -= 1;
        if self.remaining == 0 {
            // Everything handed out: drop the socket's own reference; the block returns to
            // the kernel as soon as the last payload is released.
            s.release(self.block, 1);
            self.block = rx.next_block(self.block);
        }
        pkt
    }

    /// Gives up the open block (socket closing): the packets not handed out and the socket's
    /// own reference are released at once.
    pub(crate) fn close(&mut self, s: &Shared) {
        if self.remaining > 0 {
            s.release(self.block, self.remaining + 1);
            self.remaining = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests::{kernel_fill, test_ring};
    use nethuns_core::{Context, Token};

    /// Writes packets of lengths `lens` into block `b` as the kernel would.
    fn kernel_write(ctx: &crate::AfPacketContext, b: u32, lens: &[u32]) {
        let base = ctx.shared().base();
        let block = b as usize * 4096;
        let mut off = 48usize;
        for (i, &len) in lens.iter().enumerate() {
            let mac = 80u16;
            let next = if i + 1 == lens.len() {
                0
            } else {
                (mac as u32 + len).next_multiple_of(16)
            };
            // SAFETY: test memory of the anonymous ring, inside block b.
            unsafe {
                let h = base.add(block + off) as *mut libc::tpacket3_hdr;
                (*h).tp_next_offset = next;
                (*h).tp_snaplen = len;
                (*h).tp_len = len + 1;
                (*h).tp_mac = mac;
                (*h).tp_sec = 7;
                (*h).tp_nsec = i as u32;
                (*h).tp_status = libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID;
                (*h).hv1.tp_vlan_tci = 42;
                (*h).hv1.tp_rxhash = 0xabcd;
                for j in 0..len as usize {
                    *base.add(block + off + mac as usize + j) = (i + j) as u8;
                }
            }
            off += next as usize;
        }
        kernel_fill(ctx, b, lens.len() as u32);
    }

    #[test]
    fn walks_blocks_in_order_and_returns_them() {
        let ctx = test_ring(2);
        let s = ctx.shared();
        let mut c = RxCursor::default();
        assert!(c.next(s).is_none());
        kernel_write(&ctx, 0, &[60, 100, 1000]);
        kernel_write(&ctx, 1, &[64]);
        let mut toks = vec![];
        for (i, len) in [60u32, 100, 1000, 64].into_iter().enumerate() {
            let p = c.next(s).unwrap();
            assert_eq!(p.caplen, len);
            assert_eq!(p.meta.len, len + 1);
            assert!(p.meta.vlan_valid);
            assert_eq!((p.meta.vlan_tci, p.meta.rxhash), (42, 0xabcd));
            assert_eq!(p.meta.nsec, if i < 3 { i as u32 } else { 0 });
            // SAFETY: test token for a packet just handed out.
            toks.push(unsafe { Token::new(p.desc, p.caplen, ctx.pool_id()) });
        }
        assert!(c.next(s).is_none(), "block 0 is still held");
        assert_eq!(ctx.blocks_in_use(), 2);
        let payloads: Vec<_> = toks.into_iter().map(|t| ctx.packet(t)).collect();
        assert_eq!(payloads[2][0], 2);
        assert_eq!(payloads[2][999], (2 + 999) as u8);
        drop(payloads);
        assert_eq!(ctx.blocks_in_use(), 0);
    }

    #[test]
    fn closing_mid_block_releases_it() {
        let ctx = test_ring(1);
        let s = ctx.shared();
        let mut c = RxCursor::default();
        kernel_write(&ctx, 0, &[60, 60, 60]);
        let p = c.next(s).unwrap();
        c.close(s);
        assert_eq!(ctx.blocks_in_use(), 1);
        // SAFETY: test token for a packet just handed out.
        drop(ctx.packet(unsafe { Token::new(p.desc, p.caplen, ctx.pool_id()) }));
        assert_eq!(ctx.blocks_in_use(), 0);
    }

    #[test]
    fn snaplen_is_clamped_to_the_block() {
        let ctx = test_ring(1);
        kernel_write(&ctx, 0, &[60]);
        // SAFETY: corrupting the test header of block 0.
        unsafe {
            let h = ctx.shared().base().add(48) as *mut libc::tpacket3_hdr;
            (*h).tp_snaplen = 1 << 20;
        }
        let mut c = RxCursor::default();
        let p = c.next(ctx.shared()).unwrap();
        assert_eq!(p.caplen as usize, 4096 - 48 - 80);
        // SAFETY: test token for a packet just handed out.
        drop(ctx.packet(unsafe { Token::new(p.desc, p.caplen, ctx.pool_id()) }));
    }
}
