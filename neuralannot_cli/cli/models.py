"""``neuralannot models``: make the stand-in model files, check which body-model files are found."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from neuralannot_cli.cli._common import fail

app = typer.Typer(
    help="Body-model files: build the stand-in, check what is found and how it loads.",
    no_args_is_help=True,
)

_CHECKED = (
    ("smplx", "neutral", True),
    ("smplx", "male", True),
    ("smplx", "female", True),
    ("smpl", "neutral", True),
    ("smpl", "male", True),
    ("smpl", "female", True),
    ("mano", "neutral", True),
    ("mano", "neutral", False),
    ("flame", "neutral", True),
)


@app.command("make-standin")
def make_standin_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the stand-in model files into.")],
    seed: Annotated[int, typer.Option(help="Seed of the procedural generator (same seed, same bytes).")] = 0,
) -> None:
    """Write deterministic stand-in SMPL-X / SMPL / MANO / FLAME files in the official formats.

    They let the real smplx code run without the licensed files; they are NOT a human body model.

    Example: neuralannot models make-standin /tmp/models
    """
    from neuralannot_cli.body.standin import make_standin

    console = Console()
    try:
        paths = make_standin(out_dir, seed=seed)
    except OSError as exc:
        fail(f"{out_dir}: cannot write the stand-in files: {exc.strerror or exc}")
    table = Table(title=f"stand-in model files in {out_dir}")
    table.add_column("file")
    table.add_column("size", justify="right")
    for name, path in sorted(paths.items()):
        table.add_row(str(Path(path).relative_to(out_dir) if Path(path).is_relative_to(out_dir) else path),
                      f"{Path(path).stat().st_size / 1e6:.1f} MB")
    console.print(table)
    console.print(
        "[bold yellow]These are STAND-IN models (procedural, not SMPL-X/SMPL/MANO/FLAME).[/] Use them for tests "
        "and the demo only; get the real files from https://smpl-x.is.tue.mpg.de, https://smpl.is.tue.mpg.de, "
        "https://mano.is.tue.mpg.de, https://flame.is.tue.mpg.de."
    )


@app.command("check")
def check_cmd(
    model_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--model-dir",
            help="Directory holding the model files (default: $NEURALANNOT_BODY_MODELS, then the user data dir, "
            "then the stand-in).",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="Device to load the models on, e.g. cpu or cuda:0.")] = "cpu",
) -> None:
    """Report which model files are found, which model each loads as, vertex and joint counts, real or stand-in.

    Exits with code 1 when any of them is missing or fails to load.

    Example: neuralannot models check --model-dir ~/body_models
    """
    import torch

    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.body.paths import ENV_VAR, ModelSearchConfig, find_model_file

    if model_dir is not None and not model_dir.exists():
        fail(f"{model_dir}: --model-dir does not exist")
    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        fail(f"--device {device!r}: {exc}")
    config = ModelSearchConfig(model_dir=model_dir)
    console = Console()
    table = Table(title="body models")
    for col in ("model", "file", "found via", "loads as", "vertices", "kinematic joints", "output joints", "kind"):
        table.add_column(col)
    problems = 0
    first_problem, first_missing = "", True  # the error line names a broken file before a missing one
    any_standin = False
    for model_type, gender, is_rhand in _CHECKED:
        label = model_type if model_type not in ("smplx", "smpl") else f"{model_type} ({gender})"
        if model_type == "mano":
            label = f"mano ({'right' if is_rhand else 'left'})"
        try:
            resolved = find_model_file(model_type, gender=gender, is_rhand=is_rhand, config=config)
            model = load_body_model(
                model_type, gender=gender, is_rhand=is_rhand, config=config, device=torch_device
            )
            with torch.no_grad():
                out = model()
        except (FileNotFoundError, ValueError, OSError, RuntimeError, KeyError) as exc:
            problems += 1
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not first_problem or (first_missing and not isinstance(exc, FileNotFoundError)):
                first_problem, first_missing = f"{label}: {message}", isinstance(exc, FileNotFoundError)
            table.add_row(label, "-", "-", f"[red]{message}[/]", "-", "-", "-", "-")
            continue
        any_standin |= model.is_standin
        kind = "[bold yellow]STAND-IN[/]" if model.is_standin else "[green]real[/]"
        table.add_row(
            label,
            str(resolved.path),
            resolved.source,
            type(model.layer).__name__ if hasattr(model, "layer") else type(model).__name__,
            str(model.num_vertices),
            str(model.num_kinematic_joints),
            str(out.joints.shape[1]),
            kind,
        )
    console.print(table)
    console.print(f"lookup order: --model-dir, ${ENV_VAR}, {config.resolved_user_dir()}, stand-in")
    if any_standin:
        console.print(
            "[bold yellow]WARNING: stand-in models in use — results are NOT real SMPL-X/SMPL/MANO/FLAME results.[/]"
        )
    if problems:
        fail(f"{problems} model file(s) missing or failed to load (see the table); first: {first_problem}")
