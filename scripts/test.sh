#!/usr/bin/env bash
# The whole test suite: unit tests, CLI tests and the end-to-end tests (which
# need root: they build network namespaces and attach BPF programs; run
# without root they say SKIPPED loudly). End-to-end tests serialise
# themselves with a lock file, so the default parallelism is safe.
# As root it first installs the Debian packages the tests use, when missing
# (scripts/setup.sh test). The kernel matrix (stock Debian kernels under
# qemu) is scripts/kmatrix/run.sh; .ci/run runs both.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
	scripts/setup.sh test
fi
cargo build --workspace --all-targets
cargo test --workspace "$@"
