#!/usr/bin/env bash
# netxray dns under a dnsperf flood: scripts/bench-l7.sh dns (see there).
exec "$(dirname "$0")/bench-l7.sh" dns "$@"
