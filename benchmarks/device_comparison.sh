#!/bin/bash
# The issue-6 comparison (benchmarks/annotator_comparison.py) at 2,000 + 2,000 samples on a lent GPU machine.
#
# Prepare HERE (CPU, ~3 min), in the repository root:
#   echo /.whl/ >> .git/info/exclude; echo /.benchpack/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl smplx==0.1.28 pycocotools roma platformdirs        # the device image lacks these four
#   PYTHONPATH=. .venv/bin/python benchmarks/annotator_comparison.py --count 2000 --image-size 128 \
#       --synth-only --out /tmp/prep                                # stand-in models + both sets (~2 min)
#   mkdir -p .benchpack && tar -cf - -C /tmp/prep data models | xz -T2 -6 > .benchpack/pack.tar.xz   # ~28 MB
# Run THERE (device tool): command `bash benchmarks/device_comparison.sh`, carry [".whl", ".benchpack"],
# timeout_s 595. It prints the table and leaves bench.log, benchmark.json, metrics.jsonl (and ddp.log) in $OUT.
# Expected cost (estimate, not yet measured on a GPU): setup 15 s, training ~3 min, baselines ~2 min.
set -o pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/device_out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
mkdir -p /tmp/bench && xz -T8 -dc .benchpack/pack.tar.xz | tar -xf - -C /tmp/bench || exit 4
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
echo "setup $(( $(date +%s) - T0 )) s"
timeout 500 python3 -W ignore benchmarks/annotator_comparison.py --device cuda --count 2000 --image-size 128 \
  --out /tmp/bench --stage1-epochs "${STAGE1_EPOCHS:-40}" --stage2-epochs "${STAGE2_EPOCHS:-60}" \
  --lr-decay-epochs 50 --input-size "${INPUT_SIZE:-64}" --batch-size 64 --lr 1e-3 --cache-images \
  --fit-batch-size 1000 --per-sample-subset 4 --annotate-batch-size 256 --threads 8 > "$OUT/bench.log" 2>&1
rc=$?
grep -v -i "warn" "$OUT/bench.log" | tail -40
cp /tmp/bench/benchmark.json /tmp/bench/runs/body/metrics.jsonl "$OUT/" 2>/dev/null
echo "benchmark rc $rc at $(( $(date +%s) - T0 )) s"
LEFT=$(( 575 - ($(date +%s) - T0) ))
if [ $LEFT -gt 25 ]; then  # torchrun + nccl (world size 1) smoke of the CLI
  timeout $LEFT torchrun --standalone --nproc-per-node 1 -m neuralannot_cli train --part body \
    --aux h36m=/tmp/bench/data/h36m --target coco_wholebody=/tmp/bench/data/coco --max-samples 64 --epochs 1 \
    --prior-epochs 1 --input-size 32 --backbone resnet18 --batch-size 16 --device cuda \
    --model-dir /tmp/bench/models --out /tmp/ddp --no-progress > "$OUT/ddp.log" 2>&1
  echo "torchrun smoke rc $?"; grep -v -i warn "$OUT/ddp.log" | tail -4
fi
exit $rc
