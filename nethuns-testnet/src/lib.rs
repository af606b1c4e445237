//! # nethuns-testnet
//!
//! Test support for nethuns: a pair of network namespaces joined by a veth pair, created with
//! unique names, torn down on drop (also when the test panics), and a way to run code inside
//! either namespace. Tests send raw Ethernet frames of the local experimental EtherType
//! `0x88B5` between the two ends: no addresses, nothing leaves the namespaces, and IPv6 is
//! disabled on both sides so the link carries only what the test sends.
//!
//! ```no_run
//! use nethuns_testnet::{frames, NetPair};
//!
//! let Some(pair) = NetPair::for_test("example") else { return };
//! let a = pair.veth_a.clone();
//! pair.in_a(move || {
//!     // open a socket on `a` here: it stays bound to that namespace's interface
//!     let _ = (a, frames::frame(0, 64));
//! });
//! ```
//!
//! The [`conformance`] module is the suite every backend instantiates (one behaviour, tested
//! once); [`peer::RawPeer`] is the plain AF_PACKET socket it uses as the other end.
//!
//! Privileged tests call [`NetPair::for_test`]: without root it prints why it skips and
//! returns `None`, except under CI (`CI` set) or `NETHUNS_REQUIRE_NET=1`, where it panics,
//! so a machine that should run the test never passes it silently.
//!
//! ## Where the unsafe code is
//! - `sys.rs`: `geteuid`, entering a namespace (`open` + `setns`), SIGTERM to a child.
//! - `peer.rs`: the raw AF_PACKET socket of [`peer::RawPeer`] (`socket`, `setsockopt`,
//!   `bind`, `sendto`, `recvmsg` and the walk of its control messages).
//! - `conformance.rs`: the double-release case, which calls the unsafe `Context::release` on
//!   purpose (the misuse the debug-build check must catch).

use std::ffi::CString;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub mod conformance;
pub mod faults;
pub mod frames;
pub mod io;
pub mod peer;
pub mod soak;
mod sys;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether the environment demands that privileged tests run (CI, or `NETHUNS_REQUIRE_NET=1`).
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
        || std::env::var("NETHUNS_REQUIRE_NET").is_ok_and(|v| v == "1")
}

/// Whether this process runs as root (euid 0).
pub fn is_root() -> bool {
    sys::euid() == 0
}

/// Decide whether a test needing `what` may run: `true` if the capability is present;
/// otherwise panics when [`required`], else prints a skip line naming the test and returns
/// `false`.
pub fn require(test: &str, what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if required() {
        panic!(
            "{test}: needs {what}, which this machine lacks, and CI/NETHUNS_REQUIRE_NET demands it"
        );
    }
    eprintln!("SKIPPED {test}: needs {what} (set NETHUNS_REQUIRE_NET=1 to make this a failure)");
    false
}

/// A deterministic pseudo-random `u64` stream (xorshift64) from `seed` (non-zero): the input of
/// the "arbitrary bytes never panic" checks of parsers, reproducible run after run.
pub fn pseudo_random(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.max(1);
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Runs a shell-free command, returning stdout or an error with the command line and stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `cmd args` inside namespace `ns` (`ip netns exec`).
pub fn run_in(ns: &str, cmd: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns, cmd];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Runs `f` on a new thread whose network namespace is `ns`, and returns its result.
/// Sockets opened inside stay bound to that namespace's interfaces wherever they are used.
/// Panics inside `f` propagate.
pub fn in_netns<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    let path = CString::new(format!("/run/netns/{ns}")).expect("namespace name without NUL");
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(e) = sys::enter_netns(&path) {
                panic!("entering the network namespace {path:?}: {e}");
            }
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Options for [`NetPair`].
#[derive(Clone, Debug)]
pub struct PairOptions {
    /// RX and TX queues of each veth end (AF_XDP multi-queue tests).
    pub queues: u32,
    /// MTU of both ends.
    pub mtu: u32,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            queues: 1,
            mtu: 1500,
        }
    }
}

/// Two network namespaces, `ns_a` and `ns_b`, joined by a veth pair (`veth_a` in `ns_a`,
/// `veth_b` in `ns_b`), both ends up, no addresses. Deleted on drop.
#[derive(Debug)]
pub struct NetPair {
    /// First namespace.
    pub ns_a: String,
    /// Second namespace.
    pub ns_b: String,
    /// The veth end inside `ns_a`.
    pub veth_a: String,
    /// The veth end inside `ns_b`.
    pub veth_b: String,
}

impl NetPair {
    /// A pair for test `test`, or `None` (with a printed reason) where this machine cannot make
    /// one and nothing demands it; panics under CI. See [`require`].
    pub fn for_test(test: &str) -> Option<NetPair> {
        Self::for_test_with(test, PairOptions::default())
    }

    /// [`NetPair::for_test`] with options.
    pub fn for_test_with(test: &str, opts: PairOptions) -> Option<NetPair> {
        if !require(test, "root (network namespaces and veth)", is_root()) {
            return None;
        }
        match NetPair::new(test, opts) {
            Ok(p) => Some(p),
            Err(e) => {
                if require(test, &format!("working netns + veth ({e})"), false) {
                    unreachable!()
                }
                None
            }
        }
    }

    /// Creates the namespaces and the veth pair. `tag` goes into the namespace names, to tell
    /// which test left them if a process is killed.
    pub fn new(tag: &str, opts: PairOptions) -> Result<NetPair, String> {
        cleanup_stale();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        let pair = NetPair {
            ns_a: format!("nethuns-{pid}-{n}-a-{tag}"),
            ns_b: format!("nethuns-{pid}-{n}-b-{tag}"),
            // IFNAMSIZ is 16: "nh" + pid (≤7) + n (≤4) + side = ≤ 15
            veth_a: format!("nh{pid}x{n}a"),
            veth_b: format!("nh{pid}x{n}b"),
        };
        // From here on, Drop removes whatever was made.
        for ns in [&pair.ns_a, &pair.ns_b] {
            run("ip", &["netns", "add", ns])?;
            run_in(
                ns,
                "sysctl",
                &[
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        let q = opts.queues.to_string();
        let mtu = opts.mtu.to_string();
        run(
            "ip",
            &[
                "link",
                "add",
                &pair.veth_a,
                "netns",
                &pair.ns_a,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "mtu",
                &mtu,
                "type",
                "veth",
                "peer",
                "name",
                &pair.veth_b,
                "netns",
                &pair.ns_b,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "mtu",
                &mtu,
            ],
        )?;
        for (ns, dev) in [(&pair.ns_a, &pair.veth_a), (&pair.ns_b, &pair.veth_b)] {
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    /// Runs `f` inside `ns_a`.
    pub fn in_a<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_netns(&self.ns_a, f)
    }

    /// Runs `f` inside `ns_b`.
    pub fn in_b<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_netns(&self.ns_b, f)
    }

    /// `ip -n NS args…` for side a.
    pub fn ip_a(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.ns_a.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip -n NS args…` for side b.
    pub fn ip_b(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.ns_b.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it the peer.
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// The inode of network namespace `ns` (`/run/netns/NS`): what identifies it once its name is
/// gone.
pub fn netns_inode(ns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/run/netns/{ns}"))
        .ok()
        .map(|m| m.ino())
}

/// What in this process still holds the network namespace of inode `ino`: its threads inside
/// it (`task TID (COMM)`) and its open file descriptors to it (`fd N`). Empty once nothing of
/// ours pins it, so that after `ip netns del` the kernel frees it with its interfaces.
pub fn netns_holders(ino: u64) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let target = format!("net:[{ino}]");
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = t.path();
        if std::fs::metadata(dir.join("ns/net")).is_ok_and(|m| m.ino() == ino) {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            out.push(format!(
                "task {} ({})",
                t.file_name().to_string_lossy(),
                comm.trim()
            ));
        }
    }
    for f in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        if std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy() == target) {
            out.push(format!("fd {}", f.file_name().to_string_lossy()));
        }
    }
    out
}

/// Names of the namespaces this harness made that still exist.
pub fn our_namespaces() -> Vec<String> {
    run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("nethuns-"))
        .map(str::to_owned)
        .collect()
}

/// Deletes namespaces left by harness processes that no longer run (killed tests).
pub fn cleanup_stale() {
    for ns in our_namespaces() {
        let pid: Option<u32> = ns.split('-').nth(1).and_then(|p| p.parse().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run("ip", &["netns", "del", &ns]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_created_and_removed() {
        let Some(pair) = NetPair::for_test("pair_is_created_and_removed") else {
            return;
        };
        let (a, b) = (pair.ns_a.clone(), pair.ns_b.clone());
        let links = pair.ip_a(&["-o", "link", "show", &pair.veth_a]).unwrap();
        assert!(links.contains("UP"), "{links}");
        let ifindex = pair.in_b(|| nethuns_sys_linux::netdev::if_index(&pair.veth_b).unwrap_or(0));
        assert!(ifindex > 0, "veth_b must be visible inside ns_b");
        drop(pair);
        let left = our_namespaces();
        assert!(!left.contains(&a) && !left.contains(&b), "{left:?}");
    }

    #[test]
    fn pair_is_removed_on_panic() {
        let Some(pair) = NetPair::for_test("pair_is_removed_on_panic") else {
            return;
        };
        let a = pair.ns_a.clone();
        let r = std::panic::catch_unwind(move || {
            let _p = pair;
            panic!("test failure");
        });
        assert!(r.is_err());
        assert!(!our_namespaces().contains(&a));
    }
}
