/*
 * raw_afpacket: the AF_PACKET baseline of `cargo xtask bench`: TPACKET_v3 receive and
 * PACKET_TX_RING transmit loops written directly against the kernel API, without nethuns,
 * with the ring geometry of nethuns-afpacket's AfPacketFlags::default(), printing the same
 * JSON totals as nethuns' `meter` / `pkt-gen` / `raw-pcap`.
 *
 *   raw_afpacket --mode rx --iface eth0 --duration 5 --json
 *   raw_afpacket --mode tx --iface eth0 --size 64 --duration 5 --json
 *
 * Build: cc -O2 -o raw_afpacket raw_afpacket.c
 */
#include "raw_common.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* AfPacketFlags::default(): 32 RX blocks of 256 KiB, 2048-byte frames, 2 ms block timeout,
 * 1024 TX frames (of frame_size bytes, in page-sized blocks), promiscuous, no qdisc bypass. */
#define BLOCK_SIZE (1u << 18)
#define BLOCK_COUNT 32u
#define FRAME_SIZE 2048u
#define BLOCK_TIMEOUT_MS 2u
#define TX_FRAMES 1024u
/* Frames submitted per sendto: pkt-gen's --batch default. */
#define TX_BATCH 32u
/* Where the frame data starts in a TX slot: TPACKET_ALIGN(sizeof(struct tpacket3_hdr)). */
#define TX_DATA_OFFSET TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

static int open_socket(const char *iface, int protocol, int *ifindex)
{
	*ifindex = (int)if_nametoindex(iface);
	if (*ifindex == 0)
		die("interface %s: %s", iface, strerror(errno));
	int fd = socket(AF_PACKET, SOCK_RAW, protocol);
	if (fd < 0)
		die("opening an AF_PACKET socket on %s (needs CAP_NET_RAW): %s", iface, strerror(errno));
	int v = TPACKET_V3;
	if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
		die("selecting TPACKET_V3 on %s: %s", iface, strerror(errno));
	return fd;
}

static void bind_to(int fd, const char *iface, int ifindex, int protocol)
{
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof sll);
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = (unsigned short)protocol;
	sll.sll_ifindex = ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
		die("binding to %s: %s", iface, strerror(errno));
}

/* The receive ring and where the reader is. */
struct rx_ring {
	uint8_t *ring;
	unsigned block;
	uint64_t bytes; /* received bytes (rx_poll adds to it) */
};

/* One poll: if the current block is the user's, walk its packets, count, hand the block back.
 * Returns the packets taken. */
static inline uint32_t rx_poll(struct rx_ring *r)
{
	struct tpacket_block_desc *bd =
		(struct tpacket_block_desc *)(r->ring + (size_t)r->block * BLOCK_SIZE);
	uint32_t status = __atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
	if (!(status & TP_STATUS_USER))
		return 0;
	uint32_t n = bd->hdr.bh1.num_pkts;
	uint8_t *p = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct tpacket3_hdr *h = (struct tpacket3_hdr *)p;
		bytes += h->tp_snaplen;
		p += h->tp_next_offset;
	}
	r->bytes += bytes;
	/* Whole block read: give it back to the kernel. */
	__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
	r->block = r->block + 1 == BLOCK_COUNT ? 0 : r->block + 1;
	return n;
}

RAW_COST_RX(struct rx_ring, rx_poll)

static int run_rx(const struct args *a)
{
	int ifindex;
	int fd = open_socket(a->iface, htons(ETH_P_ALL), &ifindex);
	struct tpacket_req3 req;
	memset(&req, 0, sizeof req);
	req.tp_block_size = BLOCK_SIZE;
	req.tp_block_nr = BLOCK_COUNT;
	req.tp_frame_size = FRAME_SIZE;
	req.tp_frame_nr = (BLOCK_SIZE / FRAME_SIZE) * BLOCK_COUNT;
	req.tp_retire_blk_tov = BLOCK_TIMEOUT_MS;
	req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
	if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
		die("setting up the RX ring (%u blocks of %u bytes) on %s: %s", BLOCK_COUNT,
		    BLOCK_SIZE, a->iface, strerror(errno));
	size_t map_len = (size_t)BLOCK_SIZE * BLOCK_COUNT;
	uint8_t *ring = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (ring == MAP_FAILED)
		die("mapping the RX ring of %s: %s", a->iface, strerror(errno));
	struct packet_mreq mreq;
	memset(&mreq, 0, sizeof mreq);
	mreq.mr_ifindex = ifindex;
	mreq.mr_type = PACKET_MR_PROMISC;
	if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0)
		die("entering promiscuous mode on %s: %s", a->iface, strerror(errno));
	bind_to(fd, a->iface, ifindex, htons(ETH_P_ALL));

	struct rx_ring r = { ring, 0, 0 };
	if (a->mode == MODE_COST_RX) {
		run_cost_rx(&r, a);
		munmap(ring, map_len);
		close(fd);
		return 0;
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
		/* Every 4096 packets or when the ring is empty: not per packet. */
		since_check = 0;
		c.bytes = r.bytes;
		if (rx_clock_check(&c))
			break;
	}
	c.bytes = r.bytes;
	double cpu = cpu_seconds() - cpu0;
	munmap(ring, map_len);
	close(fd);
	print_rx_totals(a, &c, cpu);
	return 0;
}

/* Submits every slot marked TP_STATUS_SEND_REQUEST with one zero-length sendto. */
static void kick(int fd, const char *iface)
{
	if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0) {
		int e = errno;
		if (e != EAGAIN && e != ENOBUFS && e != EINTR)
			die("sendto on %s: %s", iface, strerror(e));
	}
}

/* The transmit ring's geometry. */
struct tx_ring {
	int fd;
	const char *iface;
	uint8_t *ring;
	uint32_t tx_block, per_block, frames;
};

/* Transmits until `count` frames are queued (0: no limit) or `limit` (monotonic seconds, 0:
 * none) passes: fill free slots, one sendto per 32 frames, and when the ring is full. Returns
 * the frames queued. */
static __attribute__((noinline)) uint64_t tx_loop(const struct tx_ring *t, uint8_t *tmpl,
						  size_t len, uint64_t count, double limit)
{
	uint64_t sent = 0;
	uint32_t next = 0, queued = 0;
	for (;;) {
		uint8_t *slot = t->ring + (size_t)(next / t->per_block) * t->tx_block +
				(size_t)(next % t->per_block) * FRAME_SIZE;
		struct tpacket3_hdr *h = (struct tpacket3_hdr *)slot;
		uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
		if (st != TP_STATUS_AVAILABLE && !(st & TP_STATUS_WRONG_FORMAT)) {
			/* Ring full: submit what is queued, and look again later. */
			kick(t->fd, t->iface);
			queued = 0;
			if (stop_requested || (limit > 0 && now_s() >= limit))
				break;
			continue;
		}
		set_seq(tmpl, sent);
		memcpy(slot + TX_DATA_OFFSET, tmpl, len);
		h->tp_len = (uint32_t)len;
		h->tp_snaplen = (uint32_t)len;
		h->tp_next_offset = 0;
		__atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
		next = next + 1 == t->frames ? 0 : next + 1;
		sent++;
		if (++queued == TX_BATCH || (count && sent >= count)) {
			kick(t->fd, t->iface);
			queued = 0;
			if (stop_requested || (count && sent >= count) ||
			    (limit > 0 && now_s() >= limit))
				break;
		}
	}
	if (queued)
		kick(t->fd, t->iface);
	return sent;
}

static int run_tx(const struct args *a)
{
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		page = 4096;
	/* nethuns-afpacket's TxGeometry: the smallest page multiple holding one frame per
	 * block, enough blocks for TX_FRAMES frames. */
	uint32_t tx_block = (FRAME_SIZE + (uint32_t)page - 1) / (uint32_t)page * (uint32_t)page;
	uint32_t per_block = tx_block / FRAME_SIZE;
	uint32_t tx_blocks = (TX_FRAMES + per_block - 1) / per_block;
	uint32_t frames = tx_blocks * per_block;
	if ((size_t)a->size > FRAME_SIZE - TX_DATA_OFFSET)
		die("--size: %ld bytes does not fit in a %u-byte TX slot (at most %zu)", a->size,
		    FRAME_SIZE, (size_t)(FRAME_SIZE - TX_DATA_OFFSET));

	check_size_fits_mtu(a->size, if_mtu(a->iface), a->iface);
	int ifindex;
	/* Protocol 0: a send-only socket, no receive hook (no copy of our own frames). */
	int fd = open_socket(a->iface, 0, &ifindex);
	int one = 1;
	/* A malformed frame is skipped instead of stopping the ring (as nethuns-afpacket). */
	if (setsockopt(fd, SOL_PACKET, PACKET_LOSS, &one, sizeof one) < 0)
		die("PACKET_LOSS on %s: %s", a->iface, strerror(errno));
	struct tpacket_req3 req;
	memset(&req, 0, sizeof req);
	req.tp_block_size = tx_block;
	req.tp_block_nr = tx_blocks;
	req.tp_frame_size = FRAME_SIZE;
	req.tp_frame_nr = frames;
	if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0)
		die("setting up the TX ring (%u frames of %u bytes) on %s: %s", frames, FRAME_SIZE,
		    a->iface, strerror(errno));
	size_t map_len = (size_t)tx_block * tx_blocks;
	uint8_t *ring = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (ring == MAP_FAILED)
		die("mapping the TX ring of %s: %s", a->iface, strerror(errno));
	bind_to(fd, a->iface, ifindex, 0);

	uint8_t tmpl[FRAME_SIZE];
	size_t len = (size_t)a->size;
	make_frame(tmpl, len);

	struct tx_ring t = { fd, a->iface, ring, tx_block, per_block, frames };
	double cpu0 = cpu_seconds();
	double start = now_s();
	uint64_t sent = tx_loop(&t, tmpl, len, a->mode == MODE_COST_TX ? (uint64_t)a->count : 0,
				a->mode == MODE_COST_TX ? 0 : start + a->duration);
	double el = now_s() - start;
	double cpu = cpu_seconds() - cpu0;
	munmap(ring, map_len);
	close(fd);
	print_totals(a, sent, sent * len, sent, sent * len, el, cpu);
	return 0;
}

int main(int argc, char **argv)
{
	raw_prog = "raw_afpacket";
	struct args a = parse_args(argc, argv, 1, 0);
	install_stop_handler();
	pin(a.cpu);
	if (a.mode == MODE_COST_LOOP)
		die("--mode cost-loop: an in-process pair is DPDK's (raw_dpdk)");
	return a.mode == MODE_RX || a.mode == MODE_COST_RX ? run_rx(&a) : run_tx(&a);
}
