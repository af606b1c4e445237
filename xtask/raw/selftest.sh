#!/bin/bash
# selftest.sh [OUTDIR]: builds the baselines (into OUTDIR, default a temporary directory) and
# runs each against itself across a veth pair between two fresh network namespaces: every
# receiver must count packets, every transmitter's frames must have the test-frame layout
# (checked with tcpdump when installed), and nothing may be left behind (no XDP program, no
# promiscuous flag; the namespaces are deleted on exit). Needs root. Exit status 0 = all good.
set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
out=${1:-$tmp}
p=rawst$$
fail=0
cleanup() {
	ip netns del "$p-a" 2>/dev/null
	ip netns del "$p-b" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
[ "$(id -u)" = 0 ] || { echo "selftest.sh: needs root (network namespaces, XDP)" >&2; exit 1; }
"$here/build.sh" "$out" >/dev/null || exit 1
"$here/netns.sh" up "$p" || { echo "selftest.sh: cannot create namespaces" >&2; exit 1; }
va=$p-va
vb=$p-vb

num() { grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; }
bad() { echo "FAIL: $*"; fail=1; }

# pair NAME RXCMD TXCMD: receiver in b, transmitter in a; checks the JSON of both.
pair() {
	local name=$1 rxc=$2 txc=$3
	# shellcheck disable=SC2086
	ip netns exec "$p-b" $rxc >"$tmp/rx" 2>"$tmp/rxerr" &
	local rp=$!
	sleep 0.7
	# shellcheck disable=SC2086
	ip netns exec "$p-a" $txc >"$tmp/tx" 2>"$tmp/txerr" || bad "$name: transmitter failed: $(cat "$tmp/txerr")"
	wait $rp || bad "$name: receiver failed: $(cat "$tmp/rxerr")"
	local t r
	t=$(num packets <"$tmp/tx")
	r=$(num packets <"$tmp/rx")
	for f in packets bytes seconds pps bps allocs cpu; do
		grep -q "\"$f\":" "$tmp/rx" || bad "$name: receiver JSON lacks $f: $(cat "$tmp/rx")"
		grep -q "\"$f\":" "$tmp/tx" || bad "$name: transmitter JSON lacks $f: $(cat "$tmp/tx")"
	done
	if [ -z "$t" ] || [ -z "$r" ] || [ "${t%.*}" -le 0 ] || [ "${r%.*}" -le 0 ] || [ "${r%.*}" -gt "${t%.*}" ]; then
		bad "$name: sent ${t:-?}, received ${r:-?}"
	else
		echo "ok   $name: sent $t, received $r ($(num pps <"$tmp/rx") pps)"
	fi
}

# frame NAME TXCMD SIZE: one captured frame has the test layout and SIZE bytes.
frame() {
	command -v tcpdump >/dev/null || { echo "skip $1 frame check: no tcpdump"; return; }
	local name=$1 txc=$2 size=$3
	ip netns exec "$p-b" timeout 5 tcpdump -i "$vb" -c 1 -nn -e -xx 'ether proto 0x88b5' >"$tmp/cap" 2>/dev/null &
	local cp=$!
	sleep 1
	# shellcheck disable=SC2086
	ip netns exec "$p-a" $txc >/dev/null 2>"$tmp/txerr" || bad "$name: transmitter failed: $(cat "$tmp/txerr")"
	wait $cp
	local hex
	hex=$(grep -o '0x[0-9a-f]*:  .*' "$tmp/cap" | head -1 | cut -c10- | tr -d ' ' | cut -c1-28)
	if ! grep -q "02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype Unknown (0x88b5), length $size" "$tmp/cap" ||
		[ "$hex" != "02000000000202000000000188b5" ]; then
		bad "$name: unexpected frame: $(head -3 "$tmp/cap")"
	else
		echo "ok   $name: frame layout, $size bytes"
	fi
}

dpa=net_af_packet0,iface=$va
dpb=net_af_packet0,iface=$vb
R="--mode rx --duration 4 --idle 1 --json"
T="--mode tx --duration 1 --json"
pair "af_packet 64" "$out/raw_afpacket $R --iface $vb" "$out/raw_afpacket $T --iface $va"
pair "af_packet 1500" "$out/raw_afpacket $R --iface $vb" "$out/raw_afpacket $T --size 1500 --iface $va"
pair "af_xdp 64" "$out/raw_afxdp $R --iface $vb" "$out/raw_afxdp $T --iface $va"
pair "af_xdp 1500" "$out/raw_afxdp $R --iface $vb" "$out/raw_afxdp $T --size 1500 --iface $va"
pair "dpdk 64" "$out/raw_dpdk $R --iface $dpb" "$out/raw_dpdk $T --iface $dpa"
pair "dpdk 1500" "$out/raw_dpdk $R --iface $dpb" "$out/raw_dpdk $T --size 1500 --iface $dpa"
pair "xdp_drop generic" "$out/xdp_drop --duration 4 --idle 1 --json --iface $vb" "$out/raw_afpacket $T --iface $va"
pair "xdp_drop native" "$out/xdp_drop --native --duration 4 --idle 1 --json --iface $vb" "$out/raw_afpacket $T --iface $va"
frame "af_packet tx" "$out/raw_afpacket $T --size 100 --iface $va" 100
frame "af_xdp tx" "$out/raw_afxdp $T --size 100 --iface $va" 100
frame "dpdk tx" "$out/raw_dpdk $T --size 100 --iface $dpa" 100

# SIGTERM: a receiver stops at once and still prints its totals.
ip netns exec "$p-b" "$out/raw_afxdp" $R --duration 30 --iface "$vb" >"$tmp/rx" 2>&1 &
sp=$!
sleep 1
kill -TERM $sp
wait $sp && grep -q '"packets":' "$tmp/rx" && echo "ok   SIGTERM: totals printed" || bad "SIGTERM: $(cat "$tmp/rx")"
# Bad input: exit status 1 and a message.
for c in "$out/raw_afpacket --mode rx --iface nosuchif" "$out/raw_afxdp --mode tx --iface $vb --size 9000" \
	"$out/raw_dpdk --mode rx --iface net_af_packet0,iface=nosuchif" "$out/xdp_drop --iface nosuchif" \
	"$out/raw_afpacket --mode bogus --iface $vb"; do
	# shellcheck disable=SC2086
	ip netns exec "$p-b" $c --duration 1 >/dev/null 2>"$tmp/err"
	rc=$?
	[ $rc = 1 ] && [ -s "$tmp/err" ] && echo "ok   refused: $(tail -1 "$tmp/err")" || bad "$c: exit $rc"
done
# Nothing left behind.
for s in a b; do
	if ip -n "$p-$s" -d link show "$p-v$s" | grep -Eq 'prog/xdp|xdpgeneric|PROMISC'; then
		bad "$p-v$s: left with an XDP program or promiscuous: $(ip -n "$p-$s" link show "$p-v$s")"
	fi
done
[ $fail = 0 ] && echo "all passed" || echo "FAILED"
exit $fail
