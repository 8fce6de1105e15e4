#!/bin/bash
# suite.sh: netxray's end-to-end checks for the kernel matrix (run.sh boots
# each kernel under qemu and runs this as part of the guest's /init; `run.sh
# host` runs it on this machine). Needs bash, iproute2's ip, nft, busybox
# (ping, nc, timeout, awk, ...): no python, no jq (JSON is read with
# jflat.awk).
#
# Usage: suite.sh [CHECK...]   (default: every check, in order)
#        suite.sh --list
# Env:   NX        netxray binary (default: netxray in PATH)
#        KMX_OUT   folder for every command's output (default /tmp/kmx)
#        KMX_TMO   seconds before a netxray command is killed (default 90)
#
# Each check runs in its own bash process, under a hard timeout, in
# namespaces it makes and removes itself (nxka/nxkb joined by va/vb,
# 198.18.0.1/24 and 198.18.0.2/24; journey-nat: nxkc -> nxkr -> nxks), and
# prints exactly one line
#     RESULT <check> pass|fail|lacks <detail>
# on stdout; a failure is followed by a block
#     DETAIL-BEGIN <check> ... DETAIL-END <check>
# with what was expected, every netxray command of the check with its exit
# code, stderr and (cut) stdout, the verifier's reasons from a -vv re-run,
# and the kernel messages logged meanwhile. `lacks <what>` is a degradation
# the kernel imposes (checked against the kernel, not only against what
# netxray says); run.sh compares it with the expectations file.
set -u
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
JFLAT=$HERE/jflat.awk
NX=${NX:-netxray}
OUT=${KMX_OUT:-/tmp/kmx}
TMO=${KMX_TMO:-90}
# every netxray run is bounded by --duration too (it is stopped with SIGINT
# as soon as what the check waits for is there)
DUR=$((TMO - 15))
ALL="doctor hooks load-all trace-veth trace-tc trace-netfilter journey-nat drops-nft drops-nft-trace conn-bytes http-sys dns-sys stats-counts kernel-log"
# pings and datagrams per check: small, known numbers
NPING=5
NUDP=7
NBYTES=30011

up() { cut -d' ' -f1 /proc/uptime; }
nsx() { # NS CMD...: run in a namespace
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}
cut_lines() { cut -c1-"${1:-400}"; }

# ---- results ----------------------------------------------------------------
result() { # STATUS DETAIL...
	local st=$1
	shift
	echo "RESULT $CHECK $st $(echo "$*" | tr '\n' ' ' | sed 's/ *$//' | cut_lines 300)" | tee "$OUT/$CHECK.result"
}
pass() { result pass "$@"; }
lacks() { result lacks "$@"; }
fail() { # WHY...: the result, then everything needed to diagnose it
	result fail "$*"
	echo "DETAIL-BEGIN $CHECK"
	echo "why: $*"
	[ -s "$OUT/$CHECK.why" ] && sed 's/^/  /' "$OUT/$CHECK.why" | cut_lines 600
	local c f
	for c in $(ls "$OUT/$CHECK".*.cmd 2> /dev/null); do
		f=${c%.cmd}
		echo "---- \$ $(cat "$c")"
		echo "     exit code: $(cat "$f.rc" 2> /dev/null || echo '?'), ready-file: $([ -e "$f.ready" ] && echo written || echo no)"
		echo "     stderr ($(wc -l < "$f.err") lines, last 40):"
		tail -n 40 "$f.err" | cut_lines 400 | sed 's/^/     | /'
		local n
		n=$(wc -l < "$f.out")
		echo "     stdout ($n lines$([ "$n" -gt 25 ] && echo ', first 20 and last 5'))"
		if [ "$n" -gt 25 ]; then
			head -n 20 "$f.out" | cut_lines 400 | sed 's/^/     | /'
			echo "     | ..."
			tail -n 5 "$f.out" | cut_lines 400 | sed 's/^/     | /'
		else
			cut_lines 400 < "$f.out" | sed 's/^/     | /'
		fi
	done
	vv_rerun
	if [ -n "${DMESG0:-}" ]; then
		local new
		new=$(dmesg 2> /dev/null | tail -n +$((DMESG0 + 1)))
		if [ -n "$new" ]; then
			echo "---- kernel messages during the check (last 30)"
			echo "$new" | tail -n 30 | cut_lines 300
		fi
	fi
	echo "DETAIL-END $CHECK"
}

# The verifier's reason for each program it refused, from a netxray -vv
# output: the program, the error, the verifier's first line, and its last
# lines before the statistics.
verifier_reasons() { # FILE
	awk '
	/the BPF_PROG_LOAD syscall returned/ && /Verifier output/ {
		err = $0; sub(/.*syscall returned /, "", err); sub(/\. Verifier output.*/, "", err)
		first = $0; sub(/.*Verifier output: /, "", first)
		inb = (index(first, " ... ") == 0); prog = ""; nb = 0
		next
	}
	!inb { next }
	prog == "" && match($0, /BPF_PROG\([A-Za-z0-9_]+/) { prog = substr($0, RSTART + 9, RLENGTH - 9) }
	prog == "" && match($0, /^; int [A-Za-z0-9_]+\(/) { prog = substr($0, RSTART + 6, RLENGTH - 7) }
	/^(verification time|processed [0-9]+ insns|stack depth)/ {
		k = prog "|" err "|" b[nb - 1] "|" b[nb]
		if (!(k in seen)) {
			seen[k] = 1
			printf "  %s: %s | first line: %s\n", (prog == "" ? "?" : prog), err, substr(first, 1, 200)
			for (i = (nb > 4 ? nb - 3 : 1); i <= nb; i++) printf "      %s\n", substr(b[i], 1, 220)
		}
		inb = 0
		next
	}
	{ b[++nb] = $0 }
	' "$1"
}

# Run the check's last netxray command again with -vv (no traffic), long
# enough for every program to load, and show why the verifier refused any.
vv_rerun() {
	[ -n "${LAST_NAME:-}" ] || return 0
	local f=$OUT/$CHECK.$LAST_NAME.vv pid i
	rm -f "$f.ready"
	if [ "$LAST_READY" = yes ]; then
		timeout -s KILL "$TMO" "$NX" "$LAST_SUB" -vv --ready-file "$f.ready" "${LAST_ARGS[@]}" > "$f.out" 2> "$f.err" &
		pid=$!
		for i in $(seq 1 $((TMO * 10))); do
			[ -e "$f.ready" ] && break
			kill -0 $pid 2> /dev/null || break
			sleep 0.1
		done
		kill -INT $pid 2> /dev/null
		wait $pid
	else
		timeout -s KILL "$TMO" "$NX" "$LAST_SUB" -vv "${LAST_ARGS[@]}" > "$f.out" 2> "$f.err"
	fi
	echo "---- again with -vv (no traffic): $(grep -c 'BPF_PROG_LOAD syscall returned' "$f.err") verifier refusal line(s); full output $(basename "$f").err"
	verifier_reasons "$f.err" | head -n 60
	grep -E 'WARN|ERROR|error:' "$f.err" | grep -v 'Verifier output' | head -n 10 | cut_lines 300 | sed 's/^/  /'
}

# ---- netxray runs -----------------------------------------------------------
shquote() { # ARGS...: one line a shell would read back as these arguments
	local a l=""
	for a in "$@"; do
		case $a in *[!A-Za-z0-9_./:=,+-]* | "") a="'${a//\'/\'\\\'\'}'" ;; esac
		l="$l${l:+ }$a"
	done
	echo "$l"
}
# nx_run NAME SUB ARGS...: run to completion (no --ready-file)
nx_run() {
	local name=$1 sub=$2 f=$OUT/$CHECK.$1
	shift 2
	LAST_NAME=$name LAST_SUB=$sub LAST_READY=no LAST_ARGS=("$@")
	shquote netxray "$sub" "$@" > "$f.cmd"
	timeout -s KILL "$TMO" "$NX" "$sub" "$@" > "$f.out" 2> "$f.err"
	NX_RC=$?
	echo $NX_RC > "$f.rc"
	return $NX_RC
}
# nx_start NAME SUB ARGS...: start in the background and wait for its
# --ready-file; 1 if it exited first (NX_RC then set)
nx_start() {
	local name=$1 sub=$2 f=$OUT/$CHECK.$1 i
	shift 2
	LAST_NAME=$name LAST_SUB=$sub LAST_READY=yes LAST_ARGS=("$@")
	NX_F=$f
	rm -f "$f.ready" "$f.rc"
	shquote netxray "$sub" --ready-file "$f.ready" "$@" > "$f.cmd"
	local t0
	t0=$(up)
	timeout -s KILL "$TMO" "$NX" "$sub" --ready-file "$f.ready" "$@" > "$f.out" 2> "$f.err" &
	NX_PID=$!
	echo $NX_PID >> "$OUT/$CHECK.pids"
	for i in $(seq 1 $((TMO * 10))); do
		if [ -e "$f.ready" ]; then
			echo "ready after $(awk "BEGIN{print $(up) - $t0}") s" > "$f.time"
			return 0
		fi
		if ! kill -0 $NX_PID 2> /dev/null; then
			wait $NX_PID
			NX_RC=$?
			echo $NX_RC > "$f.rc"
			NX_STATE=exited
			return 1
		fi
		sleep 0.1
	done
	nx_stop
	NX_STATE=timeout
	return 1
}
# nx_stop: SIGINT (as Ctrl-C), then SIGTERM, then SIGKILL; NX_RC
nx_stop() {
	local i
	kill -INT $NX_PID 2> /dev/null
	for i in $(seq 1 100); do
		kill -0 $NX_PID 2> /dev/null || break
		sleep 0.1
	done
	if kill -0 $NX_PID 2> /dev/null; then
		echo "netxray did not exit within 10 s of SIGINT: SIGTERM" >> "$NX_F.err"
		kill -TERM $NX_PID 2> /dev/null
		sleep 3
		kill -KILL $NX_PID 2> /dev/null
	fi
	wait $NX_PID
	NX_RC=$?
	echo $NX_RC > "$NX_F.rc"
}
# wait_for FN SECONDS: poll a function until it succeeds
wait_for() {
	local fn=$1 i
	for i in $(seq 1 $(($2 * 5))); do
		$fn && return 0
		kill -0 $NX_PID 2> /dev/null || {
			$fn
			return
		}
		sleep 0.2
	done
	return 1
}
# ready_or_fail: after nx_start failed
not_ready() {
	if [ "$NX_STATE" = exited ]; then
		fail "netxray exited with code $NX_RC before it was ready: $(tail -n 1 "$NX_F.err" | cut_lines 300)"
	else
		fail "netxray was not ready within $TMO s"
	fi
}
# jflat FILE: FILE.tsv, one "record path value" line per JSON value
jflat() { awk -f "$JFLAT" "$1" > "$1.tsv"; }
# awk prelude: records of a jflat file, g(record, path)
JLOAD='BEGIN { FS = "\t" }
{ if (!($1 in seen)) { seen[$1] = 1; ids[++nrec] = $1 }; v[$1 SUBSEP $2] = $3 }
function g(r, k) { return ((r SUBSEP k) in v) ? v[r SUBSEP k] : "" }
function later(a, b) { return length(a) == length(b) ? (a "" > b "") : (a + 0 > b + 0) }'

# ---- kernel facts (what the kernel has, independent of netxray) -------------
btf_has() { grep -q -a "$1" /sys/kernel/btf/vmlinux 2> /dev/null; }
# netfilter BPF links (6.4+): their context type exists
kernel_has_nf_links() { btf_has bpf_nf_ctx; }
# kfree_skb's drop reason (5.17+)
kernel_has_drop_reasons() { btf_has SKB_DROP_REASON_NOT_SPECIFIED; }

# ---- topologies -------------------------------------------------------------
ns_add() { # NAME: a fresh namespace, IPv6 off (no MLD/NDP noise), lo up
	ip netns del "$1" 2> /dev/null
	ip netns add "$1" || return 1
	nsx "$1" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; echo 0 > /proc/sys/net/ipv4/icmp_ratelimit' 2> /dev/null
	ip -n "$1" link set lo up
}
# pair NS1 DEV1 IP1 NS2 DEV2 IP2 N: a veth pair, /24 addresses, fixed MACs
# and permanent neighbour entries (no ARP in the counts)
pair() {
	local m1=02:00:c6:12:$7:01 m2=02:00:c6:12:$7:02
	ip link add "$2" netns "$1" address $m1 type veth peer name "$5" netns "$4" address $m2 &&
		ip -n "$1" addr add "$3/24" dev "$2" && ip -n "$4" addr add "$6/24" dev "$5" &&
		ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up &&
		ip -n "$1" neigh replace "$6" lladdr $m2 dev "$2" nud permanent &&
		ip -n "$4" neigh replace "$3" lladdr $m1 dev "$5" nud permanent
}
TOPO_NS=""
topo_down() {
	local ns
	for ns in $TOPO_NS; do ip netns del "$ns" 2> /dev/null; done
	TOPO_NS=""
}
veth_up() { # nxka (va 198.18.0.1) <-> nxkb (vb 198.18.0.2)
	TOPO_NS="nxka nxkb"
	ns_add nxka && ns_add nxkb &&
		pair nxka va 198.18.0.1 nxkb vb 198.18.0.2 00 &&
		nsx nxka ping -c 1 -W 5 198.18.0.2 > /dev/null
}
# client nxkc (vc 198.18.1.1) -> router nxkr (vr0 198.18.1.254, vr1
# 198.18.2.254; DNAT of 198.18.1.254 udp 5353 to 198.18.2.2:5354) -> server
# nxks (vs 198.18.2.2)
nat_up() {
	TOPO_NS="nxkc nxkr nxks"
	ns_add nxkc && ns_add nxkr && ns_add nxks &&
		pair nxkc vc 198.18.1.1 nxkr vr0 198.18.1.254 01 &&
		pair nxkr vr1 198.18.2.254 nxks vs 198.18.2.2 02 &&
		ip -n nxkc route add default via 198.18.1.254 &&
		ip -n nxks route add default via 198.18.2.254 &&
		nsx nxkr sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward' &&
		nsx nxkr nft -f - << 'EOF' &&
table ip nxknat {
	chain pre {
		type nat hook prerouting priority -100; policy accept;
		ip daddr 198.18.1.254 udp dport 5353 dnat to 198.18.2.2:5354
	}
}
EOF
		nsx nxkc ping -c 1 -W 5 198.18.2.2 > /dev/null
}
topo_fail() { # WHAT
	{
		echo "errors while setting up:"
		sed 's/^/  /' "$OUT/$CHECK.topo" 2> /dev/null
		echo "ip netns: $(ip netns list | tr '\n' ' ')"
		for ns in $TOPO_NS; do
			echo "== $ns"
			ip -n "$ns" -br addr 2>&1
			ip -n "$ns" neigh 2>&1
		done
	} > "$OUT/$CHECK.why"
	fail "$1 topology setup failed (before netxray ran): see the namespaces below"
}

# ---- traffic -----------------------------------------------------------------
pings() { # NS DST N: N pings, 0.2 s apart; 0 when all were answered
	local out
	out=$(nsx "$1" ping -c "$3" -i 0.2 -W 5 "$2" 2>&1)
	echo "$out" > "$OUT/$CHECK.ping"
	echo "$out" | grep -q "$3 packets transmitted, $3 packets received"
}
ping_fail() {
	cp "$OUT/$CHECK.ping" "$OUT/$CHECK.why" 2> /dev/null
	nx_stop
	fail "not every ping was answered while netxray ran (ping output below)"
}
udp_burst() { # NS DST PORT N: N datagrams, each from a new socket
	local i
	for i in $(seq 1 "$4"); do
		nsx "$1" bash -c "printf 'kmx%d' $i > /dev/udp/$2/$3" 2> /dev/null
		sleep 0.05
	done
}

# a clsact qdisc netxray left on vb after it exited (its tc fallback for
# kernels without tcx must remove what it installed)
clsact_left() {
	nsx nxkb tc qdisc show dev vb 2>&1 | grep -i clsact
}

# ---- the checks --------------------------------------------------------------
check_doctor() {
	if nx_run doctor doctor; then
		pass "exit 0"
	else
		fail "netxray doctor exited with code $NX_RC"
	fi
}

check_hooks() {
	if nx_run hooks hooks; then
		pass "exit 0, $(grep -cE '^    [a-z0-9_]+:[a-z0-9_]+ +ok ' "$OUT/hooks.hooks.out") hooks ok"
	else
		fail "netxray hooks exited with code $NX_RC"
	fi
}

check_load-all() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	nx_run load hooks --load -i va --netns nxka
	local f=$OUT/$CHECK.load last
	last=$(grep '^netxray' "$f.err" | tail -n 1 | cut_lines 200)
	# what was refused or failed, then what the kernel lacks, for the log
	{
		grep -vE ' (ok|missing) ' "$f.out"
		grep -E ' missing ' "$f.out" | awk '{ print $2 }' | sort -u | tr '\n' ' ' | sed 's/^./missing (the kernel lacks them): &/'
		echo
	} | grep . > "$OUT/$CHECK.why"
	if [ "$NX_RC" = 0 ]; then
		pass "${last:-exit 0}"
	elif [ "$NX_RC" = 2 ] && grep -q -- "--load" "$f.err"; then
		fail "this netxray has no 'hooks --load' (usage error, exit code 2)"
	else
		fail "netxray hooks --load exited with code $NX_RC: ${last:-(no summary line)}"
	fi
}

# the echo requests seen leaving va (nxka) and entering vb (nxkb), in order
check_trace-veth() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	nx_start t trace -o json --duration "$DUR" icmp || {
		not_ready
		return
	}
	pings nxka 198.18.0.2 $NPING || {
		ping_fail
		return
	}
	seen() {
		jflat "$NX_F.out"
		awk -v N=$NPING "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				if (g(r, "icmp_type") != "8" || g(r, "daddr") != "198.18.0.2") continue
				if (g(r, "hook") == "net:net_dev_queue" && g(r, "netns_name") == "nxka" && g(r, "ifname") == "va") q++
				if (g(r, "hook") == "net:netif_receive_skb" && g(r, "netns_name") == "nxkb" && g(r, "ifname") == "vb") x++
			}
			exit !(q >= N && x >= N)
		}' "$NX_F.out.tsv"
	}
	wait_for seen 15
	sleep 0.5
	nx_stop
	jflat "$NX_F.out"
	awk -v N=$NPING "$JLOAD"'
	END {
		for (i = 1; i <= nrec; i++) { r = ids[i]
			if (g(r, "icmp_type") != "8" || g(r, "daddr") != "198.18.0.2") continue
			h = g(r, "hook"); s = g(r, "icmp_seq"); t = g(r, "ts_ns")
			if (h == "net:net_dev_queue" && g(r, "netns_name") == "nxka" && g(r, "ifname") == "va") { q++; qt[s] = t }
			if (h == "net:netif_receive_skb" && g(r, "netns_name") == "nxkb" && g(r, "ifname") == "vb") { x++; xt[s] = t }
			if (h != "") hooks[h]++
		}
		if (q != N) bad = bad sprintf("%d echo requests at net:net_dev_queue on va in nxka, expected %d\n", q, N)
		if (x != N) bad = bad sprintf("%d echo requests at net:netif_receive_skb on vb in nxkb, expected %d\n", x, N)
		for (s in qt) {
			if (!(s in xt)) { bad = bad "seq " s ": not seen at net:netif_receive_skb on vb\n"; continue }
			if (!later(xt[s], qt[s])) bad = bad "seq " s ": net:netif_receive_skb on vb (ts_ns " xt[s] ") is not after net:net_dev_queue on va (" qt[s] ")\n"
		}
		if (bad != "") {
			printf "%s", bad
			print "echo requests to 198.18.0.2 per hook:"
			for (h in hooks) print "  " h ": " hooks[h]
			exit 1
		}
	}' "$NX_F.out.tsv" > "$OUT/$CHECK.why"
	local ok=$?
	if [ "$NX_RC" != 0 ]; then
		fail "netxray trace exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the echo requests were not seen as expected"
	else
		pass "$NPING echo requests: net_dev_queue on va (nxka) then netif_receive_skb on vb (nxkb)$(skipped)"
	fi
}
skipped() { # the hooks netxray said it skipped, for a passing check
	local n
	n=$(grep -c 'skipping' "$NX_F.err")
	[ "$n" = 0 ] || echo " ($n hooks skipped: see the log)"
}

# tc ingress and egress of vb: N requests in, N replies out
check_trace-tc() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	nx_start t trace -t tc -i vb --netns nxkb -o json --duration "$DUR" icmp || {
		not_ready
		return
	}
	pings nxka 198.18.0.2 $NPING || {
		ping_fail
		return
	}
	count_tc() {
		jflat "$NX_F.out"
		awk -v N=$NPING "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				h = g(r, "hook"); y = g(r, "icmp_type")
				if (g(r, "ifname") != "vb") continue
				if (h == "tc:ingress" && y == "8") in_++
				if (h == "tc:egress" && y == "0") out++
			}
			if (WHY) printf "tc:ingress echo requests on vb: %d, tc:egress echo replies on vb: %d (expected %d each)\n", in_, out, N
			exit !(in_ == N && out == N)
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for count_tc 15
	sleep 0.5
	nx_stop
	count_tc WHY=1 > "$OUT/$CHECK.why"
	local ok=$? left
	left=$(clsact_left)
	if [ "$NX_RC" != 0 ]; then
		fail "netxray trace -t tc exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the pings were not seen at tc ingress and egress as expected"
	elif [ -n "$left" ]; then
		fail "netxray left a clsact qdisc on vb after it exited: $left"
	else
		pass "$NPING requests at tc:ingress and $NPING replies at tc:egress of vb"
	fi
}

# netfilter hooks: the requests leave nxka through nf:output and enter nxkb
# through nf:input; a kernel without netfilter links (< 6.4) must be named
check_trace-netfilter() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	if ! nx_start t trace -t netfilter -o json --duration "$DUR" icmp; then
		if [ "${NX_RC:-0}" != 0 ] && ! kernel_has_nf_links &&
			grep -qiE 'netfilter.*(link|6\.4)|(link|6\.4).*netfilter' "$NX_F.err"; then
			lacks netfilter-links "exit code $NX_RC: $(grep -iE 'netfilter' "$NX_F.err" | tail -n 1 | cut_lines 200)"
		elif kernel_has_nf_links; then
			not_ready
		else
			echo "this kernel has no netfilter BPF links (no bpf_nf_ctx in its BTF): netxray must exit non-zero with a message naming them (netfilter ... link)" > "$OUT/$CHECK.why"
			not_ready
		fi
		return
	fi
	if ! kernel_has_nf_links; then
		nx_stop
		fail "netxray trace -t netfilter started on a kernel without netfilter BPF links (no bpf_nf_ctx in BTF)"
		return
	fi
	pings nxka 198.18.0.2 $NPING || {
		ping_fail
		return
	}
	count_nf() {
		jflat "$NX_F.out"
		awk -v N=$NPING "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				if (g(r, "icmp_type") != "8" || g(r, "daddr") != "198.18.0.2") continue
				h = g(r, "hook"); ns = g(r, "netns_name"); k[h " in " ns]++
				if (h == "nf:output" && ns == "nxka") o++
				if (h == "nf:input" && ns == "nxkb") n++
			}
			if (WHY) {
				printf "echo requests at nf:output in nxka: %d, at nf:input in nxkb: %d (expected %d each); all hooks:\n", o, n, N
				for (x in k) print "  " x ": " k[x]
			}
			exit !(o == N && n == N)
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for count_nf 15
	sleep 0.5
	nx_stop
	count_nf WHY=1 > "$OUT/$CHECK.why"
	local ok=$?
	if [ "$NX_RC" != 0 ]; then
		fail "netxray trace -t netfilter exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the echo requests were not seen at the netfilter hooks as expected"
	else
		pass "$NPING requests at nf:output (nxka) and nf:input (nxkb)"
	fi
}

# N datagrams client -> router (DNAT) -> server: one journey each, crossing
# the three namespaces, with the rewrite at the router
check_journey-nat() {
	nat_up 2> "$OUT/$CHECK.topo" || {
		topo_fail nat
		return
	}
	nx_start j trace --journey --follow -o json --duration "$DUR" 'udp and dst port 5353' || {
		not_ready
		return
	}
	udp_burst nxkc 198.18.1.254 5353 $NUDP
	journeys() {
		jflat "$NX_F.out"
		awk -v N=$NUDP "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				if (g(r, "journey") == "") continue
				nj++
				sum = g(r, "summary")
				if (g(r, "hops.0.netns_name") != "nxkc" || sum !~ /198\.18\.1\.254\.5353: UDP/) { other = other "  #" g(r, "journey") " " sum " (first hop in " g(r, "hops.0.netns_name") ")\n"; continue }
				ours++
				n = g(r, "hops.#") + 0; path = ""; rw = ""; nq = 0
				for (h = 0; h < n; h++) {
					p = "hops." h "."
					if (g(r, p "kind") != "packet") continue
					ns = g(r, p "netns_name")
					if (path !~ ("(^| )" ns "( |$)")) path = path (path == "" ? "" : " ") ns
					if (g(r, p "rewrite.from") != "" && g(r, p "rewrite.from") != "null") {
						rw = rw sprintf("[%s: %s -> %s] ", ns, g(r, p "rewrite.from"), g(r, p "rewrite.to"))
						if (ns == "nxkr" && g(r, p "rewrite.from") ~ /198\.18\.1\.254\.5353/ && g(r, p "rewrite.to") ~ /198\.18\.2\.2\.5354/) nat = 1
					}
					if (g(r, p "hook") == "net:net_dev_queue" && ns == "nxkc") nq++
				}
				ok = (path == "nxkc nxkr nxks") && nat && nq == 1
				if (ok) good++
				else bad = bad sprintf("  #%s %s: namespaces [%s], rewrites %s, %d net_dev_queue in nxkc, end %s\n", g(r, "journey"), sum, path, (rw == "" ? "none" : rw), nq, g(r, "end.kind"))
				nat = 0
			}
			if (WHY) {
				printf "%d journeys of a datagram from nxkc to 198.18.1.254:5353 (expected %d), %d of them crossing nxkc nxkr nxks with the DNAT rewrite at nxkr and one hop out of nxkc\n", ours, N, good
				if (bad != "") printf "not as expected:\n%s", bad
				if (other != "") printf "other journeys:\n%s", other
			}
			exit !(ours == N && good == N)
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for journeys 15
	sleep 0.5
	nx_stop
	journeys WHY=1 > "$OUT/$CHECK.why"
	local ok=$?
	if [ "$NX_RC" != 0 ]; then
		fail "netxray trace --journey exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "not one complete journey per datagram through the NAT"
	else
		pass "$NUDP journeys nxkc -> nxkr (DNAT 198.18.1.254:5353 -> 198.18.2.2:5354) -> nxks$(skipped)"
	fi
}

nft_drop_rule() { # in nxkb: udp dport 9 drop; DROP_HANDLE
	nsx nxkb nft -f - << 'EOF' || return 1
table inet nxkdrop {
	chain in {
		type filter hook input priority 0; policy accept;
		udp dport 9 drop
	}
}
EOF
	DROP_HANDLE=$(nsx nxkb nft -a list chain inet nxkdrop in | awk '/drop # handle/ { print $NF }')
	[ -n "$DROP_HANDLE" ]
}

# nft drops in nxkb, counted exactly, with NETFILTER_DROP (or at least the
# location, on kernels without drop reasons)
check_drops-nft() {
	{ veth_up && nft_drop_rule; } 2> "$OUT/$CHECK.topo" || {
		topo_fail "veth + nft drop rule"
		return
	}
	nx_start d drops -o json --interval 0.5 --duration "$DUR" 'udp and dst port 9' || {
		not_ready
		return
	}
	udp_burst nxka 198.18.0.2 9 $NUDP
	rows() {
		jflat "$NX_F.out"
		# per row key, the largest total seen (totals are since the start)
		awk -v N=$NUDP -v REASONS=$(kernel_has_drop_reasons && echo 1 || echo 0) -v LINKS=$(kernel_has_nf_links && echo 1 || echo 0) "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				n = g(r, "rows.#") + 0
				for (j = 0; j < n; j++) {
					p = "rows." j "."
					k = g(r, p "reason") "|" g(r, p "location") "|" g(r, p "netns_name") "|" g(r, p "ifname") "|" g(r, p "netfilter_hook")
					t = g(r, p "total") + 0
					if (t > tot[k]) tot[k] = t
				}
			}
			for (k in tot) {
				split(k, f, "|")
				if (f[3] != "nxkb") continue
				sum += tot[k]; rk++
				if (REASONS && f[1] != "NETFILTER_DROP") bad = bad "reason " f[1] ", expected NETFILTER_DROP; "
				if (f[2] == "" || f[2] == "null") bad = bad "no location; "
				if (LINKS && f[5] != "ip input") bad = bad "netfilter hook " f[5] ", expected ip input (the kernel has netfilter links); "
				desc = desc sprintf("  reason %s at %s in %s on %s, netfilter hook %s: total %d\n", f[1], f[2], f[3], f[4], f[5], tot[k])
				reason = f[1]; loc = f[2]
			}
			if (WHY) {
				printf "drops counted in nxkb: %d in %d row(s), expected %d in one row%s\n%s", sum, rk, N, (REASONS ? " with reason NETFILTER_DROP" : " (no drop reasons in this kernel: a location)"), desc
				if (bad != "") print bad
				if (sum == N && rk == 1 && bad == "") print "SUMMARY reason " reason " at " loc
			}
			exit !(sum == N && rk == 1 && bad == "")
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for rows 15
	sleep 0.7
	nx_stop
	rows WHY=1 > "$OUT/$CHECK.why"
	local ok=$? s
	s=$(sed -n 's/^SUMMARY //p' "$OUT/$CHECK.why")
	if [ "$NX_RC" != 0 ]; then
		fail "netxray drops exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the nft drops were not counted as expected"
	elif kernel_has_drop_reasons; then
		pass "$NUDP drops, $s"
	else
		lacks drop-reasons "$NUDP drops counted, $s (kfree_skb has no reason on this kernel)"
	fi
}

# the same drops, with --nft-trace: the rule that dropped them, by handle
check_drops-nft-trace() {
	{ veth_up && nft_drop_rule; } 2> "$OUT/$CHECK.topo" || {
		topo_fail "veth + nft drop rule"
		return
	}
	nx_start d drops --nft-trace --netns nxkb -o json --interval 0.5 --duration "$DUR" 'udp and dst port 9' || {
		not_ready
		return
	}
	udp_burst nxka 198.18.0.2 9 $NUDP
	rules() {
		jflat "$NX_F.out"
		awk -v N=$NUDP -v H="$DROP_HANDLE" "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				n = g(r, "nft_rules.#") + 0
				for (j = 0; j < n; j++) {
					p = "nft_rules." j "."
					k = g(r, p "family") " " g(r, p "table") " " g(r, p "chain") " handle " g(r, p "handle")
					t = g(r, p "total") + 0
					if (t > tot[k]) tot[k] = t
				}
			}
			want = "inet nxkdrop in handle " H
			if (WHY) {
				printf "drops per nftables rule (expected %d for %s):\n", N, want
				for (k in tot) print "  " k ": " tot[k]
			}
			exit !(tot[want] == N)
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for rules 15
	sleep 0.7
	nx_stop
	rules WHY=1 > "$OUT/$CHECK.why"
	local ok=$?
	if [ "$NX_RC" != 0 ]; then
		fail "netxray drops --nft-trace exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the rule's drops were not counted as expected"
	else
		pass "$NUDP drops named: inet nxkdrop in handle $DROP_HANDLE"
	fi
}

# a TCP echo of NBYTES between the namespaces: both ends reported with
# exactly NBYTES each way
check_conn-bytes() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	nx_start c conn -o json --duration "$DUR" 'port 8080' || {
		not_ready
		return
	}
	nsx nxkb timeout 60 nc -l -p 8080 -e cat > /dev/null 2>&1 &
	local srv=$! i
	for i in $(seq 1 50); do # listening (state 0A) on port 8080 (1F90), v4 or v6?
		nsx nxkb cat /proc/net/tcp /proc/net/tcp6 2> /dev/null | awk '$2 ~ /:1F90$/ && $4 == "0A" { f = 1 } END { exit !f }' && break
		sleep 0.1
	done
	nsx nxka timeout 30 bash -c '
		exec 3<> /dev/tcp/198.18.0.2/8080 || exit 1
		head -c '$NBYTES' <&3 | wc -c > '"$OUT/$CHECK.echoed"' &
		head -c '$NBYTES' /dev/zero >&3
		wait
		exec 3<&- 3>&-' 2> "$OUT/$CHECK.client.err"
	wait $srv 2> /dev/null
	local echoed
	echoed=$(tr -d ' ' < "$OUT/$CHECK.echoed" 2> /dev/null)
	if [ "$echoed" != "$NBYTES" ]; then
		nx_stop
		echo "client: $(cat "$OUT/$CHECK.client.err")" > "$OUT/$CHECK.why"
		fail "the TCP echo did not come back whole ($echoed of $NBYTES bytes): traffic problem"
		return
	fi
	conns() {
		jflat "$NX_F.out"
		awk -v N=$NBYTES "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				if (g(r, "type") != "conn") continue
				d = g(r, "direction"); ns = g(r, "netns_name")
				line = sprintf("%s %s:%s -> %s:%s in %s: tx_bytes %s rx_bytes %s outcome %s", d, g(r, "laddr"), g(r, "lport"), g(r, "raddr"), g(r, "rport"), ns, g(r, "tx_bytes"), g(r, "rx_bytes"), g(r, "outcome"))
				all = all "  " line "\n"
				if (d == "active" && ns == "nxka" && g(r, "laddr") == "198.18.0.1" && g(r, "raddr") == "198.18.0.2" && g(r, "rport") == "8080") {
					c++; cok = (g(r, "tx_bytes") == N && g(r, "rx_bytes") == N && g(r, "outcome") == "closed-local")
				}
				if (d == "passive" && ns == "nxkb" && g(r, "laddr") == "198.18.0.2" && g(r, "lport") == "8080" && g(r, "raddr") == "198.18.0.1") {
					s++; sok = (g(r, "tx_bytes") == N && g(r, "rx_bytes") == N && g(r, "outcome") == "closed-remote")
				}
			}
			if (WHY) printf "expected one active record in nxka and one passive in nxkb, each with tx_bytes = rx_bytes = %d, closed-local / closed-remote; got %d and %d:\n%s", N, c, s, all
			exit !(c == 1 && s == 1 && cok && sok)
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for conns 15
	sleep 0.5
	nx_stop
	conns WHY=1 > "$OUT/$CHECK.why"
	local ok=$?
	if [ "$NX_RC" != 0 ]; then
		fail "netxray conn exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the connection was not reported with exact bytes"
	else
		pass "client and server: $NBYTES bytes each way, closed-local / closed-remote"
	fi
}

# stats on vb: N requests in, N replies out, 98 bytes each (14 + 20 + 8 + 56)
# http from system calls: busybox httpd in nxkb (a file, sent with sendfile
# where busybox was built so), busybox wget in nxka: two exchanges, both
# ends joined, statuses and sizes.
check_http-sys() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	local www=$OUT/$CHECK.www i
	mkdir -p "$www"
	head -c 3000 /dev/zero | tr '\0' x > "$www/page.html"
	nsx nxkb timeout 60 httpd -f -p 198.18.0.2:8080 -h "$www" 2> "$OUT/$CHECK.httpd.err" &
	local srv=$!
	for i in $(seq 1 50); do # listening on port 8080 (1F90)
		nsx nxkb cat /proc/net/tcp 2> /dev/null | awk '$2 ~ /:1F90$/ && $4 == "0A" { f = 1 } END { exit !f }' && break
		sleep 0.1
	done
	nx_start h http -o json --timeout 1 --duration "$DUR" 'port 8080' || {
		kill $srv 2> /dev/null
		not_ready
		return
	}
	nsx nxka timeout 20 wget -q -O /dev/null http://198.18.0.2:8080/page.html 2> "$OUT/$CHECK.wget.err"
	nsx nxka timeout 20 wget -q -O /dev/null http://198.18.0.2:8080/missing 2>> "$OUT/$CHECK.wget.err"
	exchanges() {
		jflat "$NX_F.out"
		awk "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				if (g(r, "type") != "http") continue
				line = sprintf("%s %s -> %s %s %s, response %s bytes, complete %s, client pid %s, server pid %s", g(r, "method"), g(r, "client"), g(r, "server"), g(r, "path"), g(r, "status"), g(r, "response_bytes"), g(r, "response_complete"), g(r, "client_process.pid"), g(r, "server_process.pid"))
				all = all "  " line "\n"
				both = g(r, "client_process.pid") != "" && g(r, "server_process.pid") != ""
				if (g(r, "path") == "/page.html" && g(r, "status") == "200" && g(r, "response_complete") == "true" && g(r, "response_bytes") > 3000 && both) ok++
				if (g(r, "path") == "/missing" && g(r, "status") == "404" && both) miss++
			}
			if (WHY) printf "expected GET /page.html 200 (more than 3000 bytes, complete) and GET /missing 404, each with both processes; got:\n%s", all
			exit !(ok == 1 && miss == 1)
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for exchanges 15
	nx_stop
	kill $srv 2> /dev/null
	wait $srv 2> /dev/null
	exchanges WHY=1 > "$OUT/$CHECK.why"
	local ok=$?
	if [ "$NX_RC" != 0 ]; then
		fail "netxray http exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the two exchanges were not reported"
	else
		pass "GET /page.html 200 and GET /missing 404, busybox wget and httpd on both ends"
	fi
}

# dns from system calls: busybox nslookup in nxka asks 198.18.0.2, where
# nobody answers: the query is reported, unanswered, with its process.
check_dns-sys() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	nx_start d dns -o json --timeout 1 --duration "$DUR" 'port 53' || {
		not_ready
		return
	}
	nsx nxka timeout 10 nslookup matrix.test 198.18.0.2 > /dev/null 2> "$OUT/$CHECK.nslookup.err"
	queries() {
		jflat "$NX_F.out"
		awk "$JLOAD"'
		END {
			for (i = 1; i <= nrec; i++) { r = ids[i]
				if (g(r, "type") != "dns") continue
				line = sprintf("%s %s -> %s %s %s: %s, client %s/%s", g(r, "transport"), g(r, "client"), g(r, "server"), g(r, "qtype"), g(r, "name"), g(r, "status"), g(r, "client_process.pid"), g(r, "client_process.comm"))
				all = all "  " line "\n"
				if (g(r, "name") == "matrix.test" && g(r, "transport") == "udp" && g(r, "status") == "unanswered" && g(r, "server") == "198.18.0.2:53" && g(r, "client_process.pid") != "") ok++
			}
			if (WHY) printf "expected the query for matrix.test to 198.18.0.2:53, unanswered, with its process; got:\n%s", all
			exit !(ok >= 1)
		}' "$@" "$NX_F.out.tsv"
	}
	wait_for queries 15
	nx_stop
	queries WHY=1 > "$OUT/$CHECK.why"
	local ok=$?
	if [ "$NX_RC" != 0 ]; then
		fail "netxray dns exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "the query was not reported"
	else
		pass "nslookup's query for matrix.test reported unanswered, with its process"
	fi
}

check_stats-counts() {
	veth_up 2> "$OUT/$CHECK.topo" || {
		topo_fail veth
		return
	}
	nx_start s stats --netns nxkb -i vb --once --interval "$DUR" --duration "$DUR" -o json icmp || {
		not_ready
		return
	}
	pings nxka 198.18.0.2 $NPING || {
		ping_fail
		return
	}
	sleep 0.3
	# --once: SIGINT ends the interval, the one snapshot counts from the start
	nx_stop
	jflat "$NX_F.out"
	awk -v N=$NPING "$JLOAD"'
	END {
		for (i = 1; i <= nrec; i++) { r = ids[i]
			n = g(r, "interfaces.#") + 0; snaps++
			for (j = 0; j < n; j++) {
				p = "interfaces." j "."
				if (g(r, p "ifname") != "vb") continue
				d = g(r, p "dir")
				got[d] = sprintf("packets %s bytes %s ipv4 %s icmp %s", g(r, p "packets"), g(r, p "bytes"), g(r, p "l3.ipv4.packets"), g(r, p "l4.icmp.packets"))
			}
		}
		want = sprintf("packets %d bytes %d ipv4 %d icmp %d", N, N * 98, N, N)
		printf "%d snapshot(s); expected on vb, each way: %s\n  in:  %s\n  out: %s\n", snaps, want, got["in"], got["out"]
		exit !(snaps == 1 && got["in"] == want && got["out"] == want)
	}' "$NX_F.out.tsv" > "$OUT/$CHECK.why"
	local ok=$? left
	left=$(clsact_left)
	if [ "$NX_RC" != 0 ]; then
		fail "netxray stats exited with code $NX_RC after SIGINT"
	elif [ $ok != 0 ]; then
		fail "stats did not count the pings exactly"
	elif [ -n "$left" ]; then
		fail "netxray left a clsact qdisc on vb after it exited: $left"
	else
		pass "vb: $NPING packets ($((NPING * 98)) bytes) in and out, all ICMP"
	fi
}

# no kernel warning, BUG or oops while the suite ran
check_kernel-log() {
	local bad
	bad=$(dmesg 2> /dev/null | tail -n +$((KMX_DMESG_START + 1)) | grep -E '(BUG:|WARNING:|Oops|general protection fault|kernel BUG|Call Trace|refcount_t:|UBSAN|KASAN)' | head -n 40)
	if [ -z "$bad" ]; then
		pass "no WARNING, BUG or oops in the kernel log since the suite started"
	else
		echo "$bad" > "$OUT/$CHECK.why"
		dmesg | tail -n 80 > "$OUT/$CHECK.dmesg"
		fail "the kernel logged a warning, BUG or oops"
	fi
}

# ---- driver ------------------------------------------------------------------
if [ "${1:-}" = --list ]; then
	echo $ALL
	exit 0
fi
mkdir -p "$OUT"
if [ "${1:-}" = --one ]; then
	CHECK=$2
	DMESG0=$(dmesg 2> /dev/null | wc -l)
	trap topo_down EXIT
	"check_$CHECK"
	exit 0
fi

CHECKS=${*:-$ALL}
# kernel-log looks at what the kernel logged from here on
KMX_DMESG_START=${KMX_DMESG_START:-$(dmesg 2> /dev/null | wc -l)}
export KMX_DMESG_START
for c in $CHECKS; do
	case " $ALL " in *" $c "*) ;; *)
		echo "RESULT $c fail unknown check (checks: $ALL)"
		continue
		;;
	esac
	t0=$(up)
	rm -f "$OUT/$c".*
	# a hard bound on the whole check: two netxray runs and some
	timeout -s KILL $((TMO * 2 + 30)) bash "$0" --one "$c"
	rc=$?
	t1=$(up)
	for p in $(cat "$OUT/$c.pids" 2> /dev/null); do kill -KILL "$p" 2> /dev/null; done
	if [ ! -s "$OUT/$c.result" ]; then
		CHECK=$c
		result fail "the check did not finish (exit code $rc; killed after $((TMO * 2 + 30)) s?)"
	fi
	for ns in nxka nxkb nxkc nxkr nxks; do ip netns del $ns 2> /dev/null; done
	echo "TIME $c $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")"
done
