"""3DPW in the COCO-style re-packaging of mks0601.

Layout and fields, as read by ``data/PW3D/PW3D.py`` in mks0601/I2L-MeshNet_RELEASE and
mks0601/Hand4Whole_RELEASE (``openpose_result`` as read by ``data/PW3D/PW3D.py`` in
hongsukchoi/3DCrowdNet_RELEASE, whose files are named ``3DPW_latest_{split}.json``)::

    {root}/3DPW_{split}.json                 # split: train, validation, test
        images[]:      id, file_name, width, height, sequence,
                       cam_param {"focal": [fx, fy], "princpt": [cx, cy]} (px)
        annotations[]: id, image_id, bbox [x, y, w, h] (px),
                       smpl_param {"pose": 72 (24 axis-angle, rad), "shape": 10 betas,
                                   "trans": 3 (m, camera frame), "gender": "male" | "female"},
                       person_id (optional),
                       openpose_result (optional, 18x3 OpenPose-COCO18 x, y, score; present in the
                       3DCrowdNet ``3DPW_latest_*`` files, absent from the I2L-MeshNet ones)
    {root}/imageFiles/{sequence}/{file_name}

``root`` is I2L-MeshNet's ``data/PW3D/data`` folder. The SMPL parameters are kept, as float32, in
``extras["smpl_param"] = {"pose_rotvecs": (24, 3), "shape_betas": (10,), "trans_cam_m": (3,),
"gender": str}``; ``joints_3d_cam_mm`` is ``None`` because 3D joints come from running SMPL (a
licensed model, not in the scope of a loader). 2D keypoints: ``openpose_result`` re-ordered to the
COCO 17-joint order (confidence = OpenPose score, clipped to [0, 1]; these are detections, not ground
truth, ``extras["keypoints_source"] = "openpose"``), or all-zero with confidence 0 when the file has
none (``extras["keypoints_source"] = None``). Joint set ``"coco_17"`` either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from neuralannot_cli.data._json import (
    f32,
    get_array,
    get_field,
    get_int,
    get_str,
    index_coco,
    read_json,
)
from neuralannot_cli.data.record import DatasetFormatError, Sample

COCO_17_JOINT_NAMES: tuple[str, ...] = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
    "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
)
OPENPOSE_18_JOINT_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip",
    "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear",
)
"""Order of ``openpose_result`` (3DCrowdNet ``openpose_joints_name`` without the added Pelvis)."""

OPENPOSE18_TO_COCO17: tuple[int, ...] = tuple(OPENPOSE_18_JOINT_NAMES.index(n) for n in COCO_17_JOINT_NAMES)

_GENDERS = ("male", "female", "neutral")


def load_3dpw(
    root: str | Path,
    split: Literal["train", "validation", "test"] = "test",
    *,
    file_name: str | None = None,
) -> list[Sample]:
    """Load 3DPW samples (one per person annotation) of ``split``.

    Args:
        root: folder holding the JSON file(s) and ``imageFiles/``.
        split: which split's file to read.
        file_name: annotation file inside ``root``; default ``3DPW_{split}.json`` (I2L-MeshNet / Hand4Whole).
            Pass ``3DPW_latest_{split}.json`` for the 3DCrowdNet files that carry ``openpose_result``.

    Returns:
        Samples with ``joint_set="coco_17"``, ``joints_3d_cam_mm=None``, intrinsics from ``cam_param``,
        ``ids`` ``{image_id, ann_id, sequence, person_id?}`` and ``extras`` ``{"smpl_param", "keypoints_source"}``.
    """
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
    root = Path(root).resolve()
    path = root / (file_name if file_name is not None else f"3DPW_{split}.json")
    data = read_json(path, dict)
    images_by_id, anns = index_coco(data, path=path)

    samples: list[Sample] = []
    for a_i, ann in enumerate(anns):
        a_where = f"annotations[{a_i}]"
        image_id = int(ann["image_id"])
        img = images_by_id[image_id]
        i_where = f"images[id={image_id}]"
        sequence = get_str(img, "sequence", path=path, where=i_where)
        file_name = get_str(img, "file_name", path=path, where=i_where)
        height = get_int(img, "height", path=path, where=i_where)
        width = get_int(img, "width", path=path, where=i_where)
        cam_param = get_field(img, "cam_param", path=path, where=i_where)
        focal = get_array(cam_param, "focal", (2,), path=path, where=f"{i_where}.cam_param")
        princpt = get_array(cam_param, "princpt", (2,), path=path, where=f"{i_where}.cam_param")
        bbox = get_array(ann, "bbox", (4,), path=path, where=a_where)

        smpl = get_field(ann, "smpl_param", path=path, where=a_where)
        s_where = f"{a_where}.smpl_param"
        pose = get_array(smpl, "pose", (72,), path=path, where=s_where, flatten=True)
        shape = get_array(smpl, "shape", (10,), path=path, where=s_where)
        trans = get_array(smpl, "trans", (3,), path=path, where=s_where)
        gender = get_str(smpl, "gender", path=path, where=s_where)
        if gender not in _GENDERS:
            raise DatasetFormatError(path, f"{s_where}.gender", f"expected one of {_GENDERS}, got {gender!r}")

        ids: dict = {"image_id": image_id, "ann_id": int(ann["id"]), "sequence": sequence}
        if "person_id" in ann:
            ids["person_id"] = get_int(ann, "person_id", path=path, where=a_where)

        if "openpose_result" in ann:
            op = get_array(ann, "openpose_result", (18, 3), path=path, where=a_where)
            coco = op[list(OPENPOSE18_TO_COCO17)]
            kp_px, conf = coco[:, :2], np.clip(coco[:, 2], 0.0, 1.0)
            source = "openpose"
        else:
            kp_px, conf, source = np.zeros((17, 2)), np.zeros(17), None

        samples.append(
            Sample(
                dataset="3dpw",
                image_path=root / "imageFiles" / sequence / file_name,
                image_hw=(height, width),
                bbox_xywh_px=f32(bbox),
                keypoints_2d_px=f32(kp_px),
                keypoints_conf=f32(conf),
                joint_set="coco_17",
                joints_3d_cam_mm=None,
                focal_px=(float(focal[0]), float(focal[1])),
                princpt_px=(float(princpt[0]), float(princpt[1])),
                ids=ids,
                extras={
                    "smpl_param": {
                        "pose_rotvecs": f32(pose.reshape(24, 3)),
                        "shape_betas": f32(shape),
                        "trans_cam_m": f32(trans),
                        "gender": gender,
                    },
                    "keypoints_source": source,
                },
            )
        )
    return samples
