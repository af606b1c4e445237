//! VLAN-tagged frames arrive as they were on the wire: the kernel takes the outer tag out of
//! the frame, the socket puts it back (unless `strip_vlan`), and `send` takes tagged frames up
//! to MTU + 18 bytes.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, Error, Meta, Metadata, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

/// A test frame of `len` bytes in all, with `tags` (TPID, TCI) after its MAC addresses.
fn tagged(seq: u32, len: usize, tags: &[(u16, u16)]) -> Vec<u8> {
    let f = frames::frame(seq, len - 4 * tags.len());
    let mut out = f[..12].to_vec();
    for (tpid, tci) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&tci.to_be_bytes());
    }
    out.extend_from_slice(&f[12..]);
    out
}

/// The sequence number of a test frame under any number of VLAN tags.
fn seq_under_tags(buf: &[u8]) -> Option<u32> {
    let mut at = 12;
    while buf.len() >= at + 4
        && matches!(
            u16::from_be_bytes([buf[at], buf[at + 1]]),
            0x8100 | 0x88a8 | 0x9100
        )
    {
        at += 4;
    }
    let inner = [&buf[..12], buf.get(at..)?].concat();
    frames::seq_of(&inner)
}

/// Sends `sent` from A to B; returns what B received (test frames, tagged or not), copied.
fn transfer(
    test: &str,
    rx_flags: AfPacketFlags,
    sent: Vec<Vec<u8>>,
) -> Option<Vec<(Vec<u8>, Meta)>> {
    let pair = NetPair::for_test(test)?;
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let want = sent.len();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let sock = Sock::create(&rx_if, None, rx_flags).expect("receiver");
            ready_tx.send(()).unwrap();
            let end = Instant::now() + Duration::from_secs(3);
            let mut got = vec![];
            // Everything that arrives within the time (and nothing more: extra frames show).
            while Instant::now() < end && got.len() <= want {
                match sock.recv() {
                    Ok((p, m)) => {
                        if seq_under_tags(&p).is_some() {
                            got.push((p.to_vec(), m));
                        }
                    }
                    Err(Error::NoPacket) => {
                        if got.len() == want {
                            // Wait a little for extras, then stop.
                            std::thread::sleep(Duration::from_millis(200));
                            while let Ok((p, m)) = sock.recv() {
                                if seq_under_tags(&p).is_some() {
                                    got.push((p.to_vec(), m));
                                }
                            }
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(50))
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
            got
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).expect("sender");
        common::send_all(&sock, &sent, 8, Duration::from_secs(5));
        assert_eq!(sock.stats().unwrap().sent, sent.len() as u64);
    });
    Some(receiver.join().unwrap())
}

/// Frames with one tag of each kind, two tags, and none, up to the largest size.
fn mixed() -> Vec<Vec<u8>> {
    vec![
        tagged(0, 64, &[(0x8100, 0xa123)]),
        tagged(1, 1518, &[(0x8100, 0x0007)]),
        // Under a 0x88A8 or 0x9100 outer tag the kernel sends at most MTU + 14.
        tagged(2, 1514, &[(0x88a8, 0x2007)]),
        tagged(3, 1514, &[(0x9100, 0x0777)]),
        tagged(4, 1514, &[(0x88a8, 0x0100), (0x8100, 0x0042)]),
        tagged(8, 1518, &[(0x8100, 0x0100), (0x8100, 0x0042)]),
        tagged(5, 60, &[(0x8100, 0x0000)]), // priority tag, VID 0
        frames::frame(6, 1514),
        frames::frame(7, 60),
    ]
}

#[test]
fn tagged_frames_arrive_as_on_the_wire() {
    let sent = mixed();
    let Some(got) = transfer("afp_vlan_wire", common::flags(), sent.clone()) else {
        return;
    };
    let seqs: Vec<_> = got
        .iter()
        .map(|(b, _)| seq_under_tags(b).unwrap())
        .collect();
    assert_eq!(got.len(), sent.len(), "received {seqs:?}");
    for ((buf, meta), want) in got.iter().zip(&sent) {
        let seq = seq_under_tags(buf).unwrap();
        assert_eq!(buf, want, "frame {seq}: the payload is the wire frame");
        assert_eq!(meta.len() as usize, want.len(), "frame {seq}: len");
        assert_eq!(meta.caplen() as usize, want.len(), "frame {seq}: caplen");
        assert_eq!(
            meta.vlan(),
            nethuns_afpacket::frame::outer_vlan(want),
            "frame {seq}: the outer tag"
        );
    }
}

#[test]
fn strip_vlan_keeps_the_kernels_form() {
    let sent = mixed();
    let flags = AfPacketFlags {
        strip_vlan: true,
        ..common::flags()
    };
    let Some(got) = transfer("afp_vlan_strip", flags, sent.clone()) else {
        return;
    };
    assert_eq!(got.len(), sent.len());
    for ((buf, meta), want) in got.iter().zip(&sent) {
        let stripped = match u16::from_be_bytes([want[12], want[13]]) {
            // The kernel takes out 802.1Q and 802.1ad outer tags, not 0x9100.
            0x8100 | 0x88a8 => [&want[..12], &want[16..]].concat(),
            _ => want.clone(),
        };
        assert_eq!(buf, &stripped);
        assert_eq!(meta.caplen() as usize, stripped.len());
        assert_eq!(meta.vlan(), nethuns_afpacket::frame::outer_vlan(want));
        if meta.vlan_valid {
            assert_eq!(meta.vlan_tpid, u16::from_be_bytes([want[12], want[13]]));
        }
    }
}
