//! The examples of the API reference (shared/spec/nethuns-api.md), with its `nethuns_rs`
//! paths mapped to this facade's. They are compiled, not run (they need real interfaces):
//! a change that breaks the spec's surface fails this build.

#![allow(dead_code, unused_imports)]

use nethuns::api::{Context, Socket};
use nethuns::errors::{Error, Result};

fn pcap_example() -> Result<()> {
    use nethuns::pcap::{PcapFlags, Sock};

    let flags = PcapFlags {
        snaplen: 65535,
        promiscuous: true,
        timeout_ms: 1,
        immediate: true,
        filter: None,
        buffer_size: 2048,
        buffer_count: 32,
    };
    let socket = Sock::create("eth0", None, flags)?;

    let (packet, _meta) = socket.recv()?;
    println!("First byte: {}", packet[0]);
    drop(packet);

    let (token, _meta) = socket.recv_token()?;
    let ctx = socket.context();
    let packet = token.consume(ctx);
    assert!(packet.len() <= 2048);
    Ok(())
}

#[cfg(feature = "af-xdp")]
fn af_xdp_example() -> Result<()> {
    use nethuns::af_xdp::{AfXdpFlags, Sock};

    let flags = AfXdpFlags {
        bind_flags: 0,
        xdp_flags: 0,
        num_frames: 4096,
        frame_size: 4096,
        tx_size: 2048,
        rx_size: 2048,
    };
    let _socket = Sock::create("eth0", Some(0), flags)?;
    Ok(())
}

#[cfg(feature = "netmap")]
fn netmap_example() -> Result<()> {
    use nethuns::netmap::{NetmapFlags, Sock};

    let flags = NetmapFlags { extra_buf: 1024 };
    let _socket = Sock::create("netmap:eth0", Some(0), flags)?;
    Ok(())
}

#[cfg(feature = "dpdk")]
fn dpdk_example() -> Result<()> {
    use nethuns::dpdk::{DpdkFlags, Sock};

    // The spec's three fields; DpdkFlags has more (ring sizes, offloads), hence `new`.
    let flags = DpdkFlags::new(8192, 250, 2176);
    let _socket = Sock::create("0000:01:00.0", Some(0), flags)?;
    Ok(())
}

fn channel_example() -> Result<()> {
    use nethuns::api::{NethunsPopper, NethunsPusher};
    use nethuns::pcap::{PcapFlags, Sock};

    const BATCH_SIZE: usize = 32;
    let (socket, mut pusher, popper) = Sock::create_with_channel::<BATCH_SIZE>(
        "eth0",
        None,
        PcapFlags::default(),
        nethuns::crossbeam_channel::bounded(1024),
    )?;
    let producer = std::thread::spawn(move || {
        for _ in 0..BATCH_SIZE {
            if let Ok((token, _meta)) = socket.recv_token() {
                pusher.push_token(token).unwrap();
            }
        }
        pusher.flush().unwrap();
    });
    let consumer = std::thread::spawn(move || {
        while let Some(batch) = popper.pop() {
            for packet in batch {
                let _ = packet.len();
            }
        }
    });
    producer.join().unwrap();
    consumer.join().unwrap();
    Ok(())
}

fn metadata_example(meta: nethuns::pcap::Meta) -> u32 {
    use nethuns::api::{Metadata, MetadataType};
    match meta.into_enum() {
        MetadataType::Pcap(m) => m.caplen,
        _ => 0,
    }
}

fn error_example(e: &Error) -> bool {
    matches!(
        e,
        Error::NoPacket | Error::NoMemory | Error::TooBigPacket(_) | Error::Unknown
    )
}

#[test]
fn spec_examples_compile() {
    // Nothing to run: the value of this file is that it builds with every feature.
    let _ = (
        pcap_example as fn() -> Result<()>,
        channel_example as fn() -> Result<()>,
    );
}
