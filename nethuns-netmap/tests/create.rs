//! `Sock::create` on this machine: bad input is refused before any syscall, and without the
//! netmap module the error says so (never a panic).

#![cfg(any(target_os = "linux", target_os = "freebsd"))]

use nethuns_netmap::{netmap_available, Error, NetmapFlags, Sock, Socket};

#[test]
fn bad_portspec_is_refused_with_reason() {
    for (spec, want) in [
        ("eth0", "expected `netmap:IFNAME`"),
        ("netmap:", "empty"),
        ("netmap:eth0-", "ring number"),
        ("vale0:p^", "host rings"),
    ] {
        match Sock::create(spec, None, NetmapFlags::default()) {
            Err(e @ Error::InvalidPortspec { .. }) => {
                assert!(e.to_string().contains(want), "{spec}: {e}")
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
    match Sock::create("netmap:eth0-1", Some(2), NetmapFlags::default()) {
        Err(e @ Error::InvalidPortspec { .. }) => {
            assert!(e.to_string().contains("queue 2 contradicts ring 1"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn zero_extra_buffers_is_refused() {
    match Sock::create("netmap:lo", None, NetmapFlags { extra_buf: 0 }) {
        Err(Error::InvalidFlag { field, reason }) => {
            assert_eq!(field, "extra_buf");
            assert!(reason.contains("at least 1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_the_module_create_says_it_is_not_loaded() {
    if netmap_available() {
        eprintln!("SKIPPED: /dev/netmap exists here; the lab tests cover this machine");
        return;
    }
    for spec in ["netmap:lo", "vale0:p1", "netmap:eth0^"] {
        match Sock::create(spec, Some(0), NetmapFlags::default()) {
            Err(Error::Unsupported(msg)) => {
                assert!(msg.contains("netmap kernel module is not loaded"), "{msg}");
                assert!(msg.contains("/dev/netmap"), "{msg}");
                assert!(msg.contains(&spec.replace("^", "^0")), "{msg}");
            }
            other => panic!("{spec}: expected Unsupported, got {other:?}"),
        }
    }
}
