// SPDX-License-Identifier: GPL-2.0
/*
 * netxray netfilter hooks: observation-only programs for netfilter BPF links
 * (BPF_PROG_TYPE_NETFILTER, kernel 6.4+), attached by user space at the first
 * (nf_first) and the last (nf_last) priority of every IPv4 and IPv6 hook, in
 * each network namespace watched. They always accept.
 *
 * - nf_first sees the packet as it enters the hook, before any chain and
 *   before the NAT of that hook; it notes the skb (nx_nf_trail) so that a
 *   NETFILTER_DROP is attributed to the hook. For that alone (drops) only
 *   nf_first is attached.
 * - nf_last sees what every chain accepted, after NAT, with the conntrack
 *   entry's state (conntrack runs at -200 and +300, long before INT_MAX-1).
 *
 * This object is separate from trace.bpf.o because aya 0.14 refuses a whole
 * object with a SEC("netfilter") program. Here the programs sit in
 * SEC("classifier") so that aya-obj parses and relocates them; the loader
 * (crates/netxray/src/kernel/netfilter.rs) loads them with the netfilter
 * program type, against the trace object's maps (nx_hook.bpf.h).
 *
 * The netfilter program type has only the base helpers: no task (pid, comm),
 * no stack ids. Records carry neither.
 */
#include "nx_hook.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NX_NF_DROP 0
#define NX_NF_ACCEPT 1
#define NX_NF_INET_NUMHOOKS 5
#define NX_NF_INET_LOCAL_OUT 3
#define NX_NF_INET_POST_ROUTING 4
#define NX_IP_CT_UNTRACKED 7

/* The conntrack entry of a packet: state and original-direction tuple. */
static __always_inline void nx_nf_conntrack(struct nx_event *e, const struct sk_buff *skb)
{
	unsigned long nfct = (skb->_nfct);
	struct nf_conn *ct = (struct nf_conn *)(nfct & ~7UL);
	__u32 ctinfo = nfct & 7;
	struct nf_conntrack_tuple t;
	unsigned long status = 0;

	if (!nfct)
		return;
	e->reason = ctinfo + 1;
	if (!ct || ctinfo == NX_IP_CT_UNTRACKED)
		return;
	if (bpf_probe_read_kernel(&status, sizeof(status), &ct->status) == 0)
		e->ret = (__s32)status;
	if (bpf_probe_read_kernel(&t, sizeof(t), &ct->tuplehash[0].tuple) != 0)
		return;
	e->flags |= NX_F_TUPLE;
	e->tuple.family = t.src.l3num;
	e->tuple.l4proto = t.dst.protonum;
	if (t.src.l3num == NX_AF_INET) {
		__builtin_memcpy(e->tuple.saddr, &t.src.u3, 4);
		__builtin_memcpy(e->tuple.daddr, &t.dst.u3, 4);
	} else {
		__builtin_memcpy(e->tuple.saddr, &t.src.u3, 16);
		__builtin_memcpy(e->tuple.daddr, &t.dst.u3, 16);
	}
	/* ICMP: id and type/code in place of the ports. */
	e->tuple.sport = bpf_ntohs(t.src.u.all);
	e->tuple.dport = bpf_ntohs(t.dst.u.all);
}

static __always_inline int nx_nf(struct bpf_nf_ctx *ctx, bool last)
{
	const struct nf_hook_state *st = ctx->state;
	struct sk_buff *skb = ctx->skb;
	const struct net_device *dev, *other;
	struct nx_config *cfg;
	struct nx_event *e;
	struct nx_ctx c;
	__u32 hooknum = st->hook;
	__u32 netns;

	if (hooknum >= NX_NF_INET_NUMHOOKS || !skb)
		return NX_NF_ACCEPT;
	if (!last)
		nx_nf_enter(skb, st->net, NX_NF_AT(hooknum, st->pf));
	cfg = nx_get_config();
	/* Attached for drop attribution only: the bookkeeping above is all.
	 * --pid: no task here. */
	if (!cfg || (cfg->flags & NX_CFG_NF_QUIET) || cfg->tgid)
		return NX_NF_ACCEPT;
	if (!nx_begin(&c, (last ? NX_HOOK_NF_PREROUTING_DONE : NX_HOOK_NF_PREROUTING) + hooknum,
		      ctx))
		return NX_NF_ACCEPT;
	e = &c.s->ev;
	/* The device the packet is at: in, except on the way out. */
	if (hooknum >= NX_NF_INET_LOCAL_OUT) {
		dev = st->out;
		other = st->in;
	} else {
		dev = st->in;
		other = st->out;
	}
	netns = st->net->ns.inum;
	if (cfg->netns && netns != cfg->netns)
		return NX_NF_ACCEPT;
	if (cfg->ifindex && (!dev || dev->ifindex != cfg->ifindex) &&
	    (!other || other->ifindex != cfg->ifindex))
		return NX_NF_ACCEPT;
	e->netns = netns;
	e->kind = NX_KIND_PACKET;
	/* No task in this program type: say so the way interrupt context does
	 * (user space then shows no pid or comm). */
	e->flags |= NX_F_IN_IRQ;
	if (dev)
		e->ifindex = dev->ifindex;
	else
		e->flags |= NX_F_NO_DEV;
	if (other)
		e->aux = other->ifindex;
	if (!nx_skb_wanted(&c, skb, dev))
		return NX_NF_ACCEPT;
	if (e->cap_len > cfg->cap_bytes)
		e->cap_len = cfg->cap_bytes;
	e->netns_cookie = nx_net_cookie(st->net);
	nx_set_dev_name(e, dev);
	if (last)
		nx_nf_conntrack(e, skb);
	c.cnt->matched++;
	if (nx_owns(&c))
		nx_emit_rec(c.s, cfg, c.cnt, false, false);
	return NX_NF_ACCEPT;
}

SEC("classifier")
int nf_first(struct bpf_nf_ctx *ctx)
{
	return nx_nf(ctx, false);
}

SEC("classifier")
int nf_last(struct bpf_nf_ctx *ctx)
{
	return nx_nf(ctx, true);
}
