#!/usr/bin/env bash
# netxray http under a wrk load against nginx: scripts/bench-l7.sh http (see there).
exec "$(dirname "$0")/bench-l7.sh" http "$@"
