#!/usr/bin/env bash
# README command 2: set up what is missing, then format check, lints and the
# whole test suite (unit and integration tests, real GStreamer, real media).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${PERCEPT_CACHE:-$HOME/.cache/percept}/env.sh"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
