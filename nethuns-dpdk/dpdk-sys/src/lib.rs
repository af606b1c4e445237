//! # nethuns-dpdk-sys
//!
//! Raw FFI to the system DPDK for `nethuns-dpdk`: bindings generated at build time by bindgen
//! over the headers `pkg-config libdpdk` points to (only the items nethuns uses), plus a small C
//! shim (`nh_*` functions) that gives DPDK's static-inline fast-path functions
//! (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, `rte_errno` …) an address Rust can call. The
//! burst functions are also written out in Rust in [`inline`], to inline into a receive loop.
//!
//! Everything here is `unsafe` and documented by DPDK itself; use `nethuns-dpdk` for a safe API.
//!
//! Build needs: DPDK ≥ 21.11 development files (`apt-get install libdpdk-dev`), pkg-config, a C
//! compiler and libclang (`apt-get install clang libclang-dev`). At run time a shared DPDK loads
//! its poll-mode drivers from its driver directory (`dpdk` package on Debian), so PMDs are not
//! linked here. Without libdpdk this crate fails with one compile error naming the package.
//!
//! Building its documentation needs libdpdk too, except on docs.rs (`DOCS_RS` set), where the
//! build script uses bindings pre-generated from DPDK 22.11 on x86_64 Linux
//! (`src/docsrs_bindings.rs`, checked against a fresh build by this crate's tests) and
//! compiles nothing. To refresh them after a change to the build script:
//! `cp $CARGO_TARGET_DIR/debug/build/nethuns-dpdk-sys-*/out/bindings.rs
//! nethuns-dpdk/dpdk-sys/src/docsrs_bindings.rs` (from the newest build directory).

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(missing_docs, clippy::all, rustdoc::all)]
#![allow(unnecessary_transmutes)]

#[cfg(nethuns_no_dpdk)]
compile_error!(
    "nethuns-dpdk-sys: DPDK (pkg-config `libdpdk` >= 21.11) was not found at build time. \
     Install it with `apt-get install libdpdk-dev dpdk` (Debian/Ubuntu) or `dnf install dpdk-devel` \
     (Fedora), or point PKG_CONFIG_PATH at a DPDK build's lib/pkgconfig, then rebuild."
);

/// The generated bindings: bindgen writes no `// SAFETY:` comments and merges unsafe
/// operations in its accessors, so the workspace's two unsafe-block lints are off here only
/// (the hand-written [`inline`] keeps them).
#[cfg(not(nethuns_no_dpdk))]
#[allow(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}
#[cfg(not(nethuns_no_dpdk))]
pub use bindings::*;

#[cfg(not(nethuns_no_dpdk))]
pub mod inline;

/// The DPDK version the bindings were generated from (pkg-config's `libdpdk` version).
#[cfg(not(nethuns_no_dpdk))]
pub const DPDK_VERSION: &str = env!("NETHUNS_DPDK_VERSION");

#[cfg(all(test, not(nethuns_no_dpdk)))]
mod tests {
    /// The bindings docs.rs documents are the ones a build against DPDK 22.11 generates.
    #[test]
    fn docsrs_bindings_current() {
        if !super::DPDK_VERSION.starts_with("22.11") {
            println!(
                "docsrs_bindings_current: skipped, DPDK {} here (the file is from 22.11)",
                super::DPDK_VERSION
            );
            return;
        }
        let fresh = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));
        let kept = include_str!("docsrs_bindings.rs");
        assert!(
            fresh == kept,
            "src/docsrs_bindings.rs differs from the bindings of this build: copy \
             OUT_DIR/bindings.rs over it (see the crate docs)"
        );
    }
}
