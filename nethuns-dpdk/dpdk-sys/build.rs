//! Finds the system DPDK with pkg-config, generates bindings with bindgen for the few items
//! nethuns-dpdk uses, and compiles the C shim for DPDK's static-inline functions.
//!
//! Without `libdpdk` the crate still "builds" far enough to fail with one clear compile error
//! naming the package to install (see `cfg(nethuns_no_dpdk)` in lib.rs), never a bindgen or
//! linker backtrace.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "21.11";
const INSTALL_HINT: &str = "install DPDK's development files: `apt-get install libdpdk-dev` \
(Debian/Ubuntu; also `dpdk` for the PMD drivers), `dnf install dpdk-devel` (Fedora), or set \
PKG_CONFIG_PATH to a DPDK build's lib/pkgconfig";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nethuns_no_dpdk)");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=DOCS_RS");

    // docs.rs has no DPDK: document the bindings generated from DPDK 22.11 on x86_64 Linux
    // (src/docsrs_bindings.rs, kept equal to a fresh build's by the `docsrs_bindings_current`
    // test), with nothing compiled or linked.
    if env::var_os("DOCS_RS").is_some() {
        let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
        std::fs::copy("src/docsrs_bindings.rs", out.join("bindings.rs"))
            .expect("copy the pre-generated bindings to OUT_DIR");
        println!("cargo:rustc-env=NETHUNS_DPDK_VERSION=22.11 (pre-generated bindings, docs.rs)");
        return;
    }

    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            let first = e.to_string();
            let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("cargo:warning=nethuns-dpdk-sys: DPDK >= {MIN_VERSION} not found with pkg-config (libdpdk): {first}");
            println!("cargo:warning=nethuns-dpdk-sys: {INSTALL_HINT}");
            println!("cargo:rustc-cfg=nethuns_no_dpdk");
            return;
        }
    };

    // The exact compiler flags DPDK wants (include paths, `-include rte_config.h`, -march…):
    // the pkg-config crate keeps only include paths and defines, so ask pkg-config itself.
    let cflags = pkg_config_cflags();

    // Linking: every library libdpdk.pc names (the linker's --as-needed drops the unused).
    // Poll-mode drivers (net_ring, net_null, net_af_packet, net_af_xdp, PCI NICs) are not linked:
    // a shared DPDK build loads them at rte_eal_init from its driver directory.
    for path in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for l in &lib.libs {
        println!("cargo:rustc-link-lib={l}");
    }
    println!(
        "cargo:rustc-env=NETHUNS_DPDK_VERSION={}",
        lib.version.trim()
    );
    println!("cargo:version={}", lib.version.trim());

    let mut build = cc::Build::new();
    build.file("csrc/shim.c").include("csrc").warnings(true);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("nethuns_dpdk_shim");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let mut b = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(cflags.iter())
        .clang_arg("-Icsrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .size_t_is_usize(true)
        // Object-like macros built on function-like ones (`RTE_BIT64(n)`: the
        // RTE_ETH_RX_OFFLOAD_* and RTE_ETH_RSS_* bits) are evaluated by clang itself.
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(&out)
        .opaque_type("rte_mempool")
        .allowlist_type("rte_mbuf")
        .allowlist_type("nh_rx_info")
        .allowlist_type("nh_dev_info");
    for f in FUNCTIONS {
        b = b.allowlist_function(f);
    }
    for v in VARS {
        b = b.allowlist_var(v);
    }
    for t in TYPES {
        b = b.allowlist_type(t);
    }
    // bindgen panics (rather than erring) when libclang cannot be loaded: catch that quietly
    // and say which package is missing instead of a backtrace.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let generated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || b.generate()));
    std::panic::set_hook(hook);
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            eprintln!(
                "nethuns-dpdk-sys: bindgen failed on DPDK {} headers: {e}",
                lib.version
            );
            std::process::exit(1);
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("bindgen panicked");
            eprintln!(
                "nethuns-dpdk-sys: bindgen could not run: {msg}\n\
                 it needs libclang: `apt-get install libclang-dev clang` (or set LIBCLANG_PATH)"
            );
            std::process::exit(1);
        }
    };
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs to OUT_DIR");
}

fn pkg_config_cflags() -> Vec<String> {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&pc)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("nethuns-dpdk-sys: running `{pc} --cflags libdpdk`: {e}"));
    assert!(
        out.status.success(),
        "nethuns-dpdk-sys: `{pc} --cflags libdpdk` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    // `-include rte_config.h` is two words that must stay together in order.
    s.split_whitespace().map(str::to_owned).collect()
}

const FUNCTIONS: &[&str] = &[
    "nh_.*",
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_process_type",
    "rte_strerror",
    "rte_version",
    "rte_dev_probe",
    "rte_dev_remove",
    "rte_eal_hotplug_add",
    "rte_eal_hotplug_remove",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_configure",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_get_mtu",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_promiscuous_get",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_tx_done_cleanup",
    "nh_eth_dev_info",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_free_bulk",
    "rte_mbuf_dynfield_lookup",
    "rte_mbuf_dynflag_lookup",
    "rte_socket_id",
    "rte_eal_get_runtime_dir",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_dev_set_mtu",
    "rte_eth_call_rx_callbacks",
    "rte_eth_call_tx_callbacks",
];

const VARS: &[&str] = &[
    "RTE_MBUF_F_RX_.*",
    "RTE_MBUF_F_INDIRECT",
    "RTE_MBUF_F_EXTERNAL",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MEMPOOL_CACHE_MAX_SIZE",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_LCORE",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_ETHER_HDR_LEN",
    "RTE_ETHER_CRC_LEN",
    "RTE_ETHER_MAX_LEN",
    "RTE_ETH_RX_OFFLOAD_.*",
    "RTE_ETH_MQ_RX_.*",
    "RTE_ETH_RSS_.*",
    "RTE_MBUF_DYNFIELD_TIMESTAMP_NAME",
    "RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME",
    "SOCKET_ID_ANY",
    "rte_eth_fp_ops",
];

const TYPES: &[&str] = &[
    "rte_eth_conf",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_stats",
    "rte_eth_link",
    "rte_ether_addr",
    "rte_proc_type_t",
    "rte_eth_fp_ops",
];
