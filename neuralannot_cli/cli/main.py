"""The ``neuralannot`` Typer application: combines one module per subcommand."""

from __future__ import annotations

import typer

from neuralannot_cli import __version__
from neuralannot_cli.cli import annotate, evaluate, fit_face, integrate, models, synth, train

_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}

app = typer.Typer(
    name="neuralannot",
    help=(
        "NeuralAnnot: pseudo-ground-truth SMPL-X (body, MANO hands, FLAME face) for images with 2D keypoints.\n\n"
        "Example: neuralannot models make-standin /tmp/models && neuralannot models check --model-dir /tmp/models"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"neuralannot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """NeuralAnnot command line."""


app.command("train")(train.train)
app.command("annotate", context_settings=_PASSTHROUGH)(annotate.annotate)
app.command("fit-face")(fit_face.fit_face)
app.command("integrate")(integrate.integrate)
app.add_typer(evaluate.app, name="evaluate")
app.add_typer(models.app, name="models")
app.command("synth")(synth.synth)


def main() -> None:  # pragma: no cover - console entry alias
    app()
