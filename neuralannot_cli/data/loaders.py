"""One entry point over the six dataset readers.

``load_dataset("h36m", root, subjects=(9, 11), frame_step=64)`` calls
:func:`~neuralannot_cli.data.h36m.load_h36m` with the options; see each reader for its options and
for the files it expects under ``root``:

=================== ============================================================ ==================
kind                reader                                                       joint set
=================== ============================================================ ==================
``h36m``            :func:`neuralannot_cli.data.h36m.load_h36m`                  ``h36m_17``
``mpi3dhp``         :func:`neuralannot_cli.data.mpi3dhp.load_mpi3dhp`            ``mpi3dhp_17``
``3dpw``            :func:`neuralannot_cli.data.pw3d.load_3dpw`                  ``coco_17``
``coco_wholebody``  :func:`neuralannot_cli.data.coco_wholebody.load_coco_wholebody` ``coco_wholebody_133``
``freihand``        :func:`neuralannot_cli.data.freihand.load_freihand`          ``hand_21``
``interhand``       :func:`neuralannot_cli.data.interhand.load_interhand`        ``hand_21``
=================== ============================================================ ==================

3DPW's GT 3D joints need SMPL (licensed), so its reader leaves them out;
:func:`neuralannot_cli.data.pw3d_joints.with_gt_joints` adds them (joint set ``h36m_17``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

from neuralannot_cli.data.coco_wholebody import load_coco_wholebody
from neuralannot_cli.data.freihand import load_freihand
from neuralannot_cli.data.h36m import load_h36m
from neuralannot_cli.data.interhand import load_interhand
from neuralannot_cli.data.mpi3dhp import load_mpi3dhp
from neuralannot_cli.data.pw3d import load_3dpw
from neuralannot_cli.data.record import Sample

DatasetKind = Literal["h36m", "mpi3dhp", "3dpw", "coco_wholebody", "freihand", "interhand"]


def load_dataset(kind: DatasetKind, root: str | Path, **options: Any) -> list[Sample]:
    """Load every sample of one dataset.

    Args:
        kind: the dataset format (``Sample.dataset`` of the result).
        root: the dataset folder the reader expects (see the module table).
        **options: keyword options of that reader (``split``, ``subjects``, ``frame_step``, ...).

    Raises:
        ValueError: unknown ``kind`` or an option the reader does not take.
        FileNotFoundError / DatasetFormatError: missing or malformed dataset files.
    """
    if kind == "h36m":
        reader = load_h36m
    elif kind == "mpi3dhp":
        reader = load_mpi3dhp
    elif kind == "3dpw":
        reader = load_3dpw
    elif kind == "coco_wholebody":
        reader = load_coco_wholebody
    elif kind == "freihand":
        reader = load_freihand
    elif kind == "interhand":
        reader = load_interhand
    else:
        raise ValueError(
            f"unknown dataset kind {kind!r}; expected one of "
            "'h36m', 'mpi3dhp', '3dpw', 'coco_wholebody', 'freihand', 'interhand'"
        )
    accepted = [name for name in inspect.signature(reader).parameters if name != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{kind}: unknown option(s) {unknown}; {reader.__name__} accepts {accepted}")
    return reader(root, **options)
