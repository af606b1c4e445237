#!/usr/bin/env bash
# Formatting and clippy with -D warnings over the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask lint
