/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The contract between netxray's kernel programs and user space.
 *
 * Every record that crosses the ring buffer and every map key/value that user
 * space reads or writes is defined here, once. The Rust mirror lives in
 * crates/netxray-abi/src/lib.rs and asserts the same sizes at compile time;
 * change both together and bump NX_ABI_VERSION.
 *
 * Fixed-width types only, explicit padding, no bitfields.
 */
#ifndef NETXRAY_ABI_H
#define NETXRAY_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define NX_ABI_VERSION 6

/* Packet bytes copied per event (from the L2 header when the skb has one,
 * else from the L3 header). A power of two: the BPF side masks with it. */
#define NX_CAP_BYTES 128
#define NX_IFNAMSIZ 16
#define NX_COMM_LEN 16

/* Hooks. The numbering is ABI; names and groups live in user space
 * (crates/netxray/src/model/hook.rs). Append only. */
enum nx_hook {
	NX_HOOK_NONE = 0,
	NX_HOOK_NAPI_GRO_RECEIVE_ENTRY = 1,
	NX_HOOK_NETIF_RECEIVE_SKB_ENTRY = 2,
	NX_HOOK_NETIF_RECEIVE_SKB_LIST_ENTRY = 3,
	NX_HOOK_NETIF_RX_ENTRY = 4,
	NX_HOOK_NETIF_RX = 5,
	NX_HOOK_NETIF_RECEIVE_SKB = 6,
	NX_HOOK_NET_DEV_QUEUE = 7,
	NX_HOOK_NET_DEV_START_XMIT = 8,
	NX_HOOK_NET_DEV_XMIT = 9,
	NX_HOOK_QDISC_ENQUEUE = 10,
	NX_HOOK_QDISC_DEQUEUE = 11,
	NX_HOOK_ICMP_SEND = 12,
	NX_HOOK_TCP_RETRANSMIT_SKB = 13,
	NX_HOOK_TCP_SEND_RESET = 14,
	NX_HOOK_TCP_RECEIVE_RESET = 15,
	NX_HOOK_UDP_FAIL_QUEUE_RCV_SKB = 16,
	NX_HOOK_SK_DATA_READY = 17,
	NX_HOOK_SKB_COPY_DATAGRAM_IOVEC = 18,
	NX_HOOK_KFREE_SKB = 19,
	NX_HOOK_CONSUME_SKB = 20,
	NX_HOOK_FIB_TABLE_LOOKUP = 21,
	NX_HOOK_FIB6_TABLE_LOOKUP = 22,
	NX_HOOK_NEIGH_CREATE = 23,
	NX_HOOK_NEIGH_UPDATE = 24,
	NX_HOOK_NEIGH_UPDATE_DONE = 25,
	NX_HOOK_NEIGH_TIMER_HANDLER = 26,
	NX_HOOK_NEIGH_EVENT_SEND_DONE = 27,
	NX_HOOK_NEIGH_EVENT_SEND_DEAD = 28,
	NX_HOOK_NEIGH_CLEANUP_AND_RELEASE = 29,
	NX_HOOK_NETIF_RX_EXIT = 30,
	NX_HOOK_NETIF_RECEIVE_SKB_EXIT = 31,
	NX_HOOK_NAPI_GRO_RECEIVE_EXIT = 32,
	NX_HOOK_NETIF_RECEIVE_SKB_LIST_EXIT = 33,
	/* Netfilter BPF links (bpf/netfilter.bpf.c) at the first priority of
	 * each hook, in enum nf_inet_hooks order: the packet as it enters the
	 * hook, before any chain (and before NAT at that hook). */
	NX_HOOK_NF_PREROUTING = 34,
	NX_HOOK_NF_INPUT = 35,
	NX_HOOK_NF_FORWARD = 36,
	NX_HOOK_NF_OUTPUT = 37,
	NX_HOOK_NF_POSTROUTING = 38,
	/* ... and at the last priority: every chain accepted it; NAT done,
	 * conntrack state known. */
	NX_HOOK_NF_PREROUTING_DONE = 39,
	NX_HOOK_NF_INPUT_DONE = 40,
	NX_HOOK_NF_FORWARD_DONE = 41,
	NX_HOOK_NF_OUTPUT_DONE = 42,
	NX_HOOK_NF_POSTROUTING_DONE = 43,
	/* tcx and XDP on the interface traced (-i): the frame as the device
	 * hands it over (ingress) or takes it (egress). */
	NX_HOOK_TC_INGRESS = 44,
	NX_HOOK_TC_EGRESS = 45,
	NX_HOOK_XDP = 46,
	NX_HOOK_MAX = 47,
};

/* What an event carries. */
enum nx_event_kind {
	/* data[] holds packet bytes read from the skb. */
	NX_KIND_PACKET = 1,
	/* No packet bytes could be read safely (freed skb, headers not built,
	 * NULL skb); tuple may hold the socket's view. */
	NX_KIND_SOCKET = 2,
	/* A routing decision: tuple is the flow looked up, aux the result. */
	NX_KIND_FIB = 3,
	/* Neighbour (ARP/ND) activity: aux_addr is the link-layer address,
	 * tuple.daddr the neighbour's protocol address. */
	NX_KIND_NEIGH = 4,
	/* --ret: what a function returned, at its exit tracepoint; skb, head,
	 * netns and device are those its entry hook recorded (same CPU). */
	NX_KIND_RET = 5,
};

/* nx_event.flags */
#define NX_F_L2 (1 << 0)	/* data[] starts with an Ethernet header */
#define NX_F_IN_IRQ (1 << 1)	/* raised in interrupt/softirq context: pid is not the owner */
#define NX_F_VLAN_HW (1 << 2)	/* skb->vlan_tci holds a stripped 802.1Q tag (put back into data[] when NX_F_L2) */
#define NX_F_TUPLE (1 << 3)	/* tuple is valid */
#define NX_F_SYNTH (1 << 4)	/* data[] was synthesised from the socket for filtering only */
#define NX_F_NO_DEV (1 << 5)	/* no device: ifindex/ifname come from elsewhere or are unknown */
#define NX_PKT_CLONED 0x80	/* in nx_event.pkt_type: the skb is a clone, or was cloned */
#define NX_F_SHARED (1 << 7)	/* kfree_skb/consume_skb: another skb (a clone) still holds the data buffer */
#define NX_F_FOLLOWED (1 << 6)	/* outside the filter, shown because an earlier hop of this packet matched (--follow) */

/* A flow as the socket or the routing lookup sees it; addresses in network
 * byte order, ports in host order. family is AF_INET (2) or AF_INET6 (10). */
struct nx_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 l4proto;
	__u8 _pad[2];
};

/* One ring-buffer record. The record is sizeof(struct nx_event) - NX_CAP_BYTES
 * + cap_len bytes long: only the captured bytes are sent. */
struct nx_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 skb;		/* skb address, 0 if none */
	__u64 location;		/* kfree_skb/consume_skb: the caller's address */
	__u8 abi_version;	/* NX_ABI_VERSION */
	__u8 kind;		/* enum nx_event_kind */
	__u16 hook;		/* enum nx_hook */
	__u32 cpu;
	__u32 pid;		/* thread id of the task on the CPU */
	__u32 tgid;		/* process id of that task */
	__u32 netns;		/* netns inode number, 0 if unknown */
	__u32 ifindex;		/* 0 if unknown */
	__u32 len;		/* skb->len, or the length the tracepoint passes */
	__s32 ret;		/* net_dev_xmit rc, qdisc_dequeue packets, icmp_send type<<8|code, fib err,
				 * netfilter *_DONE: conntrack status bits (IPS_*) ... */
	__u32 reason;		/* kfree_skb drop reason, tcp_send_reset rst reason, neigh nud state;
				 * netfilter *_DONE: conntrack ctinfo + 1 (0: no conntrack entry) */
	__u32 aux;		/* fib: table id; neigh: update flags; udp_fail: error;
				 * kfree_skb/consume_skb: NX_NF_AT() of the netfilter hook the skb was
				 * inside (0: none seen); netfilter: the other device's ifindex
				 * (forward: the output device) */
	__u16 protocol;		/* skb->protocol, host order */
	__u16 vlan_tci;		/* valid with NX_F_VLAN_HW */
	__u16 vlan_proto;	/* host order, valid with NX_F_VLAN_HW */
	__u16 cap_len;		/* bytes valid in data[] */
	__u16 l3_off;		/* offset of the network header in data[] */
	__u8 flags;		/* NX_F_* */
	__u8 pkt_type;		/* skb->pkt_type in bits 0-2; NX_PKT_CLONED: skb->cloned */
	char comm[NX_COMM_LEN];
	char ifname[NX_IFNAMSIZ];
	struct nx_tuple tuple;	/* netfilter *_DONE: the conntrack entry's original direction */
	__u8 aux_addr[16];	/* fib: gateway; neigh: link-layer address */
	__s32 stack_id;		/* kernel stack in map "nx_stacks" (--stack); -1 none, -2 lost */
	__u64 head;		/* skb->head: the data buffer, shared by clones; 0 if none */
	__u64 netns_cookie;	/* the namespace's cookie (net->net_cookie): unlike its inode,
				 * never reused; 0 unknown (before 5.12, or no namespace) */
	__u8 data[NX_CAP_BYTES];
};

#define NX_EVENT_HDR_SIZE 184
_Static_assert(sizeof(struct nx_tuple) == 40, "nx_tuple size");
_Static_assert(sizeof(struct nx_event) == NX_EVENT_HDR_SIZE + NX_CAP_BYTES, "nx_event size");

/* Per-hook counters, one slot per enum nx_hook in a per-CPU array
 * (map "nx_counters"). hits - matched = dropped by the filter in the kernel. */
struct nx_counter {
	__u64 hits;		/* times the program ran */
	__u64 matched;		/* passed every filter */
	__u64 emitted;		/* handed to the ring buffer */
	__u64 lost;		/* ring buffer full: bpf_ringbuf_output failed */
	__u64 stack_lost;	/* --stack: the stack could not be stored (map full, ...) */
	__u64 clobbered;	/* not sent: another program on this CPU (an interrupt's
				 * softirq) overwrote the record under construction */
};

/* Run-time configuration, written by user space into the one-slot array
 * "nx_config" before any program is attached. */
struct nx_config {
	__u32 netns;		/* only this netns inode (0: any) */
	__u32 ifindex;		/* only this ifindex (0: any) */
	__u32 tgid;		/* only events raised in this process (0: any) */
	__u32 flags;		/* NX_CFG_* */
	__u32 cap_bytes;	/* bytes of packet to send (snaplen), <= NX_CAP_BYTES */
	__u32 wakeup_bytes;	/* wake the reader once this much data is pending */
	__u32 thread_size;	/* kernel stack size, for the interrupt-context test */
	__u32 follow_ns;	/* --follow: keep showing a matched packet's data buffer this long (0: off) */
	__u64 stack_hooks;	/* --stack: bit n set = record the kernel stack at hook n */
};
_Static_assert(sizeof(struct nx_config) == 40, "nx_config size");
#define NX_CFG_FILTER (1 << 0)	/* run the filter compiled into nx_filter_jit (else accept all) */
#define NX_CFG_RET (1 << 1)	/* --ret: entry hooks remember their skb for the exit tracepoints */
#define NX_CFG_DROPS (1 << 2)	/* netxray drops: kfree_skb counts into "nx_drops" instead of emitting */
#define NX_CFG_NF_QUIET (1 << 3)	/* netfilter programs only note where each skb is (no events):
				 * attached for drop attribution, not traced */

/* Which netfilter hook an skb was inside: (nf_inet_hooks + 1) | pf << 8,
 * pf = NFPROTO_IPV4 (2) or NFPROTO_IPV6 (10). 0: none. */
#define NX_NF_AT(hooknum, pf) (((hooknum) + 1) | ((pf) << 8))

/* netxray drops: drops counted in the kernel, per CPU (map "nx_drops"). */
struct nx_drop_key {
	__u64 location;		/* the caller of kfree_skb */
	__u32 reason;		/* enum skb_drop_reason */
	__u32 netns;
	__u32 ifindex;
	__u32 nf_at;		/* NX_NF_AT() of the netfilter hook the skb was inside, 0: none */
	__u64 netns_cookie;	/* see nx_event */
};
_Static_assert(sizeof(struct nx_drop_key) == 32, "nx_drop_key size");

#define NX_DROP_SAMPLE 96
struct nx_drop_val {
	__u64 count;
	__u64 bytes;
	__u64 last_ns;		/* bpf_ktime_get_ns() when the sample was taken */
	__u16 protocol;		/* the latest packet: skb->protocol, host order */
	__u16 cap_len;		/* bytes valid in sample[] */
	__u16 l3_off;
	__u8 flags;		/* NX_F_L2 ... */
	__u8 _pad;
	__u8 sample[NX_DROP_SAMPLE];	/* its first bytes */
};
_Static_assert(sizeof(struct nx_drop_val) == 128, "nx_drop_val size");

/* Map "nx_drop_last" (per-CPU array, one slot): the row this CPU counted
 * last. Its drops after the first are counted here, not in "nx_drops" (a
 * flood of one kind of drop then skips the hash lookup): user space adds
 * them to that row when it reads. */
struct nx_drop_last {
	struct nx_drop_key key;
	__u64 count;		/* drops of the row not in "nx_drops" yet */
	__u64 bytes;
	__u64 valid;		/* key holds a row */
};
_Static_assert(sizeof(struct nx_drop_last) == 56, "nx_drop_last size");

/*
 * Map "nx_filter_sets" (LPM trie): the sets a filter looks addresses and
 * ports up in, when it has many alternatives of one kind (`host A or host B
 * or ...`). data[] is the set's number (4 bytes, big endian) then the
 * address or port in network order; prefixlen counts the set number's 32
 * bits and the prefix of the address (a /24 net: 56; a port: 48). Filled by
 * user space from the filter (model/filter/lower.rs sets, kernel/session.rs).
 */
struct nx_set_key {
	__u32 prefixlen;
	__u8 data[20];
};
_Static_assert(sizeof(struct nx_set_key) == 24, "nx_set_key size");

/*
 * Per-CPU scratch: the record under construction. Part of the contract
 * because the filter compiled by user space (crates/netxray/src/model/filter/
 * ebpf.rs) reads these fields at these offsets. The filter always sees up to
 * NX_CAP_BYTES of the packet (with a VLAN tag the kernel stripped put back
 * into the bytes, as tcpdump shows it); cap_len is cut to the snaplen after.
 */
struct nx_scratch {
	struct nx_event ev;
	__u64 sp;		/* a stack address, read back as a number */
	__u16 ethertype;	/* network protocol when data[] has no Ethernet header */
	__u16 et_copy;		/* the filter's own: the outer ethertype, read once */
	__u16 _pad[2];
	__u64 owner;		/* the ctx address of the program building the record */
	struct nx_set_key set_key; /* the filter's own: the key of its set lookups */
};
_Static_assert(sizeof(struct nx_scratch) == 360, "nx_scratch size");
_Static_assert(__builtin_offsetof(struct nx_scratch, set_key) == 336, "nx_scratch.set_key");
_Static_assert(__builtin_offsetof(struct nx_scratch, ethertype) == 320, "nx_scratch.ethertype");
_Static_assert(__builtin_offsetof(struct nx_scratch, et_copy) == 322, "nx_scratch.et_copy");
_Static_assert(__builtin_offsetof(struct nx_event, len) == 48, "nx_event.len");
_Static_assert(__builtin_offsetof(struct nx_event, cap_len) == 70, "nx_event.cap_len");
_Static_assert(__builtin_offsetof(struct nx_event, flags) == 74, "nx_event.flags");
_Static_assert(__builtin_offsetof(struct nx_event, data) == 184, "nx_event.data");

/* Instruction slots reserved for the compiled filter. */
#define NX_JIT_SLOTS 1024

/*
 * netxray stats (bpf/stats.bpf.c): packets counted at XDP and TC, per
 * interface and direction, and per flow. No per-packet events.
 */
enum nx_stats_dir {
	NX_DIR_XDP = 0,		/* XDP, receive */
	NX_DIR_TC_INGRESS = 1,	/* tcx ingress: received */
	NX_DIR_TC_EGRESS = 2,	/* tcx egress: sent */
	NX_DIR_MAX = 3,
};

/* Protocol slots of struct nx_if_stats. */
enum nx_stats_l3 { NX_L3_IPV4 = 0, NX_L3_IPV6 = 1, NX_L3_ARP = 2, NX_L3_OTHER = 3, NX_L3_MAX = 4 };
enum nx_stats_l4 { NX_L4_TCP = 0, NX_L4_UDP = 1, NX_L4_ICMP = 2, NX_L4_OTHER = 3, NX_L4_NONE = 4, NX_L4_MAX = 5 };

/* Map "nx_if_stats" (per-CPU hash): key. */
struct nx_if_key {
	__u32 ifindex;
	__u32 dir;		/* enum nx_stats_dir */
};
_Static_assert(sizeof(struct nx_if_key) == 8, "nx_if_key size");

/* Bytes are the frame's length at the hook (from the Ethernet header). */
struct nx_if_stats {
	__u64 packets;
	__u64 bytes;
	__u64 l3_packets[NX_L3_MAX];
	__u64 l3_bytes[NX_L3_MAX];
	__u64 l4_packets[NX_L4_MAX];	/* ICMP: ICMP and ICMPv6; NONE: not IP */
	__u64 l4_bytes[NX_L4_MAX];
	__u64 tcp_syn;		/* SYN without ACK: connection attempts */
	__u64 tcp_rst;
	__u64 filtered;		/* did not match the filter: not counted above */
};
_Static_assert(sizeof(struct nx_if_stats) == 23 * 8, "nx_if_stats size");

/* Map "nx_if_last" (per-CPU array, one slot per enum nx_stats_dir): the
 * interface this CPU counted last in that direction, and its counts since it
 * took the slot. They are added to "nx_if_stats" when another interface
 * takes the slot (a flood on one interface then skips the hash lookup); user
 * space adds them when it reads, after reading "nx_if_stats".
 * key.ifindex == 0: empty. */
struct nx_if_last {
	struct nx_if_key key;
	struct nx_if_stats st;
};
_Static_assert(sizeof(struct nx_if_last) == 8 + 23 * 8, "nx_if_last size");

/* Map "nx_flows" (LRU per-CPU hash): a flow at one interface and direction.
 * Addresses in network order, ports host order; ICMP: type<<8|code in
 * dport, echo id in sport. */
struct nx_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;		/* AF_INET, AF_INET6 */
	__u8 proto;
	__u8 dir;
	__u8 _pad;
	__u32 ifindex;
};
_Static_assert(sizeof(struct nx_flow_key) == 44, "nx_flow_key size");

struct nx_flow_val {
	__u64 packets;
	__u64 bytes;
	__u64 first_ns;
	__u64 last_ns;
};
_Static_assert(sizeof(struct nx_flow_val) == 32, "nx_flow_val size");

/* Map "nx_flow_last" (per-CPU array, one slot): the flow this CPU counted
 * last. Its packets since it became the last are counted here, not in
 * "nx_flows" (a flood of one flow then skips the hash lookup): user space adds
 * them to that flow when it reads. packets == 0: nothing pending. */
struct nx_flow_last {
	struct nx_flow_key key;
	__u32 _pad;
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct nx_flow_last) == 64, "nx_flow_last size");

/* Map "nx_stats_ctl" (per-CPU array, one slot): flows inserted (new
 * entries; evictions = inserted - entries present), flows that could not
 * be inserted. */
struct nx_stats_ctl {
	__u64 flows_inserted;
	__u64 flows_failed;
};

/* ---- netxray conn (bpf/conn.bpf.c): the life of every TCP connection ----
 * Its own object, maps and ring buffer; nothing above is shared with it
 * except struct nx_tuple and the sizes. Versioned on its own. */

#define NX_CONN_ABI_VERSION 2

/* nx_conn_event.kind */
enum nx_conn_kind {
	NX_CONN_STATE = 1,	/* a state transition (--events, --states) */
	NX_CONN_RETRANS = 2,	/* tcp:tcp_retransmit_skb (--events) */
	NX_CONN_RST_SENT = 3,	/* tcp:tcp_send_reset (--events) */
	NX_CONN_RST_RECV = 4,	/* tcp:tcp_receive_reset (--events) */
	NX_CONN_ACCEPT = 5,	/* accept(2) returned it: owner known (--events) */
	NX_CONN_CLOSE = 6,	/* the final record, always sent */
	NX_CONN_LISTEN = 7,	/* a socket started listening (--listen) */
	NX_CONN_LISTEN_STOP = 8,	/* a listening socket closed (--listen) */
};

/* nx_conn_event.flags and nx_conn_state.flags */
#define NX_CONN_F_ACTIVE (1 << 0)	/* connect(): CLOSE -> SYN_SENT seen */
#define NX_CONN_F_PASSIVE (1 << 1)	/* accepted: LISTEN -> SYN_RECV seen */
#define NX_CONN_F_BEFORE (1 << 2)	/* open before netxray started (start unknown) */
#define NX_CONN_F_ESTABLISHED (1 << 3)	/* reached ESTABLISHED */
#define NX_CONN_F_RST_SENT (1 << 4)	/* this side sent a reset */
#define NX_CONN_F_RST_RECV (1 << 5)	/* this side received a reset */
#define NX_CONN_F_FIN_SENT (1 << 6)	/* this side sent a FIN (FIN_WAIT1 or LAST_ACK) */
#define NX_CONN_F_LOCAL_FIRST (1 << 7)	/* this side closed first: ESTABLISHED -> FIN_WAIT1 */
#define NX_CONN_F_REMOTE_FIRST (1 << 8)	/* the peer closed first: ESTABLISHED -> CLOSE_WAIT */
#define NX_CONN_F_FIN_RECV (1 << 9)	/* a FIN was received (SOCK_DONE at close) */
#define NX_CONN_F_FIN_ACKED (1 << 10)	/* this side's FIN was acknowledged (snd_una == write_seq) */
#define NX_CONN_F_IN_IRQ (1 << 11)	/* the event was raised in interrupt/softirq context */
#define NX_CONN_F_CLOSED (1 << 12)	/* state: CLOSE seen, stats snapshotted, record pending */
#define NX_CONN_F_STATS (1 << 13)	/* the tcp_sock counters are valid */

/* nx_conn_event.owner_src: how the owning process was found */
#define NX_CONN_OWNER_NONE 0
#define NX_CONN_OWNER_CONNECT 1	/* the task calling connect() (CLOSE -> SYN_SENT) */
#define NX_CONN_OWNER_ACCEPT 2	/* the task whose accept()/accept4() returned it */
#define NX_CONN_OWNER_LISTENER 3	/* not accepted (yet): the task that called listen() on its port */
#define NX_CONN_OWNER_LISTEN 4	/* a listening socket: the task calling listen() */

/* One ring-buffer record of map "nx_conn_events". Addresses as nx_tuple:
 * tuple.saddr/sport local, tuple.daddr/dport remote. */
struct nx_conn_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() of the event */
	__u64 sk;		/* the socket's address: the connection's identity while it lives */
	__u64 start_ns;		/* first state seen (SYN_SENT / SYN_RECV); 0: open before netxray */
	__u64 established_ns;	/* reached ESTABLISHED; 0: never, or before netxray */
	__u64 close_ns;		/* CLOSE (CLOSE record); 0 otherwise */
	__u64 prev_ns;		/* STATE: the previous transition (time in oldstate); 0: unknown */
	__u64 bytes_acked;	/* tcp_sock counters at CLOSE (as TCP_INFO, RFC 4898) */
	__u64 bytes_received;
	__u32 segs_in;
	__u32 segs_out;
	__u32 data_segs_in;
	__u32 data_segs_out;
	__u32 total_retrans;
	__u32 srtt_us;		/* smoothed RTT at CLOSE, microseconds */
	__u32 retrans_seen;	/* tcp_retransmit_skb calls seen by netxray */
	__u32 netns;
	__u32 owner_tgid;	/* the owning process (see owner_src); 0 unknown */
	__u32 owner_tid;
	__u32 tgid;		/* the task running when the event was raised */
	__u32 tid;
	__s32 sk_err;		/* sk->sk_err at CLOSE (ETIMEDOUT, ECONNREFUSED, ...) */
	__u32 rst_reason;	/* RST_SENT: enum sk_rst_reason */
	__u16 flags;		/* NX_CONN_F_* */
	__u8 abi_version;	/* NX_CONN_ABI_VERSION */
	__u8 kind;		/* enum nx_conn_kind */
	__u8 oldstate;		/* STATE: TCP_* numbering (1 ESTABLISHED ... 12 NEW_SYN_RECV) */
	__u8 newstate;
	__u8 owner_src;		/* NX_CONN_OWNER_* */
	__u8 _pad;
	char owner_comm[NX_COMM_LEN];
	char comm[NX_COMM_LEN];	/* of tgid; empty in interrupt context */
	struct nx_tuple tuple;
	__u64 netns_cookie;	/* see nx_event */
};
#define NX_CONN_EVENT_SIZE 208
_Static_assert(sizeof(struct nx_conn_event) == NX_CONN_EVENT_SIZE, "nx_conn_event size");

/* Per-connection state (LRU hash "nx_conns", key: the sock address). */
struct nx_conn_state {
	__u64 start_ns;
	__u64 established_ns;
	__u64 state_ns;		/* latest transition */
	__u64 close_ns;
	__u64 bytes_acked;	/* snapshot at CLOSE (tcp_disconnect zeroes them after) */
	__u64 bytes_received;
	__u32 segs_in;
	__u32 segs_out;
	__u32 data_segs_in;
	__u32 data_segs_out;
	__u32 total_retrans;
	__u32 srtt_us;
	__u32 retrans_seen;
	__u32 owner_tgid;
	__u32 owner_tid;
	__s32 sk_err;
	__u16 flags;		/* NX_CONN_F_* */
	__u8 owner_src;
	__u8 state;		/* current TCP state */
	__u32 netns;
	char owner_comm[NX_COMM_LEN];
	struct nx_tuple tuple;	/* latest full tuple seen (the kernel clears ports at CLOSE) */
	__u64 app_tx;		/* --top: bytes send calls returned (sock:sock_send_length) */
	__u64 app_rx;		/* --top: bytes receive calls returned (sock:sock_recv_length) */
	__u64 netns_cookie;	/* see nx_event */
};
_Static_assert(sizeof(struct nx_conn_state) == 176, "nx_conn_state size");

/* Listening sockets' owners (hash "nx_listeners"), for children nobody accepted. */
struct nx_listen_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};
struct nx_listen_owner {
	__u32 tgid;
	__u32 tid;
	char comm[NX_COMM_LEN];
};
_Static_assert(sizeof(struct nx_listen_key) == 8, "nx_listen_key size");
_Static_assert(sizeof(struct nx_listen_owner) == 24, "nx_listen_owner size");

/* Counters, per CPU (array "nx_conn_counters", one slot). */
struct nx_conn_counter {
	__u64 transitions;	/* TCP inet_sock_set_state calls seen (after the netns test) */
	__u64 tracked;		/* connections inserted into nx_conns */
	__u64 untracked;	/* insertions refused (should stay 0: the map is LRU) */
	__u64 removed;		/* entries deleted after their CLOSE record */
	__u64 emitted;		/* records handed to the ring buffer */
	__u64 lost;		/* records lost: ring buffer full */
	__u64 close_lost;	/* of which CLOSE records */
	__u64 accepts;		/* accept() exits that found their connection */
	__u64 filtered;		/* records the filter (nx_filter_jit) kept from user space */
};
_Static_assert(sizeof(struct nx_conn_counter) == 72, "nx_conn_counter size");

/* Configuration (array "nx_conn_config", one slot), written before attaching. */
struct nx_conn_config {
	__u32 netns;		/* only this netns inode (0: any) */
	__u32 flags;		/* NX_CONN_CFG_* */
	__u32 wakeup_bytes;	/* wake the reader once this much data is pending */
	__u32 thread_size;	/* kernel stack size, for the interrupt-context test */
};
_Static_assert(sizeof(struct nx_conn_config) == 16, "nx_conn_config size");
#define NX_CONN_CFG_STATES (1 << 0)	/* send a STATE record per transition */
#define NX_CONN_CFG_EVENTS (1 << 1)	/* send RETRANS, RST_*, ACCEPT records */
#define NX_CONN_CFG_LISTEN (1 << 2)	/* send LISTEN / LISTEN_STOP records */
#define NX_CONN_CFG_TOP (1 << 3)	/* --top: count application bytes per connection */
#define NX_CONN_CFG_FILTER (1 << 4)	/* run the filter spliced into nx_filter_jit on each record's tuple */

/* ---- netxray dns / netxray http: application data from system calls ----
 * Its own object (l7.bpf.c), maps and ring buffer; shares struct nx_tuple
 * and the sizes above. Versioned on its own. */

#define NX_L7_ABI_VERSION 2
/* Bytes of a call's data copied from its start (a power of two), and from
 * its end (for the end of a chunked HTTP body in a large write). */
#define NX_L7_CAP 1024
#define NX_L7_TAIL 32

/* nx_l7_event.dir */
#define NX_L7_SEND 1		/* the process wrote this */
#define NX_L7_RECV 2		/* the process read this */

/* nx_l7_event.syscall: the call that moved the data */
enum nx_l7_syscall {
	NX_L7_SYS_READ = 1,
	NX_L7_SYS_WRITE = 2,
	NX_L7_SYS_READV = 3,
	NX_L7_SYS_WRITEV = 4,
	NX_L7_SYS_RECVFROM = 5,
	NX_L7_SYS_SENDTO = 6,
	NX_L7_SYS_RECVMSG = 7,
	NX_L7_SYS_SENDMSG = 8,
	NX_L7_SYS_RECVMMSG = 9,
	NX_L7_SYS_SENDMMSG = 10,
	NX_L7_SYS_SENDFILE = 11,	/* sendfile(2) to a socket: the bytes are counted, not copied (cap_len 0) */
};

/* nx_l7_event.flags */
#define NX_L7_F_PEER_FROM_MSG (1 << 0)	/* tuple.daddr/dport from the call's address (sendto, msg_name), not the socket's */
#define NX_L7_F_MORE_MSGS (1 << 1)	/* an mmsg call moved more messages than were recorded (NX_L7_MMSG_MAX) */
#define NX_L7_MMSG_MAX 8

/* One ring-buffer record of map "nx_l7_events": one call's data on an IP
 * socket (one record per message of sendmmsg/recvmmsg). Addresses as
 * nx_tuple: saddr/sport local, daddr/dport remote. The record is
 * sizeof(struct nx_l7_event) - NX_L7_CAP + cap_len bytes long. */
struct nx_l7_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() at the call's return (on the sock path: the socket hook's, inside it) */
	__u64 sk;		/* the socket's address: the connection's identity while it lives */
	__u64 netns_cookie;	/* see nx_event */
	__u32 netns;
	__u32 tgid;
	__u32 tid;
	__u32 len;		/* bytes this message carried (the call's return, or msg_len) */
	__u32 cap_len;		/* bytes in data[] (from the start of the message) */
	__u32 fd;
	__u16 syscall;		/* enum nx_l7_syscall */
	__u8 abi_version;	/* NX_L7_ABI_VERSION */
	__u8 dir;		/* NX_L7_SEND / NX_L7_RECV */
	__u8 sock_type;		/* SOCK_STREAM (1) or SOCK_DGRAM (2) */
	__u8 msg_index;		/* mmsg calls: which message of the call */
	__u8 tail_len;		/* bytes in tail[]: 0 when data[] holds the whole message */
	__u8 flags;		/* NX_L7_F_* */
	char comm[NX_COMM_LEN];	/* the process's (its main thread's) name */
	struct nx_tuple tuple;
	__u8 tail[NX_L7_TAIL];	/* the message's last tail_len bytes */
	__u8 data[NX_L7_CAP];
};
#define NX_L7_EVENT_HDR_SIZE 144
_Static_assert(sizeof(struct nx_l7_event) == NX_L7_EVENT_HDR_SIZE + NX_L7_CAP, "nx_l7_event size");

/* Counters, per CPU (array "nx_l7_counters", one slot). */
struct nx_l7_counter {
	__u64 calls;		/* calls that returned data on a socket of the right kind */
	__u64 matched;		/* of which kept by --pid/--comm/--netns and the filter */
	__u64 emitted;		/* records handed to the ring buffer */
	__u64 lost;		/* records lost: ring buffer full */
	__u64 read_errors;	/* user memory that could not be read (copied as 0 bytes) */
};
_Static_assert(sizeof(struct nx_l7_counter) == 40, "nx_l7_counter size");

/* Configuration (array "nx_l7_config", one slot), written before attaching. */
struct nx_l7_config {
	__u32 netns;		/* only this netns inode (0: any) */
	__u32 tgid;		/* only this process (0: any) */
	__u32 flags;		/* NX_L7_CFG_* */
	__u32 cap_bytes;	/* bytes copied from a message's start, <= NX_L7_CAP */
	__u32 wakeup_bytes;	/* wake the reader once this much data is pending */
	__u32 thread_size;	/* kernel stack size: where a task's saved user registers are */
	char comm[NX_COMM_LEN];	/* only processes of this name (their main thread's; flags & NX_L7_CFG_COMM) */
};
_Static_assert(sizeof(struct nx_l7_config) == 40, "nx_l7_config size");
#define NX_L7_CFG_FILTER (1 << 0)	/* run the filter spliced into nx_filter_jit on each call's tuple */
#define NX_L7_CFG_COMM (1 << 1)		/* compare the task's name with comm */
#define NX_L7_CFG_TCP (1 << 2)		/* stream (TCP) sockets */
#define NX_L7_CFG_UDP (1 << 3)		/* datagram (UDP) sockets */
#define NX_L7_CFG_SOCK_PATH (1 << 4)	/* sock_send_length/sock_recv_length carry the data (6.3+); the
					 * system-call returns only the calls they leave (mmsg, sendfile,
					 * a datagram read with its sender's address) */
#define NX_L7_CFG_SOCK_SPLICE (1 << 5)	/* the socket hooks also count sendfile/splice to a socket (6.5+:
					 * through sock_sendmsg) and TCP mmsg calls, by their length */


#endif
