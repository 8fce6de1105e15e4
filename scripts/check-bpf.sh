#!/usr/bin/env bash
# Rebuild the BPF objects into a temporary directory and fail if they differ
# from the committed ones (someone changed bpf/*.c or abi.h without rebuilding).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/build-bpf.sh "$tmp" >/dev/null
status=0
for obj in bpf/*.bpf.o; do
  if ! cmp -s "$obj" "$tmp/$(basename "$obj")"; then
    echo "check-bpf: $obj differs from a rebuild: run scripts/build-bpf.sh and commit" >&2
    status=1
  fi
done
for src in bpf/*.bpf.c; do
  [ -f "${src%.c}.o" ] || { echo "check-bpf: ${src%.c}.o is missing" >&2; status=1; }
done
[ $status -eq 0 ] && echo "check-bpf: committed objects match a rebuild"
exit $status
