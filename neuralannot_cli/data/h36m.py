"""Human3.6M in the per-subject COCO-style re-packaging of mks0601.

Layout and fields, as read by ``data/Human36M/Human36M.py`` in mks0601/Hand4Whole_RELEASE (and
mks0601/3DMPPE_POSENET_RELEASE, I2L-MeshNet_RELEASE)::

    {root}/images/{file_name}                        # e.g. s_01_act_02_subact_01_ca_01/..._000001.jpg
    {root}/annotations/Human36M_subject{S}_data.json
        images[]:      id, file_name, width, height, subject, action_idx, subaction_idx, cam_idx, frame_idx
        annotations[]: id, image_id, bbox [x, y, w, h] (px), keypoints_vis (17 bools, optional)
    {root}/annotations/Human36M_subject{S}_camera.json
        {"<cam_idx>": {"R": 3x3, "t": [3] (mm), "f": [fx, fy] (px), "c": [cx, cy] (px)}}
    {root}/annotations/Human36M_subject{S}_joint_3d.json
        {"<action_idx>": {"<subaction_idx>": {"<frame_idx>": 17x3 world coordinates (mm)}}}

Camera convention: ``joints_cam = R @ joints_world + t`` (``world2cam`` in Hand4Whole's
``common/utils/transforms.py``). ``t`` is *not* the camera centre: mks0601 rewrote the files so that
``t = -R @ T_centre`` (3DMPPE_POSENET_RELEASE issues #58 and #100; the older ``R @ (X - T)`` form of
``world2cam`` in that repo's ``pose_utils.py`` belongs to the earlier files). The dataset has no
separate 2D labels: 2D keypoints are the projection of the camera-frame joints with ``f``, ``c``
(``cam2pixel``), confidence 1.

Joint order (``H36M_17_JOINT_NAMES``, joint set ``"h36m_17"``) is that of Hand4Whole's
``Human36M.joint_set['joints_name']``. Protocol 2 subjects: train 1, 5, 6, 7, 8; test 9, 11.
Hand4Whole sub-samples every 5th frame for training and every 64th for testing and evaluates on camera
4 only; here both are options (``frame_step``, ``cameras``), default all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuralannot_cli.data._json import as_array, get_field
from neuralannot_cli.data._walk import (
    WorldCamera,
    projected_sample,
    read_camera_dataset,
    read_world_camera,
    read_world_joints_mm,
)
from neuralannot_cli.data.record import DatasetFormatError, Sample

H36M_17_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Head",
    "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)
"""Human3.6M 17-joint order of the mks0601 files (Hand4Whole ``Human36M.joint_set``)."""

H36M_TRAIN_SUBJECTS: tuple[int, ...] = (1, 5, 6, 7, 8)
H36M_TEST_SUBJECTS: tuple[int, ...] = (9, 11)
H36M_ACTION_NAMES: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)
"""Action names; ``action_idx`` 2..16 in the files maps to ``H36M_ACTION_NAMES[action_idx - 2]``."""

_CAMERA_FIELDS = ("R", "t", "f", "c")


def load_h36m(
    root: str | Path,
    subjects: Sequence[int] = H36M_TRAIN_SUBJECTS,
    *,
    frame_step: int = 1,
    cameras: Sequence[int] | None = None,
) -> list[Sample]:
    """Load Human3.6M samples (one per annotation) for ``subjects``.

    Args:
        root: dataset root holding ``annotations/`` and ``images/``.
        subjects: subject numbers (protocol 2: :data:`H36M_TRAIN_SUBJECTS` or :data:`H36M_TEST_SUBJECTS`).
        frame_step: keep frames with ``frame_idx % frame_step == 0`` (Hand4Whole: 5 train, 64 test).
        cameras: keep only these ``cam_idx`` values (Hand4Whole tests on camera 4); ``None`` keeps all.

    Returns:
        Samples with ``joint_set="h36m_17"``, ``joints_3d_cam_mm`` ``(17, 3)``, projected 2D keypoints,
        ``ids`` ``{subject, action, subaction, camera, frame, image_id, ann_id}`` and ``extras``
        ``{"cam_rotmat": (3, 3), "cam_trans_mm": (3,), "keypoints_vis"?: (17,) bool}`` (the world→camera
        extrinsics, needed to bring world-frame NeuralAnnot parameters into the camera).
    """
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    root = Path(root).resolve()
    annot_dir = root / "annotations"
    keep_cams = None if cameras is None else {int(c) for c in cameras}
    samples: list[Sample] = []
    for subject in subjects:
        data_path = annot_dir / f"Human36M_subject{subject}_data.json"
        cam_path = annot_dir / f"Human36M_subject{subject}_camera.json"
        joint_path = annot_dir / f"Human36M_subject{subject}_joint_3d.json"
        annotations, cams_json, joints_json = read_camera_dataset(data_path, cam_path, joint_path)

        cam_cache: dict[int, WorldCamera] = {}
        world_cache: dict[tuple[int, int, int], np.ndarray] = {}
        for ref in annotations:
            frame = ref.image_int("frame_idx")
            if frame % frame_step:
                continue
            cam_idx = ref.image_int("cam_idx")
            if keep_cams is not None and cam_idx not in keep_cams:
                continue
            img_subject = ref.image_int("subject")
            if img_subject != int(subject):
                raise DatasetFormatError(data_path, f"{ref.img_where}.subject",
                                         f"is {img_subject} in the file of subject {subject}")
            action = ref.image_int("action_idx")
            subaction = ref.image_int("subaction_idx")
            image_hw, file_name, bbox = ref.image_file_and_box()

            if cam_idx not in cam_cache:
                cam_cache[cam_idx] = read_world_camera(cams_json, [cam_idx], path=cam_path, names=_CAMERA_FIELDS)
            cam = cam_cache[cam_idx]

            keys = (action, subaction, frame)
            if keys not in world_cache:  # the same frame is seen by every camera
                world_cache[keys] = read_world_joints_mm(joints_json, keys, 17, path=joint_path,
                                                         image_id=ref.image_id)
            joints_cam_mm = cam.world_to_cam(world_cache[keys])

            extras: dict = {}
            if "keypoints_vis" in ref.ann:
                vis = get_field(ref.ann, "keypoints_vis", path=data_path, where=ref.ann_where)
                extras["keypoints_vis"] = as_array(
                    vis, (17,), path=data_path, field_name=f"{ref.ann_where}.keypoints_vis"
                ).astype(bool)
            samples.append(projected_sample(
                dataset="h36m", image_path=root / "images" / file_name, image_hw=image_hw, bbox_xywh_px=bbox,
                joint_set="h36m_17", joints_cam_mm=joints_cam_mm, cam=cam,
                ids={"subject": int(subject), "action": action, "subaction": subaction, "camera": cam_idx,
                     "frame": frame, "image_id": ref.image_id, "ann_id": int(ref.ann["id"])},
                extras=extras,
            ))
    return samples
