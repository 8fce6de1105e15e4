#!/usr/bin/env bash
# The speed benchmark (root): UDP-64 across veth, untraced vs traced, as
# ratios. Figures are recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p netxray -p netxray-bench
exec ./target/release/netxray-bench "$@" ./target/release/netxray
