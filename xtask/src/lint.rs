//! `cargo xtask lint`: `cargo fmt --check`, clippy with `-D warnings` over every target and
//! feature (the workspace lints included), the unsafe fence of [`crate::fence`], then the
//! public-API check of [`crate::api`].

use crate::util::cargo;

/// `cargo xtask lint`.
pub fn run() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-features",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    crate::fence::check()?;
    crate::api::check()
}
