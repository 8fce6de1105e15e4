#!/usr/bin/env bash
# netxray dns / netxray http benchmark (root; not part of CI), PROTO dns or
# http: a load between two namespaces, untraced vs with netxray running
# (JSON to a file), alternating, ROUNDS times.
#   dns:  dnsperf in A (64 queries in flight) asking dnsmasq in B;
#   http: wrk in A (1 thread, CONNS keep-alive connections) against nginx
#         in B (one worker, a 17-byte answer from memory).
# Prints per round: operations/s untraced and traced, their ratio, records
# reported vs operations completed, records lost, and netxray's CPU time
# per operation (user space). Target (issue #18): median ratio >= 0.90,
# everything reported.
#
#   ROUNDS=5 SECS=5 [CONNS=8] scripts/bench-l7.sh dns|http
set -euo pipefail
cd "$(dirname "$0")/.."
PROTO=${1:?usage: bench-l7.sh dns|http}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CONNS=${CONNS:-8}
# PIN=1: the load (client and server) on CPU 0, netxray on CPU 1: what the
# traced application feels when the host has a core for the observer.
PIN=${PIN:-0}
if [ "$PIN" = 1 ]; then APP=(taskset -c 0); OBS=(taskset -c 1); else APP=(); OBS=(); fi
scripts/setup.sh bench
cargo build --release -q -p netxray
BIN=$PWD/target/release/netxray
A=nxbench-$PROTO-a
B=nxbench-$PROTO-b
WORK=$(mktemp -d)
. scripts/bench-lib.sh
bench_netns_pair

case $PROTO in
dns)
  ip netns exec "$B" "${APP[@]}" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
    --listen-address=198.18.7.2 --address=/bench.test/198.18.7.9 --pid-file= --user=root \
    --cache-size=1000 --dns-forward-max=10000 2> /dev/null &
  SRV=$!
  for i in $(seq 1 100); do echo "q$i.bench.test A"; done > "$WORK/queries"
  until ip netns exec "$A" dig +short +tries=1 +timeout=1 @198.18.7.2 q1.bench.test | grep -q 198.18.7.9; do sleep 0.1; done
  # dnsperf: queries completed (its own count)
  load() {
    ip netns exec "$A" "${APP[@]}" dnsperf -s 198.18.7.2 -d "$WORK/queries" -l "$SECS" -q 64 2> /dev/null |
      awk '/Queries completed:/ {print $3}'
  }
  NXARGS=(dns -o json 'host 198.18.7.2 and port 53')
  RECORD='"type":"dns"'
  DONE='"status":"answered"'
  ;;
http)
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
  ip netns exec "$B" "${APP[@]}" nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
  SRV=$!
  until ip netns exec "$A" curl -s -o /dev/null http://198.18.7.2:8080/; do sleep 0.1; done
  # wrk: requests completed (its own count)
  load() {
    ip netns exec "$A" "${APP[@]}" wrk -t 1 -c "$CONNS" -d "${SECS}s" http://198.18.7.2:8080/bench 2> /dev/null |
      awk '/requests in/ {print $1}'
  }
  NXARGS=(http -o json 'port 8080')
  RECORD='"type":"http"'
  # wrk's connections still open at the end report their last request
  # without a response: count the answered ones.
  DONE='"outcome":"answered"'
  ;;
*)
  echo "bench-l7.sh: dns or http, not '$PROTO'" >&2
  exit 2
  ;;
esac

load > /dev/null   # warm-up
HZ=$(getconf CLK_TCK)
printf '%5s %10s %10s %6s %9s %9s %6s %12s\n' round untraced traced ratio reported completed lost us_cpu/op
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  u=$(load)
  rm -f "$WORK/ready"
  "${OBS[@]}" "$BIN" "${NXARGS[@]}" --ready-file "$WORK/ready" > "$WORK/out.json" 2> "$WORK/err" &
  NX=$!
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
  c0=$(cpu_ticks "$NX")
  t=$(load)
  # until every completed operation is reported (or 5 s)
  for _ in $(seq 100); do
    [ "$(grep -c "$RECORD" "$WORK/out.json" || true)" -ge "$t" ] && break
    sleep 0.05
  done
  c1=$(cpu_ticks "$NX")
  kill -INT "$NX"; wait "$NX" || true; NX=
  got=$(grep "$RECORD" "$WORK/out.json" | grep -c "$DONE" || true)
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
bench_median "${ratios[@]}"
