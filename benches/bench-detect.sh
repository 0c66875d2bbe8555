#!/usr/bin/env bash
# Benchmark: percept's detection pipeline throughput against a bare loop that
# only calls session.run on one preprocessed tensor (same model, same threads).
#   percept: vtest.avi -> GStreamer decode -> preprocess -> ONNX Runtime -> decode + NMS -> JSON Lines
#   bare:    examples/bare_session_loop.rs
#   python:  benches/baseline.py (OpenCV VideoCapture + onnxruntime + numpy NMS, same model
#            and threads; opencv-python-headless is installed into the set-up venv for it)
# and percept's pipeline overhead: 1 - (time inside ONNX Runtime's run) / (wall time).
# Rounds alternate so machine noise hits both alike; prints median fps and the ratio.
# Usage: benches/bench-detect.sh [MODEL.onnx] [FRAMES] [ROUNDS] [THREADS] [LAYOUT]
# MODEL defaults to ../shared/models/yolov8n-random-init.onnx when present
# (real YOLOv8n architecture, random weights), else the tiny test model.
# LAYOUT (yolov8 | nanodet | end2end, default yolov8) goes to percept's detect
# stage and to baseline.py alike, with the same confidence (0.25), NMS IoU and
# letterbox pad: yolov8 keeps percept's defaults (pad 114, IoU 0.45, all classes);
# nanodet and end2end use pad 0 and classes 0,1,2,3,5,7 as the default pipelines
# do, and IoU 0.5 for nanodet (end2end has no NMS). E.g. the trained models:
#   benches/bench-detect.sh models/nanodet-m-416.onnx 300 3 2 nanodet
#   benches/bench-detect.sh models/centernet-512.onnx 300 3 2 end2end
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
default_model=../shared/models/yolov8n-random-init.onnx
[ -f "$default_model" ] || default_model=tests/models/squares_yolov8.onnx
MODEL="$(realpath "${1:-$default_model}")"
FRAMES="${2:-150}"
ROUNDS="${3:-3}"
THREADS="${4:-2}"
LAYOUT="${5:-yolov8}"
CONF=0.25
case "$LAYOUT" in
  yolov8) PAD=114; IOU=0.45; CLASSES="" ;;
  nanodet) PAD=0; IOU=0.5; CLASSES="0,1,2,3,5,7" ;;
  end2end) PAD=0; IOU=0.5; CLASSES="0,1,2,3,5,7" ;;
  *) echo "bench-detect.sh: LAYOUT must be yolov8, nanodet or end2end, not '$LAYOUT'" >&2; exit 2 ;;
esac
py_args=(--layout "$LAYOUT" --pad "$PAD" --conf "$CONF" --iou "$IOU")
classes_toml=""
if [ -n "$CLASSES" ]; then
  py_args+=(--classes "$CLASSES")
  classes_toml="classes = [${CLASSES//,/, }]"
fi
"$PERCEPT_PYTHON" -c "import cv2" 2>/dev/null || "$PERCEPT_PYTHON" -m pip install -q opencv-python-headless
cargo build --release --locked -q --example bare_session_loop
cargo build --release --locked -q
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/p.toml" <<TOML
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "$PERCEPT_MEDIA/vtest.avi"
max_frames = $FRAMES
[[stage]]
id = "detect"
kind = "detect"
layout = "$LAYOUT"
confidence = $CONF
iou = $IOU
max_detections = 100
$classes_toml
[stage.model]
path = "$MODEL"
threads = $THREADS
resize = "letterbox"
pad_value = $PAD
[[sink]]
kind = "jsonl"
path = "$tmp/out.jsonl"
TOML
bare=(); spin=(); perc=(); over=(); py=(); pylat=(); plat=()
for ((i = 0; i < ROUNDS; i++)); do
  bare+=("$(target/release/examples/bare_session_loop "$MODEL" "$FRAMES" "$THREADS")")
  spin+=("$(target/release/examples/bare_session_loop "$MODEL" "$FRAMES" "$THREADS" spin)")
  target/release/percept run "$tmp/p.toml" --no-progress --summary-json "$tmp/s.json" 2>/dev/null
  perc+=("$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['fps'], 3))" "$tmp/s.json")")
  over+=("$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(round(1 - s['inference_s'] / s['elapsed_s'], 4))" "$tmp/s.json")")
  plat+=("$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(round(s['sinks'][0]['latency']['p50_ms'], 1))" "$tmp/s.json")")
  "$PERCEPT_PYTHON" benches/baseline.py "$MODEL" "$PERCEPT_MEDIA/vtest.avi" "$FRAMES" "$THREADS" "${py_args[@]}" >"$tmp/py.json"
  py+=("$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['fps'], 3))" "$tmp/py.json")")
  pylat+=("$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['latency_p50_ms'], 1))" "$tmp/py.json")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mb=$(median "${bare[@]}"); ms=$(median "${spin[@]}"); mp=$(median "${perc[@]}")
mo=$(median "${over[@]}"); mpy=$(median "${py[@]}")
echo "model: $MODEL ($LAYOUT layout), $FRAMES frames of vtest.avi, $THREADS intra-op threads, $ROUNDS alternating rounds"
echo "  decode: confidence $CONF, NMS IoU $IOU, letterbox pad $PAD, classes ${CLASSES:-all}"
echo "  bare session.run loop : ${bare[*]} fps (median $mb)   [percept's session options]"
echo "  bare loop, spin-wait on: ${spin[*]} fps (median $ms)   [ONNX Runtime's default]"
echo "  percept run pipeline  : ${perc[*]} fps (median $mp)"
awk -v b="$mb" -v s="$ms" -v p="$mp" 'BEGIN { printf "  percept / bare throughput: %.3f (vs spin-wait loop %.3f)\n", p / b, p / s }'
echo "  percept pipeline overhead (1 - inference / wall): ${over[*]} (median $mo)"
echo "  python OpenCV+onnxruntime loop: ${py[*]} fps (median $mpy), per-frame latency p50 ${pylat[*]} ms"
echo "  percept capture-to-output latency p50: ${plat[*]} ms (lossless recording: includes queueing)"
awk -v p="$mp" -v y="$mpy" 'BEGIN { printf "  percept / python throughput: %.3f\n", p / y }'
python3 -c "import json,sys; p=sum(len(json.loads(l).get('detections') or []) for l in open(sys.argv[1]) if l.strip()); y=json.load(open(sys.argv[2]))['detections']; print(f'  detections in the last round (sanity check, same frames): percept {p}, python {y}')" "$tmp/out.jsonl" "$tmp/py.json"
