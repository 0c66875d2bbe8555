#!/usr/bin/env bash
# Benchmark: two percept binaries side by side (before/after a change), runs
# alternating so machine noise hits both alike; prints medians and ratios.
#   decode: pipelines/decode-only.toml on FILE (with a bare gst-launch decode as the floor)
#   detect: pipelines/default.toml (NanoDet-m + ByteTrack) on the first FRAMES frames of vtest.avi
# Usage: benches/bench-ab.sh BEFORE_BIN AFTER_BIN [ROUNDS] [FRAMES] [FILE]
# e.g.   git worktree add /tmp/before HEAD~3 && (cd /tmp/before && cargo build --release)
#        benches/bench-ab.sh /tmp/before/target/release/percept target/release/percept
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
A="$(realpath "$1")"; B="$(realpath "$2")"
ROUNDS="${3:-5}"; FRAMES="${4:-200}"; FILE="${5:-$PERCEPT_MEDIA/vtest.avi}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
sed "s|kind = \"file\"|kind = \"file\"\nmax_frames = $FRAMES|; s|\"\.\./|\"$PWD/|g" pipelines/default.toml >"$tmp/detect.toml"
measure() { /usr/bin/time -f '%e %U %S' -o "$tmp/t" "$@" >/dev/null 2>&1; awk '{printf "%d %d\n", $1*1000, ($2+$3)*1000}' "$tmp/t"; }
declare -A wall cpu
add() { wall[$1]+="$2 "; cpu[$1]+="$3 "; }
for ((i = 0; i < ROUNDS; i++)); do
  read -r w c < <(measure gst-launch-1.0 -q filesrc location="$FILE" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! fakesink); add bare "$w" "$c"
  for side in A B; do
    bin="${!side}"
    read -r w c < <(measure "$bin" run pipelines/decode-only.toml -i "$FILE" -o "$tmp/o.jsonl" --no-progress); add "decode$side" "$w" "$c"
    read -r w c < <(measure "$bin" run "$tmp/detect.toml" -o "$tmp/d$side.jsonl" --no-progress); add "detect$side" "$w" "$c"
  done
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "A: $A"; echo "B: $B"; echo "$ROUNDS alternating rounds, medians (wall ms / cpu ms)"
printf '  %-28s %8s %8s\n' "" wall cpu
for k in bare decodeA decodeB detectA detectB; do
  printf '  %-28s %8s %8s\n' "$k" "$(median "${wall[$k]}")" "$(median "${cpu[$k]}")"
done
awk -v a="$(median "${wall[decodeA]}")" -v b="$(median "${wall[decodeB]}")" -v c="$(median "${wall[detectA]}")" -v d="$(median "${wall[detectB]}")" -v g="$(median "${wall[bare]}")" \
  'BEGIN { printf "  decode B/A %.3f (A/bare %.3f, B/bare %.3f); detect ($FRAMES frames) B/A %.3f\n", b/a, a/g, b/g, d/c }' | sed "s/\$FRAMES/$FRAMES/"
python3 - "$tmp/dA.jsonl" "$tmp/dB.jsonl" <<'PY'
import json, sys
timing = {"capture_ns", "capture_wall_ns", "emit_wall_ns", "latency_ns"}
def load(p):
    return [{k: v for k, v in json.loads(l).items() if k not in timing} for l in open(p)]
a, b = load(sys.argv[1]), load(sys.argv[2])
print("  detect records", "identical (timing fields aside)" if a == b else f"DIFFER ({sum(x != y for x, y in zip(a, b))} of {len(a)} records)")
PY
