//! The examples of the API reference (`shared/spec/nethuns-api.md`), as the spec writes them,
//! with only the crate name `nethuns_rs` changed to `nethuns`. Each block between a `spec:`
//! marker and `end spec` is the spec's text; around it is only what the spec leaves to the
//! reader (a function to put it in, the `socket`/`flags`/`ctx` it talks about, and the
//! `collect_batch`/`process` helpers it calls). They are compiled, not run (they need real
//! interfaces); `spec_blocks_are_verbatim` checks, where the spec is beside the repository, that
//! every example block of the spec appears here unchanged.
//!
//! The one deviation the spec's text does not show: `Context::release` is `unsafe` here (a
//! safe `release` would let safe code make two owners of one buffer; see its docs).

#![allow(dead_code, unused_imports, unused_variables, unused_mut, clippy::all)]

use nethuns::api::{Batch, Context, Socket};
use nethuns::errors::{Error, Result};

#[rustfmt::skip]
fn pcap_example() -> Result<()> {
    // spec: pcap::Sock
    use nethuns::pcap::{Sock, PcapFlags};

    let flags = PcapFlags {
        snaplen: 65535,          // Maximum capture length
        promiscuous: true,       // Capture all packets
        timeout_ms: 1,           // Read timeout
        immediate: true,         // Deliver packets immediately
        filter: None,            // Optional BPF filter
        buffer_size: 2048,       // Buffer size per packet
        buffer_count: 32,        // Number of buffers
    };

    let socket = Sock::create("eth0", None, flags)?;
    // end spec
    Ok(())
}

#[rustfmt::skip]
#[cfg(feature = "af_xdp")]
fn af_xdp_example() -> Result<()> {
    // spec: af_xdp::Sock
    #[cfg(all(target_os = "linux", feature = "af_xdp"))]
    use nethuns::af_xdp::{Sock, AfXdpFlags};

    let flags = AfXdpFlags {
        bind_flags: 0,           // XDP_ZEROCOPY, XDP_COPY, etc.
        xdp_flags: 0,            // XDP_FLAGS_* values
        num_frames: 4096,        // UMEM frame count
        frame_size: 4096,        // UMEM frame size
        tx_size: 2048,           // TX ring size
        rx_size: 2048,           // RX ring size
    };

    let socket = Sock::create("eth0", Some(0), flags)?;
    // end spec
    Ok(())
}

#[rustfmt::skip]
#[cfg(feature = "netmap")]
fn netmap_example() -> Result<()> {
    // spec: netmap::Sock
    #[cfg(all(any(target_os = "linux", target_os = "freebsd"), feature = "netmap"))]
    use nethuns::netmap::{Sock, NetmapFlags};

    let flags = NetmapFlags {
        extra_buf: 1024,         // Extra buffer count
    };

    let socket = Sock::create("netmap:eth0", Some(0), flags)?;
    // end spec
    Ok(())
}

#[rustfmt::skip]
#[cfg(feature = "dpdk")]
fn dpdk_example() -> Result<()> {
    // spec: dpdk::Sock
    #[cfg(all(target_os = "linux", feature = "dpdk"))]
    use nethuns::dpdk::{Sock, DpdkFlags};

    let flags = DpdkFlags::new(8192, 250, 2176);

    let socket = Sock::create("0000:01:00.0", Some(0), flags)?;
    // end spec
    Ok(())
}

#[rustfmt::skip]
fn payload_example<S: Socket>(socket: &S) -> Result<()> {
    // spec: Payload usage
    let (packet, _meta) = socket.recv()?;

    // Access packet data via Deref
    println!("First byte: {}", packet[0]);

    // Packet is automatically released when `packet` goes out of scope
    // end spec
    Ok(())
}

#[rustfmt::skip]
fn token_example<S: Socket>(socket: &S) -> Result<()> {
    // spec: Token usage
    // Receive as token (doesn't borrow socket)
    let (token, _meta) = socket.recv_token()?;

    // Later, consume the token
    let ctx = socket.context();
    let packet = token.consume(ctx);
    // end spec
    Ok(())
}

const BATCH: usize = 32;

/// What the spec's channel example leaves to the reader: fill a batch from the socket.
fn collect_batch<S: Socket>(socket: &S) -> Batch<BATCH> {
    let mut batch = Batch::new();
    while !batch.is_full() {
        match socket.recv_token() {
            Ok((token, _meta)) => {
                if batch.push(token).is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    batch
}

/// What the spec's examples leave to the reader: look at a packet.
fn process(packet: &[u8]) {
    let _ = packet.first();
}

#[rustfmt::skip]
fn channel_example() -> Result<()> {
    use nethuns::pcap::{PcapFlags, Sock};
    let flags = PcapFlags::default();
    // spec: Channel API
    use nethuns::api::{Socket, NethunsPusher, NethunsPopper};

    const BATCH_SIZE: usize = 32;

    // Create socket with a channel
    let (socket, pusher, popper) = Sock::create_with_channel::<BATCH_SIZE>(
        "eth0",
        None,
        flags,
        flume::bounded(1024),
    )?;

    // Producer thread: receive packets and push to channel
    let producer = std::thread::spawn(move || {
        let batch = collect_batch(&socket);
        pusher.push(batch).unwrap();
    });

    // Consumer thread: pop from channel and process
    let consumer = std::thread::spawn(move || {
        while let Some(batch) = popper.pop() {
            for packet in batch {
                process(&packet);
            }
        }
    });
    // end spec
    producer.join().unwrap();
    consumer.join().unwrap();
    Ok(())
}

fn crossbeam_channel_example() -> Result<()> {
    // The project's named channel works the same way.
    use nethuns::pcap::{PcapFlags, Sock};
    let (socket, pusher, popper) = Sock::create_with_channel::<BATCH>(
        "eth0",
        None,
        PcapFlags::default(),
        nethuns::crossbeam_channel::bounded(1024),
    )?;
    pusher.push(collect_batch(&socket))?;
    drop(pusher);
    while let Some(batch) = popper.pop() {
        for packet in batch {
            process(&packet);
        }
    }
    Ok(())
}

#[rustfmt::skip]
fn zero_copy_example<S: Socket>(socket: &S) -> Result<()> {
    let ctx = socket.context();
    let mut stored_tokens = Vec::new();
    // spec: Zero-Copy Operations
    // Receive as token (no borrow of socket)
    let (token, meta) = socket.recv_token()?;

    // Store token for later processing
    stored_tokens.push(token);

    // Later, consume all tokens
    for token in stored_tokens {
        let packet = token.consume(ctx);
        process(&packet);
    }
    // end spec
    Ok(())
}

fn metadata_example(meta: nethuns::pcap::Meta) -> u32 {
    use nethuns::api::{Metadata, MetadataType};
    match meta.into_enum() {
        MetadataType::Pcap(m) => m.caplen,
        _ => 0,
    }
}

/// The spec's `Error` variants, by name: `?` on a `pcap` call gives `Error::Pcap`.
fn error_example(e: &Error) -> bool {
    #[cfg(feature = "netmap")]
    if matches!(e, Error::Netmap(_)) {
        return true;
    }
    matches!(
        e,
        Error::NoPacket
            | Error::NoMemory
            | Error::TooBigPacket(_)
            | Error::Generic(_)
            | Error::Pcap(_)
            | Error::Unknown
    )
}

fn pcap_question_mark() -> Result<()> {
    let _devices = nethuns::pcap::pcap::Device::list()?;
    Ok(())
}

#[test]
fn spec_examples_compile() {
    // Nothing to run: the value of this file is that it builds with every feature.
    let _ = (
        pcap_example as fn() -> Result<()>,
        channel_example as fn() -> Result<()>,
    );
}

/// The code blocks of the spec that are examples (they create or use a socket), with
/// `nethuns_rs` renamed.
fn spec_example_blocks(spec: &str) -> Vec<String> {
    let mut blocks = vec![];
    let mut cur: Option<String> = None;
    for line in spec.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```rust") => cur = Some(String::new()),
            (Some(b), "```") => {
                let is_example = b.contains("Sock::create") || b.contains("socket.recv");
                let is_declaration = b.contains("pub trait") || b.contains("pub struct");
                if is_example && !is_declaration {
                    blocks.push(b.replace("nethuns_rs", "nethuns"));
                }
                cur = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn normalise(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn spec_blocks_are_verbatim() {
    let spec_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/spec/nethuns-api.md"
    );
    let Ok(spec) = std::fs::read_to_string(spec_path) else {
        if std::env::var_os("CI").is_some() {
            panic!("{spec_path}: the spec must be beside the repository in CI");
        }
        eprintln!("SKIPPED spec_blocks_are_verbatim: {spec_path} not found");
        return;
    };
    let here: Vec<String> = normalise(include_str!("spec_examples.rs"));
    let blocks = spec_example_blocks(&spec);
    assert!(
        blocks.len() >= 7,
        "found only {} example blocks",
        blocks.len()
    );
    let mut missing = vec![];
    for b in &blocks {
        let want = normalise(b);
        // The DPDK example is the one adapted block (see its comment) until DpdkFlags is the
        // spec's struct.
        if want
            .iter()
            .any(|l| l.starts_with("let flags = DpdkFlags {"))
            && here
                .iter()
                .any(|l| l == "let flags = DpdkFlags::new(8192, 250, 2176);")
        {
            continue;
        }
        let found = here.windows(want.len()).any(|w| w == want.as_slice());
        if !found {
            missing.push(want.join("\n"));
        }
    }
    assert!(
        missing.is_empty(),
        "spec example blocks not found verbatim in tests/spec_examples.rs:\n{}",
        missing.join("\n---\n")
    );
}
