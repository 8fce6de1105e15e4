/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared BPF pieces: maps every tracing object has (config, counters, ring
 * buffer, scratch), context of the current task, and the loss-counting emit.
 */
#ifndef NX_COMMON_BPF_H
#define NX_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

#define NX_AF_INET 2
#define NX_AF_INET6 10
#define NX_ETH_P_IP 0x0800
#define NX_ETH_P_IPV6 0x86DD
#define NX_ETH_P_8021Q 0x8100
#define NX_ETH_P_8021AD 0x88A8
#define NX_ARPHRD_ETHER 1
#define NX_ARPHRD_LOOPBACK 772
#define NX_PF_KTHREAD 0x00200000
#define NX_RINGBUF_REC_HDR 8	/* BPF_RINGBUF_HDR_SZ: the kernel's header per record */

/* One-slot configuration written by user space before attaching. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_config);
} nx_config SEC(".maps");

/* Per-CPU, per-hook counters: nothing is lost silently. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NX_HOOK_MAX);
	__type(key, __u32);
	__type(value, struct nx_counter);
} nx_counters SEC(".maps");

/* Events to user space. The size is set by user space (--ring-size). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} nx_events SEC(".maps");

/* The record under construction (struct nx_scratch, abi.h): too large for
 * the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nx_scratch);
} nx_scratch SEC(".maps");

static __always_inline struct nx_config *nx_get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nx_config, &zero);
}

static __always_inline struct nx_scratch *nx_get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nx_scratch, &zero);
}

static __always_inline struct nx_counter *nx_counter(__u32 hook)
{
	return bpf_map_lookup_elem(&nx_counters, &hook);
}

/*
 * Kernel-version differences, decided by CO-RE constants: the verifier never
 * walks the branch this kernel cannot take, so a helper or field it lacks is
 * never seen by it.
 *
 * bpf_get_current_task_btf() (5.11+) returns a BTF pointer that direct loads
 * may follow; without it (5.10) the task is a number and its fields are read
 * with probe reads (BPF_CORE_READ).
 */
#define NX_HAVE_TASK_BTF bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)

/* The current task's stack base and flags (one helper call). */
static __always_inline void nx_task_stack_flags(__u64 *stack, unsigned int *flags)
{
	if (NX_HAVE_TASK_BTF) {
		struct task_struct *task = bpf_get_current_task_btf();
		*stack = (__u64)task->stack;
		*flags = task->flags;
	} else {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		*stack = (__u64)BPF_CORE_READ(task, stack);
		*flags = BPF_CORE_READ(task, flags);
	}
}

/* The current task's name (16 bytes, NUL-terminated). */
static __always_inline void nx_task_comm(char *dst)
{
	if (NX_HAVE_TASK_BTF) {
		/* Two direct (BTF) loads: bpf_get_current_comm() cost ~50 ns a
		 * record here (strscpy_pad, and a return through the SRSO
		 * thunk). A rename racing with this read gives a mix, as
		 * /proc/PID/comm can. */
		struct task_struct *task = bpf_get_current_task_btf();
		__builtin_memcpy(dst, task->comm, 16);
	} else {
		bpf_get_current_comm(dst, 16);
	}
}

/*
 * Interrupt (hard or soft) context: the task on the CPU is whoever was
 * interrupted, so its pid says nothing about the packet. On x86-64 softirqs
 * and hard interrupts run on the per-CPU IRQ stack (also when entered from
 * local_bh_enable), so a stack address of the current context lies outside
 * the current task's stack; ksoftirqd runs NET_RX in a kernel thread of its
 * own. The address must be of the kernel stack, not of the BPF program's:
 * since 6.13 tracing programs may run on a per-CPU private stack. The
 * tracepoint's argument array (ctx) is a local of bpf_trace_run*(), on the
 * kernel stack. Storing ctx into a map value (`slot`) to read it back as a
 * number needs the pointer-leak privilege (CAP_PERFMON), which netxray has.
 */
static __always_inline bool nx_ctx_in_irq(__u64 *slot, void *ctx, __u32 thread_size)
{
	__u64 stack, sp;
	unsigned int flags;

	nx_task_stack_flags(&stack, &flags);

	*(volatile __u64 *)slot = (__u64)ctx;
	sp = *(volatile __u64 *)slot;
	if (sp < stack || sp >= stack + thread_size)
		return true;
	if (flags & NX_PF_KTHREAD) {
		char comm[16];
		nx_task_comm(comm);
		if (comm[0] == 'k' && comm[1] == 's' && comm[2] == 'o' && comm[3] == 'f' &&
		    comm[4] == 't' && comm[5] == 'i' && comm[6] == 'r' && comm[7] == 'q' &&
		    comm[8] == 'd')
			return true;
	}
	return false;
}

static __always_inline bool nx_in_irq(struct nx_scratch *s, void *ctx, __u32 thread_size)
{
	return nx_ctx_in_irq(&s->sp, ctx, thread_size);
}

/*
 * The first n (<= NX_CAP_BYTES) bytes of an XDP frame into dst; false when
 * they cannot be read. bpf_xdp_load_bytes() is 5.18+; before, the bytes are
 * copied by direct packet access, each load checked against data_end.
 */
#define NX_HAVE_XDP_LOAD_BYTES bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_xdp_load_bytes)

static __always_inline bool nx_xdp_copy(struct xdp_md *ctx, __u8 *dst, __u32 n)
{
	if (NX_HAVE_XDP_LOAD_BYTES)
		return bpf_xdp_load_bytes(ctx, 0, dst, n) == 0;
	const __u8 *data = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;
#pragma unroll
	for (int i = 0; i < NX_CAP_BYTES; i++) {
		if (i < n && data + i + 1 <= end)
			dst[i] = data[i];
	}
	return true;
}

static __always_inline __u32 nx_netns_of_dev(const struct net_device *dev)
{
	return (dev->nd_net.net->ns.inum);
}

static __always_inline __u32 nx_netns_of_sock(const struct sock *sk)
{
	return (sk->__sk_common.skc_net.net->ns.inum);
}

/*
 * A namespace's cookie: unlike its inode number, which the kernel hands out
 * again as soon as the namespace is gone, never reused. A u64 set when the
 * namespace is made since 5.12; before, an atomic64_t made on first use
 * (then 0 here: user space names the namespace by inode alone).
 */
struct net___nx_cookie64 {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

static __always_inline __u64 nx_net_cookie(const struct net *net)
{
	const struct net___nx_cookie64 *n = (const void *)net;

	/* A direct (BTF) load: no helper call. */
	if (net && bpf_core_field_exists(n->net_cookie) &&
	    bpf_core_field_size(n->net_cookie) == sizeof(__u64))
		return n->net_cookie;
	return 0;
}

/* The same, for a namespace pointer read with a probe (not a BTF pointer). */
static __always_inline __u64 nx_net_cookie_probe(const void *net)
{
	const struct net___nx_cookie64 *n = net;

	if (net && bpf_core_field_exists(n->net_cookie) &&
	    bpf_core_field_size(n->net_cookie) == sizeof(__u64))
		return BPF_CORE_READ(n, net_cookie);
	return 0;
}

/* The record's namespace: inode and cookie. */
static __always_inline void nx_set_net(struct nx_event *e, const struct net *net)
{
	if (!net)
		return;
	e->netns = net->ns.inum;
	e->netns_cookie = nx_net_cookie(net);
}

/* Fill the task fields and hand the record to the ring buffer, counting a
 * failure as a loss. Wake-ups: the reader drains on a short timer, so most
 * records need none. A wake-up is an irq_work, a self-IPI on this CPU (a VM
 * exit in a guest): ~1-2 us, more than the event.
 * - The record that makes the pending data cross cfg->wakeup_bytes wakes
 *   the reader (the ring fills faster than the timer drains it); a crossing
 *   missed in a race between CPUs is caught by the timer.
 * - Past three quarters of the ring the reader is losing the race: every
 *   record wakes it. That also slows this CPU down, deliberately: the traced
 *   workload then runs at the pace the reader keeps, instead of events being
 *   lost. (Below that mark, a wake-up per record only burnt this CPU: with
 *   it from a quarter on, a full trace to a file spent 1.6-3 us per event.) */
static __always_inline void nx_emit_rec(struct nx_scratch *s, struct nx_config *cfg,
					struct nx_counter *cnt, bool in_irq, bool with_task)
{
	struct nx_event *e = &s->ev;
	__u32 size = e->cap_len;
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 pending;

	e->abi_version = NX_ABI_VERSION;
	e->ts_ns = bpf_ktime_get_ns();
	e->cpu = bpf_get_smp_processor_id();
	if (with_task) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		e->pid = (__u32)pid_tgid;
		e->tgid = pid_tgid >> 32;
		/* In interrupt context the task is whoever was interrupted: user
		 * space shows no comm then, so do not copy it (comm stays zeroed). */
		if (in_irq)
			e->flags |= NX_F_IN_IRQ;
		else
			nx_task_comm(e->comm);
	}

	if (size > NX_CAP_BYTES)
		size = NX_CAP_BYTES;
	pending = bpf_ringbuf_query(&nx_events, BPF_RB_AVAIL_DATA);
	if (pending < cfg->wakeup_bytes) {
		if (pending + NX_RINGBUF_REC_HDR + NX_EVENT_HDR_SIZE + size >= cfg->wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
	} else if (pending >= bpf_ringbuf_query(&nx_events, BPF_RB_RING_SIZE) / 4 * 3) {
		flags = BPF_RB_FORCE_WAKEUP;
	}
	/* Bounded again where it is used: older verifiers (6.1, 5.10) lose the
	 * clamp above when the compiler keeps size on the stack meanwhile. */
	__u64 rec = NX_EVENT_HDR_SIZE + size;
	barrier_var(rec);
	if (rec > NX_EVENT_HDR_SIZE + NX_CAP_BYTES)
		rec = NX_EVENT_HDR_SIZE + NX_CAP_BYTES;
	if (bpf_ringbuf_output(&nx_events, e, rec, flags) == 0)
		cnt->emitted++;
	else
		cnt->lost++;
}

/* Tracing programs: with the task on the CPU. */
static __always_inline void nx_emit(struct nx_scratch *s, struct nx_config *cfg,
				    struct nx_counter *cnt, bool in_irq)
{
	nx_emit_rec(s, cfg, cnt, in_irq, true);
}

#endif
