#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (one per parser: pipeline file,
# calibration TOML, OpenCV FileStorage YAML/XML, ROS camera_info, MOTChallenge
# text / JSON Lines) for SECONDS seconds each, on stable Rust with
# `--sanitizer none` (cargo-fuzz's coverage flags need RUSTC_BOOTSTRAP=1 on a
# stable compiler). Corpora start from the repository's own files; crashes
# land in fuzz/artifacts/<target>/. Prints the executions of each target.
# Not part of scripts/test.sh. Usage: scripts/fuzz.sh SECONDS [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
root="$PWD"
cd fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
seed() {
    local target="$1"
    shift
    mkdir -p "corpus/$target"
    cp "$@" "corpus/$target/"
}
seed pipeline_file "$root"/pipelines/*.toml
seed calibration_toml "$root"/calibration/*.toml
seed opencv_yaml seeds/opencv_yaml/*
seed opencv_xml seeds/opencv_xml/*
seed ros_camera_info "$root"/tests/media/calib/*.yaml
seed motchallenge "$root"/tests/media/*.txt "$root"/tests/golden/*.jsonl
cargo fuzz build --sanitizer none
status=0
for target in "${targets[@]}"; do
    log="$(mktemp)"
    if cargo fuzz run --sanitizer none "$target" -- -max_total_time="$seconds" \
        -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 > "$log" 2>&1; then
        result=ok
    else
        result="FAILED (see fuzz/artifacts/$target/)"
        status=1
        tail -n 30 "$log"
    fi
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "$target: $execs executions in ${seconds}s, $result"
    rm -f "$log"
done
exit "$status"
