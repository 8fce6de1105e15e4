// SPDX-License-Identifier: GPL-2.0
/*
 * netxray trace: one tp_btf program per tracepoint, all feeding one record
 * format (struct nx_event) through the same filter.
 *
 * What each hook really hands us is documented in docs/hooks.md; the short
 * version is in the comments at each program.
 */
#include "nx_hook.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* skbs seen at net_dev_start_xmit that passed the filter, so that the
 * matching net_dev_xmit (whose skb may already be freed) is reported without
 * decoding it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} nx_xmit_pending SEC(".maps");


/* --stack: kernel stacks, by the id in nx_event.stack_id. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} nx_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_drop_last);
} nx_drop_last SEC(".maps");

/* netxray drops: counts per (reason, location, netns, ifindex). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct nx_drop_key);
	__type(value, struct nx_drop_val);
} nx_drops SEC(".maps");

/* --ret: what the last entry hook of each kind recorded on this CPU, for its
 * exit tracepoint (which has only the return value). Slots: 0 netif_rx,
 * 1 netif_receive_skb, 2 napi_gro_receive, 3 netif_receive_skb_list. */
struct nx_ret_slot {
	__u64 skb;
	__u64 head;
	__u64 netns_cookie;
	__u32 netns;
	__u32 ifindex;
	char ifname[NX_IFNAMSIZ];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct nx_ret_slot);
} nx_ret_pending SEC(".maps");



/* Namespace, device and process pre-filters: the cheapest tests first. */
static __always_inline bool nx_prefilter(struct nx_ctx *c, __u32 netns, __u32 ifindex, bool *irq)
{
	struct nx_config *cfg = c->cfg;

	if (cfg->netns && netns != cfg->netns)
		return false;
	if (cfg->ifindex && ifindex != cfg->ifindex)
		return false;
	*irq = false;
	if (cfg->tgid) {
		*irq = nx_in_irq(c->s, c->ctx, cfg->thread_size);
		if (*irq || (bpf_get_current_pid_tgid() >> 32) != cfg->tgid)
			return false;
	}
	c->s->ev.netns = netns;
	c->s->ev.ifindex = ifindex;
	return true;
}

static __always_inline void nx_finish(struct nx_ctx *c, bool irq)
{
	c->cnt->matched++;
	if (c->cfg->stack_hooks & (1ULL << (c->s->ev.hook & 63))) {
		long id = bpf_get_stackid(c->ctx, &nx_stacks, 0);
		if (id < 0) {
			c->s->ev.stack_id = -2;
			c->cnt->stack_lost++;
		} else {
			c->s->ev.stack_id = id;
		}
	}
	if (!c->cfg->tgid)
		irq = nx_in_irq(c->s, c->ctx, c->cfg->thread_size);
	if (nx_owns(c))
		nx_emit(c->s, c->cfg, c->cnt, irq);
}



/* The exit slot of an entry hook, or -1. */
static __always_inline int nx_ret_slot_of(__u32 hook)
{
	switch (hook) {
	case NX_HOOK_NETIF_RX_ENTRY: return 0;
	case NX_HOOK_NETIF_RECEIVE_SKB_ENTRY: return 1;
	case NX_HOOK_NAPI_GRO_RECEIVE_ENTRY: return 2;
	case NX_HOOK_NETIF_RECEIVE_SKB_LIST_ENTRY: return 3;
	}
	return -1;
}

/* --ret: an entry hook's packet matched: remember it for the exit. (Device
 * name and namespace are filled in by then: called after them.) */
static __always_inline void nx_ret_remember(struct nx_event *e)
{
	int slot = nx_ret_slot_of(e->hook);
	__u32 key;
	struct nx_ret_slot *r;

	if (slot < 0)
		return;
	key = slot;
	r = bpf_map_lookup_elem(&nx_ret_pending, &key);
	if (!r)
		return;
	r->skb = e->skb;
	r->head = e->head;
	r->netns = e->netns;
	r->netns_cookie = e->netns_cookie;
	r->ifindex = e->ifindex;
	__builtin_memcpy(r->ifname, e->ifname, sizeof(r->ifname));
}

/* --ret: at an exit tracepoint, report what the function returned for the
 * packet its entry hook matched on this CPU. */
static __always_inline void nx_ret_event(struct nx_ctx *c, __u32 slot, int ret)
{
	struct nx_event *e = &c->s->ev;
	struct nx_ret_slot *r = bpf_map_lookup_elem(&nx_ret_pending, &slot);

	if (!r || !r->skb)
		return;
	e->kind = NX_KIND_RET;
	e->skb = r->skb;
	e->head = r->head;
	e->netns = r->netns;
	e->netns_cookie = r->netns_cookie;
	e->ifindex = r->ifindex;
	__builtin_memcpy(e->ifname, r->ifname, sizeof(e->ifname));
	e->ret = ret;
	r->skb = 0;
	nx_finish(c, false);
}

/* At a free: does another skb (a clone) still hold the data buffer?
 * skb_shared_info.dataref counts the holders in its low 16 bits. */
static __always_inline void nx_mark_shared(struct nx_event *e, struct sk_buff *skb)
{
	unsigned char *head = (skb->head);
	__u32 end = (skb->end);
	struct skb_shared_info *sh = (void *)(head + end);
	int refs = 0;

	if (bpf_probe_read_kernel(&refs, sizeof(refs), &sh->dataref) == 0 && (refs & 0xffff) > 1)
		e->flags |= NX_F_SHARED;
}


/* The common path for hooks that hand us a packet we can read. */
static __always_inline bool nx_skb_event(struct nx_ctx *c, struct sk_buff *skb,
					 const struct net_device *dev)
{
	struct nx_event *e = &c->s->ev;
	bool irq;

	if (!skb)
		return false;
	/* The namespace's pointer is loaded once, here, not again after the
	 * filter: each load of a pointer from skb or from the socket costs the
	 * verifier (6.5+) a walk over the kernel's BTF, once per path it
	 * verifies (docs/dev-notes.md, issue #17). */
	const struct net *net = nx_net_of_skb_dev(skb, &dev);
	if (dev) {
		/* The namespace's inode is one more dependent load: only before
		 * the filter when filtering on it. (net is tested on its own: to
		 * the verifier, a device pointer is never NULL.) */
		__u32 netns = c->cfg->netns && net ? net->ns.inum : 0;
		if (!nx_prefilter(c, netns, dev->ifindex, &irq))
			return false;
	} else {
		__u32 netns = net ? net->ns.inum : 0;
		if (!nx_prefilter(c, netns, (skb->skb_iif), &irq))
			return false;
		e->flags |= NX_F_NO_DEV;
	}
	e->kind = NX_KIND_PACKET;
	if (!nx_skb_wanted(c, skb, dev))
		return false;
	if (e->hook == NX_HOOK_KFREE_SKB || e->hook == NX_HOOK_CONSUME_SKB)
		nx_mark_shared(e, skb);
	if (e->cap_len > c->cfg->cap_bytes)
		e->cap_len = c->cfg->cap_bytes;
	nx_set_net(e, net);
	nx_set_dev_name(e, dev);
	if (c->cfg->flags & NX_CFG_RET)
		nx_ret_remember(e);
	nx_finish(c, irq);
	return true;
}

/* Hooks where the packet cannot be read: the socket gives the flow.
 * rx: the packet travels remote -> local. */
static __always_inline void nx_sock_tuple(struct nx_tuple *t, const struct sock *sk, bool rx)
{
	__u16 family = (sk->__sk_common.skc_family);
	__u16 lport = (sk->__sk_common.skc_num);
	__u16 rport = bpf_ntohs((sk->__sk_common.skc_dport));
	__u8 *loc = rx ? t->daddr : t->saddr;
	__u8 *rem = rx ? t->saddr : t->daddr;

	t->family = family;
	t->l4proto = (sk->sk_protocol);
	t->sport = rx ? rport : lport;
	t->dport = rx ? lport : rport;
	/* Direct (BTF) loads, not bpf_probe_read_kernel: a helper call is
	 * dear here (docs/dev-notes.md, "Helper calls"). */
	if (family == NX_AF_INET) {
		__builtin_memcpy(loc, &sk->__sk_common.skc_rcv_saddr, 4);
		__builtin_memcpy(rem, &sk->__sk_common.skc_daddr, 4);
	} else if (family == NX_AF_INET6) {
		__builtin_memcpy(loc, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(rem, &sk->__sk_common.skc_v6_daddr, 16);
	}
}

/* IP sockets only at the socket hooks: a packet socket's copy (tcpdump) is
 * not the packet delivered, and unix or netlink sockets are not the
 * network's. */
static __always_inline bool nx_sock_is_ip(const struct sock *sk)
{
	__u16 family = (sk->__sk_common.skc_family);

	return family == NX_AF_INET || family == NX_AF_INET6;
}

static __always_inline void nx_sock_event(struct nx_ctx *c, const struct sock *sk,
					  const struct sk_buff *skb, bool rx, __u32 ifindex)
{
	struct nx_event *e = &c->s->ev;
	bool irq;

	if (!sk)
		return;
	if (!nx_sock_is_ip(sk))
		return;
	/* Loaded once (see nx_skb_event). */
	const struct net *net = sk->__sk_common.skc_net.net;
	barrier_var(net);
	if (!nx_prefilter(c, net ? net->ns.inum : 0, ifindex, &irq))
		return;
	e->kind = NX_KIND_SOCKET;
	e->flags |= NX_F_TUPLE | NX_F_NO_DEV;
	if (skb) {
		e->skb = (__u64)skb;
		e->head = (__u64)(skb->head);
		e->len = (skb->len);
	}
	nx_sock_tuple(&e->tuple, sk, rx);
	nx_synth_from_tuple(c->s);
	e->netns_cookie = nx_net_cookie(net);
	if (!nx_follow_check(c, skb, nx_filter_match(c->s, c->cfg)))
		return;
	e->cap_len = 0; /* synthesised bytes are for the filter only */
	nx_finish(c, irq);
}

/* ---- link in ---- */

SEC("tp_btf/napi_gro_receive_entry")
int BPF_PROG(napi_gro_receive_entry, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NAPI_GRO_RECEIVE_ENTRY, ctx))
		nx_skb_event(&c, skb, NULL);
	return 0;
}

SEC("tp_btf/netif_receive_skb_entry")
int BPF_PROG(netif_receive_skb_entry, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RECEIVE_SKB_ENTRY, ctx))
		nx_skb_event(&c, skb, NULL);
	return 0;
}

SEC("tp_btf/netif_receive_skb_list_entry")
int BPF_PROG(netif_receive_skb_list_entry, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RECEIVE_SKB_LIST_ENTRY, ctx))
		nx_skb_event(&c, skb, NULL);
	return 0;
}

SEC("tp_btf/netif_rx_entry")
int BPF_PROG(netif_rx_entry, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RX_ENTRY, ctx))
		nx_skb_event(&c, skb, NULL);
	return 0;
}

SEC("tp_btf/netif_rx")
int BPF_PROG(netif_rx, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RX, ctx))
		nx_skb_event(&c, skb, NULL);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(netif_receive_skb, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RECEIVE_SKB, ctx))
		nx_skb_event(&c, skb, NULL);
	return 0;
}

/* ---- link out ---- */

SEC("tp_btf/net_dev_queue")
int BPF_PROG(net_dev_queue, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NET_DEV_QUEUE, ctx))
		nx_skb_event(&c, skb, NULL);
	return 0;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(net_dev_start_xmit, struct sk_buff *skb, struct net_device *dev)
{
	struct nx_ctx c;
	__u64 key = (__u64)skb;
	__u8 one = 1;

	if (!nx_begin(&c, NX_HOOK_NET_DEV_START_XMIT, ctx))
		return 0;
	if (nx_skb_event(&c, skb, dev))
		bpf_map_update_elem(&nx_xmit_pending, &key, &one, BPF_ANY);
	return 0;
}

/* The skb may be freed by the driver before this fires: never read it. It
 * is reported if its net_dev_start_xmit passed the filter. */
SEC("tp_btf/net_dev_xmit")
int BPF_PROG(net_dev_xmit, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	struct nx_ctx c;
	__u64 key = (__u64)skb;
	struct nx_event *e;
	bool irq = false;

	if (!nx_begin(&c, NX_HOOK_NET_DEV_XMIT, ctx))
		return 0;
	if (!bpf_map_lookup_elem(&nx_xmit_pending, &key))
		return 0;
	bpf_map_delete_elem(&nx_xmit_pending, &key);
	e = &c.s->ev;
	e->kind = NX_KIND_PACKET;
	e->skb = key;
	e->len = len;
	e->ret = rc;
	nx_set_net(e, dev->nd_net.net);
	e->ifindex = (dev->ifindex);
	nx_set_dev_name(e, dev);
	nx_finish(&c, irq);
	return 0;
}

/* ---- qdisc: fires only on devices with a queue (veth has none) ---- */

SEC("tp_btf/qdisc_enqueue")
int BPF_PROG(qdisc_enqueue, struct Qdisc *q, const struct netdev_queue *txq, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_QDISC_ENQUEUE, ctx))
		nx_skb_event(&c, skb, nx_sane_dev((txq->dev)));
	return 0;
}

SEC("tp_btf/qdisc_dequeue")
int BPF_PROG(qdisc_dequeue, struct Qdisc *q, const struct netdev_queue *txq, int packets,
	     struct sk_buff *skb)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_QDISC_DEQUEUE, ctx))
		return 0;
	c.s->ev.ret = packets;
	nx_skb_event(&c, skb, nx_sane_dev((txq->dev)));
	return 0;
}

/* ---- l4 ---- */

/* IPv4 only, after rate limiting; the skb is the packet that caused it. */
SEC("tp_btf/icmp_send")
int BPF_PROG(icmp_send, const struct sk_buff *skb, int type, int code)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_ICMP_SEND, ctx))
		return 0;
	c.s->ev.aux = ((__u32)type << 8) | (code & 0xff);
	nx_skb_event(&c, (struct sk_buff *)skb, NULL);
	return 0;
}

/*
 * Tracepoints whose arguments changed between kernels have one program per
 * signature: `NAME` takes the newest, `NAME__aN` the older one with N
 * arguments. User space picks the program whose N is the kernel's argument
 * count (from the tracepoint's BTF, kernel/session.rs); reading an argument
 * the kernel does not pass makes the verifier refuse the program.
 */

/* Headers are not built yet: the socket gives the flow. */
static __always_inline void nx_tcp_retransmit(void *ctx, const struct sock *sk,
					      const struct sk_buff *skb, int err)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_TCP_RETRANSMIT_SKB, ctx))
		return;
	c.s->ev.ret = err;
	nx_sock_event(&c, sk, skb, false, 0);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb, int err)
{
	nx_tcp_retransmit(ctx, sk, skb, err);
	return 0;
}

/* Older kernels (6.12 and before): (sk, skb), no error. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb__a2, const struct sock *sk, const struct sk_buff *skb)
{
	nx_tcp_retransmit(ctx, sk, skb, 0);
	return 0;
}

/* skb is the segment that caused the reset, or NULL (active reset). */
static __always_inline void nx_tcp_send_reset(void *ctx, const struct sock *sk,
					      const struct sk_buff *skb, int reason)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_TCP_SEND_RESET, ctx))
		return;
	c.s->ev.reason = reason;
	if (skb)
		nx_skb_event(&c, (struct sk_buff *)skb, NULL);
	else
		nx_sock_event(&c, sk, NULL, false, 0);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	nx_tcp_send_reset(ctx, sk, skb, reason);
	return 0;
}

/* Older kernels (6.1): (sk, skb), no reason. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_send_reset__a2, const struct sock *sk, const struct sk_buff *skb)
{
	nx_tcp_send_reset(ctx, sk, skb, 0);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_receive_reset, struct sock *sk)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_TCP_RECEIVE_RESET, ctx))
		nx_sock_event(&c, sk, NULL, true, 0);
	return 0;
}

SEC("tp_btf/udp_fail_queue_rcv_skb")
int BPF_PROG(udp_fail_queue_rcv_skb, int rc, struct sock *sk, struct sk_buff *skb)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_UDP_FAIL_QUEUE_RCV_SKB, ctx))
		return 0;
	c.s->ev.ret = rc;
	nx_skb_event(&c, skb, NULL);
	return 0;
}

/* Older kernels (6.1): (rc, sk), no skb: the socket gives the flow. */
SEC("tp_btf/udp_fail_queue_rcv_skb")
int BPF_PROG(udp_fail_queue_rcv_skb__a2, int rc, struct sock *sk)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_UDP_FAIL_QUEUE_RCV_SKB, ctx))
		return 0;
	c.s->ev.ret = rc;
	nx_sock_event(&c, sk, NULL, true, 0);
	return 0;
}

/* ---- socket: skb->dev is NULL or stale here, the socket is the truth ---- */

/* No skb argument: the packet just delivered is the last one on the
 * socket's receive queue (an empty queue points at itself). */
SEC("tp_btf/sk_data_ready")
int BPF_PROG(sk_data_ready, const struct sock *sk)
{
	struct nx_ctx c;
	const struct sk_buff *last = NULL;

	if (!nx_begin(&c, NX_HOOK_SK_DATA_READY, ctx))
		return 0;
	if (sk) {
		const struct sk_buff *tail = (sk->sk_receive_queue.prev);
		if ((__u64)tail != (__u64)&sk->sk_receive_queue)
			last = tail;
	}
	nx_sock_event(&c, sk, last, true, 0);
	/* Queued to a reader: the packet's trip is over (--follow). (Not a
	 * capture's copy: the packet it copies goes on in the same buffer.) */
	if (last && c.cfg->follow_ns && nx_sock_is_ip(sk)) {
		__u64 head = (__u64)(last->head);
		bpf_map_delete_elem(&nx_follow, &head);
	}
	return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(skb_copy_datagram_iovec, const struct sk_buff *skb, int len)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_SKB_COPY_DATAGRAM_IOVEC, ctx))
		return 0;
	/* skb->sk is an RCU pointer (or NULL) to the verifier since 6.12: load
	 * it once and test that copy; a second load would be untested. */
	const struct sock *sk = (skb->sk);
	barrier_var(sk);
	c.s->ev.ret = len;
	nx_sock_event(&c, sk, skb, true, (skb->skb_iif));
	/* Copied to the reader: the packet's trip is over. (UDP then frees the
	 * buffer without a tracepoint, and the next datagram may reuse it.) */
	if (c.cfg->follow_ns && sk && nx_sock_is_ip(sk)) {
		__u64 head = (__u64)(skb->head);
		bpf_map_delete_elem(&nx_follow, &head);
	}
	return 0;
}

/* netxray drops: the packet passed the filters: count it in the kernel,
 * keeping its first bytes as the row's sample. A full map is counted as
 * lost, never silently. */
/* How often a row's sample packet is refreshed (every this many drops of
 * the row on a CPU, and its first): reading and copying the packet, and
 * the clock read that stamps it, are most of the cost of a drop; one recent
 * sample per row is what the table shows. */
#define NX_DROP_SAMPLE_EVERY 256

/* A row's sample: the packet now (read unless the filter read it). */
static __always_inline void nx_drop_sample(struct nx_ctx *c, struct nx_drop_val *v,
					   struct sk_buff *skb, const struct net_device *dev,
					   bool filtered)
{
	struct nx_event *e = &c->s->ev;

	if (!filtered)
		nx_read_skb(c->s, skb, dev);
	v->protocol = e->protocol;
	v->l3_off = e->l3_off;
	v->flags = e->flags;
	__u32 n = e->cap_len < NX_DROP_SAMPLE ? e->cap_len : NX_DROP_SAMPLE;
	v->cap_len = n;
	__builtin_memcpy(v->sample, e->data, NX_DROP_SAMPLE);
	v->last_ns = bpf_ktime_get_ns();
}

static __always_inline void nx_drop_count(struct nx_ctx *c, struct sk_buff *skb)
{
	struct nx_event *e = &c->s->ev;
	const struct net_device *dev;
	struct nx_drop_key key = {};
	struct nx_drop_val *v;
	bool filtered = c->cfg->flags & NX_CFG_FILTER;
	bool fresh = false;
	bool irq;

	if (!skb)
		return;
	dev = nx_sane_dev((skb->dev));
	if (!nx_prefilter(c, dev ? nx_netns_of_dev(dev) : 0, dev ? dev->ifindex : (skb->skb_iif), &irq))
		return;
	/* The filter needs the bytes; without one they are read only for a
	 * row's sample. */
	if (filtered) {
		const unsigned char *bytes = nx_skb_bytes(c->s, skb, dev);
		if (!nx_filter_skb(c->s, c->cfg, bytes))
			return;
		nx_copy_skb(c->s, bytes);
	}
	c->cnt->matched++;
	if (!nx_owns(c))
		return;
	key.location = e->location;
	key.reason = e->reason;
	key.netns = e->netns;
	key.netns_cookie = dev ? nx_net_cookie(dev->nd_net.net) : 0;
	key.ifindex = e->ifindex;
	key.nf_at = e->aux;
	__u32 zero = 0;
	struct nx_drop_last *last = bpf_map_lookup_elem(&nx_drop_last, &zero);
	if (last && last->valid && last->key.location == key.location &&
	    last->key.reason == key.reason && last->key.netns == key.netns &&
	    last->key.netns_cookie == key.netns_cookie &&
	    last->key.ifindex == key.ifindex && last->key.nf_at == key.nf_at) {
		/* The same row as the last drop on this CPU. */
		last->count++;
		last->bytes += (skb->len);
		if ((last->count & (NX_DROP_SAMPLE_EVERY - 1)) == 0) {
			v = bpf_map_lookup_elem(&nx_drops, &key);
			if (v)
				nx_drop_sample(c, v, skb, dev, filtered);
		}
		c->cnt->emitted++;
		return;
	}
	if (last && last->count) {
		/* Another row: the last one's drops go to the table. */
		v = bpf_map_lookup_elem(&nx_drops, &last->key);
		if (v) {
			v->count += last->count;
			v->bytes += last->bytes;
		} else {
			c->cnt->lost += last->count;
		}
	}
	if (last) {
		__builtin_memcpy(&last->key, &key, sizeof(key));
		last->count = 0;
		last->bytes = 0;
		last->valid = 1;
	}
	v = bpf_map_lookup_elem(&nx_drops, &key);
	if (!v) {
		struct nx_drop_val zero = {};
		if (bpf_map_update_elem(&nx_drops, &key, &zero, BPF_NOEXIST) != 0 &&
		    bpf_map_lookup_elem(&nx_drops, &key) == NULL) {
			c->cnt->lost++;
			return;
		}
		v = bpf_map_lookup_elem(&nx_drops, &key);
		if (!v) {
			c->cnt->lost++;
			return;
		}
		fresh = true;
	}
	v->count++;
	v->bytes += (skb->len);
	/* This drop is in the table; the next ones of this row on this CPU
	 * go to the last-row slot. */
	if (fresh || (v->count & (NX_DROP_SAMPLE_EVERY - 1)) == 0)
		nx_drop_sample(c, v, skb, dev, filtered);
	c->cnt->emitted++;
}

/* ---- life ---- */

/* Reason 0 (SKB_NOT_DROPPED_YET) is never a drop's: user space shows it as
 * no reason, which is what a kernel without drop reasons (5.10) gives. */
static __always_inline void nx_kfree_skb(void *ctx, struct sk_buff *skb, void *location,
					 __u32 reason)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_KFREE_SKB, ctx))
		return;
	c.s->ev.reason = reason;
	c.s->ev.location = (__u64)location;
	/* A netfilter rule dropped it: in which hook (netfilter links). */
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP) &&
	    skb && reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		c.s->ev.aux = nx_nf_where(skb, nx_net_of_skb(skb));
	if (c.cfg->flags & NX_CFG_DROPS)
		nx_drop_count(&c, skb);
	else
		nx_skb_event(&c, skb, NULL);
	nx_follow_end(c.cfg, skb);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	nx_kfree_skb(ctx, skb, location, reason);
	return 0;
}

/* Older kernels (5.10): (skb, location), no reason: where, not why. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb__a2, struct sk_buff *skb, void *location)
{
	nx_kfree_skb(ctx, skb, location, 0);
	return 0;
}

static __always_inline void nx_consume_skb(void *ctx, struct sk_buff *skb, void *location)
{
	struct nx_ctx c;
	if (!nx_begin(&c, NX_HOOK_CONSUME_SKB, ctx))
		return;
	c.s->ev.location = (__u64)location;
	nx_skb_event(&c, skb, NULL);
	nx_follow_end(c.cfg, skb);
}

SEC("tp_btf/consume_skb")
int BPF_PROG(consume_skb, struct sk_buff *skb, void *location)
{
	nx_consume_skb(ctx, skb, location);
	return 0;
}

/* Older kernels (6.1): (skb) only, no location. */
SEC("tp_btf/consume_skb")
int BPF_PROG(consume_skb__a1, struct sk_buff *skb)
{
	nx_consume_skb(ctx, skb, NULL);
	return 0;
}

/* ---- route: no skb, a flow; none when the route is cached ---- */

static __always_inline void nx_context_event(struct nx_ctx *c, const struct net *net,
					     __u32 ifindex)
{
	bool irq;

	if (!nx_prefilter(c, net ? net->ns.inum : 0, ifindex, &irq))
		return;
	c->s->ev.flags |= NX_F_TUPLE | NX_F_NO_DEV;
	nx_synth_from_tuple(c->s);
	if (!nx_filter_match(c->s, c->cfg))
		return;
	c->s->ev.netns_cookie = nx_net_cookie(net);
	c->s->ev.cap_len = 0;
	nx_finish(c, irq);
}

SEC("tp_btf/fib_table_lookup")
int BPF_PROG(fib_table_lookup, u32 tb_id, const struct flowi4 *flp, const struct fib_nh_common *nhc,
	     int err)
{
	struct nx_ctx c;
	struct nx_event *e;
	const struct net_device *dev = NULL;

	if (!nx_begin(&c, NX_HOOK_FIB_TABLE_LOOKUP, ctx))
		return 0;
	e = &c.s->ev;
	e->kind = NX_KIND_FIB;
	e->aux = tb_id;
	e->ret = err;
	e->tuple.family = NX_AF_INET;
	e->tuple.l4proto = (flp->__fl_common.flowic_proto);
	__builtin_memcpy(e->tuple.saddr, &flp->saddr, 4);
	__builtin_memcpy(e->tuple.daddr, &flp->daddr, 4);
	e->tuple.sport = bpf_ntohs((flp->uli.ports.sport));
	e->tuple.dport = bpf_ntohs((flp->uli.ports.dport));
	e->reason = (flp->__fl_common.flowic_oif);
	if (nhc) {
		dev = (nhc->nhc_dev);
		if ((nhc->nhc_gw_family) == NX_AF_INET)
			__builtin_memcpy(e->aux_addr, &nhc->nhc_gw.ipv4, 4);
		else if ((nhc->nhc_gw_family) == NX_AF_INET6)
			__builtin_memcpy(e->aux_addr, &nhc->nhc_gw.ipv6, 16);
	}
	if (dev)
		nx_set_dev_name(e, dev);
	nx_context_event(&c, dev ? dev->nd_net.net : NULL, dev ? (dev->ifindex) : 0);
	return 0;
}

SEC("tp_btf/fib6_table_lookup")
int BPF_PROG(fib6_table_lookup, const struct net *net, const struct fib6_result *res,
	     struct fib6_table *table, const struct flowi6 *flp)
{
	struct nx_ctx c;
	struct nx_event *e;
	const struct net_device *dev = NULL;
	struct fib6_nh *nh;

	if (!nx_begin(&c, NX_HOOK_FIB6_TABLE_LOOKUP, ctx))
		return 0;
	e = &c.s->ev;
	e->kind = NX_KIND_FIB;
	e->aux = table ? (table->tb6_id) : 0;
	e->tuple.family = NX_AF_INET6;
	e->tuple.l4proto = (flp->__fl_common.flowic_proto);
	__builtin_memcpy(e->tuple.saddr, &flp->saddr, 16);
	__builtin_memcpy(e->tuple.daddr, &flp->daddr, 16);
	e->tuple.sport = bpf_ntohs((flp->uli.ports.sport));
	e->tuple.dport = bpf_ntohs((flp->uli.ports.dport));
	e->reason = (flp->__fl_common.flowic_oif);
	nh = (res->nh);
	if (nh) {
		dev = (nh->nh_common.nhc_dev);
		__builtin_memcpy(e->aux_addr, &nh->nh_common.nhc_gw.ipv6, 16);
	}
	/* fib6 reports "no route" as a result pointing at the null entry */
	e->ret = (res->fib6_type);
	if (dev)
		nx_set_dev_name(e, dev);
	nx_context_event(&c, net, dev ? (dev->ifindex) : 0);
	return 0;
}

/* ---- neigh: ARP/ND resolution ---- */

static __always_inline void nx_neigh_event(void *ctx, __u32 hook, const struct neighbour *n,
					   int err, __u32 aux)
{
	struct nx_ctx c;
	struct nx_event *e;
	const struct net_device *dev;
	__u32 family, klen;

	if (!nx_begin(&c, hook, ctx) || !n)
		return;
	e = &c.s->ev;
	e->kind = NX_KIND_NEIGH;
	e->ret = err;
	e->aux = aux;
	e->reason = (n->nud_state);
	dev = (n->dev);
	family = (n->tbl->family);
	klen = (n->tbl->key_len);
	e->tuple.family = family;
	if (klen == 4 || klen == 16)
		bpf_probe_read_kernel(e->tuple.daddr, klen & 31, &n->primary_key);
	bpf_probe_read_kernel(e->aux_addr, 6, &n->ha);
	nx_set_dev_name(e, dev);
	nx_context_event(&c, dev ? dev->nd_net.net : NULL, dev ? (dev->ifindex) : 0);
}

SEC("tp_btf/neigh_create")
int BPF_PROG(neigh_create, struct neigh_table *tbl, struct net_device *dev, const void *pkey,
	     const struct neighbour *n, bool exempt_from_gc)
{
	nx_neigh_event(ctx, NX_HOOK_NEIGH_CREATE, n, 0, 0);
	return 0;
}

SEC("tp_btf/neigh_update")
int BPF_PROG(neigh_update, struct neighbour *n, const u8 *lladdr, u8 new, u32 flags, u32 nlmsg_pid)
{
	nx_neigh_event(ctx, NX_HOOK_NEIGH_UPDATE, n, new, flags);
	return 0;
}

SEC("tp_btf/neigh_update_done")
int BPF_PROG(neigh_update_done, struct neighbour *n, int err)
{
	nx_neigh_event(ctx, NX_HOOK_NEIGH_UPDATE_DONE, n, err, 0);
	return 0;
}

SEC("tp_btf/neigh_timer_handler")
int BPF_PROG(neigh_timer_handler, struct neighbour *n, int err)
{
	nx_neigh_event(ctx, NX_HOOK_NEIGH_TIMER_HANDLER, n, err, 0);
	return 0;
}

SEC("tp_btf/neigh_event_send_done")
int BPF_PROG(neigh_event_send_done, struct neighbour *n, int err)
{
	nx_neigh_event(ctx, NX_HOOK_NEIGH_EVENT_SEND_DONE, n, err, 0);
	return 0;
}

SEC("tp_btf/neigh_event_send_dead")
int BPF_PROG(neigh_event_send_dead, struct neighbour *n, int err)
{
	nx_neigh_event(ctx, NX_HOOK_NEIGH_EVENT_SEND_DEAD, n, err, 0);
	return 0;
}

SEC("tp_btf/neigh_cleanup_and_release")
int BPF_PROG(neigh_cleanup_and_release, struct neighbour *n, int rc)
{
	nx_neigh_event(ctx, NX_HOOK_NEIGH_CLEANUP_AND_RELEASE, n, rc, 0);
	return 0;
}

/* ---- --ret: exit tracepoints (only the return value; the skb is the one
 * the entry hook recorded on this CPU) ---- */

SEC("tp_btf/netif_rx_exit")
int BPF_PROG(netif_rx_exit, int ret)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RX_EXIT, ctx))
		nx_ret_event(&c, 0, ret);
	return 0;
}

SEC("tp_btf/netif_receive_skb_exit")
int BPF_PROG(netif_receive_skb_exit, int ret)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RECEIVE_SKB_EXIT, ctx))
		nx_ret_event(&c, 1, ret);
	return 0;
}

SEC("tp_btf/napi_gro_receive_exit")
int BPF_PROG(napi_gro_receive_exit, int ret)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NAPI_GRO_RECEIVE_EXIT, ctx))
		nx_ret_event(&c, 2, ret);
	return 0;
}

SEC("tp_btf/netif_receive_skb_list_exit")
int BPF_PROG(netif_receive_skb_list_exit, int ret)
{
	struct nx_ctx c;
	if (nx_begin(&c, NX_HOOK_NETIF_RECEIVE_SKB_LIST_EXIT, ctx))
		nx_ret_event(&c, 3, ret);
	return 0;
}

/* ---- tcx and XDP (-i IFACE): the frame at the device ----
 * No task here (interrupt-like context): records carry no pid. The skb (tc)
 * and its data buffer are read through the context pointer, leaked into the
 * scratch record as a number (root/CAP_PERFMON allow it), so that these hops
 * join the packet's journey. Generic XDP's buffer is the skb's (its
 * data_hard_start is skb->head); XDP has no skb to name. */

#define NX_TCX_NEXT (-1)
#define NX_XDP_PASS 2

/* The frame's first bytes, from the Ethernet header, into the record. */
static __always_inline void nx_frame_event(struct nx_ctx *c, __u32 ifindex, __u32 len,
					   __u32 n, __u16 protocol, __u64 skb, __u64 head)
{
	struct nx_event *e = &c->s->ev;

	if (c->cfg->ifindex && ifindex != c->cfg->ifindex)
		return;
	if (c->cfg->tgid)
		return; /* --pid: no task here */
	e->kind = NX_KIND_PACKET;
	e->flags |= NX_F_L2 | NX_F_IN_IRQ;
	e->netns = c->cfg->netns;
	e->ifindex = ifindex;
	e->len = len;
	e->cap_len = n;
	e->l3_off = 14;
	e->protocol = protocol;
	e->skb = skb;
	e->head = head;
	c->s->ethertype = 0;
	if (!nx_follow_check_x(c, (struct sk_buff *)skb, nx_filter_match(c->s, c->cfg), true))
		return;
	if (e->cap_len > c->cfg->cap_bytes)
		e->cap_len = c->cfg->cap_bytes;
	c->cnt->matched++;
	if (nx_owns(c))
		nx_emit_rec(c->s, c->cfg, c->cnt, true, false);
}

/* The context pointer as a number (the kernel object's address). */
static __always_inline __u64 nx_ctx_addr(struct nx_scratch *s, void *ctx)
{
	*(volatile __u64 *)&s->sp = (__u64)ctx;
	return *(volatile __u64 *)&s->sp;
}

static __always_inline int nx_tc(struct __sk_buff *skb, __u32 hook)
{
	struct nx_ctx c;
	__u32 len, n;
	__u64 kskb, head = 0;

	if (!nx_begin(&c, hook, skb))
		return NX_TCX_NEXT;
	len = skb->len;
	n = len < NX_CAP_BYTES ? len : NX_CAP_BYTES;
	if (n < 14 || bpf_skb_load_bytes(skb, 0, c.s->ev.data, n) != 0)
		n = 0;
	kskb = nx_ctx_addr(c.s, skb);
	bpf_probe_read_kernel(&head, sizeof(head),
			      (void *)(kskb + bpf_core_field_offset(struct sk_buff, head)));
	if (skb->vlan_present) {
		c.s->ev.flags |= NX_F_VLAN_HW;
		c.s->ev.vlan_tci = skb->vlan_tci;
		c.s->ev.vlan_proto = bpf_ntohs(skb->vlan_proto);
	}
	c.s->ev.pkt_type = skb->pkt_type;
	nx_frame_event(&c, skb->ifindex, len, n, bpf_ntohs(skb->protocol), kskb, head);
	return NX_TCX_NEXT;
}

SEC("classifier")
int nx_tc_ingress(struct __sk_buff *skb)
{
	return nx_tc(skb, NX_HOOK_TC_INGRESS);
}

SEC("classifier")
int nx_tc_egress(struct __sk_buff *skb)
{
	return nx_tc(skb, NX_HOOK_TC_EGRESS);
}

SEC("xdp")
int nx_xdp(struct xdp_md *ctx)
{
	struct nx_ctx c;
	__u32 len, n;
	__u64 kxdp, head = 0;

	if (!nx_begin(&c, NX_HOOK_XDP, ctx))
		return NX_XDP_PASS;
	len = ctx->data_end - ctx->data;
	n = len < NX_CAP_BYTES ? len : NX_CAP_BYTES;
	if (n < 14 || !nx_xdp_copy(ctx, c.s->ev.data, n))
		n = 0;
	kxdp = nx_ctx_addr(c.s, ctx);
	bpf_probe_read_kernel(&head, sizeof(head),
			      (void *)(kxdp + bpf_core_field_offset(struct xdp_buff, data_hard_start)));
	__u16 proto = n >= 14 ? ((__u16)c.s->ev.data[12] << 8 | c.s->ev.data[13]) : 0;
	nx_frame_event(&c, ctx->ingress_ifindex, len, n, proto, 0, head);
	return NX_XDP_PASS;
}
