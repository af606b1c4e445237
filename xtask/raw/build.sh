#!/bin/sh
# build.sh [OUTDIR]: builds the raw-engine baselines of `cargo xtask bench` into OUTDIR
# (default ./out). Needs cc (gcc), pkg-config, libxdp-dev + libbpf-dev (raw_afxdp, xdp_drop)
# and libdpdk-dev (raw_dpdk). Exits non-zero naming the first program that failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-./out}
CC=${CC:-cc}
CFLAGS=${CFLAGS:--O2 -Wall}
mkdir -p "$out" || { echo "build.sh: cannot create $out" >&2; exit 1; }

libs() { # libs WHAT PKG...: the pkg-config flags of PKG..., or a message naming the package
	what=$1; shift
	if ! command -v pkg-config >/dev/null 2>&1; then
		echo "build.sh: $what needs pkg-config (apt-get install pkg-config)" >&2
		return 1
	fi
	if ! pkg-config --exists "$@"; then
		echo "build.sh: $what needs pkg-config modules '$*' (Debian: $pkgs)" >&2
		return 1
	fi
	pkg-config --cflags --libs "$@"
}

build() { # build NAME [LIBS]
	name=$1; shift
	# shellcheck disable=SC2086 # CFLAGS and LIBS are word lists
	if ! $CC $CFLAGS -o "$out/$name" "$here/$name.c" "$@"; then
		echo "build.sh: building $name failed (command: $CC $CFLAGS -o $out/$name $here/$name.c $*)" >&2
		exit 1
	fi
	echo "built $out/$name"
}

build raw_afpacket
pkgs="libxdp-dev libbpf-dev"
xdp=$(libs raw_afxdp libxdp libbpf) || exit 1
# shellcheck disable=SC2086
build raw_afxdp $xdp
pkgs="libbpf-dev"
bpf=$(libs xdp_drop libbpf) || exit 1
# shellcheck disable=SC2086
build xdp_drop $bpf
pkgs="libdpdk-dev"
dpdk=$(libs raw_dpdk libdpdk) || exit 1
# shellcheck disable=SC2086
build raw_dpdk $dpdk
