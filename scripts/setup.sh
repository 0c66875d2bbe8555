#!/usr/bin/env bash
# One idempotent set-up for percept, used by both README commands.
# Installs: Debian packages (GStreamer, OpenCV, clang), a Python venv with
# onnxruntime (whose libonnxruntime.so the `ort` crate loads at run time) and
# rosbags (the ROS 2 format check of tests/ros2.rs),
# and the sample media from Debian's opencv-doc package.
# A second run only checks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PERCEPT_CACHE:-$HOME/.cache/percept}"
VENV="$CACHE/venv"
MEDIA="$CACHE/media"
ORT_VERSION="1.31.1"

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------
DEB_PACKAGES=(
  pkg-config clang libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  gstreamer1.0-plugins-base-apps
  libopencv-dev
  libgstrtspserver-1.0-dev prometheus
  python3-venv time
)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages: present"
fi

# --- Rust toolchain ----------------------------------------------------------
# Debian's own cargo is too old for these crates; rustup's stable is used.
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: installing the stable Rust toolchain with rustup"
  command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl ca-certificates >/dev/null; }
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# --- Python venv with onnxruntime ---------------------------------------------
PY="${PERCEPT_PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  mkdir -p "$CACHE"
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime, onnx, numpy, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null; then
  log "installing onnxruntime==$ORT_VERSION, onnx, numpy into the venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION" onnx numpy
else
  log "onnxruntime $ORT_VERSION: present"
fi
# rosbags: the independent ROS 2 CDR and RIHS01 type-hash implementation
# that tests/ros2_check.py checks src/ros2 against (pure Python itself;
# pip brings its dependencies as wheels).
ROSBAGS_VERSION="0.11.9"
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('rosbags') != '$ROSBAGS_VERSION')" 2>/dev/null; then
  log "installing rosbags==$ROSBAGS_VERSION into the venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "rosbags==$ROSBAGS_VERSION"
else
  log "rosbags $ROSBAGS_VERSION: present"
fi
ORT_LIB="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)"
[ -n "$ORT_LIB" ] || { log "libonnxruntime.so not found in $VENV"; exit 1; }

# --- Sample media from opencv-doc ---------------------------------------------
need_media=0
for f in vtest.avi left01.jpg right01.jpg aloeL.jpg aloeR.jpg aloeGT.png; do
  [ -s "$MEDIA/$f" ] || need_media=1
done
if ((need_media)); then
  log "extracting sample media from Debian's opencv-doc into $MEDIA"
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq opencv-doc; })
  dpkg-deb -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  mkdir -p "$MEDIA"
  find "$tmp/x" -type f \( -name 'vtest.avi' -o -name 'left[0-9]*.jpg' -o -name 'right[0-9]*.jpg' \
       -o -name 'aloe*.jpg' -o -name 'aloeGT.png' \) -exec cp -f {} "$MEDIA/" \;
  # some files ship gzip-compressed in Debian docs
  for gz in $(find "$tmp/x" -type f -name 'vtest.avi.gz'); do gunzip -c "$gz" >"$MEDIA/vtest.avi"; done
  rm -rf "$tmp"
fi
[ -s "$MEDIA/vtest.avi" ] || { log "vtest.avi missing after extraction"; exit 1; }
log "sample media: $MEDIA"

# --- Test models and synthetic recordings -------------------------------------
# Committed outputs of scripts/make_test_models.py; regenerated when one is
# missing or the generator changed (its hash is kept in tests/models/STAMP).
GEN="$ROOT/scripts/make_test_models.py"
stamp="$(sha256sum "$GEN" | cut -d' ' -f1)"
outputs=(tests/models/squares_yolov8.onnx tests/models/squares_yolov5.onnx tests/models/squares_end2end.onnx
  tests/models/squares_boxes_scores.onnx tests/models/wrong_rank.onnx tests/models/colour_embed.onnx tests/models/squares_yolov8_nhwc.onnx
  tests/media/squares.mkv tests/media/squares.gt.jsonl tests/media/crossing.mkv tests/media/crossing.gt.jsonl
  tests/media/crossing.gt.txt tests/media/stereo_left.png tests/media/stereo_right.png tests/media/stereo.gt.json
  tests/media/stereo_sbs.png tests/models/mono_depth.onnx tests/models/cascade_exit1.onnx
  tests/models/cascade_exit2.onnx tests/models/squares_yolov8_batchN.onnx tests/models/squares_yolov8_batch4.onnx)
stale=0
[ "$(cat "$ROOT/tests/models/STAMP" 2>/dev/null)" = "$stamp" ] || stale=1
for f in "${outputs[@]}"; do [ -s "$ROOT/$f" ] || stale=1; done
if ((stale)); then
  log "regenerating test models and recordings"
  "$VENV/bin/python" "$GEN" "$ROOT/tests/models" "$ROOT/tests/media"
  echo "$stamp" >"$ROOT/tests/models/STAMP"
else
  log "test models: up to date"
fi

# --- Environment file read by the other scripts -------------------------------
cat >"$CACHE/env.sh" <<ENV
export PATH="\$HOME/.cargo/bin:\$PATH"
export ORT_DYLIB_PATH="$ORT_LIB"
export PERCEPT_MEDIA="$MEDIA"
export PERCEPT_PYTHON="$VENV/bin/python"
ENV
log "ready (ORT_DYLIB_PATH=$ORT_LIB)"
