//! The fault scenarios (nethuns-testnet::faults) on the AF_XDP backend over a veth pair, in
//! generic (SKB) and native mode: namespace deleted under the socket, a peer killed
//! mid-stream, 1000 open/close cycles on one queue under CPU contention with descriptors and
//! memory flat (the kernel frees a closed socket's queue asynchronously), nothing left behind
//! (XDP program, bpf_link, promiscuity) by a killed process.

#![cfg(target_os = "linux")]

mod backend;

mod skb {
    nethuns_testnet::fault_tests!(super::backend::AfXdpSkb);
}

mod drv {
    nethuns_testnet::fault_tests!(super::backend::AfXdpDrv);
}
