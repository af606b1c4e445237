//! What DPDK's kernel-interface drivers leave on an interface when their process is killed
//! (SIGKILL: no teardown runs), and what a later AF_XDP socket of nethuns finds there.
//!
//! The child is this test binary re-executed (nethuns-testnet's `TestChild`): it opens a DPDK socket on
//! the veth inside namespace a, says `ready`, and waits to be killed by the parent, by pid.

use std::time::{Duration, Instant};

use nethuns::af_xdp;
use nethuns::dpdk;
use nethuns_core::Socket;
use nethuns_testnet::faults::TestChild;
use nethuns_testnet::NetPair;

/// The child on `devargs` in `ns` (SIGKILLed on drop).
fn start(ns: &str, devargs: &str) -> TestChild {
    TestChild::start("dpdk_child", &format!("{ns} {devargs}")).unwrap()
}

/// Not a test by itself: the child's body (does nothing unless the child variable is set).
#[test]
fn dpdk_child() {
    let Ok(spec) = std::env::var(nethuns_testnet::faults::CHILD_ENV) else {
        return;
    };
    let (ns, devargs) = spec.split_once(' ').expect("NS DEVARGS");
    let sock = nethuns_testnet::in_netns(ns, || {
        dpdk::Sock::create(devargs, Some(0), dpdk::DpdkFlags::default())
    })
    .unwrap_or_else(|e| panic!("child: {devargs}: {e}"));
    nethuns_testnet::faults::child_ready();
    // Killed long before this ends.
    std::thread::sleep(Duration::from_secs(60));
    drop(sock);
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
    start(&pair.ns_a, &format!("net_af_packet0,iface={}", pair.veth_a)).kill();
    let l = settled(&pair, not_promiscuous);
    assert!(not_promiscuous(&l), "after SIGKILL: {l}");
}

#[test]
fn af_xdp_killed_then_a_nethuns_af_xdp_socket_opens() {
    let Some(pair) = NetPair::for_test("dpdkkilledxdp") else {
        return;
    };
    let child = start(
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
