//! The conformance suite (nethuns-testnet) on DPDK's `net_af_packet` driver over a veth pair.
//!
//! One EAL per process: every case runs in sequence in ONE #[test] (this file is its own
//! process), through `run_all`.

#[path = "conformance/backend.rs"]
mod backend;

struct DpdkAfPacket;

impl backend::Vdev for DpdkAfPacket {
    const NAME: &'static str = "dpdk-af-packet";
    /// The driver receives straight into mbufs it allocates per packet.
    const DRIVER_MBUFS: u32 = 0;
    fn devargs(iface: &str) -> String {
        format!("net_af_packet0,iface={iface}")
    }
}

#[test]
fn conformance_dpdk_af_packet() {
    backend::run::<DpdkAfPacket>();
}
