#!/usr/bin/env bash
# netxray http benchmark (root; not part of CI). A keep-alive HTTP load
# between two namespaces: wrk in A against nginx in B (Debian packages),
# untraced vs with `netxray http` running (JSON to a file), alternating,
# ROUNDS times. Prints per round: requests/s untraced and traced, their
# ratio, exchanges reported vs requests wrk completed, records lost, and
# netxray's CPU time per request (user space).
# Target (issue #18): median ratio >= 0.90, every request reported.
#
#   ROUNDS=5 SECS=5 [CONNS=8] scripts/bench-http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CONNS=${CONNS:-8}
scripts/setup.sh bench
cargo build --release -q -p netxray
BIN=$PWD/target/release/netxray
A=nxbench-http-a
B=nxbench-http-b
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

# nginx: one worker, a small fixed response from memory (no file, no sendfile).
cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK;
  proxy_temp_path $WORK;
  fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK;
  scgi_temp_path $WORK;
  server {
    listen 198.18.7.2:8080;
    keepalive_requests 1000000;
    location / { return 200 "hello from nginx\n"; }
  }
}
EOF
ip netns exec "$B" nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
SRV=$!
until ip netns exec "$A" curl -s -o /dev/null http://198.18.7.2:8080/; do sleep 0.1; done

# wrk: requests completed (its own count).
load() {
  ip netns exec "$A" wrk -t 1 -c "$CONNS" -d "${SECS}s" http://198.18.7.2:8080/bench 2> /dev/null |
    awk '/requests in/ {print $1}'
}
load > /dev/null   # warm-up
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

printf '%5s %10s %10s %6s %9s %9s %6s %12s\n' round untraced traced ratio reported completed lost us_cpu/req
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  u=$(load)
  rm -f "$WORK/ready"
  "$BIN" http -o json --ready-file "$WORK/ready" 'port 8080' > "$WORK/out.json" 2> "$WORK/err" &
  NX=$!
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
  c0=$(cpu_ticks "$NX")
  t=$(load)
  for _ in $(seq 100); do
    [ "$(grep -c '"type":"http"' "$WORK/out.json" || true)" -ge "$t" ] && break
    sleep 0.05
  done
  c1=$(cpu_ticks "$NX")
  kill -INT "$NX"; wait "$NX" || true; NX=
  # wrk's connections still open at the end report their last request
  # without a response: count the answered ones.
  got=$(grep -c '"outcome":"answered"' "$WORK/out.json" || true)
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
