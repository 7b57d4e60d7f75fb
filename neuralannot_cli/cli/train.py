"""``neuralannot train``: Algorithm 1 of NeuralAnnot (body or hand)."""

from __future__ import annotations

import typer

from neuralannot_cli.cli._common import not_yet_built


def train(
    ctx: typer.Context,
) -> None:
    """Train NeuralAnnot (stage 1 per auxiliary set, pose prior, stage 2 on mixed batches).

    Example: neuralannot train --part body --aux h36m --target coco --epochs 10
    """
    not_yet_built("train", 4, "Algorithm 1 (stage-1 networks, pose prior, stage 2 on half/half batches)")
