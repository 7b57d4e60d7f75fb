"""SMPL-X forward + backward for joint losses: full mesh vs joint-support vertices, one run, a table.

    python benchmarks/body_forward.py [--batch-sizes 1 32 64] [--repeats 20] [--model-dir DIR]
                                      [--device cpu] [--threads N]

What training and fitting do per step: pose the model, read ``coco_wholebody_133[:23]`` and ``h36m_17``,
backward. ``full`` = smplx's ``SMPLXLayer`` on all vertices; ``support`` = ``BodyModel.forward(
full_mesh=False)`` (only the vertices the joints read). Prints the median time per call, the ratio and
the largest joint difference between the two (must be rounding only).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(bm, kw: dict[str, torch.Tensor], full_mesh: bool) -> torch.Tensor:
    out = bm(**kw, full_mesh=full_mesh)
    joints = torch.cat([bm.joints_in(out, "coco_wholebody_133")[:, :23], bm.joints_in(out, "h36m_17")], dim=1)
    joints.square().sum().backward()
    return joints.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 64])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--model-dir", type=Path, default=None, help="real SMPL-X files (default: the stand-in)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from neuralannot_cli.body.model import load_body_model

    device = torch.device(args.device)
    model_dir = args.model_dir
    if model_dir is None:
        from neuralannot_cli.body.standin import make_standin

        model_dir = Path(tempfile.mkdtemp(prefix="na_bench_models_"))
        make_standin(model_dir)
        print("body model: STAND-IN (random arrays in the SMPL-X format, not a human body)")
    bm = load_body_model("smplx", model_dir=model_dir, device=device)
    with torch.no_grad():
        posed = bm(betas=torch.zeros(1, bm.num_betas, device=device), full_mesh=False).vertex_ids
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"{posed.numel()} of {bm.num_vertices} vertices in the joint support")
    print(f"{'batch':>5} {'full ms':>9} {'support ms':>11} {'speed-up':>9} {'max |dJ| mm':>12}")
    g = torch.Generator().manual_seed(0)
    for b in args.batch_sizes:
        def params() -> dict[str, torch.Tensor]:
            return {"root_rotvec": torch.randn(b, 3, generator=g).to(device).requires_grad_(True),
                    "body_pose_rotvecs": (0.4 * torch.randn(b, 21, 3, generator=g)).to(device).requires_grad_(True),
                    "betas": torch.randn(b, bm.num_betas, generator=g).to(device).requires_grad_(True)}

        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.repeats + 2):
            for full_mesh in (True, False):  # interleaved, so drift hits both alike
                kw = params()
                _sync(device)
                t0 = time.perf_counter()
                _step(bm, kw, full_mesh)
                _sync(device)
                if i >= 2:  # warm-up
                    times[full_mesh].append(time.perf_counter() - t0)
        kw = params()
        diff = float((_step(bm, kw, True) - _step(bm, kw, False)).abs().max()) * 1000.0
        full, sup = statistics.median(times[True]) * 1e3, statistics.median(times[False]) * 1e3
        print(f"{b:>5} {full:>9.2f} {sup:>11.2f} {full / sup:>8.1f}x {diff:>12.2e}")


if __name__ == "__main__":
    main()
