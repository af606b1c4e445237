#!/bin/sh
# netns.sh: a veth pair between two network namespaces, for trying the raw baselines by hand.
#
#   ./netns.sh up [PREFIX]     creates namespaces PREFIX-a / PREFIX-b (default rawb) joined by
#                              veth PREFIX-va <-> PREFIX-vb, both up, IPv6 off
#   ./netns.sh down [PREFIX]   deletes them (and so the veth pair)
#
# Then e.g.:
#   ip netns exec rawb-b ./out/raw_afpacket --mode rx --iface rawb-vb --duration 4 --json &
#   ip netns exec rawb-a ./out/raw_afpacket --mode tx --iface rawb-va --duration 2 --json
# Needs root. Always run `down` when done (use `trap '... down' EXIT` in scripts).
set -eu
cmd=${1:-}
p=${2:-rawb}
case "$cmd" in
up)
	ip netns add "$p-a"
	ip netns add "$p-b"
	ip link add "$p-va" netns "$p-a" type veth peer name "$p-vb" netns "$p-b"
	for s in a b; do
		ip netns exec "$p-$s" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
		ip -n "$p-$s" link set lo up
		ip -n "$p-$s" link set "$p-v$s" up
	done
	;;
down)
	ip netns del "$p-a" 2>/dev/null || true
	ip netns del "$p-b" 2>/dev/null || true
	;;
*)
	echo "usage: $0 up|down [PREFIX]" >&2
	exit 2
	;;
esac
