// A user XDP program for nethuns-afxdp's Steer::Program test: frames of EtherType 0x88b5
// (the test frames) go to the AF_XDP socket of their queue, everything else to the kernel.
// It counts what it redirected in a BTF-defined array map, and keeps its EtherType in
// .rodata, so that the loader's map creation and relocation are exercised.
// Build (tests/steering.rs does it): clang -O2 -g -target bpf
//   -I/usr/include/$(uname -m)-linux-gnu -c steer_88b5.c -o steer_88b5.o
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} redirected SEC(".maps");

const volatile __u16 wanted = 0x88b5;

SEC("xdp")
int steer_88b5(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	__u64 *n;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(wanted))
		return XDP_PASS;
	n = bpf_map_lookup_elem(&redirected, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
