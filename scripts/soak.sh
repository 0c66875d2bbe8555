#!/usr/bin/env bash
# Soak test: the committed image sequence (tests/media/img1, a moving square)
# looped forever at 30 fps in real time, through detection (square_e2e.onnx)
# and tracking, for MINUTES minutes. Prints each minute the resident memory
# and the capture-to-output latency (p50/p99 of the run so far), then the
# growth of RSS over the run. Usage: scripts/soak.sh MINUTES
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
minutes="${1:?usage: scripts/soak.sh MINUTES}"
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
cargo build --release --locked --quiet
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/soak.toml" <<TOML
version = 1
name = "soak"
[[source]]
id = "seq"
kind = "gst"
live = true
launch = "multifilesrc location=$PWD/tests/media/img1/%06d.jpg start-index=1 stop-index=20 loop=true caps=image/jpeg,framerate=30/1 ! jpegdec ! identity sync=true"
[[stage]]
id = "detect"
kind = "detect"
layout = "end2end"
[stage.model]
path = "$PWD/tests/models/square_e2e.onnx"
threads = 1
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
[[stage]]
id = "track"
kind = "track"
[[sink]]
kind = "null"
path = "-"
TOML
timeout --signal=INT "$((minutes * 60 + 2))" ./target/release/percept run "$work/soak.toml" \
    --stats-every 60 --metrics-out "$work/metrics.jsonl" --no-progress 2> "$work/stderr" || true
python3 - "$work/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("no metrics written")
print("minute  frames_out  rss_MB  p50_ms  p99_ms")
for i, r in enumerate(rows, 1):
    lat = r["sinks"][0]["latency"]
    print(f"{i:6d}  {r['frames_out']:10d}  {r['memory']['rss_end_kb'] / 1024:6.1f}  {lat['p50_ms']:6.2f}  {lat['p99_ms']:6.2f}")
first, last = rows[0]["memory"]["rss_end_kb"], rows[-1]["memory"]["rss_end_kb"]
print(f"RSS growth from minute 1 to {len(rows)}: {(last - first) / 1024:+.1f} MB")
PY
