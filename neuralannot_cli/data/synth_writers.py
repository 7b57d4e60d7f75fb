"""Per-format writers of the synthetic generator: the real public file layouts, read unchanged by
:mod:`neuralannot_cli.data` (and by the original dataset tools).

Each writer takes the generator's :class:`SynthView` records (one per image) and writes the
dataset's annotation files atomically (temporary file + ``os.replace``). Images are written by the
generator *before* any JSON, so an interrupted run never leaves a half-written JSON next to a
complete-looking image folder. Numbers: world/camera joints in mm rounded to 1e-4 mm, pixels to
1e-4 px, rotations and intrinsics at full float64 precision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralannot_cli.data.h36m import H36M_ACTION_NAMES
from neuralannot_cli.data.interhand import INTERHAND_HAND_JOINT_NAMES, INTERHAND_TO_HAND21

__all__ = [
    "SynthView",
    "write_json_atomic",
    "write_h36m_files",
    "write_mpi3dhp_files",
    "write_coco_wholebody_files",
    "write_freihand_files",
    "write_interhand_files",
    "write_3dpw_files",
    "write_hidden_gt",
]

_MM_DECIMALS = 4
_PX_DECIMALS = 4


@dataclass
class SynthView:
    """One generated image with one person (or hand), everything the writers need.

    Attributes:
        ann_id: annotation id (key of the hidden-GT file; FreiHAND: the sample index).
        image_id: image id.
        image_file: path relative to the dataset root (what :attr:`image_rel` is joined to differs per
            format; this is the full relative path from ``out_dir``).
        image_rel: the ``file_name`` as stored in the format's JSON.
        image_hw: ``(H, W)``.
        focal_px, princpt_px: ``(2,)`` intrinsics.
        cam_rotmat: ``(3, 3)`` world -> camera rotation (identity for monocular sets).
        cam_trans_mm: ``(3,)`` ``X_cam = R X_world + t`` (mm; zeros for monocular sets).
        joints_world_mm: ``(J, 3)`` GT joints of the format's joint set in the world frame (mm).
        joints_cam_mm: ``(J, 3)`` the same in the camera frame (mm).
        keypoints_2d_px: ``(J, 2)`` exact projections of ``joints_cam_mm``.
        keypoints_2d_noisy_px: ``(J, 2)`` what is written as 2D labels (projection + noise).
        keypoints_visible: ``(J,)`` bool, False where occluded (``--occlusion-frac``) or off-image.
        bbox_xywh_px: ``(4,)`` box of the projected mesh (clipped to the image).
        params_cam, params_world: body-model parameters (float64 arrays by ``BodyModel`` name) that
            reproduce the camera-frame / world-frame mesh in metres.
        ids: format-specific ids (subject, action, capture, camera, ...).
        extras: format-specific values (face/hand boxes and flags, segmentation, hand side, ...).
    """

    ann_id: int
    image_id: int
    image_file: str
    image_rel: str
    image_hw: tuple[int, int]
    focal_px: np.ndarray
    princpt_px: np.ndarray
    cam_rotmat: np.ndarray
    cam_trans_mm: np.ndarray
    joints_world_mm: np.ndarray
    joints_cam_mm: np.ndarray
    keypoints_2d_px: np.ndarray
    keypoints_2d_noisy_px: np.ndarray
    keypoints_visible: np.ndarray
    bbox_xywh_px: np.ndarray
    params_cam: dict[str, np.ndarray]
    params_world: dict[str, np.ndarray] | None
    light_dir_cam: np.ndarray
    ids: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def _r(a: np.ndarray, decimals: int) -> list:
    return np.round(np.asarray(a, dtype=np.float64), decimals).tolist()


def _full(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


def write_json_atomic(path: Path, obj: Any) -> Path:
    """Write ``obj`` as compact JSON to ``path`` via a temporary file in the same folder + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ------------------------------------------------------------------------------------------ H36M


def write_h36m_files(root: Path, views: Sequence[SynthView], cameras: dict[int, dict[int, dict]]) -> list[Path]:
    """``annotations/Human36M_subject{S}_{data,camera,joint_3d}.json`` (mks0601 layout).

    Args:
        cameras: ``{subject: {cam_idx: {"R": (3, 3), "t": (3,) mm, "f": (2,), "c": (2,)}}}``.
    """
    written = []
    for subject in sorted(cameras):
        sviews = [v for v in views if v.ids["subject"] == subject]
        images, anns, joints = [], [], {}
        for v in sviews:
            a, s, f = v.ids["action"], v.ids["subaction"], v.ids["frame"]
            images.append({
                "id": v.image_id, "file_name": v.image_rel, "width": v.image_hw[1], "height": v.image_hw[0],
                "subject": subject, "action_name": H36M_ACTION_NAMES[a - 2], "action_idx": a,
                "subaction_idx": s, "cam_idx": v.ids["camera"], "frame_idx": f,
            })
            anns.append({"id": v.ann_id, "image_id": v.image_id, "bbox": _r(v.bbox_xywh_px, _PX_DECIMALS),
                         "keypoints_vis": [bool(x) for x in v.keypoints_visible]})
            joints.setdefault(str(a), {}).setdefault(str(s), {})[str(f)] = _r(v.joints_world_mm, _MM_DECIMALS)
        cams = {str(c): {"R": _full(p["R"]), "t": _full(p["t"]), "f": _full(p["f"]), "c": _full(p["c"])}
                for c, p in sorted(cameras[subject].items())}
        annot = root / "annotations"
        written.append(write_json_atomic(annot / f"Human36M_subject{subject}_camera.json", cams))
        written.append(write_json_atomic(annot / f"Human36M_subject{subject}_joint_3d.json", joints))
        written.append(write_json_atomic(annot / f"Human36M_subject{subject}_data.json",
                                         {"images": images, "annotations": anns}))
    return written


# ------------------------------------------------------------------------------------ MPI-INF-3DHP


def write_mpi3dhp_files(root: Path, views: Sequence[SynthView],
                        cameras: dict[tuple[int, int], dict[int, dict]]) -> list[Path]:
    """``MPI-INF-3DHP_{1k,camera_1k,joint_3d}.json`` (mks0601 layout).

    Args:
        cameras: ``{(subject, seq): {cam_idx: {"R", "t" (mm), "focal", "princpt"}}}``.
    """
    images, anns, joints, cams = [], [], {}, {}
    for v in views:
        subj, seq, f = v.ids["subject"], v.ids["sequence"], v.ids["frame"]
        images.append({"id": v.image_id, "file_name": v.image_rel, "width": v.image_hw[1], "height": v.image_hw[0],
                       "subject_idx": subj, "seq_idx": seq, "cam_idx": v.ids["camera"], "frame_idx": f})
        anns.append({"id": v.ann_id, "image_id": v.image_id, "bbox": _r(v.bbox_xywh_px, _PX_DECIMALS)})
        joints.setdefault(str(subj), {}).setdefault(str(seq), {})[str(f)] = _r(v.joints_world_mm, _MM_DECIMALS)
    for (subj, seq), rig in sorted(cameras.items()):
        cams.setdefault(str(subj), {})[str(seq)] = {
            str(c): {"R": _full(p["R"]), "t": _full(p["t"]), "focal": _full(p["focal"]),
                     "princpt": _full(p["princpt"])}
            for c, p in sorted(rig.items())
        }
    return [
        write_json_atomic(root / "MPI-INF-3DHP_camera_1k.json", cams),
        write_json_atomic(root / "MPI-INF-3DHP_joint_3d.json", joints),
        write_json_atomic(root / "MPI-INF-3DHP_1k.json", {"images": images, "annotations": anns}),
    ]


# ---------------------------------------------------------------------------------- COCO-WholeBody

_WB_PARTS = (("keypoints", 0, 17), ("foot_kpts", 17, 23), ("face_kpts", 23, 91),
             ("lefthand_kpts", 91, 112), ("righthand_kpts", 112, 133))


def write_coco_wholebody_files(root: Path, views: Sequence[SynthView], split: str) -> list[Path]:
    """``annotations/coco_wholebody_{split}_v1.0.json``: 2D keypoints ``(x, y, v)`` and boxes only.

    ``v = 2`` labelled, ``v = 0`` missing (occluded by ``--occlusion-frac``, off-image, or a part
    switched off with ``--no-face`` / ``--no-hands``; its ``x = y = 0`` as in COCO).
    ``num_keypoints`` counts labelled body (17) keypoints, as COCO does.
    """
    images, anns = [], []
    for v in views:
        images.append({"id": v.image_id, "file_name": v.image_rel, "width": v.image_hw[1], "height": v.image_hw[0],
                       "license": 0, "coco_url": "", "flickr_url": "", "date_captured": ""})
        vis = np.asarray(v.keypoints_visible, dtype=bool)
        kp = np.where(vis[:, None], np.round(v.keypoints_2d_noisy_px, _PX_DECIMALS), 0.0)
        ann: dict[str, Any] = {"id": v.ann_id, "image_id": v.image_id, "category_id": 1, "iscrowd": 0,
                               "area": float(v.extras["area"]), "bbox": _r(v.bbox_xywh_px, _PX_DECIMALS),
                               "segmentation": v.extras["segmentation"], "num_keypoints": int(vis[:17].sum())}
        for name, lo, hi in _WB_PARTS:
            flat: list[float] = []
            for j in range(lo, hi):
                flat += [float(kp[j, 0]), float(kp[j, 1]), 2 if vis[j] else 0]
            ann[name] = flat
        for name in ("face_box", "lefthand_box", "righthand_box"):
            ann[name] = _r(v.extras[name], _PX_DECIMALS)
        for name in ("face_valid", "lefthand_valid", "righthand_valid", "foot_valid"):
            ann[name] = bool(v.extras[name])
        anns.append(ann)
    data = {
        "info": {"description": "neuralannot synthetic COCO-WholeBody-format data (NOT real COCO images)",
                 "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    return [write_json_atomic(root / "annotations" / f"coco_wholebody_{split}_v1.0.json", data)]


# -------------------------------------------------------------------------------------------- 3DPW


def write_3dpw_files(root: Path, views: Sequence[SynthView], split: str) -> list[Path]:
    """``3DPW_{split}.json`` in I2L-MeshNet's packaging (:mod:`neuralannot_cli.data.pw3d`), one person per image.

    ``smpl_param``: ``pose`` (72: root then SMPL's 23 body joints, axis-angle), ``shape`` (10), ``trans`` (m,
    camera frame: SMPL's ``transl``) and ``gender``, written at full precision (the GT of the set);
    ``cam_param`` the image's intrinsics. No ``openpose_result`` (the I2L-MeshNet files have none).
    """
    images, anns = [], []
    for v in views:
        images.append({"id": v.image_id, "file_name": v.image_rel, "width": v.image_hw[1], "height": v.image_hw[0],
                       "sequence": v.ids["sequence"],
                       "cam_param": {"focal": _full(v.focal_px), "princpt": _full(v.princpt_px)}})
        p = v.params_cam
        pose = np.concatenate([np.asarray(p["root_rotvec"]).reshape(1, 3), np.asarray(p["body_pose_rotvecs"])])
        anns.append({"id": v.ann_id, "image_id": v.image_id, "person_id": v.ids["person_id"],
                     "bbox": _r(v.bbox_xywh_px, _PX_DECIMALS),
                     "smpl_param": {"pose": _full(pose.reshape(-1)), "shape": _full(p["betas"]),
                                    "trans": _full(p["transl_m"]), "gender": v.extras["gender"]}})
    return [write_json_atomic(root / f"3DPW_{split}.json", {"images": images, "annotations": anns})]


# ---------------------------------------------------------------------------------------- FreiHAND


def write_freihand_files(root: Path, views: Sequence[SynthView], split: str) -> list[Path]:
    """``{split}_{K,xyz,mano,verts}.json`` (metres, camera frame; ``views`` in index order).

    ``mano`` rows are FreiHAND's 61 numbers: pose 48 (root rotvec 3 + 15 finger rotvecs *relative to
    the MANO mean hand*, i.e. ``flat_hand_mean=False``) | betas 10 | ``uv_root`` 2 (projected wrist,
    px) | ``scale`` 1 (length of the middle-finger base bone, joints Middle_1 -> Middle_2, metres).
    """
    ks, xyz, mano, verts = [], [], [], []
    for v in views:
        fx, fy = v.focal_px
        cx, cy = v.princpt_px
        ks.append([[float(fx), 0.0, float(cx)], [0.0, float(fy), float(cy)], [0.0, 0.0, 1.0]])
        xyz.append(np.round(np.asarray(v.joints_cam_mm) / 1000.0, 7).tolist())
        p = v.params_cam
        pose48 = np.concatenate([p["root_rotvec"].reshape(3), p["hand_pose_rotvecs"].reshape(45)])
        joints_m = np.asarray(v.joints_cam_mm) / 1000.0
        scale = float(np.linalg.norm(joints_m[10] - joints_m[9]))
        theta = np.concatenate([pose48, p["betas"].reshape(-1)[:10], v.keypoints_2d_px[0], [scale]])
        mano.append([theta.tolist()])
        verts.append(np.round(v.extras["vertices_cam_m"], 7).tolist())
    return [
        write_json_atomic(root / f"{split}_K.json", ks),
        write_json_atomic(root / f"{split}_mano.json", mano),
        write_json_atomic(root / f"{split}_verts.json", verts),
        write_json_atomic(root / f"{split}_xyz.json", xyz),
    ]


# ------------------------------------------------------------------------------------- InterHand2.6M


def _skeleton_txt() -> str:
    lines = ["# keypoint name, keypoint index, parent index"]
    parents = [1, 2, 3, 20, 5, 6, 7, 20, 9, 10, 11, 20, 13, 14, 15, 20, 17, 18, 19, 20, -1]
    for offset, prefix in ((0, "r_"), (21, "l_")):
        for k, name in enumerate(INTERHAND_HAND_JOINT_NAMES):
            par = parents[k] + offset if parents[k] >= 0 else -1
            lines.append(f"{prefix}{name.lower().replace('_', '')} {k + offset} {par}")
    return "\n".join(lines) + "\n"


def hand21_to_interhand42(joints_hand21: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Place one hand's ``(21, 3)`` hand_21 joints into the 42-joint InterHand order; returns
    ``(coords (42, 3), valid (42,))`` with the other hand zero / invalid."""
    out = np.zeros((42, joints_hand21.shape[-1]))
    valid = np.zeros(42)
    off = 0 if side == "right" else 21
    idx = off + np.asarray(INTERHAND_TO_HAND21)
    out[idx] = joints_hand21
    valid[idx] = 1.0
    return out, valid


def write_interhand_files(root: Path, views: Sequence[SynthView], split: str,
                          cameras: dict[int, dict[str, dict]]) -> list[Path]:
    """``annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d}.json`` + ``annotations/skeleton.txt``.

    Args:
        cameras: ``{capture: {camera_name: {"campos" (mm), "camrot", "focal", "princpt"}}}``.
    """
    annot = root / "annotations" / split
    images, anns, joints = [], [], {}
    for v in views:
        cap, cam, f, side = v.ids["capture"], v.ids["camera"], v.ids["frame"], v.ids["hand_side"]
        images.append({"id": v.image_id, "file_name": v.image_rel, "width": v.image_hw[1], "height": v.image_hw[0],
                       "capture": cap, "subject": cap, "seq_name": v.ids["seq_name"], "camera": cam,
                       "frame_idx": f})
        world42, valid42 = hand21_to_interhand42(np.asarray(v.joints_world_mm), side)
        vis = np.asarray(v.keypoints_visible, dtype=bool)
        ann_valid = valid42.copy()
        off = 0 if side == "right" else 21
        ann_valid[off + np.asarray(INTERHAND_TO_HAND21)] = vis.astype(np.float64)
        anns.append({"id": v.ann_id, "image_id": v.image_id, "bbox": _r(v.bbox_xywh_px, _PX_DECIMALS),
                     "joint_valid": [[int(x)] for x in ann_valid], "hand_type": side, "hand_type_valid": 1})
        joints.setdefault(str(cap), {})[str(f)] = {
            "world_coord": _r(world42, _MM_DECIMALS), "joint_valid": [int(x) for x in valid42],
            "hand_type": side, "hand_type_valid": True,
        }
    cams: dict[str, Any] = {}
    for cap, rig in sorted(cameras.items()):
        entry: dict[str, dict] = {"campos": {}, "camrot": {}, "focal": {}, "princpt": {}}
        for name, p in sorted(rig.items()):
            for key in entry:
                entry[key][name] = _full(p[key])
        cams[str(cap)] = entry
    skel = root / "annotations" / "skeleton.txt"
    skel.parent.mkdir(parents=True, exist_ok=True)
    tmp = skel.with_name(f".skeleton.txt.tmp-{os.getpid()}")
    tmp.write_text(_skeleton_txt())
    os.replace(tmp, skel)
    return [
        write_json_atomic(annot / f"InterHand2.6M_{split}_camera.json", cams),
        write_json_atomic(annot / f"InterHand2.6M_{split}_joint_3d.json", joints),
        write_json_atomic(annot / f"InterHand2.6M_{split}_data.json", {"images": images, "annotations": anns}),
        skel,
    ]


# ------------------------------------------------------------------------------------- hidden GT


def write_hidden_gt(path: Path, views: Sequence[SynthView], meta: dict[str, Any], joint_set: str) -> Path:
    """The side file with the generator's ground truth, keyed by ``str(ann_id)`` (schema: :mod:`.synth`)."""
    entries: dict[str, Any] = {}
    for v in views:
        e: dict[str, Any] = {
            "image_id": v.image_id,
            "image_file": v.image_file,
            "image_hw": list(v.image_hw),
            "focal_px": _full(v.focal_px),
            "princpt_px": _full(v.princpt_px),
            "cam_rotmat": _full(v.cam_rotmat),
            "cam_trans_mm": _full(v.cam_trans_mm),
            "model_type": v.extras["model_type"],
            "params_cam": {k: _full(a) for k, a in v.params_cam.items()},
            "joint_set": joint_set,
            "joints_3d_cam_mm": _r(v.joints_cam_mm, _MM_DECIMALS),
            "keypoints_2d_px": _r(v.keypoints_2d_px, _PX_DECIMALS),
            "keypoints_visible": [bool(x) for x in v.keypoints_visible],
            "bbox_xywh_px": _r(v.bbox_xywh_px, _PX_DECIMALS),
            "light_dir_cam": _full(v.light_dir_cam),
            "ids": v.ids,
        }
        if v.params_world is not None:
            e["params_world"] = {k: _full(a) for k, a in v.params_world.items()}
            e["joints_3d_world_mm"] = _r(v.joints_world_mm, _MM_DECIMALS)
        if "hand_side" in v.extras:
            e["hand_side"] = v.extras["hand_side"]
        if "gender" in v.extras:
            e["gender"] = v.extras["gender"]
        entries[str(v.ann_id)] = e
    return write_json_atomic(path, {"meta": meta, "annotations": entries})
