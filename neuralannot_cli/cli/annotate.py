"""``neuralannot annotate``: batched inference writing pseudo-GT."""

from __future__ import annotations

import typer

from neuralannot_cli.cli._common import not_yet_built


def annotate(ctx: typer.Context) -> None:
    """Annotate a dataset with a trained NeuralAnnot checkpoint (COCO-style pseudo-GT JSON).

    Example: neuralannot annotate coco_wholebody_train_v1.0.json --checkpoint ckpt/ --out pseudo_gt.json
    """
    not_yet_built("annotate", 4, "batched NeuralAnnot inference to COCO-style pseudo-GT JSON")
