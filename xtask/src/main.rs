//! `cargo xtask`: everything that is not a library. One module per command; the command line
//! is the [`Command`] enum (`cargo xtask help` lists it, `cargo xtask COMMAND --help` says
//! more).

mod api;
mod backends;
mod bench;
mod demo;
mod deps;
mod fence;
mod fuzz;
mod lint;
mod sanitize;
mod test;
mod test_hw;
mod test_vm;
mod util;

use std::process::ExitCode;

use clap::Parser;

/// nethuns orchestration: tests, lint, API snapshots, demo, benchmarks, lab tests, fuzzing,
/// sanitizers.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Install what the backends need (apt, as root), then run every test this machine can
    /// run, the root-only network tests included (fails if they cannot run, unless
    /// --allow-skip).
    Test(test::SuiteArgs),
    /// `cargo fmt --check`, `cargo clippy --workspace --all-targets -D warnings`, the unsafe
    /// fence (`cargo xtask fence`), then the public-API check (`cargo xtask api`).
    Lint,
    /// The unsafe fence: counts `unsafe` outside sys.rs, abi.rs, nethuns-sys-linux, dpdk-sys
    /// and core's free list, and fails on a file its crate docs do not name.
    Fence,
    /// Compare each library crate's public API (rustdoc JSON) with api/CRATE.txt, listing
    /// added (+) and removed (-) items; --bless rewrites the snapshots.
    Api(api::ApiArgs),
    /// nethuns-gen -> nethuns-meter across a veth pair for every backend that can run here.
    Demo(demo::DemoArgs),
    /// Benchmarks against the raw engines: the instruction cost under callgrind, then the
    /// veth rates (tables + SVGs in results/, README section).
    Bench(bench::BenchArgs),
    /// Lab tests on real NICs (netmap, AF_XDP zero-copy, DPDK on PCI).
    #[command(after_long_help = test_hw::HELP)]
    TestHw(test_hw::HwArgs),
    /// Lab tests inside a QEMU guest with emulated NICs.
    #[command(after_long_help = test_vm::HELP)]
    TestVm(test_vm::VmArgs),
    /// Each cargo-fuzz target of fuzz/ for N seconds: replays the saved crash inputs and
    /// seeds, fails on a crash naming its input; prints executions per target and writes
    /// results/fuzz.json.
    Fuzz(fuzz::FuzzArgs),
    /// The whole test suite (network tests included, doc tests not) under AddressSanitizer
    /// with LeakSanitizer, in its own target dir; the soaks with 200000 frames per backend.
    Sanitize(test::SuiteArgs),
}

impl Command {
    fn run(&self) -> Result<(), String> {
        match self {
            Command::Test(a) => test::run(a),
            Command::Lint => lint::run(),
            Command::Fence => fence::check(),
            Command::Api(a) => api::run(a),
            Command::Demo(a) => demo::run(a),
            Command::Bench(a) => bench::run(a),
            Command::TestHw(a) => test_hw::run(a),
            Command::TestVm(a) => test_vm::run(a),
            Command::Fuzz(a) => fuzz::run(a),
            Command::Sanitize(a) => sanitize::run(a),
        }
    }

    /// The command's name in error messages.
    fn name(&self) -> &'static str {
        match self {
            Command::Test(_) => "test",
            Command::Lint => "lint",
            Command::Fence => "fence",
            Command::Api(_) => "api",
            Command::Demo(_) => "demo",
            Command::Bench(_) => "bench",
            Command::TestHw(_) => "test-hw",
            Command::TestVm(_) => "test-vm",
            Command::Fuzz(_) => "fuzz",
            Command::Sanitize(_) => "sanitize",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {}: {e}", cli.command.name());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The invocations of .ci/run, ci/*.sh and the README.
    #[test]
    fn every_documented_invocation_parses() {
        for args in [
            &["test"][..],
            &["test", "--allow-skip", "--no-install", "--", "conformance"],
            &["lint"],
            &["fence"],
            &["api"],
            &["api", "--bless"],
            &["demo"],
            &["demo", "--seconds", "1", "--size", "1500"],
            &["bench"],
            &["bench", "--quick"],
            &["bench", "--cost"],
            &["bench", "--cost", "--backend", "af-xdp,dpdk"],
            &["test-hw", "--iface", "eth1", "--dry-run"],
            &["test-vm"],
            &[
                "test-vm",
                "--only",
                "af-xdp",
                "--timeout",
                "600",
                "--",
                "lab_",
            ],
            &["fuzz", "--seconds", "60"],
            &["fuzz", "savefile", "flags"],
            &["sanitize", "--no-install"],
        ] {
            assert!(
                parse(args).is_ok(),
                "{args:?}: {}",
                parse(args).unwrap_err()
            );
        }
        match parse(&["bench", "--cost", "--backend", "af-xdp,dpdk"]).unwrap() {
            Command::Bench(b) => {
                assert!(b.cost);
                assert_eq!(
                    b.backend,
                    vec![backends::Backend::AfXdp, backends::Backend::Dpdk]
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&["test", "--", "a", "--nocapture"]).unwrap() {
            Command::Test(t) => assert_eq!(t.test_args, ["a", "--nocapture"]),
            other => panic!("{other:?}"),
        }
        for bad in [
            &["bench", "--backend", "bogus"][..],
            &["fuzz", "--seconds", "0"],
            &["test-vm", "--only", "bogus"],
            &["frobnicate"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
