"""Networks: the torchvision-compatible ResNet backbone, the NeuralAnnot stage-1/stage-2 regressors, the pose prior.

Submodules (import them directly; nothing heavy happens at import time):

- :mod:`.backbone`: :class:`~.backbone.ResNetBackbone`, :func:`~.backbone.load_backbone_weights`
- :mod:`.heads`: :class:`~.heads.Stage1Net`, :class:`~.heads.Stage2Net`, :class:`~.heads.RegressorOutput`,
  :class:`~.heads.PartSpec`, :func:`~.heads.part_spec`
- :mod:`.prior`: pose priors (VPoser-style VAE, MANO / learned PCA)

The names of :mod:`.backbone` and :mod:`.heads` are also re-exported here, lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ResNetBackbone": "backbone",
    "load_backbone_weights": "backbone",
    "read_state_dict": "backbone",
    "PartSpec": "heads",
    "part_spec": "heads",
    "RegressorOutput": "heads",
    "Stage1Net": "heads",
    "Stage2Net": "heads",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
