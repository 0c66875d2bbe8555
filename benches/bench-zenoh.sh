#!/usr/bin/env bash
# Zenoh on loopback against one process: records/s through the zenoh sink,
# camera node -> inference node frames/s (vtest.avi 768x576 as JPEG), and
# capture -> arrival / output latency paced at 10 fps. Release build;
# medians of ROUNDS alternating rounds (default 3). See benches/zenoh.rs.
#   bash benches/bench-zenoh.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
cargo bench --locked --bench zenoh -- "${1:-3}"
