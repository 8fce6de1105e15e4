/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading a packet out of an skb at any hook, and the in-kernel filter.
 *
 * Header offsets are computed robustly: on some paths the network header is
 * not set yet (a locally built skb before ip_output), on others the MAC header
 * is unset (~0) or belongs to a device without an Ethernet header. We start at
 * the MAC header when the device is Ethernet-like and the header is set, else
 * at the network header when it is set, else at skb->data. The filter, compiled
 * by user space, parses the bytes itself (VLAN tags, IPv4 IHL, ...).
 */
#ifndef NX_PACKET_BPF_H
#define NX_PACKET_BPF_H

#include "nx_common.bpf.h"

/*
 * Whether the filter may read a packet where it lies. Since 6.17 a char
 * pointer read from a BTF struct (skb->head) is read-only untrusted memory
 * that plain loads may read (each one a PROBE_MEM load: a fault reads 0),
 * where before it was a number only a probe-read helper could follow. That
 * came with BPF_FEAT_RDONLY_CAST_TO_VOID (bpf-next, June-July 2025), the
 * kernel's flag for the feature. Older kernels: the bytes are copied for the
 * filter first, as before. A CO-RE constant: the verifier never walks the
 * branch this kernel cannot take.
 *
 * Why: the copy (a bpf_probe_read_kernel of up to 128 bytes) was 35-55 ns of
 * the ~150-175 ns a packet outside the filter cost at a hook (bpf_stats,
 * bench mode 1, 2026-12-06); the filter reads a few bytes.
 */
#define NX_DIRECT_LOADS bpf_core_enum_value_exists(enum bpf_features, BPF_FEAT_RDONLY_CAST_TO_VOID)

/*
 * Whether the kernel took a VLAN tag out of the frame into the skb. Since 6.2
 * the tag's presence is vlan_all != 0 (vlan_all: proto and TCI as one word);
 * before, a vlan_present bit beside them (5.0-6.1). A CO-RE field test picks
 * the one this kernel has; an unguarded read of a field the kernel lacks
 * would make the whole program fail to load.
 */
struct sk_buff___nx_vlan_bit {
	__u8 vlan_present : 1;
} __attribute__((preserve_access_index));

static __always_inline bool nx_skb_vlan_present(struct sk_buff *skb)
{
	if (bpf_core_field_exists(skb->vlan_all))
		return skb->vlan_all != 0;
	struct sk_buff___nx_vlan_bit *old = (void *)skb;
	if (bpf_core_field_exists(old->vlan_present))
		return BPF_CORE_READ_BITFIELD(old, vlan_present);
	return false;
}

/*
 * The packet's metadata into the record, and where its bytes are: up to
 * NX_CAP_BYTES from the first header we trust (ev.cap_len says how many).
 * Returns the bytes in the packet's own buffer, for the filter to read only
 * what it tests (nx_filter_skb) and nx_copy_skb to copy afterwards for a
 * record that is kept; NULL when they are already copied into ev.data (an
 * older kernel, or a VLAN tag the kernel stripped into skb->vlan_tci, put
 * back into the bytes so the filter and the decoder see the frame as
 * tcpdump shows it). dev may be NULL (then the MAC header is not trusted).
 */
static __always_inline const unsigned char *nx_skb_bytes(struct nx_scratch *s,
							 struct sk_buff *skb,
							 const struct net_device *dev)
{
	struct nx_event *e = &s->ev;
	const unsigned char *head = (skb->head);
	__u16 mac = (skb->mac_header);
	__u16 net = (skb->network_header);
	__u32 tail = (skb->tail);
	__u32 start, cap, avail, tag = 0;

	e->skb = (__u64)skb;
	e->head = (__u64)head;
	e->len = (skb->len);
	e->protocol = bpf_ntohs((skb->protocol));
	e->pkt_type = BPF_CORE_READ_BITFIELD(skb, pkt_type) |
		      (BPF_CORE_READ_BITFIELD(skb, cloned) ? NX_PKT_CLONED : 0);
	if (nx_skb_vlan_present(skb)) {
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
		e->l3_off = net > mac ? net - mac : 14;
		if (e->flags & NX_F_VLAN_HW)
			tag = 4;
	} else if (net != 0) {
		start = net;
	} else {
		start = (skb->data) - head;
	}

	avail = tail > start ? tail - start : 0;
	cap = avail < NX_CAP_BYTES ? avail : NX_CAP_BYTES;
	e->cap_len = cap;
	if (e->flags & NX_F_L2) {
		s->ethertype = 0;
	} else {
		/* A locally built skb may have no protocol yet: look at the version. */
		__u16 et = e->protocol;
		if (et == 0 && cap >= 1) {
			__u8 v;
			if (bpf_probe_read_kernel(&v, 1, head + start) != 0)
				v = 0;
			v >>= 4;
			et = v == 4 ? NX_ETH_P_IP : v == 6 ? NX_ETH_P_IPV6 : 0;
		}
		s->ethertype = et;
	}
	if (NX_DIRECT_LOADS && !tag)
		return head + start;
	if (tag && cap >= 12) {
		/* dst, src | TPID, TCI | the rest, shifted by 4. */
		__u32 rest = cap - 12;
		if (rest > NX_CAP_BYTES - 16)
			rest = NX_CAP_BYTES - 16;
		if (bpf_probe_read_kernel(e->data, 12, head + start) != 0)
			rest = 0, cap = 0;
		e->data[12] = e->vlan_proto >> 8;
		e->data[13] = e->vlan_proto & 0xff;
		e->data[14] = e->vlan_tci >> 8;
		e->data[15] = e->vlan_tci & 0xff;
		if (rest && bpf_probe_read_kernel(&e->data[16], rest, head + start + 12) != 0)
			rest = 0;
		cap = cap ? 16 + rest : 0;
		e->len += 4;
		e->l3_off += 4;
	} else if (bpf_probe_read_kernel(e->data, cap, head + start) != 0) {
		cap = 0;
	}
	e->cap_len = cap;
	return NULL;
}

/* The bytes nx_skb_bytes left in the packet, into the record (nothing to do
 * if it copied them). Word by word with plain loads, as the filter reads
 * them (a fault reads 0): bpf_probe_read_kernel cost 40-70 ns a record
 * here. The last word may take up to 7 bytes past the captured ones, from
 * the same buffer; nothing past cap_len is sent. */
static __always_inline void nx_copy_skb(struct nx_scratch *s, const unsigned char *bytes)
{
	struct nx_event *e = &s->ev;
	__u32 cap = e->cap_len;

	if (!bytes)
		return;
#pragma unroll
	for (int i = 0; i < NX_CAP_BYTES / 8; i++) {
		if (i * 8 >= cap)
			break;
		((__u64 *)e->data)[i] = *(const __u64 *)(bytes + i * 8);
	}
}

/* The packet into the record, for paths that want the bytes whatever the
 * filter says. */
static __always_inline void nx_read_skb(struct nx_scratch *s, struct sk_buff *skb,
					const struct net_device *dev)
{
	nx_copy_skb(s, nx_skb_bytes(s, skb, dev));
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
		return;
	}
	e->data[l4] = t->sport >> 8;
	e->data[l4 + 1] = t->sport & 0xff;
	e->data[l4 + 2] = t->dport >> 8;
	e->data[l4 + 3] = t->dport & 0xff;
	e->cap_len = l4 + 4;
	e->l3_off = 0;
}

/*
 * The compiled filter. These are placeholders: user space overwrites them in
 * the ELF, before loading, with the filter compiled to BPF instructions
 * (kernel/jit.rs); the verifier checks that code like any other. The filter
 * runs with r1 = the scratch and r2 = the packet's bytes and leaves 1 in r0
 * to keep the record. The verifier wants one pointer type at each load
 * instruction, and the bytes are either in the scratch (a map value) or in
 * the packet's own buffer (read-only untrusted memory, nx_skb_bytes), so
 * there are two kinds:
 * - nx_filter_jit, a subprogram, for bytes in the scratch (synthesised
 *   tuples, tc/XDP frames, VLAN tags put back, older kernels). Layout: a
 *   64-bit load of NX_JIT_MAGIC into r0, slots of `goto +0`, `r0 = 1; exit`
 *   (accept all), NX_JIT_SLOTS in all.
 * - nx_filter_inline, the same slots as an asm block inside each program
 *   that reads packets in place, the hot path: a bpf-to-bpf call and its
 *   return cost ~15 ns a run here (the return goes through the SRSO "safe
 *   RET" thunk). Layout: a load of NX_JIT_MAGIC_INLINE, `goto +0` slots,
 *   `r0 = 1`, falling through to the code after it (the patcher turns the
 *   filter's exits into jumps there). The filter writes r0 and r2-r9, never
 *   r1 or the stack; in memory only the scratch's et_copy and set_key.
 * Both start, after the magic, with `r8 = &nx_filter_sets` (a map load the
 * loader relocates, kept by the patcher): a filter with set lookups keeps
 * the map there for bpf_map_lookup_elem.
 */
#define NX_JIT_MAGIC 0x4e584a4954464c54ULL	  /* "NXJITFLT" */
#define NX_JIT_MAGIC_INLINE 0x4e584a4954494e4cULL /* "NXJITINL" */
#define NX_STR2(x) #x
#define NX_STR(x) NX_STR2(x)

/* The sets of the filter's lookups (struct nx_set_key, abi.h); sized by
 * user space. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nx_set_key);
	__type(value, __u8);
} nx_filter_sets SEC(".maps");

__attribute__((naked, noinline, used)) static int nx_filter_jit(struct nx_scratch *s,
								   const void *bytes)
{
	asm volatile("r0 = " NX_STR(NX_JIT_MAGIC) " ll;"
		     "r8 = %[sets] ll;"
		     ".rept " NX_STR(NX_JIT_SLOTS) " - 6;"
		     "goto +0;"
		     ".endr;"
		     "r0 = 1;"
		     "exit;" ::[sets] "i"(&nx_filter_sets)
		     : "r0", "r1", "r2", "r3", "r4", "r5", "memory");
}

#ifdef NX_PACKET_HOOKS
/* Objects with packet hooks (nx_hook.bpf.h) only. */
static __always_inline int nx_filter_inline(struct nx_scratch *s, const void *bytes)
{
	register __u64 r0 asm("r0");
	register struct nx_scratch *r1 asm("r1") = s;
	register const void *r2 asm("r2") = bytes;

	asm volatile("r0 = " NX_STR(NX_JIT_MAGIC_INLINE) " ll;"
		     "r8 = %[sets] ll;"
		     ".rept " NX_STR(NX_JIT_SLOTS) " - 5;"
		     "goto +0;"
		     ".endr;"
		     "r0 = 1;"
		     : "=r"(r0), "+r"(r2)
		     : "r"(r1), [sets] "i"(&nx_filter_sets)
		     : "r3", "r4", "r5", "r6", "r7", "r8", "r9", "memory");
	return r0;
}
#endif

/* Run the user's filter over the record in s, its bytes in ev.data.
 * Returns true to keep it. */
static __always_inline bool nx_filter_match(struct nx_scratch *s, struct nx_config *cfg)
{
	return !(cfg->flags & NX_CFG_FILTER) || nx_filter_jit(s, s->ev.data) != 0;
}

#ifdef NX_PACKET_HOOKS
/* Run the user's filter over a packet, its bytes where nx_skb_bytes said. */
static __always_inline bool nx_filter_skb(struct nx_scratch *s, struct nx_config *cfg,
					  const unsigned char *bytes)
{
	if (!(cfg->flags & NX_CFG_FILTER))
		return true;
	if (bytes)
		return nx_filter_inline(s, bytes) != 0;
	return nx_filter_jit(s, s->ev.data) != 0;
}
#endif

#endif
