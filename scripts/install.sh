#!/usr/bin/env bash
# Idempotent set-up: system libraries for FFCV's C extension, .venv, torch, ffcv, pureffcv.
# A second run only checks a stamp and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.pureffcv-installed
INPUTS=(setup.cfg setup.py constraints.txt scripts/install.sh operations/cpu/roi_jpeg.c)

say() { printf '[install] %s\n' "$*"; }

# The built-in entries: every shipped spec's kernels compiled once, kept with the venv
# (.venv/share/pureffcv/numba), so a first process does not compile them for a minute
# (`pureffcv cache clear` keeps them; docs/performance.md, "The first run"). Their directory
# is keyed by the operations/ sources: after an edit there they are built again.
build_entries() {
  if ! "$VENV/bin/python" -c 'import sys; from operations import cache; sys.exit(not cache.builtin_dir().is_dir())' 2>/dev/null; then
    say "compiling the built-in kernels once (1-3 minutes on 2 cores)"
    "$VENV/bin/pureffcv" cache build | sed 's/^/[install] /'
  fi
}

if [ -f "$STAMP" ] && [ -z "$(find "${INPUTS[@]}" -newer "$STAMP" 2>/dev/null)" ]; then
  say "up to date ($VENV); delete $STAMP to force a reinstall"
  build_entries
  exit 0
fi

# 1. System libraries FFCV's C extension links against (found through pkg-config), and
#    libjpeg-turbo's libjpeg API (jpeglib.h) for pureffcv's crop-aware decoder.
missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists opencv4 2>/dev/null || missing+=(libopencv-dev)
pkg-config --exists libturbojpeg 2>/dev/null || missing+=(libturbojpeg0-dev)
pkg-config --exists libjpeg 2>/dev/null || missing+=(libjpeg62-turbo-dev)
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get update && apt-get install -y --no-install-recommends pkg-config libopencv-dev libturbojpeg0-dev libjpeg62-turbo-dev"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      pkg-config libopencv-dev libturbojpeg0-dev libjpeg62-turbo-dev >/dev/null
  else
    say "missing system packages: ${missing[*]}. Run as root:"
    say "  sudo sh -c '$cmd'"
    exit 1
  fi
fi

# 2. The virtual environment.
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt)

# 3. torch first and explicitly: an unpinned torch pulls gigabytes of CUDA packages. On a
#    machine without an NVIDIA GPU, pip finds the CPU wheel through find-links (this machine
#    kind ships one) or through PUREFFCV_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu).
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  extra=()
  if ! command -v nvidia-smi >/dev/null 2>&1 && [ -n "${PUREFFCV_TORCH_INDEX:-}" ]; then
    extra=(--extra-index-url "$PUREFFCV_TORCH_INDEX")
  fi
  say "installing torch"
  "${PIP[@]}" "${extra[@]}" torch numpy
fi

# 4. ffcv compiles against the installed numpy and torch, so no build isolation.
if ! "$VENV/bin/python" -c 'import ffcv._libffcv' 2>/dev/null; then
  say "building ffcv"
  "${PIP[@]}" setuptools wheel numba pillow
  "${PIP[@]}" --no-build-isolation ffcv
fi

# 5. pureffcv itself, editable, with the test and demo extras; the editable install builds
#    the crop-aware JPEG decoder (setup.py) in place as operations/cpu/_roi_jpeg*.so.
say "installing pureffcv (editable)"
"${PIP[@]}" --no-build-isolation -e ".[dev,demo]"
if ! ls operations/cpu/_roi_jpeg*.so >/dev/null 2>&1; then
  say "building the crop-aware JPEG decoder in place"
  "$VENV/bin/python" setup.py -q build_ext --inplace
fi

# 6. The studio's browser test (tests/pipelines/test_studio.py): headless Chromium from the
#    distribution's packages and Selenium. Optional: without them that one test skips and says why.
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium and chromium-driver (browser test)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } \
      || say "could not install chromium; the studio's browser test will skip"
  else
    say "no chromium/chromedriver: the studio's browser test will skip (as root: apt-get install chromium chromium-driver)"
  fi
fi
"$VENV/bin/python" -c 'import selenium' 2>/dev/null || "${PIP[@]}" selenium \
  || say "could not install selenium; the studio's browser test will skip"

# 7. The built-in entries (build_entries above).
build_entries

touch "$STAMP"
say "done: activate with 'source $VENV/bin/activate' or call $VENV/bin/pureffcv"
