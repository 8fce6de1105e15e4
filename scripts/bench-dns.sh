#!/usr/bin/env bash
# netxray dns benchmark (root; not part of CI). A query flood between two
# namespaces: dnsperf in A asking dnsmasq in B (both Debian packages), as
# fast as they go, untraced vs with `netxray dns` running (JSON to a file),
# alternating, ROUNDS times. Prints per round: queries/s untraced and
# traced, their ratio, queries reported vs completed, records lost, and
# netxray's CPU time per query (user space).
# Target (issue #18): median ratio >= 0.90, every query reported.
#
#   ROUNDS=5 SECS=5 [CLIENTS=1] scripts/bench-dns.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CLIENTS=${CLIENTS:-1}
scripts/setup.sh bench
cargo build --release -q -p netxray
BIN=$PWD/target/release/netxray
A=nxbench-dns-a
B=nxbench-dns-b
WORK=$(mktemp -d)
NX=
SRV=

cleanup() {
  [ -n "$NX" ] && kill -INT "$NX" 2>/dev/null && wait "$NX" 2>/dev/null || true
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip link add va netns "$A" type veth peer name vb netns "$B"
ip -n "$A" addr add 198.18.7.1/24 dev va
ip -n "$B" addr add 198.18.7.2/24 dev vb
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set va up
ip -n "$B" link set vb up

ip netns exec "$B" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
  --listen-address=198.18.7.2 --address=/bench.test/198.18.7.9 --pid-file= --user=root \
  --cache-size=1000 --dns-forward-max=10000 2> /dev/null &
SRV=$!
for i in $(seq 1 100); do echo "q$i.bench.test A"; done > "$WORK/queries"
until ip netns exec "$A" dig +short +tries=1 +timeout=1 @198.18.7.2 q1.bench.test | grep -q 198.18.7.9; do sleep 0.1; done

# dnsperf: queries completed per second (its own count).
flood() {
  ip netns exec "$A" dnsperf -s 198.18.7.2 -d "$WORK/queries" -l "$SECS" -c "$CLIENTS" -q 64 2> /dev/null |
    awk '/Queries completed:/ {print $3}'
}
flood > /dev/null   # warm-up
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

printf '%5s %10s %10s %6s %9s %9s %6s %12s\n' round untraced traced ratio reported completed lost us_cpu/query
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  u=$(flood)
  rm -f "$WORK/ready"
  "$BIN" dns -o json --ready-file "$WORK/ready" 'host 198.18.7.2 and port 53' > "$WORK/out.json" 2> "$WORK/err" &
  NX=$!
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
  c0=$(cpu_ticks "$NX")
  t=$(flood)
  # Until every completed query is reported (or 5 s).
  for _ in $(seq 100); do
    [ "$(grep -c '"type":"dns"' "$WORK/out.json" || true)" -ge "$t" ] && break
    sleep 0.05
  done
  c1=$(cpu_ticks "$NX")
  kill -INT "$NX"; wait "$NX" || true; NX=
  got=$(grep -c '"type":"dns","ts_ns":[0-9]*,"transport":"udp".*"status":"answered"' "$WORK/out.json" || true)
  lost=$(sed -n 's/.* \([0-9]*\) lost .*/\1/p' "$WORK/err")
  python3 - "$r" "$u" "$t" "$got" "$lost" "$c0" "$c1" "$HZ" "$SECS" <<'EOF'
import sys
r, u, t, got, lost, c0, c1, hz, secs = sys.argv[1:]
u, t, got = int(u), int(t), int(got)
cpu_us = (int(c1) - int(c0)) / int(hz) * 1e6 / max(t, 1)
s = float(secs)
print(f"{r:>5} {u/s:>10.0f} {t/s:>10.0f} {t/max(u,1):6.3f} {got:>9} {t:>9} {lost or '?':>6} {cpu_us:12.1f}")
EOF
  ratios+=("$(python3 -c "print($t/max($u,1))")")
done
python3 -c '
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(f"median ratio traced/untraced: {statistics.median(r):.3f} over {len(r)} rounds (spread {min(r):.3f}-{max(r):.3f})")
' "${ratios[@]}"
