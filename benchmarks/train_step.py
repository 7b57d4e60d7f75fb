"""One stage-2 training step (loss forward + backward + Adam), eager vs CUDA graphs, one run, a table.

    python benchmarks/train_step.py [--batch-sizes 64 128 256] [--steps 30] [--device cuda] [--model-dir DIR]
                                    [--input-size 32] [--threads N]

The step of ``neuralannot train``'s stage 2 (:class:`~neuralannot_cli.train.steps.Stage2Loss`: ResNet-18 at
``--input-size`` px, the SMPL-X joint forward, the half-aux (``h36m_17`` with 3D and Θ*) / half-target
(COCO-WholeBody 23 joints) losses, backward, the optimiser step of ``algorithm._optimizer_step`` incl. its
finiteness check) on fixed random batches that are already on the device: data loading is not timed. ``graphs``
replays the loss's forward and backward from a CUDA graph (:class:`~neuralannot_cli.train.cuda_graphs.LossRunner`,
``TrainConfig.cuda_graphs``); it needs a GPU (on the CPU only the eager column is measured). Prints the median
ms per step, the speed-up, and the largest relative difference of the weights after the timed steps (the same
steps from the same start: must be float noise).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(b: int, size: int, device: torch.device, gen: torch.Generator):
    from neuralannot_cli.train.steps import stage2_inputs

    half = b // 2

    def group(jset: str, j: int, is_target: bool):
        g = {"image": torch.randn(half, 3, size, size, generator=gen), "focal_crop_px": torch.full((half, 2), 1.2 * size),
             "princpt_crop_px": torch.full((half, 2), size / 2), "joint_set": [jset] * half,
             "keypoints_2d_crop_px": torch.rand(half, j, 2, generator=gen) * size,
             "keypoints_conf": (torch.rand(half, j, generator=gen) > 0.2).float()}
        if not is_target:
            g.update({"joints_3d_cam_mm": torch.randn(half, j, 3, generator=gen) * 300 + torch.tensor([0.0, 0.0, 4000.0]),
                      "has_3d": torch.ones(half, dtype=torch.bool),
                      "pose_rotvecs_star": 0.2 * torch.randn(half, 21, 3, generator=gen)})
        return g

    batch = {"aux": [group("h36m_17", 17, False)], "target": group("coco_wholebody_133", 23, True)}
    return stage2_inputs(batch, device, with_root=False)


def _run(net, bm, batch, size: int, steps: int, use_graphs: bool, device: torch.device) -> tuple[float, object]:
    from neuralannot_cli.losses import LossWeights
    from neuralannot_cli.train.algorithm import _optimizer_step
    from neuralannot_cli.train.cuda_graphs import LossRunner
    from neuralannot_cli.train.distributed import DistContext
    from neuralannot_cli.train.steps import Stage2Loss

    weights = LossWeights.for_part("body")
    groups, inputs = batch
    runner = LossRunner(use_graphs)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, foreach=True)
    ctx = DistContext(enabled=False, rank=0, world_size=1, local_rank=0, device=device)
    net.train()
    times = []
    for i in range(steps + 3):  # 3 untimed: allocator, cuDNN choice, the capture
        _sync(device)
        t0 = time.perf_counter()
        total, _ = runner(groups, lambda: Stage2Loss(net, None, bm, "body", size, weights, groups, with_root=False),
                          inputs)
        _optimizer_step(total, net, opt, ctx)
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    if use_graphs and runner.failed:
        raise RuntimeError("CUDA graph capture failed (see the warning)")
    return 1000 * statistics.median(times), net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--model-dir", type=Path, default=None, help="real SMPL-X files (default: the stand-in)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from neuralannot_cli.body.model import load_body_model
    from neuralannot_cli.nets.heads import Stage2Net

    device = torch.device(args.device)
    model_dir = args.model_dir
    if model_dir is None:
        from neuralannot_cli.body.standin import make_standin

        model_dir = Path(tempfile.mkdtemp(prefix="na_bench_models_"))
        make_standin(model_dir)
        print("body model: STAND-IN (random arrays in the SMPL-X format, not a human body)")
    bm = load_body_model("smplx", model_dir=model_dir, device=device)
    for p in bm.parameters():
        p.requires_grad_(False)
    graphs = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if graphs else "CPU"
    print(f"torch {torch.__version__}, {name}, {torch.get_num_threads()} threads, input {args.input_size} px, "
          f"median of {args.steps} steps")
    print(f"{'batch':>5} {'eager ms':>9} {'graphs ms':>10} {'speed-up':>9} {'max rel dW':>11}")
    for b in args.batch_sizes:
        torch.manual_seed(0)
        net0 = Stage2Net("body", 18, None).to(device)
        batch = _batch(b, args.input_size, device, torch.Generator().manual_seed(b))
        eager_ms, eager_net = _run(copy.deepcopy(net0), bm, batch, args.input_size, args.steps, False, device)
        if not graphs:
            print(f"{b:>5} {eager_ms:>9.1f} {'n/a':>10} {'n/a':>9} {'n/a':>11}")
            continue
        graph_ms, graph_net = _run(copy.deepcopy(net0), bm, batch, args.input_size, args.steps, True, device)
        rel = max(float((a - g).abs().max() / a.abs().max().clamp_min(1e-12))
                  for a, g in zip(eager_net.parameters(), graph_net.parameters()))
        print(f"{b:>5} {eager_ms:>9.1f} {graph_ms:>10.1f} {eager_ms / graph_ms:>8.1f}x {rel:>11.1e}")


if __name__ == "__main__":
    main()
