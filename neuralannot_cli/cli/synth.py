"""``neuralannot synth``: write a synthetic dataset in a real public format (with hidden ground truth)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from neuralannot_cli.cli._common import err_console, fail


class _Kind(str, Enum):
    h36m = "h36m"
    mpi3dhp = "mpi3dhp"
    coco_wholebody = "coco-wholebody"
    freihand = "freihand"
    interhand = "interhand"
    pw3d = "3dpw"


class _Background(str, Enum):
    random = "random"
    green = "green"


def _parse_subjects(text: str | None) -> tuple[int, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        fail(f"--subjects must be comma-separated integers such as '1,5,6', got {text!r}")


def synth(
    kind: Annotated[_Kind, typer.Option("--kind", help="Dataset format to write.", case_sensitive=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset root to write into (created).",
                                      file_okay=False)],
    count: Annotated[int, typer.Option(help="Number of images (= annotations).", min=1)] = 16,
    image_size: Annotated[int, typer.Option(help="Square image side in px (FreiHAND: always 224; real "
                                                 "Human3.6M is 1000x1002).", min=32)] = 256,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes identical files.")] = 0,
    kp_noise_px: Annotated[float, typer.Option(help="Sigma (px) of Gaussian noise on written 2D labels "
                                                    "(COCO-WholeBody; 0 = exact projections).", min=0.0)] = 0.0,
    occlusion_frac: Annotated[float, typer.Option(help="Probability that a keypoint is marked missing / "
                                                       "invisible.", min=0.0, max=0.99)] = 0.0,
    hands: Annotated[bool, typer.Option("--hands/--no-hands", help="SMPL-X sets: articulate and label the "
                                                                   "hands.")] = True,
    face: Annotated[bool, typer.Option("--face/--no-face", help="SMPL-X sets: jaw/expression and face "
                                                                "labels.")] = True,
    model_dir: Annotated[Optional[Path], typer.Option(
        help="Folder with SMPL-X / MANO files (else $NEURALANNOT_BODY_MODELS, the user folder, then the "
             "stand-in).", envvar="NEURALANNOT_BODY_MODELS", exists=True)] = None,
    split: Annotated[Optional[str], typer.Option(help="Split name (h36m: train|test, coco-wholebody: "
                                                      "train|val, freihand: training|evaluation, interhand: "
                                                      "train|val|test, 3dpw: train|validation|test).")] = None,
    subjects: Annotated[Optional[str], typer.Option(help="Human3.6M / MPI-INF-3DHP subjects, e.g. '1,5'.")] = None,
    background: Annotated[_Background, typer.Option(help="'random' textured backgrounds or a flat 'green' "
                                                         "screen.")] = _Background.random,
    batch_size: Annotated[int, typer.Option(help="Bodies posed per body-model call.", min=1)] = 8,
) -> None:
    """Render posed SMPL-X bodies / MANO hands (3dpw: SMPL bodies) into a dataset with the real file layout of KIND.

    Hidden ground truth (parameters, 3D joints, cameras) goes to annotations/synth_hidden_gt_{split}.json.

    Example: neuralannot synth --kind coco-wholebody --count 100 --out /tmp/synth_coco --kp-noise-px 2
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from neuralannot_cli.data.synth import SynthConfig, generate

    try:
        config = SynthConfig(
            kind=kind.value, out_dir=out, count=count, image_size=image_size, seed=seed, kp_noise_px=kp_noise_px,
            occlusion_frac=occlusion_frac, hands=hands, face=face, model_dir=model_dir, split=split,
            subjects=_parse_subjects(subjects), background=background.value, batch_size=batch_size,
        ).checked()
    except ValueError as exc:
        fail(str(exc))
    try:
        with Progress(TextColumn(f"synth {kind.value}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err_console, transient=False) as progress:
            task = progress.add_task("images", total=count)
            summary = generate(config, on_progress=lambda done, total: progress.update(task, completed=done))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    for note in summary.notes:
        err_console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    typer.echo(f"wrote {summary.num_images} images ({summary.kind}, split {summary.split}) under {summary.out_dir}")
    for path in summary.annotation_files:
        typer.echo(f"  {path}")
    typer.echo(f"  hidden ground truth: {summary.hidden_gt_file}")
    if summary.model_is_standin:
        err_console.print("[bold yellow]made with the STAND-IN body model[/] (not SMPL-X/MANO): fine for tests, "
                          "not for real experiments.", soft_wrap=True)
