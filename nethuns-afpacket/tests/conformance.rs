//! The conformance suite (nethuns-testnet) on the AF_PACKET backend, over a veth pair.

mod backend;

nethuns_testnet::conformance_tests!(backend::AfPacket);
