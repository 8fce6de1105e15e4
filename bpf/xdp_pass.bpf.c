// SPDX-License-Identifier: GPL-2.0
/*
 * A user's own XDP program, for the tests: netxray stats must leave it in
 * place (tests/stats.rs attaches it with `ip link set ... xdpgeneric obj`).
 * Not loaded by netxray.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
