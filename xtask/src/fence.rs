//! The unsafe fence, part of `cargo xtask lint`: `unsafe` code belongs in a crate's `sys.rs`
//! (its syscalls and FFI calls, with its submodules under `sys/`) and `abi.rs` (its raw declarations), in the shared-memory crate
//! `nethuns-sys-linux`, the bindings crate `nethuns-dpdk-sys` and core's free list. Any other
//! source file with `unsafe` in its code (comments do not count) must be named in its crate's
//! docs, in the section `## Where the unsafe code is` of `lib.rs`, which says why it is there.
//! The check prints how many `unsafe` each crate has outside the fence, and fails on a file
//! the docs do not name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::root;

/// Files that are the fence, wherever they are.
const FENCE_FILES: &[&str] = &["sys.rs", "abi.rs"];
/// Crates that are the fence as a whole.
const FENCE_CRATES: &[&str] = &["nethuns-sys-linux", "nethuns-dpdk/dpdk-sys"];
/// Single files that are the fence.
const FENCE_PATHS: &[&str] = &["nethuns-core/src/freelist.rs"];
/// The heading of the crate-docs section that names the other places.
const SECTION: &str = "## Where the unsafe code is";

/// The crates the check reads besides the library crates of [`crate::api::CRATES`]: the
/// bindings crate and the tools' library.
const MORE_CRATES: &[&str] = &["nethuns-dpdk/dpdk-sys", "nethuns-tools"];

/// Runs the check over the workspace: prints the counts, fails on an unnamed file.
pub fn check() -> Result<(), String> {
    let root = root();
    let mut problems = Vec::new();
    println!(
        "unsafe outside the fence (sys.rs, abi.rs, nethuns-sys-linux, dpdk-sys, freelist.rs):"
    );
    for krate in crate::api::CRATES.iter().chain(MORE_CRATES) {
        let dir = root.join(krate);
        let src = dir.join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs"))
            .map_err(|e| format!("{}: {e}", src.join("lib.rs").display()))?;
        let named = section(&lib);
        let fenced_crate = FENCE_CRATES.contains(krate);
        let mut outside: BTreeMap<String, usize> = BTreeMap::new();
        for file in rust_files(&src)? {
            let rel = file
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let whole = format!("{krate}/src/{rel}");
            // A submodule of `sys` (`sys/mbuf.rs`) is part of it.
            let in_sys = rel.starts_with("sys/");
            if fenced_crate
                || in_sys
                || FENCE_FILES.contains(&name)
                || FENCE_PATHS.contains(&whole.as_str())
            {
                continue;
            }
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let n = count_unsafe(&text);
            if n > 0 {
                if !named.contains(&rel) {
                    problems.push(format!(
                        "{whole}: {n} unsafe, not named under \"{SECTION}\" in {krate}/src/lib.rs"
                    ));
                }
                outside.insert(rel, n);
            }
        }
        let total: usize = outside.values().sum();
        let files: Vec<String> = outside.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!(
            "  {krate:<24} {total:>3}{}{}",
            if files.is_empty() { "" } else { "  " },
            files.join(", ")
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("the unsafe fence:\n  {}", problems.join("\n  ")))
    }
}

/// The text of the crate docs' section naming the places with unsafe code (empty if none).
fn section(lib: &str) -> String {
    let docs: Vec<&str> = lib
        .lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .map(|l| l.trim_start_matches("//!").trim_start())
        .collect();
    let mut out = String::new();
    let mut inside = false;
    for l in docs {
        if l.starts_with('#') {
            inside = l.starts_with(SECTION);
            continue;
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The `.rs` files below `dir`.
fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in entries {
            let p = e.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// How many times the word `unsafe` appears in `text` outside `//` comments.
fn count_unsafe(text: &str) -> usize {
    text.lines()
        .map(|l| {
            let code = match l.find("//") {
                Some(i) => &l[..i],
                None => l,
            };
            code.match_indices("unsafe")
                .filter(|(i, _)| {
                    let before = code[..*i].chars().next_back();
                    let after = code[i + 6..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
                .count()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_code_not_comments_or_names() {
        let src = "// unsafe here is a comment\n\
                   let x = unsafe { f() }; // SAFETY: unsafe\n\
                   fn unsafe_buffer() {}\n\
                   unsafe impl Send for X {}\n";
        assert_eq!(count_unsafe(src), 2);
    }

    #[test]
    fn reads_the_section() {
        let lib = "//! # c\n//! text token.rs\n//!\n//! ## Where the unsafe code is\n\
                   //! - `token.rs`: the payload\n//! - `batch.rs`\n//!\n//! ## Next\n//! wait.rs\n\
                   \nmod x;\n";
        let s = section(lib);
        assert!(s.contains("token.rs") && s.contains("batch.rs") && !s.contains("wait.rs"));
    }
}
