#!/usr/bin/env bash
# Benchmark: 2x overload for 60 s. vtest.avi paced at its 10 fps like a camera,
# a YOLOv8n detector (../shared/models, random weights, real cost) made to take
# about two frame periods with `simulate_ms`, then the tracker. Three schedules:
#   async     detection beside the stream, late results to the tracker
#   adaptive  in line, admission control against the 300 ms budget
#   interval  in line, detection on every second frame (DeepStream's way)
# Prints per schedule: frames in/out, detection run rate, capture-to-output
# latency p50/p99/max, deadline misses, queue high-water marks, and resident
# memory after the first second and at its peak.
# Usage: benches/bench-overload.sh [SECONDS] [MODEL]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
SECONDS_RUN="${1:-60}"
default_model=../shared/models/yolov8n-random-init.onnx
[ -f "$default_model" ] || default_model=tests/models/squares_yolov8.onnx
MODEL="$(realpath "${2:-$default_model}")"
cargo build --release --locked -q
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
frames=$((SECONDS_RUN * 10))
for mode in async adaptive interval; do
  case $mode in
    async) sched='async = true' ;;
    adaptive) sched='admission = true' ;;
    interval) sched=$'admission = false\ninterval = 2' ;;
  esac
  cat >"$tmp/$mode.toml" <<TOML
version = 1
name = "$mode"
budget_ms = 300
[[source]]
id = "cam0"
kind = "file"
location = "$PERCEPT_MEDIA/vtest.avi"
realtime = true
delivery = "lossless"
max_frames = $frames
[[stage]]
id = "detect"
kind = "detect"
layout = "yolov8"
simulate_ms = 120
$sched
[stage.model]
path = "$MODEL"
threads = 2
[[stage]]
id = "track"
kind = "track"
[[sink]]
kind = "jsonl"
path = "$tmp/$mode.jsonl"
TOML
  target/release/percept run "$tmp/$mode.toml" --no-progress --summary-json "$tmp/$mode.json" 2>/dev/null
  python3 - "$tmp/$mode.json" "$mode" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = next(x for x in s["stages"] if x["id"] == "detect")
k = s["sinks"][0]
m = s["memory"]
q = max(x["max_queue_depth"] for x in s["stages"])
print(f"{sys.argv[2]:>9}: {s['frames_in']} in, {s['frames_out']} out in {s['elapsed_s']:.1f} s; "
      f"detection ran on {d['run_rate'] * 100:.0f} % (p50 {d['latency']['p50_ms']:.0f} ms); "
      f"capture to output p50 {k['latency']['p50_ms']:.1f} / p99 {k['latency']['p99_ms']:.1f} / max {k['latency']['max_ms']:.1f} ms; "
      f"{k['deadline_miss_rate'] * 100:.1f} % past the budget; queue high-water {q}; "
      f"RSS {m['rss_settled_kb'] // 1024} MB after 1 s, peak {m['rss_max_kb'] // 1024} MB")
PY
done
