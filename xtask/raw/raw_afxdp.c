/*
 * raw_afxdp: the AF_XDP baseline of `cargo xtask bench`: receive and transmit loops written
 * directly against libxdp's xsk API (xsk_umem__create / xsk_socket__create) and libbpf,
 * without nethuns, with the configuration of nethuns-afxdp's AfXdpFlags::default(), printing
 * the same JSON totals as nethuns' `meter` / `pkt-gen` / `raw-pcap`.
 *
 *   raw_afxdp --mode rx --iface eth0 --duration 5 --json
 *   raw_afxdp --mode tx --iface eth0 --size 64 --duration 5 --json
 *
 * Build: cc -O2 -o raw_afxdp raw_afxdp.c $(pkg-config --cflags --libs libxdp libbpf)
 *
 * The steering program is the one nethuns-afxdp loads (six instructions:
 * `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`), loaded with libbpf and
 * attached in generic (SKB) mode through a bpf_link; libxdp's own program loading is
 * inhibited (XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD), so no bpffs is needed. A bpf_link lives
 * as long as its descriptor: the program is detached explicitly at exit, and by the kernel
 * if the process dies any other way (even SIGKILL).
 */
#include "raw_common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

/* AfXdpFlags::default(): generic (SKB) mode, copy or zero-copy as the kernel decides (copy
 * in SKB mode), need_wakeup, 8192 frames of 2048 bytes, 1024 TX and 4096 RX slots; the
 * nethuns layout: 1024 TX frames (completion ring 1024), the other 7168 receive frames
 * (fill ring 8192, the next power of two), no headroom. Queue 0. */
#define NUM_FRAMES 8192u
#define FRAME_SIZE 2048u
#define TX_SIZE 1024u
#define RX_SIZE 4096u
#define RX_FRAMES (NUM_FRAMES - TX_SIZE)
#define FILL_SIZE 8192u
#define COMP_SIZE TX_SIZE
#define QUEUE 0u
/* XSKMAP entries (as nethuns-afxdp's MAX_QUEUES). */
#define MAX_QUEUES 1024u
/* Descriptors taken from the RX ring per peek (nethuns-afxdp's RX_BATCH). */
#define RX_BATCH 64u
/* Frames per submit + kick: pkt-gen's --batch default. */
#define TX_BATCH 32u

struct xsk {
	void *area;
	struct xsk_umem *umem;
	struct xsk_socket *sock;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	int fd, map_fd, prog_fd, link_fd;
	int copy_mode;
	const char *iface;
	uint64_t bytes; /* received bytes (rx_poll adds to it) */
};

/* The redirect program, as nethuns-afxdp's sys::redirect_program:
 *   r2 = ctx->rx_queue_index; r1 = &xsks; r3 = XDP_PASS; call bpf_redirect_map; exit */
static int load_redirect_program(int map_fd, const char *iface)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_LDX | BPF_W | BPF_MEM, .dst_reg = 2, .src_reg = 1,
		  .off = offsetof(struct xdp_md, rx_queue_index) },
		{ .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = 1, .src_reg = BPF_PSEUDO_MAP_FD,
		  .imm = map_fd },
		{ 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 3, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	static char log[65536];
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_XDP,
		    .log_buf = log, .log_size = sizeof log, .log_level = 0);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "raw_xsk_redir", "GPL", insns,
			       sizeof insns / sizeof insns[0], &opts);
	if (fd < 0)
		die("%s: loading the redirect XDP program: %s%s%s", iface, strerror(-fd),
		    log[0] ? "\n" : "", log);
	return fd;
}

/* The socket die() must clean up (detach the program) before exiting. */
static struct xsk *xsk_for_exit;

/* Detaches the program (closing the link) and frees everything; safe on a partial setup. */
static void xsk_close(struct xsk *x)
{
	if (x->link_fd >= 0) {
		bpf_link_detach(x->link_fd);
		close(x->link_fd);
		x->link_fd = -1;
	}
	if (x->sock)
		xsk_socket__delete(x->sock);
	x->sock = NULL;
	if (x->umem)
		xsk_umem__delete(x->umem);
	x->umem = NULL;
	if (x->prog_fd >= 0)
		close(x->prog_fd);
	if (x->map_fd >= 0)
		close(x->map_fd);
	x->prog_fd = x->map_fd = -1;
	if (x->area && x->area != MAP_FAILED)
		munmap(x->area, (size_t)NUM_FRAMES * FRAME_SIZE);
	x->area = NULL;
	if (xsk_for_exit == x)
		xsk_for_exit = NULL;
}

static void close_at_exit(void)
{
	if (xsk_for_exit)
		xsk_close(xsk_for_exit);
}

static void xsk_open(struct xsk *x, const char *iface)
{
	memset(x, 0, sizeof *x);
	x->iface = iface;
	x->fd = x->map_fd = x->prog_fd = x->link_fd = -1;
	/* From here on, die() detaches and frees whatever was set up. */
	xsk_for_exit = x;
	atexit(close_at_exit);
	unsigned ifindex = if_nametoindex(iface);
	if (ifindex == 0)
		die("interface %s: %s", iface, strerror(errno));
	x->area = mmap(NULL, (size_t)NUM_FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (x->area == MAP_FAILED)
		die("allocating the UMEM (%u x %u B): %s", NUM_FRAMES, FRAME_SIZE, strerror(errno));
	struct xsk_umem_config ucfg = {
		.fill_size = FILL_SIZE,
		.comp_size = COMP_SIZE,
		.frame_size = FRAME_SIZE,
		.frame_headroom = 0,
		.flags = 0,
	};
	struct xsk_socket_config scfg = {
		.rx_size = RX_SIZE,
		.tx_size = TX_SIZE,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = XDP_FLAGS_SKB_MODE,
		.bind_flags = XDP_USE_NEED_WAKEUP,
	};
	/*
	 * The kernel releases the UMEM of a closed socket (and with it the queue) from a work
	 * queue: right after another AF_XDP process on this queue exits, binding fails with
	 * EBUSY for a few milliseconds. Retry for up to 2 s before giving up.
	 */
	int rc = 0;
	for (int attempt = 0; attempt < 200 && !stop_requested; attempt++) {
		rc = xsk_umem__create(&x->umem, x->area, (uint64_t)NUM_FRAMES * FRAME_SIZE,
				      &x->fill, &x->comp, &ucfg);
		if (rc)
			die("%s: creating the UMEM: %s", iface, strerror(-rc));
		rc = xsk_socket__create(&x->sock, iface, QUEUE, x->umem, &x->rx, &x->tx, &scfg);
		if (rc != -EBUSY)
			break;
		x->sock = NULL;
		xsk_umem__delete(x->umem);
		x->umem = NULL;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (rc)
		die("%s queue %u: creating the AF_XDP socket: %s%s", iface, QUEUE, strerror(-rc),
		    rc == -EBUSY ? " (another AF_XDP socket is bound to this queue)" : "");
	if (!x->sock)
		die("%s queue %u: interrupted while creating the AF_XDP socket", iface, QUEUE);
	x->fd = xsk_socket__fd(x->sock);
	struct xdp_options xo;
	socklen_t xl = sizeof xo;
	x->copy_mode = 1;
	if (getsockopt(x->fd, SOL_XDP, XDP_OPTIONS, &xo, &xl) == 0)
		x->copy_mode = !(xo.flags & XDP_OPTIONS_ZEROCOPY);

	x->map_fd = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "raw_xsks", 4, 4, MAX_QUEUES, NULL);
	if (x->map_fd < 0)
		die("%s: creating the XSKMAP: %s", iface, strerror(-x->map_fd));
	x->prog_fd = load_redirect_program(x->map_fd, iface);
	LIBBPF_OPTS(bpf_link_create_opts, lopts, .flags = XDP_FLAGS_SKB_MODE);
	x->link_fd = bpf_link_create(x->prog_fd, (int)ifindex, BPF_XDP, &lopts);
	if (x->link_fd < 0)
		die("%s: attaching the XDP program in generic (SKB) mode: %s%s", iface,
		    strerror(-x->link_fd),
		    x->link_fd == -EBUSY || x->link_fd == -EEXIST
			    ? " (another XDP program is attached to the interface)"
			    : "");
	rc = xsk_socket__update_xskmap(x->sock, x->map_fd);
	if (rc)
		die("%s queue %u: adding the socket to the XSKMAP: %s", iface, QUEUE, strerror(-rc));
}

/* One poll of the RX ring: count, refill the fill ring, release; wakes the kernel when the
 * fill ring asks and the ring was empty. Returns the packets taken. */
static inline uint32_t rx_poll(struct xsk *x)
{
	uint32_t rx_idx;
	uint32_t n = xsk_ring_cons__peek(&x->rx, RX_BATCH, &rx_idx);
	if (n == 0) {
		if (xsk_ring_prod__needs_wakeup(&x->fill))
			recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		return 0;
	}
	uint32_t fill_idx;
	/* The fill ring has a slot for every receive frame, so there is always room for the n
	 * frames just received. */
	if (xsk_ring_prod__reserve(&x->fill, n, &fill_idx) != n)
		die("%s: no room on the fill ring for %u frames", x->iface, n);
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, rx_idx + i);
		bytes += d->len;
		*xsk_ring_prod__fill_addr(&x->fill, fill_idx + i) = d->addr & ~(uint64_t)(FRAME_SIZE - 1);
	}
	xsk_ring_prod__submit(&x->fill, n);
	xsk_ring_cons__release(&x->rx, n);
	x->bytes += bytes;
	return n;
}

RAW_COST_RX(struct xsk, rx_poll)

static int run_rx(const struct args *a)
{
	struct xsk x;
	xsk_open(&x, a->iface);
	x.bytes = 0;
	/* Every receive frame goes to the fill ring. */
	uint32_t idx;
	if (xsk_ring_prod__reserve(&x.fill, RX_FRAMES, &idx) != RX_FRAMES)
		die("%s: the fill ring has no room for %u frames", a->iface, RX_FRAMES);
	for (uint32_t i = 0; i < RX_FRAMES; i++)
		*xsk_ring_prod__fill_addr(&x.fill, idx + i) = (uint64_t)i * FRAME_SIZE;
	xsk_ring_prod__submit(&x.fill, RX_FRAMES);
	if (a->mode == MODE_COST_RX) {
		run_cost_rx(&x, a);
		xsk_close(&x);
		return 0;
	}

	double cpu0 = cpu_seconds();
	struct rx_clock c;
	rx_clock_init(&c, a);
	uint32_t since_check = 0;
	for (;;) {
		uint32_t n = rx_poll(&x);
		if (n > 0) {
			c.pkts += n;
			since_check += n;
			if (since_check < 4096)
				continue;
		}
		/* Every 4096 packets or when the ring is empty: not per packet. */
		since_check = 0;
		c.bytes = x.bytes;
		if (rx_clock_check(&c))
			break;
	}
	c.bytes = x.bytes;
	double cpu = cpu_seconds() - cpu0;
	xsk_close(&x);
	print_rx_totals(a, &c, cpu);
	return 0;
}

/* Asks the kernel to transmit (copy mode sends only inside this call, 32 frames a call). */
static void kick_tx(struct xsk *x)
{
	if (!x->copy_mode && !xsk_ring_prod__needs_wakeup(&x->tx))
		return;
	if (sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0) {
		int e = errno;
		if (e != EAGAIN && e != EBUSY && e != ENOBUFS && e != EINTR)
			die("%s: sendto: %s", x->iface, strerror(e));
	}
}

/* Transmits until `count` frames are queued (0: no limit) or `limit` (monotonic seconds, 0:
 * none) passes: reap completions, fill up to 32 free frames, submit, kick. Returns the frames
 * submitted. */
static __attribute__((noinline)) uint64_t tx_loop(struct xsk *xp, uint64_t *free_tx, uint32_t nfree,
						  uint8_t *tmpl, size_t len, uint64_t count, double limit)
{
	struct xsk x = *xp;
	uint64_t sent = 0;
	for (;;) {
		/* Reap completions: their frames are free again. */
		uint32_t cidx;
		uint32_t done = xsk_ring_cons__peek(&x.comp, COMP_SIZE, &cidx);
		for (uint32_t i = 0; i < done; i++)
			free_tx[nfree++] = *xsk_ring_cons__comp_addr(&x.comp, cidx + i) &
					   ~(uint64_t)(FRAME_SIZE - 1);
		if (done)
			xsk_ring_cons__release(&x.comp, done);
		uint32_t k = nfree < TX_BATCH ? nfree : TX_BATCH;
		if (count && count - sent < k)
			k = (uint32_t)(count - sent);
		uint32_t tidx;
		if (k > 0 && xsk_ring_prod__reserve(&x.tx, k, &tidx) == k) {
			for (uint32_t i = 0; i < k; i++) {
				uint64_t addr = free_tx[--nfree];
				uint8_t *p = xsk_umem__get_data(x.area, addr);
				set_seq(tmpl, sent + i);
				memcpy(p, tmpl, len);
				struct xdp_desc *d = xsk_ring_prod__tx_desc(&x.tx, tidx + i);
				d->addr = addr;
				d->len = (uint32_t)len;
				d->options = 0;
			}
			xsk_ring_prod__submit(&x.tx, k);
			sent += k;
		}
		/* Kick also when nothing was free: the kernel completes frames in sendto. */
		kick_tx(&x);
		if (stop_requested || (count && sent >= count) || (limit > 0 && now_s() >= limit))
			break;
	}
	*xp = x;
	return sent;
}

static int run_tx(const struct args *a)
{
	if ((uint32_t)a->size > FRAME_SIZE)
		die("--size: %ld bytes does not fit in a %u-byte UMEM frame", a->size, FRAME_SIZE);
	check_size_fits_mtu(a->size, if_mtu(a->iface), a->iface);
	struct xsk x;
	xsk_open(&x, a->iface);
	/* The TX frames (the last TX_SIZE of the UMEM), as a stack of free addresses. */
	uint64_t free_tx[TX_SIZE];
	uint32_t nfree = 0;
	for (uint32_t i = 0; i < TX_SIZE; i++)
		free_tx[nfree++] = (uint64_t)(RX_FRAMES + i) * FRAME_SIZE;
	uint8_t tmpl[FRAME_SIZE];
	size_t len = (size_t)a->size;
	make_frame(tmpl, len);

	double cpu0 = cpu_seconds();
	double start = now_s();
	uint64_t sent = tx_loop(&x, free_tx, nfree, tmpl, len,
				a->mode == MODE_COST_TX ? (uint64_t)a->count : 0,
				a->mode == MODE_COST_TX ? 0 : start + a->duration);
	double el = now_s() - start;
	double cpu = cpu_seconds() - cpu0;
	xsk_close(&x);
	print_totals(a, sent, sent * len, sent, sent * len, el, cpu);
	return 0;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int main(int argc, char **argv)
{
	raw_prog = "raw_afxdp";
	struct args a = parse_args(argc, argv, 1, 0);
	install_stop_handler();
	libbpf_set_print(libbpf_quiet);
	pin(a.cpu);
	if (a.mode == MODE_COST_LOOP)
		die("--mode cost-loop: an in-process pair is DPDK's (raw_dpdk)");
	return a.mode == MODE_RX || a.mode == MODE_COST_RX ? run_rx(&a) : run_tx(&a);
}
