//! `cargo xtask`: everything that is not a library.
//!
//! - `cargo xtask test` — installs the system packages the backends need (apt, as root), then
//!   runs the whole test suite with the privileged network tests required to run.
//! - `cargo xtask lint` — `cargo fmt --check` and `cargo clippy -D warnings` over the workspace,
//!   then the public-API check of `cargo xtask api`.
//! - `cargo xtask api [--bless]` — the public API of every library crate (from rustdoc JSON,
//!   `RUSTC_BOOTSTRAP=1` on the stable toolchain) against its snapshot `api/CRATE.txt`: fails
//!   naming the added (`+`) and removed (`-`) lines; `--bless` rewrites the snapshots after an
//!   intended change (then review `git diff api/`). See [`api`].
//! - `cargo xtask demo` — two namespaces joined by a veth pair, `nethuns-gen` in one and
//!   `nethuns-meter` in the other for every backend compiled in; a table of achieved rates and
//!   the engine's drops.
//! - `cargo xtask bench [--cost]` — the benchmarks: nethuns against the raw engines, in
//!   user-space instructions per packet (callgrind) and in veth rates.
//! - `cargo xtask test-hw` — the lab tests on real NICs (see `cargo xtask test-hw --help`).
//! - `cargo xtask test-vm` — the lab tests inside a QEMU guest with emulated NICs (see
//!   `cargo xtask test-vm --help`).
//! - `cargo xtask fuzz [--seconds N] [TARGET...]` — every cargo-fuzz target of `fuzz/` for N
//!   seconds (default 60), failing on any crash; see [`fuzz`].
//! - `cargo xtask sanitize` — the whole test suite under AddressSanitizer and LeakSanitizer;
//!   see [`sanitize`].

mod api;
mod bench;
mod demo;
mod deps;
mod fuzz;
mod sanitize;
mod test_hw;
mod test_vm;
mod util;

use std::process::ExitCode;

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  test [--allow-skip] [--no-install] [-- <cargo test args>]
                  install what the backends need, then run every test this machine can run,
                  including the root-only network tests (fails if they cannot run, unless
                  --allow-skip)
  lint            cargo fmt --check, cargo clippy --workspace --all-targets -D warnings,
                  then the public-API check (cargo xtask api)
  api [--bless]   compare each library crate's public API (rustdoc JSON) with api/CRATE.txt,
                  listing added (+) and removed (-) items; --bless rewrites the snapshots
  demo [--seconds S] [--size BYTES]
                  nethuns-gen -> nethuns-meter across a veth pair for every backend compiled in
  bench [--quick] [--cost]
                  benchmarks against the raw engines: the instruction cost under callgrind,
                  then the veth rates (tables + SVGs in results/, README section); --cost:
                  the instruction cost only (about two minutes)
  test-hw ...     lab tests on real NICs (cargo xtask test-hw --help)
  test-vm ...     lab tests inside a QEMU guest with emulated NICs (cargo xtask test-vm --help)
  fuzz [--seconds N] [TARGET...]
                  each cargo-fuzz target of fuzz/ for N seconds (default 60): replays the
                  saved crash inputs and seeds, fails on a crash naming its input; prints
                  executions per target and writes results/fuzz.json
  sanitize [--allow-skip] [--no-install] [-- <cargo test args>]
                  the whole test suite (network tests included, doc tests not) under
                  AddressSanitizer with LeakSanitizer, in its own target dir; the soaks
                  with 200000 frames per backend
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{HELP}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let r = match cmd.as_str() {
        "test" => util::test(rest),
        "lint" => util::lint(),
        "api" => api::run(rest),
        "demo" => demo::run(rest),
        "bench" => bench::run(rest),
        "fuzz" => fuzz::run(rest),
        "sanitize" => sanitize::run(rest),
        "test-hw" => {
            if rest.iter().any(|a| a == "--help" || a == "-h") {
                print!("{}", test_hw::HELP);
                Ok(())
            } else {
                test_hw::run(rest)
            }
        }
        "test-vm" if rest.iter().any(|a| a == "--help" || a == "-h") => {
            print!("{}", test_vm::HELP);
            Ok(())
        }
        "test-vm" => test_vm::run(rest),
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{HELP}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
