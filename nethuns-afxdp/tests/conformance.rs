//! The conformance suite (nethuns-testnet) on the AF_XDP backend, over a veth pair, in
//! generic (SKB) mode and in native mode (veth's XDP driver, copy mode: veth has no
//! zero-copy).

#![cfg(target_os = "linux")]

mod backend;

mod skb {
    use super::backend::*;
    nethuns_testnet::conformance_tests!(AfXdpSkb);
}

mod drv {
    use super::backend::*;
    nethuns_testnet::conformance_tests!(AfXdpDrv);
}
