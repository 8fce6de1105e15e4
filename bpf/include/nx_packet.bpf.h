/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading a packet out of an skb at any hook, and the in-kernel filter.
 *
 * Header offsets are computed robustly: on some paths the network header is
 * not set yet (a locally built skb before ip_output), on others the MAC header
 * is unset (~0) or belongs to a device without an Ethernet header. We start at
 * the MAC header when the device is Ethernet-like and the header is set, else
 * at the network header when it is set, else at skb->data, and then parse the
 * bytes ourselves (VLAN tags, IPv4 IHL, IPv6 fixed header).
 */
#ifndef NX_PACKET_BPF_H
#define NX_PACKET_BPF_H

#include "nx_common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NX_FILTER_MAX_INSNS);
	__type(key, __u32);
	__type(value, struct nx_filter_insn);
} nx_filter SEC(".maps");

static __always_inline __u16 nx_be16(const __u8 *p)
{
	return ((__u16)p[0] << 8) | p[1];
}

/* Parse the bytes in s->ev.data (cap_len of them, l2 flag set) and set the
 * filter state: ethertype, l3_off, l4 offset and protocol, vlan. */
static __always_inline void nx_parse(struct nx_scratch *s, __u16 skb_protocol)
{
	struct nx_event *e = &s->ev;
	__u32 cap = e->cap_len;
	__u32 off = 0;
	__u16 et = skb_protocol;

	s->vlan = (e->flags & NX_F_VLAN_HW) ? 1 : 0;
	s->vlan_id = e->vlan_tci & 0x0fff;
	s->l4proto = 0;
	s->has_l4 = 0;
	s->frag = 0;
	s->l4_off = 0;

	if (e->flags & NX_F_L2) {
		if (cap < 14)
			goto out;
		et = nx_be16(&e->data[12]);
		off = 14;
#pragma unroll
		for (int i = 0; i < 2; i++) {
			if (et != NX_ETH_P_8021Q && et != NX_ETH_P_8021AD)
				break;
			if (off + 4 > cap || off + 4 > NX_CAP_BYTES - 4)
				goto out;
			if (!s->vlan) {
				s->vlan = 1;
				s->vlan_id = nx_be16(&e->data[off]) & 0x0fff;
			}
			et = nx_be16(&e->data[off + 2]);
			off += 4;
		}
	} else if (et == 0 && cap >= 1) {
		/* A locally built skb may have no protocol yet: look at the version. */
		__u8 v = e->data[0] >> 4;
		et = v == 4 ? NX_ETH_P_IP : v == 6 ? NX_ETH_P_IPV6 : 0;
	}
	e->l3_off = off;

	if (et == NX_ETH_P_IP) {
		if (off + 20 > cap || off > NX_CAP_BYTES - 20)
			goto out;
		__u32 ihl = (e->data[off] & 0x0f) * 4;
		s->l4proto = e->data[off + 9];
		s->frag = (nx_be16(&e->data[off + 6]) & 0x1fff) != 0;
		if (ihl >= 20 && off + ihl < cap) {
			s->l4_off = off + ihl;
			s->has_l4 = 1;
		}
	} else if (et == NX_ETH_P_IPV6) {
		if (off + 40 > cap || off > NX_CAP_BYTES - 40)
			goto out;
		s->l4proto = e->data[off + 6];
		if (off + 40 < cap) {
			s->l4_off = off + 40;
			s->has_l4 = 1;
		}
	}
out:
	s->ethertype = et;
}

/*
 * Copy up to cfg->cap_bytes of the packet into s->ev.data and parse it.
 * dev may be NULL (then the MAC header is not trusted).
 */
static __always_inline void nx_read_skb(struct nx_scratch *s, struct nx_config *cfg,
					struct sk_buff *skb, const struct net_device *dev)
{
	struct nx_event *e = &s->ev;
	unsigned char *head = (skb->head);
	__u16 mac = (skb->mac_header);
	__u16 net = (skb->network_header);
	__u32 tail = (skb->tail);
	__u32 start;
	__u32 cap = cfg->cap_bytes;

	e->skb = (__u64)skb;
	e->len = (skb->len);
	e->protocol = bpf_ntohs((skb->protocol));
	e->pkt_type = BPF_CORE_READ_BITFIELD(skb, pkt_type);
	if ((skb->vlan_all)) {
		e->flags |= NX_F_VLAN_HW;
		e->vlan_tci = (skb->vlan_tci);
		e->vlan_proto = bpf_ntohs((skb->vlan_proto));
	}

	__u16 dev_type = dev ? (dev->type) : 0;
	if (mac != (__u16)~0U && (dev_type == NX_ARPHRD_ETHER || dev_type == NX_ARPHRD_LOOPBACK) &&
	    (net == 0 || net >= mac + 14)) {
		start = mac;
		e->flags |= NX_F_L2;
		/* The MAC header is before skb->data on receive: len does not count it. */
		__u32 data_off = (skb->data) - head;
		if (data_off > mac)
			e->len += data_off - mac;
	} else if (net != 0) {
		start = net;
	} else {
		start = (skb->data) - head;
	}

	__u32 avail = tail > start ? tail - start : 0;
	if (cap > avail)
		cap = avail;
	if (cap > NX_CAP_BYTES)
		cap = NX_CAP_BYTES;
	if (bpf_probe_read_kernel(e->data, cap, head + start) != 0)
		cap = 0;
	e->cap_len = cap;
	nx_parse(s, e->protocol);
}

/* Build a minimal IPv4/IPv6 + ports header from a tuple so the same filter
 * program applies to events without packet bytes. Marked NX_F_SYNTH: these
 * bytes are never shown as a packet. */
static __always_inline void nx_synth_from_tuple(struct nx_scratch *s)
{
	struct nx_event *e = &s->ev;
	struct nx_tuple *t = &e->tuple;
	__u32 l4;

	__builtin_memset(e->data, 0, 64);
	e->flags |= NX_F_SYNTH;
	e->flags &= ~NX_F_L2;
	if (t->family == NX_AF_INET) {
		e->data[0] = 0x45;
		e->data[9] = t->l4proto;
		__builtin_memcpy(&e->data[12], t->saddr, 4);
		__builtin_memcpy(&e->data[16], t->daddr, 4);
		l4 = 20;
		s->ethertype = NX_ETH_P_IP;
	} else if (t->family == NX_AF_INET6) {
		e->data[0] = 0x60;
		e->data[6] = t->l4proto;
		__builtin_memcpy(&e->data[8], t->saddr, 16);
		__builtin_memcpy(&e->data[24], t->daddr, 16);
		l4 = 40;
		s->ethertype = NX_ETH_P_IPV6;
	} else {
		e->cap_len = 0;
		s->ethertype = 0;
		s->has_l4 = 0;
		s->l4proto = 0;
		return;
	}
	e->data[l4] = t->sport >> 8;
	e->data[l4 + 1] = t->sport & 0xff;
	e->data[l4 + 2] = t->dport >> 8;
	e->data[l4 + 3] = t->dport & 0xff;
	e->cap_len = l4 + 4;
	e->l3_off = 0;
	s->l4_off = l4;
	s->l4proto = t->l4proto;
	s->has_l4 = 1;
	s->vlan = 0;
	s->frag = 0;
}

/* ---- the filter interpreter ---- */

struct nx_fstate {
	struct nx_scratch *s;
	__u32 len;
	__u32 pc;
	__u32 a;
	__u32 x;
	__u32 verdict;
};

static __always_inline int nx_fload(struct nx_fstate *st, __u8 arg, __u32 off, __u32 *out)
{
	struct nx_scratch *s = st->s;
	struct nx_event *e = &s->ev;
	__u64 base, size = arg >> 4, pos;

	switch (arg & 0x0f) {
	case NX_BASE_L2:
		if (!(e->flags & NX_F_L2))
			return -1;
		base = 0;
		break;
	case NX_BASE_L3:
		base = e->l3_off;
		break;
	default:
		if (!s->has_l4)
			return -1;
		base = s->l4_off;
		break;
	}
	pos = base + off;
	if (pos + size > e->cap_len)
		return -1;
	/* Same register for the check and the access, for the verifier. */
	asm volatile("" : "+r"(pos));
	if (pos > NX_CAP_BYTES - 4)
		return -1;
	if (size == 1) {
		*out = e->data[pos];
	} else if (size == 2) {
		*out = ((__u32)e->data[pos] << 8) | e->data[pos + 1];
	} else if (size == 4) {
		*out = ((__u32)e->data[pos] << 24) | ((__u32)e->data[pos + 1] << 16) |
		       ((__u32)e->data[pos + 2] << 8) | e->data[pos + 3];
	} else {
		return -1;
	}
	return 0;
}

static __always_inline __u32 nx_meta(struct nx_fstate *st, __u32 k)
{
	struct nx_scratch *s = st->s;

	switch (k) {
	case NX_META_ETHERTYPE:
		return s->ethertype;
	case NX_META_L4PROTO:
		return s->l4proto;
	case NX_META_LEN:
		return s->ev.len;
	case NX_META_HAS_L2:
		return (s->ev.flags & NX_F_L2) ? 1 : 0;
	case NX_META_VLAN:
		return s->vlan;
	case NX_META_VLAN_ID:
		return s->vlan_id;
	case NX_META_L4_OK:
		return s->has_l4;
	case NX_META_IFINDEX:
		return s->ev.ifindex;
	case NX_META_FRAG:
		return s->frag;
	}
	return 0;
}

static long nx_filter_step(__u64 i, void *ctx)
{
	struct nx_fstate *st = ctx;
	__u32 pc = st->pc;
	struct nx_filter_insn *in;
	__u32 v, operand;

	if (pc >= st->len || pc >= NX_FILTER_MAX_INSNS)
		goto reject;
	in = bpf_map_lookup_elem(&nx_filter, &pc);
	if (!in)
		goto reject;
	operand = in->src ? st->x : in->k;
	st->pc = pc + 1;

	switch (in->op) {
	case NX_OP_RET:
		st->verdict = in->k != 0;
		return 1;
	case NX_OP_LD_META:
		st->a = nx_meta(st, in->k);
		return 0;
	case NX_OP_LD_ABS:
		if (nx_fload(st, in->arg, in->k, &v))
			goto reject;
		st->a = v;
		return 0;
	case NX_OP_LD_IND:
		if (nx_fload(st, in->arg, in->k + st->x, &v))
			goto reject;
		st->a = v;
		return 0;
	case NX_OP_LDX_HDRLEN:
		if (nx_fload(st, (in->arg & 0x0f) | (1 << 4), in->k, &v))
			goto reject;
		st->x = (v & 0x0f) * 4;
		return 0;
	case NX_OP_ALU:
		switch (in->arg) {
		case NX_ALU_ADD: st->a += operand; break;
		case NX_ALU_SUB: st->a -= operand; break;
		case NX_ALU_MUL: st->a *= operand; break;
		case NX_ALU_DIV:
			if (!operand)
				goto reject;
			st->a /= operand;
			break;
		case NX_ALU_MOD:
			if (!operand)
				goto reject;
			st->a %= operand;
			break;
		case NX_ALU_AND: st->a &= operand; break;
		case NX_ALU_OR: st->a |= operand; break;
		case NX_ALU_XOR: st->a ^= operand; break;
		case NX_ALU_LSH: st->a = operand < 32 ? st->a << operand : 0; break;
		case NX_ALU_RSH: st->a = operand < 32 ? st->a >> operand : 0; break;
		case NX_ALU_NEG: st->a = -st->a; break;
		default: goto reject;
		}
		return 0;
	case NX_OP_JMP: {
		bool t;
		switch (in->arg) {
		case NX_CMP_JA: t = true; break;
		case NX_CMP_JEQ: t = st->a == operand; break;
		case NX_CMP_JGT: t = st->a > operand; break;
		case NX_CMP_JGE: t = st->a >= operand; break;
		case NX_CMP_JSET: t = (st->a & operand) != 0; break;
		default: goto reject;
		}
		st->pc += t ? in->jt : in->jf;
		return 0;
	}
	case NX_OP_TEST: {
		bool t;
		if (in->arg & NX_TEST_META)
			v = nx_meta(st, in->src);
		else if (nx_fload(st, in->arg, in->src, &v))
			goto reject;
		v &= in->mask;
		switch (in->cmp) {
		case NX_CMP_JEQ: t = v == in->k; break;
		case NX_CMP_JGT: t = v > in->k; break;
		case NX_CMP_JGE: t = v >= in->k; break;
		case NX_CMP_JSET: t = (v & in->k) != 0; break;
		default: goto reject;
		}
		st->a = v;
		st->pc += t ? in->jt : in->jf;
		return 0;
	}
	case NX_OP_TAX: st->x = st->a; return 0;
	case NX_OP_TXA: st->a = st->x; return 0;
	case NX_OP_LDX_IMM: st->x = in->k; return 0;
	case NX_OP_LD_IMM: st->a = in->k; return 0;
	}
reject:
	st->verdict = 0;
	return 1;
}

/*
 * The compiled filter. This body is a placeholder: user space overwrites it
 * in the ELF, before loading, with the filter compiled to BPF instructions
 * (kernel/jit.rs); the verifier checks that code like any other. It is
 * called with r1 = the scratch and returns 1 to keep the record. Layout the
 * patcher checks: a 64-bit load of NX_JIT_MAGIC into r0, then slots of
 * `goto +0`, then `r0 = 1; exit` (accept all), NX_JIT_SLOTS in all.
 */
#define NX_JIT_MAGIC 0x4e584a4954464c54ULL /* "NXJITFLT" */
#define NX_STR2(x) #x
#define NX_STR(x) NX_STR2(x)
__attribute__((naked, noinline, used)) static int nx_filter_jit(struct nx_scratch *s)
{
	asm volatile("r0 = " NX_STR(NX_JIT_MAGIC) " ll;"
		     ".rept " NX_STR(NX_JIT_SLOTS) " - 4;"
		     "goto +0;"
		     ".endr;"
		     "r0 = 1;"
		     "exit;" ::: "r0", "r1", "r2", "r3", "r4", "r5", "memory");
}

/* Run the user's filter over the record in s. Returns true to keep it. */
static __always_inline bool nx_filter_match(struct nx_scratch *s, struct nx_config *cfg)
{
	struct nx_fstate st = { .s = s, .len = cfg->filter_len };

	if (cfg->filter_jit)
		return nx_filter_jit(s) != 0;
	if (st.len == 0)
		return true;
	bpf_loop(NX_FILTER_MAX_INSNS, nx_filter_step, &st, 0);
	return st.verdict != 0;
}

#endif
