// SPDX-License-Identifier: GPL-2.0
/*
 * netxray stats: packets and bytes counted in the kernel at XDP (opt-in) and
 * tcx ingress/egress, per interface and direction, per L3/L4 protocol, and
 * per flow. No per-packet events: user space reads the maps each interval.
 *
 * The packet's first bytes are copied into the scratch record (as trace does)
 * so that the same compiled filter (nx_filter_jit) runs on them, and parsed
 * from there. tcx programs return TCX_NEXT: later tcx programs and clsact
 * filters still run. XDP returns XDP_PASS. Nothing is changed.
 */
#include "nx_packet.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NX_TCX_NEXT (-1)
#define NX_XDP_PASS 2
#define NX_ETH_P_ARP 0x0806

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nx_if_key);
	__type(value, struct nx_if_stats);
} nx_if_stats SEC(".maps");

/* Bounded: the oldest flows are evicted (counted in user space as
 * inserted - present). The size is set by user space (--flows). Per-CPU
 * values: counting needs no atomic operation. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct nx_flow_key);
	__type(value, struct nx_flow_val);
} nx_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_stats_ctl);
} nx_stats_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_flow_last);
} nx_flow_last SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NX_DIR_MAX);
	__type(key, __u32);
	__type(value, struct nx_if_last);
} nx_if_last SEC(".maps");

/* The table's entry for an interface and direction, inserted if new. */
static __always_inline struct nx_if_stats *nx_if_entry(const struct nx_if_key *key)
{
	struct nx_if_stats *st = bpf_map_lookup_elem(&nx_if_stats, key);

	if (!st) {
		struct nx_if_stats zero = {};
		bpf_map_update_elem(&nx_if_stats, key, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&nx_if_stats, key);
	}
	return st;
}

/* Where to count a packet of this interface and direction: this CPU's slot
 * for the direction (an array lookup, inlined by the verifier), which
 * first hands the counts of the interface it held to the table. */
static __always_inline struct nx_if_stats *nx_if_counts(__u32 ifindex, __u32 dir)
{
	struct nx_if_key key = { .ifindex = ifindex, .dir = dir };
	struct nx_if_last *last = bpf_map_lookup_elem(&nx_if_last, &dir);
	struct nx_if_stats *st;

	if (!last)
		return nx_if_entry(&key);
	if (last->key.ifindex == ifindex)
		return &last->st;
	if (last->key.ifindex) {
		__u64 *to, *from = (__u64 *)&last->st;

		st = nx_if_entry(&last->key);
		if (!st)	/* The table is full: the slot keeps its counts. */
			return nx_if_entry(&key);
		to = (__u64 *)st;
#pragma unroll
		for (int i = 0; i < (int)(sizeof(*st) / 8); i++)
			to[i] += from[i];
	}
	__builtin_memset(&last->st, 0, sizeof(last->st));
	last->key = key;
	return &last->st;
}

static __always_inline bool nx_flow_key_eq(const struct nx_flow_key *a, const struct nx_flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*a) / 4); i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

struct nx_parsed {
	__u32 l3;
	__u32 l4;
	bool syn;
	bool rst;
	bool flow;
};

static __always_inline __u16 nx_be16(const __u8 *d, __u32 off)
{
	return ((__u16)d[off & (NX_CAP_BYTES - 1)] << 8) | d[(off + 1) & (NX_CAP_BYTES - 1)];
}

/* Parse the copied bytes (from the Ethernet header, n of them). */
static __always_inline void nx_parse(const __u8 *d, __u32 n, struct nx_parsed *p,
				     struct nx_flow_key *fk)
{
	__u32 off = 12, l4;
	__u16 et;
	__u8 proto;

	p->l3 = NX_L3_OTHER;
	p->l4 = NX_L4_NONE;
	if (n < 14)
		return;
	et = nx_be16(d, off);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if ((et == NX_ETH_P_8021Q || et == NX_ETH_P_8021AD) && n >= off + 6) {
			off += 4;
			et = nx_be16(d, off);
		}
	}
	off += 2;
	if (et == NX_ETH_P_ARP) {
		p->l3 = NX_L3_ARP;
		return;
	}
	if (et == NX_ETH_P_IP) {
		p->l3 = NX_L3_IPV4;
		if (n < off + 20)
			return;
		__u32 ihl = (d[off & (NX_CAP_BYTES - 1)] & 0xf) * 4;
		if (ihl < 20)
			return;
		proto = d[(off + 9) & (NX_CAP_BYTES - 1)];
		fk->family = NX_AF_INET;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			fk->saddr[i] = d[(off + 12 + i) & (NX_CAP_BYTES - 1)];
			fk->daddr[i] = d[(off + 16 + i) & (NX_CAP_BYTES - 1)];
		}
		/* A later fragment has no L4 header. */
		if (nx_be16(d, off + 6) & 0x1fff) {
			fk->proto = proto;
			p->l4 = NX_L4_OTHER;
			p->flow = true;
			return;
		}
		l4 = off + ihl;
	} else if (et == NX_ETH_P_IPV6) {
		p->l3 = NX_L3_IPV6;
		if (n < off + 40)
			return;
		proto = d[(off + 6) & (NX_CAP_BYTES - 1)];
		fk->family = NX_AF_INET6;
#pragma unroll
		for (int i = 0; i < 16; i++) {
			fk->saddr[i] = d[(off + 8 + i) & (NX_CAP_BYTES - 1)];
			fk->daddr[i] = d[(off + 24 + i) & (NX_CAP_BYTES - 1)];
		}
		l4 = off + 40;
	} else {
		return;
	}
	fk->proto = proto;
	p->flow = true;
	switch (proto) {
	case 6:
		p->l4 = NX_L4_TCP;
		if (n >= l4 + 14) {
			__u8 flags = d[(l4 + 13) & (NX_CAP_BYTES - 1)];
			p->syn = (flags & 0x12) == 0x02;
			p->rst = flags & 0x04;
		}
		break;
	case 17:
		p->l4 = NX_L4_UDP;
		break;
	case 1:
	case 58:
		p->l4 = NX_L4_ICMP;
		if (n >= l4 + 8) {
			fk->dport = nx_be16(d, l4);	/* type << 8 | code */
			fk->sport = nx_be16(d, l4 + 4);	/* echo id */
		}
		return;
	default:
		p->l4 = NX_L4_OTHER;
		return;
	}
	if (n >= l4 + 4) {
		fk->sport = nx_be16(d, l4);
		fk->dport = nx_be16(d, l4 + 2);
	}
}

/* Add n packets of len bytes to a flow in the table (inserting it). */
static __always_inline void nx_flow_add(struct nx_flow_key *fk, __u64 n, __u64 len)
{
	struct nx_flow_val *v = bpf_map_lookup_elem(&nx_flows, fk);
	__u32 zero = 0;
	struct nx_stats_ctl *ctl;

	if (v) {
		v->packets += n;
		v->bytes += len;
		return;
	}
	struct nx_flow_val nv = { .packets = n, .bytes = len };
	nv.first_ns = bpf_ktime_get_ns();
	ctl = bpf_map_lookup_elem(&nx_stats_ctl, &zero);
	if (bpf_map_update_elem(&nx_flows, fk, &nv, BPF_NOEXIST) == 0) {
		if (ctl)
			ctl->flows_inserted++;
		return;
	}
	v = bpf_map_lookup_elem(&nx_flows, fk);
	if (v) {
		v->packets += n;
		v->bytes += len;
	} else if (ctl) {
		ctl->flows_failed++;
	}
}

/* The last flow of this CPU is counted in nx_flow_last; another one flushes
 * it into the table and takes its place. */
static __always_inline void nx_count_flow(struct nx_flow_key *fk, __u32 len)
{
	__u32 zero = 0;
	struct nx_flow_last *last = bpf_map_lookup_elem(&nx_flow_last, &zero);

	if (!last) {
		nx_flow_add(fk, 1, len);
		return;
	}
	if (last->packets && nx_flow_key_eq(&last->key, fk)) {
		last->packets++;
		last->bytes += len;
		return;
	}
	if (last->packets)
		nx_flow_add(&last->key, last->packets, last->bytes);
	__builtin_memcpy(&last->key, fk, sizeof(*fk));
	last->packets = 1;
	last->bytes = len;
}

/* Count one packet whose first n bytes are in s->ev.data. */
static __always_inline void nx_count(struct nx_scratch *s, struct nx_config *cfg, __u32 ifindex,
				     __u32 dir, __u32 len, __u32 n)
{
	struct nx_flow_key fk = {};
	struct nx_parsed p = {};
	struct nx_if_stats *st = nx_if_counts(ifindex, dir);

	if (!st)
		return;
	if (cfg->flags & NX_CFG_FILTER) {
		s->ev.flags = NX_F_L2;
		s->ev.l3_off = 14;
		s->ev.len = len;
		s->ev.cap_len = n;
		s->ethertype = 0;
		if (!nx_filter_jit(s, s->ev.data)) {
			st->filtered++;
			return;
		}
	}
	nx_parse(s->ev.data, n, &p, &fk);
	st->packets++;
	st->bytes += len;
	st->l3_packets[p.l3 & 3]++;
	st->l3_bytes[p.l3 & 3] += len;
	if (p.l4 < NX_L4_MAX) {
		st->l4_packets[p.l4]++;
		st->l4_bytes[p.l4] += len;
	}
	st->tcp_syn += p.syn;
	st->tcp_rst += p.rst;
	if (p.flow) {
		fk.dir = dir;
		fk.ifindex = ifindex;
		nx_count_flow(&fk, len);
	}
}

static __always_inline int nx_tc(struct __sk_buff *skb, __u32 dir)
{
	struct nx_config *cfg = nx_get_config();
	struct nx_scratch *s = nx_get_scratch();
	__u32 len = skb->len, n;

	if (!cfg || !s)
		return NX_TCX_NEXT;
	n = len < NX_CAP_BYTES ? len : NX_CAP_BYTES;
	if (n < 14 || bpf_skb_load_bytes(skb, 0, s->ev.data, n) != 0)
		n = 0;
	nx_count(s, cfg, skb->ifindex, dir, len, n);
	return NX_TCX_NEXT;
}

SEC("classifier")
int stats_tc_ingress(struct __sk_buff *skb)
{
	return nx_tc(skb, NX_DIR_TC_INGRESS);
}

SEC("classifier")
int stats_tc_egress(struct __sk_buff *skb)
{
	return nx_tc(skb, NX_DIR_TC_EGRESS);
}

SEC("xdp")
int stats_xdp(struct xdp_md *ctx)
{
	struct nx_config *cfg = nx_get_config();
	struct nx_scratch *s = nx_get_scratch();
	__u32 len = ctx->data_end - ctx->data, n;

	if (!cfg || !s)
		return NX_XDP_PASS;
	n = len < NX_CAP_BYTES ? len : NX_CAP_BYTES;
	if (n < 14 || !nx_xdp_copy(ctx, s->ev.data, n))
		n = 0;
	nx_count(s, cfg, ctx->ingress_ifindex, NX_DIR_XDP, len, n);
	return NX_XDP_PASS;
}
