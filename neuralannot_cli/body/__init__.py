"""Body-model layer over ``smplx``: model-file lookup, chumpy-free ``.pkl`` loading, SMPL-X / MANO / FLAME
modules with named axis-angle inputs, and named joint sets.

Public API (imported lazily, so ``import neuralannot_cli.body`` stays cheap):

- :func:`load_body_model`, :class:`BodyModel`, :class:`BodyOutput` (:mod:`.model`)
- :func:`get_joint_set`, :func:`flip_pairs`, :data:`JOINT_SETS`, :class:`JointSet` (:mod:`.joint_sets`)
- :func:`find_model_file`, :func:`is_standin`, :class:`ModelSearchConfig`, :data:`ENV_VAR` (:mod:`.paths`)
- :func:`load_restricted_pickle` (:mod:`.pkl`)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_body_model": "model",
    "BodyModel": "model",
    "BodyOutput": "model",
    "get_joint_set": "joint_sets",
    "flip_pairs": "joint_sets",
    "JOINT_SETS": "joint_sets",
    "JointSet": "joint_sets",
    "JointSource": "joint_sets",
    "find_model_file": "paths",
    "is_standin": "paths",
    "ModelSearchConfig": "paths",
    "ENV_VAR": "paths",
    "load_restricted_pickle": "pkl",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
