//! Ethernet / IPv4 or IPv6 / UDP frames for `nethuns-gen`, with correct checksums, ports that
//! vary per packet (so RSS spreads the flows) and a sequence number in the payload.
//!
//! A [`Template`] is built once per frame size; [`Template::write`] patches the ports and the
//! sequence number and updates the UDP checksum incrementally (RFC 1624), so the cost per
//! packet does not grow with the frame size.

use std::net::IpAddr;

/// Ethernet header length.
pub const ETH: usize = 14;
/// UDP header length.
pub const UDP: usize = 8;
/// Bytes of sequence number at the start of the UDP payload.
pub const SEQ: usize = 8;

/// The simple IMIX: 7 × 64, 4 × 594, 1 × 1518 bytes on the wire, FCS excluded here.
pub const IMIX: [(usize, u32); 3] = [(60, 7), (590, 4), (1514, 1)];

/// Addresses of the generated flows.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source IP (v4 or v6, the same family as `dst_ip`).
    pub src_ip: IpAddr,
    /// Destination IP.
    pub dst_ip: IpAddr,
}

/// A frame of one size with everything but the ports and the sequence number filled in.
#[derive(Clone, Debug)]
pub struct Template {
    bytes: Vec<u8>,
    udp: usize,
    /// One's-complement sum of the UDP pseudo-header and datagram with ports, checksum and
    /// sequence number zero.
    base: u32,
}

/// The smallest frame for an address family: headers plus the sequence number.
pub fn min_size(v6: bool) -> usize {
    ETH + if v6 { 40 } else { 20 } + UDP + SEQ
}

fn sum16(data: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut it = data.chunks_exact(2);
    for c in &mut it {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = it.remainder() {
        s += u32::from(*b) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(data))
}

impl Template {
    /// A template of `size` bytes (at least [`min_size`]).
    pub fn new(ep: &Endpoints, size: usize) -> Result<Template, String> {
        let v6 = match (ep.src_ip, ep.dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => return Err("--src-ip and --dst-ip must be of the same family".into()),
        };
        let min = min_size(v6);
        if size < min {
            return Err(format!(
                "frame size {size}: an {} UDP frame with a sequence number needs at least {min} bytes",
                if v6 { "IPv6" } else { "IPv4" }
            ));
        }
        let mut f = vec![0u8; size];
        f[0..6].copy_from_slice(&ep.dst_mac);
        f[6..12].copy_from_slice(&ep.src_mac);
        let ip = ETH;
        let (udp, pseudo) = match (ep.src_ip, ep.dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                let total = (size - ETH) as u16;
                let h = &mut f[ip..ip + 20];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[6] = 0x40; // DF
                h[8] = 64; // TTL
                h[9] = 17; // UDP
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                let c = checksum(h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                let mut p = Vec::with_capacity(12);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&[0, 17]);
                p.extend_from_slice(&((size - ETH - 20) as u16).to_be_bytes());
                (ip + 20, p)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f[12..14].copy_from_slice(&0x86DDu16.to_be_bytes());
                let plen = (size - ETH - 40) as u16;
                let h = &mut f[ip..ip + 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&plen.to_be_bytes());
                h[6] = 17;
                h[7] = 64;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                let mut p = Vec::with_capacity(40);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&u32::from(plen).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, 17]);
                (ip + 40, p)
            }
            _ => unreachable!("families checked above"),
        };
        let ulen = (size - udp) as u16;
        f[udp + 4..udp + 6].copy_from_slice(&ulen.to_be_bytes());
        // A recognisable payload after the sequence number.
        for (i, b) in f[udp + UDP + SEQ..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let base = sum16(&pseudo) + sum16(&f[udp..]);
        Ok(Template {
            bytes: f,
            udp,
            base,
        })
    }

    /// The frame length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false (a template holds a whole frame).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame with ports `sport`/`dport` and sequence number `seq` into `out` (of
    /// [`Template::len`] bytes, previously written by this template or a copy of it).
    #[inline]
    pub fn write(&self, out: &mut [u8], sport: u16, dport: u16, seq: u64) {
        let u = self.udp;
        out[u..u + 2].copy_from_slice(&sport.to_be_bytes());
        out[u + 2..u + 4].copy_from_slice(&dport.to_be_bytes());
        let sb = seq.to_be_bytes();
        out[u + UDP..u + UDP + SEQ].copy_from_slice(&sb);
        let mut s = self.base + u32::from(sport) + u32::from(dport);
        s += sum16(&sb);
        let mut c = !fold(s);
        if c == 0 {
            c = 0xffff;
        }
        out[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
    }

    /// Writes the whole frame into `out` (of [`Template::len`] bytes, of any content, such
    /// as a transmit slot from `send_with`): the template's bytes, then [`Template::write`].
    #[inline]
    pub fn write_whole(&self, out: &mut [u8], sport: u16, dport: u16, seq: u64) {
        out.copy_from_slice(&self.bytes);
        self.write(out, sport, dport, seq);
    }

    /// A fresh copy of the template's bytes, to [`write`](Template::write) into.
    pub fn buffer(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

/// The sequence number of a frame made by a [`Template`] (IPv4 or IPv6), if it is one.
pub fn seq_of(frame: &[u8]) -> Option<u64> {
    let off = match frame.get(12..14)? {
        [0x08, 0x00] => ETH + 20,
        [0x86, 0xDD] => ETH + 40,
        _ => return None,
    };
    let b = frame.get(off + UDP..off + UDP + SEQ)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Parses `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!(
            "{s:?}: expected a MAC address like 02:00:00:00:00:01"
        ));
    }
    let mut m = [0u8; 6];
    for (d, p) in m.iter_mut().zip(parts) {
        *d = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?}: {p:?} is not a hex byte"))?;
    }
    Ok(m)
}

/// The sizes of frame `i` in a pattern: a list repeated, or IMIX 7:4:1 interleaved.
pub fn pattern(sizes: &[usize], imix: bool) -> Vec<usize> {
    if !imix {
        return sizes.to_vec();
    }
    // 7:4:1 spread out, so that a short run has the mix too.
    let mut v = vec![];
    let (mut a, mut b, mut c) = (0, 0, 0);
    for i in 0..12 {
        let pick = if c < 1 && i == 11 {
            2
        } else if b < 4 && i % 3 == 1 {
            1
        } else if a < 7 {
            0
        } else if b < 4 {
            1
        } else {
            2
        };
        match pick {
            0 => a += 1,
            1 => b += 1,
            _ => c += 1,
        }
        v.push(IMIX[pick].0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(v6: bool) -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: if v6 {
                "fd00::1".parse().unwrap()
            } else {
                "10.0.0.1".parse().unwrap()
            },
            dst_ip: if v6 {
                "fd00::2".parse().unwrap()
            } else {
                "10.0.0.2".parse().unwrap()
            },
        }
    }

    /// The UDP checksum computed from scratch over the pseudo-header and the datagram.
    fn udp_ok(f: &[u8]) -> bool {
        let v6 = f[12..14] == [0x86, 0xDD];
        let (udp, mut pseudo) = if v6 {
            let mut p = f[22..54].to_vec();
            p.extend_from_slice(&((f.len() - 54) as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 17]);
            (54, p)
        } else {
            let mut p = f[26..34].to_vec();
            p.extend_from_slice(&[0, 17]);
            p.extend_from_slice(&((f.len() - 34) as u16).to_be_bytes());
            (34, p)
        };
        pseudo.extend_from_slice(&f[udp..]);
        fold(sum16(&pseudo)) == 0xffff
    }

    #[test]
    fn checksums_are_right_for_every_port_and_size() {
        for v6 in [false, true] {
            for size in [min_size(v6), 64, 65, 71, 590, 1514]
                .into_iter()
                .filter(|&s| s >= min_size(v6))
            {
                let t = Template::new(&ep(v6), size).unwrap();
                let mut b = t.buffer();
                for (sp, dp, seq) in [
                    (0, 0, 0),
                    (1234, 9, 7),
                    (65535, 65535, u64::MAX),
                    (53, 80, 1 << 40),
                ] {
                    t.write(&mut b, sp, dp, seq);
                    assert!(udp_ok(&b), "v6 {v6} size {size} ports {sp} {dp}");
                    assert_eq!(seq_of(&b), Some(seq));
                    if !v6 {
                        assert_eq!(checksum(&b[14..34]), 0, "IPv4 header checksum");
                    }
                }
            }
        }
    }

    #[test]
    fn sizes_and_families_checked() {
        assert!(Template::new(&ep(false), 49).is_err());
        let mut e = ep(false);
        e.dst_ip = "fd00::2".parse().unwrap();
        assert!(Template::new(&e, 64).is_err());
    }

    #[test]
    fn imix_is_7_4_1() {
        let p = pattern(&[], true);
        assert_eq!(p.len(), 12);
        assert_eq!(p.iter().filter(|&&s| s == 60).count(), 7);
        assert_eq!(p.iter().filter(|&&s| s == 590).count(), 4);
        assert_eq!(p.iter().filter(|&&s| s == 1514).count(), 1);
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert!(parse_mac("02:00:00").is_err());
    }
}
