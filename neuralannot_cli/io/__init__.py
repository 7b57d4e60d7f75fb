"""Pseudo-GT files: the field's NeuralAnnot JSON layouts, a bulk ``.npz``, atomic writes, resumable progress.

- :mod:`neuralannot_cli.io.pseudo_gt`: :class:`SmplxRecord` / :class:`ManoRecord`, :func:`write_pseudo_gt_json`,
  :func:`read_pseudo_gt`, :func:`write_pseudo_gt_npz`, the world<->camera conversion of Human3.6M files.
- :mod:`neuralannot_cli.io.atomic`: tmp-file + fsync + ``os.replace`` writers.
- :mod:`neuralannot_cli.io.progress`: :class:`ProgressLog`, the append-only chunk log behind ``--resume``.
"""

from neuralannot_cli.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_npz, atomic_write_text
from neuralannot_cli.io.progress import ProgressLog
from neuralannot_cli.io.pseudo_gt import (
    ManoRecord,
    SmplxRecord,
    camera_to_world_params,
    meta_path_for,
    read_pseudo_gt,
    read_pseudo_gt_npz,
    record_from_dict,
    record_key,
    record_to_dict,
    world_to_camera_params,
    write_meta,
    write_pseudo_gt_json,
    write_pseudo_gt_npz,
)

__all__ = [
    "ManoRecord",
    "ProgressLog",
    "SmplxRecord",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_npz",
    "atomic_write_text",
    "camera_to_world_params",
    "meta_path_for",
    "read_pseudo_gt",
    "read_pseudo_gt_npz",
    "record_from_dict",
    "record_key",
    "record_to_dict",
    "world_to_camera_params",
    "write_meta",
    "write_pseudo_gt_json",
    "write_pseudo_gt_npz",
]
