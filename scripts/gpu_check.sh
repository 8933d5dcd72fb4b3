#!/usr/bin/env bash
# The device stage on a GPU node in one short call: every CUDA test, the device benchmark and
# the device-stage throughput at batch 256 x 224 px, into one JSON file (default
# gpu_check.json). Needs only a Python with torch, numba and Lightning (cupy for the fused
# kernel): no FFCV, no build, no network. Where CUDA is absent every step says why it skipped.
#
#   bash scripts/gpu_check.sh [OUT.json]          # or: make gpu-check
#   PYTHON=/path/to/python bash scripts/gpu_check.sh
#
# Each step runs under its own timeout (GPU_CHECK_STEP_TIMEOUT overrides all of them); about
# 4.5 minutes at worst in all. Exit status 0 when no step failed (skips are not failures).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
OUT=${1:-gpu_check.json}
declare -A LIMIT=([environment]=45 [cuda_tests]=120 [device_bench]=60 [device_stage]=45)
STEPS=(environment cuda_tests device_bench device_stage)

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
parts=$(mktemp -d)
trap 'rm -rf "$parts"' EXIT

command -v "$PYTHON" >/dev/null 2>&1 || { echo "gpu_check: no $PYTHON (set PYTHON=...)" >&2; exit 2; }
echo "gpu_check: $("$PYTHON" --version 2>&1) at $(command -v "$PYTHON"), repository $PWD"

codes=() limits=()
for step in "${STEPS[@]}"; do
  limit=${GPU_CHECK_STEP_TIMEOUT:-${LIMIT[$step]}}
  echo "== $step (at most ${limit} s)"
  start=$SECONDS
  status=0
  timeout --kill-after=10 "$limit" "$PYTHON" scripts/gpu_check.py "$step" \
    --out "$parts/$step.json" || status=$?
  echo "   $step: exit $status after $((SECONDS - start)) s"
  codes+=("$step=$status")
  limits+=("$step=$limit")
done

IFS=,
"$PYTHON" scripts/gpu_check.py merge --parts "$parts" --out "$OUT" \
  --codes "${codes[*]}" --limits "${limits[*]}"
