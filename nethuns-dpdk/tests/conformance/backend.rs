//! What the DPDK conformance files share: a [`Backend`] over a virtual device on the veth end.

use nethuns_dpdk::{DpdkFlags, Eal, Sock};
use nethuns_testnet::conformance::{self, Backend};

/// A DPDK virtual device over a kernel interface.
pub trait Vdev: 'static {
    /// Name in the conformance report.
    const NAME: &'static str;
    /// Mbufs the driver takes from the mempool for itself at start.
    const DRIVER_MBUFS: u32;
    /// The devargs of the device over `iface`.
    fn devargs(iface: &str) -> String;
    /// Whether the driver carries frames of MTU 9000 (the `jumbo` case), or why not.
    fn jumbo() -> Result<(), String> {
        Ok(())
    }
    /// Why a fault scenario does not apply to the driver (see nethuns-testnet's `faults`).
    fn fault_not_applicable(_scenario: &str) -> Option<&'static str> {
        None
    }
}

/// The suite's backend for vdev `V`.
pub struct Dpdk<V>(std::marker::PhantomData<V>);

impl<V: Vdev> Backend for Dpdk<V> {
    type S = Sock;
    const NAME: &'static str = V::NAME;

    fn portspec(iface: &str) -> String {
        V::devargs(iface)
    }

    fn queue() -> Option<usize> {
        Some(0)
    }

    fn flags() -> DpdkFlags {
        DpdkFlags {
            num_mbufs: 4095,
            mbuf_cache_size: 0,
            ..DpdkFlags::default()
        }
    }

    /// Mbufs that hold a frame of MTU 9000 + 18 bytes in one segment, and a net_af_packet
    /// ring frame (9088 bytes, 32 of them header).
    fn jumbo_flags() -> Result<DpdkFlags, String> {
        V::jumbo()?;
        Ok(DpdkFlags {
            mbuf_default_buf_size: 9056 + 128,
            ..Self::flags()
        })
    }

    /// A mempool of `buffers` mbufs (at least the 64 DPDK needs for two bursts) beyond those
    /// the driver takes for itself, no cache.
    fn small_pool_flags(buffers: usize) -> Option<DpdkFlags> {
        Some(DpdkFlags {
            num_mbufs: V::DRIVER_MBUFS + (buffers as u32).max(nethuns_dpdk::MIN_MBUFS),
            mbuf_cache_size: 0,
            ..DpdkFlags::default()
        })
    }

    fn fault_not_applicable(scenario: &str) -> Option<&'static str> {
        V::fault_not_applicable(scenario)
    }

    /// Every mbuf is back in the mempool but those the driver holds for itself and at most
    /// two bursts (the socket's TX stash, a driver's TX ring not yet cleaned).
    fn check(sock: &Sock) -> Result<(), String> {
        use nethuns_dpdk::Socket;
        let ctx = sock.context();
        let limit = V::DRIVER_MBUFS + nethuns_dpdk::BURST as u32 * 2;
        let in_use = ctx.in_use();
        if in_use > limit {
            return Err(format!(
                "{in_use} mbufs of {} still out of the mempool after the case released \
                 everything (limit {limit})",
                ctx.name()
            ));
        }
        Ok(())
    }
}

/// Starts the EAL (default arguments) and runs every case on `V` (each case skips itself
/// where the machine cannot make network namespaces).
#[allow(dead_code)] // faults.rs starts the EAL itself
pub fn run<V: Vdev>() {
    Eal::new().init().expect("EAL with the default arguments");
    conformance::run_all::<Dpdk<V>>();
}
