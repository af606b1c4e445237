//! Savefiles as they are: nanosecond pcap and pcapng replay through `file:` with every
//! timestamp equal to tshark's `frame.time_epoch`, and a `Dumper` made for the socket writes
//! back the very bytes it read (timestamps, caplen, len, link type, header). Needs no
//! privilege; needs tshark and editcap (Debian's tshark / wireshark-common), which CI installs.

use std::path::{Path, PathBuf};
use std::process::Command;

use nethuns_core::metadata::TsPrecision;
use nethuns_pcap::{Dumper, Error, Metadata, PcapFlags, SavefileFormat, Sock, Socket};
use nethuns_testnet::frames;

const N: u32 = 2400;

struct TmpFile(PathBuf);
impl TmpFile {
    fn new(name: &str) -> Self {
        TmpFile(std::env::temp_dir().join(format!("nethuns-ns-{}-{name}", std::process::id())))
    }
    fn spec(&self) -> String {
        format!("file:{}", self.0.display())
    }
}
impl Drop for TmpFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

fn tools(test: &str) -> bool {
    let ok = |c: &str| Command::new(c).arg("-v").output().is_ok();
    nethuns_testnet::require(test, "tshark and editcap", ok("tshark") && ok("editcap"))
}

/// A classic pcap of `N` frames written byte by byte (not by the code under test): stamps
/// with every digit of the fraction used, lengths 60..1514, every 7th frame truncated
/// (caplen 60 < len), link type `linktype`, the given precision.
fn write_reference(path: &Path, precision: TsPrecision, linktype: u32) {
    let fmt = SavefileFormat {
        linktype,
        precision,
        snaplen: 262_144,
    };
    let mut out = fmt.header().to_vec();
    for i in 0..N {
        let len = 60 + (i as usize * 37) % 1455;
        let f = frames::frame(i, len);
        let cap = if i % 7 == 3 { 60 } else { len };
        let frac = match precision {
            TsPrecision::Nano => (946_803 + i * 1_000_003) % 1_000_000_000,
            TsPrecision::Micro => (946 + i * 1_003) % 1_000_000,
        };
        for w in [1_700_000_000 + i / 3, frac, cap as u32, len as u32] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend_from_slice(&f[..cap]);
    }
    std::fs::write(path, out).unwrap();
}

/// tshark's (time_epoch, caplen, len) of every frame of `path`.
fn tshark_fields(path: &Path) -> Vec<(String, u32, u32)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.cap_len",
        ])
        .args(["-e", "frame.len"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut it = l.split('\t');
            let ts = it.next().unwrap().to_owned();
            let cap = it.next().unwrap().parse().unwrap();
            let len = it.next().unwrap().parse().unwrap();
            (ts, cap, len)
        })
        .collect()
}

/// `editcap -F format src dst`.
fn editcap(format: &str, src: &TmpFile, dst: &TmpFile) {
    let st = Command::new("editcap")
        .args(["-F", format])
        .arg(&src.0)
        .arg(&dst.0)
        .status()
        .unwrap();
    assert!(st.success(), "editcap -F {format} failed");
}

/// The nanosecond Ethernet reference converted by `editcap -F format` into file `name`, or
/// `None` (with the reason printed) without tshark/editcap.
fn nanosecond_via_editcap(format: &str, name: &str) -> Option<TmpFile> {
    if !tools(&format!("nanosecond savefile ({format})")) {
        return None;
    }
    let written = TmpFile::new(&format!("ref-{name}"));
    write_reference(&written.0, TsPrecision::Nano, 1);
    let out = TmpFile::new(name);
    editcap(format, &written, &out);
    Some(out)
}

fn epoch(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Replays `src` through `file:`, checks every packet against tshark, writes it back with a
/// `Dumper` made for the socket, and returns the written file.
fn replay_and_dump(src: &TmpFile, expect: TsPrecision, name: &str) -> TmpFile {
    let want = tshark_fields(&src.0);
    assert_eq!(want.len(), N as usize);
    let sock = Sock::create(&src.spec(), None, PcapFlags::default()).unwrap();
    assert_eq!(sock.ts_precision(), expect);
    let out = TmpFile::new(name);
    let mut dump = Dumper::for_source(&out.0, &sock).unwrap();
    for (i, (ts, cap, len)) in want.iter().enumerate() {
        let (p, m) = sock.recv().unwrap();
        assert_eq!(m.ts_precision, expect, "frame {i}");
        assert_eq!(epoch(m.timestamp().unwrap()), *ts, "frame {i}: timestamp");
        assert_eq!(
            (m.caplen(), m.len()),
            (*cap, *len),
            "frame {i}: caplen, len"
        );
        assert_eq!(p.len(), *cap as usize, "frame {i}");
        dump.write(&p, &m);
    }
    assert!(matches!(sock.recv(), Err(Error::Eof)));
    dump.flush().unwrap();
    out
}

#[test]
fn nanosecond_pcap_replays_exactly_and_dumps_back_byte_identical() {
    // The nanosecond file comes from editcap, as a user would make it.
    let Some(src) = nanosecond_via_editcap("nsecpcap", "editcap-ns.pcap") else {
        return;
    };
    let out = replay_and_dump(&src, TsPrecision::Nano, "dump-ns.pcap");
    assert_eq!(
        std::fs::read(&out.0).unwrap(),
        std::fs::read(&src.0).unwrap()
    );
    let st = Command::new("cmp")
        .arg(&out.0)
        .arg(&src.0)
        .status()
        .unwrap();
    assert!(st.success(), "cmp: the dumped file differs from its source");
}

#[test]
fn microsecond_and_linux_cooked_pcaps_dump_back_byte_identical() {
    if !tools("microsecond_and_linux_cooked_pcaps_dump_back_byte_identical") {
        return;
    }
    for (prec, linktype, name) in [
        (TsPrecision::Micro, 1, "us-eth"),
        (TsPrecision::Nano, 113, "ns-sll"),
        (TsPrecision::Micro, 276, "us-sll2"),
    ] {
        let src = TmpFile::new(&format!("{name}.pcap"));
        write_reference(&src.0, prec, linktype);
        let sock = Sock::create(&src.spec(), None, PcapFlags::default()).unwrap();
        assert_eq!(sock.link_type().0 as u32, linktype, "{name}");
        assert_eq!(sock.savefile_format().linktype, linktype, "{name}");
        drop(sock);
        let out = replay_and_dump(&src, prec, &format!("{name}-dump.pcap"));
        assert!(
            std::fs::read(&out.0).unwrap() == std::fs::read(&src.0).unwrap(),
            "{name}: the dumped file differs from its source"
        );
    }
}

#[test]
fn nanosecond_pcapng_replays_exactly_and_dumps_as_editcap_converts_it() {
    let Some(ng) = nanosecond_via_editcap("pcapng", "ref.pcapng") else {
        return;
    };
    let out = replay_and_dump(&ng, TsPrecision::Nano, "dump-ng.pcap");
    // The same packets as editcap's own conversion of the pcapng back to nanosecond pcap.
    let conv = TmpFile::new("conv-ng.pcap");
    editcap("nsecpcap", &ng, &conv);
    let (a, b) = (
        std::fs::read(&out.0).unwrap(),
        std::fs::read(&conv.0).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    // Header fields but the snaplen (pcapng's interface may record 0 = unlimited) and every
    // record are identical.
    assert_eq!(a[..16], b[..16]);
    assert_eq!(a[20..], b[20..], "records or link type differ");
}

#[test]
fn the_pool_follows_snaplen() {
    // A 9000-byte frame in a savefile arrives whole with the default flags (buffer_size 2048,
    // snaplen 65535); with snaplen 100 it arrives cut, and says so.
    let src = TmpFile::new("jumbo.pcap");
    let f = frames::frame(7, 9000);
    let mut bytes = SavefileFormat::ethernet(TsPrecision::Micro)
        .header()
        .to_vec();
    for w in [1_700_000_000u32, 5, 9000, 9000] {
        bytes.extend_from_slice(&w.to_ne_bytes());
    }
    bytes.extend_from_slice(&f);
    std::fs::write(&src.0, bytes).unwrap();
    let sock = Sock::create(&src.spec(), None, PcapFlags::default()).unwrap();
    let (p, m) = sock.recv().unwrap();
    frames::check(&p, 7, 9000).unwrap();
    assert_eq!((m.caplen, m.len), (9000, 9000));
    drop(p);
    let flags = PcapFlags {
        snaplen: 100,
        ..PcapFlags::default()
    };
    let sock = Sock::create(&src.spec(), None, flags).unwrap();
    let (p, m) = sock.recv().unwrap();
    assert_eq!(p[..], f[..p.len()]);
    assert!(m.caplen < m.len && m.len == 9000, "{m:?}");
}
