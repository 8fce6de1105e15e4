// SPDX-License-Identifier: GPL-2.0
/*
 * netxray dns / netxray http: the data processes write to and read from IP
 * sockets, from the system calls that move it. Two paths, both allowed by
 * lockdown:
 * - 6.3+, the sock path (NX_L7_CFG_SOCK_PATH, at the end of this file):
 *   sock:sock_send_length / sock_recv_length, with the socket as a BTF
 *   pointer; the system-call returns serve only what those hooks cannot
 *   (nx_l7_deferred).
 * - before, classic syscall tracepoints (syscalls:sys_exit_*) for every
 *   call: the fd is followed to its socket (nx_sock_of_fd).
 * Either way the call's arguments (fd, buffer or iovec or msghdr, address)
 * come from the user registers saved at the syscall's entry, and a call is
 * timed when its data moved: at its return, or at the socket hook inside
 * it. (No entry programs: any syscall tracepoint puts every system call of
 * every process on the slow path, ~90 ns each; http on 6.5+ attaches
 * none.) Only TCP and UDP sockets of the families IPv4/IPv6 go on; then
 * --pid, --comm, --netns and the filter (on the socket's flow, the peer
 * taken from the call's address for an unconnected UDP socket); then a
 * bounded prefix of the data, and its last bytes, are copied with
 * bpf_probe_read_user into one record per message.
 *
 * sendfile(2) to a socket is counted (its length), not copied. Not seen:
 * data no local process reads or writes (forwarded traffic),
 * splice/io_uring, and TLS (encrypted here).
 */
#include "nx_packet.bpf.h"
#include "nx_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NX_SOCK_STREAM 1
#define NX_SOCK_DGRAM 2
#define NX_IPPROTO_TCP 6
#define NX_IPPROTO_UDP 17
/* iovecs looked at per message (data and tail) */
#define NX_L7_IOV_MAX 8

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_l7_config);
} nx_l7_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_l7_counter);
} nx_l7_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} nx_l7_events SEC(".maps");

/* The record under construction, with room after it: a copy at offset
 * `off` of `n` bytes stays inside the value as far as the verifier can
 * tell from the masks in nx_l7_copy (it does not know off + n <=
 * NX_L7_CAP, which the code ensures). */
struct nx_l7_scratch {
	struct nx_l7_event ev;
	__u8 slack[2 * NX_L7_CAP];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_l7_scratch);
} nx_l7_scratch SEC(".maps");

/* Per-thread slots (the deferred reads below), by thread id. */
#define NX_L7_SLOTS 16384

/* The sock path (NX_L7_CFG_SOCK_PATH) leaves to the system call's return a
 * datagram read whose sender's address the caller asked for: the kernel
 * writes that address to user memory after the socket hook. Per thread, by
 * thread id. */
struct nx_l7_deferred_read {
	__u32 tid;		/* 0: free */
	__u32 _pad;
	__u64 sk;		/* the socket, as the hook saw it: no fd walk at the return */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NX_L7_SLOTS);
	__type(key, __u32);
	__type(value, struct nx_l7_deferred_read);
} nx_l7_defer SEC(".maps");

/* A call's arguments, from the saved registers. */
struct nx_l7_call {
	__u64 buf;		/* read/write/recvfrom/sendto: the buffer; *v: the iovec array; *msg: the msghdr; *mmsg: the mmsghdr array */
	__u64 addr;		/* recvfrom/sendto: the sockaddr */
	__u32 fd;
	__u32 count;		/* iovcnt, or vlen */
	__u16 syscall;
};

/* Classic syscall tracepoint records (no BTF arguments). */
struct sys_exit_args {
	__u64 common;
	__s32 nr;
	__s32 _pad;
	__s64 ret;
};

/* User-space layouts (x86-64). */
struct nx_iovec {
	__u64 base;
	__u64 len;
};

struct nx_msghdr {
	__u64 name;
	__u32 namelen;
	__u32 _pad0;
	__u64 iov;
	__u64 iovlen;
	__u64 control;
	__u64 controllen;
	__u32 flags;
	__u32 _pad1;
};

struct nx_mmsghdr {
	struct nx_msghdr hdr;
	__u32 len;
	__u32 _pad;
};

static __always_inline struct nx_l7_config *nx_l7_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nx_l7_config, &zero);
}

static __always_inline struct nx_l7_counter *nx_l7_cnt(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nx_l7_counters, &zero);
}

/* The process's name (its main thread's: `dig`, not its `isc-net-0000`
 * worker thread), as ps shows it. */
static __always_inline void nx_l7_process_comm(char *dst)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task, *leader;

	if (NX_HAVE_TASK_BTF) {
		/* Direct (BTF) loads: no helper, no probe read (a rename racing
		 * with them gives a mix, as /proc/PID/comm can). */
		task = bpf_get_current_task_btf();
		__builtin_memcpy(dst, task->group_leader->comm, NX_COMM_LEN);
		return;
	}
	/* The main thread itself: its own name, without a probe read. */
	if ((__u32)pid_tgid == pid_tgid >> 32) {
		bpf_get_current_comm(dst, NX_COMM_LEN);
		return;
	}
	task = (struct task_struct *)bpf_get_current_task();
	leader = BPF_CORE_READ(task, group_leader);
	if (!leader || bpf_probe_read_kernel(dst, NX_COMM_LEN, &leader->comm))
		bpf_get_current_comm(dst, NX_COMM_LEN);
}

/* --pid and --comm, before anything is recorded. */
static __always_inline bool nx_l7_task_wanted(struct nx_l7_config *cfg, __u64 pid_tgid)
{
	if (cfg->tgid && (pid_tgid >> 32) != cfg->tgid)
		return false;
	if (cfg->flags & NX_L7_CFG_COMM) {
		char comm[NX_COMM_LEN] = {};
		nx_l7_process_comm(comm);
#pragma unroll
		for (int i = 0; i < NX_COMM_LEN; i++) {
			if (comm[i] != cfg->comm[i])
				return false;
			if (!comm[i])
				break;
		}
	}
	return true;
}

/* A user sockaddr as the remote end of the tuple (an unconnected UDP
 * socket's peer). */
static __always_inline void nx_l7_peer(struct nx_l7_event *e, __u64 uaddr)
{
	__u16 family = 0;
	__u16 port = 0;

	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
		return;
	if (family != e->tuple.family)
		return;
	if (bpf_probe_read_user(&port, sizeof(port), (void *)(uaddr + 2)))
		return;
	if (family == NX_AF_INET) {
		if (bpf_probe_read_user(e->tuple.daddr, 4, (void *)(uaddr + 4)))
			return;
	} else {
		if (bpf_probe_read_user(e->tuple.daddr, 16, (void *)(uaddr + 8)))
			return;
	}
	e->tuple.dport = bpf_ntohs(port);
	e->flags |= NX_L7_F_PEER_FROM_MSG;
}

/* Copy up to `want` bytes from user `src` to data[at..]; returns bytes
 * copied (never past data[NX_L7_CAP]). */
static __always_inline __u32 nx_l7_copy(struct nx_l7_event *e, __u32 at, __u64 src, __u64 want,
					struct nx_l7_counter *cnt)
{
	__u64 off = at;
	__u64 n = want;

	if (off >= NX_L7_CAP)
		return 0;
	if (n > NX_L7_CAP - off)
		n = NX_L7_CAP - off;
	if (n == 0)
		return 0;
	/* Bounds the verifier keeps on every kernel (5.10's lost those of the
	 * comparisons above: "R2 min value is negative"): masks the compiler
	 * cannot drop, behind the barriers. The scratch's slack covers
	 * off + n up to (NX_L7_CAP - 1) + (2 * NX_L7_CAP - 1). */
	barrier_var(off);
	barrier_var(n);
	off &= NX_L7_CAP - 1;
	n &= 2 * NX_L7_CAP - 1;
	if (bpf_probe_read_user(&e->data[off], n, (void *)src)) {
		cnt->read_errors++;
		return 0;
	}
	return n;
}

/* The message's last bytes, when data[] does not hold them: from the flat
 * buffer `src` of `len` bytes. */
static __always_inline void nx_l7_tail(struct nx_l7_event *e, __u64 src, __u64 len)
{
	if (len <= e->cap_len || len < NX_L7_TAIL)
		return;
	if (bpf_probe_read_user(e->tail, NX_L7_TAIL, (void *)(src + len - NX_L7_TAIL)) == 0)
		e->tail_len = NX_L7_TAIL;
}

/* Data and tail of a message held in an iovec array. */
static __always_inline void nx_l7_copy_iov(struct nx_l7_event *e, __u64 uiov, __u64 iovcnt,
					   __u64 len, __u32 cap, struct nx_l7_counter *cnt)
{
	__u64 seen = 0;

#pragma unroll
	for (int i = 0; i < NX_L7_IOV_MAX; i++) {
		struct nx_iovec iov;

		if (i >= iovcnt || seen >= len)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(uiov + i * sizeof(iov))))
			break;
		if (iov.len > len - seen)
			iov.len = len - seen;
		if (e->cap_len < cap)
			e->cap_len += nx_l7_copy(e, e->cap_len, iov.base,
						 iov.len < cap - e->cap_len ? iov.len : cap - e->cap_len,
						 cnt);
		seen += iov.len;
		/* The iovec holding the message's end holds its tail (when the
		 * last NX_L7_TAIL bytes are all in it). */
		if (seen >= len && len > e->cap_len && iov.len >= NX_L7_TAIL &&
		    bpf_probe_read_user(e->tail, NX_L7_TAIL,
					(void *)(iov.base + iov.len - NX_L7_TAIL)) == 0)
			e->tail_len = NX_L7_TAIL;
	}
}

/* The socket's kind against the configuration: its protocol, or 0 when
 * it is not a TCP or UDP socket of the kinds asked for. */
static __always_inline __u8 nx_l7_proto(struct nx_l7_config *cfg, __u16 type, __u16 protocol)
{
	if (type == NX_SOCK_STREAM && (cfg->flags & NX_L7_CFG_TCP) && protocol == NX_IPPROTO_TCP)
		return NX_IPPROTO_TCP;
	if (type == NX_SOCK_DGRAM && (cfg->flags & NX_L7_CFG_UDP) && protocol == NX_IPPROTO_UDP)
		return NX_IPPROTO_UDP;
	return 0;
}

/* The record's fields after the flow and the namespace. */
static __always_inline void nx_l7_fill(struct nx_l7_event *e, struct nx_l7_call *call, __u8 dir,
				       __u64 pid_tgid, struct sock *sk, __u16 type)
{
	e->abi_version = NX_L7_ABI_VERSION;
	e->sk = (__u64)sk;
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->fd = call->fd;
	e->syscall = call->syscall;
	e->dir = dir;
	e->sock_type = type;
	e->ts_ns = bpf_ktime_get_ns();
	nx_l7_process_comm(e->comm);
}

/* The system-call path: fd to socket with probe reads. The record's fixed
 * part, and the socket test: false when fd is not a TCP or UDP socket over
 * IPv4/IPv6 of the kinds asked for, or --netns says no. */
static __always_inline bool nx_l7_begin(struct nx_l7_event *e, struct nx_l7_config *cfg,
					struct nx_l7_call *call, __u8 dir, __u64 pid_tgid,
					struct sock *sk)
{
	__u16 type;
	__u8 proto;

	/* A read the socket hook deferred comes with its socket. */
	if (!sk)
		sk = nx_sock_of_fd(call->fd);
	if (!sk)
		return false;
	type = BPF_CORE_READ(sk, sk_type);
	proto = nx_l7_proto(cfg, type, BPF_CORE_READ(sk, sk_protocol));
	if (!proto)
		return false;
	__builtin_memset(e, 0, NX_L7_EVENT_HDR_SIZE);
	/* sock_common in one read: the flow and the namespace. */
	__u8 skc[NX_SKC_READ];
	if (!nx_skc_fits() || bpf_probe_read_kernel(skc, sizeof(skc), sk))
		return false;
	nx_skc_tuple(&e->tuple, skc);
	if (e->tuple.family != NX_AF_INET && e->tuple.family != NX_AF_INET6)
		return false;
	e->tuple.l4proto = proto;
	struct net *net = NX_FIELD_AT(skc, struct sock_common, skc_net, struct net *);
	e->netns = BPF_CORE_READ(net, ns.inum);
	if (cfg->netns && e->netns != cfg->netns)
		return false;
	e->netns_cookie = nx_net_cookie_probe(net);
	nx_l7_fill(e, call, dir, pid_tgid, sk, type);
	return true;
}

/* The filter, on the flow (the scratch record of the shared header gets a
 * packet made from the tuple). */
static __always_inline bool nx_l7_filter(struct nx_l7_event *e, struct nx_l7_config *cfg)
{
	struct nx_scratch *s;

	if (!(cfg->flags & NX_L7_CFG_FILTER))
		return true;
	s = nx_get_scratch();
	if (!s)
		return false;
	__builtin_memset(&s->ev, 0, NX_EVENT_HDR_SIZE);
	__builtin_memcpy(&s->ev.tuple, &e->tuple, sizeof(e->tuple));
	s->ev.flags = NX_F_TUPLE;
	nx_synth_from_tuple(s);
	return nx_filter_jit(s, s->ev.data) != 0;
}

static __always_inline void nx_l7_output(struct nx_l7_event *e, struct nx_l7_config *cfg,
					 struct nx_l7_counter *cnt)
{
	/* The wake-up policy of nx_emit_rec (nx_common.bpf.h): none below
	 * the mark, the reader drains on its timer. (Flags 0 would wake the
	 * reader whenever it has caught up: a self-IPI per record, 3-7 us.) */
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 pending = bpf_ringbuf_query(&nx_l7_events, BPF_RB_AVAIL_DATA);
	__u64 rec = NX_L7_EVENT_HDR_SIZE + e->cap_len;

	if (pending < cfg->wakeup_bytes) {
		if (pending + NX_RINGBUF_REC_HDR + rec >= cfg->wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
	} else if (pending >= bpf_ringbuf_query(&nx_l7_events, BPF_RB_RING_SIZE) / 4 * 3) {
		flags = BPF_RB_FORCE_WAKEUP;
	}
	barrier_var(rec);
	if (rec > NX_L7_EVENT_HDR_SIZE + NX_L7_CAP)
		rec = NX_L7_EVENT_HDR_SIZE + NX_L7_CAP;
	if (bpf_ringbuf_output(&nx_l7_events, e, rec, flags) == 0)
		cnt->emitted++;
	else
		cnt->lost++;
}

static __always_inline struct nx_l7_event *nx_l7_scratch_get(void)
{
	__u32 zero = 0;
	struct nx_l7_scratch *s = bpf_map_lookup_elem(&nx_l7_scratch, &zero);

	return s ? &s->ev : NULL;
}

static __always_inline __u32 nx_l7_cap(struct nx_l7_config *cfg)
{
	__u32 cap = cfg->cap_bytes;
	return cap > NX_L7_CAP ? NX_L7_CAP : cap;
}

/* One message: from a flat buffer (read, write, recvfrom, sendto), or an
 * iovec array. */
static __always_inline void nx_l7_message(struct nx_l7_event *e, struct nx_l7_config *cfg,
					  struct nx_l7_counter *cnt, __u64 buf, __u64 iovcnt,
					  bool flat, __u64 len)
{
	__u32 cap = nx_l7_cap(cfg);

	e->len = len;
	e->cap_len = 0;
	e->tail_len = 0;
	if (flat) {
		e->cap_len = nx_l7_copy(e, 0, buf, len < cap ? len : cap, cnt);
		nx_l7_tail(e, buf, len);
	} else {
		nx_l7_copy_iov(e, buf, iovcnt, len, cap, cnt);
	}
	nx_l7_output(e, cfg, cnt);
}

/* The call's arguments from the user registers saved at the top of the
 * task's kernel stack at syscall entry (x86-64: no padding above them; the
 * kernel leaves them as they were until the return to user space).
 * Arguments: di, si, dx, r10, r8. One read of the whole block. */
static __always_inline bool nx_l7_call_from_regs(struct nx_l7_call *call, __u16 sys,
						 struct nx_l7_config *cfg)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	void *stack = BPF_CORE_READ(task, stack);
	struct pt_regs regs;

	if (!stack || !cfg->thread_size)
		return false;
	if (bpf_probe_read_kernel(&regs, sizeof(regs), (struct pt_regs *)(stack + cfg->thread_size) - 1))
		return false;
	__builtin_memset(call, 0, sizeof(*call));
	call->syscall = sys;
	call->fd = regs.di;
	call->buf = regs.si;
	switch (sys) {
	case NX_L7_SYS_READV:
	case NX_L7_SYS_WRITEV:
	case NX_L7_SYS_RECVMMSG:
	case NX_L7_SYS_SENDMMSG:
		call->count = regs.dx;
		break;
	case NX_L7_SYS_RECVFROM:
	case NX_L7_SYS_SENDTO:
		call->addr = regs.r8;
		break;
	case NX_L7_SYS_SENDFILE:
		call->buf = 0;
		break;
	}
	return true;
}

/* Whether the socket hooks count sendfile, splice and TCP mmsg calls. */
static __always_inline bool nx_l7_sock_splice(void)
{
	struct nx_l7_config *cfg = nx_l7_cfg();
	return cfg && (cfg->flags & NX_L7_CFG_SOCK_SPLICE);
}

/* On the sock path, whether the return of `sys` is to be followed: the
 * calls the socket hooks leave (mmsg: one hook per message; sendfile: not
 * a send from user memory), and the datagram reads they deferred. */
static __always_inline bool nx_l7_deferred(__u16 sys, __u64 pid_tgid, struct sock **sk)
{
	__u32 key = (__u32)pid_tgid & (NX_L7_SLOTS - 1);
	struct nx_l7_deferred_read *slot;

	switch (sys) {
	case NX_L7_SYS_SENDFILE:
		/* The socket hooks count it on 6.5+ (its return then is not
		 * attached either). */
		return !nx_l7_sock_splice();
	case NX_L7_SYS_RECVMMSG:
	case NX_L7_SYS_SENDMMSG:
		return true;
	case NX_L7_SYS_RECVFROM:
	case NX_L7_SYS_RECVMSG:
		slot = bpf_map_lookup_elem(&nx_l7_defer, &key);
		if (slot && slot->tid == (__u32)pid_tgid) {
			slot->tid = 0;
			*sk = (struct sock *)slot->sk;
			return true;
		}
	}
	return false;
}

/* After the socket test: the peer from the call's address, the filter,
 * the copy, the record(s). */
static __always_inline void nx_l7_data(struct nx_l7_event *e, struct nx_l7_config *cfg,
				       struct nx_l7_counter *cnt, struct nx_l7_call call, __s64 ret,
				       bool peer)
{
	cnt->calls++;
	/* peer: the call's address is in user memory (not yet for a read on
	 * the sock path: the kernel writes it after the socket hook). */
	switch (peer ? call.syscall : 0) {
	case NX_L7_SYS_RECVFROM:
	case NX_L7_SYS_SENDTO:
		nx_l7_peer(e, call.addr);
		break;
	case NX_L7_SYS_RECVMSG:
	case NX_L7_SYS_SENDMSG: {
		struct nx_msghdr m;
		if (bpf_probe_read_user(&m, sizeof(m), (void *)call.buf))
			return;
		if (m.namelen)
			nx_l7_peer(e, m.name);
		break;
	}
	case NX_L7_SYS_RECVMMSG:
	case NX_L7_SYS_SENDMMSG: {
		struct nx_mmsghdr m;
		if (bpf_probe_read_user(&m, sizeof(m), (void *)call.buf))
			return;
		if (m.hdr.namelen)
			nx_l7_peer(e, m.hdr.name);
		break;
	}
	}
	if (!nx_l7_filter(e, cfg))
		return;
	cnt->matched++;
	switch (call.syscall) {
	case NX_L7_SYS_SENDFILE:
		/* From a file: nothing to copy from user memory; the length
		 * alone keeps a stream's framing (a body nginx sends with
		 * sendfile). */
		e->len = ret;
		e->cap_len = 0;
		e->tail_len = 0;
		nx_l7_output(e, cfg, cnt);
		return;
	case NX_L7_SYS_READ:
	case NX_L7_SYS_WRITE:
	case NX_L7_SYS_RECVFROM:
	case NX_L7_SYS_SENDTO:
		nx_l7_message(e, cfg, cnt, call.buf, 0, true, ret);
		return;
	case NX_L7_SYS_READV:
	case NX_L7_SYS_WRITEV:
		nx_l7_message(e, cfg, cnt, call.buf, call.count, false, ret);
		return;
	case NX_L7_SYS_RECVMSG:
	case NX_L7_SYS_SENDMSG: {
		struct nx_msghdr m;
		if (bpf_probe_read_user(&m, sizeof(m), (void *)call.buf))
			return;
		nx_l7_message(e, cfg, cnt, m.iov, m.iovlen, false, ret);
		return;
	}
	}
	/* sendmmsg/recvmmsg: ret messages, each with its own length and peer. */
	for (int i = 0; i < NX_L7_MMSG_MAX; i++) {
		struct nx_mmsghdr m;

		if (i >= ret || i >= call.count)
			break;
		if (bpf_probe_read_user(&m, sizeof(m), (void *)(call.buf + i * sizeof(m))))
			break;
		e->msg_index = i;
		e->flags &= ~NX_L7_F_PEER_FROM_MSG;
		if (m.hdr.namelen) {
			/* The socket's own peer unless the message names one. */
			nx_l7_peer(e, m.hdr.name);
		}
		if (ret > NX_L7_MMSG_MAX)
			e->flags |= NX_L7_F_MORE_MSGS;
		nx_l7_message(e, cfg, cnt, m.hdr.iov, m.hdr.iovlen, false, m.len);
	}
}

/* A system call's return: every call before 6.3; on the sock path only
 * those nx_l7_deferred names. */
static __always_inline void nx_l7_exit(struct sys_exit_args *args, __u16 sys, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct nx_l7_config *cfg = nx_l7_cfg();
	struct nx_l7_counter *cnt = nx_l7_cnt();
	struct nx_l7_event *e = nx_l7_scratch_get();
	struct nx_l7_call call;
	__s64 ret = args->ret;

	struct sock *sk = NULL;

	if (!cfg || !cnt || !e)
		return;
	/* Before the return value's test: a deferred read's slot is freed
	 * even when the call failed after the socket hook (its address not
	 * copied out). */
	if ((cfg->flags & NX_L7_CFG_SOCK_PATH) && !nx_l7_deferred(sys, id, &sk))
		return;
	if (ret <= 0)
		return;
	if (!nx_l7_task_wanted(cfg, id))
		return;
	if (!nx_l7_call_from_regs(&call, sys, cfg))
		return;
	if (!nx_l7_begin(e, cfg, &call, dir, id, sk))
		return;
	/* On the sock path the socket hooks count a TCP socket's mmsg calls. */
	if ((cfg->flags & NX_L7_CFG_SOCK_SPLICE) && e->tuple.l4proto == NX_IPPROTO_TCP &&
	    (sys == NX_L7_SYS_RECVMMSG || sys == NX_L7_SYS_SENDMMSG))
		return;
	nx_l7_data(e, cfg, cnt, call, ret, true);
}

#define NX_L7_EXIT(name, sys, dir)                                   \
	SEC("tracepoint/syscalls/sys_exit_" #name)                  \
	int sys_exit_##name(struct sys_exit_args *args)             \
	{                                                            \
		nx_l7_exit(args, sys, dir);                          \
		return 0;                                            \
	}

/* read(fd, buf, count), write(fd, buf, count) */
NX_L7_EXIT(read, NX_L7_SYS_READ, NX_L7_RECV)
NX_L7_EXIT(write, NX_L7_SYS_WRITE, NX_L7_SEND)
/* readv/writev(fd, iov, iovcnt) */
NX_L7_EXIT(readv, NX_L7_SYS_READV, NX_L7_RECV)
NX_L7_EXIT(writev, NX_L7_SYS_WRITEV, NX_L7_SEND)
/* recvfrom/sendto(fd, buf, len, flags, addr, addrlen) */
NX_L7_EXIT(recvfrom, NX_L7_SYS_RECVFROM, NX_L7_RECV)
NX_L7_EXIT(sendto, NX_L7_SYS_SENDTO, NX_L7_SEND)
/* recvmsg/sendmsg(fd, msg, flags) */
NX_L7_EXIT(recvmsg, NX_L7_SYS_RECVMSG, NX_L7_RECV)
NX_L7_EXIT(sendmsg, NX_L7_SYS_SENDMSG, NX_L7_SEND)
/* recvmmsg/sendmmsg(fd, msgvec, vlen, flags[, timeout]) */
NX_L7_EXIT(recvmmsg, NX_L7_SYS_RECVMMSG, NX_L7_RECV)
NX_L7_EXIT(sendmmsg, NX_L7_SYS_SENDMMSG, NX_L7_SEND)
/* sendfile(out_fd, in_fd, offset, count): out_fd is the socket */
NX_L7_EXIT(sendfile64, NX_L7_SYS_SENDFILE, NX_L7_SEND)

/*
 * The sock path (6.3+): sock:sock_send_length and sock:sock_recv_length
 * fire inside the system call for every message a socket moved, with the
 * socket as a BTF pointer. No file table walk, direct loads instead of
 * probe reads, and nothing at all for reads and writes of files and pipes.
 * The call's arguments from the user registers (bpf_task_pt_regs); the
 * system call by number (x86-64, 64-bit calls). Calls the hooks cannot
 * serve go to the system-call returns (nx_l7_deferred).
 */
#define NX_NR_READ 0
#define NX_NR_WRITE 1
#define NX_NR_READV 19
#define NX_NR_WRITEV 20
#define NX_NR_SENDTO 44
#define NX_NR_RECVFROM 45
#define NX_NR_SENDMSG 46
#define NX_NR_RECVMSG 47
#define NX_NR_SENDFILE 40
#define NX_NR_SPLICE 275
#define NX_NR_RECVMMSG 299
#define NX_NR_SENDMMSG 307
#define NX_USER_CS 0x33

static __always_inline void nx_l7_sock_call(struct sock *sk, __s64 ret, struct pt_regs *regs,
					    __u16 sys, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct nx_l7_config *cfg = nx_l7_cfg();
	struct nx_l7_counter *cnt = nx_l7_cnt();
	struct nx_l7_event *e = nx_l7_scratch_get();
	struct nx_l7_call call;
	__u16 type;
	__u8 proto;

	if (!cfg || !cnt || !e)
		return;
	type = sk->sk_type;
	proto = nx_l7_proto(cfg, type, sk->sk_protocol);
	if (!proto)
		return;
	__u16 family = sk->__sk_common.skc_family;
	if (family != NX_AF_INET && family != NX_AF_INET6)
		return;
	if (dir == NX_L7_RECV && proto == NX_IPPROTO_UDP &&
	    (sys == NX_L7_SYS_RECVFROM || sys == NX_L7_SYS_RECVMSG) &&
	    !sk->__sk_common.skc_dport) {
		/* The sender's address, at the return. */
		__u32 key = (__u32)id & (NX_L7_SLOTS - 1);
		struct nx_l7_deferred_read *slot = bpf_map_lookup_elem(&nx_l7_defer, &key);
		if (slot) {
			slot->tid = (__u32)id;
			slot->sk = (__u64)sk;
		}
		return;
	}
	/* Counted, not copied: a TCP socket's mmsg calls (one hook per
	 * message; UDP's go to the returns), sendfile and splice. */
	bool count_only = sys == NX_L7_SYS_SENDFILE || sys == NX_L7_SYS_RECVMMSG ||
			  sys == NX_L7_SYS_SENDMMSG;
	if (count_only && proto != NX_IPPROTO_TCP)
		return;
	if (!nx_l7_task_wanted(cfg, id))
		return;

	__builtin_memset(&call, 0, sizeof(call));
	call.syscall = sys;
	call.fd = regs->di;
	call.buf = regs->si;
	if (sys == NX_L7_SYS_READV || sys == NX_L7_SYS_WRITEV)
		call.count = regs->dx;
	if (sys == NX_L7_SYS_RECVFROM || sys == NX_L7_SYS_SENDTO)
		call.addr = regs->r8;

	__builtin_memset(e, 0, NX_L7_EVENT_HDR_SIZE);
	e->tuple.family = family;
	e->tuple.l4proto = proto;
	e->tuple.sport = sk->__sk_common.skc_num;
	e->tuple.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (family == NX_AF_INET) {
		__u32 a = sk->__sk_common.skc_rcv_saddr;
		__u32 b = sk->__sk_common.skc_daddr;
		__builtin_memcpy(e->tuple.saddr, &a, 4);
		__builtin_memcpy(e->tuple.daddr, &b, 4);
	} else {
		bpf_probe_read_kernel(e->tuple.saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_probe_read_kernel(e->tuple.daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	struct net *net = sk->__sk_common.skc_net.net;
	if (!net)
		return;
	e->netns = net->ns.inum;
	if (cfg->netns && e->netns != cfg->netns)
		return;
	e->netns_cookie = nx_net_cookie(net);
	nx_l7_fill(e, &call, dir, id, sk, type);
	if (count_only) {
		cnt->calls++;
		if (!nx_l7_filter(e, cfg))
			return;
		cnt->matched++;
		e->len = ret;
		nx_l7_output(e, cfg, cnt);
		return;
	}
	nx_l7_data(e, cfg, cnt, call, ret, dir == NX_L7_SEND);
}

/* The current task's saved user registers when it is in one of the 64-bit
 * system calls; NULL for a kernel thread or a 32-bit call. */
static __always_inline struct pt_regs *nx_l7_user_regs(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs;

	if (task->flags & NX_PF_KTHREAD)
		return NULL;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs || regs->cs != NX_USER_CS)
		return NULL;
	return regs;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send_length, struct sock *sk, int ret, int flags)
{
	struct pt_regs *regs;

	if (ret <= 0 || !(regs = nx_l7_user_regs()))
		return 0;
	switch (regs->orig_ax) {
	case NX_NR_WRITE:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_WRITE, NX_L7_SEND);
		break;
	case NX_NR_WRITEV:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_WRITEV, NX_L7_SEND);
		break;
	case NX_NR_SENDTO:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_SENDTO, NX_L7_SEND);
		break;
	case NX_NR_SENDMSG:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_SENDMSG, NX_L7_SEND);
		break;
	case NX_NR_SENDMMSG:
		if (nx_l7_sock_splice())
			nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_SENDMMSG, NX_L7_SEND);
		break;
	case NX_NR_SENDFILE:
	case NX_NR_SPLICE:
		/* The record says sendfile: counted, as splice's bytes are. */
		if (nx_l7_sock_splice())
			nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_SENDFILE, NX_L7_SEND);
		break;
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv_length, struct sock *sk, int ret, int flags)
{
	struct pt_regs *regs;

	if (ret <= 0 || !(regs = nx_l7_user_regs()))
		return 0;
	switch (regs->orig_ax) {
	case NX_NR_READ:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_READ, NX_L7_RECV);
		break;
	case NX_NR_READV:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_READV, NX_L7_RECV);
		break;
	case NX_NR_RECVFROM:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_RECVFROM, NX_L7_RECV);
		break;
	case NX_NR_RECVMSG:
		nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_RECVMSG, NX_L7_RECV);
		break;
	case NX_NR_RECVMMSG:
		if (nx_l7_sock_splice())
			nx_l7_sock_call(sk, ret, regs, NX_L7_SYS_RECVMMSG, NX_L7_RECV);
		break;
	}
	return 0;
}
