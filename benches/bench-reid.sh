#!/usr/bin/env bash
# Benchmark: re-ID crops per second, percept's stage against the bare model run,
# with the tiny test model and a random-weight network of real cost (written by
# benches/make_reid_model.py). Usage: benches/bench-reid.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. benches/alone.sh
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
mkdir -p target/bench-models
model=target/bench-models/reid_cnn_random.onnx
[ -s "$model" ] || "$PERCEPT_PYTHON" benches/make_reid_model.py "$model"
PERCEPT_REID_MODEL="$(realpath "$model")" cargo bench --locked --bench reid -- "$@"
