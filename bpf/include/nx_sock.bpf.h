/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sockets seen from a system call: a file descriptor of the current task
 * to its socket, and the socket's flow. Probe reads only (BPF_CORE_READ):
 * these run in classic syscall tracepoints, which get no BTF pointers, and
 * on 5.10 the task is a number.
 */
#ifndef NX_SOCK_BPF_H
#define NX_SOCK_BPF_H

#include "nx_common.bpf.h"

/* A field of a kernel struct read whole into a local buffer: its offset in
 * this kernel's layout (CO-RE), a constant the verifier knows. */
#define NX_FIELD_AT(buf, type, field, ctype) \
	(*(ctype *)((void *)(buf) + bpf_core_field_offset(type, field)))

/* Each probe read costs ~30 ns (copy_from_kernel_nofault): fields that sit
 * together are read in one. */

/* fd -> file -> socket -> sk for the current task; NULL when fd is not a
 * socket (the socket's file must point back at the file). Six reads: the
 * task's files, the table pointer, the table's size and array (one), the
 * file, its private_data, the socket's file and sk (one). */
static __always_inline struct sock *nx_sock_of_fd(__s64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt;
	struct file *file = NULL;
	struct socket *sock;
	__u8 t[32];
	__u8 so[64];

	if (fd < 0)
		return NULL;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || bpf_core_field_offset(struct fdtable, fd) > sizeof(t) - 8 ||
	    bpf_probe_read_kernel(t, sizeof(t), fdt))
		return NULL;
	if (fd >= NX_FIELD_AT(t, struct fdtable, max_fds, unsigned int))
		return NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file),
				  NX_FIELD_AT(t, struct fdtable, fd, struct file **) + fd) ||
	    !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || bpf_core_field_offset(struct socket, file) > sizeof(so) - 8 ||
	    bpf_core_field_offset(struct socket, sk) > sizeof(so) - 8 ||
	    bpf_probe_read_kernel(so, sizeof(so), sock))
		return NULL;
	if (NX_FIELD_AT(so, struct socket, file, struct file *) != file)
		return NULL;
	return NX_FIELD_AT(so, struct socket, sk, struct sock *);
}

/* The first bytes of a socket, struct sock_common whole (~136 bytes on
 * x86-64; what lies past it in struct sock is read too and unused). */
#define NX_SKC_READ 192

/* The socket's flow from its sock_common (read whole by the caller): saddr/sport
 * local, daddr/dport remote (zero when not connected). */
static __always_inline void nx_skc_tuple(struct nx_tuple *t, const __u8 *skc)
{
	t->family = NX_FIELD_AT(skc, struct sock_common, skc_family, __u16);
	t->sport = NX_FIELD_AT(skc, struct sock_common, skc_num, __u16);
	t->dport = bpf_ntohs(NX_FIELD_AT(skc, struct sock_common, skc_dport, __u16));
	if (t->family == NX_AF_INET) {
		__builtin_memcpy(t->saddr, &NX_FIELD_AT(skc, struct sock_common, skc_rcv_saddr, __u32), 4);
		__builtin_memcpy(t->daddr, &NX_FIELD_AT(skc, struct sock_common, skc_daddr, __u32), 4);
	} else {
		__builtin_memcpy(t->saddr, &NX_FIELD_AT(skc, struct sock_common, skc_v6_rcv_saddr, __u8), 16);
		__builtin_memcpy(t->daddr, &NX_FIELD_AT(skc, struct sock_common, skc_v6_daddr, __u8), 16);
	}
}

/* Whether the fields nx_skc_tuple and the namespace need lie in the first
 * NX_SKC_READ bytes (a constant for the verifier; true on every kernel
 * netxray supports). */
static __always_inline bool nx_skc_fits(void)
{
	return bpf_core_field_offset(struct sock_common, skc_v6_rcv_saddr) + 16 <= NX_SKC_READ &&
	       bpf_core_field_offset(struct sock_common, skc_v6_daddr) + 16 <= NX_SKC_READ &&
	       bpf_core_field_offset(struct sock_common, skc_net) + 8 <= NX_SKC_READ &&
	       bpf_core_field_offset(struct sock_common, skc_family) + 2 <= NX_SKC_READ &&
	       bpf_core_field_offset(struct sock_common, skc_num) + 2 <= NX_SKC_READ &&
	       bpf_core_field_offset(struct sock_common, skc_dport) + 2 <= NX_SKC_READ &&
	       bpf_core_field_offset(struct sock_common, skc_daddr) + 4 <= NX_SKC_READ &&
	       bpf_core_field_offset(struct sock_common, skc_rcv_saddr) + 4 <= NX_SKC_READ;
}

/* The socket's flow: saddr/sport local, daddr/dport remote (zero when not
 * connected). */
static __always_inline void nx_sock_tuple_probe(struct nx_tuple *t, const struct sock *sk)
{
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->family == NX_AF_INET) {
		bpf_probe_read_kernel(t->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_probe_read_kernel(t->daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_probe_read_kernel(t->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_probe_read_kernel(t->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

#endif
