#!/usr/bin/env bash
# The whole test suite: unit tests, CLI tests and the end-to-end tests (which
# need root: they build network namespaces and attach BPF programs; run
# without root they say SKIPPED loudly). End-to-end tests serialise
# themselves with a lock file, so the default parallelism is safe.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace "$@"
