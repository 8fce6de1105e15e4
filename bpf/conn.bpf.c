// SPDX-License-Identifier: GPL-2.0
/*
 * netxray conn: the life of every TCP connection, on tracepoints only.
 *
 * sock:inet_sock_set_state keeps one entry per socket in the LRU hash
 * nx_conns (key: the sock address) from its first transition to its end;
 * the final record (NX_CONN_CLOSE) carries the tcp_sock counters taken at
 * the transition to CLOSE. tcp:tcp_retransmit_skb, tcp:tcp_send_reset and
 * tcp:tcp_receive_reset mark the entry; syscalls:sys_exit_accept[4] names
 * the process that accepted a passive connection (the passive handshake and
 * closes run in softirq or timer context, where the current task is not the
 * owner). tcp:tcp_destroy_sock sends the records deferred at CLOSE.
 *
 * Why defer: close(2) with SO_LINGER 0 or unread data moves the socket to
 * CLOSE *before* it sends the reset (tcp_disconnect, __tcp_close), and
 * zeroes the counters after. So a CLOSE reached in process context, or on
 * an orphaned socket (destroyed right after), is recorded with its counters
 * and sent at tcp_destroy_sock, when the reset is known. A CLOSE reached in
 * softirq/timer context on a socket the application still holds (peer reset,
 * timeout, FIN after shutdown) is final: sent at once.
 */
/* The filter placeholder (nx_filter_jit) and the scratch it reads; the
 * shared maps this brings (nx_config, nx_counters, nx_events) are unused
 * here, and user space loads nx_events at its smallest. */
#include "nx_packet.bpf.h"
#include "nx_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define RINGBUF_REC_HDR 8
#define SOCK_DEAD_BIT 0
#define SOCK_DONE_BIT 1

/* TCP states (include/net/tcp_states.h) */
#define ST_ESTABLISHED 1
#define ST_SYN_SENT 2
#define ST_SYN_RECV 3
#define ST_FIN_WAIT1 4
#define ST_FIN_WAIT2 5
#define ST_TIME_WAIT 6
#define ST_CLOSE 7
#define ST_CLOSE_WAIT 8
#define ST_LAST_ACK 9
#define ST_LISTEN 10
#define ST_CLOSING 11

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_conn_config);
} nx_conn_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_conn_counter);
} nx_conn_counters SEC(".maps");

/* Size set by user space (--max-conns). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u64);
	__type(value, struct nx_conn_state);
} nx_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nx_listen_key);
	__type(value, struct nx_listen_owner);
} nx_listeners SEC(".maps");

/* Size set by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} nx_conn_events SEC(".maps");

/* The record under construction, and a word to read ctx back as a number. */
struct conn_scratch {
	struct nx_conn_event ev;
	__u64 sp;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_scratch);
} nx_conn_scratch SEC(".maps");

struct conn_ctx {
	struct nx_conn_config *cfg;
	struct nx_conn_counter *cnt;
	struct conn_scratch *s;
};

static __always_inline bool conn_begin(struct conn_ctx *c)
{
	__u32 zero = 0;

	c->cfg = bpf_map_lookup_elem(&nx_conn_config, &zero);
	c->cnt = bpf_map_lookup_elem(&nx_conn_counters, &zero);
	c->s = bpf_map_lookup_elem(&nx_conn_scratch, &zero);
	return c->cfg && c->cnt && c->s;
}

/* Interrupt (soft or hard) context: see nx_in_irq in nx_common.bpf.h. */
static __always_inline bool conn_in_irq(struct conn_ctx *c, void *ctx)
{
	return nx_ctx_in_irq(&c->s->sp, ctx, c->cfg->thread_size);
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline void sk_tuple(struct nx_tuple *t, const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	t->family = family;
	t->l4proto = IPPROTO_TCP;
	t->sport = sk->__sk_common.skc_num;
	/* Released at CLOSE (skc_num 0); inet_sport survives until tcp_disconnect. */
	if (!t->sport)
		t->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (family == AF_INET) {
		bpf_probe_read_kernel(t->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_probe_read_kernel(t->daddr, 4, &sk->__sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		bpf_probe_read_kernel(t->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_probe_read_kernel(t->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* Keep the latest full tuple: at CLOSE the kernel has already released the
 * local port (skc_num = 0; inet_sport survives until tcp_disconnect), and
 * tcp_disconnect clears the peer's. */
static __always_inline void conn_learn(struct nx_conn_state *st, const struct sock *sk)
{
	struct nx_tuple t = {};

	/* Known once complete: a connection's ends do not change. */
	if (st->tuple.family)
		return;

	sk_tuple(&t, sk);
	if (t.sport && t.dport)
		__builtin_memcpy(&st->tuple, &t, sizeof(t));
}

/* Start a record: zeroed, identity, tuple, task. */
static __always_inline struct nx_conn_event *conn_record(struct conn_ctx *c, void *ctx,
							 const struct sock *sk, __u8 kind, __u32 netns)
{
	struct nx_conn_event *e = &c->s->ev;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	__builtin_memset(e, 0, sizeof(*e));
	e->abi_version = NX_CONN_ABI_VERSION;
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_ns();
	e->sk = (__u64)sk;
	e->netns = netns;
	e->netns_cookie = nx_net_cookie(sk->__sk_common.skc_net.net);
	e->tid = (__u32)pid_tgid;
	e->tgid = pid_tgid >> 32;
	if (conn_in_irq(c, ctx))
		e->flags |= NX_CONN_F_IN_IRQ;
	else
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* conn_fill puts the entry's tuple over it when it has one. */
	sk_tuple(&e->tuple, sk);
	return e;
}

/* What the entry knows, into the record. */
static __always_inline void conn_fill(struct nx_conn_event *e, const struct nx_conn_state *st)
{
	if (st->tuple.family)
		__builtin_memcpy(&e->tuple, &st->tuple, sizeof(e->tuple));
	e->start_ns = st->start_ns;
	e->established_ns = st->established_ns;
	e->close_ns = st->close_ns;
	e->bytes_acked = st->bytes_acked;
	e->bytes_received = st->bytes_received;
	e->segs_in = st->segs_in;
	e->segs_out = st->segs_out;
	e->data_segs_in = st->data_segs_in;
	e->data_segs_out = st->data_segs_out;
	e->total_retrans = st->total_retrans;
	e->srtt_us = st->srtt_us;
	e->retrans_seen = st->retrans_seen;
	e->owner_tgid = st->owner_tgid;
	e->owner_tid = st->owner_tid;
	e->owner_src = st->owner_src;
	e->sk_err = st->sk_err;
	e->flags |= st->flags & ~NX_CONN_F_IN_IRQ;
	__builtin_memcpy(e->owner_comm, st->owner_comm, NX_COMM_LEN);
}

/*
 * The user's address/port filter (compiled by user space, spliced into
 * nx_filter_jit as in trace.bpf.o), on a packet synthesised from the
 * record's tuple, one way then the other: a connection matches when a
 * packet of it would. An IPv6 socket talking IPv4 (::ffff:a.b.c.d on both
 * ends) is filtered as IPv4, what is on the wire.
 */
static __always_inline bool conn_wanted(struct conn_ctx *c)
{
	struct nx_tuple *t = &c->s->ev.tuple;
	struct nx_scratch *s;
	__u32 zero = 0;
	__u16 port;
	__u8 a[16];

	if (!(c->cfg->flags & NX_CONN_CFG_FILTER))
		return true;
	s = bpf_map_lookup_elem(&nx_scratch, &zero);
	if (!s)
		return true;
	__builtin_memcpy(&s->ev.tuple, t, sizeof(*t));
	t = &s->ev.tuple;
	if (t->family == AF_INET6 &&
	    *(__u64 *)&t->saddr[0] == 0 && *(__u32 *)&t->saddr[8] == bpf_htonl(0xffff) &&
	    *(__u64 *)&t->daddr[0] == 0 && *(__u32 *)&t->daddr[8] == bpf_htonl(0xffff)) {
		t->family = AF_INET;
		__builtin_memcpy(&t->saddr[0], &t->saddr[12], 4);
		__builtin_memcpy(&t->daddr[0], &t->daddr[12], 4);
	}
	s->ev.flags = 0;
	nx_synth_from_tuple(s);
	s->ev.len = s->ev.cap_len;
	if (nx_filter_jit(s, s->ev.data))
		return true;
	__builtin_memcpy(a, t->saddr, 16);
	__builtin_memcpy(t->saddr, t->daddr, 16);
	__builtin_memcpy(t->daddr, a, 16);
	port = t->sport;
	t->sport = t->dport;
	t->dport = port;
	s->ev.flags = 0;
	nx_synth_from_tuple(s);
	s->ev.len = s->ev.cap_len;
	return nx_filter_jit(s, s->ev.data) != 0;
}

/* Hand the record to the ring buffer; wake-ups as nx_emit (nx_common.bpf.h):
 * at the quarter-mark crossing, and for every record past three quarters. */
static __always_inline bool conn_emit(struct conn_ctx *c)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 pending = bpf_ringbuf_query(&nx_conn_events, BPF_RB_AVAIL_DATA);
	__u32 wake = c->cfg->wakeup_bytes;

	if (!conn_wanted(c)) {
		c->cnt->filtered++;
		return false;
	}

	if (pending < wake) {
		if (pending + RINGBUF_REC_HDR + sizeof(struct nx_conn_event) >= wake)
			flags = BPF_RB_FORCE_WAKEUP;
	} else if (pending >= bpf_ringbuf_query(&nx_conn_events, BPF_RB_RING_SIZE) / 4 * 3) {
		flags = BPF_RB_FORCE_WAKEUP;
	}
	if (bpf_ringbuf_output(&nx_conn_events, &c->s->ev, sizeof(struct nx_conn_event), flags) == 0) {
		c->cnt->emitted++;
		return true;
	}
	c->cnt->lost++;
	if (c->s->ev.kind == NX_CONN_CLOSE)
		c->cnt->close_lost++;
	return false;
}

/* The final record of an entry, and the entry's end. */
static __always_inline void conn_final(struct conn_ctx *c, void *ctx, const struct sock *sk,
				       struct nx_conn_state *st, __u32 netns)
{
	struct nx_conn_event *e = conn_record(c, ctx, sk, NX_CONN_CLOSE, netns);
	__u64 key = (__u64)sk;

	conn_fill(e, st);
	e->oldstate = st->state;
	e->newstate = ST_CLOSE;
	conn_emit(c);
	if (bpf_map_delete_elem(&nx_conns, &key) == 0)
		c->cnt->removed++;
}

static __always_inline void conn_owner_here(struct nx_conn_state *st, __u8 src)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	st->owner_tgid = pid_tgid >> 32;
	st->owner_tid = (__u32)pid_tgid;
	st->owner_src = src;
	bpf_get_current_comm(st->owner_comm, sizeof(st->owner_comm));
}

/* The counters at CLOSE (tcp_disconnect zeroes them right after). */
static __always_inline void conn_snapshot(struct nx_conn_state *st, const struct sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);

	if (!tp)
		return;
	st->bytes_acked = tp->bytes_acked;
	st->bytes_received = tp->bytes_received;
	st->segs_in = tp->segs_in;
	st->segs_out = tp->segs_out;
	st->data_segs_in = tp->data_segs_in;
	st->data_segs_out = tp->data_segs_out;
	st->total_retrans = tp->total_retrans;
	st->srtt_us = tp->srtt_us >> 3;
	st->sk_err = sk->sk_err;
	st->flags |= NX_CONN_F_STATS;
	if ((st->flags & NX_CONN_F_FIN_SENT) && tp->snd_una == tp->write_seq)
		st->flags |= NX_CONN_F_FIN_ACKED;
	if (sk->__sk_common.skc_flags & (1UL << SOCK_DONE_BIT))
		st->flags |= NX_CONN_F_FIN_RECV;
}

static __always_inline void listen_event(struct conn_ctx *c, void *ctx, const struct sock *sk,
					 __u32 netns, int oldstate, int newstate)
{
	struct nx_listen_key k = { .netns = netns, .port = sk->__sk_common.skc_num };
	struct nx_conn_event *e;

	if (newstate == ST_LISTEN) {
		struct nx_listen_owner o = {};
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		o.tgid = pid_tgid >> 32;
		o.tid = (__u32)pid_tgid;
		bpf_get_current_comm(o.comm, sizeof(o.comm));
		bpf_map_update_elem(&nx_listeners, &k, &o, BPF_ANY);
	} else {
		bpf_map_delete_elem(&nx_listeners, &k);
	}
	if (!(c->cfg->flags & NX_CONN_CFG_LISTEN))
		return;
	e = conn_record(c, ctx, sk, newstate == ST_LISTEN ? NX_CONN_LISTEN : NX_CONN_LISTEN_STOP, netns);
	e->oldstate = oldstate;
	e->newstate = newstate;
	if (!(e->flags & NX_CONN_F_IN_IRQ)) {
		e->owner_tgid = e->tgid;
		e->owner_tid = e->tid;
		e->owner_src = NX_CONN_OWNER_LISTEN;
		__builtin_memcpy(e->owner_comm, e->comm, NX_COMM_LEN);
	}
	conn_emit(c);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct conn_ctx c;
	struct nx_conn_state *st;
	struct nx_conn_state fresh = {};
	__u64 key = (__u64)sk;
	__u64 now;
	__u32 netns;
	bool irq;

	if (sk->sk_protocol != IPPROTO_TCP || !conn_begin(&c))
		return 0;
	netns = sk_netns(sk);
	if (c.cfg->netns && c.cfg->netns != netns)
		return 0;
	c.cnt->transitions++;
	if (newstate == ST_LISTEN || (oldstate == ST_LISTEN && newstate == ST_CLOSE)) {
		listen_event(&c, ctx, sk, netns, oldstate, newstate);
		return 0;
	}
	now = bpf_ktime_get_ns();
	st = bpf_map_lookup_elem(&nx_conns, &key);
	if (st && (st->flags & NX_CONN_F_CLOSED) && oldstate == ST_CLOSE) {
		/* Reused after a deferred CLOSE (connect() again): that one ends now. */
		conn_final(&c, ctx, sk, st, netns);
		st = NULL;
	}
	if (!st) {
		if (oldstate == ST_CLOSE && newstate == ST_SYN_SENT) {
			fresh.flags = NX_CONN_F_ACTIVE;
			fresh.start_ns = now;
			conn_owner_here(&fresh, NX_CONN_OWNER_CONNECT);
		} else if (oldstate == ST_LISTEN && newstate == ST_SYN_RECV) {
			/* A child of a listener, in softirq or the client's context:
			 * the owner is who accepts it (sys_exit_accept), else the
			 * listener's owner. */
			struct nx_listen_key lk = { .netns = netns, .port = sk->__sk_common.skc_num };
			struct nx_listen_owner *lo = bpf_map_lookup_elem(&nx_listeners, &lk);

			fresh.flags = NX_CONN_F_PASSIVE;
			fresh.start_ns = now;
			if (lo) {
				fresh.owner_tgid = lo->tgid;
				fresh.owner_tid = lo->tid;
				fresh.owner_src = NX_CONN_OWNER_LISTENER;
				__builtin_memcpy(fresh.owner_comm, lo->comm, NX_COMM_LEN);
			}
		} else if (oldstate == ST_CLOSE) {
			return 0;	/* not a connection we can follow */
		} else {
			fresh.flags = NX_CONN_F_BEFORE;
			if (oldstate != ST_SYN_SENT && oldstate != ST_SYN_RECV)
				fresh.flags |= NX_CONN_F_ESTABLISHED;
		}
		fresh.state = oldstate;
		fresh.netns = netns;
		fresh.netns_cookie = nx_net_cookie(sk->__sk_common.skc_net.net);
		if (bpf_map_update_elem(&nx_conns, &key, &fresh, BPF_NOEXIST) == 0)
			c.cnt->tracked++;
		else
			c.cnt->untracked++;
		st = bpf_map_lookup_elem(&nx_conns, &key);
		if (!st)
			return 0;
	}

	conn_learn(st, sk);
	if (c.cfg->flags & NX_CONN_CFG_STATES) {
		struct nx_conn_event *e = conn_record(&c, ctx, sk, NX_CONN_STATE, netns);

		conn_fill(e, st);
		e->prev_ns = st->state_ns;
		e->oldstate = oldstate;
		e->newstate = newstate;
		conn_emit(&c);
	}
	st->state = newstate;
	st->state_ns = now;
	switch (newstate) {
	case ST_ESTABLISHED:
		st->flags |= NX_CONN_F_ESTABLISHED;
		if (!(st->flags & NX_CONN_F_BEFORE))
			st->established_ns = now;
		break;
	case ST_FIN_WAIT1:
		st->flags |= NX_CONN_F_FIN_SENT;
		if (oldstate == ST_ESTABLISHED || oldstate == ST_SYN_RECV)
			st->flags |= NX_CONN_F_LOCAL_FIRST;
		break;
	case ST_CLOSE_WAIT:
		st->flags |= NX_CONN_F_REMOTE_FIRST;
		break;
	case ST_LAST_ACK:
		st->flags |= NX_CONN_F_FIN_SENT;
		break;
	case ST_CLOSE:
		st->close_ns = now;
		conn_snapshot(st, sk);
		irq = conn_in_irq(&c, ctx);
		if (irq && !(sk->__sk_common.skc_flags & (1UL << SOCK_DEAD_BIT))) {
			conn_final(&c, ctx, sk, st, netns);
		} else {
			st->flags |= NX_CONN_F_CLOSED;	/* sent at tcp_destroy_sock */
		}
		break;
	}
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tcp_destroy_sock, struct sock *sk)
{
	struct conn_ctx c;
	struct nx_conn_state *st;
	__u64 key = (__u64)sk;

	st = bpf_map_lookup_elem(&nx_conns, &key);
	if (!st || !conn_begin(&c))
		return 0;
	if (!(st->flags & NX_CONN_F_CLOSED)) {
		/* Destroyed without a CLOSE transition (a child dropped from an
		 * accept queue): close it now. */
		st->close_ns = bpf_ktime_get_ns();
		conn_snapshot(st, sk);
	}
	conn_final(&c, ctx, sk, st, sk_netns(sk));
	return 0;
}

static __always_inline void conn_mark(void *ctx, const struct sock *sk, __u16 flag, __u8 kind,
				      __u32 reason)
{
	struct conn_ctx c;
	struct nx_conn_state *st;
	__u64 key = (__u64)sk;

	if (!sk)
		return;
	st = bpf_map_lookup_elem(&nx_conns, &key);
	if (!st || !conn_begin(&c))
		return;
	if (flag)
		st->flags |= flag;
	else
		st->retrans_seen++;
	conn_learn(st, sk);
	if (c.cfg->flags & NX_CONN_CFG_EVENTS) {
		struct nx_conn_event *e = conn_record(&c, ctx, sk, kind, sk_netns(sk));

		conn_fill(e, st);
		e->rst_reason = reason;
		e->oldstate = st->state;
		e->newstate = st->state;
		conn_emit(&c);
	}
}

/* Per-signature programs (`NAME__aN`: the kernel passes N arguments) as in
 * trace.bpf.c; user space loads the one that fits. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk)
{
	conn_mark(ctx, sk, 0, NX_CONN_RETRANS, 0);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	conn_mark(ctx, sk, NX_CONN_F_RST_SENT, NX_CONN_RST_SENT, reason);
	return 0;
}

/* Older kernels (6.1): (sk, skb), no reason. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_send_reset__a2, const struct sock *sk)
{
	conn_mark(ctx, sk, NX_CONN_F_RST_SENT, NX_CONN_RST_SENT, 0);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_receive_reset, struct sock *sk)
{
	conn_mark(ctx, sk, NX_CONN_F_RST_RECV, NX_CONN_RST_RECV, 0);
	return 0;
}

/* --top: bytes moved by the application per connection (send and receive
 * calls, any API: sock_sendmsg/sock_recvmsg). A socket not seen before is
 * followed from here (open before netxray started). */
#define MSG_PEEK 2

static __always_inline void app_bytes(struct sock *sk, int ret, bool tx)
{
	struct conn_ctx c;
	struct nx_conn_state *st;
	__u64 key = (__u64)sk;
	__u32 netns;

	if (ret <= 0 || !sk || sk->sk_protocol != IPPROTO_TCP || !conn_begin(&c))
		return;
	netns = sk_netns(sk);
	if (c.cfg->netns && c.cfg->netns != netns)
		return;
	st = bpf_map_lookup_elem(&nx_conns, &key);
	if (!st) {
		struct nx_conn_state fresh = {};
		__u8 state = sk->__sk_common.skc_state;

		if (state == ST_CLOSE || state == ST_LISTEN || state == ST_SYN_SENT)
			return;
		fresh.flags = NX_CONN_F_BEFORE;
		if (state != ST_SYN_RECV)
			fresh.flags |= NX_CONN_F_ESTABLISHED;
		fresh.state = state;
		fresh.netns = netns;
		fresh.netns_cookie = nx_net_cookie(sk->__sk_common.skc_net.net);
		if (bpf_map_update_elem(&nx_conns, &key, &fresh, BPF_NOEXIST) == 0)
			c.cnt->tracked++;
		st = bpf_map_lookup_elem(&nx_conns, &key);
		if (!st)
			return;
	}
	conn_learn(st, sk);
	if (tx)
		__sync_fetch_and_add(&st->app_tx, ret);
	else
		__sync_fetch_and_add(&st->app_rx, ret);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send_length, struct sock *sk, int ret, int flags)
{
	app_bytes(sk, ret, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv_length, struct sock *sk, int ret, int flags)
{
	if (!(flags & MSG_PEEK))
		app_bytes(sk, ret, false);
	return 0;
}

/* accept(2)/accept4(2) returned fd: fd -> file -> socket -> sk; the caller
 * owns that connection. Classic syscall tracepoints (no BTF arguments). */
struct sys_exit_args {
	__u64 common;
	__s32 nr;
	__s32 _pad;
	__s64 ret;
};

static __always_inline void accepted(struct sys_exit_args *args)
{
	struct conn_ctx c;
	struct nx_conn_state *st;
	struct sock *sk = nx_sock_of_fd(args->ret);
	__u64 key;

	if (!sk)
		return;
	key = (__u64)sk;
	st = bpf_map_lookup_elem(&nx_conns, &key);
	if (!st || !conn_begin(&c))
		return;
	c.cnt->accepts++;
	conn_owner_here(st, NX_CONN_OWNER_ACCEPT);
	if (c.cfg->flags & NX_CONN_CFG_EVENTS) {
		struct nx_conn_event *e = &c.s->ev;
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		__builtin_memset(e, 0, sizeof(*e));
		e->abi_version = NX_CONN_ABI_VERSION;
		e->kind = NX_CONN_ACCEPT;
		e->ts_ns = bpf_ktime_get_ns();
		e->sk = key;
		e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
		e->netns_cookie = nx_net_cookie_probe(BPF_CORE_READ(sk, __sk_common.skc_net.net));
		e->tid = (__u32)pid_tgid;
		e->tgid = pid_tgid >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		nx_sock_tuple_probe(&e->tuple, sk);
		e->tuple.l4proto = IPPROTO_TCP;
		conn_fill(e, st);
		e->oldstate = st->state;
		e->newstate = st->state;
		conn_emit(&c);
	}
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept4(struct sys_exit_args *args)
{
	accepted(args);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int sys_exit_accept(struct sys_exit_args *args)
{
	accepted(args);
	return 0;
}
