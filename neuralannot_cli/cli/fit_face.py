"""``neuralannot fit-face``: FLAME fitting to 2D face landmarks."""

from __future__ import annotations

import typer

from neuralannot_cli.cli._common import not_yet_built


def fit_face(ctx: typer.Context) -> None:
    """Fit FLAME (global rotation, jaw, shape, expression) to COCO-WholeBody face keypoints.

    Example: neuralannot fit-face coco_wholebody_train_v1.0.json --out face.json
    """
    not_yet_built("fit-face", 5, "SMPLify-X-style FLAME fitting to the 68 face keypoints")
