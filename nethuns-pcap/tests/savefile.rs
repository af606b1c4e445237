//! Savefiles: writing with `Dumper`, reading back with tcpdump and with a `file:` socket.
//! Needs no privilege.

use std::process::Command;

use nethuns_pcap::{Dumper, Error, Meta, PcapFlags, Sock, Socket};
use nethuns_testnet::frames;

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nethuns-{}-{name}.pcap", std::process::id()))
}

fn write_file(path: &std::path::Path, n: u32) {
    let mut d = Dumper::create(path).unwrap();
    for i in 0..n {
        let f = frames::frame(i, 60 + i as usize);
        let meta = Meta::new(
            libc::timeval {
                tv_sec: 1_700_000_000 + i as libc::time_t,
                tv_usec: 0,
            },
            f.len() as u32,
            f.len() as u32,
            None,
        );
        d.write(&f, &meta);
    }
    d.flush().unwrap();
}

#[test]
fn dumper_output_is_read_by_tcpdump() {
    let path = tmp("tcpdump");
    write_file(&path, 25);
    let has_tcpdump = Command::new("tcpdump").arg("--version").output().is_ok();
    if !nethuns_testnet::require("dumper_output_is_read_by_tcpdump", "tcpdump", has_tcpdump) {
        return;
    }
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One line per packet starts with its timestamp; hex dumps of the payload are indented.
    let text = String::from_utf8_lossy(&out.stdout);
    let packets = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(packets, 25, "{text}");
}

#[test]
fn a_record_shorter_on_the_wire_than_captured_reports_len_at_least_caplen() {
    // Found by fuzzing: a record with caplen 60 and len 1 was reported as `len() < caplen()`.
    let path = tmp("short-len");
    let f = frames::frame(0, 60);
    let mut file = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        file.extend_from_slice(&w.to_le_bytes());
    }
    for w in [1u32, 0, f.len() as u32, 1] {
        file.extend_from_slice(&w.to_le_bytes());
    }
    file.extend_from_slice(&f);
    std::fs::write(&path, file).unwrap();
    let sock = Sock::create(
        &format!("file:{}", path.display()),
        None,
        PcapFlags::default(),
    )
    .unwrap();
    let (p, meta) = sock.recv().unwrap();
    assert_eq!(p.len(), 60);
    assert_eq!((meta.caplen, meta.len), (60, 60));
    assert!(matches!(sock.recv(), Err(Error::Eof)));
    std::fs::remove_file(&path).ok();
}

#[test]
fn file_socket_replays_exactly_then_reports_eof() {
    let path = tmp("replay");
    write_file(&path, 40);
    let spec = format!("file:{}", path.display());
    let sock = Sock::create(&spec, None, PcapFlags::default()).unwrap();
    for i in 0..40u32 {
        let (p, meta) = sock.recv().unwrap();
        frames::check(&p, i, 60 + i as usize).unwrap();
        assert_eq!(meta.timestamp.tv_sec, 1_700_000_000 + i as libc::time_t);
        assert_eq!(meta.len, meta.caplen);
    }
    assert!(matches!(sock.recv(), Err(Error::Eof)));
    assert!(sock.at_eof());
    assert!(matches!(sock.send(&[0; 60]), Err(Error::Unsupported(_))));
    // A filter applies to savefiles too.
    let sock = Sock::create(
        &spec,
        None,
        PcapFlags {
            filter: Some("len > 90".into()),
            ..PcapFlags::default()
        },
    )
    .unwrap();
    let mut n = 0;
    while let Ok((p, _)) = sock.recv() {
        assert!(p.len() > 90);
        n += 1;
    }
    assert_eq!(n, 9); // lengths 91..=99
    std::fs::remove_file(&path).ok();
}

#[test]
fn bad_portspecs_and_flags_are_clear_errors() {
    let e = Sock::create("file:", None, PcapFlags::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidPortspec { .. }), "{e}");
    let e = Sock::create("file:/nonexistent/x.pcap", None, PcapFlags::default()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.pcap"), "{e}");
    let e = Sock::create("", None, PcapFlags::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidPortspec { .. }), "{e}");
    let e = Sock::create("nosuchif0", None, PcapFlags::default()).unwrap_err();
    assert!(e.to_string().contains("nosuchif0"), "{e}");
    let e = Sock::create(
        "lo",
        None,
        PcapFlags {
            buffer_count: 0,
            ..PcapFlags::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidFlag {
                field: "buffer_count",
                ..
            }
        ),
        "{e}"
    );
}
