//! The fault scenarios (nethuns-testnet::faults) on DPDK's `net_af_packet` and `net_af_xdp`
//! drivers over a veth pair: namespace deleted under the socket, a peer killed mid-stream,
//! 1000 open/close cycles (probe, configure, start, stop, close, remove) with descriptors and
//! memory flat, nothing left behind (promiscuity, XDP program, hugepage files, `/dev/shm`,
//! `/run/dpdk`) by a killed process.
//!
//! One EAL per process: every scenario runs in sequence in ONE #[test] per driver module,
//! and the two modules' tests run one after the other (the EAL is shared, each socket probes
//! and removes its own device). The killed children run their own EAL.

#[path = "conformance/backend.rs"]
mod backend;

use nethuns_testnet::conformance::Backend;

struct AfPacket;

impl backend::Vdev for AfPacket {
    const NAME: &'static str = "dpdk-af-packet";
    const DRIVER_MBUFS: u32 = 0;
    fn devargs(iface: &str) -> String {
        format!("net_af_packet0,iface={iface}")
    }
}

struct AfXdp;

impl backend::Vdev for AfXdp {
    const NAME: &'static str = "dpdk-af-xdp";
    const DRIVER_MBUFS: u32 = 2048;
    fn devargs(iface: &str) -> String {
        format!("net_af_xdp0,iface={iface},start_queue=0")
    }
    fn fault_not_applicable(scenario: &str) -> Option<&'static str> {
        match scenario {
            "open_close_cycles" => Some(
                "DPDK 22.11's net_af_xdp keeps its XSK socket, XSKMAP and program descriptors \
                 open after rte_eth_dev_close and hot-unplug, so a second port on the same \
                 queue in one process fails at RX queue setup (EINVAL); README, known limits",
            ),
            "killed_leaves_nothing" => Some(
                "libxdp attaches xsk_def_prog through netlink and a killed process leaves it; \
                 the next nethuns AF_XDP socket removes it (nethuns/tests/dpdk_killed.rs)",
            ),
            _ => None,
        }
    }
}

/// Both drivers, in turn, for the child processes and for the scenarios.
struct Both;

impl Backend for Both {
    type S = nethuns_dpdk::Sock;
    const NAME: &'static str = "dpdk";
    fn portspec(iface: &str) -> String {
        // The child's role names the interface; which driver it opens is in its environment.
        match std::env::var(DRIVER_ENV).as_deref() {
            Ok("af_xdp") => backend::Dpdk::<AfXdp>::portspec(iface),
            _ => backend::Dpdk::<AfPacket>::portspec(iface),
        }
    }
    fn queue() -> Option<usize> {
        Some(0)
    }
    fn flags() -> nethuns_dpdk::DpdkFlags {
        backend::Dpdk::<AfPacket>::flags()
    }
}

const DRIVER_ENV: &str = "NETHUNS_FAULTS_DPDK_DRIVER";

nethuns_testnet::fault_tests!(@child Both);

#[test]
fn faults() {
    if std::env::var_os(nethuns_testnet::faults::CHILD_ENV).is_some() {
        return;
    }
    nethuns_dpdk::Eal::new()
        .init()
        .expect("EAL with the default arguments");
    let child = nethuns_testnet::faults::test_name(module_path!(), "fault_child");
    // The children inherit the driver choice through the environment.
    std::env::set_var(DRIVER_ENV, "af_packet");
    let a = std::panic::catch_unwind(|| {
        nethuns_testnet::faults::run_all::<backend::Dpdk<AfPacket>>(&child)
    });
    std::env::set_var(DRIVER_ENV, "af_xdp");
    let b = std::panic::catch_unwind(|| {
        nethuns_testnet::faults::run_all::<backend::Dpdk<AfXdp>>(&child)
    });
    assert!(
        a.is_ok() && b.is_ok(),
        "faults: net_af_packet ok: {}, net_af_xdp ok: {}",
        a.is_ok(),
        b.is_ok()
    );
}
