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

``ops/step``: the operations one eager step dispatches (forward, backward, optimiser; views not counted), counted
with a ``TorchDispatchMode``: on a GPU each is a kernel launch, and a stage-2 step is launch-bound there, so this
is the CPU's proxy for the GPU's eager step time. ``--compare-rotvec-input`` also measures the step with the body
model fed axis-angle (the regressor's matrices converted to axis-angle and back, as before
``regressor_body_forward``) and prints the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
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


class _OpCounter:
    """Counts the non-view operations dispatched inside ``with``."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if not func.is_view and func.overloadpacket.__name__ not in ("detach", "view", "_unsafe_view"):
                    counter.count += 1
                return func(*args, **(kwargs or {}))

        self.count = 0
        self._mode = _Mode()

    def __enter__(self) -> "_OpCounter":
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def _rotvec_input(body_model, part, out, transl_m=None):
    """``regressor_body_forward`` with the matrices dropped: the body model fed axis-angle (the step before)."""
    from neuralannot_cli.train.geometry import regressor_body_forward

    return regressor_body_forward(body_model, part, dataclasses.replace(out, root_rotmat=None, pose_rotmats=None),
                                  transl_m)


def _run(net, bm, batch, size: int, steps: int, use_graphs: bool, device: torch.device,
         rotvec_input: bool = False) -> tuple[float, object, int]:
    from neuralannot_cli.losses import LossWeights
    from neuralannot_cli.train import steps as steps_module
    from neuralannot_cli.train.algorithm import _optimizer_step
    from neuralannot_cli.train.cuda_graphs import LossRunner
    from neuralannot_cli.train.distributed import DistContext
    from neuralannot_cli.train.steps import Stage2Loss

    weights = LossWeights.for_part("body")
    groups, inputs = batch
    saved = steps_module.regressor_body_forward
    if rotvec_input:
        steps_module.regressor_body_forward = _rotvec_input
    runner = LossRunner(use_graphs)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, foreach=True)
    ctx = DistContext(enabled=False, rank=0, world_size=1, local_rank=0, device=device)
    net.train()
    times = []
    ops = 0
    try:
        for i in range(steps + 4):  # 3 untimed: allocator, cuDNN choice, the capture; 1 counted, untimed
            _sync(device)
            t0 = time.perf_counter()
            with _OpCounter() if i == 3 else contextlib.nullcontext() as counter:
                total, _ = runner(groups, lambda: Stage2Loss(net, None, bm, "body", size, weights, groups,
                                                             with_root=False), inputs)
                _optimizer_step(total, net, opt, ctx)
            if counter is not None:
                ops = counter.count
            _sync(device)
            if i >= 4:
                times.append(time.perf_counter() - t0)
    finally:
        steps_module.regressor_body_forward = saved
    if use_graphs and runner.failed:
        raise RuntimeError("CUDA graph capture failed (see the warning)")
    return 1000 * statistics.median(times), net, ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--model-dir", type=Path, default=None, help="real SMPL-X files (default: the stand-in)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compare-rotvec-input", action="store_true",
                    help="also time the eager step with the body model fed axis-angle (the step before)")
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
    cmp = args.compare_rotvec_input
    head = f"{'batch':>5} {'ops/step':>8} {'eager ms':>9} {'graphs ms':>10} {'speed-up':>9} {'max rel dW':>11}"
    if cmp:
        head += f" | {'aa ops':>6} {'aa ms':>7} {'ops ratio':>9} {'ms ratio':>8}"
    print(head)
    for b in args.batch_sizes:
        torch.manual_seed(0)
        net0 = Stage2Net("body", 18, None).to(device)
        batch = _batch(b, args.input_size, device, torch.Generator().manual_seed(b))
        eager_ms, eager_net, ops = _run(copy.deepcopy(net0), bm, batch, args.input_size, args.steps, False, device)
        if graphs:
            graph_ms, graph_net, _ = _run(copy.deepcopy(net0), bm, batch, args.input_size, args.steps, True, device)
            rel = max(float((a - g).abs().max() / a.abs().max().clamp_min(1e-12))
                      for a, g in zip(eager_net.parameters(), graph_net.parameters()))
            line = f"{b:>5} {ops:>8} {eager_ms:>9.1f} {graph_ms:>10.1f} {eager_ms / graph_ms:>8.1f}x {rel:>11.1e}"
        else:
            line = f"{b:>5} {ops:>8} {eager_ms:>9.1f} {'n/a':>10} {'n/a':>9} {'n/a':>11}"
        if cmp:
            aa_ms, _, aa_ops = _run(copy.deepcopy(net0), bm, batch, args.input_size, args.steps, False, device,
                                    rotvec_input=True)
            line += f" | {aa_ops:>6} {aa_ms:>7.1f} {aa_ops / ops:>8.2f}x {aa_ms / eager_ms:>7.2f}x"
        print(line)


if __name__ == "__main__":
    main()
