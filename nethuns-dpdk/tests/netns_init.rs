//! The EAL initialised implicitly by the first socket, created on a short-lived thread inside a
//! network namespace; the socket is then used from the main thread (its own process).

use std::time::{Duration, Instant};

use nethuns_dpdk::{eal, DpdkFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

#[test]
fn eal_started_from_a_namespace_thread() {
    let Some(pair) = NetPair::for_test("dpdk_netns_init") else {
        return;
    };
    assert!(!eal::is_initialized());
    let spec = format!("net_af_packet0,iface={}", pair.veth_a);
    let sock = pair
        .in_a(move || Sock::create(&spec, None, DpdkFlags::default()))
        .unwrap();
    assert!(eal::is_initialized());
    // The thread that initialised the EAL is gone; sending and receiving work from here.
    for i in 0..20u32 {
        sock.send(&frames::frame(i, 64)).unwrap();
    }
    sock.flush();
    let st = sock.native_stats().unwrap();
    assert_eq!((st.opackets, st.tx_dropped), (20, 0), "{st:?}");
    // Receiving works from this thread too (whatever the link carries), without errors.
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        match sock.recv() {
            Ok((p, meta)) => assert_eq!(meta.len as usize, p.len()),
            Err(Error::NoPacket) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    }
}
