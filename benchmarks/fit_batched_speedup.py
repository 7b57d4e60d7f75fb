"""Batched vs per-sample SMPLify-X-style fitting throughput (samples/s), one run, printed as a table.

    python benchmarks/fit_batched_speedup.py [--part body|hand|face] [--count 16] [--iterations-scale 0.25]
                                             [--model-dir DIR] [--device cpu] [--threads N]

Synthetic targets: random poses of the (stand-in unless --model-dir) model projected by a known camera
with 1 px noise. Both modes run the same stages with Adam (identical results up to rounding).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _targets(model, part: str, n: int, seed: int):
    from neuralannot_cli.camera import project_perspective
    from neuralannot_cli.data import synth_pose as sp
    from neuralannot_cli.fit.engine import FitTargets, layout_for

    rng = np.random.default_rng(seed)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=model.dtype, device=model.device)  # noqa: E731
    root = t(sp.euler_deg_to_rotvec(np.stack([180 + rng.uniform(-10, 10, n), rng.uniform(-30, 30, n), np.zeros(n)], -1)))
    if part == "body":
        p = {"body_pose_rotvecs": t(sp.sample_body_pose_rotvecs(rng, n)), "transl_m": t(np.c_[np.zeros((n, 2)), np.full(n, 4.0)])}
        js, nj = "coco_wholebody_133", 23
    elif part == "hand":
        mean = model.layer.hand_mean.detach().cpu().numpy().reshape(1, 15, 3)
        p = {"hand_pose_rotvecs": t(sp.sample_hand_pose_rotvecs_abs(rng, n) - mean), "transl_m": t(np.c_[np.zeros((n, 2)), np.full(n, 0.5)])}
        js, nj = "hand_21", 21
    else:
        p = {"jaw_rotvec": t(sp.euler_deg_to_rotvec(np.c_[rng.uniform(0, 20, n), np.zeros((n, 2))])),
             "expression": t(rng.normal(0, 0.7, (n, 10))), "transl_m": t(np.c_[np.zeros((n, 2)), np.full(n, 0.8)])}
        js, nj = "face_68", 68
    focal, princpt = t(np.full((n, 2), 1000.0)), t(np.full((n, 2), 500.0))
    with torch.no_grad():
        kp = project_perspective(model.joints_in(model(root_rotvec=root, **p), js)[:, :nj], focal, princpt)
    kp = kp + t(rng.normal(0, 1.0, kp.shape))
    return FitTargets(kp, torch.ones_like(kp[..., 0]), focal, princpt), layout_for(js, nj)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("body", "hand", "face"), default="body")
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--iterations-scale", type=float, default=0.25)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.fit.engine import default_fit_config, fit

    model_dir = args.model_dir
    tmp = None
    if model_dir is None:
        from neuralannot_cli.body.standin import make_standin

        tmp = tempfile.TemporaryDirectory()
        make_standin(tmp.name)
        model_dir = Path(tmp.name)
    model_type = {"body": "smplx", "hand": "mano", "face": "flame"}[args.part]
    model = load_body_model(model_type, model_dir=model_dir, device=torch.device(args.device))
    targets, layout = _targets(model, args.part, args.count, seed=0)
    config = default_fit_config(args.part, iterations_scale=args.iterations_scale)
    iters = sum(s.iterations for s in config.stages)

    rows = []
    for mode in ("per_sample", "batched"):
        t0 = time.perf_counter()
        res = fit(model, targets, config, part=args.part, layout=layout, mode=mode, batch_size=args.count)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append((mode, dt, args.count / dt, float(res.reproj_err_px.mean())))
    print(f"part={args.part} model={model_type}{' (stand-in)' if tmp else ''} samples={args.count} "
          f"iterations={iters} (+stage-1 root candidates) device={args.device} threads={torch.get_num_threads()}")
    print(f"{'mode':<12}{'seconds':>10}{'samples/s':>12}{'mean 2D err px':>16}")
    for mode, dt, sps, err in rows:
        print(f"{mode:<12}{dt:>10.2f}{sps:>12.3f}{err:>16.2f}")
    print(f"speed-up (batched / per-sample samples/s): {rows[1][2] / rows[0][2]:.1f}x")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
