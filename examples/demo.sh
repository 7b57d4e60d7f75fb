#!/usr/bin/env bash
# End-to-end demo on the embedded default (CPU). Grows with each capability; today it builds the
# stand-in body models and prints a body-model summary.
#
# usage: bash examples/demo.sh [OUT_DIR]      (make demo runs it inside the project's venv)
set -euo pipefail
OUT=${1:-demo_out}
mkdir -p "$OUT"

echo "== 1. stand-in body models (licensed SMPL-X/MANO/FLAME files are not shipped) =="
neuralannot models make-standin "$OUT/models"

echo
echo "== 2. body-model summary =="
neuralannot models check --model-dir "$OUT/models"

echo
echo "Demo finished. Everything it wrote is under $OUT/"
