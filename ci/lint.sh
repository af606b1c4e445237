#!/usr/bin/env bash
# Formatting, clippy with -D warnings and the API snapshots over the whole workspace
# (cargo xtask lint), then `cargo package` of every published crate.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask lint
# Every published crate packages and builds from its .crate alone (versions on path
# dependencies, no files outside the package); about 2 minutes with a warm registry cache.
timeout 1200 cargo package --workspace --exclude xtask --exclude nethuns-testnet
