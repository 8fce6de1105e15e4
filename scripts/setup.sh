#!/usr/bin/env bash
# Install the Debian packages netxray's tests, its BPF build and its kernel
# matrix need, when they are missing. Run as root (apt-get). Used by
# scripts/test.sh (group "test"), .ci/run (all groups) and
# scripts/kmatrix/run.sh (group "matrix"); safe to run again.
#
#   scripts/setup.sh [test] [bpf] [matrix] [bench]     (default: test)
#
# test:   iproute2 (ip, tc), nftables (nft), tcpdump (the filter oracle),
#         bpftool (leftover checks), util-linux (setpriv), coreutils (stdbuf),
#         libbpf-tools (tcplife, compared with conn), dnsmasq-base (a DNS
#         server without the system service) and bind9-dnsutils (dig), for
#         dns; nginx-light (its service kept from starting), for http
# bpf:    clang-19, llvm-19, libbpf-dev at the versions the committed
#         objects were built with (scripts/check-bpf.sh compares bytes)
# matrix: qemu-system-x86 and what builds a guest's initramfs
# bench:  dnsperf (scripts/bench-dns.sh), nginx-light and wrk
#         (scripts/bench-http.sh; nginx's service is kept from starting)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Pinned: the committed objects were built with exactly these versions.
CLANG_VERSION='1:19.1.7-3~deb12u1'
LIBBPF_VERSION='1:1.1.2-0+deb12u1'

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(test)

want=()   # packages to install
need() {  # PACKAGE COMMAND-OR-PATH: want PACKAGE when the command is missing
	if ! command -v "$2" > /dev/null 2>&1 && [ ! -e "$2" ]; then want+=("$1"); fi
}
for g in "${groups[@]}"; do
	case $g in
	test)
		need iproute2 ip
		need iproute2 tc
		need nftables nft
		need tcpdump tcpdump
		need bpftool bpftool
		need util-linux setpriv
		need coreutils stdbuf
		need libbpf-tools tcplife
		need dnsmasq-base dnsmasq
		need bind9-dnsutils dig
		need nginx-light nginx
		;;
	bpf)
		if [ "$(dpkg-query -W -f='${Version}' clang-19 2> /dev/null)" != "$CLANG_VERSION" ] ||
			[ "$(dpkg-query -W -f='${Version}' llvm-19 2> /dev/null)" != "$CLANG_VERSION" ] ||
			[ "$(dpkg-query -W -f='${Version}' libbpf-dev 2> /dev/null)" != "$LIBBPF_VERSION" ]; then
			want+=("clang-19=$CLANG_VERSION" "llvm-19=$CLANG_VERSION" "libbpf-dev=$LIBBPF_VERSION")
		fi
		;;
	bench)
		need dnsperf dnsperf
		need nginx-light nginx
		need wrk wrk
		;;
	matrix)
		need qemu-system-x86 qemu-system-x86_64
		need busybox-static /bin/busybox
		need kmod depmod
		need cpio cpio
		need zstd unzstd
		need xz-utils unxz
		need nftables nft
		need iproute2 ip
		;;
	*)
		echo "setup.sh: unknown group '$g' (test, bpf, matrix, bench)" >&2
		exit 2
		;;
	esac
done

[ ${#want[@]} -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "setup.sh: missing packages: ${want[*]}; run as root to install them (apt-get install ${want[*]})" >&2
	exit 1
fi
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
echo "setup.sh: installing ${want[*]}" >&2
apt-get update -q
# No service may start on the host (nginx's package starts one): the
# benchmarks run their servers in namespaces of their own.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod +x "$policy"
	made_policy=1
fi
apt-get install -y -q --no-install-recommends "${want[@]}"
if [ -n "$made_policy" ]; then rm -f "$policy"; fi
