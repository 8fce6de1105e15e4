// SPDX-License-Identifier: GPL-2.0
/*
 * The tracing programs' filter, on a TC program that BPF_PROG_TEST_RUN can
 * run (it refuses tp_btf programs): the test suite feeds it frames and
 * checks the kernel's verdicts against tcpdump's. Same nx_filter_jit
 * placeholder, same scratch layout, spliced the same way. Never attached.
 *
 * skb->mark selects the view: 0, the frame from its Ethernet header (as at
 * link-layer hooks); 1, from the network header with no Ethernet header (as
 * at hooks before the MAC header is built), the protocol from skb->protocol.
 * With mark bit 1, bytes 12-13 (the ethertype) are replaced by skb->priority
 * after loading: BPF_PROG_TEST_RUN refuses an IPv4 or IPv6 frame whose header
 * is cut short, so such frames are sent under another ethertype and put back.
 * The return value is the verdict: 1 keep, 0 drop.
 */
#include "nx_packet.bpf.h"

SEC("classifier")
int nx_filter_twin(struct __sk_buff *skb)
{
	__u32 zero = 0, off = 0, len = skb->len;
	__u64 cap;
	struct nx_scratch *s = bpf_map_lookup_elem(&nx_scratch, &zero);

	if (!s)
		return 0;
	__builtin_memset(&s->ev, 0, NX_EVENT_HDR_SIZE);
	if (skb->mark & 1) {
		off = 14;
		s->ethertype = bpf_ntohs(skb->protocol);
	} else {
		s->ev.flags = NX_F_L2;
		s->ethertype = 0;
	}
	len = len > off ? len - off : 0;
	s->ev.len = len;
	cap = len < NX_CAP_BYTES ? len : NX_CAP_BYTES;
	/* Checked on the register the helper gets, for the verifier. */
	asm volatile("" : "+r"(cap));
	if (cap < 1 || cap > NX_CAP_BYTES || bpf_skb_load_bytes(skb, off, s->ev.data, cap) != 0)
		cap = 0;
	if ((skb->mark & 2) && !off && cap >= 14) {
		s->ev.data[12] = skb->priority >> 8;
		s->ev.data[13] = skb->priority & 0xff;
	}
	s->ev.cap_len = cap;
	return nx_filter_jit(s, s->ev.data);
}

char LICENSE[] SEC("license") = "GPL";
