/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every packet hook shares, whatever attaches it (tp_btf in
 * trace.bpf.c, netfilter links in netfilter.bpf.c): the record under
 * construction, --follow, and where each skb is inside netfilter.
 *
 * Maps defined here exist in both objects under the same name; the
 * netfilter loader (crates/netxray/src/kernel/netfilter.rs) points the
 * netfilter object at the trace object's maps, so there is one ring buffer,
 * one set of counters and one configuration.
 */
#ifndef NX_HOOK_BPF_H
#define NX_HOOK_BPF_H

#define NX_PACKET_HOOKS
#include "nx_packet.bpf.h"

/* --follow: data buffers (skb->head, shared by clones) of packets that
 * matched the filter, with when they were last seen. A later hop of the
 * same buffer is shown even if NAT rewrote it out of the filter. */
struct nx_followed {
	__u64 ts;	/* last seen */
	__u64 skb;	/* the skb that matched */
	__u64 fp;	/* nx_fingerprint() of the packet, 0 if none */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct nx_followed);
} nx_follow SEC(".maps");

/* --follow: the skbs of followed packets, with the packet's fingerprint
 * (nx_fingerprint), to keep following one the kernel moves to a new data
 * buffer (pskb_expand_head: NAT writing into a cloned TCP segment, which
 * TCP keeps to retransmit; a device needing more headroom). */
struct nx_followed_skb {
	__u64 ts;	/* last seen */
	__u64 head;	/* its buffer then */
	__u64 fp;	/* nx_fingerprint() */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct nx_followed_skb);
} nx_follow_skb SEC(".maps");

/* How soon after its last hop a followed skb may show up in a new buffer
 * and still be the same packet (user space's journeys use the same). */
#define NX_FOLLOW_MOVED_NS 10000000ULL

/* Netfilter: the last skbs that entered a netfilter hook on this CPU (at
 * the first priority). A NETFILTER_DROP happens inside a hook, on the CPU
 * running it, so the newest entry for the dropped skb in the same namespace
 * is the hook whose chains dropped it. Four entries: a hook may send a packet
 * of its own (an nft reject's ICMP error) that crosses hooks before the first
 * one drops its packet. */
#define NX_NF_TRAIL 4
struct nx_nf_trail {
	__u64 skb[NX_NF_TRAIL];
	__u64 net[NX_NF_TRAIL];	/* struct net * of the hook's namespace */
	__u32 at[NX_NF_TRAIL];	/* NX_NF_AT() */
	__u32 next;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_nf_trail);
} nx_nf_trail SEC(".maps");

static __always_inline struct nx_nf_trail *nx_nf_trail_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nx_nf_trail, &zero);
}

/* Entering a hook (first priority). */
static __always_inline void nx_nf_enter(const struct sk_buff *skb, const struct net *net,
					__u32 at)
{
	struct nx_nf_trail *t = nx_nf_trail_get();
	__u32 i;

	if (!t)
		return;
	i = t->next++ & (NX_NF_TRAIL - 1);
	t->skb[i] = (__u64)skb;
	t->net[i] = (__u64)net;
	t->at[i] = at;
}

/* The hook (NX_NF_AT) the skb entered last in namespace net (NULL: any),
 * 0 if none. */
static __always_inline __u32 nx_nf_where(const struct sk_buff *skb, const struct net *net)
{
	struct nx_nf_trail *t = nx_nf_trail_get();

	if (!t)
		return 0;
#pragma unroll
	for (__u32 i = 1; i <= NX_NF_TRAIL; i++) {
		__u32 k = (t->next - i) & (NX_NF_TRAIL - 1);
		if (t->skb[k] == (__u64)skb && (!net || t->net[k] == (__u64)net))
			return t->at[k];
	}
	return 0;
}

/* A device pointer we can trust: a canonical kernel address. At socket
 * queues skb->dev is reused (UDP keeps dev_scratch there) or stale. */
static __always_inline const struct net_device *nx_sane_dev(const struct net_device *dev)
{
	if ((__u64)dev < 0xffff800000000000ULL)
		return NULL;
	return dev;
}

/* The namespace an skb is in (its device's, else its socket's), NULL if
 * neither is known (a local packet before ip_output sets skb->dev). */
static __always_inline const struct net *nx_net_of_skb_dev(const struct sk_buff *skb,
							    const struct net_device **devp)
{
	const struct net_device *dev = *devp;
	const struct net *net = NULL;
	const struct sock *sk;

	if (!dev)
		dev = nx_sane_dev((skb->dev));
	if (dev) {
		net = dev->nd_net.net;
	} else {
		sk = (skb->sk);
		if (sk)
			net = sk->__sk_common.skc_net.net;
	}
	/* Kept in a register or on the stack: the compiler must not load it
	 * again where it is used. */
	barrier_var(net);
	barrier_var(dev);
	*devp = dev;
	return net;
}

static __always_inline const struct net *nx_net_of_skb(const struct sk_buff *skb)
{
	const struct net_device *dev = NULL;

	return nx_net_of_skb_dev(skb, &dev);
}

struct nx_ctx {
	void *ctx;		/* the tracepoint's arguments, on the kernel stack */
	struct nx_config *cfg;
	struct nx_scratch *s;
	struct nx_counter *cnt;
};

static __always_inline bool nx_begin(struct nx_ctx *c, __u32 hook, void *ctx)
{
	c->ctx = ctx;
	c->cfg = nx_get_config();
	c->s = nx_get_scratch();
	c->cnt = nx_counter(hook);
	if (!c->cfg || !c->s || !c->cnt)
		return false;
	c->cnt->hits++;
	/* One scratch per CPU for every program: one that interrupts this one
	 * (a softirq run on an interrupt's exit, while this program runs in
	 * a task with bottom halves enabled) overwrites the record. The owner
	 * word says whose record it is; nx_owns() checks it before sending. */
	*(volatile __u64 *)&c->s->owner = (__u64)ctx;
	__builtin_memset(&c->s->ev, 0, NX_EVENT_HDR_SIZE);
	c->s->ev.hook = hook;
	c->s->ev.stack_id = -1;
	return true;
}

/* Whether the scratch still holds this program's record (see nx_begin);
 * if not, the record is counted as clobbered and not sent. */
static __always_inline bool nx_owns(struct nx_ctx *c)
{
	if (*(volatile __u64 *)&c->s->owner == (__u64)c->ctx)
		return true;
	c->cnt->clobbered++;
	return false;
}

static __always_inline void nx_set_dev_name(struct nx_event *e, const struct net_device *dev)
{
	if (dev)
		/* Two direct (BTF) loads instead of a probe-read helper call. */
		__builtin_memcpy(e->ifname, dev->name, sizeof(e->ifname));
}

static __always_inline __u64 nx_be16(const __u8 *p)
{
	return ((__u64)p[0] << 8) | p[1];
}

/* What NAT leaves alone in a packet and the next packet would change: the
 * IP length, IPv4 identification and protocol, and for TCP, ICMP and
 * ICMPv6 the 4 bytes at offset 4 (sequence number, echo id and sequence),
 * from the record's bytes. 0: none (not IP, or too short). A subprogram:
 * inlined, its three call sites in every program grew the object by half. */
static __noinline __u64 nx_fingerprint(struct nx_scratch *s)
{
	struct nx_event *e = &s->ev;
	__u64 cap = e->cap_len, l3 = 0, l4, et = s->ethertype, fp, proto;

	if (e->flags & NX_F_SYNTH)
		return 0;
	if (e->flags & NX_F_L2) {
		l3 = e->l3_off;
		asm volatile("" : "+r"(l3));
		if (l3 < 2 || l3 > NX_CAP_BYTES - 48)
			return 0;
		et = nx_be16(&e->data[l3 - 2]);
	}
	asm volatile("" : "+r"(l3));
	if (l3 > NX_CAP_BYTES - 48)
		return 0;
	if (et == NX_ETH_P_IP) {
		if (cap < l3 + 20)
			return 0;
		proto = e->data[l3 + 9];
		fp = nx_be16(&e->data[l3 + 2]) << 48 | nx_be16(&e->data[l3 + 4]) << 32 | proto << 24;
		l4 = l3 + (e->data[l3] & 0xf) * 4;
	} else if (et == NX_ETH_P_IPV6) {
		if (cap < l3 + 40)
			return 0;
		proto = e->data[l3 + 6];
		fp = nx_be16(&e->data[l3 + 4]) << 48 | 1ULL << 40 | proto << 24;
		l4 = l3 + 40;
	} else {
		return 0;
	}
	asm volatile("" : "+r"(l4));
	if (l4 <= NX_CAP_BYTES - 8 && cap >= l4 + 8 && (proto == 6 || proto == 1 || proto == 58))
		fp ^= (__u64)e->data[l4 + 4] << 24 | (__u64)e->data[l4 + 5] << 16 |
		      (__u64)e->data[l4 + 6] << 8 | e->data[l4 + 7];
	return fp | 1;
}

/* Remember a followed packet's skb, buffer and fingerprint. */
static __always_inline void nx_follow_mark_skb(const struct sk_buff *skb, __u64 head, __u64 ts,
					       __u64 fp)
{
	struct nx_followed_skb v = { .ts = ts, .head = head, .fp = fp };
	__u64 key = (__u64)skb;

	if (fp)
		bpf_map_update_elem(&nx_follow_skb, &key, &v, BPF_ANY);
}

/* A followed skb in another buffer than when last seen, moments ago, with
 * the same fingerprint: the same packet, moved. */
static __always_inline bool nx_follow_moved(const struct sk_buff *skb, __u64 head, __u64 now,
					    __u64 fp)
{
	__u64 key = (__u64)skb;
	struct nx_followed_skb *v = bpf_map_lookup_elem(&nx_follow_skb, &key);

	if (!v || !fp || v->head == head || now - v->ts > NX_FOLLOW_MOVED_NS)
		return false;
	return v->fp == fp;
}

/* Two fingerprints of the same packet (or one unknown). */
static __always_inline bool nx_same_fp(__u64 a, __u64 b)
{
	return !a || !b || a == b;
}

/* --follow: a packet that matched marks its data buffer; a later hop of the
 * same buffer (the same skb after NAT, or a clone of it: an AF_PACKET
 * listener's copy) is kept and flagged, as is the same skb moved to a new
 * buffer. For a clone or a move the packet's fingerprint must agree: a
 * buffer (or skb) freed untraced and reused holds another packet. Returns
 * whether to keep the record. */
static __always_inline bool nx_follow_check_x(struct nx_ctx *c, const struct sk_buff *skb,
					      bool matched, bool probed)
{
	__u64 head = c->s->ev.head;
	struct nx_followed *seen, now = { .skb = (__u64)skb };

	if (!c->cfg->follow_ns || !head || !skb)
		return matched;
	now.ts = bpf_ktime_get_ns();
	now.fp = nx_fingerprint(c->s);
	if (matched) {
		bpf_map_update_elem(&nx_follow, &head, &now, BPF_ANY);
		nx_follow_mark_skb(skb, head, now.ts, now.fp);
		return true;
	}
	seen = bpf_map_lookup_elem(&nx_follow, &head);
	if (seen && now.ts - seen->ts > c->cfg->follow_ns)
		seen = NULL;
	/* The same skb in the same buffer is the packet, whatever its bytes
	 * now say (NAT, or a tunnel's headers pushed in front). Another skb
	 * there must be a clone of it with its fingerprint: a capture clones
	 * every packet, reused buffers included. */
	if (seen && seen->skb != (__u64)skb) {
		/* A BTF pointer is read directly; a plain address (tc) probed. */
		bool cloned = probed ? BPF_CORE_READ_BITFIELD_PROBED(skb, cloned)
				     : BPF_CORE_READ_BITFIELD(skb, cloned);
		if (!cloned || !nx_same_fp(seen->fp, now.fp))
			seen = NULL;
	}
	if (!seen) {
		if (!nx_follow_moved(skb, head, now.ts, now.fp))
			return false;
		bpf_map_update_elem(&nx_follow, &head, &now, BPF_ANY);
		nx_follow_mark_skb(skb, head, now.ts, now.fp);
		c->s->ev.flags |= NX_F_FOLLOWED;
		return true;
	}
	seen->ts = now.ts;
	if (seen->skb == (__u64)skb)
		nx_follow_mark_skb(skb, head, now.ts, now.fp);
	c->s->ev.flags |= NX_F_FOLLOWED;
	return true;
}

/* skb is a BTF pointer (tracepoints, netfilter). */
static __always_inline bool nx_follow_check(struct nx_ctx *c, const struct sk_buff *skb,
					    bool matched)
{
	return nx_follow_check_x(c, skb, matched, false);
}

/* Whether to report this packet (the filter, then --follow), its bytes in
 * the record if so. The filter reads the packet where it lies where the
 * kernel allows it: a packet it rejects is not copied (unless --follow must
 * look at it). */
static __always_inline bool nx_skb_wanted(struct nx_ctx *c, struct sk_buff *skb,
					  const struct net_device *dev)
{
	const unsigned char *bytes = nx_skb_bytes(c->s, skb, dev);
	bool matched = nx_filter_skb(c->s, c->cfg, bytes);

	if (!matched && !c->cfg->follow_ns)
		return false;
	nx_copy_skb(c->s, bytes);
	return nx_follow_check(c, skb, matched);
}

/* End of a packet's life: forget its buffer unless a clone still holds it. */
static __always_inline void nx_follow_end(struct nx_config *cfg, struct sk_buff *skb)
{
	__u64 head;

	if (!cfg || !cfg->follow_ns || !skb || BPF_CORE_READ_BITFIELD(skb, cloned))
		return;
	head = (__u64)(skb->head);
	bpf_map_delete_elem(&nx_follow, &head);
	head = (__u64)skb;
	bpf_map_delete_elem(&nx_follow_skb, &head);
}

#endif
