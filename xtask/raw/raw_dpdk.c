/*
 * raw_dpdk: the DPDK baseline of `cargo xtask bench`: receive and transmit loops written
 * directly against DPDK's ethdev API, without nethuns, with the EAL arguments of
 * nethuns-dpdk's Eal::default_args() and the mempool / port configuration of
 * DpdkFlags::default(), printing the same JSON totals as nethuns' `meter` / `pkt-gen` /
 * `raw-pcap`.
 *
 *   raw_dpdk --mode rx --iface net_af_packet0,iface=eth0 --duration 5 --json
 *   raw_dpdk --mode tx --iface net_af_packet0,iface=eth0 --size 64 --duration 5 --json
 *
 * --iface is a device argument string as nethuns-dpdk's portspec takes it: a virtual device
 * (`net_af_packet0,iface=veth0`, `net_af_xdp0,iface=veth0`, `net_tap0` ...), hot-plugged with
 * rte_dev_probe like nethuns-dpdk does, or the name of a device already present.
 *
 * Build: cc -O2 -o raw_dpdk raw_dpdk.c $(pkg-config --cflags --libs libdpdk)
 */
#include "raw_common.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <unistd.h>

/* DpdkFlags::default(): 8191 mbufs, per-lcore cache 250, RTE_MBUF_DEFAULT_BUF_SIZE data room,
 * 1024 RX and 1024 TX descriptors, promiscuous, RX timestamps where the driver offers them,
 * RSS (IP/TCP/UDP) hash where it hashes, no VLAN strip. One RX and one TX queue (0). */
#define NUM_MBUFS 8191u
#define MBUF_CACHE 250u
#define RX_DESC 1024u
#define TX_DESC 1024u
/* Packets per rte_eth_rx_burst / rte_eth_tx_burst (nethuns-dpdk's BURST). */
#define BURST 32u
/* nethuns-dpdk's RSS_IP_TCP_UDP. */
#define RSS_IP_TCP_UDP (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP)

static int port_started = -1, port_configured = -1;
/* Whether we turned promiscuous mode on (some drivers, net_af_packet among them, leave the
 * interface promiscuous after close): turned off again at teardown. */
static int promisc_set = -1;
static char probed_name[RTE_DEV_NAME_MAX_LEN];
static int eal_up;

/* Stops and closes the port, removes a device we hot-plugged, cleans the EAL up. */
static void teardown(void)
{
	if (promisc_set >= 0)
		rte_eth_promiscuous_disable((uint16_t)promisc_set);
	promisc_set = -1;
	if (port_started >= 0)
		rte_eth_dev_stop((uint16_t)port_started);
	if (port_configured >= 0)
		rte_eth_dev_close((uint16_t)port_configured);
	port_started = port_configured = -1;
	if (probed_name[0]) {
		rte_eal_hotplug_remove("vdev", probed_name);
		probed_name[0] = 0;
	}
	if (eal_up) {
		eal_up = 0;
		rte_eal_cleanup();
	}
}

/* The CPUs the calling thread may run on, as an EAL cpu list ("0,1,4"); "0" if unknown. */
static void allowed_cpus(char *buf, size_t len)
{
	cpu_set_t set;
	size_t used = 0;
	buf[0] = 0;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		for (int i = 0; i < CPU_SETSIZE && used + 8 < len; i++)
			if (CPU_ISSET(i, &set))
				used += (size_t)snprintf(buf + used, len - used, "%s%d", used ? "," : "", i);
	if (!buf[0])
		snprintf(buf, len, "0");
}

/* rte_eal_init with nethuns-dpdk's default arguments (Eal::default_args). */
static void eal_init(void)
{
	char prefix[64], lcores[1200], cpus[1024];
	snprintf(prefix, sizeof prefix, "--file-prefix=raw_dpdk-%d", (int)getpid());
	allowed_cpus(cpus, sizeof cpus);
	snprintf(lcores, sizeof lcores, "--lcores=0@(%s)", cpus);
	char *argv[] = {
		"raw_dpdk", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "128",
		prefix, lcores, "--log-level=*:warning", NULL,
	};
	int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
	if (rte_eal_init(argc, argv) < 0)
		die("EAL initialisation: %s", rte_strerror(rte_errno));
	eal_up = 1;
	atexit(teardown);
	/* With no shared files the EAL leaves an empty runtime directory behind. */
	const char *dir = rte_eal_get_runtime_dir();
	if (dir)
		rmdir(dir);
}

/* Hot-plugs the device of `spec` (or finds it already present); returns its port id. */
static uint16_t open_port(const char *spec)
{
	char name[RTE_DEV_NAME_MAX_LEN];
	size_t n = strcspn(spec, ",");
	if (n == 0 || n >= sizeof name)
		die("--iface %s: not a device name (e.g. net_af_packet0,iface=veth0)", spec);
	memcpy(name, spec, n);
	name[n] = 0;
	int rc = rte_dev_probe(spec);
	if (rc == 0)
		snprintf(probed_name, sizeof probed_name, "%s", name);
	else if (rc != -EEXIST)
		die("probing device %s failed (%d%s%s): unknown driver, bad driver arguments, or the "
		    "interface does not exist in this network namespace", spec, rc,
		    rc < -1 ? ": " : "", rc < -1 ? rte_strerror(-rc) : "");
	uint16_t port;
	rc = rte_eth_dev_get_port_by_name(name, &port);
	if (rc)
		die("device %s has no ethdev port: %s", name, rte_strerror(-rc));
	return port;
}

/* Configures port `port` as nethuns-dpdk does with DpdkFlags::default(), and starts it. */
static void setup_port(uint16_t port, struct rte_mempool *mp, const char *spec)
{
	struct rte_eth_dev_info info;
	int rc = rte_eth_dev_info_get(port, &info);
	if (rc)
		die("reading device info of %s: %s", spec, rte_strerror(-rc));
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof conf);
	uint64_t rss = info.flow_type_rss_offloads & RSS_IP_TCP_UDP;
	if (rss) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = rss;
	}
	uint64_t offloads = 0;
	if (rss && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_RSS_HASH))
		offloads |= RTE_ETH_RX_OFFLOAD_RSS_HASH;
	if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP)
		offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
	conf.rxmode.offloads = offloads;
	port_configured = port;
	rc = rte_eth_dev_configure(port, 1, 1, &conf);
	if (rc)
		die("configuring %s (1 queue): %s", spec, rte_strerror(-rc));
	uint16_t nb_rx = RX_DESC, nb_tx = TX_DESC;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rx, &nb_tx);
	if (rc)
		die("adjusting ring sizes of %s: %s", spec, rte_strerror(-rc));
	int socket = rte_eth_dev_socket_id(port);
	if (socket < 0)
		socket = SOCKET_ID_ANY;
	rc = rte_eth_rx_queue_setup(port, 0, nb_rx, (unsigned)socket, &info.default_rxconf, mp);
	if (rc)
		die("setting up RX queue 0 (%u descriptors) of %s: %s", nb_rx, spec, rte_strerror(-rc));
	rc = rte_eth_tx_queue_setup(port, 0, nb_tx, (unsigned)socket, &info.default_txconf);
	if (rc)
		die("setting up TX queue 0 (%u descriptors) of %s: %s", nb_tx, spec, rte_strerror(-rc));
	if (rte_eth_promiscuous_get(port) == 0 && rte_eth_promiscuous_enable(port) == 0)
		promisc_set = port; /* not every driver can: ignored */
	rc = rte_eth_dev_start(port);
	if (rc)
		die("starting %s: %s", spec, rte_strerror(-rc));
	port_started = port;
}

/* The port polled by rx_poll. */
struct rx_port {
	uint16_t port;
	uint64_t bytes; /* received bytes (rx_poll adds to it) */
};

/* One poll: a burst of up to 32, counted and freed in bulk. Returns the packets taken. */
static inline uint32_t rx_poll(struct rx_port *r)
{
	struct rte_mbuf *bufs[BURST];
	uint16_t n = rte_eth_rx_burst(r->port, 0, bufs, BURST);
	if (n == 0)
		return 0;
	uint64_t bytes = 0;
	for (uint16_t i = 0; i < n; i++)
		bytes += rte_pktmbuf_pkt_len(bufs[i]);
	rte_pktmbuf_free_bulk(bufs, n);
	r->bytes += bytes;
	return n;
}

RAW_COST_RX(struct rx_port, rx_poll)

static void run_rx(const struct args *a, uint16_t port)
{
	struct rx_port r = { port, 0 };
	if (a->mode == MODE_COST_RX) {
		run_cost_rx(&r, a);
		return;
	}
	double cpu0 = cpu_seconds();
	struct rx_clock c;
	rx_clock_init(&c, a);
	uint32_t since_check = 0;
	for (;;) {
		uint32_t n = rx_poll(&r);
		if (n > 0) {
			c.pkts += n;
			since_check += n;
			if (since_check < 4096)
				continue;
		}
		/* Every 4096 packets or when the queue is empty: not per packet. */
		since_check = 0;
		c.bytes = r.bytes;
		if (rx_clock_check(&c))
			break;
	}
	c.bytes = r.bytes;
	double cpu = cpu_seconds() - cpu0;
	print_rx_totals(a, &c, cpu);
}

/* Transmits until `count` frames went out (0: no limit) or `limit` (monotonic seconds, 0:
 * none) passes: bursts of 32 mbufs allocated in bulk, filled, tx_burst, the unsent freed.
 * `seq` is the first sequence number. Returns the frames the driver took. */
static __attribute__((noinline)) uint64_t tx_loop(uint16_t port, struct rte_mempool *mp,
						  uint8_t *tmpl, size_t len, uint64_t seq,
						  uint64_t count, double limit)
{
	struct rte_mbuf *bufs[BURST];
	uint64_t sent = 0;
	for (;;) {
		uint32_t k = BURST;
		if (count && count - sent < k)
			k = (uint32_t)(count - sent);
		if (rte_pktmbuf_alloc_bulk(mp, bufs, k) == 0) {
			for (uint32_t i = 0; i < k; i++) {
				uint8_t *p = (uint8_t *)rte_pktmbuf_append(bufs[i], (uint16_t)len);
				set_seq(tmpl, seq + sent + i);
				memcpy(p, tmpl, len);
			}
			uint16_t done = rte_eth_tx_burst(port, 0, bufs, (uint16_t)k);
			if (done < k)
				rte_pktmbuf_free_bulk(bufs + done, k - done);
			sent += done;
		}
		if (stop_requested || (count && sent >= count) || (limit > 0 && now_s() >= limit))
			break;
	}
	return sent;
}

static void run_tx(const struct args *a, uint16_t port, struct rte_mempool *mp)
{
	uint8_t tmpl[RTE_MBUF_DEFAULT_DATAROOM];
	size_t len = (size_t)a->size;
	make_frame(tmpl, len);
	double cpu0 = cpu_seconds();
	double start = now_s();
	uint64_t sent = tx_loop(port, mp, tmpl, len, 0,
				a->mode == MODE_COST_TX ? (uint64_t)a->count : 0,
				a->mode == MODE_COST_TX ? 0 : start + a->duration);
	double el = now_s() - start;
	double cpu = cpu_seconds() - cpu0;
	print_totals(a, sent, sent * len, sent, sent * len, el, cpu);
}

/* Loopback port (net_ring0: what is sent is received): --count frames sent and drained in
 * rounds of 512 (the ring holds 1023), then --polls empty polls; the cost line. */
static void run_cost_loop(const struct args *a, uint16_t port, struct rte_mempool *mp)
{
	uint8_t tmpl[RTE_MBUF_DEFAULT_DATAROOM];
	size_t len = (size_t)a->size;
	make_frame(tmpl, len);
	struct rx_port r = { port, 0 };
	uint64_t total = 0, got = 0, empty = 0;
	cost_wait_go();
	double t0 = now_s();
	while (total < (uint64_t)a->count) {
		uint64_t k = (uint64_t)a->count - total < 512 ? (uint64_t)a->count - total : 512;
		uint64_t sent = tx_loop(port, mp, tmpl, len, total, k, 0);
		uint64_t e;
		got += cost_drain(&r, sent, &e);
		empty += e;
		total += sent;
	}
	double seconds = now_s() - t0;
	uint64_t late = cost_empty(&r, (uint64_t)a->polls);
	print_cost(got, empty, (uint64_t)a->polls, late, seconds);
}

int main(int argc, char **argv)
{
	raw_prog = "raw_dpdk";
	struct args a = parse_args(argc, argv, 1, 0);
	install_stop_handler();
	/* Pinned before EAL init, as nethuns' tools pin before creating the socket: the lcore
	 * then runs on the CPUs the thread may use. */
	pin(a.cpu);
	if (a.mode != MODE_RX && a.mode != MODE_COST_RX && (size_t)a.size > RTE_MBUF_DEFAULT_DATAROOM)
		die("--size: %ld bytes does not fit in an mbuf (at most %d)", a.size,
		    RTE_MBUF_DEFAULT_DATAROOM);
	eal_init();
	/* rte_eal_init installs no signal handlers of its own; make sure ours are in place. */
	install_stop_handler();
	uint16_t port = open_port(a.iface);
	int socket = rte_eth_dev_socket_id(port);
	if (socket < 0)
		socket = SOCKET_ID_ANY;
	char pool[64];
	snprintf(pool, sizeof pool, "raw_mp_%d", (int)getpid());
	struct rte_mempool *mp =
		rte_pktmbuf_pool_create(pool, NUM_MBUFS, MBUF_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	if (!mp)
		die("creating mempool of %u mbufs x %u B: %s (raise -m or lower the count)", NUM_MBUFS,
		    (unsigned)RTE_MBUF_DEFAULT_BUF_SIZE, rte_strerror(rte_errno));
	setup_port(port, mp, a.iface);
	if (a.mode == MODE_TX || a.mode == MODE_COST_TX) {
		uint16_t mtu = 1500;
		rte_eth_dev_get_mtu(port, &mtu);
		check_size_fits_mtu(a.size, mtu, a.iface);
	}
	if (a.mode == MODE_RX || a.mode == MODE_COST_RX)
		run_rx(&a, port);
	else if (a.mode == MODE_COST_LOOP)
		run_cost_loop(&a, port, mp);
	else
		run_tx(&a, port, mp);
	/* Port first (its queues hold mbufs of the pool), then the pool, then the EAL. */
	if (promisc_set >= 0)
		rte_eth_promiscuous_disable(port);
	promisc_set = -1;
	if (port_started >= 0)
		rte_eth_dev_stop(port);
	port_started = -1;
	rte_eth_dev_close(port);
	port_configured = -1;
	if (probed_name[0]) {
		rte_eal_hotplug_remove("vdev", probed_name);
		probed_name[0] = 0;
	}
	rte_mempool_free(mp);
	teardown();
	return 0;
}
