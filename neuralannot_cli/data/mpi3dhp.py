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

from neuralannot_cli.data._walk import (
    WorldCamera,
    needed_by,
    projected_sample,
    read_camera_dataset,
    read_world_camera,
    read_world_joints_mm,
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
_CAMERA_FIELDS = ("R", "t", "focal", "princpt")


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
    annotations, cams_json, joints_json = read_camera_dataset(data_path, cam_path, joint_path)

    cam_cache: dict[tuple[int, int, int], WorldCamera] = {}
    samples: list[Sample] = []
    for ref in annotations:
        frame = ref.image_int("frame_idx")
        if frame % frame_step:
            continue
        subject = ref.image_int("subject_idx")
        seq = ref.image_int("seq_idx")
        cam_idx = ref.image_int("cam_idx")
        image_hw, file_name, bbox = ref.image_file_and_box()

        cam_key = (subject, seq, cam_idx)
        if cam_key not in cam_cache:
            cam_cache[cam_key] = read_world_camera(cams_json, cam_key, path=cam_path, names=_CAMERA_FIELDS,
                                                   context=needed_by(ref.image_id))
        cam = cam_cache[cam_key]

        joints_world_mm = read_world_joints_mm(joints_json, [subject, seq, frame], 17, path=joint_path,
                                               image_id=ref.image_id)
        samples.append(projected_sample(
            dataset="mpi3dhp",
            image_path=root / "images_1k" / f"S{subject}" / f"Seq{seq}" / "imageSequence" / file_name,
            image_hw=image_hw, bbox_xywh_px=bbox, joint_set="mpi3dhp_17",
            joints_cam_mm=cam.world_to_cam(joints_world_mm), cam=cam,
            ids={"subject": subject, "sequence": seq, "camera": cam_idx, "frame": frame,
                 "image_id": ref.image_id, "ann_id": int(ref.ann["id"])},
        ))
    return samples
