#!/usr/bin/env bash
# The README's test command. CI runs as root, so the network tests must run (CI=true makes a
# test that cannot run fail instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}"
cargo xtask test
