"""The common sample record every dataset loader yields.

Conventions (pinned by tests in ``tests/test_loaders.py``):

- Image coordinates are pixels with the origin at the top-left corner of the top-left pixel's centre
  (OpenCV / COCO convention: pixel ``(u, v)`` has its centre at ``(u, v)``), ``x`` to the right, ``y`` down.
- Camera coordinates follow OpenCV: ``x`` right, ``y`` down, ``z`` forward, in millimetres.
- Boxes are ``(x, y, width, height)`` in pixels, COCO style.
- A keypoint with confidence 0 is missing; its coordinates are meaningless (usually 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATASET_NAMES = ("h36m", "mpi3dhp", "3dpw", "coco_wholebody", "freihand", "interhand")
"""Names of the dataset formats the loaders read (``Sample.dataset``)."""


@dataclass(frozen=True)
class Sample:
    """One person (or one hand) in one image.

    Attributes:
        dataset: one of :data:`DATASET_NAMES`.
        image_path: absolute path of the image file (it need not exist for evaluation-only use).
        image_hw: ``(height, width)`` of the image in pixels.
        bbox_xywh_px: ``(4,)`` float32 box of the person (or hand) in the original image.
        keypoints_2d_px: ``(joints, 2)`` float32 2D keypoints in the original image.
        keypoints_conf: ``(joints,)`` float32 confidence / visibility in ``[0, 1]``; 0 = missing.
        joint_set: name of the joint set of the keypoints (a key of
            ``neuralannot_cli.body.joint_sets.JOINT_SETS``), e.g. ``"h36m_17"``.
        joints_3d_cam_mm: ``(joints, 3)`` float32 3D joints in the camera frame (mm), or ``None`` for
            2D-only (target) sets.
        focal_px: ``(fx, fy)`` in pixels, or ``None`` when the dataset has no intrinsics.
        princpt_px: ``(cx, cy)`` in pixels, or ``None``.
        ids: what is needed to write results back, e.g. ``{"image_id": 1, "ann_id": 7}`` for COCO-style
            sets or ``{"subject": 9, "action": 2, "subaction": 1, "camera": 1, "frame": 0}`` for Human3.6M.
        extras: format-specific extras kept for evaluation or later stages (3DPW SMPL GT, hand type,
            COCO-WholeBody face/hand boxes and ``*_valid`` flags, ...).
    """

    dataset: str
    image_path: Path
    image_hw: tuple[int, int]
    bbox_xywh_px: np.ndarray
    keypoints_2d_px: np.ndarray
    keypoints_conf: np.ndarray
    joint_set: str
    joints_3d_cam_mm: np.ndarray | None = None
    focal_px: tuple[float, float] | None = None
    princpt_px: tuple[float, float] | None = None
    ids: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class DatasetFormatError(ValueError):
    """A dataset file is missing a field or has a malformed one.

    The message is one line naming the file and the field, e.g.
    ``Human36M_subject1_data.json: annotations[3].bbox: expected 4 numbers, got 3``.
    """

    def __init__(self, path: str | Path, field_name: str, problem: str) -> None:
        self.path = Path(path)
        self.field_name = field_name
        self.problem = problem
        super().__init__(f"{self.path}: {field_name}: {problem}")
