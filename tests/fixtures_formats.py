"""Writers of tiny dataset files in the six real formats (see the ``neuralannot_cli.data`` loaders).

Each ``write_*`` function writes 2-3 images' worth of annotations into ``root`` in the exact layout
and field names of the released files and returns a dict with the paths and the raw values it wrote
(world joints, cameras, ...), so that tests compute the expected answers independently.
No image files are written (loaders only build paths).
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np


def _dump(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# Exact small rotations (entries 0/±1) so expected answers can be worked out by hand.
R_X90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # y' = -z, z' = y
R_Z90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # x' = -y, y' = x


def body_world_joints(seed: int, n_joints: int = 17) -> np.ndarray:
    """Distinct world joints (mm) about a person 3 m deep along world +y (see ``R_X90``)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-400.0, 400.0, size=(n_joints, 3))
    pts[:, 1] += 3000.0
    return np.round(pts, 3)


# ------------------------------------------------------------------------------------------ H36M


def write_h36m(root: Path, subject: int = 1) -> dict[str, Any]:
    """Human36M_subject{S}_{data,camera,joint_3d}.json with 2 cameras x 3 frames of one subaction.

    Frame 0 joint 0 is the hand-checked point ``(10, 3000, 20)``; camera 1 is ``R_X90``,
    ``t = (100, 200, 5000)``, ``f = (1000, 1000)``, ``c = (500, 500)``.
    """
    annot = root / "annotations"
    action, subaction = 2, 1
    frames = [0, 5, 10]
    cams = {
        "1": {"R": R_X90.tolist(), "t": [100.0, 200.0, 5000.0], "f": [1000.0, 1000.0], "c": [500.0, 500.0]},
        "4": {"R": (rot_z(10.0) @ R_X90).tolist(), "t": [-50.0, 30.0, 4500.0], "f": [1145.0, 1143.8],
              "c": [512.5, 515.4]},
    }
    world = {f: body_world_joints(f) for f in frames}
    world[0][0] = [10.0, 3000.0, 20.0]
    images, anns = [], []
    image_id = 0
    for cam in ("1", "4"):
        for f in frames:
            images.append({
                "id": image_id,
                "file_name": f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{int(cam):02d}/"
                             f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{int(cam):02d}_{f + 1:06d}.jpg",
                "width": 1000, "height": 1002, "subject": subject, "action_name": "Directions",
                "action_idx": action, "subaction_idx": subaction, "cam_idx": int(cam), "frame_idx": f,
            })
            anns.append({"id": 100 + image_id, "image_id": image_id, "bbox": [300.0, 200.0, 250.0, 600.0],
                         "keypoints_vis": [True] * 17})
            image_id += 1
    joints = {str(action): {str(subaction): {str(f): world[f].tolist() for f in frames}}}
    paths = {
        "data": _dump(annot / f"Human36M_subject{subject}_data.json", {"images": images, "annotations": anns}),
        "camera": _dump(annot / f"Human36M_subject{subject}_camera.json", cams),
        "joint_3d": _dump(annot / f"Human36M_subject{subject}_joint_3d.json", joints),
    }
    return {"paths": paths, "cameras": cams, "world": world, "images": images, "annotations": anns,
            "action": action, "subaction": subaction, "frames": frames}


# ---------------------------------------------------------------------------------------- MPI-3DHP


def write_mpi3dhp(root: Path) -> dict[str, Any]:
    """MPI-INF-3DHP_{1k,camera_1k,joint_3d}.json: subject 1, sequence 2, cameras 0 and 8, frames 0, 3."""
    subject, seq = 1, 2
    frames = [0, 3]
    cams = {
        "0": {"R": R_X90.tolist(), "t": [0.0, 100.0, 4000.0], "focal": [1500.0, 1500.0], "princpt": [1024.0, 1024.0]},
        "8": {"R": (rot_x(5.0) @ R_X90).tolist(), "t": [30.0, -20.0, 3800.0], "focal": [1497.7, 1498.2],
              "princpt": [1030.1, 1017.6]},
    }
    world = {f: body_world_joints(100 + f) for f in frames}
    images, anns = [], []
    image_id = 0
    for cam in ("0", "8"):
        for f in frames:
            images.append({"id": image_id, "file_name": f"video_{cam}/img_{f:06d}.jpg", "width": 2048,
                           "height": 2048, "subject_idx": subject, "seq_idx": seq, "cam_idx": int(cam),
                           "frame_idx": f})
            anns.append({"id": image_id, "image_id": image_id, "bbox": [800.0, 600.0, 400.0, 900.0]})
            image_id += 1
    paths = {
        "data": _dump(root / "MPI-INF-3DHP_1k.json", {"images": images, "annotations": anns}),
        "camera": _dump(root / "MPI-INF-3DHP_camera_1k.json", {str(subject): {str(seq): cams}}),
        "joint_3d": _dump(root / "MPI-INF-3DHP_joint_3d.json",
                          {str(subject): {str(seq): {str(f): world[f].tolist() for f in frames}}}),
    }
    return {"paths": paths, "cameras": cams, "world": world, "images": images, "annotations": anns,
            "subject": subject, "seq": seq}


# -------------------------------------------------------------------------------------------- 3DPW


def write_3dpw(root: Path, split: str = "test") -> dict[str, Any]:
    """3DPW_{split}.json: 2 images, 3 people; annotation 0 carries ``openpose_result`` (joint k at x = k)."""
    rng = np.random.default_rng(7)
    images = [
        {"id": 0, "file_name": "image_00000.jpg", "width": 1080, "height": 1920, "sequence": "downtown_walking_00",
         "cam_param": {"focal": [1961.9, 1969.2], "princpt": [540.0, 960.0]}},
        {"id": 1, "file_name": "image_00001.jpg", "width": 1080, "height": 1920, "sequence": "downtown_walking_00",
         "cam_param": {"focal": [1961.9, 1969.2], "princpt": [540.0, 960.0]}},
    ]
    openpose = [[float(k), 100.0 + k, 0.5 + 0.02 * k] for k in range(18)]
    openpose[3][2] = 1.7  # an OpenPose score above 1 (clipped)
    anns = []
    for aid, (image_id, gender) in enumerate([(0, "male"), (0, "female"), (1, "male")]):
        ann = {
            "id": aid, "image_id": image_id, "person_id": aid % 2, "bbox": [100.0 + aid, 300.0, 400.0, 1200.0],
            "smpl_param": {"pose": np.round(rng.normal(0, 0.2, 72), 4).tolist(),
                           "shape": np.round(rng.normal(0, 1, 10), 4).tolist(),
                           "trans": [0.1 * aid, 0.2, 4.0], "gender": gender},
        }
        if aid == 0:
            ann["openpose_result"] = openpose
        anns.append(ann)
    path = _dump(root / f"3DPW_{split}.json", {"images": images, "annotations": anns})
    return {"paths": {"data": path}, "images": images, "annotations": anns, "openpose": openpose}


# ---------------------------------------------------------------------------------- COCO-WholeBody


def write_coco_wholebody(root: Path, split: str = "val") -> dict[str, Any]:
    """coco_wholebody_{split}_v1.0.json: 2 images, 4 annotations (one crowd, one with no keypoints).

    In person annotations, part P's joint j has x = 100 * (P + 1) + j (inside the images) (P: 0 body, 1 foot, 2 face,
    3 left hand, 4 right hand), y = j, and visibility cycling 0, 1, 2.
    """
    parts = [("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21)]

    def person(aid: int, image_id: int, *, crowd: bool = False, empty: bool = False) -> dict:
        ann: dict[str, Any] = {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": int(crowd),
                               "area": 5000.0, "bbox": [10.0 + aid, 20.0, 100.0, 200.0],
                               "segmentation": [[10, 20, 110, 20, 110, 220]], "num_keypoints": 0 if empty else 11}
        for p, (name, n) in enumerate(parts):
            flat: list[float] = []
            for j in range(n):
                v = 0 if empty else j % 3
                flat += [float(100 * (p + 1) + j) if v else 0.0, float(j) if v else 0.0, v]
            ann[name] = flat
        ann.update({"face_box": [40.0, 30.0, 20.0, 25.0], "lefthand_box": [5.0, 100.0, 15.0, 15.0],
                    "righthand_box": [90.0, 100.0, 16.0, 14.0], "face_valid": True, "lefthand_valid": False,
                    "righthand_valid": True, "foot_valid": True})
        return ann

    images = [{"id": 397133, "file_name": "000000397133.jpg", "width": 640, "height": 427},
              {"id": 37777, "file_name": "000000037777.jpg", "width": 352, "height": 230}]
    anns = [person(1, 397133), person(2, 397133, crowd=True), person(3, 37777, empty=True), person(4, 37777)]
    data = {"info": {"description": "COCO-WholeBody"}, "licenses": [], "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    path = _dump(root / "annotations" / f"coco_wholebody_{split}_v1.0.json", data)
    return {"paths": {"data": path}, "images": images, "annotations": anns, "parts": parts}


# ---------------------------------------------------------------------------------------- FreiHAND


def write_freihand(root: Path, split: str = "training", n: int = 3, with_mano: bool = True) -> dict[str, Any]:
    """{split}_xyz.json (m), {split}_K.json and {split}_mano.json for ``n`` samples.

    Sample 0 joint 0 is the hand-checked point ``(0.01, -0.02, 0.5)`` m with ``K`` focal 500,
    principal point (112, 112).
    """
    rng = np.random.default_rng(3)
    xyz = np.round(rng.uniform(-0.05, 0.05, size=(n, 21, 3)), 5)
    xyz[:, :, 2] += 0.6
    xyz[0, 0] = [0.01, -0.02, 0.5]
    K = np.zeros((n, 3, 3))
    for i in range(n):
        f = 500.0 + 10.0 * i
        K[i] = [[f, 0.0, 112.0 + i], [0.0, f + 1.0, 112.0 - i], [0.0, 0.0, 1.0]]
    mano = np.round(rng.normal(0, 0.3, size=(n, 1, 61)), 4)
    paths = {"K": _dump(root / f"{split}_K.json", K.tolist()),
             "xyz": _dump(root / f"{split}_xyz.json", xyz.tolist())}
    if with_mano:
        paths["mano"] = _dump(root / f"{split}_mano.json", mano.tolist())
    return {"paths": paths, "xyz_m": xyz, "K": K, "mano": mano, "n": n}


# ------------------------------------------------------------------------------------- InterHand2.6M

INTERHAND_SKELETON_TXT = """# keypoint name, keypoint index, parent index
r_thumb4 0 1
r_thumb3 1 2
r_thumb2 2 3
r_thumb1 3 20
r_index4 4 5
r_index3 5 6
r_index2 6 7
r_index1 7 20
r_middle4 8 9
r_middle3 9 10
r_middle2 10 11
r_middle1 11 20
r_ring4 12 13
r_ring3 13 14
r_ring2 14 15
r_ring1 15 20
r_pinky4 16 17
r_pinky3 17 18
r_pinky2 18 19
r_pinky1 19 20
r_wrist 20 -1
l_thumb4 21 22
l_thumb3 22 23
l_thumb2 23 24
l_thumb1 24 41
l_index4 25 26
l_index3 26 27
l_index2 27 28
l_index1 28 41
l_middle4 29 30
l_middle3 30 31
l_middle2 31 32
l_middle1 32 41
l_ring4 33 34
l_ring3 34 35
l_ring2 35 36
l_ring1 36 41
l_pinky4 37 38
l_pinky3 38 39
l_pinky2 39 40
l_pinky1 40 41
l_wrist 41 -1
"""
"""``annotations/skeleton.txt`` of InterHand2.6M (names, indices, parents)."""


def write_interhand(root: Path, split: str = "val", *, world_coord_dict: bool = True) -> dict[str, Any]:
    """InterHand2.6M_{split}_{data,camera,joint_3d}.json + skeleton.txt under annotations/{split}/.

    World joint k of a frame is ``(k, 2 k, 0) + frame_offset`` mm. Camera ``"400262"`` has
    ``camrot = R_Z90``, ``campos = (0, 0, -1000)``, focal (500, 600), princpt (320, 240), so joint k of
    frame 0 is at camera ``(-2k, k, 1000)``. Annotations: right (frame 0), left (frame 0, left wrist
    invalid → dropped), interacting (frame 1, two right-hand joints invalid).
    """
    annot = root / "annotations" / split
    annot.mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "skeleton.txt").write_text(INTERHAND_SKELETON_TXT)
    capture = 0
    cams = {str(capture): {
        "campos": {"400262": [0.0, 0.0, -1000.0], "400263": [50.0, -20.0, -1200.0]},
        "camrot": {"400262": R_Z90.tolist(), "400263": (rot_x(8.0) @ R_Z90).tolist()},
        "focal": {"400262": [500.0, 600.0], "400263": [1241.9, 1242.3]},
        "princpt": {"400262": [320.0, 240.0], "400263": [165.4, 257.9]},
    }}
    k = np.arange(42, dtype=np.float64)
    world = {0: np.stack([k, 2 * k, np.zeros(42)], axis=1),
             1: np.stack([k, 2 * k, np.zeros(42)], axis=1) + np.array([5.0, -3.0, 40.0])}
    joints = {str(capture): {
        str(f): ({"world_coord": world[f].tolist(), "joint_valid": [1] * 42, "hand_type": "interacting",
                  "hand_type_valid": True} if world_coord_dict else world[f].tolist())
        for f in world
    }}
    images = [
        {"id": 0, "file_name": "Capture0/ROM04_RT_Occlusion/cam400262/image0000.jpg", "width": 334, "height": 512,
         "capture": capture, "subject": 0, "seq_name": "ROM04_RT_Occlusion", "camera": "400262", "frame_idx": 0},
        {"id": 1, "file_name": "Capture0/ROM04_RT_Occlusion/cam400263/image0000.jpg", "width": 334, "height": 512,
         "capture": capture, "subject": 0, "seq_name": "ROM04_RT_Occlusion", "camera": "400263", "frame_idx": 0},
        {"id": 2, "file_name": "Capture0/ROM01_Interaction/cam400262/image0001.jpg", "width": 334, "height": 512,
         "capture": capture, "subject": 0, "seq_name": "ROM01_Interaction", "camera": "400262", "frame_idx": 1},
    ]
    valid_left_wrist_off = [1] * 42
    valid_left_wrist_off[41] = 0
    valid_inter = [1] * 42
    valid_inter[0] = valid_inter[5] = 0  # right thumb tip, right index3
    anns = [
        {"id": 10, "image_id": 0, "bbox": [100.0, 100.0, 80.0, 90.0], "joint_valid": [[1]] * 42,
         "hand_type": "right", "hand_type_valid": 1},
        {"id": 11, "image_id": 1, "bbox": [90.0, 110.0, 70.0, 95.0], "joint_valid": valid_left_wrist_off,
         "hand_type": "left", "hand_type_valid": 1},
        {"id": 12, "image_id": 2, "bbox": [80.0, 90.0, 150.0, 120.0], "joint_valid": valid_inter,
         "hand_type": "interacting", "hand_type_valid": 1},
    ]
    paths = {
        "data": _dump(annot / f"InterHand2.6M_{split}_data.json", {"images": images, "annotations": anns}),
        "camera": _dump(annot / f"InterHand2.6M_{split}_camera.json", cams),
        "joint_3d": _dump(annot / f"InterHand2.6M_{split}_joint_3d.json", joints),
    }
    return {"paths": paths, "cameras": cams, "world": world, "images": images, "annotations": anns}


def official_model_pickle(data: dict) -> bytes:
    """``data`` (a model file's dict) pickled as the released SMPL / MANO files are: chumpy ``Ch`` arrays and a
    ``scipy.sparse.csc_matrix`` J_regressor (under the old ``scipy.sparse.csc`` module), without chumpy or scipy
    installed."""
    ch_mod, csc_mod = types.ModuleType("chumpy.ch"), types.ModuleType("scipy.sparse.csc")

    class Ch:
        pass

    class csc_matrix:
        pass

    Ch.__module__, Ch.__qualname__, ch_mod.Ch = "chumpy.ch", "Ch", Ch
    csc_matrix.__module__, csc_matrix.__qualname__, csc_mod.csc_matrix = "scipy.sparse.csc", "csc_matrix", csc_matrix
    official = dict(data)
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        node = Ch()
        node.__dict__.update(x=np.asarray(data[key], dtype=np.float64), _dirty_vars=set())
        official[key] = node
    dense_t = np.asarray(data["J_regressor"], dtype=np.float64).T  # columns of the csc matrix
    nonzero = dense_t != 0
    sparse = csc_matrix()
    sparse.__dict__.update(_shape=dense_t.T.shape, data=dense_t[nonzero],
                           indices=np.nonzero(nonzero)[1].astype(np.int32),
                           indptr=np.concatenate([[0], np.cumsum(nonzero.sum(1))]).astype(np.int32))  # fmt: skip
    official["J_regressor"] = sparse
    fakes = {"chumpy": types.ModuleType("chumpy"), "chumpy.ch": ch_mod, "scipy": types.ModuleType("scipy"),
             "scipy.sparse": types.ModuleType("scipy.sparse"), "scipy.sparse.csc": csc_mod}  # fmt: skip
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        return pickle.dumps(official, protocol=2)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = old
