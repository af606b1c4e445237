//! Bad flags, bad portspecs and requests the kernel refuses: each a clear error, never a panic.
#![cfg(target_os = "linux")]

mod common;

use nethuns_afxdp::{
    AfXdpFlags, Error, Sock, Socket, XDP_COPY, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_ZEROCOPY,
};
use nethuns_testnet::{NetPair, PairOptions};

fn field_of(r: nethuns_afxdp::Result<Sock>) -> &'static str {
    match r {
        Err(Error::InvalidFlag { field, .. }) => field,
        Err(e) => panic!("expected InvalidFlag, got {e}"),
        Ok(_) => panic!("expected InvalidFlag, got a socket"),
    }
}

fn os_err(r: nethuns_afxdp::Result<Sock>) -> (String, i32) {
    match r {
        Err(e @ Error::Os { .. }) => {
            let errno = e.raw_os_error().unwrap();
            eprintln!("error: {e}");
            (e.to_string(), errno)
        }
        Err(e) => panic!("expected Os, got {e}"),
        Ok(_) => panic!("expected an error, got a socket"),
    }
}

/// Flags are checked before anything touches the kernel: a bad field is reported even for an
/// interface that does not exist, and without privileges.
#[test]
fn bad_flags_name_their_field_before_the_kernel() {
    let d = AfXdpFlags::default;
    let cases = [
        (
            AfXdpFlags {
                frame_size: 1000,
                ..d()
            },
            "frame_size",
        ),
        (
            AfXdpFlags {
                tx_size: 1000,
                ..d()
            },
            "tx_size",
        ),
        (AfXdpFlags { rx_size: 0, ..d() }, "rx_size"),
        (
            AfXdpFlags {
                num_frames: 3000,
                ..d()
            },
            "num_frames",
        ),
        (
            AfXdpFlags {
                num_frames: 1024,
                ..d()
            },
            "num_frames",
        ),
        (
            AfXdpFlags {
                bind_flags: XDP_COPY | XDP_ZEROCOPY,
                ..d()
            },
            "bind_flags",
        ),
        (
            AfXdpFlags {
                bind_flags: 1,
                ..d()
            },
            "bind_flags",
        ),
        (
            AfXdpFlags {
                xdp_flags: 0x40,
                ..d()
            },
            "xdp_flags",
        ),
        (
            AfXdpFlags {
                xdp_flags: XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE,
                ..d()
            },
            "xdp_flags",
        ),
    ];
    for (f, want) in cases {
        assert_eq!(
            field_of(Sock::create("nosuchif0", None, f.clone())),
            want,
            "{f:?}"
        );
    }
}

#[test]
fn bad_portspecs_are_refused() {
    for spec in [
        "",
        "a/b",
        "eth 0",
        "netmap:eth0",
        "averyveryverylongname",
        "..",
    ] {
        match Sock::create(spec, None, AfXdpFlags::default()) {
            Err(Error::InvalidPortspec { spec: s, reason }) => {
                assert_eq!(s, spec);
                assert!(!reason.is_empty());
            }
            Err(e) => panic!("{spec:?}: expected InvalidPortspec, got {e}"),
            Ok(_) => panic!("{spec:?}: accepted"),
        }
    }
}

#[test]
fn missing_interface_names_it_and_errno() {
    if !nethuns_testnet::require("missing_interface", "root", nethuns_testnet::is_root()) {
        return;
    }
    let (msg, errno) = os_err(Sock::create("nosuchif0", Some(2), AfXdpFlags::default()));
    assert_eq!(errno, libc::ENODEV, "{msg}");
    assert!(
        msg.contains("nosuchif0") && msg.contains("queue 2"),
        "{msg}"
    );
}

#[test]
fn queue_the_device_lacks() {
    let Some(pair) = NetPair::for_test("badqueue") else {
        return;
    };
    let r = pair.in_a(|| Sock::create(&pair.veth_a, Some(5), AfXdpFlags::default()));
    let (msg, errno) = os_err(r);
    assert_eq!(errno, libc::EINVAL, "{msg}");
    assert!(
        msg.contains(&pair.veth_a) && msg.contains("queue 5"),
        "{msg}"
    );
    assert!(msg.contains("has 1 queue"), "{msg}");
    assert!(
        !common::xdp_attached(&pair, true),
        "a failed create leaves no program"
    );
}

#[test]
fn zero_copy_on_veth_is_refused_clearly() {
    let Some(pair) = NetPair::for_test("zerocopy") else {
        return;
    };
    let f = AfXdpFlags {
        xdp_flags: XDP_FLAGS_DRV_MODE,
        bind_flags: XDP_ZEROCOPY,
        ..AfXdpFlags::default()
    };
    let (msg, errno) = os_err(pair.in_a(|| Sock::create(&pair.veth_a, None, f)));
    assert!(
        msg.contains("zero-copy") && msg.contains(&pair.veth_a) && msg.contains("queue 0"),
        "{msg}"
    );
    assert!(msg.contains("os error"), "{msg} ({errno})");
    // The kernel's own word: the driver by name, and no zero-copy in its XDP features.
    let features = pair
        .in_a(|| nethuns_afxdp::xdp_features(&pair.veth_a))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!features.zero_copy() && features.native(), "{features:?}");
    assert_eq!(
        pair.in_a(|| nethuns_afxdp::driver_name(&pair.veth_a))
            .as_deref(),
        Some("veth")
    );
    assert!(
        msg.contains("driver veth on Linux") && msg.contains("has no AF_XDP zero-copy"),
        "{msg}"
    );
    assert!(!common::xdp_attached(&pair, true));
}

#[test]
fn frame_size_too_small_for_mtu() {
    // MTU 40000: more than 18 frames of 2048 bytes (the most one multi-buffer frame spans);
    // the error names the frame_size that works, and that one opens.
    let Some(pair) = NetPair::for_test_with(
        "bigmtu",
        PairOptions {
            queues: 1,
            mtu: 40_000,
        },
    ) else {
        return;
    };
    let r = pair.in_a(|| Sock::create(&pair.veth_a, None, AfXdpFlags::default()));
    let msg = match &r {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    };
    assert_eq!(field_of(r), "frame_size");
    assert!(msg.contains("use frame_size 4096"), "{msg}");
    let f = AfXdpFlags {
        frame_size: 4096,
        ..AfXdpFlags::default()
    };
    pair.in_a(|| Sock::create(&pair.veth_a, None, f)).unwrap();
}

#[test]
fn mixed_modes_on_one_interface_are_refused() {
    let Some(pair) = NetPair::for_test_with(
        "mixmode",
        PairOptions {
            queues: 2,
            mtu: 1500,
        },
    ) else {
        return;
    };
    let skb = AfXdpFlags::default();
    let drv = AfXdpFlags {
        xdp_flags: XDP_FLAGS_DRV_MODE,
        ..AfXdpFlags::default()
    };
    let _s0 = pair
        .in_a(|| Sock::create(&pair.veth_a, Some(0), skb))
        .unwrap();
    assert_eq!(
        field_of(pair.in_a(|| Sock::create(&pair.veth_a, Some(1), drv))),
        "xdp_flags"
    );
}

#[test]
fn two_sockets_on_one_queue_are_refused() {
    let Some(pair) = NetPair::for_test("samequeue") else {
        return;
    };
    let _s0 = pair
        .in_a(|| Sock::create(&pair.veth_a, Some(0), AfXdpFlags::default()))
        .unwrap();
    let (msg, errno) =
        os_err(pair.in_a(|| Sock::create(&pair.veth_a, Some(0), AfXdpFlags::default())));
    assert_eq!(errno, libc::EBUSY, "{msg}");
    assert!(msg.contains("queue 0"), "{msg}");
}

/// Without capabilities (the effective set of this thread emptied) the socket cannot be made.
#[test]
fn without_capabilities_the_error_says_so() {
    let Some(pair) = NetPair::for_test("nocaps") else {
        return;
    };
    let r = pair.in_a(|| {
        drop_effective_caps();
        Sock::create(&pair.veth_a, None, AfXdpFlags::default())
    });
    let (msg, errno) = os_err(r);
    assert_eq!(errno, libc::EPERM, "{msg}");
    assert!(
        msg.contains("CAP_NET_RAW") && msg.contains(&pair.veth_a),
        "{msg}"
    );
}

/// Empties the calling thread's effective capability set (capset acts per thread).
fn drop_effective_caps() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // The capget/capset pair, read as one.
    #[allow(clippy::multiple_unsafe_ops_per_block)]
    // SAFETY: capget/capset with a v3 header and two data structs, as the ABI requires.
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()), 0);
        d[0].effective = 0;
        d[1].effective = 0;
        assert_eq!(libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()), 0);
    }
}
