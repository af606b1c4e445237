#!/usr/bin/env bash
# Formatting, clippy with -D warnings and the API snapshots over the whole workspace
# (cargo xtask lint), then `cargo package` of every published crate.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask lint
# nethuns-netmap promises its Sock on FreeBSD, where netmap is part of the kernel: a check for
# that target (no linker needed) keeps the Linux-only parts of nethuns-sys-linux and core gated.
cargo check -p nethuns-netmap --target x86_64-unknown-freebsd
# Every published crate packages and builds from its .crate alone (versions on path
# dependencies, no files outside the package). cargo treats the packaged crates as registry
# crates of one version, whose unpacked sources and build artifacts it never rebuilds when the
# workspace changes: so the check unpacks and builds in a fresh target directory, after
# removing this workspace's copies from $CARGO_HOME (about 4 minutes on 2 cores).
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/nethuns-*
pkg_target="$(mktemp -d)"
trap 'rm -rf "$pkg_target"' EXIT
CARGO_TARGET_DIR="$pkg_target" timeout 1200 \
  cargo package --workspace --exclude xtask --exclude nethuns-testnet
