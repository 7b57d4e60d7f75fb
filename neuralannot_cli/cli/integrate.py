"""``neuralannot integrate``: body + hands + face into one SMPL-X parameter set."""

from __future__ import annotations

import typer

from neuralannot_cli.cli._common import not_yet_built


def integrate(ctx: typer.Context) -> None:
    """Integrate body, hand and face pseudo-GT into SMPL-X (Algorithm 2).

    Example: neuralannot integrate --body body.json --hand hand.json --face face.json --out smplx.json
    """
    not_yet_built("integrate", 5, "Algorithm 2 (wrist/elbow integration into SMPL-X)")
