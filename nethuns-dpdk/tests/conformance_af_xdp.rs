//! The conformance suite (nethuns-testnet) on DPDK's `net_af_xdp` driver over a veth pair.
//!
//! One EAL per process: every case runs in sequence in ONE #[test] (this file is its own
//! process), through `run_all`.

#[path = "conformance/backend.rs"]
mod backend;

struct DpdkAfXdp;

impl backend::Vdev for DpdkAfXdp {
    const NAME: &'static str = "dpdk-af-xdp";
    /// The driver posts 2048 mbufs to the AF_XDP fill ring at queue setup
    /// (`ETH_AF_XDP_DFLT_NUM_DESCS`), whatever the ring size.
    const DRIVER_MBUFS: u32 = 2048;
    fn devargs(iface: &str) -> String {
        format!("net_af_xdp0,iface={iface},start_queue=0")
    }
    /// `create` refuses MTU 9000 with `Unsupported`, naming what works.
    fn jumbo() -> Result<(), String> {
        Err(
            "DPDK 22.11's net_af_xdp receives a frame into one mbuf inside a 4096-byte UMEM \
             frame (no multi-buffer AF_XDP): MTU 3000 at most; create says so"
                .into(),
        )
    }
}

#[test]
fn conformance_dpdk_af_xdp() {
    backend::run::<DpdkAfXdp>();
}
