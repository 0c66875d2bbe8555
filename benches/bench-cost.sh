#!/usr/bin/env bash
# Benchmark: what percept costs beyond the model, in three comparisons and a
# memory check, run side by side (every command once per round, rounds
# alternating so machine noise hits all alike); prints medians and ratios as a
# Markdown table.
#
#  1. decode only: `gst-launch-1.0 filesrc ! decodebin ! videoconvert !
#     video/x-raw,format=RGB ! fakesink` against `percept run
#     pipelines/decode-only.toml` (the same decode into an appsink, one JSON
#     Lines record per frame); wall and CPU (user + sys) of the whole process,
#     start-up included, on vtest.avi (795 frames, 768x576) and
#     on a long H.264 stream (vtest.avi five times, 3975 frames, written once).
#  2. pipeline cost: a YOLOv8-layout model that costs nothing (a constant
#     output, benches/make_constant_model.py: 640x640, 8400 cells, 12 people)
#     plus ByteTrack on vtest.avi: percept against the Python loop users write
#     (benches/baseline.py --track: OpenCV decode, letterbox, onnxruntime,
#     numpy decode and NMS, ByteTrack); frames per second of each one's loop
#     and CPU per frame of the whole process.
#  3. equal work with a real detector (NanoDet-m 416 from models/, and
#     YOLOv8n 640 when $PERCEPT_YOLOV8N names its ONNX file): percept's frames per second
#     in steady state (first to last record, as the other two time only their
#     loops; also over the whole run) and its time outside ONNX Runtime
#     (1 - inference / wall), against a bare
#     session.run loop on one pre-decoded tensor (examples/bare_session_loop.rs)
#     and the Python loop; 2 intra-op threads everywhere. The share outside
#     ONNX Runtime is given over the whole run (start-up and model loading
#     included) and in steady state (from the first record written to the last).
#     Then the same cores used another way: percept's detect stage with
#     `instances = 2` and 1 thread each (two sessions, two frames at once)
#     against the bare loop run the same way (`instances=2`: two 1-thread
#     sessions at once) and against the 2-thread bare loop above (the new
#     build only: `--before` binaries may not know `instances`).
#  4. memory: percept's resident set after the first second, at its peak and
#     at the end of a 60 s paced run of pipelines/default.toml (600 frames of
#     vtest.avi at 10 fps, NanoDet-m + ByteTrack), from --summary-json.
#
# Usage: benches/bench-cost.sh [ROUNDS] [--before BIN] [--no-memory]
#   ROUNDS       rounds of every command (default 3; medians over them)
#   --before BIN also runs another percept binary (e.g. a build of an earlier
#                commit) in every round, for a before/after table
#   --no-memory  skips the 60 s memory run(s)
# About 2 minutes a round, plus 1 minute per binary for memory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
ROUNDS=3; BEFORE=""; MEMORY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --before) BEFORE="$(realpath "$2")"; shift 2 ;;
    --no-memory) MEMORY=0; shift ;;
    [0-9]*) ROUNDS="$1"; shift ;;
    *) echo "bench-cost.sh: unknown argument '$1' (usage: [ROUNDS] [--before BIN] [--no-memory])" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
"$PERCEPT_PYTHON" -c "import cv2, scipy" 2>/dev/null || "$PERCEPT_PYTHON" -m pip install -q opencv-python-headless scipy
cargo build --release --locked -q
cargo build --release --locked -q --example bare_session_loop
AFTER="$PWD/target/release/percept"
BARE="$PWD/target/release/examples/bare_session_loop"
bins=(after); [ -n "$BEFORE" ] && bins=(before after)
bin_of() { if [ "$1" = before ]; then echo "$BEFORE"; else echo "$AFTER"; fi; }

cache="${PERCEPT_CACHE:-$HOME/.cache/percept}/bench"
mkdir -p "$cache"
VTEST="$PERCEPT_MEDIA/vtest.avi"
LONG="$cache/vtest-x5-h264.mkv"
if [ ! -s "$LONG" ]; then
  src=""
  for _ in 1 2 3 4 5; do src+=" filesrc location=$VTEST ! decodebin ! videoconvert ! c."; done
  # shellcheck disable=SC2086
  gst-launch-1.0 -q concat name=c ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=fast \
    ! h264parse ! matroskamux ! filesink location="$LONG.part" $src >/dev/null
  mv "$LONG.part" "$LONG"
fi
CONST="$cache/constant-yolov8.onnx"
[ -s "$CONST" ] || "$PERCEPT_PYTHON" benches/make_constant_model.py "$CONST"
NANODET="$PWD/models/nanodet-m-416.onnx"
YOLOV8N="${PERCEPT_YOLOV8N:-}"
models=(nanodet); [ -n "$YOLOV8N" ] && [ -f "$YOLOV8N" ] && { YOLOV8N="$(realpath "$YOLOV8N")"; models+=(yolov8n); }
DET_FRAMES=100

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# A detect (+ track) pipeline on vtest.avi: MODEL LAYOUT PAD FRAMES TRACK OUT [THREADS] [INSTANCES]
pipeline() {
  local classes=""
  [ "$2" = nanodet ] && classes="classes = [0, 1, 2, 3, 5, 7]"
  cat <<TOML
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "$VTEST"
max_frames = $4
[[stage]]
id = "detect"
kind = "detect"
layout = "$2"
confidence = 0.25
iou = $([ "$2" = nanodet ] && echo 0.5 || echo 0.45)
max_detections = 100
instances = ${8:-1}
$classes
[stage.model]
path = "$1"
threads = ${7:-2}
resize = "letterbox"
pad_value = $3
$([ "$5" = 1 ] && printf '[[stage]]\nid = "tracks"\nkind = "track"\n')
[[sink]]
kind = "jsonl"
path = "$6"
TOML
}
pipeline "$CONST" yolov8 114 795 1 "$tmp/cost.jsonl" >"$tmp/cost.toml"
pipeline "$NANODET" nanodet 0 "$DET_FRAMES" 0 "$tmp/nanodet.jsonl" >"$tmp/nanodet.toml"
pipeline "$NANODET" nanodet 0 "$DET_FRAMES" 0 "$tmp/nanodet-i2.jsonl" 1 2 >"$tmp/nanodet-i2.toml"
if [ -n "$YOLOV8N" ] && [ -f "$YOLOV8N" ]; then
  pipeline "$YOLOV8N" yolov8 114 "$DET_FRAMES" 0 "$tmp/yolov8n.jsonl" >"$tmp/yolov8n.toml"
  pipeline "$YOLOV8N" yolov8 114 "$DET_FRAMES" 0 "$tmp/yolov8n-i2.jsonl" 1 2 >"$tmp/yolov8n-i2.toml"
fi

declare -A V   # key -> space-separated values, one per round
add() { V[$1]+="$2 "; }
# Wall and CPU (user + sys) ms of one command: "wall cpu".
measure() { /usr/bin/time -f '%e %U %S' -o "$tmp/t" "$@" >"$tmp/stdout" 2>"$tmp/stderr" || { cat "$tmp/stderr" >&2; exit 1; }; awk '{printf "%d %d\n", $1*1000, ($2+$3)*1000}' "$tmp/t"; }
summary() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($1)" "$tmp/s.json"; }
# Steady-state share of time outside ONNX Runtime, %: 1 - (inference per
# frame) / (wall per frame between the first and the last record written).
steady() { python3 -c "
import json, sys
lines = open(sys.argv[1]).read().splitlines()
first, last = json.loads(lines[0])['emit_wall_ns'], json.loads(lines[-1])['emit_wall_ns']
s = json.load(open(sys.argv[2]))
print(round(100 * (1 - (s['inference_s'] / s['inference_runs']) / ((last - first) / 1e9 / (len(lines) - 1))), 2))" "$1" "$tmp/s.json"; }
# Steady-state frames per second: records between the first and the last one
# written, over the time between them (no start-up, model loading or warm-up,
# as the bare loop and the Python loop time only their loops).
steady_fps() { python3 -c "
import json, sys
lines = open(sys.argv[1]).read().splitlines()
first, last = json.loads(lines[0])['emit_wall_ns'], json.loads(lines[-1])['emit_wall_ns']
print(round((len(lines) - 1) / ((last - first) / 1e9), 2))" "$1"; }
pyfield() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['$1'])" "$tmp/stdout"; }

for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r of $ROUNDS" >&2
  for f in vtest long; do
    file="$VTEST"; [ $f = long ] && file="$LONG"
    read -r w c < <(measure gst-launch-1.0 -q filesrc location="$file" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! fakesink)
    add "dec_${f}_gst_wall" "$w"; add "dec_${f}_gst_cpu" "$c"
    for b in "${bins[@]}"; do
      read -r w c < <(measure "$(bin_of "$b")" run pipelines/decode-only.toml -i "$file" -o "$tmp/dec.jsonl" --no-progress)
      add "dec_${f}_${b}_wall" "$w"; add "dec_${f}_${b}_cpu" "$c"
    done
  done
  for b in "${bins[@]}"; do
    read -r _ c < <(measure "$(bin_of "$b")" run "$tmp/cost.toml" --no-progress --summary-json "$tmp/s.json")
    add "cost_${b}_fps" "$(summary "s['fps']")"; add "cost_${b}_cpu" "$(awk -v c="$c" -v n="$(summary "s['frames_out']")" 'BEGIN{printf "%.3f", c/n}')"
  done
  read -r _ c < <(measure "$PERCEPT_PYTHON" benches/baseline.py "$CONST" "$VTEST" 795 2 --track)
  add cost_py_fps "$(pyfield fps)"; add cost_py_cpu "$(awk -v c="$c" -v n="$(pyfield frames)" 'BEGIN{printf "%.3f", c/n}')"
  for m in "${models[@]}"; do
    if [ "$m" = nanodet ]; then model="$NANODET"; py=(--layout nanodet --pad 0 --iou 0.5 --classes 0,1,2,3,5,7); else model="$YOLOV8N"; py=(--layout yolov8 --pad 114); fi
    add "${m}_bare_fps" "$("$BARE" "$model" "$DET_FRAMES" 2)"
    for b in "${bins[@]}"; do
      measure "$(bin_of "$b")" run "$tmp/$m.toml" --no-progress --summary-json "$tmp/s.json" >/dev/null
      add "${m}_${b}_fps" "$(summary "s['fps']")"
      add "${m}_${b}_steady_fps" "$(steady_fps "$tmp/$m.jsonl")"
      add "${m}_${b}_out" "$(summary "round(100 * (1 - s['inference_s'] / s['elapsed_s']), 2)")"
      add "${m}_${b}_steady" "$(steady "$tmp/$m.jsonl")"
    done
    measure "$PERCEPT_PYTHON" benches/baseline.py "$model" "$VTEST" "$DET_FRAMES" 2 "${py[@]}" --conf 0.25 >/dev/null
    add "${m}_py_fps" "$(pyfield fps)"
    add "${m}_bare2_fps" "$("$BARE" "$model" "$DET_FRAMES" 1 instances=2)"
    measure "$AFTER" run "$tmp/$m-i2.toml" --no-progress --summary-json "$tmp/s.json" >/dev/null
    add "${m}_i2_fps" "$(summary "s['fps']")"
    add "${m}_i2_steady_fps" "$(steady_fps "$tmp/$m-i2.jsonl")"
  done
done

if [ "$MEMORY" = 1 ]; then
  sed "s|kind = \"file\"|kind = \"file\"\nmax_frames = 600|; s|\"\.\./|\"$PWD/|g" pipelines/default.toml >"$tmp/memory.toml"
  for b in "${bins[@]}"; do
    echo "memory: 60 s paced run ($b)" >&2
    "$(bin_of "$b")" run "$tmp/memory.toml" --realtime -o "$tmp/mem.jsonl" --no-progress --summary-json "$tmp/s.json" 2>/dev/null
    add "mem_${b}" "$(summary "'%d / %d / %d' % (s['memory']['rss_settled_kb'] // 1024, s['memory']['rss_max_kb'] // 1024, s['memory']['rss_end_kb'] // 1024)")"
  done
fi

med() { printf '%s\n' ${V[$1]} | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN { printf "%.3f", a / b }'; }
fmt() { awk -v v="$(med "$1")" -v d="${2:-0}" 'BEGIN { printf "%.*f", d, v }'; }
echo
echo "$ROUNDS alternating rounds, medians; $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
hdr="| measure | GStreamer / Python / bare loop |"; sep="|---|---|"
for b in "${bins[@]}"; do hdr+=" percept $b | ratio ($b) |"; sep+="---|---|"; done
echo "$hdr"; echo "$sep"
for f in vtest long; do
  name="vtest.avi, 795 frames"; [ $f = long ] && name="H.264 768x576, 3975 frames"
  for k in wall cpu; do
    row="| decode only, $name: $k ms (percept / gst-launch) | $(fmt "dec_${f}_gst_$k") |"
    for b in "${bins[@]}"; do row+=" $(fmt "dec_${f}_${b}_$k") | $(ratio "dec_${f}_${b}_$k" "dec_${f}_gst_$k") |"; done
    echo "$row"
  done
done
row="| constant model + ByteTrack: frames/s (percept / Python) | $(fmt cost_py_fps 1) |"
for b in "${bins[@]}"; do row+=" $(fmt "cost_${b}_fps" 1) | $(ratio "cost_${b}_fps" cost_py_fps) |"; done; echo "$row"
row="| constant model + ByteTrack: CPU ms per frame (Python / percept) | $(fmt cost_py_cpu 2) |"
for b in "${bins[@]}"; do row+=" $(fmt "cost_${b}_cpu" 2) | $(ratio cost_py_cpu "cost_${b}_cpu") |"; done; echo "$row"
for m in "${models[@]}"; do
  row="| $m, $DET_FRAMES frames: frames/s in steady state (percept / bare session.run loop) | $(fmt "${m}_bare_fps" 1) |"
  for b in "${bins[@]}"; do row+=" $(fmt "${m}_${b}_steady_fps" 1) | $(ratio "${m}_${b}_steady_fps" "${m}_bare_fps") |"; done; echo "$row"
  row="| $m: frames/s in steady state (percept / Python loop) | $(fmt "${m}_py_fps" 1) |"
  for b in "${bins[@]}"; do row+=" $(fmt "${m}_${b}_steady_fps" 1) | $(ratio "${m}_${b}_steady_fps" "${m}_py_fps") |"; done; echo "$row"
  row="| $m: frames/s over the whole run, start-up and model loading included (percept / bare loop) | $(fmt "${m}_bare_fps" 1) |"
  for b in "${bins[@]}"; do row+=" $(fmt "${m}_${b}_fps" 1) | $(ratio "${m}_${b}_fps" "${m}_bare_fps") |"; done; echo "$row"
  row="| $m: time outside ONNX Runtime, % of wall (whole run, start-up included) | — |"
  for b in "${bins[@]}"; do row+=" $(fmt "${m}_${b}_out" 2) | |"; done; echo "$row"
  row="| $m: time outside ONNX Runtime, % of wall (steady state: first to last record) | — |"
  for b in "${bins[@]}"; do row+=" $(fmt "${m}_${b}_steady" 2) | |"; done; echo "$row"
  # `instances = 2` rows: the new build only.
  lead=""; [ -n "$BEFORE" ] && lead=" — | |"
  echo "| $m, \`instances = 2\` × 1 thread: frames/s in steady state (percept / bare loop, 2 sessions × 1 thread) | $(fmt "${m}_bare2_fps" 1) |$lead $(fmt "${m}_i2_steady_fps" 1) | $(ratio "${m}_i2_steady_fps" "${m}_bare2_fps") |"
  echo "| $m, \`instances = 2\` × 1 thread: frames/s in steady state (percept / bare loop, 1 session × 2 threads) | $(fmt "${m}_bare_fps" 1) |$lead $(fmt "${m}_i2_steady_fps" 1) | $(ratio "${m}_i2_steady_fps" "${m}_bare_fps") |"
  echo "| $m, \`instances = 2\` × 1 thread: frames/s over the whole run (percept / bare loop, 1 session × 2 threads) | $(fmt "${m}_bare_fps" 1) |$lead $(fmt "${m}_i2_fps" 1) | $(ratio "${m}_i2_fps" "${m}_bare_fps") |"
done
if [ "$MEMORY" = 1 ]; then
  row="| memory, 60 s paced default.toml: RSS MiB after 1 s / peak / end | — |"
  for b in "${bins[@]}"; do row+=" ${V[mem_$b]} | |"; done; echo "$row"
fi
