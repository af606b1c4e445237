/* nethuns-dpdk-sys: out-of-line wrappers for DPDK's static-inline functions, so Rust can call
 * them. Each one is a thin forward to the DPDK function of the same name (minus `nh_`). */
#ifndef NETHUNS_DPDK_SHIM_H
#define NETHUNS_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/* rte_errno of the calling thread. */
int nh_rte_errno(void);
/* rte_lcore_id() of the calling thread (UINT32_MAX on a non-EAL thread). */
unsigned nh_lcore_id(void);

uint16_t nh_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t nh_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *nh_pktmbuf_alloc(struct rte_mempool *mp);
/* 0 on success (all `n` allocated), negative if the pool cannot give `n`. */
int nh_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void nh_pktmbuf_free(struct rte_mbuf *m);
char *nh_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
/* Pointer to the first data byte (rte_pktmbuf_mtod). */
void *nh_pktmbuf_mtod(struct rte_mbuf *m);
/* Room after the data in the first segment (rte_pktmbuf_tailroom). */
uint16_t nh_pktmbuf_tailroom(const struct rte_mbuf *m);
/* Data room of the pool's mbufs, headroom included (rte_pktmbuf_data_room_size). */
uint16_t nh_pktmbuf_data_room_size(struct rte_mempool *mp);

/* Free mbufs this thread could allocate from `mp`: the common store plus the calling lcore's
 * cache (cheaper than rte_mempool_avail_count, which adds every lcore's cache). */
unsigned nh_mempool_avail_here(struct rte_mempool *mp);

/* The receive-side fields of an mbuf, read in one call. */
struct nh_rx_info {
	uint64_t ol_flags;
	uint32_t pkt_len;
	uint32_t rss;
	uint16_t data_len;
	uint16_t nb_segs;
	uint16_t port;
	uint16_t vlan_tci;
};
void nh_mbuf_rx_info(const struct rte_mbuf *m, struct nh_rx_info *out);
/* The 64-bit dynamic field at byte `offset` of the mbuf (the RX timestamp). */
uint64_t nh_mbuf_dynfield_u64(const struct rte_mbuf *m, int offset);

/* The parts of rte_eth_dev_info nethuns needs. */
struct nh_dev_info {
	uint64_t rx_offload_capa;
	uint64_t flow_type_rss_offloads;
	uint32_t max_rx_pktlen;
	uint32_t min_rx_bufsize;
	uint16_t max_rx_queues;
	uint16_t max_tx_queues;
	uint16_t min_mtu;
	uint16_t max_mtu;
	uint16_t rx_desc_max;
	uint16_t rx_desc_min;
	uint16_t tx_desc_max;
	uint16_t tx_desc_min;
	char driver_name[64];
	char bus_name[32];
};
/* rte_eth_dev_info_get, copied into `out`; returns its result (0 or -errno). */
int nh_eth_dev_info(uint16_t port, struct nh_dev_info *out);

/* rte_eth_rx_queue_setup with the driver's default rxconf, plus deferred start when asked
 * (queues nethuns configures but does not use are left unstarted). */
int nh_rx_queue_setup(uint16_t port, uint16_t queue, uint16_t nb_desc, int socket,
		      struct rte_mempool *mp, int deferred);
/* rte_eth_tx_queue_setup with the driver's default txconf (and deferred start when asked). */
int nh_tx_queue_setup(uint16_t port, uint16_t queue, uint16_t nb_desc, int socket, int deferred);

#endif
