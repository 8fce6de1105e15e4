# Shared by the benchmark scripts (sourced): two namespaces A and B joined
# by a veth pair (va 198.18.7.1/24 in A, vb 198.18.7.2/24 in B), the
# cleanup of what a run started, netxray's CPU ticks, the median of the
# rounds' ratios. Set A, B and WORK before sourcing; NX and SRV hold the
# pids of netxray and the server while they run.
NX=
SRV=

bench_cleanup() {
  [ -n "$NX" ] && kill -INT "$NX" 2>/dev/null && wait "$NX" 2>/dev/null || true
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$WORK"
  if [ -n "${STATS_BEFORE:-}" ]; then sysctl -q kernel.bpf_stats_enabled="$STATS_BEFORE" || true; fi
}
trap bench_cleanup EXIT

bench_netns_pair() {
  ip netns add "$A"
  ip netns add "$B"
  ip link add va netns "$A" type veth peer name vb netns "$B"
  ip -n "$A" addr add 198.18.7.1/24 dev va
  ip -n "$B" addr add 198.18.7.2/24 dev vb
  for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
  ip -n "$A" link set va up
  ip -n "$B" link set vb up
}

# user + system clock ticks of a process
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# RATIO...: the median and the spread
bench_median() {
  python3 -c '
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(f"median ratio traced/untraced: {statistics.median(r):.3f} over {len(r)} rounds (spread {min(r):.3f}-{max(r):.3f})")
' "$@"
}
