"""MPI-INF-3DHP (training set) in the COCO-style re-packaging of mks0601.

Layout and fields, as read by ``data/MPI_INF_3DHP/MPI_INF_3DHP.py`` in mks0601/Hand4Whole_RELEASE::

    {root}/MPI-INF-3DHP_1k.json
        images[]:      id, file_name, width, height, subject_idx, seq_idx, cam_idx, frame_idx
        annotations[]: id, image_id, bbox [x, y, w, h] (px)
    {root}/MPI-INF-3DHP_camera_1k.json
        {"<subject_idx>": {"<seq_idx>": {"<cam_idx>": {"R": 3x3, "t": [3] (mm),
                                                       "focal": [fx, fy], "princpt": [cx, cy]}}}}
    {root}/MPI-INF-3DHP_joint_3d.json
        {"<subject_idx>": {"<seq_idx>": {"<frame_idx>": 17x3 world coordinates (mm)}}}
    {root}/images_1k/S{subject_idx}/Seq{seq_idx}/imageSequence/{file_name}
    ({root}/MPI-INF-3DHP_SMPLX_NeuralAnnot.json, NeuralAnnot fits: not read here.)

``root`` is Hand4Whole's ``data/MPI_INF_3DHP/data`` folder. Camera convention as Human3.6M:
``joints_cam = R @ joints_world + t`` (Hand4Whole ``world2cam``); 2D keypoints are projections
(``cam2pixel``) with confidence 1. Hand4Whole keeps every 3rd frame (``frame_idx % 3 == 0``,
25 → 8.3 fps); here ``frame_step`` (default 1).

Joint order :data:`MPI3DHP_17_JOINT_NAMES` (joint set ``"mpi3dhp_17"``) is Hand4Whole's
``MPI_INF_3DHP.joint_set['joints_name']``: the 17 "relevant" joints of the MPI-INF-3DHP test protocol
(head top, neck, right arm, left arm, right leg, left leg, pelvis, spine, head).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralannot_cli.data._json import (
    as_array,
    check_joint_units,
    f32,
    get_array,
    get_int,
    get_nested,
    get_str,
    index_coco,
    key_path,
    project_cam_to_px,
    read_json,
)
from neuralannot_cli.data.record import Sample

MPI3DHP_17_JOINT_NAMES: tuple[str, ...] = (
    "Head_top", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
    "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Torso", "Head",
)
"""MPI-INF-3DHP 17-joint order of the mks0601 files (Hand4Whole ``MPI_INF_3DHP.joint_set``)."""

DATA_FILE = "MPI-INF-3DHP_1k.json"
CAMERA_FILE = "MPI-INF-3DHP_camera_1k.json"
JOINT_FILE = "MPI-INF-3DHP_joint_3d.json"


def load_mpi3dhp(root: str | Path, *, frame_step: int = 1) -> list[Sample]:
    """Load MPI-INF-3DHP samples (one per annotation).

    Args:
        root: folder holding the three JSON files and ``images_1k/``.
        frame_step: keep frames with ``frame_idx % frame_step == 0`` (Hand4Whole: 3).

    Returns:
        Samples with ``joint_set="mpi3dhp_17"``, ``joints_3d_cam_mm`` ``(17, 3)``, projected 2D keypoints,
        ``ids`` ``{subject, sequence, camera, frame, image_id, ann_id}`` and ``extras``
        ``{"cam_rotmat": (3, 3), "cam_trans_mm": (3,)}``.
    """
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    root = Path(root).resolve()
    data_path, cam_path, joint_path = root / DATA_FILE, root / CAMERA_FILE, root / JOINT_FILE
    data = read_json(data_path, dict)
    cams_json = read_json(cam_path, dict)
    joints_json = read_json(joint_path, dict)
    images_by_id, anns = index_coco(data, path=data_path)

    cam_cache: dict[tuple[int, int, int], dict[str, np.ndarray]] = {}
    samples: list[Sample] = []
    for a_i, ann in enumerate(anns):
        a_where = f"annotations[{a_i}]"
        image_id = int(ann["image_id"])
        img = images_by_id[image_id]
        i_where = f"images[id={image_id}]"
        frame = get_int(img, "frame_idx", path=data_path, where=i_where)
        if frame % frame_step:
            continue
        subject = get_int(img, "subject_idx", path=data_path, where=i_where)
        seq = get_int(img, "seq_idx", path=data_path, where=i_where)
        cam_idx = get_int(img, "cam_idx", path=data_path, where=i_where)
        height = get_int(img, "height", path=data_path, where=i_where)
        width = get_int(img, "width", path=data_path, where=i_where)
        file_name = get_str(img, "file_name", path=data_path, where=i_where)
        bbox = get_array(ann, "bbox", (4,), path=data_path, where=a_where)

        cam_key = (subject, seq, cam_idx)
        if cam_key not in cam_cache:
            cam = get_nested(cams_json, list(cam_key), path=cam_path, context=f"(needed by image id {image_id})")
            where = key_path(*cam_key)
            cam_cache[cam_key] = {
                "R": get_array(cam, "R", (3, 3), path=cam_path, where=where),
                "t": get_array(cam, "t", (3,), path=cam_path, where=where),
                "focal": get_array(cam, "focal", (2,), path=cam_path, where=where),
                "princpt": get_array(cam, "princpt", (2,), path=cam_path, where=where),
            }
        cam = cam_cache[cam_key]

        keys = [subject, seq, frame]
        world = get_nested(joints_json, keys, path=joint_path, context=f"(needed by image id {image_id})")
        joints_world_mm = as_array(world, (17, 3), path=joint_path, field_name=key_path(*keys))
        check_joint_units(joints_world_mm, "mm", path=joint_path, field_name=key_path(*keys))
        joints_cam_mm = joints_world_mm @ cam["R"].T + cam["t"]
        kp_px = project_cam_to_px(joints_cam_mm, cam["focal"], cam["princpt"])
        conf = np.isfinite(kp_px).all(axis=-1).astype(np.float64)
        kp_px = np.nan_to_num(kp_px, nan=0.0)

        samples.append(
            Sample(
                dataset="mpi3dhp",
                image_path=root / "images_1k" / f"S{subject}" / f"Seq{seq}" / "imageSequence" / file_name,
                image_hw=(height, width),
                bbox_xywh_px=f32(bbox),
                keypoints_2d_px=f32(kp_px),
                keypoints_conf=f32(conf),
                joint_set="mpi3dhp_17",
                joints_3d_cam_mm=f32(joints_cam_mm),
                focal_px=(float(cam["focal"][0]), float(cam["focal"][1])),
                princpt_px=(float(cam["princpt"][0]), float(cam["princpt"][1])),
                ids={"subject": subject, "sequence": seq, "camera": cam_idx, "frame": frame,
                     "image_id": image_id, "ann_id": int(ann["id"])},
                extras={"cam_rotmat": f32(cam["R"]), "cam_trans_mm": f32(cam["t"])},
            )
        )
    return samples
