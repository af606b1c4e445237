//! Test frames: raw Ethernet frames of the local experimental EtherType `0x88B5`, carrying a
//! sequence number and a pattern derived from it, so a receiver can check count, order,
//! size and content exactly.

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

/// The sequence number of a test frame, or `None` if `buf` is not one.
pub fn seq_of(buf: &[u8]) -> Option<u32> {
    if buf.len() < MIN_LEN || buf[12..14] != ETHERTYPE.to_be_bytes() {
        return None;
    }
    Some(u32::from_be_bytes([buf[14], buf[15], buf[16], buf[17]]))
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
    }
}
