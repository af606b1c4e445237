#!/usr/bin/env bash
# Installs the system packages and cargo components CI needs. `cargo xtask test` checks the
# packages again (and installs them when run as root), so a developer needs only that command.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(iproute2 iputils-ping pkg-config libpcap-dev tcpdump tshark libxdp-dev libbpf-dev
      clang libclang-dev libdpdk-dev dpdk)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/install.sh: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
  # netmap's socket and its shared memory build for FreeBSD too (ci/lint.sh checks them).
  rustup target add x86_64-unknown-freebsd >/dev/null
fi
# cargo-fuzz for `cargo xtask fuzz` (built from crates.io, bounded in time).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "ci/install.sh: installing cargo-fuzz"
  timeout 1200 cargo install cargo-fuzz --locked --quiet
fi
cargo --version
cargo fuzz --version
