//! Every backend's `Flags::validate` (and the checks that go with it: AF_XDP's MTU check,
//! AF_PACKET's ring layout for other page sizes, DPDK's port options) over structured input:
//! any value is either refused with an error naming a field or gives a consistent layout.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nethuns_afpacket::{AfPacketFlags, BpfInstruction, Fanout, FanoutMode, Filter};
use nethuns_afxdp::AfXdpFlags;
use nethuns_core::Error;
use nethuns_dpdk::{DpdkFlags, DpdkOptions};
use nethuns_netmap::NetmapFlags;
use nethuns_pcap::PcapFlags;

#[derive(Arbitrary, Debug)]
struct Pcap {
    snaplen: i32,
    promiscuous: bool,
    timeout_ms: i32,
    immediate: bool,
    filter: Option<String>,
    buffer_size: usize,
    buffer_count: usize,
}

#[derive(Arbitrary, Debug)]
enum AfPacketFilter {
    Classic(Vec<(u16, u8, u8, u32)>),
    Expression(String),
}

#[derive(Arbitrary, Debug)]
struct AfPacket {
    block_size: u32,
    block_count: u32,
    frame_size: u32,
    block_timeout_ms: u32,
    tx_frame_count: u32,
    promiscuous: bool,
    qdisc_bypass: bool,
    ignore_outgoing: bool,
    fanout: Option<(u16, u8, bool, bool)>,
    filter: Option<AfPacketFilter>,
    strip_vlan: bool,
    /// log2 of the page size, 12..=16.
    page_shift: u8,
}

#[derive(Arbitrary, Debug)]
struct AfXdp {
    bind_flags: u16,
    xdp_flags: u32,
    num_frames: u32,
    frame_size: u32,
    tx_size: u32,
    rx_size: u32,
    mtu: u32,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Pcap(Pcap),
    AfPacket(AfPacket),
    AfXdp(AfXdp),
    Netmap(u32),
    Dpdk {
        num_mbufs: u32,
        mbuf_cache_size: u32,
        mbuf_default_buf_size: u16,
        rx_ring_size: u16,
        tx_ring_size: u16,
    },
}

/// A refusal must be `InvalidFlag` naming a field (or a filter error with its expression).
fn refused(r: Error) {
    match r {
        Error::InvalidFlag { field, .. } => assert!(!field.is_empty()),
        other => {
            let s = other.to_string();
            assert!(!s.is_empty());
        }
    }
}

fn fanout_mode(m: u8) -> FanoutMode {
    match m % 6 {
        0 => FanoutMode::Hash,
        1 => FanoutMode::LoadBalance,
        2 => FanoutMode::Cpu,
        3 => FanoutMode::Rollover,
        4 => FanoutMode::Random,
        _ => FanoutMode::QueueMapping,
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Pcap(p) => {
            let f = PcapFlags {
                snaplen: p.snaplen,
                promiscuous: p.promiscuous,
                timeout_ms: p.timeout_ms,
                immediate: p.immediate,
                filter: p.filter,
                buffer_size: p.buffer_size,
                buffer_count: p.buffer_count,
            };
            if let Err(e) = f.validate() {
                refused(e)
            }
        }
        Input::AfPacket(a) => {
            let filter = a.filter.map(|f| match f {
                AfPacketFilter::Classic(v) => Filter::Classic(
                    v.into_iter()
                        .map(|(code, jt, jf, k)| BpfInstruction::new(code, jt, jf, k))
                        .collect(),
                ),
                AfPacketFilter::Expression(e) => Filter::Expression(e),
            });
            let f = AfPacketFlags {
                block_size: a.block_size,
                block_count: a.block_count,
                frame_size: a.frame_size,
                block_timeout_ms: a.block_timeout_ms,
                tx_frame_count: a.tx_frame_count,
                promiscuous: a.promiscuous,
                qdisc_bypass: a.qdisc_bypass,
                ignore_outgoing: a.ignore_outgoing,
                fanout: a.fanout.map(|(group, mode, rollover, defrag)| Fanout {
                    rollover,
                    defrag,
                    ..Fanout::new(group, fanout_mode(mode))
                }),
                filter,
                strip_vlan: a.strip_vlan,
            };
            let page = 1usize << (12 + a.page_shift % 5);
            match f.validate_with_page_size(page) {
                Ok(g) => {
                    // What the ring layout promises: whole frames per block, the blocks in
                    // the mapping, the TX ring after the RX ring.
                    assert!(g.rx.block_size >= g.rx.frame_size && g.rx.frame_size > 0);
                    assert!(g.rx.frames_per_block() >= 1);
                    assert!(g.map_bytes() >= g.rx.bytes());
                    if let Some(t) = g.tx {
                        assert!(t.frame_count >= 1);
                        assert!(g.map_bytes() >= g.rx.bytes() + t.bytes());
                    }
                }
                Err(e) => refused(e),
            }
        }
        Input::AfXdp(x) => {
            let f = AfXdpFlags {
                bind_flags: x.bind_flags,
                xdp_flags: x.xdp_flags,
                num_frames: x.num_frames,
                frame_size: x.frame_size,
                tx_size: x.tx_size,
                rx_size: x.rx_size,
            };
            match f.validate() {
                Ok(()) => {
                    if let Err(e) = f.check_mtu("veth0", x.mtu) {
                        refused(e)
                    }
                }
                Err(e) => refused(e),
            }
        }
        Input::Netmap(extra_buf) => {
            if let Err(e) = (NetmapFlags { extra_buf }).validate() {
                refused(e)
            }
        }
        Input::Dpdk {
            num_mbufs,
            mbuf_cache_size,
            mbuf_default_buf_size,
            rx_ring_size,
            tx_ring_size,
        } => {
            let f = DpdkFlags {
                num_mbufs,
                mbuf_cache_size,
                mbuf_default_buf_size,
            };
            match f.validate() {
                Ok(()) => assert!(f.max_frame() >= 60),
                Err(e) => refused(e),
            }
            let _ = f.max_frame();
            let o = DpdkOptions {
                rx_ring_size,
                tx_ring_size,
                ..DpdkOptions::default()
            };
            if let Err(e) = o.validate() {
                refused(e)
            }
        }
    }
});
