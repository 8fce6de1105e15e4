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

/* fd -> file -> socket -> sk for the current task; NULL when fd is not a
 * socket (the socket's file must point back at the file). */
static __always_inline struct sock *nx_sock_of_fd(__s64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;

	if (fd < 0)
		return NULL;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return NULL;
	return BPF_CORE_READ(sock, sk);
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
