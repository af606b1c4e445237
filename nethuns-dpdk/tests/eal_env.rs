//! The EAL arguments come from NETHUNS_DPDK_EAL_ARGS when no `Eal` was initialised: its own
//! process (one EAL per process), one #[test].

use nethuns_dpdk::{eal, DpdkFlags, Eal, Error, Sock, Socket, EAL_ARGS_ENV};

#[test]
fn eal_args_from_env() {
    let mut args = Eal::default_args();
    args.push("--no-hpet".into());
    std::env::set_var(EAL_ARGS_ENV, args.join(" "));
    assert!(!eal::is_initialized());
    let sock = Sock::create("net_null0", None, DpdkFlags::default()).unwrap();
    assert!(eal::is_initialized());
    assert_eq!(eal::current_args().unwrap(), args);
    // A second socket reuses the EAL.
    let sock2 = Sock::create("net_null1", None, DpdkFlags::default()).unwrap();
    assert_ne!(sock.port_id(), sock2.port_id());
    assert!(sock2.recv().is_ok() || matches!(sock2.recv(), Err(Error::NoPacket)));
}
