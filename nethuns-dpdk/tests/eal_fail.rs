//! A failed EAL initialisation is reported with DPDK's error and remembered (DPDK cannot
//! initialise twice): its own process, one #[test].

use nethuns_dpdk::{DpdkError, DpdkFlags, Eal, Error, Sock, Socket};

#[test]
fn eal_failure_is_reported_and_remembered() {
    let e = Eal::new().arg("--no-such-eal-option").init().unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("dpdk: EAL initialisation"), "{s}");
    assert!(s.contains("--no-such-eal-option"), "{s}");
    assert_eq!(
        e.engine_source::<DpdkError>().map(|d| d.code),
        Some(libc::EINVAL),
        "{s}"
    );
    // Sockets get the same failure, never a panic or a second rte_eal_init.
    match Sock::create("net_null0", None, DpdkFlags::default()) {
        Err(Error::Engine { context, .. }) => {
            assert!(context.contains("failed earlier"), "{context}")
        }
        other => panic!("{other:?}"),
    }
}
