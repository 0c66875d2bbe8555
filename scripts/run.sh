#!/usr/bin/env bash
# README command 1: set up what is missing, build, and run the default
# pipeline on the sample recording. Extra arguments go to `percept run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
cargo build --release --locked
exec target/release/percept run pipelines/default.toml "$@"
