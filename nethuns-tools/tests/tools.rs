//! The tools end to end on veth pairs between namespaces: each tool runs as a child process
//! (`ip netns exec`), bounded in time and killed by its pid if it overruns.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nethuns_testnet::NetPair;
use nethuns_tools::frames;
use nethuns_tools::savefile::{Reader, Writer};
use serde_json::Value;

/// One tool test at a time: they time their own children, and share two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn bin(tool: &str) -> &'static str {
    match tool {
        "meter" => env!("CARGO_BIN_EXE_nethuns-meter"),
        "gen" => env!("CARGO_BIN_EXE_nethuns-gen"),
        "forward" => env!("CARGO_BIN_EXE_nethuns-forward"),
        "dump" => env!("CARGO_BIN_EXE_nethuns-dump"),
        "replay" => env!("CARGO_BIN_EXE_nethuns-replay"),
        t => panic!("no tool {t}"),
    }
}

/// `tool args…` started inside namespace `ns`, stdout and stderr piped.
fn start(ns: &str, tool: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, bin(tool)])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {tool}: {e}"))
}

struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Waits for `child` at most `limit`; kills it (by its pid) and fails if it overruns.
fn finish(mut child: Child, what: &str, limit: Duration) -> Done {
    let t = Instant::now();
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => break,
            None if t.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!(
                    "{what} did not end within {limit:?}; killed. stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let out = child.wait_with_output().expect("wait");
    Done {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a tool to its end (bounded) and checks it exited 0.
fn run_ok(ns: &str, tool: &str, args: &[&str], limit: Duration) -> Done {
    let d = finish(start(ns, tool, args), tool, limit);
    assert_eq!(
        d.code,
        Some(0),
        "{tool} {args:?} failed: {} {}",
        d.stdout,
        d.stderr
    );
    d
}

/// The JSON totals line of queue `queue` ("all" or a number).
fn total(out: &str, queue: &str) -> Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["event"] == "total"
                && (v["queue"] == queue
                    || v["queue"].as_u64().map(|q| q.to_string()).as_deref() == Some(queue))
        })
        .unwrap_or_else(|| panic!("no totals line for {queue} in {out:?}"))
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Backends that run on a veth here.
const BACKENDS: &[&str] = &["pcap", "af-packet", "af-xdp"];

#[test]
fn meter_counts_what_gen_sends_exactly() {
    let _s = serial();
    let Some(pair) = NetPair::for_test("toolsmeter") else {
        return;
    };
    for be in BACKENDS {
        for (v, extra) in [
            ("4", &[][..]),
            (
                "6",
                &["--src-ip", "fd00::1", "--dst-ip", "fd00::2", "--imix"][..],
            ),
        ] {
            let meter = start(
                &pair.ns_b,
                "meter",
                &[
                    "-b",
                    be,
                    "-i",
                    &pair.veth_b,
                    "-c",
                    "2000",
                    "--duration",
                    "20",
                    "--json",
                    "--quiet",
                ],
            );
            std::thread::sleep(Duration::from_millis(700));
            let mut args = vec![
                "-b",
                be,
                "-i",
                &pair.veth_a,
                "-c",
                "2000",
                "--pps",
                "20000",
                "--json",
                "--quiet",
                "--dst-port",
                "1000-1099",
            ];
            args.extend_from_slice(extra);
            let g = run_ok(&pair.ns_a, "gen", &args, Duration::from_secs(20));
            let m = finish(meter, "meter", Duration::from_secs(25));
            assert_eq!(m.code, Some(0), "{}", m.stderr);
            let (gt, mt) = (total(&g.stdout, "all"), total(&m.stdout, "all"));
            assert_eq!(num(&gt, "tx_packets"), 2000, "{be} IPv{v}: {gt}");
            assert_eq!(num(&mt, "rx_packets"), 2000, "{be} IPv{v}: {mt}");
            assert_eq!(num(&mt, "rx_bytes"), num(&gt, "tx_bytes"), "{be} IPv{v}");
            assert_eq!(
                mt["dropped"], 0,
                "{be} IPv{v}: nothing lost, nothing reported lost"
            );
            assert_eq!(num(&gt, "send_errors"), 0, "{be}");
        }
    }
}

#[test]
fn two_queues_one_line_each_and_a_total() {
    let _s = serial();
    let opts = nethuns_testnet::PairOptions {
        queues: 2,
        ..Default::default()
    };
    let Some(pair) = NetPair::for_test_with("toolsqueues", opts) else {
        return;
    };
    let meter = start(
        &pair.ns_b,
        "meter",
        &[
            "-b",
            "af-packet",
            "-i",
            &pair.veth_b,
            "-q",
            "0-1",
            "-c",
            "4000",
            "--duration",
            "20",
            "--json",
            "--interval",
            "0.2",
        ],
    );
    std::thread::sleep(Duration::from_millis(700));
    let g = run_ok(
        &pair.ns_a,
        "gen",
        &[
            "-b",
            "af-packet",
            "-i",
            &pair.veth_a,
            "-c",
            "4000",
            "--pps",
            "20000",
            "--src-port",
            "1000-1255",
            "--json",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    let m = finish(meter, "meter", Duration::from_secs(25));
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    assert_eq!(num(&total(&g.stdout, "all"), "tx_packets"), 4000);
    let (q0, q1, all) = (
        total(&m.stdout, "0"),
        total(&m.stdout, "1"),
        total(&m.stdout, "all"),
    );
    assert_eq!(num(&all, "rx_packets"), 4000, "{all}");
    assert_eq!(num(&q0, "rx_packets") + num(&q1, "rx_packets"), 4000);
    assert!(
        m.stdout
            .lines()
            .any(|l| l.contains("\"event\":\"interval\"") && l.contains("\"queue\":1")),
        "a line per queue per interval: {}",
        m.stdout
    );
}

#[test]
fn drops_are_reported_when_forced() {
    let _s = serial();
    let Some(pair) = NetPair::for_test("toolsdrops") else {
        return;
    };
    // One 4 KiB block: a burst of 50 000 frames at top speed cannot fit.
    let meter = start(
        &pair.ns_b,
        "meter",
        &[
            "-b",
            "af-packet",
            "-i",
            &pair.veth_b,
            "--afp-block-size",
            "4096",
            "--afp-block-count",
            "1",
            "--afp-frame-size",
            "2048",
            "--duration",
            "4",
            "--idle",
            "1",
            "--json",
            "--quiet",
        ],
    );
    std::thread::sleep(Duration::from_millis(700));
    run_ok(
        &pair.ns_a,
        "gen",
        &[
            "-b",
            "af-packet",
            "-i",
            &pair.veth_a,
            "-c",
            "50000",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    let m = finish(meter, "meter", Duration::from_secs(10));
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    let t = total(&m.stdout, "all");
    let (rx, dropped) = (num(&t, "rx_packets"), num(&t, "dropped"));
    assert!(
        dropped > 0,
        "the engine dropped frames and the meter says so: {t}"
    );
    assert_eq!(
        rx + dropped,
        50_000,
        "every frame is received or reported dropped: {t}"
    );
}

/// Sends `sig` to `child` after `after`, and returns how long until its totals line came.
fn totals_after_signal(
    mut child: Child,
    sig: i32,
    after: Duration,
) -> (Duration, String, Option<i32>) {
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains("\"event\":\"total\"") {
                let _ = tx.send(Instant::now());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    std::thread::sleep(after);
    let t0 = Instant::now();
    // SAFETY: kill on the pid of a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    let seen = rx.recv_timeout(Duration::from_secs(5));
    let d = finish(child, "signalled tool", Duration::from_secs(5));
    let all = reader.join().expect("reader");
    let at = seen.unwrap_or_else(|_| panic!("no totals after the signal: {all} {}", d.stderr));
    (at - t0, all, d.code)
}

#[test]
fn sigint_and_sigterm_print_totals_within_100_ms() {
    let _s = serial();
    let Some(pair) = NetPair::for_test("toolssignal") else {
        return;
    };
    // A generator whose link goes down under it: its TX ring fills, every send waits.
    for be in BACKENDS {
        let gen = start(
            &pair.ns_a,
            "gen",
            &["-b", be, "-i", &pair.veth_a, "-c", "0", "--json"],
        );
        std::thread::sleep(Duration::from_millis(500));
        pair.ip_a(&["link", "set", &pair.veth_a, "down"])
            .expect("link down");
        let (t, out, code) = totals_after_signal(gen, libc::SIGINT, Duration::from_millis(1000));
        pair.ip_a(&["link", "set", &pair.veth_a, "up"])
            .expect("link up");
        assert_eq!(code, Some(0), "{be}: {out}");
        assert!(
            t <= Duration::from_millis(100),
            "{be}: gen on a down link: totals {t:?} after SIGINT"
        );
        assert_eq!(total(&out, "all")["stopped_by_signal"], true);
        assert!(
            out.contains("\"link_down\":true"),
            "{be}: the lines say the link is down: {out}"
        );
    }
    // Receivers waiting on an idle link.
    for be in BACKENDS {
        for tool in ["meter", "dump"] {
            let file = format!("/tmp/nethuns-tools-test-{}.pcap", std::process::id());
            let mut args = vec!["-b", be, "-i", &pair.veth_b, "--json"];
            if tool == "dump" {
                args.extend_from_slice(&["-w", &file]);
            }
            let child = start(&pair.ns_b, tool, &args);
            let (t, out, code) =
                totals_after_signal(child, libc::SIGTERM, Duration::from_millis(1500));
            let _ = std::fs::remove_file(&file);
            eprintln!("{be} {tool}, idle link: totals {t:?} after SIGTERM");
            assert_eq!(code, Some(0), "{be} {tool}: {out}");
            assert!(
                t <= Duration::from_millis(100),
                "{be} {tool}: totals {t:?} after SIGTERM"
            );
        }
    }
}

/// a1 ─ b1 [forwarder] a2 ─ b2: a second pair whose a-end is moved into the first pair's b.
struct Line {
    p1: NetPair,
    p2: NetPair,
}

fn line(tag: &str) -> Option<Line> {
    let p1 = NetPair::for_test(&format!("{tag}1"))?;
    let p2 = NetPair::for_test(&format!("{tag}2"))?;
    p2.ip_a(&["link", "set", &p2.veth_a, "netns", &p1.ns_b])
        .expect("moving the veth");
    p1.ip_b(&["link", "set", &p2.veth_a, "up"])
        .expect("link up");
    Some(Line { p1, p2 })
}

#[test]
fn forward_both_ways_does_not_loop() {
    let _s = serial();
    let Some(l) = line("toolsfwd") else { return };
    let (fwd_ns, left, right) = (&l.p1.ns_b, &l.p1.veth_b, &l.p2.veth_a);
    let cases: &[(&str, &[&str])] = &[
        ("pcap", &[]),
        ("af-packet", &[]),
        ("pcap", &["--channel"]),
        ("af-packet", &["--channel"]),
        ("af-packet", &["--copy"]),
        ("pcap", &["--bidirectional"]),
        ("af-packet", &["--bidirectional"]),
        ("af-xdp", &["--bidirectional"]),
    ];
    for (be, mode) in cases {
        let bidir = mode.contains(&"--bidirectional");
        let mut a: Vec<&str> = vec![
            "-b",
            be,
            "-i",
            left,
            "-o",
            right,
            "--duration",
            "3",
            "--json",
            "--quiet",
        ];
        a.extend_from_slice(mode);
        let f1 = start(fwd_ns, "forward", &a);
        let f2 = (!bidir).then(|| {
            let mut b: Vec<&str> = vec![
                "-b",
                be,
                "-i",
                right,
                "-o",
                left,
                "--duration",
                "3",
                "--json",
                "--quiet",
            ];
            b.extend_from_slice(mode);
            start(fwd_ns, "forward", &b)
        });
        let meter = start(
            &l.p2.ns_b,
            "meter",
            &[
                "-b",
                "af-packet",
                "-i",
                &l.p2.veth_b,
                "--duration",
                "3",
                "--json",
                "--quiet",
            ],
        );
        let back = start(
            &l.p1.ns_a,
            "meter",
            &[
                "-b",
                "af-packet",
                "-i",
                &l.p1.veth_a,
                "--duration",
                "3",
                "--json",
                "--quiet",
                "--afp-ignore-outgoing",
                "true",
            ],
        );
        std::thread::sleep(Duration::from_millis(900));
        run_ok(
            &l.p1.ns_a,
            "gen",
            &["-b", "af-packet", "-i", &l.p1.veth_a, "-c", "10", "--quiet"],
            Duration::from_secs(10),
        );
        let m = finish(meter, "meter", Duration::from_secs(10));
        let b = finish(back, "meter", Duration::from_secs(10));
        let o1 = finish(f1, "forward", Duration::from_secs(10));
        let t1 = total(&o1.stdout, "all");
        assert_eq!(
            num(&total(&m.stdout, "all"), "rx_packets"),
            10,
            "{be} {mode:?}: far end"
        );
        assert_eq!(
            num(&total(&b.stdout, "all"), "rx_packets"),
            0,
            "{be} {mode:?}: nothing came back"
        );
        if let Some(f2) = f2 {
            let o2 = finish(f2, "forward", Duration::from_secs(10));
            let t2 = total(&o2.stdout, "all");
            assert_eq!(num(&t1, "tx_packets"), 10, "{be} {mode:?}: {t1}");
            assert_eq!(
                num(&t2, "tx_packets"),
                0,
                "{be} {mode:?}: the reverse forwarder saw its peer's sends: {t2}"
            );
        } else {
            assert_eq!(
                num(&t1, "tx_packets"),
                10,
                "{be} {mode:?}: a bridge forwards each frame once: {t1}"
            );
        }
    }
}

/// A savefile of `n` generated frames (sequence numbers 0..n), 1 ms apart.
fn savefile(path: &str, n: u64) {
    let ep = frames::Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: "10.0.0.1".parse().unwrap(),
        dst_ip: "10.0.0.2".parse().unwrap(),
    };
    let t = frames::Template::new(&ep, 64).unwrap();
    let mut b = t.buffer();
    let mut w = Writer::create(path, pcap::Linktype::ETHERNET, true, 65535).unwrap();
    for i in 0..n {
        t.write(&mut b, 1024, 9, i);
        w.write(
            &b,
            b.len() as u32,
            1_700_000_000_000_000_000 + i * 1_000_000,
        );
    }
    w.flush().unwrap();
}

#[test]
fn replay_keeps_the_asked_rate_within_5_percent() {
    let _s = serial();
    let Some(pair) = NetPair::for_test("toolsreplay") else {
        return;
    };
    let dir = std::env::temp_dir();
    let src = dir.join(format!("nethuns-replay-src-{}.pcap", std::process::id()));
    let got = dir.join(format!("nethuns-replay-got-{}.pcap", std::process::id()));
    let (src, got) = (src.to_str().unwrap(), got.to_str().unwrap());
    savefile(src, 200);
    for be in ["af-packet", "pcap"] {
        let dump = start(
            &pair.ns_b,
            "dump",
            &[
                "-b",
                "af-packet",
                "-i",
                &pair.veth_b,
                "-w",
                got,
                "-c",
                "2000",
                "--duration",
                "10",
                "--quiet",
            ],
        );
        std::thread::sleep(Duration::from_millis(700));
        run_ok(
            &pair.ns_a,
            "replay",
            &[
                "-b",
                be,
                "-i",
                &pair.veth_a,
                "-r",
                src,
                "--pps",
                "1000",
                "--loop",
                "10",
                "--quiet",
            ],
            Duration::from_secs(10),
        );
        let d = finish(dump, "dump", Duration::from_secs(12));
        assert_eq!(d.code, Some(0), "{}", d.stderr);
        let mut r = Reader::open(got).unwrap();
        let (mut first, mut last, mut n) = (None, 0u64, 0u64);
        while let Some((ts, data)) = r.next_packet().unwrap() {
            assert_eq!(frames::seq_of(data), Some(n % 200), "{be}: frames in order");
            first.get_or_insert(ts);
            last = ts;
            n += 1;
        }
        assert_eq!(n, 2000, "{be}: 10 loops of 200");
        let rate = (n - 1) as f64 / ((last - first.unwrap()) as f64 / 1e9);
        eprintln!("{be}: replay --pps 1000: {rate:.2} pps at the receiver");
        assert!(
            (rate - 1000.0).abs() <= 50.0,
            "{be}: replay at --pps 1000 measured {rate:.1} pps at the receiver"
        );
    }
    let _ = std::fs::remove_file(src);
    let _ = std::fs::remove_file(got);
}

#[test]
fn dump_is_read_back_by_tcpdump_with_nanoseconds() {
    let _s = serial();
    let Some(pair) = NetPair::for_test("toolsdump") else {
        return;
    };
    let file = std::env::temp_dir().join(format!("nethuns-dump-{}.pcap", std::process::id()));
    let file = file.to_str().unwrap();
    for be in BACKENDS {
        let dump = start(
            &pair.ns_b,
            "dump",
            &[
                "-b",
                be,
                "-i",
                &pair.veth_b,
                "-w",
                file,
                "-c",
                "100",
                "-s",
                "50",
                "--duration",
                "10",
                "--quiet",
            ],
        );
        std::thread::sleep(Duration::from_millis(700));
        run_ok(
            &pair.ns_a,
            "gen",
            &[
                "-b",
                "af-packet",
                "-i",
                &pair.veth_a,
                "-c",
                "150",
                "--size",
                "100",
                "--pps",
                "5000",
                "--quiet",
            ],
            Duration::from_secs(10),
        );
        let d = finish(dump, "dump", Duration::from_secs(12));
        assert_eq!(d.code, Some(0), "{be}: {}", d.stderr);
        let magic = std::fs::read(file).unwrap();
        assert_eq!(
            &magic[..4],
            &0xa1b23c4du32.to_le_bytes(),
            "{be}: a nanosecond savefile"
        );
        let out =
            nethuns_testnet::run("tcpdump", &["-r", file, "--nano", "-tt", "-n", "-e"]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 100, "{be}: exactly the count: {out}");
        for l in &lines {
            let ts = l.split_whitespace().next().unwrap();
            let frac = ts.split('.').nth(1).unwrap_or("");
            assert_eq!(frac.len(), 9, "{be}: nanosecond timestamps: {l}");
            assert!(l.contains("10.0.0.1.1024 > 10.0.0.2.9"), "{be}: {l}");
        }
        let mut r = Reader::open(file).unwrap();
        let mut seq = 0;
        while let Some((_, data)) = r.next_packet().unwrap() {
            assert_eq!(data.len(), 50, "{be}: cut to the snaplen");
            assert_eq!(frames::seq_of(data), Some(seq), "{be}");
            seq += 1;
        }
    }
    let _ = std::fs::remove_file(file);
}

#[test]
fn meter_over_a_savefile_ends_and_reports_its_span() {
    let file = std::env::temp_dir().join(format!("nethuns-meter-file-{}.pcap", std::process::id()));
    let file = file.to_str().unwrap();
    savefile(file, 500);
    let spec = format!("file:{file}");
    let d = finish(
        Command::new(bin("meter"))
            .args(["-b", "pcap", "-i", &spec, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        "meter",
        Duration::from_secs(10),
    );
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    let t = total(&d.stdout, "all");
    assert_eq!(num(&t, "rx_packets"), 500);
    assert!((t["span"].as_f64().unwrap() - 0.499).abs() < 1e-9, "{t}");
    assert!(t["seconds"].as_f64().unwrap() > 0.0, "{t}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn exit_codes_mean_something() {
    let code = |args: &[&str]| {
        Command::new(bin("meter"))
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(code(&["--bogus"]), Some(2), "usage");
    assert_eq!(
        code(&["-i", "lo", "-q", "3-1"]),
        Some(2),
        "usage: bad queue range"
    );
    if nethuns_testnet::is_root() {
        assert_eq!(
            code(&["-b", "af-packet", "-i", "nosuchif0"]),
            Some(5),
            "no interface"
        );
        assert_eq!(
            code(&["-b", "af-xdp", "-i", "lo", "-f", "udp"]),
            Some(4),
            "configuration"
        );
        assert_eq!(
            code(&["-b", "af-packet", "-i", "lo", "--afp-block-size", "5000"]),
            Some(4),
            "bad flag"
        );
    }
    assert_eq!(
        code(&["-b", "pcap", "-i", "file:/nonexistent.pcap"]),
        Some(6),
        "savefile"
    );
}
