//! The steering program's life: attached on create, detached when the last socket on the
//! interface goes, and gone when the process is killed.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nethuns_afxdp::{AfXdpFlags, Sock, Socket as _};
use nethuns_testnet::{frames, NetPair, PairOptions};

const CHILD_ENV: &str = "NETHUNS_AFXDP_CRASH_CHILD";

#[test]
fn program_detached_when_last_socket_dropped() {
    let Some(pair) = NetPair::for_test_with(
        "lastsock",
        PairOptions {
            queues: 2,
            mtu: 1500,
        },
    ) else {
        return;
    };
    assert!(!xdp_attached(&pair, true));
    let s0 = pair
        .in_a(|| Sock::create(&pair.veth_a, Some(0), AfXdpFlags::default()))
        .unwrap();
    let s1 = pair
        .in_a(|| Sock::create(&pair.veth_a, Some(1), AfXdpFlags::default()))
        .unwrap();
    assert!(xdp_attached(&pair, true), "{}", link_details(&pair, true));
    drop(s0);
    assert!(xdp_attached(&pair, true), "still one socket");
    drop(s1);
    assert!(!xdp_attached(&pair, true), "{}", link_details(&pair, true));
    // And a new socket attaches again.
    let _s = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .unwrap();
    assert!(xdp_attached(&pair, true));
}

/// Not a test by itself: the body of the child process that `killed_process_leaves_no_program`
/// starts (this test binary re-executed with `CHILD_ENV` set). Opens a socket and waits.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split(' ');
    let (ns, ifname) = (parts.next().unwrap(), parts.next().unwrap());
    let queue: usize = parts.next().map_or(0, |q| q.parse().unwrap());
    let sock = nethuns_testnet::in_netns(ns, || {
        Sock::create(ifname, Some(queue), AfXdpFlags::default())
    })
    .unwrap();
    println!("READY");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(30));
    drop(sock);
}

/// Starts this test binary as a child process holding a socket on `ns`/`ifname` queue `queue`;
/// returns once the socket is open.
fn spawn_child(ns: &str, ifname: &str, queue: u32) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{ns} {ifname} {queue}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("READY") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("child never opened its socket");
    }
    child
}

/// Another process's program on the interface: this process cannot attach its own (a bpf_link
/// owns the interface's XDP slot), and says so.
#[test]
fn interface_held_by_another_process() {
    let Some(pair) = NetPair::for_test_with(
        "otherproc",
        PairOptions {
            queues: 2,
            mtu: 1500,
        },
    ) else {
        return;
    };
    let mut child = spawn_child(&pair.ns_a, &pair.veth_a, 0);
    let pid = child.id();
    let r = pair.in_a(|| Sock::create(&pair.veth_a, Some(1), AfXdpFlags::default()));
    child.kill().unwrap();
    child.wait().unwrap();
    match r {
        Err(e @ nethuns_afxdp::Error::Os { .. }) => {
            let msg = e.to_string();
            eprintln!("error: {msg}");
            assert!(
                msg.contains(&pair.veth_a) && msg.contains("queue 1"),
                "{msg}"
            );
            // The error names the program's bpf_link and the process holding it.
            assert!(
                msg.contains("through bpf_link") && msg.contains(&format!("held by process {pid}")),
                "{msg}"
            );
        }
        Err(e) => panic!("expected Os, got {e}"),
        Ok(_) => panic!("two processes attached to one interface"),
    }
}

#[test]
fn killed_process_leaves_no_program() {
    let Some(pair) = NetPair::for_test("crash") else {
        return;
    };
    let mut child = spawn_child(&pair.ns_a, &pair.veth_a, 0);
    assert!(xdp_attached(&pair, true), "{}", link_details(&pair, true));
    // SIGKILL: no destructor runs in the child.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdp_attached(&pair, true) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!xdp_attached(&pair, true), "{}", link_details(&pair, true));
    // Traffic reaches the kernel stack again: an AF_PACKET socket on a sees b's frames.
    let raw_a = pair.in_a(|| RawSock::open(&pair.veth_a));
    let raw_b = pair.in_b(|| RawSock::open(&pair.veth_b));
    for seq in 0..20 {
        raw_b.send(&frames::frame(seq, 64));
    }
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while got < 20 && Instant::now() < deadline {
        if let Some(f) = raw_a.recv() {
            if frames::seq_of(&f) == Some(got) {
                got += 1;
            }
        }
    }
    assert_eq!(got, 20, "frames reach the stack after the crash");
}

/// After a socket is dropped, frames go to the stack again (no program black-holes them).
#[test]
fn traffic_reaches_stack_after_drop() {
    let Some(pair) = NetPair::for_test("afterdrop") else {
        return;
    };
    let s = pair
        .in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()))
        .unwrap();
    let raw_b = pair.in_b(|| RawSock::open(&pair.veth_b));
    raw_b.send(&frames::frame(0, 64));
    let got = recv_count(&s, 1, Duration::from_secs(2), |seq, b, _| {
        frames::check(b, seq, 64).unwrap()
    });
    assert_eq!(got, 1, "the socket receives while open");
    drop(s);
    let raw_a = pair.in_a(|| RawSock::open(&pair.veth_a));
    raw_b.send(&frames::frame(1, 64));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        seen = raw_a.recv().is_some_and(|f| frames::seq_of(&f) == Some(1));
    }
    assert!(seen, "frame reached the stack");
}

/// A second socket of this process on a taken queue is refused at once, naming the holder
/// (not after a wait, and not as a socket "still being released").
#[test]
fn same_queue_twice_names_this_process() {
    let Some(pair) = NetPair::for_test("samequeue") else {
        return;
    };
    let first = pair
        .in_a(|| Sock::create(&pair.veth_a, Some(0), AfXdpFlags::default()))
        .unwrap();
    let e = pair
        .in_a(|| Sock::create(&pair.veth_a, Some(0), AfXdpFlags::default()))
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("another AF_XDP socket of this process is bound to") && e.contains("queue 0"),
        "{e}"
    );
    drop(first);
    // Freed: the queue can be taken again.
    drop(
        pair.in_a(|| Sock::create(&pair.veth_a, Some(0), AfXdpFlags::default()))
            .unwrap(),
    );
}
