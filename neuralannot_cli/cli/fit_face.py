"""``neuralannot fit-face``: FLAME fitting to the 68 COCO-WholeBody face keypoints (library: :mod:`neuralannot_cli.fit.face`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from neuralannot_cli.cli._common import err_console, fail


def fit_face(
    coco_wholebody_json: Annotated[Path, typer.Argument(
        help="COCO-WholeBody annotation file (coco_wholebody_{train,val}_v1.0.json).", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSON (written atomically), keyed by ann id.",
                                      dir_okay=False)],
    model_dir: Annotated[Optional[Path], typer.Option(
        help="Folder with the FLAME files (else $NEURALANNOT_BODY_MODELS, the user folder, then the stand-in).",
        envvar="NEURALANNOT_BODY_MODELS", exists=True)] = None,
    batch_size: Annotated[int, typer.Option(help="Faces optimised together in one batch.", min=1)] = 64,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda:0.")] = "cpu",
    min_visible: Annotated[int, typer.Option(help="Skip faces with fewer labelled face keypoints.", min=1)] = 10,
    iterations_scale: Annotated[float, typer.Option(help="Multiply every stage's iteration count.", min=0.01)] = 1.0,
    optimizer: Annotated[str, typer.Option(help="'adam' (samples independent) or 'lbfgs' (SMPLify-X).")] = "adam",
    omit_skipped: Annotated[bool, typer.Option(help="Leave skipped faces out of the file (readers that test "
                                                    "'str(aid) in params').")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run with the same options "
                                                          "(OUT.progress.jsonl keeps the finished batches).")] = False,
) -> None:
    """Fit FLAME (global rotation, jaw, shape 10, expression 10, translation) to COCO-WholeBody face keypoints.

    Faces with face_valid false, no face box or fewer than --min-visible labelled keypoints are recorded
    with face_valid false and a skip_reason. The camera is the image's default (focal sqrt(W^2+H^2) px,
    principal point at the centre) unless the loader provides intrinsics.

    Example: neuralannot fit-face annotations/coco_wholebody_train_v1.0.json --out MSCOCO_train_FLAME.json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if optimizer not in ("adam", "lbfgs"):
        fail(f"--optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    try:
        import torch

        from neuralannot_cli.body import load_body_model
        from neuralannot_cli.data.coco_wholebody import load_coco_wholebody
        from neuralannot_cli.fit.engine import default_fit_config
        from neuralannot_cli.fit.face import run_fit_face

        path = coco_wholebody_json.resolve()
        samples = load_coco_wholebody(path.parent.parent, annotation_path=path, skip_without_keypoints=False)
        model = load_body_model("flame", model_dir=model_dir, device=torch.device(device))
        config = default_fit_config("face", optimizer=optimizer, iterations_scale=iterations_scale)  # type: ignore[arg-type]
        with Progress(TextColumn("fit-face"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err_console, transient=False) as progress:
            task = progress.add_task("faces", total=len(samples))
            summary = run_fit_face(
                samples, out, model=model, config=config, min_visible=min_visible, batch_size=batch_size,
                omit_skipped=omit_skipped, resume=resume,
                fingerprint={"dataset_json": str(path), "device": str(device), "optimizer": optimizer},
                progress=lambda done, total: progress.update(task, completed=done, total=total))
    except typer.Exit:
        raise
    except KeyError as exc:  # pycocotools indexing a field the file lacks
        fail(f"{coco_wholebody_json}: missing field {exc.args[0]!r}")
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:  # e.g. the output folder is not writable
        fail(f"{exc.filename or out}: {exc.strerror or exc}")
    s = summary
    resumed = f" ({s.num_resumed} from the interrupted run)" if s.num_resumed else ""
    err_console.print(f"fit-face: {s.num_fitted} of {s.num_records} faces fitted, {s.num_records - s.num_fitted} "
                      f"skipped{resumed} -> {s.out}")
