"""Throughput of the synthetic generator (``neuralannot synth``), per dataset kind.

Usage::

    python benchmarks/generator_throughput.py [--count 48] [--image-size 256] [--model-dir DIR]

One run per kind into a temporary folder: posing (body model, float64), rendering
(:mod:`neuralannot_cli.render`), JPEG encoding and the annotation/hidden-GT JSON writes, i.e. the
wall time of :func:`neuralannot_cli.data.synth.generate` minus nothing. Model loading is excluded
by a warm-up call (1 image) per kind. Without ``--model-dir`` the stand-in models are built into a
temporary folder (same vertex/face counts as SMPL-X / MANO). Prints a table of samples/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from neuralannot_cli.data.synth import SYNTH_KINDS, SynthConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--kinds", nargs="*", default=list(SYNTH_KINDS))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            from neuralannot_cli.body.standin import make_standin

            model_dir = Path(tmp) / "models"
            make_standin(model_dir)
        rows = []
        for kind in args.kinds:
            base = dict(kind=kind, image_size=args.image_size, model_dir=model_dir, seed=0)
            generate(SynthConfig(out_dir=Path(tmp) / f"warm_{kind}", count=1, **base))
            t0 = time.perf_counter()
            summary = generate(SynthConfig(out_dir=Path(tmp) / kind, count=args.count, **base))
            dt = time.perf_counter() - t0
            rows.append((kind, summary.num_images, summary.hidden_gt_file.parent.parent, dt))
        print(f"neuralannot synth throughput: {args.count} images per kind, {args.image_size}^2 px "
              f"(FreiHAND 224^2), torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
              f"models: {'stand-in' if args.model_dir is None else args.model_dir}")
        print(f"{'kind':<16}{'images':>8}{'seconds':>10}{'samples/s':>12}")
        for kind, n, _, dt in rows:
            print(f"{kind:<16}{n:>8}{dt:>10.2f}{n / dt:>12.1f}")


if __name__ == "__main__":
    main()
