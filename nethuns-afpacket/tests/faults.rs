//! The fault scenarios (nethuns-testnet::faults) on the AF_PACKET backend, over a veth pair: namespace deleted
//! under the socket, a peer killed mid-stream, 1000 open/close cycles with descriptors and
//! memory flat, nothing left behind by a killed process.

mod backend;

nethuns_testnet::fault_tests!(backend::AfPacket);
