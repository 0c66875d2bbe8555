#!/usr/bin/env bash
# Benchmark: percept's overhead over a bare GStreamer decode of the same file.
#   bare:    gst-launch-1.0 filesrc ! decodebin ! videoconvert ! video/x-raw,format=RGB ! fakesink
#   percept: percept run pipelines/decode-only.toml (same decode, appsink, edges, JSON Lines)
# Runs alternate (ROUNDS each) so machine noise hits both alike; prints the
# median wall time of each, frames per second and the overhead ratio.
# Usage: benches/bench-decode.sh [FILE] [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
FILE="${1:-$PERCEPT_MEDIA/vtest.avi}"
ROUNDS="${2:-7}"
cargo build --release --locked -q
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Wall and CPU (user+sys) milliseconds of one command, via GNU time.
measure() { /usr/bin/time -f '%e %U %S' -o "$out/t" "$@" >/dev/null 2>&1; awk '{printf "%d %d\n", $1*1000, ($2+$3)*1000}' "$out/t"; }
bare=(); perc=(); bare_cpu=(); perc_cpu=()
for ((i = 0; i < ROUNDS; i++)); do
  read -r w c < <(measure gst-launch-1.0 -q filesrc location="$FILE" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! fakesink)
  bare+=("$w"); bare_cpu+=("$c")
  read -r w c < <(measure target/release/percept run pipelines/decode-only.toml -i "$FILE" -o "$out/o.jsonl" --no-progress)
  perc+=("$w"); perc_cpu+=("$c")
done
frames=$(wc -l <"$out/o.jsonl")
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mb=$(median "${bare[@]}"); mp=$(median "${perc[@]}")
cb=$(median "${bare_cpu[@]}"); cp=$(median "${perc_cpu[@]}")
awk -v mb="$mb" -v mp="$mp" -v cb="$cb" -v cp="$cp" -v n="$frames" -v r="$ROUNDS" -v f="$FILE" 'BEGIN {
  printf "file: %s (%d frames), %d alternating rounds, medians\n", f, n, r
  printf "  gst-launch decode -> fakesink : wall %7.0f ms  %6.1f fps  cpu %7.0f ms\n", mb, n/(mb/1e3), cb
  printf "  percept decode-only pipeline  : wall %7.0f ms  %6.1f fps  cpu %7.0f ms\n", mp, n/(mp/1e3), cp
  printf "  percept / bare: wall %.3f (overhead %+.1f%%), cpu %.3f (%+.1f%%)\n", mp/mb, (mp/mb-1)*100, cp/cb, (cp/cb-1)*100
}'
