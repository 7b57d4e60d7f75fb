"""Pseudo-GT files in the layout of the released NeuralAnnot parameters, plus a bulk ``.npz`` format.

What the field's files look like (read in the loaders that consume them; mks0601 is the NeuralAnnot author)
--------------------------------------------------------------------------------------------------------
All rotations are axis-angle vectors (radians), flattened; translations in **metres**; SMPL-X/MANO hand poses
are relative to the model's mean hand (``smplx.create(..., use_pca=False)`` with the default
``flat_hand_mean=False``); ``focal``/``princpt`` in pixels of the ORIGINAL image.

1. COCO(-WholeBody), SMPL-X whole body: ``MSCOCO_train_SMPLX_all_NeuralAnnot.json``
   (NeuralAnnot_RELEASE ``MSCOCO/demo_smplx.py``; Hand4Whole_RELEASE ``common/utils/preprocessing.py``
   ``process_human_model_output(..., 'smplx')``)::

       {str(ann_id): {"smplx_param": {"root_pose": [3], "body_pose": [63], "lhand_pose": [45],
                                      "rhand_pose": [45], "jaw_pose": [3], "shape": [10], "expr": [10],
                                      "trans": [3], "lhand_valid": bool, "rhand_valid": bool,
                                      "face_valid": bool},
                      "cam_param": {"focal": [fx, fy], "princpt": [cx, cy]}}}

   Parameters are in the CAMERA frame of the image (no extrinsics): the demo forwards them through
   ``smplx`` with ``transl=trans`` and renders with ``focal``/``princpt``. Hand4Whole reads a hand (face)
   block only when ``lhand_valid`` (``face_valid``) is true and otherwise uses zeros and masks it. Some
   released files lack the three flags (IDEA-Research/OSX ``data/MSCOCO/MSCOCO.py`` then takes them from
   COCO-WholeBody's ``*_valid``); on reading, an ABSENT flag keeps the block the file holds, a false one drops it.
2. COCO-WholeBody, MANO hands: ``MSCOCO_train_MANO_NeuralAnnot.json`` (NeuralAnnot_RELEASE
   ``MSCOCO/demo_mano.py``; Hand4Whole ``data/MSCOCO/MSCOCO.py``, hand part)::

       {str(ann_id): {"right": {"mano_param": {"pose": [48], "shape": [10], "trans": [3]},
                                "cam_param": {"focal": [2], "princpt": [2]}} | null,
                      "left":  {...} | null}}

   ``pose`` = root (3) + 15 finger joints (45). The LEFT entry is for the left MANO model
   (``is_rhand=False``) in the unflipped image, camera frame. Hand4Whole skips hands whose
   ``{left,right}hand_valid`` is false and tolerates ``null``.
3. Human3.6M, SMPL-X: one file per subject, ``Human36M_subject{S}_SMPLX_NeuralAnnot.json``
   (Hand4Whole ``data/Human36M/Human36M.py``; NeuralAnnot_RELEASE ``Human3.6M/demo_smplx.py``)::

       {str(action_idx): {str(subaction_idx): {str(frame_idx): {"root_pose": [3], "body_pose": [63],
                                                                "shape": [10], "trans": [3]}}}}

   No ``smplx_param`` wrapper and no camera: one parameter set per FRAME (shared by the 4 cameras), in the
   Human3.6M WORLD frame. The loader brings it into camera ``cam_idx`` with ``R``, ``t`` (mm) of
   ``Human36M_subject{S}_camera.json``: ``root_pose_cam = Rodrigues(R @ Rodrigues(root_pose))``, forward
   with ``transl=trans``, then ``X_cam = X - pelvis + R @ pelvis + t / 1000`` for every vertex/joint
   (``pelvis`` = joint 0 of that output). As the pelvis of that output is ``p0 + trans`` (``p0`` = pelvis of
   the shaped rest body, which a rotation about the pelvis does not move), the loader's mesh is exactly
   ``R @ X_world + t`` of the world-frame mesh. Inverting, our camera-frame prediction
   ``(root_cam, transl_cam)`` is written as ``root_world = R^T root_cam`` and
   ``trans_world = R^T (p0 + transl_cam - t / 1000) - p0`` (:func:`camera_to_world_params`).
   I2L-MeshNet_RELEASE ``data/Human36M/Human36M.py`` reads the SMPL version
   ``Human36M_subject{S}_smpl_param.json`` (``{"pose": [72], "shape": [10], "trans": [3]}``, same keys by
   [action][subaction][frame]) with the same world-frame convention: it forwards without translation and
   adds ``R @ trans + t / 1000 - root + R @ root`` — the identical transform. (SMPL files are not written
   here: this tool annotates SMPL-X.)
4. MPI-INF-3DHP, SMPL-X: ``MPI-INF-3DHP_SMPLX_NeuralAnnot.json`` keyed
   ``[str(subject_idx)][str(seq_idx)][str(frame_idx)]`` -> the same four keys as Human3.6M, WORLD frame,
   brought to the camera with ``MPI-INF-3DHP_camera_1k.json`` ``R``, ``t`` (mm) exactly as Human3.6M
   (NeuralAnnot_RELEASE ``MPI-INF-3DHP/demo_smplx.py``).
5. FreiHAND (Hand4Whole ``data/FreiHAND/FreiHAND.py``, ``freihand_{train,eval}_data.json``):
   ``{str(db_idx): {"mano_param": {"pose": [48], "shape": [10], "trans": [3]}, "cam_param": {"focal",
   "princpt"}}}``, right hands, camera frame. ``db_idx`` is FreiHAND's annotation index (0..32559 for training;
   every loader -- Hand4Whole, I2L-MeshNet, Pose2Mesh -- looks up ``data[str(img['db_idx'])]``), shared by the four
   image versions of a sample (``image_number = index + 32560 * version``, gs / hom / sample / auto; FreiHAND
   ``utils/fh_utils.py`` ``map_id``). Written here keyed by ``str(ids["index"])``, one entry per index: the ``gs``
   record where there is one, else the lowest ``score`` (ties: lowest image number); our record key (the image
   number) stays under ``neuralannot``. A foreign file's key is read as the index of a ``gs`` image
   (``image_number = index``).
6. 3DPW, SMPL-X: ``3DPW_{split}_SMPLX_NeuralAnnot.json`` (NeuralAnnot_RELEASE ``3DPW/demo_smplx.py``)::

       {str(ann_id): {"root_pose": [3], "body_pose": [63], "shape": [10], "trans": [3]}}

   FLAT entries (no ``smplx_param`` / ``cam_param`` wrapper), CAMERA frame; the intrinsics are those of
   ``3DPW_{split}.json`` ``images[].cam_param``. We also write ``lhand_pose`` ... ``face_valid`` as in item 1 and
   keep ``focal``/``princpt`` under ``neuralannot``. A released file read back has no intrinsics: its records get
   ``focal_px = princpt_px = (0, 0)``.
7. InterHand2.6M, MANO: ``InterHand2.6M_{split}_MANO_NeuralAnnot.json`` (Hand4Whole
   ``data/InterHand26M/InterHand26M.py`` + ``process_human_model_output(..., 'mano')``;
   facebookresearch/InterHand2.6M ``tool/MANO_world_to_camera/convert.py`` and ``tool/MANO_render/render.py``)::

       {str(capture): {str(frame_idx): {"right": {"pose": [48], "shape": [10], "trans": [3]} | null,
                                        "left":  {...} | null}}}

   No ``mano_param`` / ``cam_param`` wrapper: one parameter set per (capture, frame, hand), shared by all
   cameras, in the InterHand2.6M WORLD frame (``trans`` in metres; the world is in mm). ``left`` is for the
   LEFT MANO model (``is_rhand=False``, with smplx's left ``shapedirs`` fix). A view is reached with the
   capture's ``campos`` (camera centre, mm) and ``camrot`` of ``InterHand2.6M_{split}_camera.json``:
   ``R = camrot``, ``t = -R @ campos`` (mm). render.py / convert.py's first method map the world mesh
   ``X_cam = R @ (1000 X_world) + t`` (mm); Hand4Whole and convert.py's second method merge ``R`` into the
   root pose and rotate about the WRIST of the posed mesh (``J_regressor`` row ``Wrist``; convert.py: the
   InterHand regressor, row 20), adding ``t / 1000`` -- the transform of item 3 with the wrist in place of the
   pelvis. Hand4Whole wraps the look-up in ``except KeyError: mano_param = None`` (a missing hand is trained
   with zeros, silently). We write the inverse of the exact map: ``root_world = Log(R^T Exp(root_cam))``,
   ``trans_world = R^T (p0 + transl_cam - t / 1000) - p0`` with ``p0`` = kinematic wrist (joint 0) of the
   shaped rest hand of that side's model. The wrist regressed from a posed mesh is ``p0`` when the wrist's
   vertices carry no pose corrective (the stand-in); the real MANO's correctives can move it slightly, the
   same approximation those two loaders make on the released file.

Our additions (ignored by those loaders, which only index the keys above)
------------------------------------------------------------------------
Every entry carries ``"neuralannot": {...}``: ``key`` (our record key), ``ids`` (the dataset ids of
:class:`~neuralannot_cli.data.record.Sample`), ``keypoints_2d_px`` (J x 2, the annotator's projection of its
own joints into the original image), ``joint_set``, ``score`` and, for the world-frame layouts, ``camera``
(which view's prediction was kept), ``cam_R``/``cam_t_mm`` (its extrinsics), ``focal``/``princpt`` and
``rest_pelvis_m`` / ``rest_wrist_m`` (``p0``), which make the world->camera step exactly invertible by
:func:`read_pseudo_gt`. For Human3.6M / MPI-INF-3DHP each frame, and for InterHand2.6M each (frame, hand), has
one entry although several cameras see it: the prediction of the lowest ``score`` (ties: lowest camera id) is
kept; the ``.npz`` format keeps all of them.
Run metadata (tool version, checkpoint, stand-in flag, timing) goes to a sidecar
:func:`meta_path_for` ``(path)`` so the main JSON stays loader-compatible.

Record keys (:func:`record_key`): ``"{ann_id}"`` (COCO-WholeBody body), ``"{ann_id}/{side}"`` (hands of
COCO-WholeBody / InterHand2.6M), ``"{subject}/{action}/{subaction}/{frame}/{camera}"`` (Human3.6M),
``"{subject}/{seq}/{frame}/{camera}"`` (MPI-INF-3DHP), ``"{image_number}"`` (FreiHAND), ``"{ann_id}"``
(3DPW). Records always hold CAMERA-frame parameters of the original image.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from neuralannot_cli.io.atomic import atomic_write_json, atomic_write_npz

__all__ = [
    "PseudoGTKind",
    "SmplxRecord",
    "ManoRecord",
    "record_key",
    "WORLD_FRAME_KINDS",
    "world_frame_key",
    "camera_to_world_params",
    "world_to_camera_params",
    "record_to_dict",
    "record_from_dict",
    "write_pseudo_gt_json",
    "read_pseudo_gt",
    "write_pseudo_gt_npz",
    "read_pseudo_gt_npz",
    "meta_path_for",
    "write_meta",
    "h36m_file_name",
    "MPI3DHP_FILE_NAME",
]

PseudoGTKind = Literal["coco_wholebody", "h36m", "mpi3dhp", "freihand", "interhand", "3dpw"]
_KINDS = ("coco_wholebody", "h36m", "mpi3dhp", "freihand", "interhand", "3dpw")
MPI3DHP_FILE_NAME = "MPI-INF-3DHP_SMPLX_NeuralAnnot.json"
_H36M_RE = re.compile(r"^Human36M_subject(\d+)_SMPLX_NeuralAnnot\.json$")
_INTERHAND_RE = re.compile(r"^InterHand2\.6M_\w+_MANO_NeuralAnnot\.json$")


def h36m_file_name(subject: int) -> str:
    """``Human36M_subject{S}_SMPLX_NeuralAnnot.json`` (the name Hand4Whole opens)."""
    return f"Human36M_subject{int(subject)}_SMPLX_NeuralAnnot.json"


# ------------------------------------------------------------------------------------------------ records


def _arr(name: str, value: Any, shape: tuple[int, ...], owner: str) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.{name}: expected numbers of shape {shape}, got {type(value).__name__}") from None
    if a.shape != shape:
        if a.size == math.prod(shape):  # the field stores flat lists
            a = a.reshape(shape)
        else:
            raise ValueError(f"{owner}.{name}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{owner}.{name}: contains NaN or inf")
    a.setflags(write=False)
    return a


def _opt(name: str, value: Any, shape: tuple[int, ...], owner: str) -> np.ndarray | None:
    return None if value is None else _arr(name, value, shape, owner)


def _kp(value: Any, owner: str) -> np.ndarray | None:
    if value is None:
        return None
    a = np.array(value, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{owner}.keypoints_2d_px: expected shape (J, 2), got {a.shape}")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SmplxRecord:
    """SMPL-X pseudo-GT of one person in one image, CAMERA frame of the original image (metres, radians).

    Attributes:
        key: record key (:func:`record_key`).
        ids: dataset ids (``Sample.ids``), e.g. ``{"image_id": 1, "ann_id": 7}``.
        root_rotvec: ``(3,)`` global orientation (camera frame).
        body_pose_rotvecs: ``(21, 3)``.
        betas: ``(10,)``.
        transl_m: ``(3,)`` smplx ``transl`` in the camera frame.
        focal_px / princpt_px: ``(2,)`` intrinsics of the original image.
        keypoints_2d_px: ``(J, 2)`` the annotator's projected joints (``joint_set``), or ``None``.
        joint_set: name of the keypoints' joint set.
        lhand_pose_rotvecs / rhand_pose_rotvecs: ``(15, 3)`` relative to the mean hand, or ``None`` = not
            estimated (written as zeros with ``*_valid: false``).
        jaw_rotvec: ``(3,)``; expression: ``(10,)``; ``None`` = not estimated (``face_valid: false``).
        cam_rotmat / cam_trans_mm: world->camera extrinsics ``X_cam = R X_world + t`` (Human3.6M,
            MPI-INF-3DHP), needed for their world-frame files.
        rest_pelvis_m: ``(3,)`` pelvis of the shaped rest body (betas only, no pose/transl), needed for
            the world-frame conversion (:func:`camera_to_world_params`).
        score: lower is better (e.g. 2D error in px); picks one camera per frame for world-frame files.
        frame: ``"camera"``, or ``"world"`` for a foreign world-frame file read without extrinsics.
    """

    key: str
    ids: Mapping[str, Any]
    root_rotvec: np.ndarray
    body_pose_rotvecs: np.ndarray
    betas: np.ndarray
    transl_m: np.ndarray
    focal_px: np.ndarray
    princpt_px: np.ndarray
    keypoints_2d_px: np.ndarray | None = None
    joint_set: str | None = None
    lhand_pose_rotvecs: np.ndarray | None = None
    rhand_pose_rotvecs: np.ndarray | None = None
    jaw_rotvec: np.ndarray | None = None
    expression: np.ndarray | None = None
    cam_rotmat: np.ndarray | None = None
    cam_trans_mm: np.ndarray | None = None
    rest_pelvis_m: np.ndarray | None = None
    score: float | None = None
    frame: Literal["camera", "world"] = "camera"

    model_type = "smplx"

    def __post_init__(self) -> None:
        o = f"SmplxRecord[{self.key}]"
        s = object.__setattr__
        s(self, "key", str(self.key))
        s(self, "ids", dict(self.ids))
        s(self, "root_rotvec", _arr("root_rotvec", self.root_rotvec, (3,), o))
        s(self, "body_pose_rotvecs", _arr("body_pose_rotvecs", self.body_pose_rotvecs, (21, 3), o))
        s(self, "betas", _arr("betas", self.betas, (np.size(self.betas),), o))
        s(self, "transl_m", _arr("transl_m", self.transl_m, (3,), o))
        s(self, "focal_px", _arr("focal_px", self.focal_px, (2,), o))
        s(self, "princpt_px", _arr("princpt_px", self.princpt_px, (2,), o))
        s(self, "keypoints_2d_px", _kp(self.keypoints_2d_px, o))
        s(self, "lhand_pose_rotvecs", _opt("lhand_pose_rotvecs", self.lhand_pose_rotvecs, (15, 3), o))
        s(self, "rhand_pose_rotvecs", _opt("rhand_pose_rotvecs", self.rhand_pose_rotvecs, (15, 3), o))
        s(self, "jaw_rotvec", _opt("jaw_rotvec", self.jaw_rotvec, (3,), o))
        if self.expression is not None:
            s(self, "expression", _arr("expression", self.expression, (np.size(self.expression),), o))
        s(self, "cam_rotmat", _opt("cam_rotmat", self.cam_rotmat, (3, 3), o))
        s(self, "cam_trans_mm", _opt("cam_trans_mm", self.cam_trans_mm, (3,), o))
        s(self, "rest_pelvis_m", _opt("rest_pelvis_m", self.rest_pelvis_m, (3,), o))
        if self.score is not None:
            s(self, "score", float(self.score))
        if self.frame not in ("camera", "world"):
            raise ValueError(f"{o}.frame: expected 'camera' or 'world', got {self.frame!r}")


@dataclass(frozen=True, eq=False)
class ManoRecord:
    """MANO pseudo-GT of one hand, CAMERA frame of the original (unflipped) image.

    Attributes:
        key / ids: as :class:`SmplxRecord`.
        hand_type: ``"right"`` or ``"left"``; a left hand's parameters are for the LEFT MANO model.
        root_rotvec: ``(3,)``; hand_pose_rotvecs: ``(15, 3)`` relative to the mean hand; betas ``(10,)``;
        transl_m: ``(3,)``; focal_px / princpt_px ``(2,)``; keypoints_2d_px ``(21, 2)`` or ``None``.
        cam_rotmat / cam_trans_mm: world->camera extrinsics ``X_cam = R X_world + t`` (InterHand2.6M:
            ``R = camrot``, ``t = -R @ campos``), needed for its world-frame file (module docstring, item 7).
        rest_wrist_m: ``(3,)`` wrist (joint 0) of the shaped rest hand of ``hand_type``'s model.
        score / frame: as :class:`SmplxRecord`.
    """

    key: str
    ids: Mapping[str, Any]
    hand_type: Literal["right", "left"]
    root_rotvec: np.ndarray
    hand_pose_rotvecs: np.ndarray
    betas: np.ndarray
    transl_m: np.ndarray
    focal_px: np.ndarray
    princpt_px: np.ndarray
    keypoints_2d_px: np.ndarray | None = None
    joint_set: str | None = None
    cam_rotmat: np.ndarray | None = None
    cam_trans_mm: np.ndarray | None = None
    rest_wrist_m: np.ndarray | None = None
    score: float | None = None
    frame: Literal["camera", "world"] = field(default="camera")

    model_type = "mano"

    def __post_init__(self) -> None:
        o = f"ManoRecord[{self.key}]"
        s = object.__setattr__
        s(self, "key", str(self.key))
        s(self, "ids", dict(self.ids))
        if self.hand_type not in ("right", "left"):
            raise ValueError(f"{o}.hand_type: expected 'right' or 'left', got {self.hand_type!r}")
        s(self, "root_rotvec", _arr("root_rotvec", self.root_rotvec, (3,), o))
        s(self, "hand_pose_rotvecs", _arr("hand_pose_rotvecs", self.hand_pose_rotvecs, (15, 3), o))
        s(self, "betas", _arr("betas", self.betas, (np.size(self.betas),), o))
        s(self, "transl_m", _arr("transl_m", self.transl_m, (3,), o))
        s(self, "focal_px", _arr("focal_px", self.focal_px, (2,), o))
        s(self, "princpt_px", _arr("princpt_px", self.princpt_px, (2,), o))
        s(self, "keypoints_2d_px", _kp(self.keypoints_2d_px, o))
        s(self, "cam_rotmat", _opt("cam_rotmat", self.cam_rotmat, (3, 3), o))
        s(self, "cam_trans_mm", _opt("cam_trans_mm", self.cam_trans_mm, (3,), o))
        s(self, "rest_wrist_m", _opt("rest_wrist_m", self.rest_wrist_m, (3,), o))
        if self.score is not None:
            s(self, "score", float(self.score))
        if self.frame not in ("camera", "world"):
            raise ValueError(f"{o}.frame: expected 'camera' or 'world', got {self.frame!r}")


Record = SmplxRecord | ManoRecord


def record_key(kind: str, ids: Mapping[str, Any], hand_side: str | None = None) -> str:
    """The record key of a sample (see the module docstring). ``hand_side`` for hand records."""
    try:
        if kind == "h36m":
            base = f"{ids['subject']}/{ids['action']}/{ids['subaction']}/{ids['frame']}/{ids['camera']}"
        elif kind == "mpi3dhp":
            base = f"{ids['subject']}/{ids['sequence']}/{ids['frame']}/{ids['camera']}"
        elif kind == "freihand":
            base = f"{ids['image_number']}"
        elif kind in ("coco_wholebody", "interhand", "3dpw"):
            base = f"{ids['ann_id']}"
        else:
            raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(_KINDS)}")
    except KeyError as exc:
        raise ValueError(f"{kind}: ids: missing {exc.args[0]!r} (got {sorted(ids)})") from None
    return base if hand_side is None else f"{base}/{hand_side}"


WORLD_FRAME_KINDS: tuple[str, ...] = ("h36m", "mpi3dhp", "interhand")
"""Dataset kinds whose field layout holds one WORLD-frame parameter set per frame (and hand), shared by its views."""


def world_frame_key(kind: str, ids: Mapping[str, Any], hand_side: str | None = None) -> str:
    """The key of a sample's frame in a world-frame layout, as :func:`read_pseudo_gt` keys a foreign entry:
    Human3.6M ``"{subject}/{action}/{subaction}/{frame}"``, MPI-INF-3DHP ``"{subject}/{sequence}/{frame}"``,
    InterHand2.6M ``"{capture}/{frame}/{side}"`` (``hand_side``, else ``ids["hand_side"]``)."""
    try:
        if kind == "h36m":
            return f"{ids['subject']}/{ids['action']}/{ids['subaction']}/{ids['frame']}"
        if kind == "mpi3dhp":
            return f"{ids['subject']}/{ids['sequence']}/{ids['frame']}"
        if kind == "interhand":
            return f"{ids['capture']}/{ids['frame']}/{hand_side or ids['hand_side']}"
    except KeyError as exc:
        raise ValueError(f"{kind}: ids: missing {exc.args[0]!r} (got {sorted(ids)})") from None
    raise ValueError(f"{kind}: not a world-frame layout (those are {', '.join(WORLD_FRAME_KINDS)})")


# ------------------------------------------------------------------------------------ frame conversions


def _rotvec_to_rotmat(v: np.ndarray) -> np.ndarray:
    """Rodrigues, float64 (same formula as ``cv2.Rodrigues``)."""
    theta = float(np.linalg.norm(v))
    if theta < 1e-12:
        k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        return np.eye(3) + k
    a = v / theta
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(theta) * k + (1 - math.cos(theta)) * (k @ k)


def _rotmat_to_rotvec(r: np.ndarray) -> np.ndarray:
    """Inverse Rodrigues, float64, stable near 0 and pi."""
    cos = max(-1.0, min(1.0, (np.trace(r) - 1.0) / 2.0))
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    sin = 0.5 * float(np.linalg.norm(w))
    theta = math.atan2(sin, cos)
    if sin > 1e-6:
        return w * (theta / (2.0 * sin))
    if cos > 0:  # theta ~ 0
        return 0.5 * w
    # theta ~ pi: axis from the diagonal of (R + I) / 2 = a a^T
    m = (r + np.eye(3)) / 2.0
    i = int(np.argmax(np.diag(m)))
    axis = m[:, i] / math.sqrt(max(m[i, i], 1e-300))
    axis /= np.linalg.norm(axis)
    if np.dot(w, axis) < 0:
        axis = -axis
    return axis * theta


def camera_to_world_params(
    root_rotvec_cam: np.ndarray,
    transl_cam_m: np.ndarray,
    rest_pelvis_m: np.ndarray,
    cam_rotmat: np.ndarray,
    cam_trans_mm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame ``(root_rotvec (3,), transl (3,))`` -> the world-frame pair of the Human3.6M /
    MPI-INF-3DHP SMPL-X and InterHand2.6M MANO files (module docstring, items 3 and 7); float64.

    ``root_world = Log(R^T Exp(root_cam))``, ``trans_world = R^T (p0 + transl_cam - t / 1000) - p0`` with
    ``X_cam = R X_world + t`` (``t`` in mm) and ``p0 = rest_pelvis_m``, the joint 0 of the shaped rest model
    (SMPL-X: pelvis; MANO: wrist).
    """
    r = np.asarray(cam_rotmat, np.float64).reshape(3, 3)
    t_m = np.asarray(cam_trans_mm, np.float64).reshape(3) / 1000.0
    p0 = np.asarray(rest_pelvis_m, np.float64).reshape(3)
    root_w = _rotmat_to_rotvec(r.T @ _rotvec_to_rotmat(np.asarray(root_rotvec_cam, np.float64).reshape(3)))
    trans_w = r.T @ (p0 + np.asarray(transl_cam_m, np.float64).reshape(3) - t_m) - p0
    return root_w, trans_w


def world_to_camera_params(
    root_rotvec_world: np.ndarray,
    transl_world_m: np.ndarray,
    rest_pelvis_m: np.ndarray,
    cam_rotmat: np.ndarray,
    cam_trans_mm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`camera_to_world_params` (what the field's loader does, in parameter form)."""
    r = np.asarray(cam_rotmat, np.float64).reshape(3, 3)
    t_m = np.asarray(cam_trans_mm, np.float64).reshape(3) / 1000.0
    p0 = np.asarray(rest_pelvis_m, np.float64).reshape(3)
    root_c = _rotmat_to_rotvec(r @ _rotvec_to_rotmat(np.asarray(root_rotvec_world, np.float64).reshape(3)))
    trans_c = r @ (p0 + np.asarray(transl_world_m, np.float64).reshape(3)) + t_m - p0
    return root_c, trans_c


# --------------------------------------------------------------------------------- dict (de)serialisation


def _l(a: np.ndarray | None) -> list[float] | None:
    return None if a is None else [float(x) for x in np.asarray(a, np.float64).reshape(-1)]


def record_to_dict(rec: Record) -> dict[str, Any]:
    """Lossless JSON-ready dict of a record (float64 values survive ``json`` exactly)."""
    if isinstance(rec, SmplxRecord):
        d: dict[str, Any] = {"model_type": "smplx"}
        names = ("root_rotvec", "body_pose_rotvecs", "betas", "transl_m", "focal_px", "princpt_px",
                 "lhand_pose_rotvecs", "rhand_pose_rotvecs", "jaw_rotvec", "expression", "cam_rotmat",
                 "cam_trans_mm", "rest_pelvis_m")
    elif isinstance(rec, ManoRecord):
        d = {"model_type": "mano", "hand_type": rec.hand_type}
        names = ("root_rotvec", "hand_pose_rotvecs", "betas", "transl_m", "focal_px", "princpt_px", "cam_rotmat",
                 "cam_trans_mm", "rest_wrist_m")
    else:
        raise TypeError(f"record_to_dict: expected SmplxRecord or ManoRecord, got {type(rec).__name__}")
    d.update(key=rec.key, ids=_jsonable(rec.ids), joint_set=rec.joint_set, score=rec.score, frame=rec.frame)
    for name in names:
        d[name] = _l(getattr(rec, name))
    d["keypoints_2d_px"] = None if rec.keypoints_2d_px is None else rec.keypoints_2d_px.tolist()
    return d


def record_from_dict(d: Mapping[str, Any]) -> Record:
    """Inverse of :func:`record_to_dict`."""
    d = dict(d)
    model_type = d.pop("model_type", None)
    if model_type == "smplx":
        return SmplxRecord(**d)
    if model_type == "mano":
        return ManoRecord(**d)
    raise ValueError(f"record: model_type: expected 'smplx' or 'mano', got {model_type!r}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------------- field JSON layout


def _extras(rec: Record) -> dict[str, Any]:
    out: dict[str, Any] = {"key": rec.key, "ids": _jsonable(rec.ids), "joint_set": rec.joint_set,
                           "keypoints_2d_px": None if rec.keypoints_2d_px is None else rec.keypoints_2d_px.tolist()}
    if rec.score is not None:
        out["score"] = rec.score
    return out


def _smplx_param(rec: SmplxRecord, root: np.ndarray, trans: np.ndarray) -> dict[str, Any]:
    zeros15 = np.zeros((15, 3))
    expr = rec.expression if rec.expression is not None else np.zeros(10)
    return {
        "root_pose": _l(root),
        "body_pose": _l(rec.body_pose_rotvecs),
        "lhand_pose": _l(rec.lhand_pose_rotvecs if rec.lhand_pose_rotvecs is not None else zeros15),
        "rhand_pose": _l(rec.rhand_pose_rotvecs if rec.rhand_pose_rotvecs is not None else zeros15),
        "jaw_pose": _l(rec.jaw_rotvec if rec.jaw_rotvec is not None else np.zeros(3)),
        "shape": _l(rec.betas),
        "expr": _l(expr),
        "trans": _l(trans),
        "lhand_valid": rec.lhand_pose_rotvecs is not None,
        "rhand_valid": rec.rhand_pose_rotvecs is not None,
        "face_valid": rec.jaw_rotvec is not None and rec.expression is not None,
    }


def _cam_param(rec: Record) -> dict[str, Any]:
    return {"focal": _l(rec.focal_px), "princpt": _l(rec.princpt_px)}


def _mano_entry(rec: ManoRecord) -> dict[str, Any]:
    pose = np.concatenate([rec.root_rotvec, rec.hand_pose_rotvecs.reshape(-1)])
    return {"mano_param": {"pose": _l(pose), "shape": _l(rec.betas), "trans": _l(rec.transl_m)},
            "cam_param": _cam_param(rec), "neuralannot": _extras(rec)}


def _to_world(rec: Record, camera: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """World-frame ``(root_rotvec, trans)`` of a camera-frame record, and our extras that invert the step."""
    rest_name, layout = (("rest_wrist_m", "InterHand2.6M") if isinstance(rec, ManoRecord)
                         else ("rest_pelvis_m", "Human3.6M / MPI-INF-3DHP"))
    rest = getattr(rec, rest_name)
    if rec.cam_rotmat is None or rec.cam_trans_mm is None or rest is None:
        raise ValueError(f"{type(rec).__name__}[{rec.key}]: cam_rotmat / cam_trans_mm / {rest_name} are needed for "
                         f"the world-frame layout of {layout}")
    root_w, trans_w = camera_to_world_params(rec.root_rotvec, rec.transl_m, rest, rec.cam_rotmat, rec.cam_trans_mm)
    extras = _extras(rec)
    extras.update(camera=_jsonable(camera), cam_R=_l(rec.cam_rotmat), cam_t_mm=_l(rec.cam_trans_mm),
                  focal=_l(rec.focal_px), princpt=_l(rec.princpt_px), **{rest_name: _l(rest)})
    return root_w, trans_w, extras


def _from_world(ex: Mapping, root_w: Any, trans_w: Any, rest_name: str, where: str) -> dict[str, Any] | None:
    """Inverse of :func:`_to_world`: the camera-frame record fields of a world-frame entry, from our extras
    ``ex``; ``None`` for a foreign (e.g. released) entry without them, which stays in the world frame."""
    if not all(k in ex for k in ("cam_R", "cam_t_mm", rest_name, "focal", "princpt")):
        return None
    w = f"{where}.neuralannot"
    cam_r, cam_t = _arr("cam_R", ex["cam_R"], (3, 3), w), _arr("cam_t_mm", ex["cam_t_mm"], (3,), w)
    rest = _arr(rest_name, ex[rest_name], (3,), w)
    root_c, trans_c = world_to_camera_params(root_w, trans_w, rest, cam_r, cam_t)
    return {"root_rotvec": root_c, "transl_m": trans_c, "focal_px": ex["focal"], "princpt_px": ex["princpt"],
            "keypoints_2d_px": ex.get("keypoints_2d_px"), "joint_set": ex.get("joint_set"), "cam_rotmat": cam_r,
            "cam_trans_mm": cam_t, rest_name: rest, "score": ex.get("score")}


def _world_entry(rec: SmplxRecord, camera: Any) -> dict[str, Any]:
    root_w, trans_w, extras = _to_world(rec, camera)
    return {"root_pose": _l(root_w), "body_pose": _l(rec.body_pose_rotvecs), "shape": _l(rec.betas),
            "trans": _l(trans_w), "neuralannot": extras}


def _interhand_entry(rec: ManoRecord) -> dict[str, Any]:
    """A flat world-frame ``{"pose", "shape", "trans"}`` hand of the InterHand2.6M file (module docstring, item 7)."""
    root_w, trans_w, extras = _to_world(rec, rec.ids.get("camera"))
    pose = np.concatenate([root_w, rec.hand_pose_rotvecs.reshape(-1)])
    return {"pose": _l(pose), "shape": _l(rec.betas), "trans": _l(trans_w), "neuralannot": extras}


def _pick_per_frame(records: Iterable[Record], frame_of: Any, rank: Any = None) -> dict[tuple, Record]:
    rank = rank or _rank
    best: dict[tuple, Record] = {}
    for rec in records:
        fk = frame_of(rec)
        cur = best.get(fk)
        if cur is None or rank(rec) < rank(cur):
            best[fk] = rec
    return best


def _freihand_index(rec: Record) -> tuple[int]:
    """FreiHAND's annotation index (``db_idx``) of a record: ``ids["index"]``, else the image number of a gs image."""
    value = rec.ids.get("index", rec.ids.get("image_number"))
    try:
        return (int(value),)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"ManoRecord[{rec.key}].ids: 'index' (FreiHAND's db_idx) is needed by the freihand layout, "
                         f"got {rec.ids}") from None


def _freihand_rank(rec: Record) -> tuple[int, float, int]:
    score = rec.score if rec.score is not None else math.inf
    number = rec.ids.get("image_number", 0)
    return (0 if rec.ids.get("version", "gs") == "gs" else 1, score, int(number) if isinstance(number, int) else 0)


def _rank(rec: Record) -> tuple[float, str]:
    score = rec.score if rec.score is not None else math.inf
    return (score, str(rec.ids.get("camera", "")).zfill(8))


def _nest(tree: dict, keys: tuple, value: Any) -> None:
    for k in keys[:-1]:
        tree = tree.setdefault(str(k), {})
    tree[str(keys[-1])] = value


def _sorted_records(records: Iterable[Record]) -> list[Record]:
    recs = list(records)
    seen: set[str] = set()
    for r in recs:
        if not isinstance(r, (SmplxRecord, ManoRecord)):
            raise TypeError(f"records: expected SmplxRecord or ManoRecord, got {type(r).__name__}")
        if r.key in seen:
            raise ValueError(f"records: key {r.key!r} appears twice")
        seen.add(r.key)
    return recs


def write_pseudo_gt_json(records: Iterable[Record], path: str | os.PathLike, *, dataset_kind: str) -> list[Path]:
    """Write records in the field's layout for ``dataset_kind`` (module docstring); returns written files.

    - ``coco_wholebody`` SMPL-X: one file ``path`` keyed by ``str(ann_id)`` -> ``smplx_param`` / ``cam_param``.
    - ``3dpw`` SMPL-X: one file ``path`` keyed by ``str(ann_id)`` -> the flat parameters (module docstring, item 6).
    - ``coco_wholebody`` MANO: one file ``path`` keyed ``str(ann_id)`` -> ``right``/``left`` (``null`` for a
      hand without a record).
    - ``interhand`` MANO: one file ``path`` keyed ``[capture][frame]`` -> ``right``/``left`` -> the flat
      world-frame parameters or ``null``, one per (frame, hand): the lowest ``score`` of its views.
    - ``freihand`` MANO: one file ``path`` keyed by ``str(image_number)``.
    - ``h36m``: ``path`` is a FOLDER; one ``Human36M_subject{S}_SMPLX_NeuralAnnot.json`` per subject.
    - ``mpi3dhp``: one file ``path`` keyed ``[subject][seq][frame]``.

    Every file is written atomically (tmp + fsync + rename). Records must all be of one model type.
    """
    if dataset_kind not in _KINDS:
        raise ValueError(f"dataset_kind: unknown {dataset_kind!r}; expected one of {', '.join(_KINDS)}")
    recs = _sorted_records(records)
    path = Path(path)
    types = {r.model_type for r in recs}
    if len(types) > 1:
        raise ValueError(f"{path}: records mix model types {sorted(types)}; write body and hands to separate files")
    model_type = types.pop() if types else ("mano" if dataset_kind in ("freihand", "interhand") else "smplx")

    if model_type == "mano":
        if dataset_kind in ("h36m", "mpi3dhp", "3dpw"):
            raise ValueError(f"{path}: MANO records cannot be written in the {dataset_kind} layout")
        out: dict[str, Any] = {}
        if dataset_kind == "interhand":
            for r in recs:
                assert isinstance(r, ManoRecord)
                if r.cam_rotmat is None or r.cam_trans_mm is None or r.rest_wrist_m is None:
                    _interhand_entry(r)  # raises the explanatory ValueError
                missing = [k for k in ("capture", "frame") if k not in r.ids]
                if missing:
                    raise ValueError(f"ManoRecord[{r.key}].ids: missing {missing} needed by the interhand layout")
            best = _pick_per_frame(recs, lambda r: (r.ids["capture"], r.ids["frame"], r.hand_type))
            for (capture, frame, side), r in sorted(best.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
                slot = out.setdefault(str(capture), {}).setdefault(str(frame), {"right": None, "left": None})
                slot[side] = _interhand_entry(r)  # type: ignore[arg-type]
        elif dataset_kind == "freihand":
            best = _pick_per_frame(recs, _freihand_index, rank=_freihand_rank)
            for index, r in sorted(best.items(), key=lambda kv: kv[0]):
                out[str(index[0])] = _mano_entry(r)  # type: ignore[arg-type]
        else:
            for r in recs:
                base = record_key(dataset_kind, r.ids)
                slot = out.setdefault(base, {"right": None, "left": None})
                slot[r.hand_type] = _mano_entry(r)  # type: ignore[arg-type]
        return [atomic_write_json(path, out)]

    if dataset_kind in ("freihand", "interhand"):
        raise ValueError(f"{path}: SMPL-X records cannot be written in the {dataset_kind} (hand) layout")
    if dataset_kind == "3dpw":
        out = {}
        for r in recs:
            assert isinstance(r, SmplxRecord)
            extras = _extras(r)
            extras.update(focal=_l(r.focal_px), princpt=_l(r.princpt_px))
            out[record_key("3dpw", r.ids)] = {**_smplx_param(r, r.root_rotvec, r.transl_m), "neuralannot": extras}
        return [atomic_write_json(path, out)]
    if dataset_kind == "coco_wholebody":
        out = {}
        for r in recs:
            assert isinstance(r, SmplxRecord)
            out[record_key(dataset_kind, r.ids)] = {
                "smplx_param": _smplx_param(r, r.root_rotvec, r.transl_m), "cam_param": _cam_param(r),
                "neuralannot": _extras(r),
            }
        return [atomic_write_json(path, out)]

    id_names = ("subject", "action", "subaction", "frame") if dataset_kind == "h36m" else ("subject", "sequence", "frame")
    for r in recs:
        assert isinstance(r, SmplxRecord)
        if r.cam_rotmat is None or r.cam_trans_mm is None or r.rest_pelvis_m is None:
            _world_entry(r, None)  # raises the explanatory ValueError
        missing = [k for k in id_names if k not in r.ids]
        if missing:
            raise ValueError(f"SmplxRecord[{r.key}].ids: missing {missing} needed by the {dataset_kind} layout")

    if dataset_kind == "h36m":
        best = _pick_per_frame(recs, lambda r: (r.ids["subject"], r.ids["action"], r.ids["subaction"], r.ids["frame"]))
        per_subject: dict[int, dict] = {}
        for (subj, act, sub, frame), r in sorted(best.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            _nest(per_subject.setdefault(int(subj), {}), (act, sub, frame), _world_entry(r, r.ids.get("camera")))
        path.mkdir(parents=True, exist_ok=True)
        return [atomic_write_json(path / h36m_file_name(s), tree) for s, tree in sorted(per_subject.items())]

    # mpi3dhp
    best = _pick_per_frame(recs, lambda r: (r.ids["subject"], r.ids["sequence"], r.ids["frame"]))
    tree: dict = {}
    for (subj, seq, frame), r in sorted(best.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        _nest(tree, (subj, seq, frame), _world_entry(r, r.ids.get("camera")))
    return [atomic_write_json(path, tree)]


# ------------------------------------------------------------------------------------------------- reading


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def _get(obj: Mapping, key: str, path: Path, where: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise ValueError(f"{path}: {where}.{key}: missing")
    return obj[key]


def _smplx_from_params(p: Mapping, focal: Any, princpt: Any, ex: Mapping, path: Path, where: str, p_where: str,
                       fallback_key: str, fallback_ids: dict) -> SmplxRecord:
    """A camera-frame record from a ``smplx_param``-style dict ``p`` (found at ``p_where``).

    A hand / face block is read when its ``*_valid`` flag is true or ABSENT (released files without the flags,
    module docstring item 1) and dropped when the flag is false (our writer's zeros).
    """
    kw: dict[str, Any] = {}
    if p.get("lhand_valid", True) and "lhand_pose" in p:
        kw["lhand_pose_rotvecs"] = p["lhand_pose"]
    if p.get("rhand_valid", True) and "rhand_pose" in p:
        kw["rhand_pose_rotvecs"] = p["rhand_pose"]
    if p.get("face_valid", True) and "jaw_pose" in p and "expr" in p:
        kw["jaw_rotvec"], kw["expression"] = p["jaw_pose"], p["expr"]
    try:
        return SmplxRecord(
            key=_entry_key(ex, fallback_key, path, where), ids=ex.get("ids", fallback_ids),
            root_rotvec=_get(p, "root_pose", path, p_where),
            body_pose_rotvecs=_get(p, "body_pose", path, p_where),
            betas=_get(p, "shape", path, p_where),
            transl_m=_get(p, "trans", path, p_where),
            focal_px=focal, princpt_px=princpt,
            keypoints_2d_px=ex.get("keypoints_2d_px"), joint_set=ex.get("joint_set"), score=ex.get("score"), **kw,
        )
    except ValueError as exc:
        if str(exc).startswith(f"{path}: "):  # a _get() message already names the file and field
            raise
        raise ValueError(f"{path}: {where}: {exc}") from None


def _entry_key(ex: Mapping, file_key: str, path: Path, where: str, *, index_key: bool = False) -> str:
    """Our record key of a flat entry: the one kept under ``neuralannot``, which must agree with the entry's place in
    the file (what the field's loaders look up) -- a re-keyed or merged file is refused, not scored as if intact.
    FreiHAND (``index_key``): the file key is ``db_idx``, our key the image number; their ``ids["index"]`` agree."""
    if "key" not in ex:
        return file_key
    key = str(ex["key"])
    if index_key:
        index = (ex.get("ids") or {}).get("index")
        agree = index is None or str(index) == file_key
    else:
        agree = key == file_key
    if not agree:
        raise ValueError(f"{path}: {where}.neuralannot.key: {key!r} disagrees with the entry's key {file_key!r} "
                         "(a re-keyed or merged file?)")
    return key


def _read_smplx_entry(entry: Mapping, path: Path, where: str, fallback_key: str, fallback_ids: dict) -> SmplxRecord:
    p = _get(entry, "smplx_param", path, where)
    cam = _get(entry, "cam_param", path, where)
    ex = entry.get("neuralannot") or {}
    focal = _get(cam, "focal", path, f"{where}.cam_param")
    princpt = _get(cam, "princpt", path, f"{where}.cam_param")
    return _smplx_from_params(p, focal, princpt, ex, path, where, f"{where}.smplx_param", fallback_key,
                              fallback_ids)


def _read_flat_smplx_entry(entry: Mapping, path: Path, where: str, fallback_key: str,
                           fallback_ids: dict) -> SmplxRecord:
    """A flat 3DPW entry (module docstring item 6); intrinsics from our extras, else ``(0, 0)``."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{path}: {where}: expected an object, got {type(entry).__name__}")
    ex = entry.get("neuralannot") or {}
    return _smplx_from_params(entry, ex.get("focal", [0.0, 0.0]), ex.get("princpt", [0.0, 0.0]), ex, path, where,
                              where, fallback_key, fallback_ids)


def _read_mano_entry(entry: Mapping, path: Path, where: str, hand_type: str, fallback_key: str,
                     fallback_ids: dict) -> ManoRecord:
    p = _get(entry, "mano_param", path, where)
    cam = _get(entry, "cam_param", path, where)
    ex = entry.get("neuralannot") or {}
    pose = _mano_pose(_get(p, "pose", path, f"{where}.mano_param"), path, f"{where}.mano_param.pose")
    try:
        return ManoRecord(
            key=_entry_key(ex, fallback_key, path, where, index_key="index" in fallback_ids),
            ids=ex.get("ids", fallback_ids), hand_type=hand_type,  # type: ignore[arg-type]
            root_rotvec=pose[:3], hand_pose_rotvecs=pose[3:].reshape(15, 3),
            betas=_get(p, "shape", path, f"{where}.mano_param"), transl_m=_get(p, "trans", path, f"{where}.mano_param"),
            focal_px=_get(cam, "focal", path, f"{where}.cam_param"),
            princpt_px=_get(cam, "princpt", path, f"{where}.cam_param"),
            keypoints_2d_px=ex.get("keypoints_2d_px"), joint_set=ex.get("joint_set"), score=ex.get("score"),
        )
    except ValueError as exc:
        if str(exc).startswith(f"{path}: "):  # a _get() message already names the file and field
            raise
        raise ValueError(f"{path}: {where}: {exc}") from None


def _mano_pose(value: Any, path: Path, field_name: str) -> np.ndarray:
    """A MANO ``pose`` list -> ``(48,)`` float64 (root 3 + 15 finger joints x 3)."""
    try:
        pose = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {field_name}: expected 48 numbers, got {type(value).__name__}") from None
    if pose.shape != (48,):
        raise ValueError(f"{path}: {field_name}: expected 48 numbers, got {pose.shape[0]}")
    return pose


def _read_interhand_entry(entry: Any, path: Path, where: str, hand_type: str, key: str, ids: dict) -> ManoRecord:
    """One hand of an InterHand2.6M world-frame file (module docstring, item 7).

    With our extras it comes back in the camera frame of the view that was kept; a foreign (e.g. released)
    entry stays in the world frame (``frame="world"``, no intrinsics), keyed ``"{capture}/{frame}/{side}"``.
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"{path}: {where}: expected an object or null, got {type(entry).__name__}")
    ex = entry.get("neuralannot") or {}
    pose = _mano_pose(_get(entry, "pose", path, where), path, f"{where}.pose")
    shape, trans = _get(entry, "shape", path, where), _get(entry, "trans", path, where)
    try:
        trans = _arr("trans", trans, (3,), where)
        hand = dict(hand_type=hand_type, hand_pose_rotvecs=pose[3:].reshape(15, 3), betas=shape)
        cam = _from_world(ex, pose[:3], trans, "rest_wrist_m", where)
        if cam is not None:
            return ManoRecord(key=ex.get("key", key), ids=ex.get("ids", ids), **cam, **hand)  # type: ignore[arg-type]
        return ManoRecord(key=key, ids=ids, root_rotvec=pose[:3], transl_m=trans, focal_px=[0.0, 0.0],
                          princpt_px=[0.0, 0.0], frame="world", **hand)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}" if str(exc).startswith(where) else f"{path}: {where}: {exc}") from None


def _is_ann_id_hands(data: Any) -> bool:
    """``{str(ann_id): {"right"|"left": ...}}`` (module docstring, item 2; our InterHand files before item 7)."""
    first = next(iter(data.values()), None) if isinstance(data, Mapping) else None
    return isinstance(first, Mapping) and ("right" in first or "left" in first)


def _read_world_entry(entry: Mapping, path: Path, where: str, key: str, ids: dict) -> SmplxRecord:
    ex = entry.get("neuralannot") or {}
    vals = {name: _get(entry, name, path, where) for name in ("root_pose", "body_pose", "shape", "trans")}
    try:
        cam = _from_world(ex, vals["root_pose"], vals["trans"], "rest_pelvis_m", where)
        if cam is not None:
            return SmplxRecord(key=ex.get("key", key), ids=ex.get("ids", ids), body_pose_rotvecs=vals["body_pose"],
                               betas=vals["shape"], **cam)
        # a foreign (e.g. released) file: parameters stay in the world frame, no intrinsics
        return SmplxRecord(key=key, ids=ids, root_rotvec=vals["root_pose"], body_pose_rotvecs=vals["body_pose"],
                           betas=vals["shape"], transl_m=vals["trans"], focal_px=[0.0, 0.0], princpt_px=[0.0, 0.0],
                           frame="world")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}" if str(exc).startswith(where) else f"{path}: {where}: {exc}") from None


def _detect_kind(path: Path, data: Any) -> str:
    meta = meta_path_for(path)
    if meta.is_file():
        try:
            kind = json.loads(meta.read_text(encoding="utf-8")).get("dataset_kind")
        except (ValueError, OSError):
            kind = None
        if kind in _KINDS:
            return kind
    if path.is_dir() or _H36M_RE.match(path.name):
        return "h36m"
    if path.name == MPI3DHP_FILE_NAME:
        return "mpi3dhp"
    if _INTERHAND_RE.match(path.name):
        return "interhand"
    if isinstance(data, Mapping) and data:
        first = next(iter(data.values()))
        if isinstance(first, Mapping):
            if "smplx_param" in first:
                return "coco_wholebody"
            if "root_pose" in first:  # flat str(ann_id) entries: 3DPW (H36M / MPI-INF-3DHP nest deeper)
                return "3dpw"
            if "mano_param" in first:
                return "freihand"
            if "right" in first or "left" in first:
                return "coco_wholebody"
            if _is_ann_id_hands(first):  # [capture][frame] -> right / left: InterHand2.6M (item 7)
                return "interhand"
    raise ValueError(f"{path}: cannot tell the layout (pass dataset_kind)")


def read_pseudo_gt(path: str | os.PathLike, *, dataset_kind: str | None = None) -> dict[str, Record]:
    """Read a pseudo-GT file (or, for Human3.6M, a folder of per-subject files) -> ``{key: record}``.

    Files written by :func:`write_pseudo_gt_json` come back exactly (camera-frame records; the world-frame
    layouts are converted back with the extrinsics stored under ``neuralannot``, to float64 rounding).
    Foreign files of the same layout (e.g. the released NeuralAnnot files) also load; world-frame entries
    without our extras come back with ``frame="world"``. InterHand2.6M files keyed ``str(ann_id)`` (this
    tool's layout before item 7 of the module docstring) still load. ``.npz`` files go to
    :func:`read_pseudo_gt_npz`.

    Raises:
        FileNotFoundError / ValueError: missing file, invalid JSON, missing or malformed field (one line
        naming the file and the field).
    """
    path = Path(path)
    if path.suffix == ".npz":
        return read_pseudo_gt_npz(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    data = None if path.is_dir() else _load_json(path)
    kind = dataset_kind or _detect_kind(path, data)
    out: dict[str, Record] = {}

    def put(rec: Record) -> None:
        out[rec.key] = rec

    if kind == "h36m":
        files = sorted(p for p in path.iterdir() if _H36M_RE.match(p.name)) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"{path}: no Human36M_subject*_SMPLX_NeuralAnnot.json inside")
        for f in files:
            m = _H36M_RE.match(f.name)
            subject = int(m.group(1)) if m else None
            tree = data if f == path else _load_json(f)
            for act, subs in _items(tree, f, ""):
                for sub, frames in _items(subs, f, f"[{act!r}]"):
                    for frame, entry in _items(frames, f, f"[{act!r}][{sub!r}]"):
                        ids = {"subject": subject, "action": _int(act), "subaction": _int(sub), "frame": _int(frame)}
                        put(_read_world_entry(entry, f, f"[{act!r}][{sub!r}][{frame!r}]",
                                              f"{subject}/{act}/{sub}/{frame}", ids))
        return out
    if kind == "mpi3dhp":
        for subj, seqs in _items(data, path, ""):
            for seq, frames in _items(seqs, path, f"[{subj!r}]"):
                for frame, entry in _items(frames, path, f"[{subj!r}][{seq!r}]"):
                    ids = {"subject": _int(subj), "sequence": _int(seq), "frame": _int(frame)}
                    put(_read_world_entry(entry, path, f"[{subj!r}][{seq!r}][{frame!r}]", f"{subj}/{seq}/{frame}", ids))
        return out
    if kind == "interhand" and not _is_ann_id_hands(data):
        for capture, frames in _items(data, path, ""):
            for frame, hands in _items(frames, path, f"[{capture!r}]"):
                where = f"[{capture!r}][{frame!r}]"
                for side, entry in _items(hands, path, where):
                    if side not in ("right", "left"):
                        raise ValueError(f"{path}: {where}.{side}: expected only 'right' and 'left' hands")
                    if entry is not None:
                        ids = {"capture": _int(capture), "frame": _int(frame), "hand_side": side}
                        put(_read_interhand_entry(entry, path, f"{where}.{side}", side, f"{capture}/{frame}/{side}",
                                                  ids))
        return out
    for k, entry in _items(data, path, ""):
        where = f"[{k!r}]"
        if kind == "freihand":
            put(_read_mano_entry(entry, path, where, "right", k, {"image_number": _int(k), "index": _int(k)}))
        elif kind == "3dpw" and not (isinstance(entry, Mapping) and "smplx_param" in entry):
            put(_read_flat_smplx_entry(entry, path, where, k, {"ann_id": _int(k)}))
        elif isinstance(entry, Mapping) and ("right" in entry or "left" in entry) and "smplx_param" not in entry:
            for side in ("right", "left"):
                if entry.get(side) is not None:
                    put(_read_mano_entry(entry[side], path, f"{where}.{side}", side, f"{k}/{side}",
                                         {"ann_id": _int(k), "hand_side": side}))
        else:
            put(_read_smplx_entry(entry, path, where, k, {"ann_id": _int(k)}))
    return out


def _items(tree: Any, path: Path, where: str) -> list[tuple[str, Any]]:
    if not isinstance(tree, Mapping):
        raise ValueError(f"{path}: {where or 'top level'}: expected an object, got {type(tree).__name__}")
    return list(tree.items())


def _int(text: str) -> int | str:
    try:
        return int(text)
    except (TypeError, ValueError):
        return text


# ----------------------------------------------------------------------------------------------- npz bulk


def write_pseudo_gt_npz(records: Iterable[Record], path: str | os.PathLike) -> Path:
    """Bulk format: stacked float64 arrays (camera frame) + ids, written atomically.

    Arrays: ``keys (N,)`` str, ``ids_json (N,)`` str, ``model_type ()`` str, ``root_rotvec (N, 3)``,
    ``pose_rotvecs (N, K, 3)`` (SMPL-X body K=21 / MANO K=15), ``betas (N, 10)``, ``transl_m (N, 3)``,
    ``focal_px (N, 2)``, ``princpt_px (N, 2)``, ``score (N,)`` (NaN = none), ``joint_set (N,)`` str,
    ``keypoints_2d_px (N, J, 2)`` (if every record has them with the same J), MANO: ``hand_type (N,)``;
    when any record has them: ``cam_rotmat (N, 3, 3)``, ``cam_trans_mm``, ``rest_pelvis_m`` (SMPL-X) /
    ``rest_wrist_m`` (MANO) (NaN rows = absent). Hands/face of SMPL-X records are not stored in the npz.
    """
    recs = _sorted_records(records)
    path = Path(path)
    types = {r.model_type for r in recs}
    if len(types) > 1:
        raise ValueError(f"{path}: records mix model types {sorted(types)}")
    mt = types.pop() if types else "smplx"
    k = 21 if mt == "smplx" else 15
    nb = recs[0].betas.shape[0] if recs else 10

    def stack(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.stack([getattr(r, name) for r in recs]) if recs else np.zeros((0, *shape))

    arrays: dict[str, np.ndarray] = {
        "model_type": np.array(mt),
        "keys": np.array([r.key for r in recs], dtype=str),
        "ids_json": np.array([json.dumps(_jsonable(r.ids), sort_keys=True) for r in recs], dtype=str),
        "root_rotvec": stack("root_rotvec", (3,)),
        "pose_rotvecs": stack("body_pose_rotvecs" if mt == "smplx" else "hand_pose_rotvecs", (k, 3)),
        "betas": stack("betas", (nb,)),
        "transl_m": stack("transl_m", (3,)),
        "focal_px": stack("focal_px", (2,)),
        "princpt_px": stack("princpt_px", (2,)),
        "score": np.array([np.nan if r.score is None else r.score for r in recs], dtype=np.float64),
        "joint_set": np.array([r.joint_set or "" for r in recs], dtype=str),
        "frame": np.array([r.frame for r in recs], dtype=str),
    }
    kps = [r.keypoints_2d_px for r in recs]
    if recs and all(x is not None for x in kps) and len({x.shape for x in kps}) == 1:  # type: ignore[union-attr]
        arrays["keypoints_2d_px"] = np.stack(kps)  # type: ignore[arg-type]
    if mt == "mano":
        arrays["hand_type"] = np.array([r.hand_type for r in recs], dtype=str)  # type: ignore[union-attr]
    for name, shape in _npz_extrinsics(mt):
        if any(getattr(r, name) is not None for r in recs):
            arrays[name] = np.stack([getattr(r, name) if getattr(r, name) is not None else np.full(shape, np.nan)
                                     for r in recs])
    if path.suffix != ".npz":
        raise ValueError(f"{path}: an npz pseudo-GT file must end in .npz")
    return atomic_write_npz(path, arrays)


def read_pseudo_gt_npz(path: str | os.PathLike) -> dict[str, Record]:
    """Inverse of :func:`write_pseudo_gt_npz` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable npz ({exc})") from None
    with z:
        for name in ("model_type", "keys", "ids_json", "root_rotvec", "pose_rotvecs", "betas", "transl_m",
                     "focal_px", "princpt_px"):
            if name not in z.files:
                raise ValueError(f"{path}: {name}: missing array")
        a = {name: z[name] for name in z.files}
    mt = str(a["model_type"])
    out: dict[str, Record] = {}
    for i, key in enumerate(a["keys"].tolist()):
        common: dict[str, Any] = dict(
            key=key, ids=json.loads(str(a["ids_json"][i])), root_rotvec=a["root_rotvec"][i], betas=a["betas"][i],
            transl_m=a["transl_m"][i], focal_px=a["focal_px"][i], princpt_px=a["princpt_px"][i],
            keypoints_2d_px=a["keypoints_2d_px"][i] if "keypoints_2d_px" in a else None,
            joint_set=(str(a["joint_set"][i]) or None) if "joint_set" in a else None,
            score=None if "score" not in a or np.isnan(a["score"][i]) else float(a["score"][i]),
            frame=str(a["frame"][i]) if "frame" in a else "camera",
        )
        extra = {name: a[name][i] for name, _ in _npz_extrinsics(mt) if name in a and not np.isnan(a[name][i]).any()}
        if mt == "mano":
            out[key] = ManoRecord(hand_type=str(a["hand_type"][i]), hand_pose_rotvecs=a["pose_rotvecs"][i], **common,
                                  **extra)
        else:
            out[key] = SmplxRecord(body_pose_rotvecs=a["pose_rotvecs"][i], **common, **extra)
    return out


def _npz_extrinsics(model_type: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    rest = "rest_wrist_m" if model_type == "mano" else "rest_pelvis_m"
    return (("cam_rotmat", (3, 3)), ("cam_trans_mm", (3,)), (rest, (3,)))


# ----------------------------------------------------------------------------------------------- metadata


def meta_path_for(path: str | os.PathLike) -> Path:
    """Sidecar of an output: ``x.json`` / ``x.npz`` -> ``x.meta.json``; a folder -> ``folder/neuralannot.meta.json``."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        return path / "neuralannot.meta.json"
    return path.with_name(path.stem + ".meta.json")


def write_meta(path: str | os.PathLike, meta: Mapping[str, Any]) -> Path:
    """Write the run metadata sidecar of output ``path`` atomically; returns the sidecar path."""
    return atomic_write_json(meta_path_for(path), _jsonable(dict(meta)), indent=2)
