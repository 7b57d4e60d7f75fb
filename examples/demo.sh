#!/usr/bin/env bash
# End-to-end NeuralAnnot demo on the embedded default (CPU, a few minutes):
#   stand-in models -> synthetic aux (Human3.6M / FreiHAND format) and target (COCO-WholeBody format) sets
#   -> train body and hand (stage 1, prior, stage 2) -> annotate the target set -> fit faces -> integrate
#   into SMPL-X.  Sizes are tiny so it runs anywhere; the numbers it prints are a smoke test, not results.
#
# usage: bash examples/demo.sh [OUT_DIR]      (make demo runs it inside the project's venv)
# Set DEMO_SCALE=4 (or more) for a longer, more meaningful run.
set -euo pipefail
OUT=${1:-demo_out}
S=${DEMO_SCALE:-1}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MODELS="$OUT/models"
export NEURALANNOT_BODY_MODELS="$MODELS"

step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

step "1. stand-in body models (licensed SMPL-X/MANO/FLAME files are not shipped)"
neuralannot models make-standin "$MODELS"
neuralannot models check --model-dir "$MODELS"

step "2. synthetic datasets in the real formats (known GT)"
neuralannot synth --kind h36m --out "$OUT/data/h36m" --count $((24 * S)) --image-size 128 --subjects 1,5,6,7,8 --seed 1
neuralannot synth --kind freihand --out "$OUT/data/freihand" --count $((16 * S)) --seed 2
neuralannot synth --kind coco-wholebody --out "$OUT/data/coco" --count $((24 * S)) --image-size 128 --seed 3 \
    --kp-noise-px 1

COMMON=(--stage1-epochs $((20 * S)) --stage2-epochs $((10 * S)) --batch-size 8 --input-size 64 --backbone resnet18 --lr 1e-3 --no-augment)
# body: 32-px crops and a longer stage 2 (what trained best per CPU second in the 512-image experiments)
BODY=(--stage1-epochs $((20 * S)) --stage2-epochs $((60 * S)) --lr-decay-epochs $((50 * S)) --batch-size 8 --input-size 32
      --backbone resnet18 --lr 1e-3 --no-augment)
step "3. train NeuralAnnot, body part (stage 1 on H36M-format aux, prior, stage 2 on half/half batches)"
neuralannot train --part body --aux h36m="$OUT/data/h36m" --target coco_wholebody="$OUT/data/coco" \
    --out "$OUT/runs/body" "${BODY[@]}"

step "4. train NeuralAnnot, hand part (FreiHAND-format aux, COCO-WholeBody hands as target)"
neuralannot train --part hand --aux freihand="$OUT/data/freihand" --target coco_wholebody="$OUT/data/coco" \
    --out "$OUT/runs/hand" "${COMMON[@]}"

COCO_JSON="$OUT/data/coco/annotations/coco_wholebody_train_v1.0.json"
step "5. annotate the target set (pseudo-GT in the released NeuralAnnot layout)"
neuralannot annotate "$COCO_JSON" --checkpoint "$OUT/runs/body" --out "$OUT/pseudo_gt/body.json"
neuralannot annotate "$COCO_JSON" --checkpoint "$OUT/runs/hand" --out "$OUT/pseudo_gt/hand.json"

step "5b. the SMPLify-X-style baseline on the same set (same output layout), for comparison"
neuralannot annotate "$COCO_JSON" --method smplifyx --out "$OUT/pseudo_gt/body_smplifyx.json" \
    --fit-iterations-scale 0.5

step "6. fit FLAME to the face keypoints"
neuralannot fit-face "$COCO_JSON" --out "$OUT/pseudo_gt/face.json" --iterations-scale 0.5

step "7. integrate body + hands + face into SMPL-X (Algorithm 2)"
neuralannot integrate --body "$OUT/pseudo_gt/body.json" --hand "$OUT/pseudo_gt/hand.json" \
    --face "$OUT/pseudo_gt/face.json" --out "$OUT/pseudo_gt/smplx.json"

HIDDEN="$OUT/data/coco/annotations/synth_hidden_gt_train.json"
step "8. direct evaluation against the synthetic set's hidden GT: NeuralAnnot vs the baseline"
neuralannot evaluate direct "$OUT/pseudo_gt/body.json" --name neuralannot --dataset "$COCO_JSON" --gt "$HIDDEN" \
    --compare smplifyx="$OUT/pseudo_gt/body_smplifyx.json" --out "$OUT/report"

step "9. overlays (pseudo-GT meshes over the images, side by side with the baseline)"
neuralannot evaluate render "$OUT/pseudo_gt/body.json" --dataset "$COCO_JSON" \
    --compare "$OUT/pseudo_gt/body_smplifyx.json" --out "$OUT/overlays" --max-images 8

step "done"
echo "Everything is under $OUT/:"
echo "  models/     stand-in body models          data/       synthetic datasets (+ hidden GT side files)"
echo "  runs/       checkpoints, metrics.jsonl    pseudo_gt/  body.json hand.json face.json smplx.json ..."
echo "  report/     report.json, error_hist.png, per_joint.png    overlays/   grid.png and one PNG per sample"
echo "These were made with STAND-IN body models: they exercise the pipeline, they are not real annotations."
