"""``neuralannot annotate``: batched inference writing pseudo-GT in the field's NeuralAnnot layout."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from neuralannot_cli.cli._common import err_console, fail


class _Kind(str, Enum):
    auto = "auto"
    coco_wholebody = "coco_wholebody"
    h36m = "h36m"
    mpi3dhp = "mpi3dhp"
    freihand = "freihand"
    interhand = "interhand"


class _Format(str, Enum):
    json = "json"
    npz = "npz"


def _load_annotator(checkpoint: Path, device: str) -> Any:
    """``neuralannot_cli.train.checkpoint.load_annotator`` (separate so tests can substitute an annotator)."""
    from neuralannot_cli.train.checkpoint import load_annotator

    return load_annotator(checkpoint, device)


def annotate(
    dataset_json: Annotated[Path, typer.Argument(help="Dataset annotation file, e.g. "
                                                      ".../annotations/coco_wholebody_train_v1.0.json.",
                                                 dir_okay=False)],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint folder written by "
                                                                        "'neuralannot train'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.json, or .npz with --format npz); "
                                                          "Human3.6M JSON: a folder of per-subject files.")],
    kind: Annotated[_Kind, typer.Option(help="Dataset format; 'auto' infers it from the file name.",
                                        case_sensitive=False)] = _Kind.auto,
    fmt: Annotated[_Format, typer.Option("--format", help="'json': the layout of the released NeuralAnnot "
                                                          "files; 'npz': stacked arrays for bulk use.",
                                         case_sensitive=False)] = _Format.json,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.", min=1)] = 32,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu, cuda, cuda:1.")] = "cpu",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.", min=0)] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run with the same options "
                                                          "(skips the samples already written).")] = False,
    model_dir: Annotated[Optional[Path], typer.Option(
        help="Folder with SMPL-X/MANO files (Human3.6M/MPI-INF-3DHP world-frame output needs SMPL-X); else "
             "$NEURALANNOT_BODY_MODELS, the user folder, then the stand-in.", envvar="NEURALANNOT_BODY_MODELS")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Annotate only the first N samples.", min=1)] = None,
) -> None:
    """Annotate a dataset with a trained NeuralAnnot checkpoint (pseudo-GT SMPL-X / MANO parameters).

    COCO-style sets are keyed by annotation id ({"smplx_param", "cam_param"}; hands: {"right", "left"} with
    {"mano_param", "cam_param"}); Human3.6M is written per subject keyed by action, subaction, frame in the
    world frame, as Hand4Whole's loaders read them. Run metadata goes to a *.meta.json sidecar.

    Example: neuralannot annotate data/coco/annotations/coco_wholebody_train_v1.0.json --checkpoint ckpt/ --out pseudo_gt.json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from neuralannot_cli.io.annotate_run import AnnotateConfig, infer_dataset, run_annotate

    if not dataset_json.is_file():
        fail(f"{dataset_json}: dataset file not found")
    if not checkpoint.is_dir():
        fail(f"{checkpoint}: checkpoint folder not found")
    try:
        infer_dataset(dataset_json, kind.value)
    except ValueError as exc:
        fail(str(exc))
    config = AnnotateConfig(dataset_json=dataset_json, checkpoint=checkpoint, out=out, kind=kind.value,
                            fmt=fmt.value, batch_size=batch_size, workers=workers, device=device, resume=resume,
                            model_dir=model_dir, limit=limit)
    try:
        annotator = _load_annotator(checkpoint, device)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        fail(f"{checkpoint}: cannot load the checkpoint: {exc}")
    try:
        with Progress(TextColumn("annotate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err_console, transient=False) as progress:
            task = progress.add_task("samples", total=None)
            summary = run_annotate(config, annotator,
                                   on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or out}: cannot write: {exc.strerror or exc}")
    typer.echo(f"annotated {summary.num_records} {summary.part} samples ({summary.kind}; {summary.num_new} new, "
               f"{summary.num_resumed} resumed) in {summary.seconds:.1f} s")
    for path in summary.files:
        typer.echo(f"  {path}")
    typer.echo(f"  metadata: {summary.meta_file}")
