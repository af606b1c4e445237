//! The DPDK portspec parser (`0000:01:00.0`, `net_af_packet0,iface=veth0`, …), which needs no
//! EAL: any string is parsed without a panic, and a parsed spec's devargs parse back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nethuns_dpdk::PortSpec;

fuzz_target!(|spec: &str| {
    let Ok(p) = PortSpec::parse(spec) else {
        return;
    };
    let devargs = p.devargs();
    let again = PortSpec::parse(&devargs)
        .unwrap_or_else(|e| panic!("{spec:?} parsed, its devargs {devargs:?} do not: {e}"));
    assert_eq!(
        again.devargs(),
        devargs,
        "devargs of {spec:?} are not stable"
    );
    assert_eq!(again.kind, p.kind);
    let _ = (p.iface(), p.bus());
});
