"""FreiHAND (v2) in its official release format.

Files, as read by the FreiHAND toolbox (lmb-freiburg/freihand, ``utils/fh_utils.py``:
``load_db_annotation``, ``sample_version``, ``read_img``, ``projectPoints``)::

    {root}/{split}_xyz.json     # split: training, evaluation; N x 21 x 3, metres, camera frame
    {root}/{split}_K.json       # N x 3 x 3 intrinsics (px)
    {root}/{split}_mano.json    # optional, N x 1 x 61 = pose 48 | shape 10 | uv_root 2 | scale 1
    {root}/{split}/rgb/%08d.jpg # 224 x 224 RGB

Training images come in four versions that share annotations: image number
``i + N * version_index`` for annotation ``i`` with versions ``gs`` (green screen), ``hom``
(homogenised), ``sample`` and ``auto`` (``sample_version.map_id``; N = 32 560 in the release, here the
length of the xyz file). The evaluation split has only ``gs``. ``evaluation_xyz.json`` was released
later with FreiHAND v2; without it the evaluation samples carry no 3D/2D (confidence 0, box = image).

Coordinates are converted to millimetres. 2D keypoints are the projection ``uv = K @ xyz`` divided
by depth (``projectPoints``). Joint order is FreiHAND's (MANO with fingertips): wrist, thumb 1-4,
index 1-4, middle 1-4, ring 1-4, pinky 1-4 (1 = base, 4 = tip), i.e. joint set ``"hand_21"``
unchanged. FreiHAND shows right hands only (``extras["hand_side"] = "right"``). The box is the
keypoint box enlarged ``bbox_scale`` times about its centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from neuralannot_cli.data._json import as_array, bbox_from_keypoints, check_joint_units, f32, read_json
from neuralannot_cli.data.record import DatasetFormatError, Sample

FREIHAND_VERSIONS: tuple[str, ...] = ("gs", "hom", "sample", "auto")
"""Training image versions, in the order of their blocks of image numbers."""

FREIHAND_IMAGE_HW: tuple[int, int] = (224, 224)

HAND_21_JOINT_NAMES: tuple[str, ...] = (
    "Wrist",
    "Thumb_1", "Thumb_2", "Thumb_3", "Thumb_4",
    "Index_1", "Index_2", "Index_3", "Index_4",
    "Middle_1", "Middle_2", "Middle_3", "Middle_4",
    "Ring_1", "Ring_2", "Ring_3", "Ring_4",
    "Pinky_1", "Pinky_2", "Pinky_3", "Pinky_4",
)
"""The ``hand_21`` order (FreiHAND / Hand4Whole ``joint_set['hand']``): 1 = base joint, 4 = fingertip."""


def load_freihand(
    root: str | Path,
    split: Literal["training", "evaluation"] = "training",
    *,
    versions: Sequence[str] = ("gs",),
    bbox_scale: float = 1.5,
    load_mano: bool = False,
) -> list[Sample]:
    """Load FreiHAND samples: one per annotation and requested image version.

    Args:
        root: folder holding ``{split}_xyz.json``, ``{split}_K.json`` and ``{split}/rgb/``.
        split: ``"training"`` or ``"evaluation"``.
        versions: subset of :data:`FREIHAND_VERSIONS` (evaluation: only ``"gs"``).
        bbox_scale: enlargement of the keypoint box.
        load_mano: also read ``{split}_mano.json`` into ``extras["mano_theta_61"]`` ``(61,)``.

    Returns:
        Samples with ``joint_set="hand_21"``, ``joints_3d_cam_mm`` ``(21, 3)``, ``ids`` ``{index, version,
        image_number}``, ``extras`` ``{"hand_side": "right"}``.
    """
    if split not in ("training", "evaluation"):
        raise ValueError(f"split must be 'training' or 'evaluation', got {split!r}")
    bad = [v for v in versions if v not in FREIHAND_VERSIONS]
    if bad:
        raise ValueError(f"versions must be among {FREIHAND_VERSIONS}, got {list(versions)}")
    if split == "evaluation" and any(v != "gs" for v in versions):
        raise ValueError(f"the evaluation split has only the 'gs' version, got {list(versions)}")
    if bbox_scale <= 0:
        raise ValueError(f"bbox_scale must be > 0, got {bbox_scale}")

    root = Path(root).resolve()
    k_path, xyz_path, mano_path = (root / f"{split}_{kind}.json" for kind in ("K", "xyz", "mano"))
    k_list = read_json(k_path, list)
    n = len(k_list)
    xyz_list = None
    if split == "training" or xyz_path.is_file():
        xyz_list = read_json(xyz_path, list)
        if len(xyz_list) != n:
            raise DatasetFormatError(xyz_path, "<top level>",
                                     f"has {len(xyz_list)} entries but {k_path.name} has {n}")
    mano_list = None
    if load_mano:
        mano_list = read_json(mano_path, list)
        if len(mano_list) != n:
            raise DatasetFormatError(mano_path, "<top level>",
                                     f"has {len(mano_list)} entries but {k_path.name} has {n}")

    h, w = FREIHAND_IMAGE_HW
    rgb_dir = root / split / "rgb"
    samples: list[Sample] = []
    for i in range(n):
        K = as_array(k_list[i], (3, 3), path=k_path, field_name=f"[{i}]")
        extras: dict = {"hand_side": "right"}
        if mano_list is not None:
            extras["mano_theta_61"] = f32(as_array(mano_list[i], (61,), path=mano_path, field_name=f"[{i}]",
                                                   flatten=True))
        if xyz_list is not None:
            joints_cam_m = as_array(xyz_list[i], (21, 3), path=xyz_path, field_name=f"[{i}]")
            check_joint_units(joints_cam_m, "m", path=xyz_path, field_name=f"[{i}]")
            joints_cam_mm = joints_cam_m * 1000.0
            uvw = joints_cam_mm @ K.T
            with np.errstate(divide="ignore", invalid="ignore"):
                kp_px = uvw[:, :2] / uvw[:, 2:3]
            conf = ((joints_cam_mm[:, 2] > 0) & np.isfinite(kp_px).all(axis=-1)).astype(np.float64)
            kp_px = np.where(conf[:, None] > 0, kp_px, 0.0)
            bbox = bbox_from_keypoints(kp_px, conf, bbox_scale)
            joints_3d = joints_cam_mm
        else:
            kp_px, conf = np.zeros((21, 2)), np.zeros(21)
            bbox, joints_3d = np.array([0.0, 0.0, w, h]), None
        for version in versions:
            number = i + n * FREIHAND_VERSIONS.index(version)
            samples.append(
                Sample(
                    dataset="freihand",
                    image_path=rgb_dir / f"{number:08d}.jpg",
                    image_hw=(h, w),
                    bbox_xywh_px=f32(bbox),
                    keypoints_2d_px=f32(kp_px),
                    keypoints_conf=f32(conf),
                    joint_set="hand_21",
                    joints_3d_cam_mm=None if joints_3d is None else f32(joints_3d),
                    focal_px=(float(K[0, 0]), float(K[1, 1])),
                    princpt_px=(float(K[0, 2]), float(K[1, 2])),
                    ids={"index": i, "version": version, "image_number": number},
                    extras={k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in extras.items()},
                )
            )
    return samples
