//! A savefile through the pcap backend's `file:` portspec: the input is written to a file,
//! opened, and read to the end. Every packet must fit its buffer and its metadata; the socket
//! must end with `Eof` or an error, never a panic, and give back every buffer.
#![no_main]

use std::sync::atomic::{AtomicU32, Ordering};

use libfuzzer_sys::fuzz_target;
use nethuns_core::{Error, Metadata, Socket};
use nethuns_pcap::{PcapFlags, Sock};

/// At most this many packets per input (a savefile of N bytes holds at most N/16 anyway).
const MAX_PACKETS: usize = 100_000;

fn path() -> std::path::PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) % 2;
    std::env::temp_dir().join(format!("nethuns-fuzz-{}-{n}.pcap", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the buffer size (truncation paths) and how many payloads are held
    // (pool exhaustion paths); the rest is the file.
    let Some((&sel, file)) = data.split_first() else {
        return;
    };
    let buffer_size = [64usize, 1514, 2048, 65535][(sel & 3) as usize];
    let hold = ((sel >> 2) & 7) as usize;
    let p = path();
    std::fs::write(&p, file).expect("writing the fuzz input to a temp file");
    let flags = PcapFlags {
        buffer_size,
        buffer_count: 4,
        ..PcapFlags::default()
    };
    let spec = format!("file:{}", p.display());
    let Ok(sock) = Sock::create(&spec, None, flags) else {
        let _ = std::fs::remove_file(&p);
        return;
    };
    let mut held = Vec::new();
    let mut sum = 0u64;
    for _ in 0..MAX_PACKETS {
        match sock.recv() {
            Ok((payload, meta)) => {
                // The receive pool's buffers follow the file's snaplen (not `buffer_size`).
                assert!(
                    payload.len() <= sock.context().buffer_size(),
                    "payload over its buffer"
                );
                assert_eq!(payload.len(), meta.caplen() as usize);
                assert!(meta.len() >= meta.caplen(), "len {} < caplen", meta.len());
                sum = sum.wrapping_add(payload.iter().map(|&b| b as u64).sum::<u64>());
                if held.len() < hold {
                    held.push(payload);
                }
            }
            Err(Error::NoMemory) => held.clear(),
            Err(Error::NoPacket) => continue,
            Err(_) => break,
        }
    }
    std::hint::black_box(sum);
    drop(held);
    drop(sock);
    let _ = std::fs::remove_file(&p);
});
