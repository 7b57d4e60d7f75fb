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
    pw3d = "3dpw"


class _Format(str, Enum):
    json = "json"
    npz = "npz"


class _Method(str, Enum):
    neuralannot = "neuralannot"
    smplifyx = "smplifyx"


class _Part(str, Enum):
    auto = "auto"
    body = "body"
    hand = "hand"


class _Optimizer(str, Enum):
    adam = "adam"
    lbfgs = "lbfgs"


def _load_annotator(checkpoint: Path, device: str) -> Any:
    """``neuralannot_cli.train.checkpoint.load_annotator`` (separate so tests can substitute an annotator)."""
    from neuralannot_cli.train.inference import load_annotator

    return load_annotator(checkpoint, device)


def annotate(
    dataset_json: Annotated[Path, typer.Argument(help="Dataset annotation file, e.g. "
                                                      ".../annotations/coco_wholebody_train_v1.0.json.",
                                                 dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.json, or .npz with --format npz); "
                                                          "Human3.6M JSON: a folder of per-subject files.")],
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="Checkpoint folder written by 'neuralannot train' (--method neuralannot).")] = None,
    method: Annotated[_Method, typer.Option(
        help="'neuralannot': the trained network on image crops; 'smplifyx': the SMPLify-X-style baseline "
             "fitted to the 2D keypoints (no images read).", case_sensitive=False)] = _Method.neuralannot,
    part: Annotated[_Part, typer.Option(
        help="smplifyx: fit bodies (SMPL-X) or hands (MANO); 'auto': hands for FreiHAND/InterHand2.6M, else "
             "bodies. (neuralannot: the checkpoint's part.)", case_sensitive=False)] = _Part.auto,
    init: Annotated[Optional[Path], typer.Option(
        "--init", help="smplifyx: start each fit from this pseudo-GT file written by annotate (.json or .npz): "
                       "'SMPLify-X on ours'. Samples without a record start from the default.",
        dir_okay=True)] = None,
    use_3d: Annotated[bool, typer.Option("--use-3d", help="smplifyx: also fit the GT 3D joints of auxiliary "
                                                          "sets (Human3.6M, MPI-INF-3DHP, FreiHAND, ...).")] = False,
    fit_iterations_scale: Annotated[float, typer.Option(
        help="smplifyx: multiply every fitting stage's iteration count (1.0: the documented schedule).",
        min=0.001)] = 1.0,
    optimizer: Annotated[_Optimizer, typer.Option(help="smplifyx: optimizer of every stage.",
                                                  case_sensitive=False)] = _Optimizer.adam,
    kind: Annotated[_Kind, typer.Option(help="Dataset format; 'auto' infers it from the file name.",
                                        case_sensitive=False)] = _Kind.auto,
    fmt: Annotated[_Format, typer.Option("--format", help="'json': the layout of the released NeuralAnnot "
                                                          "files; 'npz': stacked arrays for bulk use.",
                                         case_sensitive=False)] = _Format.json,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass (smplifyx: samples per "
                                                 "optimisation batch).", min=1)] = 32,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu, cuda, cuda:1.")] = "cpu",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.", min=0)] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run with the same options "
                                                          "(skips the samples already written).")] = False,
    model_dir: Annotated[Optional[Path], typer.Option(
        help="Folder with SMPL-X/MANO files (Human3.6M/MPI-INF-3DHP/InterHand2.6M world-frame output and smplifyx "
             "need them); else $NEURALANNOT_BODY_MODELS, the user folder, then the stand-in.", envvar="NEURALANNOT_BODY_MODELS")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Annotate only the first N samples.", min=1)] = None,
) -> None:
    """Annotate a dataset with pseudo-GT SMPL-X / MANO parameters: a trained NeuralAnnot checkpoint, or the
    SMPLify-X-style baseline (--method smplifyx), both writing the same files.

    COCO-style sets are keyed by annotation id ({"smplx_param", "cam_param"}; hands: {"right", "left"} with
    {"mano_param", "cam_param"}); Human3.6M is written per subject keyed by action, subaction, frame, and
    InterHand2.6M keyed by capture, frame, hand, in the world frame, as Hand4Whole's loaders read them. Run
    metadata (method, timing) goes to a *.meta.json sidecar.

    Example: neuralannot annotate data/coco/annotations/coco_wholebody_train_v1.0.json --checkpoint ckpt/ --out pseudo_gt.json

    Baseline: neuralannot annotate .../coco_wholebody_train_v1.0.json --method smplifyx --part hand --out hands_smplifyx.json

    SMPLify-X on ours: neuralannot annotate ... --method smplifyx --init pseudo_gt.json --optimizer lbfgs --out refit.json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from neuralannot_cli.io.annotate_run import (
        AnnotateConfig,
        FitPredictor,
        NetworkPredictor,
        infer_dataset,
        init_from_pseudo_gt,
        run_annotate,
    )

    if not dataset_json.is_file():
        fail(f"{dataset_json}: dataset file not found")
    try:
        kind_name = infer_dataset(dataset_json, kind.value)[0]
    except ValueError as exc:
        fail(str(exc))
    if method == _Method.neuralannot:
        if checkpoint is None:
            fail("--checkpoint: required with --method neuralannot (or pass --method smplifyx)")
        if not checkpoint.is_dir():
            fail(f"{checkpoint}: checkpoint folder not found")
        for name, given in (("--init", init is not None), ("--use-3d", use_3d), ("--part", part != _Part.auto),
                            ("--fit-iterations-scale", fit_iterations_scale != 1.0),
                            ("--optimizer", optimizer != _Optimizer.adam)):
            if given:
                fail(f"{name}: only used with --method smplifyx")
    elif checkpoint is not None:
        fail("--checkpoint: not used with --method smplifyx")
    config = AnnotateConfig(dataset_json=dataset_json, checkpoint=checkpoint, out=out, kind=kind.value,
                            fmt=fmt.value, batch_size=batch_size, workers=workers, device=device, resume=resume,
                            model_dir=model_dir, limit=limit)
    if method == _Method.neuralannot:
        try:
            predictor: Any = NetworkPredictor(_load_annotator(checkpoint, device), checkpoint)  # type: ignore[arg-type]
        except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
            fail(f"{checkpoint}: cannot load the checkpoint: {exc}")
    else:
        from neuralannot_cli.fit.engine import default_fit_config

        fit_part = part.value if part != _Part.auto else ("hand" if kind_name in ("freihand", "interhand") else "body")
        starts = None
        if init is not None:
            if not init.exists():
                fail(f"{init}: --init file not found")
            try:
                starts = init_from_pseudo_gt(init, fit_part, dataset_json=dataset_json, kind=kind.value,  # type: ignore[arg-type]
                                             model_dir=model_dir, device=device)
            except (FileNotFoundError, ValueError) as exc:
                fail(f"--init: {exc}")
        fit_config = default_fit_config(fit_part, optimizer=optimizer.value,  # type: ignore[arg-type]
                                        iterations_scale=fit_iterations_scale, use_3d=use_3d)
        predictor = FitPredictor(fit_part, fit_config=fit_config, init=starts, init_file=init,  # type: ignore[arg-type]
                                 use_3d=use_3d, model_dir=model_dir, device=device)
    try:
        with Progress(TextColumn(f"annotate ({method.value})"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err_console, transient=False) as progress:
            task = progress.add_task("samples", total=None)
            summary = run_annotate(config, predictor,
                                   on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or out}: cannot write: {exc.strerror or exc}")
    rate = f", {summary.samples_per_s:.2f} samples/s" if summary.samples_per_s else ""
    typer.echo(f"annotated {summary.num_records} {summary.part} samples with {summary.method} ({summary.kind}; "
               f"{summary.num_new} new, {summary.num_resumed} resumed) in {summary.seconds:.1f} s{rate}")
    for path in summary.files:
        typer.echo(f"  {path}")
    typer.echo(f"  metadata: {summary.meta_file}")
