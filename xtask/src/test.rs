//! `cargo xtask test`: the whole test suite, network tests included; [`run_suite`] also runs
//! it for `cargo xtask sanitize`.

use crate::util::{cargo, root};

/// The options of `test` and `sanitize`.
#[derive(clap::Args, Debug)]
pub struct SuiteArgs {
    /// When not root, run only what needs no privilege (the network tests print SKIPPED)
    /// instead of failing.
    #[arg(long)]
    pub allow_skip: bool,
    /// Do not install missing system packages: fail naming them.
    #[arg(long)]
    pub no_install: bool,
    /// Passed to the test binaries (after `cargo test … --`), e.g. a test name filter.
    #[arg(last = true, value_name = "TEST-ARGS")]
    pub test_args: Vec<String>,
}

/// Checks that this machine can make network namespaces and veth pairs.
fn check_netns() -> Result<(), String> {
    let pair = nethuns_testnet::NetPair::new("xtaskprobe", Default::default())
        .map_err(|e| format!("cannot create network namespaces and veth pairs: {e}"))?;
    drop(pair);
    Ok(())
}

/// How [`run_suite`] runs the test suite.
pub struct Suite<'a> {
    /// The command's name in messages (`test`, `sanitize`).
    pub name: &'a str,
    /// The command line's options.
    pub args: &'a SuiteArgs,
    /// Arguments for `cargo test` after `test` (e.g. `--target TRIPLE`).
    pub cargo_args: &'a [&'a str],
    /// Extra environment of `cargo test` (e.g. `RUSTFLAGS`).
    pub envs: Vec<(&'a str, String)>,
    /// Frames per backend of the conformance suite's soak (and the AF_XDP soak).
    pub soak_packets: u64,
    /// Whether to run the doc tests too.
    pub doc: bool,
}

/// `cargo xtask test`.
pub fn run(args: &SuiteArgs) -> Result<(), String> {
    run_suite(Suite {
        name: "test",
        args,
        cargo_args: &[],
        envs: vec![],
        // The full soak (1M packets a backend; ~25 s each in debug).
        soak_packets: 1_000_000,
        doc: true,
    })
}

/// Runs the whole test suite as `suite` says: installs the system packages, requires root
/// (or `--allow-skip`), checks that namespaces can be made, runs every target of the
/// workspace, prints the conformance table, and fails if a test failed or left a namespace.
pub fn run_suite(suite: Suite) -> Result<(), String> {
    let args = suite.args;
    crate::deps::ensure(!args.no_install)?;
    let soak = suite.soak_packets.to_string();
    let mut envs: Vec<(&str, &str)> = suite.envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if nethuns_testnet::is_root() {
        check_netns()?;
        envs.push(("NETHUNS_REQUIRE_NET", "1"));
        envs.push((nethuns_testnet::soak::PACKETS_ENV, soak.as_str()));
        envs.push(("NETHUNS_AFXDP_SOAK_PACKETS", soak.as_str()));
    } else if args.allow_skip {
        eprintln!(
            "xtask {}: not root: the network tests will print SKIPPED and not run",
            suite.name
        );
    } else {
        return Err(
            "the network tests need root (network namespaces, raw sockets, XDP); \
             run as root, or pass --allow-skip to run only what needs no privilege"
                .into(),
        );
    }
    nethuns_testnet::cleanup_stale();
    let before = nethuns_testnet::our_namespaces();
    let log = root().join("target").join(match suite.name {
        "test" => "conformance.log".to_string(),
        other => format!("conformance-{other}.log"),
    });
    let _ = std::fs::create_dir_all(root().join("target"));
    let _ = std::fs::remove_file(&log);
    let log_s = log.to_string_lossy().into_owned();
    envs.push((nethuns_testnet::conformance::LOG_ENV, log_s.as_str()));
    let mut cargs = vec!["test"];
    cargs.extend_from_slice(suite.cargo_args);
    cargs.extend([
        "--workspace",
        "--all-features",
        "--all-targets",
        "--no-fail-fast",
    ]);
    if !args.test_args.is_empty() {
        cargs.push("--");
        cargs.extend(args.test_args.iter().map(String::as_str));
    }
    let r = cargo(&cargs, &envs);
    // Doc tests are not part of --all-targets.
    let d = if suite.doc {
        cargo(&["test", "--workspace", "--all-features", "--doc"], &envs)
    } else {
        Ok(())
    };
    match std::fs::read_to_string(&log) {
        Ok(l) => println!(
            "\nconformance (case × backend):\n\n{}",
            nethuns_testnet::conformance::table(&l)
        ),
        Err(_) => println!("\nconformance: no case ran (log {} missing)", log.display()),
    }
    let left: Vec<String> = nethuns_testnet::our_namespaces()
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    r?;
    d?;
    if !left.is_empty() {
        return Err(format!("tests left network namespaces behind: {left:?}"));
    }
    Ok(())
}
