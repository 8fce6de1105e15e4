#!/usr/bin/env bash
# Compile every bpf/*.bpf.c into bpf/*.bpf.o: clang-19, stripped with llvm-strip-19 -g.
# The objects are committed and embedded in the binary, so `cargo build` needs no clang.
# Output is byte-for-byte reproducible: scripts/check-bpf.sh relies on it. The sources
# are compiled from one fixed directory, whatever the checkout's path: clang's BTF
# output orders some types by a hash that depends on the source path, even with
# -ffile-prefix-map (two clones of the same commit built different objects).
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG=${CLANG:-clang-19}
STRIP=${LLVM_STRIP:-llvm-strip-19}
out=$(realpath "${1:-bpf}")
build=/tmp/netxray-bpf-build
rm -rf "$build"
mkdir -p "$build"
cp -r bpf "$build/"
trap 'rm -rf "$build"' EXIT
for src in bpf/*.bpf.c; do
  obj="$out/$(basename "${src%.c}").o"
  (cd "$build" && "$CLANG" -target bpf -D__TARGET_ARCH_x86 -O2 -g -Wall -Werror \
    -ffile-prefix-map="$build"=. -Ibpf/include -c "$src" -o "$obj")
  "$STRIP" -g "$obj"
  echo "built ${1:-bpf}/$(basename "$obj")"
done
