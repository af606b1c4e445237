/*
 * raw_common.h: what the raw baselines share with each other and with nethuns'
 * `raw-pcap` / `meter` / `pkt-gen` tools: the command line, the stop flag, the test
 * frame, CPU pinning, CPU time and the JSON totals line.
 *
 * Header-only (static functions), found next to each .c file, so every baseline still
 * builds with one `cc` line: `cc -O2 -o raw_x raw_x.c [libs]`.
 */
#ifndef RAW_COMMON_H
#define RAW_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Not every tool uses every helper. */
#define RAW_FN static __attribute__((unused))

/* The program's name, for messages ("raw_afpacket: ..."). */
static const char *raw_prog = "raw";

/* Prints "PROG: message" to stderr and exits with status 1. */
RAW_FN void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", raw_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* MODE_COST_*: the abstraction-cost mode of `cargo xtask bench --cost` (see cost_wait_go). */
enum raw_mode { MODE_NONE = 0, MODE_RX, MODE_TX, MODE_COST_RX, MODE_COST_TX, MODE_COST_LOOP };

struct args {
	enum raw_mode mode;
	const char *iface;
	double duration; /* seconds to run (rx and tx) */
	double idle;     /* rx: stop after this long without packets once packets came */
	long size;       /* tx frame size */
	int cpu;         /* -1: do not pin */
	int json;
	int native;      /* xdp_drop only: native (driver) XDP mode */
	long count;      /* cost modes: packets to receive / send */
	long polls;      /* cost-rx: empty polls measured after the drain */
};

/* Smallest frame: Ethernet header + the 8-byte sequence number. */
#define MIN_SIZE 22

RAW_FN double parse_num(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= 0) || d > 1e9)
		die("%s: %s is not a non-negative number", opt, v);
	return d;
}

RAW_FN long parse_int(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0)
		die("%s: %s is not a non-negative integer", opt, v);
	return n;
}

RAW_FN void usage(int with_mode, int with_native)
{
	fprintf(stderr,
		"usage: %s %s--iface PORTSPEC [--duration SECS] [--idle SECS]%s [--cpu N] [--json]%s\n",
		raw_prog, with_mode ? "--mode rx|tx|cost-rx|cost-tx|cost-loop [--count N] [--polls N] " : "",
		with_mode ? " [--size BYTES]" : "", with_native ? " [--native]" : "");
}

/*
 * The command line of raw-pcap: --mode rx|tx --iface X --duration F (5) --idle F (1)
 * --size N (64) --cpu N --json; `--opt=value` works too. `with_mode`: --mode is required
 * (else only `--mode rx` is accepted, for callers that always pass it); `with_native`:
 * accept --native.
 */
RAW_FN struct args parse_args(int argc, char **argv, int with_mode, int with_native)
{
	struct args a = { MODE_NONE, NULL, 5.0, 1.0, 64, -1, 0, 0, 1024, 10000 };
	for (int i = 1; i < argc; i++) {
		char *opt = argv[i];
		const char *val = NULL;
		char name[64];
		char *eq = strchr(opt, '=');
		if (strncmp(opt, "--", 2) == 0 && eq) {
			size_t n = (size_t)(eq - opt);
			if (n >= sizeof name)
				die("unknown option %s", opt);
			memcpy(name, opt, n);
			name[n] = 0;
			val = eq + 1;
		} else {
			snprintf(name, sizeof name, "%s", opt);
		}
		if (!strcmp(name, "--json") || !strcmp(name, "--native") ||
		    !strcmp(name, "--help") || !strcmp(name, "-h")) {
			if (val)
				die("%s takes no value", name);
			if (!strcmp(name, "--json")) {
				a.json = 1;
			} else if (!strcmp(name, "--native") && with_native) {
				a.native = 1;
			} else if (!strcmp(name, "--native")) {
				die("unknown option --native");
			} else {
				usage(with_mode, with_native);
				exit(0);
			}
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				die("%s needs a value", name);
			val = argv[++i];
		}
		if (!strcmp(name, "--mode")) {
			if (!strcmp(val, "rx"))
				a.mode = MODE_RX;
			else if (!strcmp(val, "tx") && with_mode)
				a.mode = MODE_TX;
			else if (!strcmp(val, "cost-rx") && with_mode)
				a.mode = MODE_COST_RX;
			else if (!strcmp(val, "cost-tx") && with_mode)
				a.mode = MODE_COST_TX;
			else if (!strcmp(val, "cost-loop") && with_mode)
				a.mode = MODE_COST_LOOP;
			else
				die("--mode: %s is not %s", val, with_mode ? "rx or tx" : "rx (this tool only receives)");
		} else if (!strcmp(name, "--iface")) {
			a.iface = val;
		} else if (!strcmp(name, "--duration")) {
			a.duration = parse_num(name, val);
		} else if (!strcmp(name, "--idle")) {
			a.idle = parse_num(name, val);
		} else if (!strcmp(name, "--count")) {
			a.count = parse_int(name, val);
		} else if (!strcmp(name, "--polls")) {
			a.polls = parse_int(name, val);
		} else if (!strcmp(name, "--size")) {
			a.size = parse_int(name, val);
		} else if (!strcmp(name, "--cpu")) {
			long c = parse_int(name, val);
			if (c >= CPU_SETSIZE)
				die("--cpu: %ld is out of range", c);
			a.cpu = (int)c;
		} else {
			usage(with_mode, with_native);
			die("unknown option %s", name);
		}
	}
	if (!a.iface || !*a.iface) {
		usage(with_mode, with_native);
		die("--iface is required");
	}
	if (with_mode && a.mode == MODE_NONE) {
		usage(with_mode, with_native);
		die("--mode rx|tx is required");
	}
	if (a.size < MIN_SIZE)
		die("--size: %ld bytes is too small (at least %d: Ethernet header + sequence number)",
		    a.size, MIN_SIZE);
	return a;
}

/* The MTU of interface `iface` (SIOCGIFMTU), or dies naming it. */
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
RAW_FN int if_mtu(const char *iface)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	if (strlen(iface) >= sizeof ifr.ifr_name)
		die("interface %s: name too long", iface);
	strcpy(ifr.ifr_name, iface);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFMTU, &ifr) < 0)
		die("reading the MTU of %s: %s", iface, strerror(errno));
	close(fd);
	return ifr.ifr_mtu;
}

/* Refuses a TX frame size the interface would drop: more than MTU + an Ethernet header
 * (the test frames are untagged). */
RAW_FN void check_size_fits_mtu(long size, int mtu, const char *iface)
{
	if (size > (long)mtu + 14)
		die("--size: %ld bytes is more than %s carries (MTU %d + 14-byte Ethernet header = %d)",
		    size, iface, mtu, mtu + 14);
}

/* Set by SIGINT/SIGTERM: every loop checks it and stops, printing its totals. */
static volatile sig_atomic_t stop_requested;

RAW_FN void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGINT/SIGTERM set the stop flag (no SA_RESTART: a blocking call returns EINTR). */
RAW_FN void install_stop_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Pins the calling thread to `cpu` (-1: leave it). */
RAW_FN void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		die("pinning to cpu %d: %s", cpu, strerror(errno));
}

/* Monotonic time in seconds. */
RAW_FN inline double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU time (user + system) of this process, in seconds. */
RAW_FN double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * The test frame, as nethuns' tools build it: dst 02:00:00:00:00:02, src 02:00:00:00:00:01,
 * EtherType 0x88B5, an 8-byte big-endian sequence number, zeros up to `len`.
 */
RAW_FN void make_frame(uint8_t *f, size_t len)
{
	static const uint8_t hdr[14] = { 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xB5 };
	memset(f, 0, len);
	memcpy(f, hdr, sizeof hdr);
}

/* Writes sequence number `seq` (big-endian) into a frame made by make_frame. */
RAW_FN inline void set_seq(uint8_t *f, uint64_t seq)
{
	uint64_t be = __builtin_bswap64(seq);
	memcpy(f + 14, &be, 8);
}

/*
 * Receive-side rate bookkeeping, as in raw-pcap / meter: called every 4096 packets or
 * when the ring is empty, never per packet. The rate is measured from the first check that
 * saw packets (counts at that check are the base) to the last check that saw new ones.
 */
struct rx_clock {
	uint64_t pkts, bytes;      /* running totals (the loop adds to these) */
	uint64_t base_pkts, base_bytes;
	uint64_t pkts_at_check;
	double start, limit, idle, first, last;
	int have_first;
};

RAW_FN void rx_clock_init(struct rx_clock *c, const struct args *a)
{
	memset(c, 0, sizeof *c);
	c->start = now_s();
	c->limit = c->start + a->duration;
	c->idle = a->idle;
	c->last = c->start;
}

/* One check; returns non-zero when the loop must stop (signal, duration, idle). */
RAW_FN inline int rx_clock_check(struct rx_clock *c)
{
	double t = now_s();
	if (c->pkts > c->pkts_at_check) {
		if (!c->have_first) {
			c->have_first = 1;
			c->first = t;
			c->base_pkts = c->pkts;
			c->base_bytes = c->bytes;
		}
		c->last = t;
		c->pkts_at_check = c->pkts;
	}
	return stop_requested || t >= c->limit || (c->have_first && t - c->last > c->idle);
}

/* Prints the totals: one JSON line with --json, else a human line. */
RAW_FN void print_totals(const struct args *a, uint64_t pkts, uint64_t bytes,
			 uint64_t rate_pkts, uint64_t rate_bytes, double seconds, double cpu)
{
	double s = seconds > 1e-9 ? seconds : 1e-9;
	double pps = (double)rate_pkts / s, bps = (double)rate_bytes * 8.0 / s;
	if (a->json)
		printf("{\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"pps\":%.1f,\"bps\":%.1f,"
		       "\"allocs\":0,\"cpu\":%.3f}\n",
		       (unsigned long long)pkts, (unsigned long long)bytes, seconds, pps, bps, cpu);
	else
		printf("%llu packets in %.3f s: %.3f Mpps  %.3f Gbit/s\n", (unsigned long long)pkts,
		       seconds, pps / 1e6, bps / 1e9);
	fflush(stdout);
}

/* The totals of a receive loop driven by rx_clock. */
RAW_FN void print_rx_totals(const struct args *a, const struct rx_clock *c, double cpu)
{
	double active = c->have_first ? c->last - c->first : 0.0;
	print_totals(a, c->pkts, c->bytes, c->pkts - c->base_pkts, c->bytes - c->base_bytes,
		     active, cpu);
}

/*
 * The cost mode (`cargo xtask bench --cost`, each program run under callgrind): the
 * receiver sets up, prints `ready`, and waits for a line on stdin while the traffic is
 * queued in its ring; then cost_drain takes --count packets and cost_empty makes --polls
 * polls of the empty ring. Both are separate functions so callgrind reports each one's
 * instructions; a transmitter's loop is tx_loop. nethuns' `cost` tool has the same shape.
 */
#define COST_DRAIN_GIVEUP 100000u

RAW_FN void cost_wait_go(void)
{
	char line[16];
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		die("cost mode: stdin closed before the go line");
}

/* The cost mode's JSON line: packets drained, empty polls during the drain, empty polls
 * measured after it, packets that came during those (should be 0), seconds of the send +
 * drain rounds (loopback mode; else 0). */
RAW_FN void print_cost(uint64_t pkts, uint64_t drain_empty, uint64_t polls, uint64_t late,
		       double seconds)
{
	printf("{\"packets\":%llu,\"drain_empty\":%llu,\"polls\":%llu,\"late\":%llu,"
	       "\"seconds\":%.6f}\n",
	       (unsigned long long)pkts, (unsigned long long)drain_empty,
	       (unsigned long long)polls, (unsigned long long)late, seconds);
	fflush(stdout);
}

/*
 * Defines cost_drain, cost_empty and run_cost_rx over `POLL(CTX *)`: one poll of the
 * receive ring, returning the packets it took (0: empty), as the program's receive loop
 * does it.
 */
#define RAW_COST_RX(CTX, POLL)                                                               \
	static __attribute__((noinline)) uint64_t cost_drain(CTX *x, uint64_t n, uint64_t *empty) \
	{                                                                                    \
		uint64_t got = 0, idle = 0;                                                  \
		*empty = 0;                                                                  \
		while (got < n && idle < COST_DRAIN_GIVEUP) {                                \
			uint32_t k = POLL(x);                                                \
			got += k;                                                            \
			idle = k ? 0 : idle + 1;                                             \
			*empty += !k;                                                        \
		}                                                                            \
		return got;                                                                  \
	}                                                                                    \
	static __attribute__((noinline)) uint64_t cost_empty(CTX *x, uint64_t polls)        \
	{                                                                                    \
		uint64_t got = 0;                                                            \
		for (uint64_t i = 0; i < polls; i++)                                         \
			got += POLL(x);                                                      \
		return got;                                                                  \
	}                                                                                    \
	static void run_cost_rx(CTX *x, const struct args *a)                                \
	{                                                                                    \
		uint64_t empty;                                                              \
		cost_wait_go();                                                              \
		uint64_t got = cost_drain(x, (uint64_t)a->count, &empty);                    \
		uint64_t late = cost_empty(x, (uint64_t)a->polls);                           \
		print_cost(got, empty, (uint64_t)a->polls, late, 0);                         \
	}

#endif /* RAW_COMMON_H */
