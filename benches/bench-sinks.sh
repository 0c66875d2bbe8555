#!/usr/bin/env bash
# Benchmark (issue 13): what each output sink costs per frame at 768x576, next
# to the jsonl sink alone on the same run, rounds alternating so machine noise
# hits every variant alike; medians and ratios.
#   decode: vtest.avi (795 frames, RGB) decoded with no stage, so the sinks
#           are the work: CPU ms per frame (all threads, encoder's included)
#           and wall time, each variant against jsonl alone.
#   detect: the main job (NanoDet-m + ByteTrack, first FRAMES frames) with
#           jsonl alone, then jsonl + mcap + video: the jsonl sink's
#           capture-to-output latency (p50/p99) must not change, since each
#           sink has its own thread and queue; once as fast as it goes (the
#           latency is mostly queueing) and once paced at the recording's
#           10 fps (--realtime: the latency is the work itself).
# Usage: benches/bench-sinks.sh [ROUNDS] [FRAMES]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
BIN="$PWD/target/release/percept"
ROUNDS="${1:-3}"; FRAMES="${2:-150}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

sinks() { # variant -> extra [[sink]] tables
  case "$1" in
    jsonl) ;;
    mcap) printf '[[sink]]\nkind = "mcap"\npath = "%s/o.mcap"\n' "$tmp" ;;
    mcap_noimg) printf '[[sink]]\nkind = "mcap"\npath = "%s/o.mcap"\nimages = "none"\n' "$tmp" ;;
    video) printf '[[sink]]\nkind = "video"\npath = "%s/o.mp4"\n' "$tmp" ;;
    all) sinks mcap; sinks video ;;
  esac
}
for v in jsonl mcap mcap_noimg video; do
  { printf 'version = 1\n[[source]]\nid = "cam0"\nkind = "file"\nlocation = "%s/vtest.avi"\nformat = "RGB"\n' "$PERCEPT_MEDIA"
    printf '[[sink]]\nkind = "jsonl"\npath = "%s/o.jsonl"\n' "$tmp"; sinks "$v"; } >"$tmp/decode_$v.toml"
done
for v in jsonl all; do
  { sed "s|kind = \"file\"|kind = \"file\"\nmax_frames = $FRAMES|; s|\"\.\./|\"$PWD/|g" pipelines/default.toml | sed '/^\[\[sink\]\]/,$d'
    printf '[[sink]]\nkind = "jsonl"\npath = "%s/o.jsonl"\n' "$tmp"; sinks "$v"; } >"$tmp/detect_$v.toml"
done

declare -A wall cpu p50 p99
measure() { # key pipeline [flags]
  /usr/bin/time -f '%e %U %S' -o "$tmp/t" "$BIN" run "$2" ${3:-} --no-progress --summary-json "$tmp/s.json" >/dev/null 2>&1
  read -r w u s <"$tmp/t"
  wall[$1]+="$(awk -v w="$w" 'BEGIN{print w*1000}') "
  cpu[$1]+="$(awk -v u="$u" -v s="$s" 'BEGIN{print (u+s)*1000}') "
  read -r a b < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); j=[s for s in d["sinks"] if s["name"]=="jsonl"][0]["latency"]; print(j["p50_ms"], j["p99_ms"])' "$tmp/s.json")
  p50[$1]+="$a "; p99[$1]+="$b "
}
for ((i = 0; i < ROUNDS; i++)); do
  for v in jsonl mcap mcap_noimg video; do measure "decode_$v" "$tmp/decode_$v.toml"; done
  for v in jsonl all; do measure "detect_$v" "$tmp/detect_$v.toml"; done
  for v in jsonl all; do measure "paced_$v" "$tmp/detect_$v.toml" --realtime; done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "$ROUNDS alternating rounds, medians; $(nproc) cores"
echo "decode-only vtest.avi, 795 frames 768x576 RGB:"
printf '  %-18s %9s %9s %11s %11s %9s\n' sinks wall_ms cpu_ms cpu_ms/frame "+ vs jsonl" wall_ratio
jw=$(median "${wall[decode_jsonl]}"); jc=$(median "${cpu[decode_jsonl]}")
for v in jsonl mcap mcap_noimg video; do
  w=$(median "${wall[decode_$v]}"); c=$(median "${cpu[decode_$v]}")
  awk -v n="jsonl$([ $v = jsonl ] || echo +$v)" -v w="$w" -v c="$c" -v jw="$jw" -v jc="$jc" \
    'BEGIN { printf "  %-18s %9.0f %9.0f %11.2f %+11.2f %9.2f\n", n, w, c, c/795, (c-jc)/795, w/jw }'
done
for mode in detect paced; do
  echo "main job (NanoDet-m + ByteTrack), $FRAMES frames, $([ $mode = detect ] && echo 'as fast as it goes' || echo 'paced at 10 fps (--realtime)'): the jsonl sink's capture-to-output latency"
  for v in jsonl all; do
    printf '  %-18s wall %6.0f ms  jsonl p50 %8.2f ms  p99 %8.2f ms\n' "$([ $v = jsonl ] && echo jsonl || echo jsonl+mcap+video)" \
      "$(median "${wall[${mode}_$v]}")" "$(median "${p50[${mode}_$v]}")" "$(median "${p99[${mode}_$v]}")"
  done
done
