#!/usr/bin/env bash
# Real-time quality on real video (issue 17): what percept answers under
# overload, scored against what it answers offline.
#
# vtest.avi (795 frames) is re-timed to a higher frame rate (the same frames,
# a shorter period; MJPEG q95 in Matroska, written once into
# ${PERCEPT_CACHE:-~/.cache/percept}/streaming/) so that the main job's detector,
# pipelines/default.toml's NanoDet-m + ByteTrack, costs FACTOR frame periods.
# The detector's cost is measured first: the median of three short unpaced
# runs' `detect` p50 (`--summary-json`). Every pipeline is written from
# default.toml's detect and track stages (model, decode and tracker settings):
#   reference       offline, unpaced, every frame detected: the "ground truth"
#   interval 2 / 3  in line, unpaced (per-frame scores only), at every
#                   interval_offset (interval 2: frames 0, 2, ... and 1, 3, ...),
#                   and their mean: which frames a schedule detects on moves its
#                   score (vtest's motion repeats short and long steps), and an
#                   asynchronous stage's detected frames drift through all offsets
#   async t1 / t2   paced (realtime, lossless delivery), async = true, 1 / 2 threads;
#                   under the table, how many frames late their results rode
#                   (the summary's result_lag_frames)
#   ... held        the same with wait_for_result = "deadline": frames wait up to
#                   their deadline for a result, so it rides on a fresher frame
#   auto            paced, interval = "auto" + admission control, budget 2 periods
#   schedule auto   paced, schedule = "auto" (in line while detection fits the
#                   frame period, else beside the stream) + admission control
#   python t1 / t2  benches/baseline.py --pace FPS --latest (drop to latest, hold
#                   the last boxes, no tracker: boxes from the tracker's
#                   high_score up), scored against its own offline run
# Paced runs get budget_ms = 2 frame periods. Every run is scored with
# `percept eval --json` (per frame) and `--streaming --json` against its
# reference. Paced percept runs forecast their tracks (tracker forecast_s =
# "auto") and are also scored with `--streaming --no-forecast` (the boxes at
# capture) and `--streaming --extrapolate` (moved by their tracks' velocities
# to the scored instant). Prints a Markdown table per factor and writes them to --out.
#
# Usage: benches/streaming.sh [--fps F]... [--frames N] [--out FILE] [FACTORS...]
#   FACTORS  overload = detection time / frame period (default: 1.5 2.5)
#   --fps F  use this frame rate instead (repeatable; no factors then)
#   --frames N  only the first N frames (max_frames; said in the table header)
#   --out FILE  Markdown output (default out/streaming.md)
# Environment: PERCEPT_BIN (default target/release/percept, built if missing),
# PERCEPT_PIPELINE (default pipelines/default.toml), KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
root="$PWD"
env_sh="${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
[ -f "$env_sh" ] || bash scripts/setup.sh
# shellcheck disable=SC1090
. "$env_sh"

out=out/streaming.md
frames=795
fpss=()
factors=()
while [ $# -gt 0 ]; do
  case $1 in
    --fps) fpss+=("$2"); shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) factors+=("$1"); shift ;;
  esac
done
[ ${#fpss[@]} -gt 0 ] || [ ${#factors[@]} -gt 0 ] || factors=(1.5 2.5)

bin="${PERCEPT_BIN:-target/release/percept}"
if [ ! -x "$bin" ]; then
  [ -z "${PERCEPT_BIN:-}" ] || { echo "PERCEPT_BIN=$bin is not an executable" >&2; exit 2; }
  cargo build --release --locked -q
fi
bin="$(realpath "$bin")"
py="${PERCEPT_PYTHON:-python3}"
pipeline="$(realpath "${PERCEPT_PIPELINE:-pipelines/default.toml}")"
cache="${PERCEPT_CACHE:-$HOME/.cache/percept}/streaming"
mkdir -p "$cache" "$(dirname "$out")"
tmp="$(mktemp -d)"
if [ "${KEEP:-0}" = 1 ]; then echo "work folder: $tmp" >&2; else trap 'rm -rf "$tmp"' EXIT; fi

# The helper: pipelines from default.toml, baseline arguments, re-timing, the table.
cat >"$tmp/helper.py" <<'PY'
import json, os, statistics, sys, tomllib

def base(path):
    cfg = tomllib.load(open(path, "rb"))
    det = next(s for s in cfg["stage"] if s["kind"] == "detect")
    trk = next(s for s in cfg["stage"] if s["kind"] == "track")
    model = det["model"]["path"]
    if not os.path.isabs(model):
        model = os.path.normpath(os.path.join(os.path.dirname(path), model))
    det["model"]["path"] = model
    return det, trk

def val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)

def table(lines, head, d):
    for k, v in d.items():
        if not isinstance(v, dict) or k == "queue":
            lines.append(f"{k} = {val(v)}")
    for k, v in d.items():
        if isinstance(v, dict) and k != "queue":
            lines.append(f"[{head}.{k}]")
            lines += [f"{kk} = {val(vv)}" for kk, vv in v.items()]

def pipeline(args):
    # pipeline DEFAULT OUT.toml VIDEO JSONL FRAMES PACED(0/1) BUDGET_MS key=value...
    path, out, video, jsonl, frames, paced, budget = args[:7]
    det, trk = base(path)
    det.pop("queue", None)
    det["id"] = "detect"
    for kv in args[7:]:
        k, v = kv.split("=", 1)
        v = tomllib.loads(f"x = {v}")["x"]
        if k == "threads":
            det["model"]["threads"] = v
        elif k.startswith("tracker."):
            trk.setdefault("tracker", {})[k.split(".", 1)[1]] = v
        elif k == "-":
            det.pop(v, None)
        else:
            det[k] = v
    lines = ["version = 1", 'name = "streaming"']
    if paced == "1":
        lines.append(f"budget_ms = {budget}")
    lines += ["[[source]]", 'id = "cam0"', 'kind = "file"', f"location = {val(video)}", f"max_frames = {frames}"]
    if paced == "1":
        lines += ["realtime = true", 'delivery = "lossless"']
    lines.append("[[stage]]")
    table(lines, "stage", det)
    lines.append("[[stage]]")
    table(lines, "stage", trk)
    lines += ["[[sink]]", 'kind = "jsonl"', f"path = {val(jsonl)}"]
    open(out, "w").write("\n".join(lines) + "\n")

def baseline_args(args):
    det, trk = base(args[0])
    if det.get("layout", "yolov8") not in ("yolov8", "nanodet", "end2end"):
        sys.exit(f"baseline.py cannot read layout {det.get('layout')}")
    # No tracker to use the low-score boxes: the loop keeps what ByteTrack calls high.
    conf = trk.get("tracker", {}).get("high_score", det.get("confidence", 0.25))
    a = [det["model"]["path"], "--layout", det.get("layout", "yolov8"),
         "--pad", str(det["model"].get("pad_value", 114)), "--conf", str(conf),
         "--max", str(det.get("max_detections", 100))]
    if "iou" in det:
        a += ["--iou", str(det["iou"])]
    if "classes" in det:
        a += ["--classes", ",".join(str(c) for c in det["classes"])]
    print(" ".join(a))

def detect_ms(args):
    ps = [next(s for s in json.load(open(f))["stages"] if s["id"] == "detect")
          ["latency"]["p50_ms"] for f in args]
    print(f"{statistics.median(ps):.1f}")

def retime(args):
    import cv2
    src, dst, period_ms, frames = args[0], args[1], float(args[2]), int(args[3])
    cap = cv2.VideoCapture(src)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out = cv2.VideoWriter(dst + ".part.mkv", cv2.VideoWriter_fourcc(*"MJPG"), 1000.0 / period_ms, (w, h))
    out.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    n = 0
    while n < frames:
        ok, f = cap.read()
        if not ok:
            break
        out.write(f)
        n += 1
    out.release()
    os.rename(dst + ".part.mkv", dst)
    print(n)

def fmt(x):
    return "−" + f"{-x:.2f}" if x < 0 else f"{x:.2f}"

def det_mota(m):
    return 1 - (m["fp"] + m["fn"]) / max(m["gt"], 1)

def mean_row(args):
    # mean-row NAME PERFRAME.json...: the mean of in-line runs' per-frame scores
    name, files = args[0], args[1:]
    ms = [json.load(open(f)) for f in files]
    mean = lambda k: statistics.mean(m[k] for m in ms)
    dm = statistics.mean(det_mota(m) for m in ms)
    spread = " / ".join(fmt(m["mota"]) for m in ms)
    cols = [name, "—", "—", "—", f"{fmt(mean('mota'))} / {fmt(mean('idf1'))} (MOTA {spread})",
            "—", "—", "—", f"{fmt(dm)} / —"]
    print("| " + " | ".join(cols) + " |")

def row(args):
    # row NAME SUMMARY(.json|-) KIND(percept|python) PERFRAME.json STREAMING.json|- EXTRAPOLATED.json|- NOFORECAST.json|-
    name, summary, kind, pf, st, ex, nf = args
    s = json.load(open(summary))
    if kind in ("percept", "offline"):
        d = next(x for x in s["stages"] if x["id"] == "detect")
        rate = d["run_rate"]
        lat = s["sinks"][0]["latency"]["p50_ms"]
        cost = d["latency"]["p50_ms"]
    else:
        rate, lat, cost = s.get("run_rate", 1.0), s["latency_p50_ms"], s.get("detect_p50_ms")
    p = json.load(open(pf))
    q = json.load(open(st)) if st != "-" else None
    x = json.load(open(ex)) if ex != "-" else None
    b = json.load(open(nf)) if nf != "-" else None
    ids = kind != "python"
    def mi(m):
        return f"{fmt(m['mota'])} / {fmt(m['idf1'])}" if ids else f"({fmt(m['mota'])}) / —"
    cols = [name, f"{rate * 100:.0f} %", f"{cost:.0f} ms" if cost is not None else "—",
            f"{lat:.0f} ms" if kind != "offline" else "—", mi(p), mi(q) if q else "—",
            mi(b) if b else "—", mi(x) if x else "—",
            f"{fmt(det_mota(p))} / {fmt(det_mota(q))}" if q else f"{fmt(det_mota(p))} / —"]
    print("| " + " | ".join(cols) + " |")

def lags(args):
    # lags NAME SUMMARY.json: how late the detect stage's results rode, in frames
    name, summary = args
    d = next(x for x in json.load(open(summary))["stages"] if x["id"] == "detect")
    bins = d.get("result_lag_frames", [])
    used = [(k, n) for k, n in enumerate(bins) if n]
    if used:
        # The last element counts results that many frames late or more.
        lag = " / ".join(f"{k + 1}{'+' if k + 1 == len(bins) else ''}" for k, _ in used)
        print(f"{name}: results late by {lag} frames: {' / '.join(str(n) for _, n in used)}"
              f" ({d['waited_for_result']} rode after a wait)")

def pacing(args):
    # pacing NAME JSONL PERIOD_MS: capture spacing of a paced percept run
    name, path, period = args[0], args[1], float(args[2])
    caps = [json.loads(l)["capture_wall_ns"] for l in open(path) if l.strip()]
    caps.sort()
    gaps = sorted((b - a) / 1e6 for a, b in zip(caps, caps[1:]))
    if not gaps:
        return
    p = lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))]
    span = (caps[-1] - caps[0]) / 1e9
    print(f"{name}: capture spacing p50 {p(0.5):.1f} / p99 {p(0.99):.1f} / max {gaps[-1]:.1f} ms "
          f"(period {period:g}); {len(caps)} frames over {span:.2f} s (paced {(len(caps) - 1) * period / 1e3:.2f} s)")

{"pipeline": pipeline, "baseline-args": baseline_args, "detect-ms": detect_ms, "retime": retime,
 "row": row, "mean-row": mean_row, "pacing": pacing,
 "lags": lags}[sys.argv[1]](sys.argv[2:])
PY
helper() { python3 "$tmp/helper.py" "$@"; }
# retime needs OpenCV: the venv's python.
retime() { "$py" "$tmp/helper.py" retime "$@"; }

run() { # run NAME VIDEO PACED(0/1) PERIOD_MS key=value...: a percept run
  local name=$1 video=$2 paced=$3 period=$4
  shift 4
  helper pipeline "$pipeline" "$tmp/$name.toml" "$video" "$tmp/$name.jsonl" "$frames" "$paced" \
    "$(python3 -c "print(round(2 * $period))")" "$@"
  if ! "$bin" run "$tmp/$name.toml" --no-progress --summary-json "$tmp/$name.json" 2>"$tmp/$name.log"; then
    cat "$tmp/$name.log" >&2
    return 1
  fi
}

score() { # score NAME GT STREAMING(0/1/2: also without forecasts, and extrapolated by the tracks' velocities)
  "$bin" eval --json --gt "$2" --pred "$tmp/$1.jsonl" >"$tmp/$1.eval.json"
  if [ "$3" -ge 1 ]; then
    "$bin" eval --streaming --json --gt "$2" --pred "$tmp/$1.jsonl" >"$tmp/$1.stream.json"
  fi
  if [ "$3" = 2 ]; then
    "$bin" eval --streaming --no-forecast --json --gt "$2" --pred "$tmp/$1.jsonl" >"$tmp/$1.boxes.json"
    "$bin" eval --streaming --extrapolate --json --gt "$2" --pred "$tmp/$1.jsonl" >"$tmp/$1.fore.json"
  fi
}

# The detector's cost, unpaced, on the original recording.
measure() {
  local i files=()
  for i in 1 2 3; do
    run "measure$i" "$PERCEPT_MEDIA/vtest.avi" 0 100 >/dev/null
    files+=("$tmp/measure$i.json")
  done
  helper detect-ms "${files[@]}"
}

read -r -a base_args <<<"$(helper baseline-args "$pipeline")"
# In-line skipping at every offset: interval N from frame K is intervalN-K.
inline_runs=(interval2-0 interval2-1 interval3-0 interval3-1 interval3-2)

if [ ${#factors[@]} -gt 0 ]; then
  saved=$frames
  frames=100
  det_ms=$(measure)
  frames=$saved
  echo "detection (NanoDet, unpaced, median of 3 short runs' p50): $det_ms ms" >&2
  for f in "${factors[@]}"; do
    # An integer period in ms: Matroska's timestamps are in ms.
    p=$(python3 -c "print(max(1, round($det_ms / $f)))")
    fpss+=("$(python3 -c "print(1000 / $p)")")
  done
fi

{
  echo "# Real-time quality on real video (benches/streaming.sh)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the start;"
  echo "pipeline $(realpath --relative-to="$root" "$pipeline"); percept $("$bin" --version 2>/dev/null || echo '?')."
  [ -n "${det_ms:-}" ] && echo "NanoDet's detection cost, measured unpaced first: $det_ms ms (median of three 100-frame runs' p50)."
} >"$out"

for fps in "${fpss[@]}"; do
  period=$(python3 -c "print(f'{1000 / $fps:.4g}')")
  video="$cache/vtest-${period}ms.mkv"
  if [ ! -f "$video" ]; then
    n=$(retime "$PERCEPT_MEDIA/vtest.avi" "$video" "$period" 100000)
    echo "re-timed vtest.avi: $n frames at $period ms -> $video" >&2
  fi
  gst-discoverer-1.0 "$video" | grep -E "Duration|Frame rate" | sed 's/^ */  /' >&2 || true
  echo "== $fps fps ($period ms) ==" >&2
  t0=$SECONDS
  ref="$tmp/reference.jsonl"
  run reference "$video" 0 "$period"
  for r in "${inline_runs[@]}"; do
    n=${r#interval}
    run "$r" "$video" 0 "$period" interval="${n%-*}" interval_offset="${n#*-}" admission=false
  done
  fc='tracker.forecast_s="auto"'
  run async1 "$video" 1 "$period" async=true threads=1 "$fc"
  run async2 "$video" 1 "$period" async=true threads=2 "$fc"
  hold='wait_for_result="deadline"'
  run async1h "$video" 1 "$period" async=true threads=1 "$hold" "$fc"
  run async2h "$video" 1 "$period" async=true threads=2 "$hold" "$fc"
  run auto "$video" 1 "$period" 'interval="auto"' admission=true "$fc"
  run sched "$video" 1 "$period" 'schedule="auto"' admission=true "$fc"
  for r in "${inline_runs[@]}"; do score "$r" "$ref" 0; done
  for r in async1 async2 async1h async2h auto sched; do score $r "$ref" 2; done
  # The Python loop: its own offline run is its reference.
  "$py" benches/baseline.py "${base_args[0]}" "$video" "$frames" 2 "${base_args[@]:1}" \
    --jsonl "$tmp/py-ref.jsonl" >"$tmp/py-ref.json"
  for t in 1 2; do
    "$py" benches/baseline.py "${base_args[0]}" "$video" "$frames" "$t" "${base_args[@]:1}" \
      --pace "$fps" --latest --jsonl "$tmp/py$t.jsonl" >"$tmp/py$t.json"
    score "py$t" "$tmp/py-ref.jsonl" 1
  done
  ref_det=$(helper detect-ms "$tmp/reference.json")
  n_ref=$(wc -l <"$ref")
  {
    echo
    echo "## $(python3 -c "print(f'{$fps:.4g}')") fps ($period ms a frame): overload $(python3 -c "print(f'{$ref_det / $period:.2f}')")x by the reference run"
    echo
    echo "vtest.avi's $n_ref frames$([ "$n_ref" -lt 795 ] && echo " (a subset: max_frames = $frames)") re-timed to $period ms;"
    echo "reference detection p50 $ref_det ms; paced runs: budget_ms = $(python3 -c "print(round(2 * $period))")."
    echo "Scores against the reference (percept rows) or the Python loop's own offline run (python rows);"
    echo "det-MOTA = 1 − (FP + FN) / GT, without ID switches. Paced percept runs forecast their tracks to the"
    echo "next readable frame (tracker forecast_s = \"auto\"): streaming scores those forecast boxes as written;"
    echo "\"boxes at capture\" scores the same records' boxes instead (percept eval --streaming --no-forecast)."
    echo "Streaming, extrapolated: each box moved on by its track's velocity_px_s to the scored frame's"
    echo "capture instant, as a consumer forecasts the tracks it holds (percept eval --streaming --extrapolate)."
    echo
    echo "| schedule | detection ran on | detect p50 | output latency p50 | per-frame MOTA / IDF1 | streaming MOTA / IDF1 | streaming, boxes at capture | streaming, extrapolated | per-frame / streaming det-MOTA |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    helper row "reference: offline, every frame" "$tmp/reference.json" offline \
      <(echo '{"mota":1,"idf1":1,"fp":0,"fn":0,"gt":1}') - - -
    for n in 2 3; do
      evals=()
      for r in "${inline_runs[@]}"; do
        [ "${r%-*}" = "interval$n" ] || continue
        helper row "in line, interval = $n, interval_offset = ${r#*-} (unpaced)" "$tmp/$r.json" offline \
          "$tmp/$r.eval.json" - - -
        evals+=("$tmp/$r.eval.json")
      done
      helper mean-row "in line, interval = $n: mean over the offsets" "${evals[@]}"
    done
    for r in "async1:paced, async, 1 thread" "async2:paced, async, 2 threads" \
      "async1h:paced, async, 1 thread, wait_for_result = \"deadline\"" \
      "async2h:paced, async, 2 threads, wait_for_result = \"deadline\"" \
      "auto:paced, interval = \"auto\" + admission" "sched:paced, schedule = \"auto\" + admission"; do
      n=${r%%:*}
      helper row "${r#*:}" "$tmp/$n.json" percept "$tmp/$n.eval.json" "$tmp/$n.stream.json" \
        "$tmp/$n.fore.json" "$tmp/$n.boxes.json"
    done
    helper row "Python, drop to latest, 1 thread" "$tmp/py1.json" python "$tmp/py1.eval.json" "$tmp/py1.stream.json" - -
    helper row "Python, drop to latest, 2 threads" "$tmp/py2.json" python "$tmp/py2.eval.json" "$tmp/py2.stream.json" - -
    echo
    echo "Python rows: no tracker, so boxes scoring at least the tracker's high_score and per-frame"
    echo "index ids; MOTA in parentheses counts index changes as ID switches and IDF1 means nothing:"
    echo "compare det-MOTA. Output latency: capture to output (unpaced rows: —, it is queueing);"
    echo "for the Python loop, capture to result of the frames it detected."
    echo "Pacing: percept stamps a paced frame's capture_wall_ns with its scheduled instant (pipeline"
    echo "clock + PTS), so its spacing is exact by construction; lateness shows as output latency."
    echo "The Python loop stamps the schedule too and reports its reader's release lag."
    echo
    for r in async1 async2 async1h async2h auto sched; do echo "- $(helper pacing "$r" "$tmp/$r.jsonl" "$period")"; done
    for r in async1 async2 async1h async2h sched; do
      l=$(helper lags "$r" "$tmp/$r.json")
      [ -z "$l" ] || echo "- $l"
    done
    for t in 1 2; do
      python3 -c "import json; s = json.load(open('$tmp/py$t.json')); print(f\"- py$t: {s['frames']} frames; the reader released them late against the schedule by p50 {s['release_lag_p50_ms']:.1f} / p99 {s['release_lag_p99_ms']:.1f} / max {s['release_lag_max_ms']:.1f} ms\")"
    done
    echo
    echo "Took $((SECONDS - t0)) s; load $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  } >>"$out"
done
cat "$out"
