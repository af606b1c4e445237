//! The EAL initialised by a first socket created inside a network namespace must not keep that
//! namespace alive: once the socket is dropped and the namespace deleted, no thread or file of
//! this process may still be in it (else the namespace and its veth live on, nameless, until
//! the process exits). Its own test binary: the EAL is initialised once per process.

use nethuns_dpdk::{eal, DpdkFlags, Sock, Socket};
use nethuns_testnet::{netns_holders, netns_inode, NetPair};

#[test]
fn a_deleted_namespace_is_not_pinned_by_eal_threads() {
    let Some(pair) = NetPair::for_test("dpdk_netns_release") else {
        return;
    };
    assert!(!eal::is_initialized());
    let ino = netns_inode(&pair.ns_a).expect("namespace inode");
    let spec = format!("net_af_packet0,iface={}", pair.veth_a);
    let sock = pair
        .in_a(move || Sock::create(&spec, None, DpdkFlags::default()))
        .unwrap();
    assert!(eal::is_initialized());
    // While the socket lives, its AF_PACKET socket is in the namespace; EAL's threads are not.
    let eal_threads: Vec<_> = netns_holders(ino)
        .into_iter()
        .filter(|h| h.starts_with("task"))
        .collect();
    assert!(
        eal_threads.is_empty(),
        "EAL threads in the caller's namespace: {eal_threads:?}"
    );
    drop(sock);
    let veth = pair.veth_a.clone();
    drop(pair);
    let left = netns_holders(ino);
    assert!(
        left.is_empty(),
        "the deleted namespace of {veth} is still held by {left:?}"
    );
}
