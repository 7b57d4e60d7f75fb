"""``neuralannot evaluate``: direct evaluation, overlays, and (indirect) estimator training on pseudo-GT."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from neuralannot_cli.cli._common import err_console, fail

app = typer.Typer(
    help="Evaluate pseudo-GT: direct 3D/2D error and time against GT, mesh overlays, indirect evaluation.",
    no_args_is_help=True,
)


class _Kind(str, Enum):
    auto = "auto"
    coco_wholebody = "coco_wholebody"
    h36m = "h36m"
    mpi3dhp = "mpi3dhp"
    freihand = "freihand"
    interhand = "interhand"
    pw3d = "3dpw"


_KIND_HELP = ("Dataset format; 'auto' infers it from the dataset file name (as 'neuralannot annotate'; "
              "3DPW_{split}.json is 3dpw, whose GT joints come from its GT SMPL meshes).")
_MODEL_DIR_HELP = ("Folder with SMPL-X/MANO files (3DPW: also SMPL and J_regressor_h36m_correct.npy); else "
                   "$NEURALANNOT_BODY_MODELS, the user folder, then the "
                   "stand-in (with --gt: the folder the synthetic set was made with).")


def _parse_compare(items: list[str], main_name: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            fail(f"--compare: expected NAME=PATH, got {item!r}")
        if name in out or name == main_name:
            fail(f"--compare: the name {name!r} is used twice")
        out[name] = Path(path)
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


@app.command("direct")
def direct(
    pseudo_gt: Annotated[Path, typer.Argument(help="Pseudo-GT file (.json / .npz; Human3.6M: the folder of "
                                                   "per-subject files) written by 'neuralannot annotate'.")],
    dataset: Annotated[Path, typer.Option("--dataset", "-d", help="Dataset annotation file the pseudo-GT was "
                                                                  "made for, e.g. .../coco_wholebody_val_v1.0.json.")],
    kind: Annotated[_Kind, typer.Option(help=_KIND_HELP, case_sensitive=False)] = _Kind.auto,
    gt: Annotated[Optional[Path], typer.Option("--gt", help="Hidden GT of a synthetic set "
                                                            "(annotations/synth_hidden_gt_{split}.json): 3D joints, "
                                                            "exact 2D and mesh GT.")] = None,
    compare: Annotated[Optional[list[str]], typer.Option("--compare", help="Another method's pseudo-GT as "
                                                                           "NAME=PATH (repeatable), evaluated side "
                                                                           "by side.")] = None,
    name: Annotated[str, typer.Option(help="Name of PSEUDO_GT in the table.")] = "neuralannot",
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (report.json, error_hist.png, "
                                                          "per_joint.png).")] = Path("eval_report"),
    model_dir: Annotated[Optional[Path], typer.Option(help=_MODEL_DIR_HELP, envvar="NEURALANNOT_BODY_MODELS")] = None,
    device: Annotated[str, typer.Option(help="torch device for the body-model forward passes.")] = "cpu",
) -> None:
    """3D / 2D annotation error and annotation time of pseudo-GT files against GT, side by side.

    3D: MPJPE (root-aligned) and PA-MPJPE in mm against the dataset's 3D joints (auxiliary sets) or the
    hidden GT of a synthetic set (--gt, which also gives MPVPE / PA-MPVPE); 2D: mean keypoint error in px;
    time from each file's .meta.json. Writes report.json and PNG plots under --out.

    Example: neuralannot evaluate direct pgt.json --dataset synth/annotations/coco_wholebody_train_v1.0.json --gt synth/annotations/synth_hidden_gt_train.json --compare baseline=fit.json
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from neuralannot_cli.evaluate.direct import evaluate_direct, write_report

    sources = {name: pseudo_gt, **_parse_compare(compare or [], name)}
    for p in [*sources.values(), dataset, *([gt] if gt is not None else [])]:
        if not p.exists():
            fail(f"{p}: file not found")
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err_console,
                      transient=True) as progress:
            tasks: dict[str, int] = {}

            def on_progress(method: str, done: int, total: int) -> None:
                if method not in tasks:
                    tasks[method] = progress.add_task(f"evaluate {method}", total=total)
                progress.update(tasks[method], completed=done, total=total)

            report = evaluate_direct(sources, dataset, kind=kind.value, hidden_gt=gt, model_dir=model_dir,
                                     device=device, on_progress=on_progress)
        paths = write_report(report, out)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or out}: {exc.strerror or exc}")
    table = Table(title=f"direct evaluation: {report.kind} ({report.part})" + (" vs hidden GT" if gt else ""))
    pck3d = any(m.summary()["pck3d_150mm"] is not None for m in report.methods)
    for col in ("method", "records", "matched", "MPJPE mm", "PA-MPJPE mm", "MPVPE mm", "PA-MPVPE mm", "2D px",
                *(["AUC PA 0-50", "F@5mm", "F@15mm"] if report.part == "hand" else []),
                *(["3DPCK@150", "AUC 0-150"] if pck3d else []), "time s", "img/s"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for m in report.methods:
        s = m.summary()
        table.add_row(m.name, str(m.num_records), f"{m.num_matched} ({m.num_3d} 3D)", _fmt(s["mpjpe_mm"]),
                      _fmt(s["pa_mpjpe_mm"]), _fmt(s["mpvpe_mm"]), _fmt(s["pa_mpvpe_mm"]), _fmt(s["error_2d_px"], 2),
                      *([_fmt(s["pck_auc_pa_0_50mm"], 3), _fmt(s["f_score_5mm"], 3), _fmt(s["f_score_15mm"], 3)]
                        if report.part == "hand" else []),
                      *([_fmt(s["pck3d_150mm"], 1), _fmt(s["auc3d_0_150mm"], 1)] if pck3d else []),
                      _fmt(s["seconds"], 1), _fmt(s["images_per_s"], 1))
    Console(width=200).print(table)
    for m in report.methods:
        if m.num_placed:
            typer.echo(f"  {m.name}: {m.num_placed} views scored with the world-frame entry of their frame, as the "
                       f"field's loaders use it")
    for key, p in paths.items():
        typer.echo(f"  {key}: {p}")


@app.command("render")
def render(
    pseudo_gt: Annotated[Path, typer.Argument(help="Pseudo-GT file (or Human3.6M folder) to draw.")],
    dataset: Annotated[Path, typer.Option("--dataset", "-d", help="Dataset annotation file (gives the images).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for overlay_*.png and grid.png.")],
    compare: Annotated[Optional[Path], typer.Option("--compare", help="A second pseudo-GT drawn beside the "
                                                                      "first (the paper's Figure 7).")] = None,
    max_images: Annotated[int, typer.Option(help="Draw at most this many samples.", min=1)] = 16,
    kind: Annotated[_Kind, typer.Option(help=_KIND_HELP, case_sensitive=False)] = _Kind.auto,
    model_dir: Annotated[Optional[Path], typer.Option(help=_MODEL_DIR_HELP, envvar="NEURALANNOT_BODY_MODELS")] = None,
    tile_px: Annotated[int, typer.Option(help="Rows of each tile in the grid.", min=32)] = 256,
) -> None:
    """Draw pseudo-GT meshes over their images (image | pseudo-GT | --compare), one PNG per sample + a grid.

    Example: neuralannot evaluate render pgt.json --dataset synth/annotations/coco_wholebody_train_v1.0.json --compare fit.json --out overlays/
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from neuralannot_cli.evaluate.overlay import render_overlays

    for p in (pseudo_gt, dataset, *([compare] if compare is not None else [])):
        if not p.exists():
            fail(f"{p}: file not found")
    try:
        with Progress(TextColumn("render"), BarColumn(), MofNCompleteColumn(), console=err_console,
                      transient=True) as progress:
            task = progress.add_task("render", total=None)
            summary = render_overlays(pseudo_gt, dataset, out, compare=compare, kind=kind.value,
                                      max_images=max_images, model_dir=model_dir, tile_px=tile_px,
                                      on_progress=lambda d, t: progress.update(task, completed=d, total=t))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or out}: {exc.strerror or exc}")
    if not summary.keys:
        fail(f"{pseudo_gt}: no record has an image in {dataset}"
             + (f" ({len(summary.skipped)} images missing)" if summary.skipped else ""))
    typer.echo(f"drew {len(summary.keys)} samples" + (f" ({len(summary.skipped)} skipped: image missing)"
                                                       if summary.skipped else ""))
    typer.echo(f"  grid: {summary.grid}")


class _Estimator(str, Enum):
    regressor = "regressor"
    i2l = "i2l"


@app.command("indirect")
def indirect(
    estimator: Annotated[_Estimator, typer.Option(help="'regressor': ResNet + FC regressing body-model parameters "
                                                       "(the paper's Table 8); 'i2l': I2L-MeshNet-style lixels (1D heatmaps "
                                                       "per joint and sub-sampled mesh vertex; --input-size a "
                                                       "multiple of 32).",
                                                  case_sensitive=False)],
    train: Annotated[Path, typer.Option("--train", help="Pseudo-GT file to train on.")],
    train_dataset: Annotated[Path, typer.Option(help="Dataset annotation file of the pseudo-GT (the images).")],
    test: Annotated[Path, typer.Option("--test", help="Dataset annotation file of a test set with GT 3D joints.")],
    test_gt: Annotated[Optional[Path], typer.Option(help="Hidden GT of a synthetic test set (adds MPVPE).")] = None,
    train_kind: Annotated[_Kind, typer.Option(help=_KIND_HELP, case_sensitive=False)] = _Kind.auto,
    test_kind: Annotated[_Kind, typer.Option(help=_KIND_HELP, case_sensitive=False)] = _Kind.auto,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 16,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-4,
    input_size: Annotated[int, typer.Option(min=16, help="Crop side in pixels.")] = 128,
    depth: Annotated[int, typer.Option(help="ResNet depth: 18, 34 or 50.")] = 18,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the result as JSON here.")] = None,
    model_dir: Annotated[Optional[Path], typer.Option(help=_MODEL_DIR_HELP, envvar="NEURALANNOT_BODY_MODELS")] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu, cuda.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and the batch order.")] = 0,
    work_dir: Annotated[Optional[Path], typer.Option(help="Folder for the training state (job.json + state/), "
                                                          "saved atomically so that a killed job can continue "
                                                          "with --resume. Default: none, nothing is saved.",
                                                     file_okay=False)] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="With --work-dir: save the state every N epochs "
                                                              "(and after the last).")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the job saved in --work-dir from its last "
                                                          "saved epoch; refused when the options or training "
                                                          "inputs differ (--device and --checkpoint-every may "
                                                          "change).")] = False,
) -> None:
    """Train an estimator on a pseudo-GT set and test it on a set with GT 3D (MPJPE, PA-MPJPE, MPVPE, AUC).

    With --work-dir the training state is saved every --checkpoint-every epochs; after a kill, the same command
    with --resume continues it and ends with the weights of an uninterrupted run.

    Example: neuralannot evaluate indirect --estimator regressor --train pgt.json --train-dataset coco/annotations/coco_wholebody_train_v1.0.json --test h36m/annotations/Human36M_subject9_data.json --work-dir runs/indirect_reg --resume
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from neuralannot_cli.evaluate.indirect import IndirectConfig, run_indirect

    for p in (train, train_dataset, test, *([test_gt] if test_gt is not None else [])):
        if not p.exists():
            fail(f"{p}: file not found")
    try:
        cfg = IndirectConfig(estimator=estimator.value, train_pseudo_gt=train, train_dataset=train_dataset,
                             test_dataset=test, test_gt=test_gt, train_kind=train_kind.value,
                             test_kind=test_kind.value, epochs=epochs, batch_size=batch_size, lr=lr,
                             input_size=input_size, depth=depth, model_dir=model_dir, device=device,  # type: ignore[arg-type]
                             seed=seed, work_dir=work_dir, checkpoint_every=checkpoint_every,
                             resume=resume).checked()
        with Progress(TextColumn("train {task.fields[loss]}"), BarColumn(), MofNCompleteColumn(),
                      console=err_console, transient=True) as progress:
            task = progress.add_task("train", total=epochs, loss="")
            result = run_indirect(cfg, on_progress=lambda e, t, loss: progress.update(
                task, completed=e, loss=f"loss {loss:.4f}"))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or work_dir}: {exc.strerror or exc}")
    s = result.summary()
    typer.echo(f"{result.estimator} ({result.part}) trained on {result.num_train} pseudo-GT samples "
               f"({result.train_seconds:.1f} s), tested on {result.num_test}:")
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "pa_mpvpe_mm", "pck_auc_pa", "f_score_5mm", "f_score_15mm",
                "pck3d_150mm", "auc3d_0_150mm"):
        if s[key] is not None:
            typer.echo(f"  {key}: {s[key]:.3f}")
    if result.num_skipped_train:
        err_console.print(f"[bold yellow]WARNING[/]: {result.num_skipped_train} records of {train} gave no training "
                          f"sample (no matching sample of {train_dataset}, or a left hand)")
    if result.num_test_in_train:
        err_console.print(f"[bold yellow]WARNING[/]: {result.num_test_in_train} of the {result.num_test} test "
                          "images were also training images: these numbers are not held-out results")
    if out is not None:
        from neuralannot_cli.io.atomic import atomic_write_json

        atomic_write_json(out, s, indent=2)
        typer.echo(f"  result: {out}")
