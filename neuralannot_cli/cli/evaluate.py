"""``neuralannot evaluate``: direct and indirect evaluation of pseudo-GT."""

from __future__ import annotations

import typer

from neuralannot_cli.cli._common import not_yet_built


def evaluate(ctx: typer.Context) -> None:
    """Evaluate pseudo-GT directly (3D/2D error, time) or indirectly (train an estimator on it).

    Example: neuralannot evaluate direct pseudo_gt.json --dataset h36m --root data/h36m
    """
    not_yet_built("evaluate", 6, "direct and indirect evaluation, overlays and the comparison benchmark")
