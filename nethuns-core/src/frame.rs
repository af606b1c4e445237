//! Small facts about an Ethernet frame that every backend reports the same way.

/// The smallest frame a socket sends or receives: an Ethernet header (destination, source,
/// EtherType). `send` refuses anything shorter with [`Error::TooSmallPacket`](crate::Error).
pub const ETH_HLEN: usize = 14;

/// The length of one 802.1Q / 802.1ad tag.
pub const VLAN_HLEN: usize = 4;

/// The TCI of the outermost VLAN tag (TPID 0x8100, 0x88A8 or 0x9100) of `frame`, or `None`
/// if it is untagged.
///
/// ```
/// let mut f = [0u8; 18];
/// f[12..14].copy_from_slice(&[0x81, 0x00]);
/// f[14..16].copy_from_slice(&[0x20, 0x07]);
/// assert_eq!(nethuns_core::frame::outer_vlan(&f), Some(0x2007));
/// assert_eq!(nethuns_core::frame::outer_vlan(&[0u8; 14]), None);
/// ```
#[inline]
pub fn outer_vlan(frame: &[u8]) -> Option<u16> {
    if frame.len() < ETH_HLEN + VLAN_HLEN {
        return None;
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x8100 | 0x88A8 | 0x9100 => Some(u16::from_be_bytes([frame[14], frame[15]])),
        _ => None,
    }
}

/// Nanoseconds since the Unix epoch of a `timeval`, or `None` if it is zero (not stamped).
#[inline]
pub fn timeval_ns(tv: libc::timeval) -> Option<u64> {
    if tv.tv_sec == 0 && tv.tv_usec == 0 {
        return None;
    }
    Some(tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1_000)
}

/// The largest length `frame` may have on a link whose largest untagged frame is
/// `max_untagged` (MTU + 14): 4 bytes more when its outer EtherType is 802.1Q (0x8100).
/// Only 0x8100 earns the extra 4 bytes: Linux's AF_PACKET send path allows them for no other
/// TPID and drops such frames silently, so every backend refuses them the same way.
///
/// ```
/// use nethuns_core::frame::send_limit;
/// let mut f = vec![0u8; 1518];
/// assert_eq!(send_limit(&f, 1514), 1514);
/// f[12..14].copy_from_slice(&[0x81, 0x00]);
/// assert_eq!(send_limit(&f, 1514), 1518);
/// ```
#[inline]
pub fn send_limit(frame: &[u8], max_untagged: usize) -> usize {
    if frame.len() >= ETH_HLEN && frame[12] == 0x81 && frame[13] == 0x00 {
        max_untagged + VLAN_HLEN
    } else {
        max_untagged
    }
}
