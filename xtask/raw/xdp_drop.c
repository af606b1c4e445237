/*
 * xdp_drop: the ceiling of `cargo xtask bench`'s receive tests: an XDP program that counts
 * (packets and bytes, in a per-CPU array) and drops every frame arriving on --iface, in
 * generic (SKB) mode, or native (driver) mode with --native. No socket, no copy to user
 * space: the fastest any receiver on this interface can be. Prints the same JSON totals as
 * nethuns' `meter` / `raw-pcap`.
 *
 *   xdp_drop --iface eth0 --duration 5 --idle 1 --json [--native]
 *
 * The rate is measured from samples of the counter every 100 ms: from the first sample that
 * saw packets to the last sample followed by one that saw new packets (so both ends lie
 * inside the traffic, whatever the sampling phase); it stops after --duration seconds, or
 * --idle seconds without a new packet once packets came, or at SIGINT/SIGTERM. `cpu` is this
 * process's CPU time (nearly 0: the program runs in the kernel's receive path).
 *
 * The program is attached through a bpf_link: detached explicitly at exit, and by the kernel
 * if the process dies any other way (even SIGKILL), so it is never left behind.
 *
 * Build: cc -O2 -o xdp_drop xdp_drop.c $(pkg-config --cflags --libs libbpf)
 * (`--mode rx` is accepted and ignored, so callers can pass the receive tools' arguments.)
 */
#include "raw_common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

struct counters {
	uint64_t packets, bytes;
};

static int map_fd = -1, prog_fd = -1, link_fd = -1;

static void detach(void)
{
	if (link_fd >= 0) {
		bpf_link_detach(link_fd);
		close(link_fd);
		link_fd = -1;
	}
	if (prog_fd >= 0)
		close(prog_fd);
	if (map_fd >= 0)
		close(map_fd);
	prog_fd = map_fd = -1;
}

#define INSN(c, d, s, o, i) { .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) }

/*
 * In C:
 *   struct counters *c = bpf_map_lookup_elem(&counts, &(__u32){0});
 *   if (c) { c->packets += 1; c->bytes += ctx->data_end - ctx->data; }
 *   return XDP_DROP;
 * (per-CPU values: plain additions, no atomics).
 */
static int load_program(const char *iface)
{
	struct bpf_insn insns[] = {
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),                             /* r6 = ctx */
		INSN(BPF_LDX | BPF_W | BPF_MEM, 7, 6, offsetof(struct xdp_md, data_end), 0), /* r7 = data_end */
		INSN(BPF_LDX | BPF_W | BPF_MEM, 8, 6, offsetof(struct xdp_md, data), 0),     /* r8 = data */
		INSN(BPF_ALU64 | BPF_SUB | BPF_X, 7, 8, 0, 0),                             /* r7 = len */
		INSN(BPF_ST | BPF_W | BPF_MEM, 10, 0, -4, 0),                              /* key = 0 */
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -4),                            /* r2 = &key */
		INSN(BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),          /* r1 = map */
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
		INSN(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 6, 0),                               /* !r0: out */
		INSN(BPF_LDX | BPF_DW | BPF_MEM, 1, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, 1, 0, 0, 1),
		INSN(BPF_STX | BPF_DW | BPF_MEM, 0, 1, 0, 0),                              /* packets++ */
		INSN(BPF_LDX | BPF_DW | BPF_MEM, 1, 0, 8, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_X, 1, 7, 0, 0),
		INSN(BPF_STX | BPF_DW | BPF_MEM, 0, 1, 8, 0),                              /* bytes += len */
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_DROP),                      /* out: */
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	static char log[65536];
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_XDP, .log_buf = log,
		    .log_size = sizeof log);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "raw_xdp_drop", "GPL", insns,
			       sizeof insns / sizeof insns[0], &opts);
	if (fd < 0)
		die("%s: loading the XDP program: %s%s%s", iface, strerror(-fd), log[0] ? "\n" : "",
		    log);
	return fd;
}

/* Sum over CPUs of the counters. */
static struct counters read_counters(int ncpu, struct counters *per_cpu)
{
	uint32_t key = 0;
	struct counters sum = { 0, 0 };
	if (bpf_map_lookup_elem(map_fd, &key, per_cpu) != 0)
		die("reading the counters: %s", strerror(errno));
	for (int i = 0; i < ncpu; i++) {
		sum.packets += per_cpu[i].packets;
		sum.bytes += per_cpu[i].bytes;
	}
	return sum;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int main(int argc, char **argv)
{
	raw_prog = "xdp_drop";
	struct args a = parse_args(argc, argv, 0, 1);
	install_stop_handler();
	libbpf_set_print(libbpf_quiet);
	pin(a.cpu);
	unsigned ifindex = if_nametoindex(a.iface);
	if (ifindex == 0)
		die("interface %s: %s", a.iface, strerror(errno));
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		die("counting the possible CPUs: %s", strerror(-ncpu));
	struct counters *per_cpu = calloc((size_t)ncpu, sizeof *per_cpu);
	if (!per_cpu)
		die("out of memory");
	atexit(detach);
	map_fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "raw_xdp_count", 4,
				sizeof(struct counters), 1, NULL);
	if (map_fd < 0)
		die("creating the counter map (needs CAP_BPF): %s", strerror(-map_fd));
	prog_fd = load_program(a.iface);
	uint32_t mode = a.native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	LIBBPF_OPTS(bpf_link_create_opts, lopts, .flags = mode);
	link_fd = bpf_link_create(prog_fd, (int)ifindex, BPF_XDP, &lopts);
	if (link_fd < 0)
		die("%s: attaching the XDP program in %s mode: %s%s", a.iface,
		    a.native ? "native (driver)" : "generic (SKB)", strerror(-link_fd),
		    link_fd == -EBUSY || link_fd == -EEXIST
			    ? " (another XDP program is attached to the interface)"
		    : link_fd == -EOPNOTSUPP && a.native ? " (the driver has no native XDP)"
							 : "");

	double cpu0 = cpu_seconds();
	double start = now_s(), limit = start + a.duration;
	/*
	 * The rate runs from the first sample that saw packets (traffic already flowing) to
	 * the last sample that was followed by one that saw new packets (traffic still
	 * flowing): both ends inside the traffic, so the 100 ms sampling costs no accuracy.
	 */
	double first = 0, last = start, end_t = 0, prev_t = 0;
	int have_first = 0, have_end = 0;
	struct counters cur = { 0, 0 }, base = { 0, 0 }, end = { 0, 0 }, prev = { 0, 0 };
	for (;;) {
		double t = now_s();
		cur = read_counters(ncpu, per_cpu);
		if (cur.packets > prev.packets) {
			if (!have_first) {
				have_first = 1;
				first = t;
				base = cur;
			} else {
				/* Packets after the previous sample: it was inside the traffic. */
				have_end = 1;
				end_t = prev_t;
				end = prev;
			}
			last = t;
		}
		prev = cur;
		prev_t = t;
		if (stop_requested || t >= limit || (have_first && t - last > a.idle))
			break;
		double left = limit - now_s();
		double step = left < 0.1 ? left : 0.1;
		if (step > 0) {
			struct timespec ts = { (time_t)step, (long)((step - (double)(time_t)step) * 1e9) };
			nanosleep(&ts, NULL); /* a signal cuts it short */
		}
	}
	detach();
	double cpu = cpu_seconds() - cpu0;
	double active = have_end ? end_t - first : 0.0;
	print_totals(&a, cur.packets, cur.bytes, have_end ? end.packets - base.packets : 0,
		     have_end ? end.bytes - base.bytes : 0, active, cpu);
	free(per_cpu);
	return 0;
}
