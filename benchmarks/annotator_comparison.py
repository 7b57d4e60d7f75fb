"""NeuralAnnot vs the SMPLify-X-style baseline on synthetic data: accuracy and wall time, one run, one table.

    PYTHONPATH=. .venv/bin/python benchmarks/annotator_comparison.py [--count 2000] [--image-size 128]
        [--epochs 10] [--out DIR] [--seed 0] [--threads N] [--model-dir DIR] [--device cuda]
        [--per-sample-subset 16] [--fit-iterations-scale 1.0] [--kp-noise-px 1.0] [--input-size 64]
        [--batch-size 16] [--lr 1e-3] [--cache-images] ...   (--help lists all)

What runs (all in this process, the library API the CLI calls):

1. ``neuralannot synth``: an H36M-format auxiliary set (GT 3D joints; train subjects 1, 5, 6, 7, 8) and a
   COCO-WholeBody-format target set (2D labels only, ``--kp-noise-px`` label noise; its exact 3D sits in the
   hidden side file ``annotations/synth_hidden_gt_train.json``), ``--count`` images each, rendered with the
   stand-in body model (``--model-dir`` for real SMPL-X files).
2. NeuralAnnot body training (Algorithm 1: stage 1 on the aux set, learned prior, stage 2 on half-aux /
   half-target batches): resnet18 from scratch, ``--input-size`` (64), ``--batch-size`` (16), ``--lr`` (1e-3),
   ``--epochs`` per stage (or ``--stage1-epochs`` / ``--stage2-epochs``), no augmentation by default; ``--cache-images``
   decodes each image once (a GPU run is otherwise bound by JPEG decoding); ``--augment`` turns on
   the scale/rotation/colour augmentation, ``--w-2d`` / ``--lambda-tg`` set the stage-2 loss weights.
3. NeuralAnnot annotates the target set and the aux set (``run_annotate`` + ``NetworkPredictor``).
4. The SMPLify-X-style baseline (``FitPredictor``) annotates both sets, batched (``--fit-batch-size`` samples
   per optimisation batch). It fits the 2D keypoints only on BOTH sets (no ``--use-3d``): the comparison on
   the aux set measures the 3D error of annotations made from 2D, as the paper's Table 1 does; NeuralAnnot's
   prediction on the aux set is also made from the image alone (the aux 3D was seen in training, which is
   the method). The per-sample baseline (``fit_samples(mode='per_sample')``, one optimisation per sample,
   the classic SMPLify-X way) is timed on the first ``--per-sample-subset`` target samples -- in every run (also
   with ``--baseline-from``), on ``--device`` and on the CPU, the speed-up taken against the faster -- and its time is
   EXTRAPOLATED linearly to ``--count``; its accuracy is that of the batched fit (same optimisation, same
   stages; the table repeats the batched numbers and says so).
5. ``evaluate_direct``: aux = MPJPE (root-aligned) / PA-MPJPE against the dataset's GT 3D joints (h36m_17);
   target = PA-MPJPE against the hidden GT 3D (coco_wholebody_133 body joints) and 2D error (px) against the
   exact GT projections. The aux set's pseudo-GT files use the field's world-frame Human3.6M layout: ONE
   record per frame although 4 cameras see it (the best-scoring view is kept, for both methods alike); since
   session 9 ``evaluate_direct`` scores that record in all 4 views, as the field's loaders use it (before, only
   in the view it came from, ~``--count / 4`` samples). Root-relative 3D errors do not depend on the view, so
   the aux 3D columns are the same either way.

Wall time "target set": NeuralAnnot = training (once, on aux + target) + annotating the target set
(end to end, the paper's claim); the baseline = fitting the target set. The aux-set annotation times are
printed separately. Targets of issue 6: target PA-MPJPE <= 0.7x the baseline's, aux 3D error <= 0.5x,
end-to-end time >= 100x faster than the per-sample baseline. Results also go to ``<out>/benchmark.json``.
Stand-in models are not human bodies: numbers made with them measure the pipeline, not the paper's claims.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

AUX_SUBJECTS = (1, 5, 6, 7, 8)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


AUX_VIEW_PICK = "lowest 2D error in h36m_17"
"""How the aux pseudo-GT files keep one view per frame (stored in ``benchmark.json``; a ``--baseline-from`` run
written under another rule gets its aux baseline refitted)."""


def _synth(kind: str, out: Path, count: int, size: int, seed: int, model_dir: Path, **kw):
    from neuralannot_cli.data.synth import SynthConfig, generate

    t0 = time.perf_counter()
    summary = generate(SynthConfig(kind=kind, out_dir=out, count=count, image_size=size, seed=seed,  # type: ignore[arg-type]
                                   model_dir=model_dir, **kw).checked())
    _log(f"synth {kind}: {summary.num_images} images in {time.perf_counter() - t0:.1f} s -> {out}")
    return summary


def _annotate(dataset_json: Path, out: Path, predictor, model_dir: Path, batch_size: int, device: str):
    from neuralannot_cli.io.annotate_run import AnnotateConfig, run_annotate

    config = AnnotateConfig(dataset_json=dataset_json, checkpoint=getattr(predictor, "checkpoint", None), out=out,
                            batch_size=batch_size, model_dir=model_dir, device=device)
    t0 = time.perf_counter()
    summary = run_annotate(config, predictor)
    return summary, time.perf_counter() - t0


def _aux_jsons(aux_root: Path) -> list[Path]:
    """The subjects' data files that hold images (a small --count leaves the last subjects empty)."""
    files = [aux_root / "annotations" / f"Human36M_subject{s}_data.json" for s in AUX_SUBJECTS]
    return [f for f in files if f.is_file() and json.loads(f.read_text()).get("images")]


def _evaluate(pgts: dict[str, Path], dataset_json: Path, hidden: Path, model_dir: Path):
    from neuralannot_cli.evaluate.direct import evaluate_direct

    return {m.name: m for m in evaluate_direct({k: str(v) for k, v in pgts.items()}, dataset_json,
                                               hidden_gt=hidden, model_dir=model_dir).methods}


def _train_breakdown(metrics: list[dict], train_s: float) -> dict[str, float]:
    """Where the training's wall time went, from ``metrics.jsonl``: the epochs' steps (their time less the waits
    for data and the per-epoch eval), the waits, the eval, the state saves, and the rest (setup, Θ*, prior)."""
    ep = [m for m in metrics if "seconds" in m]
    total = lambda key: float(sum(m.get(key, 0.0) for m in ep))  # noqa: E731
    epochs_s, loader_s, eval_s, save_s = total("seconds"), total("loader_seconds"), total("eval_seconds"), \
        total("save_seconds")
    steps = int(sum(m.get("steps", 0) for m in ep))
    steps_s = epochs_s - loader_s - eval_s
    return {"steps": steps, "steps_s": steps_s, "ms_per_step": 1000.0 * steps_s / max(steps, 1),
            "loader_s": loader_s, "eval_s": eval_s, "save_s": save_s,
            "other_s": train_s - epochs_s - save_s}


def _git_commit() -> str | None:
    """The code version that measured a run (``git rev-parse HEAD`` of this checkout), if it is a git checkout."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _fit_config_json(cfg) -> dict:
    import dataclasses

    from neuralannot_cli.io.annotate_run import json_safe

    return json_safe(dataclasses.asdict(cfg))


def _ratio(a: float, b: float) -> float:
    return a / b if b and np.isfinite(a) and np.isfinite(b) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000, help="images per set (aux and target)")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10, help="epochs of stage 1 and of stage 2")
    ap.add_argument("--stage1-epochs", type=int, default=None, help="override --epochs for stage 1")
    ap.add_argument("--stage2-epochs", type=int, default=None, help="override --epochs for stage 2")
    ap.add_argument("--input-size", type=int, default=64, help="network crop side (px)")
    ap.add_argument("--batch-size", type=int, default=16, help="training batch (stage 2: half aux, half target)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay-epochs", type=int, nargs="*", default=[], help="per stage, x0.1 at each")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (training)")
    ap.add_argument("--cache-images", action="store_true", help="decode each training image once (RAM)")
    ap.add_argument("--checkpoint-every", type=int, default=1, help="training state saved every N epochs")
    ap.add_argument("--cuda-graphs", action="store_true", help="training steps replayed from CUDA graphs "
                    "(TrainConfig.cuda_graphs; --device cuda)")
    ap.add_argument("--annotate-batch-size", type=int, default=32)
    ap.add_argument("--lambda-tg", type=float, default=None, help="stage-2 pose regulariser on target samples "
                    "(default: the library's LossWeights default)")
    ap.add_argument("--lambda-ax", type=float, default=None, help="stage-1 pose regulariser (default: the library's)")
    ap.add_argument("--w-root", type=float, default=None, help="stage-2 root rotation L1 vs theta* (default: the library's)")
    ap.add_argument("--w-2d", type=float, default=None, help="stage-2 2D keypoint weight (default: the library's)")
    ap.add_argument("--prior", default="learned", help="stage-2 pose prior (TrainConfig.prior)")
    ap.add_argument("--augment", action="store_true", help="scale/rotation/colour augmentation of training crops")
    ap.add_argument("--out", type=Path, default=None, help="keep every artefact here (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-seed", type=int, default=None,
                    help="seed of NeuralAnnot's training only (default: --seed); repeats measure run-to-run noise")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--model-dir", type=Path, default=None, help="real SMPL-X files (default: the stand-in)")
    ap.add_argument("--per-sample-subset", type=int, default=16, help="target samples timed per-sample")
    ap.add_argument("--fit-iterations-scale", type=float, default=1.0, help="baseline iterations x this")
    ap.add_argument("--fit-batch-size", type=int, default=64, help="baseline samples per optimisation batch")
    ap.add_argument("--kp-noise-px", type=float, default=1.0, help="noise of the target set's 2D labels")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--baseline-from", type=Path, default=None,
                    help="reuse the baseline pseudo-GT and measured times of a finished run (its --out) on the same "
                         "data and baseline options, to iterate on NeuralAnnot without refitting (said in the table)")
    ap.add_argument("--aux-baseline-3d", action="store_true",
                    help="also fit the aux set with its GT 3D joints (--use-3d): a per-sample fit that sees what "
                         "NeuralAnnot's stage 1 sees, reported as an extra aux row (not in the ratios)")
    ap.add_argument("--synth-only", action="store_true",
                    help="only write the stand-in models and the two synthetic sets into --out, then stop (prepare "
                         "the data on one machine, time the methods on another with the same --out)")
    args = ap.parse_args()
    if args.count < 2 or args.per_sample_subset < 1:
        ap.error("--count must be >= 2 and --per-sample-subset >= 1")
    if args.synth_only and args.out is None:
        ap.error("--synth-only needs --out (the data would go to a temp dir and be deleted)")
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.data.loaders import load_dataset
    from neuralannot_cli.fit.baseline import fit_samples
    from neuralannot_cli.fit.engine import default_fit_config
    from neuralannot_cli.io.annotate_run import FitPredictor, NetworkPredictor
    from neuralannot_cli.train.algorithm import _loss_weights, train
    from neuralannot_cli.train.config import TrainConfig
    from neuralannot_cli.train.inference import load_annotator

    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="annotator_comparison_")
        out = Path(tmp.name)
    else:
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir
    if model_dir is None:
        from neuralannot_cli.body.standin import make_standin

        model_dir = out / "models"
        if not (model_dir / "smplx" / "SMPLX_NEUTRAL.npz").is_file():  # kept with the data (--synth-only)
            make_standin(model_dir)
    standin = args.model_dir is None

    # 1. data ---------------------------------------------------------------------------------------------
    aux_root, tgt_root = out / "data" / "h36m", out / "data" / "coco"
    if not (aux_root / "annotations").is_dir():
        _synth("h36m", aux_root, args.count, args.image_size, args.seed + 1, model_dir, subjects=AUX_SUBJECTS)
    if not (tgt_root / "annotations").is_dir():
        _synth("coco-wholebody", tgt_root, args.count, args.image_size, args.seed + 2, model_dir,
               kp_noise_px=args.kp_noise_px)
    tgt_json = tgt_root / "annotations" / "coco_wholebody_train_v1.0.json"
    tgt_hidden = tgt_root / "annotations" / "synth_hidden_gt_train.json"
    aux_hidden = aux_root / "annotations" / "synth_hidden_gt_train.json"
    aux_jsons = _aux_jsons(aux_root)
    if args.synth_only:
        _log(f"data written to {out}/data (models: {model_dir}); --synth-only: stop")
        return

    # 2. NeuralAnnot training -----------------------------------------------------------------------------
    s1_epochs = args.stage1_epochs or args.epochs
    s2_epochs = args.stage2_epochs or args.epochs
    run_dir = out / "runs" / "body"
    if run_dir.exists():
        raise SystemExit(f"{run_dir}: a previous run is there; use a fresh --out")
    cfg = TrainConfig(part="body", aux=(("h36m", str(aux_root)),), target=(("coco_wholebody", str(tgt_root)),),
                      out_dir=str(run_dir), stage1_epochs=s1_epochs, stage2_epochs=s2_epochs,
                      batch_size=args.batch_size, lr=args.lr, lr_decay_epochs=tuple(args.lr_decay_epochs),
                      input_size=args.input_size, backbone="resnet18", device=args.device,
                      seed=args.seed if args.train_seed is None else args.train_seed,
                      model_dir=str(model_dir), workers=args.workers, cache_images=args.cache_images,
                      lambda_tg=args.lambda_tg, lambda_ax=args.lambda_ax, w_2d=args.w_2d, w_root=args.w_root,
                      augment=args.augment, prior=args.prior, checkpoint_every=args.checkpoint_every,
                      cuda_graphs=args.cuda_graphs, dataset_options=(("h36m", (("subjects", AUX_SUBJECTS),)),),
                      progress=False)
    used = _loss_weights(cfg)  # the weights training resolves from cfg (part defaults + the options given)
    _log(f"train NeuralAnnot body: {s1_epochs} + {s2_epochs} epochs ...")
    t0 = time.perf_counter()
    result = train(cfg)
    train_s = time.perf_counter() - t0
    theta_rec = next((m for m in result.metrics if str(m.get("stage", "")).startswith("theta_star")), {})
    last_s2 = [m for m in result.metrics if m.get("stage") == "stage2"][-1:] or [{}]
    train_steps = sum(int(m.get("steps", 0)) for m in result.metrics if "seconds" in m)
    graph_steps = sum(int(m.get("cuda_graph_steps", 0)) for m in result.metrics if "seconds" in m)
    graphs_note = f", CUDA graphs: {graph_steps} of {train_steps} steps replayed" if args.cuda_graphs else ""
    breakdown = _train_breakdown(result.metrics, train_s)
    _log(f"trained in {train_s:.1f} s; stage-1 theta* MPJPE {theta_rec.get('theta_star_mpjpe_mm', float('nan')):.1f} "
         f"mm; last stage-2 target 2D error {last_s2[0].get('target_2d_err_px', float('nan')):.2f} px")

    # 3. NeuralAnnot annotation ---------------------------------------------------------------------------
    pgt = out / "pseudo_gt"
    na = NetworkPredictor(load_annotator(run_dir, args.device, model_dir=model_dir), run_dir)
    _, na_tgt_s = _annotate(tgt_json, pgt / "neuralannot" / "target.json", na, model_dir, args.annotate_batch_size, args.device)
    aux_files: dict[str, list[Path]] = {"neuralannot": [], "smplifyx": []}  # one world-frame file per subject
    na_aux_s = 0.0
    for j in aux_jsons:
        summary, s = _annotate(j, pgt / "neuralannot" / "aux" / j.name, na, model_dir, args.annotate_batch_size, args.device)
        aux_files["neuralannot"].append(summary.files[0])
        na_aux_s += s
    _log(f"NeuralAnnot annotated target in {na_tgt_s:.1f} s, aux in {na_aux_s:.1f} s")

    # 4. baseline, batched (2D only on both sets) ---------------------------------------------------------
    fit_cfg = default_fit_config("body", iterations_scale=args.fit_iterations_scale, use_3d=False)
    if args.baseline_from is not None:  # reuse a finished run's baseline (same data + options, checked)
        prev = json.loads((args.baseline_from / "benchmark.json").read_text())
        for key in ("count", "image_size", "seed", "kp_noise_px", "fit_iterations_scale", "fit_batch_size",
                    "per_sample_subset", "model_dir"):
            if prev["args"].get(key) != (str(getattr(args, key)) if isinstance(getattr(args, key), Path)
                                         else getattr(args, key)):
                raise SystemExit(f"{args.baseline_from}/benchmark.json: args.{key}: {prev['args'].get(key)!r} "
                                 f"differs from this run's {getattr(args, key)!r}; the baseline cannot be reused")
        import shutil

        shutil.copytree(args.baseline_from / "pseudo_gt" / "smplifyx", pgt / "smplifyx")
        sec = prev["seconds"]
        bl_tgt_s, bl_aux_s = sec["baseline_batched_target"], sec["baseline_batched_aux"]
        reproj = prev.get("baseline_reproj_px", {})  # absent in files written before it was recorded
        bl_reproj_batched = float(reproj.get("batched", float("nan")))
        if prev.get("fit_config") not in (None, _fit_config_json(fit_cfg)):
            raise SystemExit(f"{args.baseline_from}/benchmark.json: fit_config differs from this run's; the "
                             "baseline cannot be reused")
        _log(f"baseline batched times reused from code {prev.get('git_commit', 'unknown (not recorded)')}")
        # both methods write the field's per-subject names into their own aux folder
        aux_files["smplifyx"] = [pgt / "smplifyx" / "aux" / f.name for f in aux_files["neuralannot"]]
        missing = [f for f in aux_files["smplifyx"] if not f.is_file()]
        if missing:
            raise SystemExit(f"{args.baseline_from}: baseline aux file {missing[0].name} not found")
        if prev.get("aux_view_pick") != AUX_VIEW_PICK:
            # its aux files kept each frame's view by an older rule (before session 9: always camera 1, as no score
            # could be computed); NeuralAnnot's aux files keep the best view now, so the baseline's are refitted
            fp = FitPredictor("body", fit_config=fit_cfg, use_3d=False, model_dir=model_dir, device=args.device)
            bl_aux_s, aux_files["smplifyx"] = 0.0, []
            for j in aux_jsons:
                summary, s = _annotate(j, pgt / "smplifyx" / "aux" / j.name, fp, model_dir, args.fit_batch_size,
                                       args.device)
                aux_files["smplifyx"].append(summary.files[0])
                bl_aux_s += s
            _log(f"baseline aux REFITTED ({args.baseline_from} predates the view choice '{AUX_VIEW_PICK}') in "
                 f"{bl_aux_s:.1f} s")
        _log(f"baseline REUSED from {args.baseline_from} (its pseudo-GT and batched-fit times)")
    else:
        fp = FitPredictor("body", fit_config=fit_cfg, use_3d=False, model_dir=model_dir, device=args.device)
        _, bl_tgt_s = _annotate(tgt_json, pgt / "smplifyx" / "target.json", fp, model_dir, args.fit_batch_size,
                                args.device)
        bl_reproj_batched = float(np.mean(fp.reproj_err_px)) if fp.reproj_err_px else float("nan")
        bl_aux_s = 0.0
        for j in aux_jsons:
            summary, s = _annotate(j, pgt / "smplifyx" / "aux" / j.name, fp, model_dir, args.fit_batch_size,
                                   args.device)
            aux_files["smplifyx"].append(summary.files[0])
            bl_aux_s += s
        _log(f"baseline (batched) fitted target in {bl_tgt_s:.1f} s, aux in {bl_aux_s:.1f} s")

    # 4b. baseline, per-sample, on a timed subset of the target set (extrapolated) -- measured in EVERY run (a
    # reused run's time would be another code version's), on --device and, if that is not the CPU, on the CPU
    # too: the classic one-sample-at-a-time fit is launch-bound on a GPU and may be faster on one CPU core, and
    # the speed-up is taken against the faster of the two
    subset = load_dataset("coco_wholebody", tgt_root)[: args.per_sample_subset]
    ps_n = len(subset)
    ps_by_device: dict[str, float] = {}
    for dev in dict.fromkeys([args.device, "cpu"]):
        smplx = load_body_model("smplx", model_dir=model_dir, device=torch.device(dev))
        t0 = time.perf_counter()
        ps = fit_samples(subset, part="body", config=fit_cfg, models={"smplx": smplx}, device=dev, mode="per_sample")
        ps_by_device[dev] = time.perf_counter() - t0
        if dev == args.device:
            ps_reproj = (float(ps.reproj_err_px.float().mean()) if torch.is_tensor(ps.reproj_err_px)
                         else float(np.mean(ps.reproj_err_px)))
        _log(f"baseline (per-sample, {dev}) {ps_n} samples in {ps_by_device[dev]:.1f} s -> "
             f"{ps_by_device[dev] / ps_n * args.count:.0f} s for {args.count}")
    ps_device = min(ps_by_device, key=ps_by_device.get)  # type: ignore[arg-type]
    ps_subset_s = ps_by_device[ps_device]
    ps_tgt_s = ps_subset_s / ps_n * args.count

    # 4c. optionally, the aux set fitted with its GT 3D joints (what NeuralAnnot's stage 1 sees) --------------
    aux3d_files: list[Path] = []
    bl3d_aux_s = float("nan")
    if args.aux_baseline_3d:
        fp3 = FitPredictor("body", fit_config=default_fit_config("body", iterations_scale=args.fit_iterations_scale,
                                                                   use_3d=True),
                           use_3d=True, model_dir=model_dir, device=args.device)
        bl3d_aux_s = 0.0
        for j in aux_jsons:
            summary, s = _annotate(j, pgt / "smplifyx_3d" / "aux" / j.name, fp3, model_dir, args.fit_batch_size,
                                   args.device)
            aux3d_files.append(summary.files[0])
            bl3d_aux_s += s
        _log(f"baseline with GT 3D (batched) fitted aux in {bl3d_aux_s:.1f} s")

    # 5. evaluation ---------------------------------------------------------------------------------------
    tgt = _evaluate({"neuralannot": pgt / "neuralannot" / "target.json",
                     "smplifyx": pgt / "smplifyx" / "target.json"}, tgt_json, tgt_hidden, model_dir)
    aux_mpjpe: dict[str, list[np.ndarray]] = {"neuralannot": [], "smplifyx": []}
    aux_pa: dict[str, list[np.ndarray]] = {"neuralannot": [], "smplifyx": []}
    if aux3d_files:
        aux_mpjpe["smplifyx_3d"], aux_pa["smplifyx_3d"] = [], []
    for i, j in enumerate(aux_jsons):
        files_i = {name: files[i] for name, files in aux_files.items()}
        if aux3d_files:
            files_i["smplifyx_3d"] = aux3d_files[i]
        res = _evaluate(files_i, j, aux_hidden, model_dir)
        for name, r in res.items():
            aux_mpjpe[name].append(r.per_sample_mpjpe_mm)
            aux_pa[name].append(r.per_sample_pa_mpjpe_mm)

    def mean(xs: list[np.ndarray]) -> float:
        a = np.concatenate(xs) if xs else np.zeros(0)
        a = a[np.isfinite(a)]
        return float(a.mean()) if a.size else float("nan")

    def finite(xs: list[np.ndarray]) -> int:  # the samples a mean is over (a failed fit's NaN is not one)
        return int(sum(np.isfinite(a).sum() for a in xs))

    rows = {}
    for name in ("neuralannot", "smplifyx"):
        rows[name] = {"aux_mpjpe_mm": mean(aux_mpjpe[name]), "aux_pa_mpjpe_mm": mean(aux_pa[name]),
                      "aux_n": finite(aux_mpjpe[name]), "aux_total": int(sum(a.size for a in aux_mpjpe[name])),
                      "target_pa_mpjpe_mm": tgt[name].pa_mpjpe_mm, "target_mpjpe_mm": tgt[name].mpjpe_mm,
                      "target_2d_px": tgt[name].error_2d_px, "target_n": tgt[name].num_3d}
    na_total_s = train_s + na_tgt_s
    r = {
        "pa_mpjpe_ratio": _ratio(rows["neuralannot"]["target_pa_mpjpe_mm"], rows["smplifyx"]["target_pa_mpjpe_mm"]),
        "aux_mpjpe_ratio": _ratio(rows["neuralannot"]["aux_mpjpe_mm"], rows["smplifyx"]["aux_mpjpe_mm"]),
        "aux_pa_mpjpe_ratio": _ratio(rows["neuralannot"]["aux_pa_mpjpe_mm"], rows["smplifyx"]["aux_pa_mpjpe_mm"]),
        "speedup_vs_per_sample": _ratio(ps_tgt_s, na_total_s),
        "speedup_vs_batched": _ratio(bl_tgt_s, na_total_s),
    }

    # table -----------------------------------------------------------------------------------------------
    n = args.count
    hdr = (f"{'method':<38} {'aux MPJPE':>10} {'aux PA':>8} {'tgt PA-MPJPE':>13} {'tgt 2D':>7} "
           f"{'time tgt (s)':>13}")
    units = f"{'':<38} {'mm':>10} {'mm':>8} {'mm':>13} {'px':>7} {'':>13}"
    line = "-" * len(hdr)
    nr, br = rows["neuralannot"], rows["smplifyx"]

    def row(label: str, d: dict, t: float, mark: str = "") -> str:
        return (f"{label:<38} {d['aux_mpjpe_mm']:>9.1f}{mark:1} {d['aux_pa_mpjpe_mm']:>7.1f}{mark:1} "
                f"{d['target_pa_mpjpe_mm']:>12.1f}{mark:1} {d['target_2d_px']:>6.2f}{mark:1} {t:>13.1f}")

    ok = lambda c: "MET" if c else "NOT met"  # noqa: E731
    train_seed_note = "" if args.train_seed is None else f" (training seed {args.train_seed})"
    out_lines = [
        f"annotator comparison: {n} aux (H36M format, subjects {','.join(map(str, AUX_SUBJECTS))}) + {n} target "
        f"(COCO-WholeBody format, {args.kp_noise_px:g} px label noise) synthetic images, {args.image_size} px, "
        f"seed {args.seed}{train_seed_note}; body model: {'STAND-IN (not a human body)' if standin else model_dir}",
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}",
        f"command: {' '.join(shlex.quote(a) for a in sys.argv)}",
        *([f"BASELINE REUSED from {args.baseline_from} (its pseudo-GT files and batched-fit times; same data and "
           f"baseline options, checked; the per-sample time is measured in this run)"] if args.baseline_from else []),
        line, hdr, units, line,
        row("NeuralAnnot (train + annotate)", nr, na_total_s),
        row("SMPLify-X-style, batched", br, bl_tgt_s),
        *[row(f"SMPLify-X-style, per-sample, {dev} (*)", br, t / ps_n * n, "*") for dev, t in ps_by_device.items()],
        *([f"{'SMPLify-X-style with GT 3D (aux only)':<38} {mean(aux_mpjpe['smplifyx_3d']):>10.1f} "
           f"{mean(aux_pa['smplifyx_3d']):>8.1f} {'-':>13} {'-':>7} {'-':>13}"] if aux3d_files else []),
        line,
        f"NeuralAnnot time = training {train_s:.1f} s (stage 1 + prior + stage 2, {s1_epochs}+{s2_epochs} epochs, "
        f"resnet18, input {args.input_size}, batch {args.batch_size}, lr {args.lr:g}, lambda_tg {used.lambda_tg:g}, "
        f"w_2d {used.w_2d:g}, lambda_ax {used.lambda_ax:g}, w_root {used.w_root:g}, "
        f"augment {'on' if args.augment else 'off'}, prior {args.prior}{graphs_note}; stage-1 theta* on the aux set: "
        f"MPJPE {theta_rec.get('theta_star_mpjpe_mm', float('nan')):.1f} mm) + annotating the target set {na_tgt_s:.1f} s ({n / na_tgt_s:.1f} img/s); "
        f"aux set annotation {na_aux_s:.1f} s (not counted)",
        f"training time: {breakdown['steps']} steps {breakdown['steps_s']:.1f} s ({breakdown['ms_per_step']:.1f} ms "
        f"per step), waiting for data {breakdown['loader_s']:.1f} s, per-epoch eval {breakdown['eval_s']:.1f} s, "
        f"state saves {breakdown['save_s']:.1f} s, other {breakdown['other_s']:.1f} s (setup, theta*, prior)",
        f"baseline: 2D keypoints only on both sets (no --use-3d), iterations x{args.fit_iterations_scale:g}, "
        f"{args.fit_batch_size} samples/optimisation batch; aux set fit {bl_aux_s:.1f} s (not counted)",
        f"(*) per-sample time EXTRAPOLATED: {ps_n} target samples fitted one by one ("
        + ", ".join(f"{dev} {t:.1f} s" for dev, t in ps_by_device.items())
        + f") -> x{n}/{ps_n}, measured in this run; the speed-up is taken against the faster ({ps_device}); its "
        f"accuracy columns repeat the batched fit (same optimisation; mean reprojection error per-sample subset "
        f"{ps_reproj:.2f} px vs batched set {bl_reproj_batched:.2f} px)",
        f"evaluated: aux {nr['aux_n']} / {br['aux_n']} of {nr['aux_total']} samples vs dataset GT 3D (Human3.6M protocol 2: 14 of the "
        f"h36m_17 joints, MPJPE root-aligned at the pelvis); target {nr['target_n']} / {br['target_n']} vs hidden GT "
        f"(coco_wholebody body joints)",
        line,
        f"ratios NeuralAnnot / baseline:  target PA-MPJPE {r['pa_mpjpe_ratio']:.2f}x (target <= 0.70: "
        f"{ok(r['pa_mpjpe_ratio'] <= 0.7)})",
        f"                                aux MPJPE {r['aux_mpjpe_ratio']:.2f}x, aux PA-MPJPE "
        f"{r['aux_pa_mpjpe_ratio']:.2f}x (target <= 0.50: MPJPE {ok(r['aux_mpjpe_ratio'] <= 0.5)}, "
        f"PA {ok(r['aux_pa_mpjpe_ratio'] <= 0.5)})",
        f"speed-up of NeuralAnnot end to end: {r['speedup_vs_per_sample']:.1f}x vs per-sample (target >= 100: "
        f"{ok(r['speedup_vs_per_sample'] >= 100)}), {r['speedup_vs_batched']:.2f}x vs batched",
        f"total benchmark wall time {time.perf_counter() - t_start:.0f} s; artefacts: "
        f"{out if tmp is None else '(temp dir, deleted; use --out)'}",
    ]
    print("\n".join(out_lines), flush=True)
    (out / "benchmark.json").write_text(json.dumps({
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows, "ratios": r, "standin": standin, "train_metrics": result.metrics,
        "baseline_reproj_px": {"batched": bl_reproj_batched, "per_sample_subset": ps_reproj},
        "baseline_from": str(args.baseline_from) if args.baseline_from else None, "aux_view_pick": AUX_VIEW_PICK,
        "git_commit": _git_commit(), "fit_config": _fit_config_json(fit_cfg),
        "per_sample_seconds_by_device": ps_by_device, "per_sample_device": ps_device,
        "aux_baseline_3d": ({"aux_mpjpe_mm": mean(aux_mpjpe["smplifyx_3d"]), "aux_pa_mpjpe_mm": mean(aux_pa["smplifyx_3d"]),
                             "seconds": bl3d_aux_s} if aux3d_files else None),
        "seconds": {"train": train_s, "neuralannot_target": na_tgt_s, "neuralannot_aux": na_aux_s,
                    "baseline_batched_target": bl_tgt_s, "baseline_batched_aux": bl_aux_s,
                    "baseline_per_sample_subset": ps_subset_s, "per_sample_subset_n": ps_n,
                    "baseline_per_sample_target_extrapolated": ps_tgt_s, "train_breakdown": breakdown},
        "table": out_lines}, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
