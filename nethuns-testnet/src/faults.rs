//! Fault injection, written once and run on every backend: what the conformance suite does
//! not cover because it needs a second process or a long run.
//!
//! - `namespace_deleted`: the socket's namespace is deleted under it (the socket keeps it
//!   alive and keeps working), then the peer's (the veth goes): every call returns, no panic,
//!   drop returns, and afterwards nothing of this process holds the namespace.
//! - `peer_killed`: a child process sending frames is SIGKILLed mid-stream: the socket sees
//!   no error and still receives from a new peer.
//! - `open_close_cycles`: [`CYCLES`] creates and drops on one interface while busy threads
//!   compete for the CPUs: every create succeeds, and the process's descriptors and resident
//!   memory stay flat (within [`FD_SLACK`] and [`RSS_SLACK`]).
//! - `killed_leaves_nothing`: a child process with an open socket is SIGKILLed: checked from
//!   here, no XDP program, no promiscuity, no hugepage file, no `/dev/shm` or `/run/dpdk`
//!   entry and no namespace is left behind.
//!
//! The children are the test binary itself, re-executed with [`CHILD_ENV`] set and told to
//! run only its `fault_child` test; they are killed by pid, and on drop if a test fails.
//! A crate instantiates the scenarios with [`fault_tests!`](crate::fault_tests):
//!
//! ```ignore
//! nethuns_testnet::fault_tests!(AfPacket); // AfPacket: a conformance::Backend
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nethuns_core::{Error, Socket};

use crate::conformance::Backend;
use crate::peer::RawPeer;
use crate::{frames, NetPair};

/// The environment variable that makes a re-executed test binary a child: `ROLE NS IFACE`.
pub const CHILD_ENV: &str = "NETHUNS_FAULTS_CHILD";
/// Open/close cycles of `open_close_cycles`.
pub const CYCLES: usize = 1000;
/// Descriptors the process may have gained over the cycles (threads of other tests of the
/// binary may still be finishing); one leaked per cycle would be [`CYCLES`].
pub const FD_SLACK: usize = 16;
/// Resident memory the process may have gained over the cycles (32 MiB; 32 KiB per cycle).
pub const RSS_SLACK: u64 = 32 << 20;
/// What a child prints once it is ready.
const READY: &str = "nethuns-child-ready";

/// Every scenario, by name, in the order [`run_all`] runs them.
pub const SCENARIOS: &[&str] = &[
    "namespace_deleted",
    "peer_killed",
    "open_close_cycles",
    "killed_leaves_nothing",
];

/// A child process: this test binary re-executed to run only test `test` with
/// [`CHILD_ENV`]` = role`, once it printed that it is ready. Killed (SIGKILL, by pid) and
/// reaped on drop.
#[derive(Debug)]
pub struct TestChild(std::process::Child);

impl TestChild {
    /// Starts the child and waits (at most 60 s) until it says it is ready ([`child_ready`]).
    pub fn start(test: &str, role: &str) -> Result<TestChild, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("re-executing the test binary: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let child = TestChild(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if l.contains(READY) {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .map_err(|_| format!("child {role:?} never got ready"))?;
        Ok(child)
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Kills the child with SIGKILL, by its pid, and reaps it.
    pub fn kill(mut self) {
        self.kill_and_reap();
    }

    fn kill_and_reap(&mut self) {
        // SIGKILL; the child is not reaped yet, so the pid is still its own.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for TestChild {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Tells the parent a child is ready (see [`TestChild::start`]).
pub fn child_ready() {
    use std::io::Write;
    println!("{READY}");
    let _ = std::io::stdout().flush();
}

/// The name libtest gives test `name` in the module of `module_path` (`module_path!()` of the
/// caller: the crate's name first, which libtest leaves out).
pub fn test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_, rest)) => format!("{rest}::{name}"),
        None => name.to_owned(),
    }
}

/// The body of the `fault_child` test: nothing unless [`CHILD_ENV`] is set; else plays the
/// role it names and never returns (it is killed).
///
/// - `sender NS IFACE`: sends test frames on `IFACE` of namespace `NS` without pause.
/// - `holder NS IFACE`: opens a socket of backend `B` there and waits.
pub fn child_main<B: Backend>() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = role.split(' ').collect();
    let [what, ns, iface] = parts[..] else {
        panic!("{CHILD_ENV}={role:?}: expected ROLE NS IFACE");
    };
    let end = Instant::now() + Duration::from_secs(120);
    match what {
        "sender" => crate::in_netns(ns, || {
            let peer = RawPeer::open(iface).expect("child: raw socket");
            child_ready();
            let mut seq = 0u32;
            while Instant::now() < end {
                if peer.send(&frames::frame(seq % 1_000_000, 64)).is_ok() {
                    seq += 1;
                }
                if seq % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }),
        "holder" => {
            let sock = crate::in_netns(ns, || open::<B>(iface)).expect("child: socket");
            child_ready();
            while Instant::now() < end {
                let _ = sock.recv();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        other => panic!("{CHILD_ENV}: unknown role {other:?}"),
    }
    std::process::exit(0);
}

/// Runs scenario `name` on backend `B`; `child_test` is the libtest name of the crate's
/// `fault_child` test. Prints one line, `faults: BACKEND SCENARIO: pass`, and panics on a
/// failure (`n/a: why` where [`Backend::fault_not_applicable`] says so). Returns `None` where the machine cannot run network tests and nothing demands it.
pub fn run_scenario<B: Backend>(name: &str, child_test: &str) -> Option<()> {
    // One scenario at a time per process: the descriptor and memory counts of
    // `open_close_cycles` are the process's, and must not see another scenario's sockets.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(why) = B::fault_not_applicable(name) {
        println!("faults: {} {name}: n/a: {why}", B::NAME);
        return Some(());
    }
    let pair = NetPair::for_test(&format!("fault{}", name.replace('_', "")))?;
    let r = match name {
        "namespace_deleted" => namespace_deleted::<B>(&pair),
        "peer_killed" => peer_killed::<B>(&pair, child_test),
        "open_close_cycles" => open_close_cycles::<B>(&pair),
        "killed_leaves_nothing" => killed_leaves_nothing(&pair, child_test),
        other => Err(format!("no scenario named {other:?}")),
    };
    match r {
        Ok(()) => {
            println!("faults: {} {name}: pass", B::NAME);
            Some(())
        }
        Err(e) => {
            println!("faults: {} {name}: FAIL: {e}", B::NAME);
            panic!("faults: {} {name}: {e}", B::NAME);
        }
    }
}

/// Runs every scenario on `B` in this one test (for engines initialised once per process);
/// panics at the end naming every failed one.
pub fn run_all<B: Backend>(child_test: &str) {
    let failed: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| std::panic::catch_unwind(|| run_scenario::<B>(s, child_test)).is_err())
        .collect();
    assert!(failed.is_empty(), "faults: {} failed {failed:?}", B::NAME);
}

/// One `#[test]` per fault scenario for backend type `$b`, and the `fault_child` test the
/// scenarios re-execute. `fault_tests!(@one $b)` runs them all in a single test instead
/// (one engine per process).
#[macro_export]
macro_rules! fault_tests {
    (@child $b:ty) => {
        /// Not a test by itself: the child processes of the fault scenarios.
        #[test]
        fn fault_child() {
            $crate::faults::child_main::<$b>();
        }
    };
    (@one $b:ty) => {
        $crate::fault_tests!(@child $b);
        #[test]
        fn faults() {
            if std::env::var_os($crate::faults::CHILD_ENV).is_some() {
                return;
            }
            $crate::faults::run_all::<$b>(&$crate::faults::test_name(
                module_path!(),
                "fault_child",
            ));
        }
    };
    ($b:ty) => {
        $crate::fault_tests!(@child $b);
        $crate::fault_tests!(@each $b; namespace_deleted peer_killed open_close_cycles
            killed_leaves_nothing);
    };
    (@each $b:ty; $($s:ident)*) => {$(
        #[test]
        fn $s() {
            if std::env::var_os($crate::faults::CHILD_ENV).is_some() {
                return;
            }
            let _ = $crate::faults::run_scenario::<$b>(
                stringify!($s),
                &$crate::faults::test_name(module_path!(), "fault_child"),
            );
        }
    )*};
}

// ---------------------------------------------------------------------------------------------

fn open<B: Backend>(iface: &str) -> Result<B::S, String> {
    let spec = B::portspec(iface);
    B::S::create(&spec, B::queue(), B::flags()).map_err(|e| format!("create {spec}: {e}"))
}

fn run<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    crate::in_netns(ns, f)
}

/// How many test frames whose sequence number satisfies `want` arrived within `limit` (at
/// most `n`); an error other than `NoPacket`/`NoMemory` is returned.
fn recv_seqs<S: Socket>(
    sock: &S,
    want: impl Fn(u32) -> bool,
    n: usize,
    limit: Duration,
) -> Result<usize, String> {
    let end = Instant::now() + limit;
    let mut got = 0;
    while got < n && Instant::now() < end {
        match sock.recv() {
            Ok((p, _)) => {
                if frames::seq_of(&p).is_some_and(&want) {
                    got += 1;
                }
            }
            Err(Error::NoPacket | Error::NoMemory) => std::thread::sleep(Duration::from_micros(50)),
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    Ok(got)
}

/// A new raw peer on `veth_b` sends rounds of 10 frames numbered from `base` until 10 of
/// them reached `sock` (at most 5 s); returns how many did.
fn fresh_peer_delivers<S: Socket>(pair: &NetPair, sock: &S, base: u32) -> Result<usize, String> {
    let peer = run(&pair.ns_b, || RawPeer::open(&pair.veth_b)).map_err(|e| e.to_string())?;
    let mut got = 0;
    for round in 0..20 {
        for i in 0..10 {
            let _ = peer.send(&frames::frame(base + round * 10 + i, 64));
        }
        got += recv_seqs(sock, |s| s >= base, 10, Duration::from_millis(250))?;
        if got >= 10 {
            break;
        }
    }
    Ok(got)
}

fn namespace_deleted<B: Backend>(pair: &NetPair) -> Result<(), String> {
    let ino = crate::netns_inode(&pair.ns_a).ok_or("no namespace inode")?;
    let sock = run(&pair.ns_a, || open::<B>(&pair.veth_a))?;
    crate::run("ip", &["netns", "del", &pair.ns_a])?;
    // The socket keeps its namespace (and so the veth) alive: frames still arrive.
    let got = fresh_peer_delivers(pair, &sock, 3_000_000)?;
    if got < 10 {
        return Err(format!(
            "after its namespace's name was deleted the socket received {got} of the frames"
        ));
    }
    // The peer's namespace goes too, with the veth pair: every call still returns.
    crate::run("ip", &["netns", "del", &pair.ns_b])?;
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        let _ = sock.recv();
        let _ = sock.send(&frames::frame(1, 64));
        sock.flush();
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(sock);
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let held = crate::netns_holders(ino);
        if held.is_empty() {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(format!(
                "the deleted namespace is still held by this process: {held:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn peer_killed<B: Backend>(pair: &NetPair, child_test: &str) -> Result<(), String> {
    let sock = run(&pair.ns_a, || open::<B>(&pair.veth_a))?;
    let child = TestChild::start(child_test, &format!("sender {} {}", pair.ns_b, pair.veth_b))?;
    let mid = recv_seqs(&sock, |s| s < 1_000_000, 100, Duration::from_secs(10))?;
    if mid < 100 {
        return Err(format!("only {mid} frames from the sending child"));
    }
    child.kill();
    // Whatever was in flight drains; then nothing but NoPacket.
    recv_seqs(&sock, |_| false, 1, Duration::from_millis(300))?;
    let got = fresh_peer_delivers(pair, &sock, 2_000_000)?;
    if got < 10 {
        return Err(format!(
            "after the peer was killed, {got} frames of a new peer arrived"
        ));
    }
    B::check(&sock).map_err(|e| format!("backend check: {e}"))
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_bytes() -> u64 {
    let pages: u64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    pages * nethuns_sys_linux::map::page_size().max(1) as u64
}

fn open_close_cycles<B: Backend>(pair: &NetPair) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) | 1);
                }
            })
        })
        .collect();
    let r = run(&pair.ns_a, || {
        let cycle = |i: usize| {
            open::<B>(&pair.veth_a)
                .map(drop)
                .map_err(|e| format!("cycle {i}: {e}"))
        };
        for i in 0..10 {
            cycle(i)?;
        }
        let (fd0, rss0) = (fd_count(), rss_bytes());
        for i in 10..CYCLES {
            cycle(i)?;
        }
        Ok::<_, String>((fd0, rss0, fd_count(), rss_bytes()))
    });
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        let _ = b.join();
    }
    let (fd0, rss0, fd1, rss1) = r?;
    println!(
        "faults: {} {CYCLES} open/close cycles: fds {fd0} -> {fd1}, RSS {} -> {} KiB",
        B::NAME,
        rss0 / 1024,
        rss1 / 1024
    );
    if fd1 > fd0 + FD_SLACK {
        return Err(format!(
            "descriptors grew from {fd0} to {fd1} over {CYCLES} cycles"
        ));
    }
    // Under AddressSanitizer (`cargo xtask sanitize` sets NETHUNS_SANITIZER) freed memory
    // stays resident in ASan's quarantine, so resident memory says nothing there; leaks are
    // LeakSanitizer's to find in that run.
    if std::env::var_os("NETHUNS_SANITIZER").is_some() {
        println!(
            "faults: {}: RSS bound not checked under a sanitizer",
            B::NAME
        );
    } else if rss1 > rss0 + RSS_SLACK {
        return Err(format!(
            "resident memory grew from {} to {} KiB over {CYCLES} cycles",
            rss0 / 1024,
            rss1 / 1024
        ));
    }
    Ok(())
}

/// What killed process `pid` could leave behind, as lines to compare.
fn leftovers(pair: &NetPair, pid: u32) -> Vec<String> {
    let mut v = vec![];
    let link = pair
        .ip_a(&["-d", "-o", "link", "show", &pair.veth_a])
        .unwrap_or_default();
    if link.contains("prog/xdp") || link.contains(" xdp") {
        v.push(format!("an XDP program on {}", pair.veth_a));
    }
    if link.contains("PROMISC") || !link.contains("promiscuity 0") {
        v.push(format!("{} promiscuous", pair.veth_a));
    }
    for dir in ["/dev/shm", "/dev/hugepages", "/run/dpdk"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            v.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
        }
    }
    let mine = format!("nethuns-{pid}-");
    for ns in crate::our_namespaces() {
        if ns.starts_with(&mine) {
            v.push(format!("namespace {ns}"));
        }
    }
    v
}

fn killed_leaves_nothing(pair: &NetPair, child_test: &str) -> Result<(), String> {
    // Before the child: no namespace can carry its pid yet.
    let before = leftovers(pair, u32::MAX);
    let child = TestChild::start(child_test, &format!("holder {} {}", pair.ns_a, pair.veth_a))?;
    let pid = child.pid();
    child.kill();
    // The kernel closes a dead process's files at once, but releases some objects (bpf_links,
    // XSK buffer pools) from work queues: give it a moment.
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<String> = leftovers(pair, pid)
            .into_iter()
            .filter(|l| !before.contains(l))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(format!("process {pid}, SIGKILLed, left behind: {left:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
