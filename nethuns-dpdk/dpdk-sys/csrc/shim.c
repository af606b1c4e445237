#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"

int nh_rte_errno(void) { return rte_errno; }

unsigned nh_lcore_id(void) { return rte_lcore_id(); }

uint16_t nh_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t nh_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *nh_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int nh_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void nh_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *nh_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

void *nh_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t nh_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

uint16_t nh_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

unsigned nh_mempool_avail_here(struct rte_mempool *mp)
{
	/* What this thread can allocate: the pool's common store (the ops' count, as
	 * rte_mempool_avail_count reads it) plus the calling lcore's own cache, without walking
	 * every lcore's cache as rte_mempool_avail_count does. */
	unsigned n = rte_mempool_get_ops(mp->ops_index)->get_count(mp);
	struct rte_mempool_cache *c = rte_mempool_default_cache(mp, rte_lcore_id());
	if (c != NULL)
		n += c->len;
	return n > mp->size ? mp->size : n;
}

void nh_mbuf_rx_info(const struct rte_mbuf *m, struct nh_rx_info *out)
{
	out->ol_flags = m->ol_flags;
	out->pkt_len = m->pkt_len;
	out->rss = m->hash.rss;
	out->data_len = m->data_len;
	out->nb_segs = m->nb_segs;
	out->port = m->port;
	out->vlan_tci = m->vlan_tci;
}

uint64_t nh_mbuf_dynfield_u64(const struct rte_mbuf *m, int offset)
{
	return *RTE_MBUF_DYNFIELD(m, offset, const uint64_t *);
}

int nh_eth_dev_info(uint16_t port, struct nh_dev_info *out)
{
	struct rte_eth_dev_info info;
	int rc = rte_eth_dev_info_get(port, &info);
	memset(out, 0, sizeof(*out));
	if (rc != 0)
		return rc;
	out->rx_offload_capa = info.rx_offload_capa;
	out->flow_type_rss_offloads = info.flow_type_rss_offloads;
	out->max_rx_pktlen = info.max_rx_pktlen;
	out->min_rx_bufsize = info.min_rx_bufsize;
	out->max_rx_queues = info.max_rx_queues;
	out->max_tx_queues = info.max_tx_queues;
	out->min_mtu = info.min_mtu;
	out->max_mtu = info.max_mtu;
	out->rx_desc_max = info.rx_desc_lim.nb_max;
	out->rx_desc_min = info.rx_desc_lim.nb_min;
	out->tx_desc_max = info.tx_desc_lim.nb_max;
	out->tx_desc_min = info.tx_desc_lim.nb_min;
	if (info.driver_name != NULL)
		snprintf(out->driver_name, sizeof(out->driver_name), "%s", info.driver_name);
	if (info.device != NULL) {
		const struct rte_bus *bus = rte_dev_bus(info.device);
		if (bus != NULL)
			snprintf(out->bus_name, sizeof(out->bus_name), "%s", rte_bus_name(bus));
	}
	return 0;
}

int nh_rx_queue_setup(uint16_t port, uint16_t queue, uint16_t nb_desc, int socket,
		      struct rte_mempool *mp, int deferred)
{
	struct rte_eth_dev_info info;
	int rc = rte_eth_dev_info_get(port, &info);
	if (rc != 0)
		return rc;
	struct rte_eth_rxconf conf = info.default_rxconf;
	conf.rx_deferred_start = deferred ? 1 : 0;
	return rte_eth_rx_queue_setup(port, queue, nb_desc, (unsigned)socket, &conf, mp);
}

int nh_tx_queue_setup(uint16_t port, uint16_t queue, uint16_t nb_desc, int socket, int deferred)
{
	struct rte_eth_dev_info info;
	int rc = rte_eth_dev_info_get(port, &info);
	if (rc != 0)
		return rc;
	struct rte_eth_txconf conf = info.default_txconf;
	conf.tx_deferred_start = deferred ? 1 : 0;
	return rte_eth_tx_queue_setup(port, queue, nb_desc, (unsigned)socket, &conf);
}
