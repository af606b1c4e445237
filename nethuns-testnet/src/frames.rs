//! Test frames: raw Ethernet frames of the local experimental EtherType `0x88B5`, carrying a
//! sequence number and a pattern derived from it, so a receiver can check count, order,
//! size and content exactly.

pub use nethuns_core::frame::outer_vlan as outer_vlan_of;

/// The EtherType of test frames (IEEE local experimental 1).
pub const ETHERTYPE: u16 = 0x88B5;
/// Destination MAC of test frames (locally administered unicast; veth accepts it in promisc).
pub const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Source MAC of test frames.
pub const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Smallest frame: header (14) + sequence number (4).
pub const MIN_LEN: usize = 18;

/// A frame of `len` bytes (≥ [`MIN_LEN`]) with sequence number `seq`.
pub fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0; len.max(MIN_LEN)];
    fill(&mut f, seq);
    f
}

/// Writes a test frame with sequence number `seq` over all of `buf`.
pub fn fill(buf: &mut [u8], seq: u32) {
    buf[0..6].copy_from_slice(&DST);
    buf[6..12].copy_from_slice(&SRC);
    buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    buf[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in buf[18..].iter_mut().enumerate() {
        *b = pattern(seq, i);
    }
}

#[inline]
fn pattern(seq: u32, i: usize) -> u8 {
    (seq as usize).wrapping_mul(31).wrapping_add(i) as u8
}

/// The sequence number of a test frame (tagged or not), or `None` if `buf` is not one.
pub fn seq_of(buf: &[u8]) -> Option<u32> {
    let off = if buf.len() >= 18 && buf[12..14] == [0x81, 0x00] {
        4
    } else {
        0
    };
    if buf.len() < MIN_LEN + off || buf[12 + off..14 + off] != ETHERTYPE.to_be_bytes() {
        return None;
    }
    let s = &buf[14 + off..18 + off];
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A test frame of `len` bytes (≥ 22) with sequence number `seq` behind an 802.1Q tag of
/// TCI `tci`: the untagged frame `seq` of `len - 4` bytes with the tag inserted after the
/// MAC addresses.
pub fn tagged(seq: u32, len: usize, tci: u16) -> Vec<u8> {
    let mut f = frame(seq, len.max(MIN_LEN + 4) - 4);
    f.splice(12..12, [0x81, 0x00, (tci >> 8) as u8, tci as u8]);
    f
}

/// An IPv4 frame between the test MACs, optionally 802.1Q-tagged with TCI `vlan`, of IP
/// protocol `proto` (6 TCP, 17 UDP) with IP identification `id`, padded to 64 bytes: the
/// material of filter cases (the id tells frames apart).
pub fn ipv4(id: u16, proto: u8, vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    if let Some(tci) = vlan {
        f.extend_from_slice(&[0x81, 0x00, (tci >> 8) as u8, tci as u8]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let l4 = if proto == 6 { 20 } else { 8 };
    let total = (20 + l4) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 255, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 255, 0, 2]);
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    let mut l4b = vec![0u8; l4];
    l4b[0..2].copy_from_slice(&4000u16.to_be_bytes());
    l4b[2..4].copy_from_slice(&5000u16.to_be_bytes());
    if proto == 6 {
        l4b[12] = 0x50;
        l4b[13] = 0x02;
    } else {
        l4b[4..6].copy_from_slice(&8u16.to_be_bytes());
    }
    f.extend_from_slice(&l4b);
    if f.len() < 64 {
        f.resize(64, 0);
    }
    f
}

/// The IP identification of an [`ipv4`] frame between the test MACs, or `None`.
pub fn ipv4_id(buf: &[u8]) -> Option<u16> {
    if buf.len() < 34 || buf[..6] != DST || buf[6..12] != SRC {
        return None;
    }
    let off = if buf[12..14] == [0x81, 0x00] { 4 } else { 0 };
    if buf.len() < 34 + off || buf[12 + off..14 + off] != [0x08, 0x00] {
        return None;
    }
    Some(u16::from_be_bytes([buf[18 + off], buf[19 + off]]))
}

/// Writes `frames` as a classic pcap savefile (Ethernet link type, microsecond stamps): frame
/// `i` is stamped `base_sec + i` seconds, so a reader can tell frames apart by time.
pub fn write_savefile(
    path: &std::path::Path,
    frames: &[Vec<u8>],
    base_sec: u32,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(base_sec + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out)
}

/// Checks that `buf` is exactly the test frame `seq` of length `len`; says what differs.
pub fn check(buf: &[u8], seq: u32, len: usize) -> Result<(), String> {
    if buf.len() != len {
        return Err(format!("frame {seq}: length {} != {len}", buf.len()));
    }
    match seq_of(buf) {
        Some(s) if s == seq => {}
        other => return Err(format!("frame {seq}: sequence {other:?}")),
    }
    if buf[..6] != DST || buf[6..12] != SRC {
        return Err(format!("frame {seq}: MAC addresses differ"));
    }
    for (i, b) in buf[18..].iter().enumerate() {
        if *b != pattern(seq, i) {
            return Err(format!("frame {seq}: byte {} differs", 18 + i));
        }
    }
    Ok(())
}

/// Whether `buf` is a test frame (other traffic on the link is ignored by tests).
pub fn is_test_frame(buf: &[u8]) -> bool {
    seq_of(buf).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for len in [18, 60, 64, 512, 1514] {
            let f = frame(7, len);
            assert_eq!(f.len(), len);
            check(&f, 7, len).unwrap();
            assert!(check(&f, 8, len).is_err());
        }
        let mut f = frame(3, 64);
        f[40] ^= 1;
        assert!(check(&f, 3, 64).is_err());
        let t = tagged(9, 68, 7);
        assert_eq!((t.len(), seq_of(&t)), (68, Some(9)));
        assert_eq!(ipv4_id(&ipv4(77, 6, Some(5))), Some(77));
        assert_eq!(ipv4_id(&ipv4(78, 17, None)), Some(78));
    }
}
