#!/usr/bin/env bash
# Compile every bpf/*.bpf.c into bpf/*.bpf.o: clang-19, stripped with llvm-strip-19 -g.
# The objects are committed and embedded in the binary, so `cargo build` needs no clang.
# Output is byte-for-byte reproducible (-ffile-prefix-map): scripts/check-bpf.sh relies on it.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG=${CLANG:-clang-19}
STRIP=${LLVM_STRIP:-llvm-strip-19}
out=${1:-bpf}
for src in bpf/*.bpf.c; do
  obj="$out/$(basename "${src%.c}").o"
  "$CLANG" -target bpf -D__TARGET_ARCH_x86 -O2 -g -Wall -Werror \
    -ffile-prefix-map="$PWD"=. -Ibpf/include -c "$src" -o "$obj"
  "$STRIP" -g "$obj"
  echo "built $obj"
done
