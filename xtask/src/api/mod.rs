//! `cargo xtask api [--bless]`: the public-API snapshot of every library crate.
//!
//! For each crate of [`CRATES`], rustdoc writes its JSON description
//! (`RUSTC_BOOTSTRAP=1 cargo rustdoc -p CRATE --all-features -- -Z unstable-options
//! --output-format json`, which works on a stable toolchain) into the shared target directory,
//! and [`render`] turns it into a sorted list of lines, one per public item reachable from the
//! crate root: modules, re-exports, types with their public fields and variants, traits with
//! their items, functions and inherent methods with their signatures, and the traits each type
//! implements (auto traits included, blanket impls left out). The list is compared with
//! `api/CRATE.txt`:
//!
//! - `cargo xtask api` (and `cargo xtask lint`) fail on a difference, naming each added (`+`)
//!   and removed (`-`) line;
//! - `cargo xtask api --bless` rewrites the snapshots after an intended change (review the
//!   diff with `git diff api/`).
//!
//! Lines name an item by the path a user writes (`nethuns_netmap::Sock::tx_pending`), never by
//! the private module that defines it. Inside signatures, a type of the same crate is named by
//! its name alone and a foreign type by its full definition path; a re-export of a foreign item
//! is one `use` line (its own items are in the snapshot of the crate that defines it).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::{cargo, root, target_dir};

mod json;
mod render;
mod signature;

pub use render::render;

/// The library crates whose public API is frozen.
pub const CRATES: &[&str] = &[
    "nethuns-core",
    "nethuns-sys-linux",
    "nethuns-pcap",
    "nethuns-afpacket",
    "nethuns-afxdp",
    "nethuns-netmap",
    "nethuns-dpdk",
    "nethuns-tokio",
    "nethuns",
    "nethuns-testnet",
];

/// `cargo xtask api`'s options.
#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// Rewrite the snapshots after an intended change (then review `git diff api/`).
    #[arg(long)]
    pub bless: bool,
}

/// `cargo xtask api [--bless]`.
pub fn run(args: &ApiArgs) -> Result<(), String> {
    if args.bless {
        self::bless()
    } else {
        check()
    }
}

/// Compares every crate's API with its snapshot; fails naming the lines that differ.
pub fn check() -> Result<(), String> {
    let mut report = String::new();
    for krate in CRATES {
        let now = current(krate)?;
        let file = snapshot_path(krate);
        let old = std::fs::read_to_string(&file).unwrap_or_default();
        let old: BTreeSet<&str> = old.lines().filter(|l| !l.is_empty()).collect();
        let now_set: BTreeSet<&str> = now.lines().collect();
        let removed: Vec<&&str> = old.difference(&now_set).collect();
        let added: Vec<&&str> = now_set.difference(&old).collect();
        if removed.is_empty() && added.is_empty() {
            continue;
        }
        report.push_str(&format!(
            "\n{krate}: public API differs from api/{krate}.txt ({} added, {} removed)\n",
            added.len(),
            removed.len()
        ));
        for l in removed {
            report.push_str(&format!("- {l}\n"));
        }
        for l in added {
            report.push_str(&format!("+ {l}\n"));
        }
    }
    if report.is_empty() {
        println!("public API: {} crates match api/*.txt", CRATES.len());
        Ok(())
    } else {
        Err(format!(
            "public API changed:{report}\nIf the change is intended: cargo xtask api --bless \
             (then review git diff api/)"
        ))
    }
}

/// Rewrites every crate's snapshot.
pub fn bless() -> Result<(), String> {
    let dir = root().join("api");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for krate in CRATES {
        let now = current(krate)?;
        let file = snapshot_path(krate);
        std::fs::write(&file, now).map_err(|e| format!("writing {}: {e}", file.display()))?;
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn snapshot_path(krate: &str) -> PathBuf {
    root().join("api").join(format!("{krate}.txt"))
}

/// The API of `krate` as built now: rustdoc JSON, rendered.
fn current(krate: &str) -> Result<String, String> {
    cargo(
        &[
            "rustdoc",
            "--quiet",
            "-p",
            krate,
            "--all-features",
            "--",
            "-Z",
            "unstable-options",
            "--output-format",
            "json",
        ],
        &[("RUSTC_BOOTSTRAP", "1")],
    )?;
    let file = target_dir()
        .join("doc")
        .join(format!("{}.json", krate.replace('-', "_")));
    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", file.display()))?;
    let lines = render(&doc).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = String::new();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
