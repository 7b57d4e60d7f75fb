"""Annotate throughput vs backbone-only forward throughput (same batch size, input size, device; one run).

    PYTHONPATH=. .venv/bin/python benchmarks/annotate_throughput.py [--count 64] [--batch-size 16] [--device cpu]
        [--checkpoint DIR]  [--workers 0] [--backbone 50]

``annotate`` = the whole ``run_annotate`` job (image decode, crop, DataLoader, inference, records, progress
log with fsync per batch, final atomic JSON) on a synthetic COCO-WholeBody set made with the stand-in
body model. ``backbone`` = ``ResNetBackbone.forward`` alone on pre-made tensors of the same shape. The
ratio annotate/backbone is the pipeline efficiency (goal >= 0.9).

With ``--checkpoint`` the real annotator (``train.inference.load_annotator``) is used; without it (or
until that function exists) a PROXY annotator runs: the same ResNet backbone + a linear head whose output
is shaped like a ``Prediction`` (no body-model projection), which measures the I/O pipeline around the
network. The table says which one ran.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class _ProxyPrediction:
    root_rotvec: torch.Tensor
    pose_rotvecs: torch.Tensor
    betas: torch.Tensor
    transl_cam_m: torch.Tensor
    focal_px: torch.Tensor
    princpt_px: torch.Tensor
    keypoints_2d_px: torch.Tensor
    joints_3d_cam_mm: torch.Tensor


class _ProxyAnnotator:
    part = "body"

    def __init__(self, backbone: torch.nn.Module, input_size: int, device: str) -> None:
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.out_channels, 3 + 63 + 10 + 3).to(device).eval()
        self.input_size = input_size
        self.device = device

    def predict(self, batch):
        x = self.backbone(batch["image"].to(self.device, non_blocking=True))
        y = self.head(x).double().cpu()
        b = y.shape[0]
        return _ProxyPrediction(y[:, :3], y[:, 3:66].reshape(b, 21, 3), y[:, 66:76], y[:, 76:79] + torch.tensor([0, 0, 5.0]),
                                batch["focal_px"], batch["princpt_px"], torch.zeros(b, 23, 2), torch.zeros(b, 23, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--backbone", type=int, default=50, choices=(18, 34, 50))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--checkpoint", type=Path, default=None)
    args = ap.parse_args()

    from neuralannot_cli.body.standin import make_standin
    from neuralannot_cli.data.synth import SynthConfig, generate
    from neuralannot_cli.io.annotate_run import AnnotateConfig, run_annotate
    from neuralannot_cli.nets.backbone import ResNetBackbone

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_standin(tmp / "models")
        generate(SynthConfig(kind="coco-wholebody", out_dir=tmp / "coco", count=args.count, image_size=640,
                             model_dir=tmp / "models"))
        dataset_json = tmp / "coco" / "annotations" / "coco_wholebody_train_v1.0.json"
        which = "proxy (backbone + linear head)"
        annotator = None
        if args.checkpoint is not None:
            from neuralannot_cli.train.inference import load_annotator

            annotator = load_annotator(args.checkpoint, args.device)
            which = f"checkpoint {args.checkpoint}"
            input_size = int(annotator.input_size)
            backbone = ResNetBackbone(int(annotator.config["backbone_depth"])).to(args.device).eval()
        else:
            input_size = args.input_size
            backbone = ResNetBackbone(args.backbone).to(args.device).eval()
            annotator = _ProxyAnnotator(backbone, input_size, args.device)
        sync = torch.cuda.synchronize if str(args.device).startswith("cuda") else (lambda: None)

        # backbone only: same number of images, same batch size
        x = torch.randn(args.batch_size, 3, input_size, input_size, device=args.device)
        with torch.inference_mode():
            backbone(x)  # warm-up
            sync()
            t0 = time.perf_counter()
            done = 0
            while done < args.count:
                backbone(x[: min(args.batch_size, args.count - done)])
                done += min(args.batch_size, args.count - done)
            sync()
            bb_s = time.perf_counter() - t0

        cfg = AnnotateConfig(dataset_json, tmp, tmp / "pg.json", batch_size=args.batch_size, workers=args.workers,
                             device=args.device)
        run_annotate(AnnotateConfig(dataset_json, tmp, tmp / "warm.json", batch_size=args.batch_size,
                                    device=args.device, limit=args.batch_size), annotator)  # warm-up
        sync()
        t0 = time.perf_counter()
        summary = run_annotate(cfg, annotator)
        sync()
        an_s = time.perf_counter() - t0

    bb = args.count / bb_s
    an = summary.num_records / an_s
    print(f"annotator: {which}; device {args.device}; batch {args.batch_size}; input {input_size}; "
          f"ResNet-{backbone.depth}; {summary.num_records} images (640x640 JPEG); workers {args.workers}")
    print(f"{'':<22}{'images/s':>12}")
    print(f"{'backbone forward':<22}{bb:>12.1f}")
    print(f"{'annotate (end to end)':<22}{an:>12.1f}")
    print(f"{'ratio':<22}{an / bb:>12.3f}   (goal >= 0.9)")


if __name__ == "__main__":
    main()
