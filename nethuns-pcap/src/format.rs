//! [`SavefileFormat`]: what a savefile header says (link type, timestamp precision, snapshot
//! length), read from a savefile's first bytes and written by [`Dumper`](crate::Dumper).

use std::io::Read;

use nethuns_core::metadata::TsPrecision;

/// Classic pcap magic, microsecond stamps (as written in native byte order).
pub(crate) const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
/// Classic pcap magic, nanosecond stamps.
pub(crate) const MAGIC_NANO: u32 = 0xa1b2_3c4d;
/// pcapng Section Header Block type.
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
/// pcapng byte-order magic.
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
/// pcapng Interface Description Block type.
const PCAPNG_IDB: u32 = 1;
/// pcapng `if_tsresol` option code.
const IF_TSRESOL: u16 = 9;
/// The largest snapshot length libpcap accepts (`MAXIMUM_SNAPLEN`).
pub(crate) const MAX_SNAPLEN: u32 = 262_144;
/// How much of a savefile is read to find its format.
const HEAD_BYTES: u64 = 64 * 1024;

/// The header fields of a classic pcap savefile: its `LINKTYPE_` value, the resolution of its
/// timestamps and its snapshot length.
///
/// A [`Sock`](crate::Sock) reports the format of its source
/// ([`Sock::savefile_format`](crate::Sock::savefile_format)): for a `file:` socket the one its
/// savefile records (for pcapng, that of the first interface), for a live one the interface's
/// link type, the precision libpcap stamps with and the snaplen. A
/// [`Dumper`](crate::Dumper) created with that format writes back what the socket read, byte
/// for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavefileFormat {
    /// The link type as savefiles record it (`LINKTYPE_ETHERNET` = 1, `LINKTYPE_LINUX_SLL` =
    /// 113, …), which is libpcap's `DLT_` value except for a few old types
    /// ([`dlt_to_linktype`]).
    pub linktype: u32,
    /// Microsecond or nanosecond timestamps.
    pub precision: TsPrecision,
    /// The snapshot length in the header (the longest packet capture the file promises).
    pub snaplen: u32,
}

impl SavefileFormat {
    /// Ethernet frames, the given precision, snapshot length 65535.
    pub fn ethernet(precision: TsPrecision) -> Self {
        SavefileFormat {
            linktype: 1,
            precision,
            snaplen: 65535,
        }
    }

    /// The 24-byte classic pcap file header of this format, in native byte order (as libpcap
    /// writes it).
    pub fn header(&self) -> [u8; 24] {
        let magic = match self.precision {
            TsPrecision::Micro => MAGIC_MICRO,
            TsPrecision::Nano => MAGIC_NANO,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_ne_bytes());
        h[4..6].copy_from_slice(&2u16.to_ne_bytes());
        h[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // thiszone and sigfigs stay 0, as every modern writer leaves them.
        h[16..20].copy_from_slice(&self.snaplen.to_ne_bytes());
        h[20..24].copy_from_slice(&self.linktype.to_ne_bytes());
        h
    }

    /// The format of the savefile at `path`, from its first bytes: a classic pcap header
    /// (either byte order, micro- or nanosecond magic) or a pcapng section with an interface
    /// description. `None` if the file is neither (libpcap then says why when it opens it).
    pub fn of_file(path: &str) -> Option<Self> {
        let mut head = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .take(HEAD_BYTES)
            .read_to_end(&mut head)
            .ok()?;
        Self::parse(&head)
    }

    /// The format the first bytes `head` of a savefile declare (see [`of_file`](Self::of_file)).
    pub fn parse(head: &[u8]) -> Option<Self> {
        let word = |b: &[u8], at: usize, swap: bool| -> Option<u32> {
            let v = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
            Some(if swap { v.swap_bytes() } else { v })
        };
        let magic = word(head, 0, false)?;
        for swap in [false, true] {
            let m = if swap { magic.swap_bytes() } else { magic };
            let precision = match m {
                MAGIC_MICRO => TsPrecision::Micro,
                MAGIC_NANO => TsPrecision::Nano,
                _ => continue,
            };
            return Some(SavefileFormat {
                linktype: word(head, 20, swap)? & 0x0fff_ffff,
                precision,
                snaplen: word(head, 16, swap)?,
            });
        }
        if magic != PCAPNG_SHB {
            return None;
        }
        let swap = match word(head, 8, false)? {
            PCAPNG_BOM => false,
            m if m.swap_bytes() == PCAPNG_BOM => true,
            _ => return None,
        };
        let half = |at: usize| -> Option<u16> {
            let v = u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?);
            Some(if swap { v.swap_bytes() } else { v })
        };
        // Walk the blocks after the section header up to the first interface description.
        let mut at = 0usize;
        loop {
            let kind = word(head, at, swap)?;
            let len = word(head, at + 4, swap)? as usize;
            if len < 12 || len % 4 != 0 {
                return None;
            }
            if kind == PCAPNG_IDB && at != 0 {
                let end = at.checked_add(len)?.checked_sub(4)?;
                let linktype = u32::from(half(at + 8)?);
                let snaplen = word(head, at + 12, swap)?;
                let mut precision = TsPrecision::Micro;
                let mut opt = at + 16;
                while opt + 4 <= end {
                    let (code, olen) = (half(opt)?, half(opt + 2)? as usize);
                    if code == 0 {
                        break;
                    }
                    if code == IF_TSRESOL && olen >= 1 {
                        let r = *head.get(opt + 4)?;
                        // 10^-r (high bit clear) or 2^-r: finer than 1 µs means nanoseconds.
                        let finer = if r & 0x80 == 0 {
                            r > 6
                        } else {
                            (r & 0x7f) > 19
                        };
                        if finer {
                            precision = TsPrecision::Nano;
                        }
                    }
                    opt += 4 + olen.div_ceil(4) * 4;
                }
                let snaplen = if snaplen == 0 { MAX_SNAPLEN } else { snaplen };
                return Some(SavefileFormat {
                    linktype,
                    precision,
                    snaplen,
                });
            }
            at = at.checked_add(len)?;
        }
    }
}

/// The `LINKTYPE_` value a savefile records for libpcap's `DLT_` value `dlt` (the mapping of
/// libpcap's `dlt_to_linktype` for the DLT values Linux uses; equal for all but a few old
/// types, e.g. `DLT_RAW` 12 → `LINKTYPE_RAW` 101).
pub fn dlt_to_linktype(dlt: i32) -> u32 {
    match dlt {
        11 => 100, // DLT_ATM_RFC1483
        12 => 101, // DLT_RAW
        15 => 102, // DLT_SLIP_BSDOS
        16 => 103, // DLT_PPP_BSDOS
        18 => 246, // DLT_PFSYNC
        19 => 106, // DLT_ATM_CLIP
        d => d as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_headers_both_orders_and_precisions() {
        for p in [TsPrecision::Micro, TsPrecision::Nano] {
            let f = SavefileFormat {
                linktype: 113,
                precision: p,
                snaplen: 262_144,
            };
            assert_eq!(SavefileFormat::parse(&f.header()), Some(f));
            let mut swapped = f.header();
            for w in swapped.chunks_mut(4) {
                w.reverse();
            }
            // version fields are two u16s, not a u32: swap them back into place.
            swapped[4..8].copy_from_slice(&[0, 2, 0, 4]);
            assert_eq!(SavefileFormat::parse(&swapped), Some(f));
        }
    }

    #[test]
    fn pcapng_interface_and_tsresol() {
        let mut b = Vec::new();
        // SHB: type, len 28, BOM, version 1.0, section length -1, len.
        for w in [PCAPNG_SHB, 28, PCAPNG_BOM, 1, u32::MAX, u32::MAX, 28] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        // IDB: type, len 32, linktype 1 + reserved, snaplen 0, if_tsresol 9 (padded), end, len.
        b.extend_from_slice(&PCAPNG_IDB.to_le_bytes());
        b.extend_from_slice(&32u32.to_le_bytes());
        b.extend_from_slice(&[1, 0, 0, 0]);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&32u32.to_le_bytes());
        assert_eq!(
            SavefileFormat::parse(&b),
            Some(SavefileFormat {
                linktype: 1,
                precision: TsPrecision::Nano,
                snaplen: MAX_SNAPLEN
            })
        );
        // Cut anywhere: never a panic, `None` when the interface is not complete.
        for n in 0..b.len() {
            let _ = SavefileFormat::parse(&b[..n]);
        }
        assert_eq!(SavefileFormat::parse(b"not a savefile at all..."), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic pseudo-random headers: random bytes, and random bytes behind each of
        // the magics (so the pcapng block walk and option walk run on garbage).
        let mut next = nethuns_testnet::pseudo_random(0x2545_f491_4f6c_dd1du64);
        for round in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let magic: u32 = match round % 4 {
                0 => MAGIC_MICRO,
                1 => MAGIC_NANO.swap_bytes(),
                2 => PCAPNG_SHB,
                _ => next() as u32,
            };
            if b.len() >= 12 {
                b[0..4].copy_from_slice(&magic.to_le_bytes());
                if round % 4 == 2 {
                    b[8..12].copy_from_slice(&PCAPNG_BOM.to_le_bytes());
                    let l = (next() % 64) as u32 * 4;
                    b[4..8].copy_from_slice(&l.to_le_bytes());
                }
            }
            let _ = SavefileFormat::parse(&b);
        }
    }
}
