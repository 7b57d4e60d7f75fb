"""``neuralannot train``: Algorithm 1 of NeuralAnnot (body or hand); a thin layer over :mod:`neuralannot_cli.train`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from neuralannot_cli.cli._common import fail


class _Part(str, Enum):
    body = "body"
    hand = "hand"


class _Backbone(str, Enum):
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"


def _parse_datasets(values: list[str] | None, option: str) -> dict[str, str] | None:
    """``['h36m=/data/h36m', 'mpi3dhp']`` -> ``{'h36m': '/data/h36m', 'mpi3dhp': ''}`` (roots from YAML)."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        name, _, root = value.partition("=")
        name = name.strip().replace("-", "_")
        if not name:
            fail(f"{option}: expected NAME=ROOT or NAME, got {value!r}")
        out[name] = root.strip()
    return out


def train(
    part: Annotated[Optional[_Part], typer.Option(help="What to annotate: SMPL-X 'body' or MANO 'hand'.")] = None,
    aux: Annotated[Optional[list[str]], typer.Option(
        help="Auxiliary 3D set as KIND=ROOT (repeatable): body h36m, mpi3dhp, 3dpw (GT joints from its SMPL "
             "GT: needs SMPL + J_regressor_h36m_correct.npy; split train); hand freihand, interhand. "
             "KIND alone takes its root from --config.")] = None,
    target: Annotated[Optional[list[str]], typer.Option(help="Target 2D set as KIND=ROOT (coco_wholebody).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory.", file_okay=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file of options (CLI values win).",
                                                   exists=True, dir_okay=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs of each stage.", min=0)] = None,
    stage1_epochs: Annotated[Optional[int], typer.Option(help="Stage-1 epochs (overrides --epochs).", min=0)] = None,
    stage2_epochs: Annotated[Optional[int], typer.Option(help="Stage-2 epochs (overrides --epochs).", min=0)] = None,
    prior_epochs: Annotated[Optional[int], typer.Option(help="Epochs of the learned VPoser.", min=0)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch per process (even; stage 2 half aux/half "
                                                           "target).", min=2)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate (default 1e-4).")] = None,
    lr_decay_epochs: Annotated[Optional[list[int]], typer.Option(help="Epoch (per stage) at which lr *= 0.1; "
                                                                      "repeatable.")] = None,
    input_size: Annotated[Optional[int], typer.Option(help="Crop side in px (default 256).", min=16)] = None,
    backbone: Annotated[Optional[_Backbone], typer.Option(help="ResNet depth (default resnet50).")] = None,
    backbone_weights: Annotated[Optional[Path], typer.Option(help="ImageNet weights (.pth/.safetensors, "
                                                                  "torchvision names).", exists=True)] = None,
    prior: Annotated[Optional[str], typer.Option(help="'learned' (from stage-1 Θ*; the part's default kind), "
                                                      "'learned-pca', 'learned-vposer', 'none', 'mano' (hand PCA "
                                                      "of the model file) or a VPoser v2 checkpoint (.ckpt / "
                                                      ".pt / .safetensors, or the V02_05/ folder).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 ... (torchrun: per local rank).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader workers.", min=0)] = None,
    cache_images: Annotated[Optional[bool], typer.Option(
        "--cache-images/--no-cache-images", help="Decode each image once, before training, and keep it in RAM "
        "(sets that fit in memory; forked --workers share it); with --no-augment also each finished crop.")] = None,
    model_dir: Annotated[Optional[Path], typer.Option(
        help="Folder of SMPL-X / MANO files (else $NEURALANNOT_BODY_MODELS, the user folder, then the stand-in).",
        envvar="NEURALANNOT_BODY_MODELS", exists=True)] = None,
    max_samples: Annotated[Optional[int], typer.Option(help="Use the first N samples of each set (debug).",
                                                       min=1)] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Scale/rotation/colour "
                                                                                   "jitter.")] = None,
    stage1_root_frame: Annotated[Optional[bool], typer.Option(
        "--stage1-root-frame/--no-stage1-root-frame", help="Start stage 1's root rotation from the GT torso / palm "
        "frame (default; --no-... = the paper's plain regression).")] = None,
    stage1_canonical_joints: Annotated[Optional[bool], typer.Option(
        "--stage1-canonical-joints/--no-stage1-canonical-joints", help="Feed stage 1's pose branch the GT joints "
        "in the torso / palm frame (default; needs the root frame) instead of the camera frame.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        help="Save the resumable state every N epochs (and after each step's last); a kill loses at most N-1 "
        "epochs (default 1).", min=1)] = None,
    cuda_graphs: Annotated[Optional[bool], typer.Option(
        "--cuda-graphs/--no-cuda-graphs", help="Replay each training step's loss forward and backward from a CUDA "
        "graph (single-GPU runs; same numbers, far fewer kernel launches).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last completed "
                                                          "epoch.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress bar.")] = True,
) -> None:
    """Train NeuralAnnot: a stage-1 network per auxiliary set, its pseudo-GT Θ*, the pose prior, then stage 2
    on half-aux/half-target batches; writes model.safetensors + prior/ + config.json into --out.

    Example: neuralannot train --part body --aux h36m=/data/Human36M --target coco_wholebody=/data/coco
    --epochs 10 --batch-size 32 --out runs/body   (multi-GPU: torchrun --nproc-per-node 4 -m neuralannot_cli train ...)
    """
    from neuralannot_cli.train.algorithm import train as run_train
    from neuralannot_cli.train.config import config_from_options, load_yaml_options

    try:
        yaml_options = load_yaml_options(config) if config is not None else {}
        cli = {
            "part": part.value if part else None, "aux": _parse_datasets(aux, "--aux"),
            "target": _parse_datasets(target, "--target"), "out_dir": str(out) if out else None,
            "epochs": epochs, "stage1_epochs": stage1_epochs, "stage2_epochs": stage2_epochs,
            "prior_epochs": prior_epochs, "batch_size": batch_size, "lr": lr,
            "lr_decay_epochs": tuple(lr_decay_epochs) if lr_decay_epochs else None, "input_size": input_size,
            "backbone": backbone.value if backbone else None,
            "backbone_weights": str(backbone_weights) if backbone_weights else None, "prior": prior,
            "device": device, "seed": seed, "workers": workers, "model_dir": str(model_dir) if model_dir else None,
            "max_samples": max_samples, "augment": augment, "progress": progress,
            "stage1_root_frame": stage1_root_frame, "stage1_canonical_joints": stage1_canonical_joints,
            "cache_images": cache_images, "checkpoint_every": checkpoint_every, "cuda_graphs": cuda_graphs,
        }
        cfg = config_from_options(yaml_options, cli)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        fail(str(exc))
    try:
        result = run_train(cfg, resume=resume)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(f"annotator written to {result.out_dir} (config.json, model.safetensors, prior/)")
