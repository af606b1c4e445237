//! The conformance suite (nethuns-testnet) on the pcap backend: live capture on a veth pair,
//! and savefile replay (`file:PATH`).

mod backend;

nethuns_testnet::conformance_tests!(backend::Pcap);
