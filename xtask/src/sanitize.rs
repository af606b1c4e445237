//! `cargo xtask sanitize`: the whole test suite, network tests included, under
//! AddressSanitizer with LeakSanitizer on.
//!
//! `RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Zsanitizer=address cargo test --target TRIPLE` in its own
//! target directory (`TARGET_DIR/sanitize`; `--target` keeps build scripts and proc macros
//! uninstrumented). The Rust code of every crate is instrumented; the C libraries (libpcap,
//! DPDK) are not, but their allocations go through ASan's malloc, so LeakSanitizer sees what
//! they leak: once-per-process allocations they never free are suppressed in `ci/lsan.supp`,
//! each entry with its reason. Doc tests are left out (rustdoc would need its own sanitizer
//! flags for every doctest binary, and they test documentation, not memory). A leak, an
//! out-of-bounds access, a use after free or a double free fails the test that did it, and
//! with it the command.
//!
//! The soaks run with fewer packets than under `cargo xtask test` ([`SOAK_PACKETS`] per
//! backend): ASan makes every access several times slower, and what it checks (every buffer
//! touched, every allocation freed) does not need a million packets to show.

use crate::test::{run_suite, Suite, SuiteArgs};
use crate::util::root;

/// Frames per backend of the soaks under ASan.
pub const SOAK_PACKETS: u64 = 200_000;

/// The host triple (the sanitizer needs an explicit `--target`).
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo xtask sanitize`.
pub fn run(args: &SuiteArgs) -> Result<(), String> {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        return Err(format!(
            "sanitize runs on x86_64 Linux only (AddressSanitizer for {TARGET})"
        ));
    }
    let target_dir = crate::util::target_dir().join("sanitize");
    let supp = root().join("ci").join("lsan.supp");
    if !supp.is_file() {
        return Err(format!("{} is missing", supp.display()));
    }
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(f) if !f.trim().is_empty() => format!("{f} -Zsanitizer=address"),
        _ => "-Zsanitizer=address".to_string(),
    };
    let envs = vec![
        ("RUSTC_BOOTSTRAP", "1".to_string()),
        ("RUSTFLAGS", rustflags),
        // Tests that measure resident memory skip that bound (ASan's quarantine keeps it).
        ("NETHUNS_SANITIZER", "address".to_string()),
        (
            "CARGO_TARGET_DIR",
            target_dir.to_string_lossy().into_owned(),
        ),
        (
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0".to_string(),
        ),
        (
            "LSAN_OPTIONS",
            format!("suppressions={}:print_suppressions=0", supp.display()),
        ),
    ];
    run_suite(Suite {
        name: "sanitize",
        args,
        cargo_args: &["--target", TARGET],
        envs,
        soak_packets: SOAK_PACKETS,
        doc: false,
    })
}
