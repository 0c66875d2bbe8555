#!/usr/bin/env bash
# Benchmark: batching across cameras. Four streams of vtest.avi (768x576, read
# as fast as they decode) through one trained NanoDet-m (models/, made
# batch-capable by benches/batch_axis.py: the same weights with a dynamic batch
# axis), unbatched and with batch = { max = 4, timeout_ms = 50 }, in
# alternating rounds. Both runs use the same model file and threads.
# Prints per mode the medians over the rounds of frames per second and of the
# capture-to-output p50/p99 (from --summary-json), the mean batch size, the
# time in ONNX Runtime, and how far the batched detections are from the
# unbatched ones (first round, every record).
# Usage: benches/bench-batch.sh [FRAMES_PER_STREAM] [ROUNDS] [THREADS]
#   PERCEPT_BIN=path  use this binary instead of building target/release/percept
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
FRAMES="${1:-150}"
ROUNDS="${2:-3}"
THREADS="${3:-2}"
if [ -n "${PERCEPT_BIN:-}" ]; then
  BIN="$(realpath "$PERCEPT_BIN")"
else
  cargo build --release --locked -q
  BIN="$PWD/target/release/percept"
fi
[ -s models/nanodet-m-416.onnx ] || { echo "models/nanodet-m-416.onnx missing: bash scripts/fetch_models.sh" >&2; exit 1; }
mkdir -p target/bench-models
MODEL="$PWD/target/bench-models/nanodet-m-416-batchN.onnx"
if [ ! -s "$MODEL" ] || [ models/nanodet-m-416.onnx -nt "$MODEL" ] || [ benches/batch_axis.py -nt "$MODEL" ]; then
  "$PERCEPT_PYTHON" benches/batch_axis.py models/nanodet-m-416.onnx "$MODEL"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

write_pipeline() { # MODE BATCH_LINE
  {
    echo "version = 1"
    echo "name = \"$1\""
    for i in 0 1 2 3; do
      printf '[[source]]\nid = "cam%s"\nkind = "file"\nlocation = "%s"\nformat = "RGB"\nmax_frames = %s\n' \
        "$i" "$PERCEPT_MEDIA/vtest.avi" "$FRAMES"
    done
    cat <<TOML
[[stage]]
id = "detect"
kind = "detect"
layout = "nanodet"
confidence = 0.1
iou = 0.5
classes = [0, 1, 2, 3, 5, 7]
$2
[stage.model]
path = "$MODEL"
threads = $THREADS
[[sink]]
kind = "jsonl"
path = "$tmp/$1.jsonl"
TOML
  } >"$tmp/$1.toml"
}
write_pipeline unbatched ""
write_pipeline batched "batch = { max = 4, timeout_ms = 50 }"

echo "bench-batch: 4 x $FRAMES frames of vtest.avi, NanoDet-m 416 (dynamic batch axis), $THREADS ONNX Runtime threads, $ROUNDS rounds; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  for mode in unbatched batched; do
    "$BIN" run "$tmp/$mode.toml" --no-progress --summary-json "$tmp/$mode.$round.json" 2>"$tmp/$mode.$round.log" \
      || { cat "$tmp/$mode.$round.log" >&2; exit 1; }
    if [ "$round" = 1 ]; then cp "$tmp/$mode.jsonl" "$tmp/$mode.first.jsonl"; fi
  done
done
python3 - "$tmp" "$ROUNDS" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
def med(xs):
    return statistics.median(xs)
rows = {}
for mode in ("unbatched", "batched"):
    runs = [json.load(open(f"{tmp}/{mode}.{r}.json")) for r in range(1, rounds + 1)]
    d = [next(s for s in r["stages"] if s["id"] == "detect") for r in runs]
    rows[mode] = dict(
        fps=med([r["fps"] for r in runs]),
        p50=med([r["sinks"][0]["latency"]["p50_ms"] for r in runs]),
        p99=med([r["sinks"][0]["latency"]["p99_ms"] for r in runs]),
        run_p50=med([x["latency"]["p50_ms"] for x in d]),
        batch=med([x["mean_batch"] if x["batches"] else 1.0 for x in d]),
        ort=med([r["inference_s"] / max(r["inference_runs"], 1) * 1e3 for r in runs]),
        per_frame=med([r["inference_s"] / max(r["frames_out"], 1) * 1e3 for r in runs]),
        fps_all=[round(r["fps"], 1) for r in runs],
    )
print(f"{'mode':<10} {'frames/s':>9} {'out p50 ms':>11} {'out p99 ms':>11} {'mean batch':>11} {'ORT ms/run':>11} {'ORT ms/frame':>13}  frames/s per round")
for mode, r in rows.items():
    print(f"{mode:<10} {r['fps']:>9.1f} {r['p50']:>11.0f} {r['p99']:>11.0f} {r['batch']:>11.2f} {r['ort']:>11.1f} {r['per_frame']:>13.1f}  {r['fps_all']}")
u, b = rows["unbatched"], rows["batched"]
print(f"batched/unbatched: frames/s x{b['fps'] / u['fps']:.3f}, p99 x{b['p99'] / u['p99']:.3f}")
def records(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        out[(r["stream"], r["seq"])] = r["detections"]
    return out
a, c = records(f"{tmp}/unbatched.first.jsonl"), records(f"{tmp}/batched.first.jsonl")
box = score = 0.0
same = values = mismatched = 0
for key, da in a.items():
    dc = c.get(key)
    if dc is None or len(dc) != len(da):
        mismatched += 1
        continue
    for x, y in zip(da, dc):
        if x["class"] != y["class"]:
            mismatched += 1
            break
        for p, q in zip(x["bbox"], y["bbox"]):
            box = max(box, abs(p - q)); same += p == q; values += 1
        score = max(score, abs(x["score"] - y["score"])); same += x["score"] == y["score"]; values += 1
print(f"detections, batched vs unbatched ({len(a)} records): max |box| diff {box:.2g} px, max |score| diff {score:.2g}, "
      f"{same} of {values} values identical, {mismatched} records differ in count or class")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
