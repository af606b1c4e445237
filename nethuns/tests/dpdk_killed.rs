//! What DPDK's kernel-interface drivers leave on an interface when their process is killed
//! (SIGKILL: no teardown runs), and what a later AF_XDP socket of nethuns finds there.
//!
//! The child is this test binary re-executed with [`CHILD_ENV`] set: it opens a DPDK socket on
//! the veth inside namespace a, says `ready`, and waits to be killed by the parent, by pid.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nethuns::af_xdp;
use nethuns::dpdk;
use nethuns_core::Socket;
use nethuns_testnet::NetPair;

const CHILD_ENV: &str = "NETHUNS_DPDK_KILLED_CHILD";

/// Not a test by itself: the child's body (does nothing unless [`CHILD_ENV`] is set).
#[test]
fn dpdk_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (ns, devargs) = spec.split_once(' ').expect("NS DEVARGS");
    let sock = nethuns_testnet::in_netns(ns, || {
        dpdk::Sock::create(devargs, Some(0), dpdk::DpdkFlags::default())
    })
    .unwrap_or_else(|e| panic!("child: {devargs}: {e}"));
    println!("child-ready");
    // Killed long before this ends.
    std::thread::sleep(Duration::from_secs(60));
    drop(sock);
}

/// The child on `devargs` in `ns`, once it said it is ready.
struct ChildSock(std::process::Child);

impl ChildSock {
    fn start(ns: &str, devargs: &str) -> ChildSock {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "dpdk_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{ns} {devargs}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-executing the test binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if l.contains("child-ready") {
                    let _ = tx.send(());
                }
            }
        });
        let child = ChildSock(child);
        assert!(
            rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            "child on {devargs} never got ready"
        );
        child
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL, by pid, and reap.
    fn kill(mut self) {
        // SAFETY: kill(2) of our own child, by its pid (unreaped, so the pid is still its own).
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

impl Drop for ChildSock {
    fn drop(&mut self) {
        // A failed assertion: the child does not outlive the test.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ip -d link show` of veth a, one line.
fn link(pair: &NetPair) -> String {
    pair.ip_a(&["-d", "-o", "link", "show", &pair.veth_a])
        .unwrap()
}

/// The interface's state after the kernel had a moment to close the dead process's files.
fn settled(pair: &NetPair, ok: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let l = link(pair);
        if ok(&l) || Instant::now() >= end {
            return l;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn not_promiscuous(l: &str) -> bool {
    !l.contains("PROMISC") && l.contains("promiscuity 0")
}

#[test]
fn af_packet_killed_leaves_no_promiscuous_mode() {
    let Some(pair) = NetPair::for_test("dpdkkilledpkt") else {
        return;
    };
    ChildSock::start(&pair.ns_a, &format!("net_af_packet0,iface={}", pair.veth_a)).kill();
    let l = settled(&pair, not_promiscuous);
    assert!(not_promiscuous(&l), "after SIGKILL: {l}");
}

#[test]
fn af_xdp_killed_then_a_nethuns_af_xdp_socket_opens() {
    let Some(pair) = NetPair::for_test("dpdkkilledxdp") else {
        return;
    };
    let child = ChildSock::start(
        &pair.ns_a,
        &format!("net_af_xdp0,iface={},start_queue=0", pair.veth_a),
    );
    // While DPDK lives, its program is not touched: the error names the process using it.
    let open = || af_xdp::Sock::create(&pair.veth_a, Some(0), af_xdp::AfXdpFlags::default());
    let e = pair.in_a(open).map(drop).unwrap_err().to_string();
    assert!(
        e.contains(&format!("in use by process {}", child.pid())) && e.contains("xdp off"),
        "{e}"
    );
    assert!(link(&pair).contains("prog/xdp"), "{}", link(&pair));
    child.kill();
    let l = settled(&pair, not_promiscuous);
    assert!(not_promiscuous(&l), "after SIGKILL: {l}");
    // Then the program it left is stale, and the next AF_XDP socket removes it.
    let sock = pair
        .in_a(open)
        .unwrap_or_else(|e| panic!("AF_XDP socket after DPDK's net_af_xdp was killed: {e}"));
    drop(sock);
    let l = settled(&pair, |l| !l.contains("xdp"));
    assert!(!l.contains("prog/xdp"), "a program is left: {l}");
}
