"""Direct evaluation of pseudo-GT files: 3D / 2D annotation error against ground truth, and annotation time.

Flow: :func:`load_ground_truth` (the dataset file's samples via the loaders, plus, optionally, the
synthetic generator's hidden GT side file) -> ``{record key: GroundTruth}``; :func:`evaluate_records`
forwards each pseudo-GT record through its body model (SMPL-X, or MANO right / left) in the CAMERA frame
of its image, takes the joints of the GT's joint set and computes, per record:

- ``mpjpe_mm``: root-aligned MPJPE (root: ``pelvis`` where the set has one, else the mean of the two hips,
  else the ``wrist``) against the GT 3D joints (the dataset's ``joints_3d_cam_mm`` on auxiliary sets; 3DPW:
  the ``h36m_17`` joints of its GT SMPL meshes, :mod:`neuralannot_cli.data.pw3d_joints`; the
  hidden GT's ``joints_3d_cam_mm`` when a side file is given, which wins), over the metric joints of the set
  (:func:`eval_joint_indices`: Human3.6M protocol 2 = 14 of the 17 joints, as I2L-MeshNet / Hand4Whole) and
  the valid GT joints only (``GroundTruth.joints_3d_valid``, e.g. InterHand2.6M ``joint_valid``); mean over
  joints per sample, then over samples (:func:`joint_errors_mm`);
- ``pa_mpjpe_mm``: the same after the similarity Procrustes alignment on those joints (:mod:`.metrics`);
- ``f_score_5mm`` / ``f_score_15mm`` (hands): FreiHAND's mesh F-scores of the Procrustes-aligned mesh
  (:func:`~.metrics.f_score`);
- ``mpvpe_mm`` / ``pa_mpvpe_mm``: mesh vertices against the hidden GT parameters forwarded through the same
  body model (only when the record and the GT use the same model type; each mesh translated by its own root
  regressed from the posed mesh, ``J_regressor[0] @ vertices``: SMPL-X pelvis, MANO wrist, as Hand4Whole's
  EHF / AGORA evaluation; :func:`mesh_root`);
- ``error_2d_px``: the record's joints projected with its own ``cam_param`` against the GT 2D keypoints
  (the hidden GT's exact projections weighted by ``keypoints_visible`` when given, else the dataset's labels
  weighted by their confidence);
- hands: the FreiHAND AUC of PCK over 0-50 mm of the Procrustes-aligned joints;
- MPI-INF-3DHP (``mpi3dhp_17``, :data:`PCK3D_JOINT_SETS`): its 3DPCK at 150 mm and AUC over 0-150 mm of the
  pelvis-aligned joints, all 17 (:func:`~.metrics.pck_3d`, the test set's ``mpii_compute_3d_pck.m``).

Timing (``seconds``, ``images_per_s``) comes from the pseudo-GT's ``*.meta.json`` sidecar
(:func:`neuralannot_cli.io.pseudo_gt.meta_path_for`). Several pseudo-GT files (methods) are evaluated
against the same GT and reported side by side (:func:`evaluate_direct`), each on the records it has; the
table states how many records each method matched. :func:`write_report` writes ``report.json`` and two
PNG plots drawn with OpenCV: ``error_hist.png`` (distribution of per-sample PA-MPJPE, one colour per
method) and ``per_joint.png`` (per-joint MPJPE bars).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch

from neuralannot_cli.evaluate import metrics as M

__all__ = [
    "GroundTruth",
    "CameraView",
    "records_in_every_view",
    "sample_view",
    "read_pseudo_gt_for",
    "MethodResult",
    "DirectReport",
    "BodyModels",
    "root_joint_indices",
    "eval_joint_indices",
    "EVAL_JOINTS_EXCLUDED",
    "PCK3D_JOINT_SETS",
    "joint_errors_mm",
    "mesh_root",
    "load_samples",
    "load_ground_truth",
    "forward_params",
    "evaluate_records",
    "evaluate_direct",
    "write_report",
    "draw_histogram",
    "draw_bar_chart",
]

Part = Literal["body", "hand"]
_WB_HAND = {"left": slice(91, 112), "right": slice(112, 133)}


@dataclass(frozen=True, eq=False)
class CameraView:
    """The view of a GT sample: its dataset ids and camera, where a world-frame pseudo-GT entry is placed.

    Attributes:
        ids: the sample's dataset ids (:attr:`neuralannot_cli.data.record.Sample.ids`).
        cam_rotmat, cam_trans_mm: ``(3, 3)`` / ``(3,)`` extrinsics, ``X_cam = R X_world + t`` (mm), or ``None``
            for a set without a world frame.
        focal_px, princpt_px: ``(2,)`` intrinsics, or ``None``.
    """

    ids: Mapping[str, Any]
    cam_rotmat: np.ndarray | None = None
    cam_trans_mm: np.ndarray | None = None
    focal_px: np.ndarray | None = None
    princpt_px: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Ground truth of one record key.

    Attributes:
        key: the pseudo-GT record key (:func:`neuralannot_cli.io.pseudo_gt.record_key`).
        joint_set: joint set of the GT joints; only its first ``num_joints`` joints are compared.
        joints_3d_cam_mm: ``(J, 3)`` camera-frame joints (mm) or ``None`` (2D-only target set).
        joints_3d_valid: ``(J,)`` 1 / 0 validity of those 3D joints (``None`` = all valid). Dataset GT: the
            loader's ``keypoints_conf > 0`` (InterHand2.6M ``joint_valid``; Human3.6M / MPI-INF-3DHP all ones;
            FreiHAND ``z > 0``); hidden GT: all valid (its ``keypoints_visible`` is 2D visibility).
        keypoints_2d_px: ``(J, 2)`` or ``None``; keypoints_weight: ``(J,)`` (0 = missing).
        params_cam: hidden-GT body-model parameters (BodyModel keywords, camera frame) or ``None``.
        model_type: ``"smplx"`` / ``"mano"`` of ``params_cam``; hand_side: ``"right"`` / ``"left"`` / ``None``.
        image_path: the image (for overlays), or ``None``.
        view: the sample's ids and camera (:class:`CameraView`), or ``None`` (hidden GT without a dataset sample).
    """

    key: str
    joint_set: str
    joints_3d_cam_mm: np.ndarray | None = None
    keypoints_2d_px: np.ndarray | None = None
    keypoints_weight: np.ndarray | None = None
    params_cam: Mapping[str, np.ndarray] | None = None
    model_type: str | None = None
    hand_side: str | None = None
    image_path: Path | None = None
    joints_3d_valid: np.ndarray | None = None
    view: CameraView | None = None

    def valid_3d(self) -> np.ndarray:
        """``(J,)`` float64 validity of ``joints_3d_cam_mm`` (ones when not given)."""
        n = 0 if self.joints_3d_cam_mm is None else int(self.joints_3d_cam_mm.shape[0])
        if self.joints_3d_valid is None:
            return np.ones(n)
        return (np.asarray(self.joints_3d_valid, dtype=np.float64).reshape(-1)[:n] > 0).astype(np.float64)

    @property
    def num_joints(self) -> int:
        for a in (self.joints_3d_cam_mm, self.keypoints_2d_px):
            if a is not None:
                return int(a.shape[0])
        return 0


@dataclass(frozen=True)
class MethodResult:
    """Metrics of one pseudo-GT file (NaN = not measurable on this GT).

    ``per_sample_*`` are ``(n,)`` arrays over the matched records that have that GT; ``per_joint_*`` are
    ``(J,)`` means over them; ``joint_names`` name those joints.
    """

    name: str
    path: str
    model_type: str
    num_records: int
    num_matched: int
    num_3d: int
    num_2d: int
    num_mesh: int
    num_skipped_world: int
    mpjpe_mm: float
    pa_mpjpe_mm: float
    mpvpe_mm: float
    pa_mpvpe_mm: float
    error_2d_px: float
    pck_auc_pa: float
    seconds: float | None
    images_per_s: float | None
    method: str | None
    joint_names: tuple[str, ...] = ()
    per_joint_mpjpe_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_joint_pa_mpjpe_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_sample_mpjpe_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_sample_pa_mpjpe_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_sample_error_2d_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    keys_3d: tuple[str, ...] = ()
    f_score_5mm: float = float("nan")
    f_score_15mm: float = float("nan")
    pck3d_150mm: float = float("nan")
    auc3d_0_150mm: float = float("nan")
    num_placed: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars (NaN -> None) plus the per-joint means."""
        def f(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), 4)

        return {
            "name": self.name, "path": self.path, "model_type": self.model_type, "method": self.method,
            "num_records": self.num_records, "num_matched": self.num_matched, "num_3d": self.num_3d,
            "num_2d": self.num_2d, "num_mesh": self.num_mesh, "num_skipped_world_frame": self.num_skipped_world,
            "num_views_placed": self.num_placed,
            "mpjpe_mm": f(self.mpjpe_mm), "pa_mpjpe_mm": f(self.pa_mpjpe_mm), "mpvpe_mm": f(self.mpvpe_mm),
            "pa_mpvpe_mm": f(self.pa_mpvpe_mm), "error_2d_px": f(self.error_2d_px),
            "pck_auc_pa_0_50mm": f(self.pck_auc_pa),
            "f_score_5mm": f(self.f_score_5mm), "f_score_15mm": f(self.f_score_15mm),
            "pck3d_150mm": f(self.pck3d_150mm), "auc3d_0_150mm": f(self.auc3d_0_150mm),
            "median_pa_mpjpe_mm": f(float(np.median(self.per_sample_pa_mpjpe_mm))
                                    if self.per_sample_pa_mpjpe_mm.size else None),
            "seconds": f(self.seconds), "images_per_s": f(self.images_per_s),
            "per_joint": {"names": list(self.joint_names),
                          "mpjpe_mm": [f(x) for x in self.per_joint_mpjpe_mm.tolist()],
                          "pa_mpjpe_mm": [f(x) for x in self.per_joint_pa_mpjpe_mm.tolist()]},
        }


@dataclass(frozen=True)
class DirectReport:
    dataset_json: str
    kind: str
    part: Part
    gt_file: str | None
    methods: tuple[MethodResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {"dataset_json": self.dataset_json, "dataset_kind": self.kind, "part": self.part,
                "hidden_gt": self.gt_file, "methods": [m.summary() for m in self.methods]}


# ------------------------------------------------------------------------------------------- body models


class BodyModels:
    """Loads SMPL-X / MANO right / MANO left once each (``load_body_model``), on ``device``."""

    def __init__(self, model_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> None:
        self.model_dir = model_dir
        self.device = torch.device(device)
        self._cache: dict[tuple[str, bool], Any] = {}

    def get(self, model_type: str, hand_side: str | None = None):
        from neuralannot_cli.body import load_body_model

        is_right = hand_side != "left"
        key = (model_type, is_right if model_type == "mano" else True)
        if key not in self._cache:
            self._cache[key] = load_body_model(model_type, is_rhand=key[1], model_dir=self.model_dir,  # type: ignore[arg-type]
                                               device=self.device)
        return self._cache[key]


def root_joint_indices(joint_set: str, num_joints: int | None = None) -> tuple[int, ...]:
    """Root of a joint set for root alignment: ``pelvis``, else both hips (mean), else ``wrist``, else 0."""
    from neuralannot_cli.body import get_joint_set

    names = get_joint_set(joint_set).joint_names[: num_joints or None]
    if "pelvis" in names:
        return (names.index("pelvis"),)
    if "left_hip" in names and "right_hip" in names:
        return (names.index("left_hip"), names.index("right_hip"))
    if "wrist" in names:
        return (names.index("wrist"),)
    return (0,)


EVAL_JOINTS_EXCLUDED: Mapping[str, tuple[str, ...]] = MappingProxyType({"h36m_17": ("pelvis", "torso", "head")})
"""Joints of a set left out of MPJPE / PA-MPJPE. Human3.6M protocol 2 evaluates 14 of the 17 joints
(I2L-MeshNet ``data/Human36M/Human36M.py`` and Hand4Whole ``data/Human36M/Human36M.py``: ``eval_joint =
(1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)``, i.e. without pelvis, torso and head; the root is still
the pelvis). Other sets: every joint."""


PCK3D_JOINT_SETS: frozenset[str] = frozenset({"mpi3dhp_17"})
"""Joint sets also scored with MPI-INF-3DHP's 3DPCK / AUC (:func:`~.metrics.pck_3d` of the root-aligned errors
of every joint, as the test set's ``mpii_compute_3d_pck.m`` with its ``mpii_get_pck_auc_joint_groups.m``)."""


def eval_joint_indices(joint_set: str, num_joints: int | None = None) -> tuple[int, ...]:
    """Indices of the joints that enter MPJPE / PA-MPJPE (:data:`EVAL_JOINTS_EXCLUDED`)."""
    from neuralannot_cli.body import get_joint_set

    names = get_joint_set(joint_set).joint_names[: num_joints or None]
    drop = EVAL_JOINTS_EXCLUDED.get(joint_set, ())
    return tuple(i for i, n in enumerate(names) if n not in drop)


def joint_errors_mm(pred_mm: torch.Tensor, gt_mm: torch.Tensor, joint_set: str, valid=None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Per-joint 3D errors of the metric joints, the one code path of direct and indirect evaluation.

    Both skeletons are root-centred on the set's root (:func:`root_joint_indices`, over all ``J`` joints),
    then the metric joints (:func:`eval_joint_indices`) are kept; PA aligns those (valid) joints.

    Args:
        pred_mm, gt_mm: ``(N, J, 3)`` joints of ``joint_set`` (its first ``J``), mm.
        valid: ``(N, J)`` GT validity (None = all valid); a sample whose root joint is invalid gets no weight.

    Returns:
        ``(mpjpe (N, E), pa_mpjpe (N, E), weights (N, E), joint names (E,))``; per-sample values are
        :func:`~.metrics.masked_mean` of these with the weights.
    """
    from neuralannot_cli.body import get_joint_set

    if gt_mm.ndim != 3 or pred_mm.shape != gt_mm.shape:
        raise ValueError(f"joint_errors_mm: pred and gt must be (N, J, 3) alike, got {tuple(pred_mm.shape)} "
                         f"and {tuple(gt_mm.shape)}")
    n, j = gt_mm.shape[:2]
    root = list(root_joint_indices(joint_set, j))
    ev = list(eval_joint_indices(joint_set, j))
    w = torch.ones(n, j, dtype=torch.float64) if valid is None else (torch.as_tensor(valid) > 0).to(torch.float64)
    if w.shape != (n, j):
        raise ValueError(f"joint_errors_mm: valid must be (N={n}, J={j}), got {tuple(w.shape)}")
    w = w * (w[:, root] > 0).all(dim=1, keepdim=True).to(w.dtype)
    mp = M.mpjpe(pred_mm, gt_mm, root, per_joint=True)[:, ev]
    pa = M.pa_mpjpe(pred_mm[:, ev], gt_mm[:, ev], w[:, ev], per_joint=True)
    names = get_joint_set(joint_set).joint_names[:j]
    return mp, pa, w[:, ev], tuple(names[i] for i in ev)


def mesh_root(model, vertices: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` root joint regressed from the posed mesh ``(N, V, 3)``: ``J_regressor[0] @ vertices``
    (SMPL-X pelvis, MANO wrist), the root by which Hand4Whole translates meshes for MPVPE (``data/EHF/EHF.py``,
    ``data/AGORA/AGORA.py``: ``np.dot(smpl_x.J_regressor, mesh)[pelvis]``); smplx's kinematic joint 0 (the
    rest-shape joint moved rigidly) differs from it by a few mm on a posed body."""
    reg = model.layer.J_regressor[0].to(device=vertices.device, dtype=vertices.dtype)
    return torch.einsum("v,nvc->nc", reg, vertices)


def _fit(a: np.ndarray, n: int) -> np.ndarray:
    """Pad with zeros / truncate the last axis to ``n`` (betas / expression of another length)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    return a[:n] if a.size >= n else np.concatenate([a, np.zeros(n - a.size)])


def _record_params(rec: Any, model) -> dict[str, np.ndarray]:
    p = {"root_rotvec": np.asarray(rec.root_rotvec), "betas": _fit(rec.betas, model.num_betas),
         "transl_m": np.asarray(rec.transl_m)}
    if rec.model_type == "mano":
        p["hand_pose_rotvecs"] = np.asarray(rec.hand_pose_rotvecs)
        return p
    z15 = np.zeros((15, 3))
    p["body_pose_rotvecs"] = np.asarray(rec.body_pose_rotvecs)
    p["left_hand_pose_rotvecs"] = z15 if rec.lhand_pose_rotvecs is None else np.asarray(rec.lhand_pose_rotvecs)
    p["right_hand_pose_rotvecs"] = z15 if rec.rhand_pose_rotvecs is None else np.asarray(rec.rhand_pose_rotvecs)
    p["jaw_rotvec"] = np.zeros(3) if rec.jaw_rotvec is None else np.asarray(rec.jaw_rotvec)
    p["expression"] = _fit(np.zeros(0) if rec.expression is None else rec.expression, model.num_expression_coeffs)
    return p


def _gt_params(params: Mapping[str, Any], model, where: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        a = np.asarray(value, dtype=np.float64)
        if name == "betas":
            a = _fit(a, model.num_betas)
        elif name == "expression":
            a = _fit(a, model.num_expression_coeffs)
        elif name.endswith("_rotvecs"):
            a = a.reshape(-1, 3)
        elif name.endswith("_rotvec") or name == "transl_m":
            a = a.reshape(3)
        else:
            raise ValueError(f"{where}.params_cam.{name}: unknown body-model parameter")
        out[name] = a
    return out


def forward_params(model, params: Sequence[Mapping[str, np.ndarray]], joint_set: str | None,
                   chunk: int = 128) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Forward parameter dicts (same keys) -> ``vertices (N, V, 3)`` m, ``joints (N, J, 3)`` m of ``joint_set``
    (``None`` if not given), ``root (N, 3)`` = :func:`mesh_root` of the mesh, all float64 numpy."""
    verts, joints, roots = [], [], []
    with torch.no_grad():
        for i in range(0, len(params), chunk):
            part = params[i:i + chunk]
            kw = {k: torch.as_tensor(np.stack([p[k] for p in part]), dtype=model.dtype, device=model.device)
                  for k in part[0]}
            out = model(**kw)
            verts.append(out.vertices.to("cpu", torch.float64).numpy())
            roots.append(mesh_root(model, out.vertices.to("cpu", torch.float64)).numpy())
            if joint_set is not None:
                joints.append(model.joints_in(out, joint_set).to("cpu", torch.float64).numpy())
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros((0, 0, 3)))
    return (cat(verts), cat(joints) if joint_set is not None else None,
            np.concatenate(roots) if roots else np.zeros((0, 3)))


# ------------------------------------------------------------------------------------------ ground truth


def _hidden_keys(kind: str, part: Part, entry: Mapping[str, Any]) -> list[tuple[str, str | None, slice | None]]:
    """``(record key, hand side, joint slice)`` of one hidden-GT entry."""
    from neuralannot_cli.io.pseudo_gt import record_key

    ids = dict(entry.get("ids") or {})
    if kind == "freihand" and "image_number" not in ids and "index" in ids:
        ids["image_number"] = ids["index"]
    if kind == "coco_wholebody" and part == "hand":
        return [(record_key(kind, ids, side), side, _WB_HAND[side]) for side in ("right", "left")]
    side = entry.get("hand_side")
    if kind == "interhand":
        return [(record_key(kind, ids, side or "right"), side, None)]
    return [(record_key(kind, ids, None), side, None)]


def load_samples(dataset_json: str | os.PathLike, kind: str = "auto", *, part: Part = "body",
                 model_dir: str | os.PathLike | None = None, gt_3d: bool = True,
                 device: torch.device | str = "cpu") -> tuple[str, dict[str, Any]]:
    """``(dataset kind, {record key: Sample})`` of a dataset annotation file, keyed like the pseudo-GT records.

    The dataset is read with :func:`neuralannot_cli.data.loaders.load_dataset` (kind and root inferred from
    the file name as ``neuralannot annotate`` does); COCO-WholeBody persons become the target samples of
    ``part`` (body: 23 body+feet keypoints; hand: one 21-joint sample per labelled hand). 3DPW samples get
    their GT ``h36m_17`` joints from the GT SMPL parameters (:func:`neuralannot_cli.data.pw3d_joints.with_gt_joints`,
    SMPL from ``model_dir`` or the usual lookup) unless ``gt_3d=False`` (training on their pseudo-GT needs
    only the images and boxes).
    """
    from neuralannot_cli.data.loaders import load_dataset
    from neuralannot_cli.io.annotate_run import infer_dataset
    from neuralannot_cli.io.pseudo_gt import record_key
    from neuralannot_cli.train.datasets import part_aux_samples, part_target_samples

    dataset_json = Path(dataset_json)
    if not dataset_json.is_file():
        raise FileNotFoundError(f"{dataset_json}: dataset file not found")
    kind, root, options = infer_dataset(dataset_json, kind)
    samples = load_dataset(kind, root, **options)  # type: ignore[arg-type]
    if kind == "coco_wholebody":
        samples, _ = part_target_samples(samples, part)
    else:
        hand_kind = kind in ("freihand", "interhand")
        if hand_kind != (part == "hand"):
            raise ValueError(f"{dataset_json}: a {kind} set has {'hands' if hand_kind else 'bodies'}, "
                             f"but the pseudo-GT holds {part} records")
        samples, _ = part_aux_samples(samples)
    if kind == "3dpw" and gt_3d:
        from neuralannot_cli.data.pw3d_joints import with_gt_joints

        samples = with_gt_joints(samples, model_dir=model_dir, device=device)
    out: dict[str, Any] = {}
    for s in samples:
        side = None
        if part == "hand" and kind in ("coco_wholebody", "interhand"):
            side = str(s.ids.get("hand_side", s.extras.get("hand_side", "right")))
        out[record_key(kind, s.ids, side)] = s
    return kind, out


def load_ground_truth(dataset_json: str | os.PathLike, kind: str = "auto", *, part: Part = "body",
                      hidden_gt: str | os.PathLike | None = None, model_dir: str | os.PathLike | None = None,
                      device: torch.device | str = "cpu") -> tuple[str, dict[str, GroundTruth]]:
    """``(dataset kind, {record key: GroundTruth})`` for a dataset annotation file (+ hidden GT side file).

    Samples come from :func:`load_samples`; the hidden GT (synthetic sets) replaces their 3D joints and 2D
    keypoints and adds the body-model parameters. 3DPW: the GT joints of the GT SMPL meshes (``model_dir``:
    where SMPL and its Human3.6M regressor are); no GT parameters are attached (SMPL, not comparable with
    SMPL-X / MANO records, so MPVPE stays unmeasured).

    Raises:
        FileNotFoundError / ValueError / DatasetFormatError: missing or malformed files (one line).
    """
    kind, samples = load_samples(dataset_json, kind, part=part, model_dir=model_dir, device=device)
    gts: dict[str, GroundTruth] = {}
    for key, s in samples.items():
        side = None
        if part == "hand":
            side = str(s.ids.get("hand_side", s.extras.get("hand_side", "right")))
        j3d = None if s.joints_3d_cam_mm is None else np.asarray(s.joints_3d_cam_mm, dtype=np.float64)
        conf = np.asarray(s.keypoints_conf, dtype=np.float64)
        gts[key] = GroundTruth(key=key, joint_set=s.joint_set, joints_3d_cam_mm=j3d,
                               keypoints_2d_px=np.asarray(s.keypoints_2d_px, dtype=np.float64),
                               keypoints_weight=conf, hand_side=side, image_path=Path(s.image_path),
                               joints_3d_valid=None if j3d is None else (conf > 0).astype(np.float64),
                               view=sample_view(s))
    if hidden_gt is not None:
        _merge_hidden(gts, Path(hidden_gt), kind, part)
    return kind, gts


def sample_view(s: Any) -> CameraView:
    """A sample's ids and camera: Human3.6M / MPI-INF-3DHP ``cam_rotmat`` / ``cam_trans_mm``, InterHand2.6M
    ``cam_rotmat`` / ``campos_mm`` (``t = -R @ campos``), else no extrinsics."""
    f64 = (lambda a: None if a is None else np.asarray(a, dtype=np.float64))
    rot, trans = f64(s.extras.get("cam_rotmat")), f64(s.extras.get("cam_trans_mm"))
    if rot is not None and trans is None and s.extras.get("campos_mm") is not None:
        trans = -rot @ f64(s.extras["campos_mm"]).reshape(3)
    return CameraView(ids=dict(s.ids), cam_rotmat=rot if trans is not None else None,
                      cam_trans_mm=trans if rot is not None else None, focal_px=f64(s.focal_px),
                      princpt_px=f64(s.princpt_px))


def _merge_hidden(gts: dict[str, GroundTruth], path: Path, kind: str, part: Part) -> None:
    from neuralannot_cli.io.pseudo_gt import _load_json  # one-line errors for missing / invalid JSON

    data = _load_json(path)
    anns = data.get("annotations") if isinstance(data, Mapping) else None
    if not isinstance(anns, Mapping):
        raise ValueError(f"{path}: annotations: missing (not a synthetic hidden-GT file)")
    for ann_id, e in anns.items():
        where = f"annotations[{ann_id!r}]"
        if not isinstance(e, Mapping):
            raise ValueError(f"{path}: {where}: expected an object")
        for name in ("joints_3d_cam_mm", "keypoints_2d_px", "joint_set"):
            if name not in e:
                raise ValueError(f"{path}: {where}.{name}: missing")
        j3d = np.asarray(e["joints_3d_cam_mm"], dtype=np.float64)
        kp = np.asarray(e["keypoints_2d_px"], dtype=np.float64)
        vis = np.asarray(e.get("keypoints_visible", np.ones(len(kp))), dtype=np.float64)
        if j3d.ndim != 2 or j3d.shape[1] != 3 or kp.shape != (len(j3d), 2) or vis.shape != (len(j3d),):
            raise ValueError(f"{path}: {where}: joints_3d_cam_mm / keypoints_2d_px / keypoints_visible shapes "
                             f"{j3d.shape} / {kp.shape} / {vis.shape} do not agree")
        for key, side, sl in _hidden_keys(kind, part, e):
            old = gts.get(key)
            if old is not None and old.image_path is not None and "image_file" in e:
                hidden_image = (path.parent.parent / str(e["image_file"])).resolve()
                if hidden_image != Path(old.image_path).resolve():
                    raise ValueError(f"{path}: {where}.image_file: {e['image_file']} is not the dataset's image "
                                     f"{old.image_path} (the hidden GT of another split or set?)")
            js, j, k, v = e["joint_set"], j3d, kp, vis
            if sl is not None:
                js, j, k, v = "hand_21", j3d[sl], kp[sl], vis[sl]
            elif old is not None and old.num_joints and old.num_joints < len(j):
                j, k, v = j[: old.num_joints], k[: old.num_joints], v[: old.num_joints]  # e.g. body 23 of 133
            elif old is None and kind == "coco_wholebody" and part == "body":
                j, k, v = j[:23], k[:23], v[:23]
            image = old.image_path if old is not None else None
            if image is None and "image_file" in e:
                image = path.parent.parent / str(e["image_file"])
            gts[key] = GroundTruth(key=key, joint_set=js, joints_3d_cam_mm=j, keypoints_2d_px=k, keypoints_weight=v,
                                   params_cam=e.get("params_cam") if sl is None else None,
                                   model_type=e.get("model_type"), hand_side=side or (old.hand_side if old else None),
                                   image_path=image, view=old.view if old is not None else None)


# ------------------------------------------------------------------------------------------- evaluation


def _read_meta(path: Path) -> dict[str, Any]:
    from neuralannot_cli.io.pseudo_gt import meta_path_for

    meta = meta_path_for(path)
    if not meta.is_file():
        return {}
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _nanmean(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def records_in_every_view(records: Mapping[str, Any], views: Mapping[str, CameraView | None], kind: str,
                          models: BodyModels) -> tuple[dict[str, Any], int, frozenset[str]]:
    """Place the world-frame entries of a Human3.6M / MPI-INF-3DHP / InterHand2.6M pseudo-GT in every view.

    The field's layout for these sets holds ONE world-frame parameter set per frame (and hand), and its loaders
    give it to every camera of that frame (Hand4Whole ``data/Human36M/Human36M.py``,
    ``data/InterHand26M/InterHand26M.py``: the world parameters mapped by each image's extrinsics). So the pseudo-GT
    a user trains with is that entry in each view, and it is scored there: every GT sample without a record of its
    own gets the record of its frame (:func:`~neuralannot_cli.io.pseudo_gt.world_frame_key`) mapped into its camera
    (:func:`~neuralannot_cli.io.pseudo_gt.world_to_camera_params`) with its intrinsics. ``views``: ``{sample key:
    view}`` of the dataset (``GroundTruth.view``, :func:`sample_view`). Sources of a frame's world
    parameters: a foreign entry (``frame="world"``, e.g. a released NeuralAnnot file; its rest root joint ``p0``
    comes from the body model and its betas) or a camera-frame record that carries its extrinsics and ``p0``
    (this tool's files; of several, the lowest ``score``). Root-relative 3D errors are the same in every view of
    a frame (a rotation); 2D errors and overlays are not.

    Returns:
        ``(records, placed, sources)``: the camera-frame records plus the placed ones (world-frame entries whose
        frame has no view stay, still ``frame="world"``), how many views were placed, and the keys of the input
        records that were placed somewhere.
    """
    from neuralannot_cli.io.annotate_run import rest_root_joint
    from neuralannot_cli.io.pseudo_gt import (WORLD_FRAME_KINDS, camera_to_world_params, world_frame_key,
                                              world_to_camera_params)

    if kind not in WORLD_FRAME_KINDS:
        return dict(records), 0, frozenset()
    rest_name = "rest_wrist_m" if kind == "interhand" else "rest_pelvis_m"
    # frame key -> (rank, record, root_w, trans_w, p0 or None)
    frames: dict[str, tuple[float, Any, np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for r in records.values():
        if r.frame == "world":
            fk, world, rank = r.key, (np.asarray(r.root_rotvec), np.asarray(r.transl_m), None), -math.inf
        else:
            rest = getattr(r, rest_name, None)
            if r.cam_rotmat is None or r.cam_trans_mm is None or rest is None:
                continue
            try:
                fk = world_frame_key(kind, r.ids, getattr(r, "hand_type", None))
            except ValueError:
                continue
            root_w, trans_w = camera_to_world_params(r.root_rotvec, r.transl_m, rest, r.cam_rotmat, r.cam_trans_mm)
            world, rank = (root_w, trans_w, np.asarray(rest, np.float64)), (math.inf if r.score is None else r.score)
        if fk not in frames or rank < frames[fk][0]:
            frames[fk] = (rank, r, *world)
    todo: list[tuple[str, str]] = []  # (GT key, frame key)
    for key, v in views.items():
        if key in records or v is None or v.cam_rotmat is None or v.cam_trans_mm is None:
            continue
        try:
            fk = world_frame_key(kind, v.ids)
        except ValueError:
            continue
        if fk in frames:
            todo.append((key, fk))
    # p0 of the foreign entries: joint 0 of the shaped rest model, one batch per model (and hand side)
    need = sorted({fk for _, fk in todo if frames[fk][4] is None})
    by_model: dict[tuple[str, str | None], list[str]] = {}
    for fk in need:
        r = frames[fk][1]
        by_model.setdefault((r.model_type, getattr(r, "hand_type", None)), []).append(fk)
    rest_of: dict[str, np.ndarray] = {}
    for (mt, side), fks in by_model.items():
        model = models.get(mt, side)
        nb = int(model.num_betas)
        betas = np.stack([np.asarray(frames[fk][1].betas, np.float64).reshape(-1)[:nb] for fk in fks])
        betas = np.pad(betas, ((0, 0), (0, nb - betas.shape[1])))
        rest_of.update(zip(fks, rest_root_joint(model, betas, str(models.device))))
    out = {k: r for k, r in records.items() if r.frame != "world"}
    placed_frames: set[str] = set()
    for key, fk in todo:
        _, r, root_w, trans_w, p0 = frames[fk]
        p0 = rest_of[fk] if p0 is None else p0
        v = views[key]
        assert v is not None and v.cam_rotmat is not None and v.cam_trans_mm is not None
        root_c, trans_c = world_to_camera_params(root_w, trans_w, p0, v.cam_rotmat, v.cam_trans_mm)
        out[key] = dataclasses.replace(
            r, key=key, ids=dict(v.ids), root_rotvec=root_c, transl_m=trans_c,
            focal_px=v.focal_px if v.focal_px is not None else r.focal_px,
            princpt_px=v.princpt_px if v.princpt_px is not None else r.princpt_px,
            cam_rotmat=v.cam_rotmat, cam_trans_mm=v.cam_trans_mm, keypoints_2d_px=None, frame="camera",
            **{rest_name: p0})
        placed_frames.add(fk)
    for k, r in records.items():  # world-frame entries of frames without any GT view: left for the report
        if r.frame == "world" and k not in placed_frames:
            out[k] = r
    return out, len(todo), frozenset(frames[fk][1].key for fk in placed_frames)


def evaluate_records(records: Mapping[str, Any], gts: Mapping[str, GroundTruth], models: BodyModels, *,
                     name: str = "pseudo-GT", path: str = "", meta: Mapping[str, Any] | None = None,
                     on_progress: Callable[[int, int], None] | None = None, kind: str | None = None) -> MethodResult:
    """Metrics of one method's records (``{key: SmplxRecord | ManoRecord}``) against ``gts``.

    ``kind``: the dataset kind of ``gts``; for the world-frame layouts (Human3.6M, MPI-INF-3DHP, InterHand2.6M) each
    frame's entry is scored in every view of that frame, as the field's loaders use it
    (:func:`records_in_every_view`); ``None`` scores each record in its own camera only.
    """
    meta = dict(meta or {})
    num_records = len(records)
    placed = 0
    if kind is not None:
        records, placed, _ = records_in_every_view(records, {k: g.view for k, g in gts.items()}, kind, models)
    keys = [k for k in records if k in gts]
    world = [k for k in keys if records[k].frame != "camera"]
    keys = [k for k in keys if records[k].frame == "camera"]
    types = {r.model_type for r in records.values()}
    model_type = types.pop() if len(types) == 1 else ("mixed" if types else "none")
    # group by (model type, hand side, joint set, J) so each group is one batched forward
    groups: dict[tuple[str, str | None, str, int], list[str]] = {}
    for k in keys:
        r, g = records[k], gts[k]
        side = getattr(r, "hand_type", None)
        groups.setdefault((r.model_type, side, g.joint_set, g.num_joints), []).append(k)
    e3d, epa, e2d, mesh, mesh_pa, pj, pjpa, pjw, keys3d, auc_err, auc_w = [], [], [], [], [], [], [], [], [], [], []
    fs5, fs15, pck_err, pck_w = [], [], [], []
    joint_names: tuple[str, ...] = ()
    done = 0
    for (mt, side, js, nj), ks in groups.items():
        model = models.get(mt, side)
        params = [_record_params(records[k], model) for k in ks]
        verts, joints, roots = forward_params(model, params, js)
        joints_mm = joints[:, :nj] * 1000.0  # type: ignore[index]
        # 3D joints
        idx3 = [i for i, k in enumerate(ks) if gts[k].joints_3d_cam_mm is not None]
        if idx3:
            gt3 = torch.tensor(np.stack([gts[ks[i]].joints_3d_cam_mm for i in idx3]))
            v3 = torch.tensor(np.stack([gts[ks[i]].valid_3d() for i in idx3]))
            pr3 = torch.tensor(joints_mm[idx3])
            pj_t, pa_t, w_t, names = joint_errors_mm(pr3, gt3, js, v3)
            e3d.append(M.masked_mean(pj_t, w_t).numpy())
            epa.append(M.masked_mean(pa_t, w_t).numpy())
            keys3d += [ks[i] for i in idx3]
            if not joint_names or joint_names == names:
                joint_names = names
                pj.append(pj_t.numpy())
                pjpa.append(pa_t.numpy())
                pjw.append(w_t.numpy())
            if mt == "mano":
                auc_err.append(pa_t.numpy())
                auc_w.append(w_t.numpy())
            if js in PCK3D_JOINT_SETS:
                pck_err.append(pj_t.numpy())
                pck_w.append(w_t.numpy())
        # 2D keypoints
        idx2 = [i for i, k in enumerate(ks) if gts[k].keypoints_2d_px is not None]
        if idx2:
            recs = [records[ks[i]] for i in idx2]
            f = np.stack([r.focal_px for r in recs])[:, None]
            c = np.stack([r.princpt_px for r in recs])[:, None]
            pts = joints_mm[idx2]
            z = np.clip(pts[..., 2:3], 1e-6, None)
            proj = pts[..., :2] / z * f + c
            gt2 = np.stack([gts[ks[i]].keypoints_2d_px for i in idx2])
            w = np.stack([gts[ks[i]].keypoints_weight for i in idx2])
            e2d.append(M.keypoint_error_2d(torch.tensor(proj), torch.tensor(gt2), torch.tensor(w)).numpy())
        # meshes
        idxm = [i for i, k in enumerate(ks) if gts[k].params_cam is not None and gts[k].model_type == mt]
        if idxm:
            gparams = [_gt_params(gts[ks[i]].params_cam, model, f"hidden GT[{ks[i]}]") for i in idxm]  # type: ignore[arg-type]
            gmodel = models.get(mt, gts[ks[idxm[0]]].hand_side if mt == "mano" else None)
            gverts, _, groots = forward_params(gmodel, gparams, None)
            pv = torch.tensor(verts[idxm] * 1000.0)
            gv = torch.tensor(gverts * 1000.0)
            mesh.append(M.mpvpe(pv, gv, torch.tensor(roots[idxm] * 1000.0), torch.tensor(groots * 1000.0)).numpy())
            mesh_pa.append(M.pa_mpvpe(pv, gv).numpy())
            if mt == "mano":  # FreiHAND's mesh F-scores, on the Procrustes-aligned mesh
                aligned = M.procrustes_align(pv, gv)
                fs5.append(M.f_score(aligned, gv, M.FREIHAND_F_SCORE_MM[0]).numpy())
                fs15.append(M.f_score(aligned, gv, M.FREIHAND_F_SCORE_MM[1]).numpy())
        done += len(ks)
        if on_progress is not None:
            on_progress(done, len(keys))
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))
    auc = M.pck_auc(np.concatenate(auc_err), valid=np.concatenate(auc_w))[0] if auc_err else float("nan")
    pck3d, auc3d = (M.pck_3d(np.concatenate(pck_err), np.concatenate(pck_w))[:2] if pck_err
                    else (float("nan"), float("nan")))
    per_sample_2d = cat(e2d)
    return MethodResult(
        name=name, path=str(path), model_type=model_type, num_records=num_records, num_placed=placed,
        num_matched=len(keys), num_3d=len(keys3d), num_2d=int(np.isfinite(per_sample_2d).sum()),
        num_mesh=int(cat(mesh).size), num_skipped_world=len(world),
        mpjpe_mm=_nanmean(cat(e3d)), pa_mpjpe_mm=_nanmean(cat(epa)), mpvpe_mm=_nanmean(cat(mesh)),
        pa_mpvpe_mm=_nanmean(cat(mesh_pa)), error_2d_px=_nanmean(per_sample_2d), pck_auc_pa=auc,
        seconds=_num(meta.get("seconds")), images_per_s=_num(meta.get("images_per_s")),
        method=meta.get("method") or meta.get("tool"), joint_names=tuple(joint_names),
        per_joint_mpjpe_mm=M.per_joint_mean(np.concatenate(pj), np.concatenate(pjw)).numpy() if pj else np.zeros(0),
        per_joint_pa_mpjpe_mm=(M.per_joint_mean(np.concatenate(pjpa), np.concatenate(pjw)).numpy()
                               if pjpa else np.zeros(0)),
        per_sample_mpjpe_mm=cat(e3d), per_sample_pa_mpjpe_mm=cat(epa), per_sample_error_2d_px=per_sample_2d,
        keys_3d=tuple(keys3d), f_score_5mm=_nanmean(cat(fs5)), f_score_15mm=_nanmean(cat(fs15)),
        pck3d_150mm=pck3d, auc3d_0_150mm=auc3d,
    )


def _num(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def evaluate_direct(pseudo_gt: Mapping[str, str | os.PathLike], dataset_json: str | os.PathLike, *,
                    kind: str = "auto", hidden_gt: str | os.PathLike | None = None,
                    model_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                    on_progress: Callable[[str, int, int], None] | None = None) -> DirectReport:
    """Evaluate one or more pseudo-GT files ``{method name: path}`` against one dataset's GT.

    ``model_dir=None`` with a hidden-GT file uses the model folder that generated it (its ``meta.model_file``),
    so stand-in sets are evaluated with the same stand-in; otherwise the usual model lookup applies.
    """

    if not pseudo_gt:
        raise ValueError("evaluate_direct: no pseudo-GT file given")
    loaded: dict[str, tuple[Path, dict[str, Any]]] = {}
    parts: set[str] = set()
    for name, p in pseudo_gt.items():
        p = Path(p)
        recs = read_pseudo_gt_for(p, kind, dataset_json)
        if not recs:
            raise ValueError(f"{p}: no records")
        loaded[name] = (p, recs)
        parts |= {"hand" if r.model_type == "mano" else "body" for r in recs.values()}
    if len(parts) != 1:
        raise ValueError(f"pseudo-GT files mix body and hand records ({sorted(parts)}); evaluate them separately")
    part: Part = parts.pop()  # type: ignore[assignment]
    if model_dir is None and hidden_gt is not None:
        model_dir = _generator_model_dir(Path(hidden_gt))
    ds_kind, gts = load_ground_truth(dataset_json, kind, part=part, hidden_gt=hidden_gt, model_dir=model_dir,
                                     device=device)
    models = BodyModels(model_dir, device)
    results = []
    for name, (p, recs) in loaded.items():
        cb = (lambda d, t, _n=name: on_progress(_n, d, t)) if on_progress is not None else None
        res = evaluate_records(recs, gts, models, name=name, path=str(p), meta=_read_meta(p), on_progress=cb,
                               kind=ds_kind)
        if res.num_matched == 0:
            raise ValueError(f"{p}: none of its {res.num_records} records matches a sample of {dataset_json} "
                             f"({ds_kind}, {part}; another split, subject or dataset?)")
        results.append(res)
    return DirectReport(dataset_json=str(dataset_json), kind=ds_kind, part=part,
                        gt_file=None if hidden_gt is None else str(hidden_gt), methods=tuple(results))


def read_pseudo_gt_for(path: Path, kind: str, dataset_json: str | os.PathLike) -> dict[str, Any]:
    """A pseudo-GT file's records; with ``kind='auto'`` its layout comes from its sidecar / name / content, and where
    those cannot tell it (a renamed Human3.6M / MPI-INF-3DHP file without its ``.meta.json``) from the dataset file
    it is evaluated against."""
    from neuralannot_cli.io.annotate_run import infer_dataset
    from neuralannot_cli.io.pseudo_gt import read_pseudo_gt

    if kind != "auto":
        return read_pseudo_gt(path, dataset_kind=kind)
    try:
        return read_pseudo_gt(path, dataset_kind=None)
    except ValueError as exc:
        if "cannot tell the layout" not in str(exc):
            raise
        try:
            ds_kind = infer_dataset(Path(dataset_json), "auto")[0]
        except ValueError:
            raise exc from None
    return read_pseudo_gt(path, dataset_kind=ds_kind)


def _generator_model_dir(hidden_gt: Path) -> Path | None:
    try:
        meta = json.loads(hidden_gt.read_text(encoding="utf-8")).get("meta") or {}
    except (OSError, ValueError, AttributeError):
        return None
    mf = meta.get("model_file")
    if not mf:
        return None
    folder = Path(mf).parent.parent  # <dir>/smplx/SMPLX_NEUTRAL.npz -> <dir>
    return folder if folder.is_dir() else None


# --------------------------------------------------------------------------------------------- plotting

_PALETTE = [(52, 101, 164), (204, 0, 0), (78, 154, 6), (196, 160, 0), (117, 80, 123), (206, 92, 0)]  # RGB


def draw_histogram(series: Mapping[str, np.ndarray], title: str, xlabel: str, *, bins: int = 30,
                   size: tuple[int, int] = (480, 800)) -> np.ndarray:
    """Overlaid step histograms (one colour per series) as an RGB ``(H, W, 3)`` uint8 image."""
    import cv2

    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 60, 20, 40, 60
    vals = [np.asarray(v, np.float64)[np.isfinite(v)] for v in series.values()]
    hi = max((float(np.percentile(v, 99)) for v in vals if v.size), default=1.0) * 1.05 or 1.0
    edges = np.linspace(0.0, hi, bins + 1)
    hists = [np.histogram(np.clip(v, 0, hi), edges)[0] / max(v.size, 1) for v in vals]
    ymax = max((float(x.max()) for x in hists if x.size), default=1.0) * 1.1 or 1.0
    pw, ph = w - left - right, h - top - bottom

    def xy(x: float, y: float) -> tuple[int, int]:
        return int(left + x / hi * pw), int(top + ph - y / ymax * ph)

    _axes(img, left, top, pw, ph, title, xlabel, "fraction", (0.0, hi), (0.0, ymax))
    for n, ((label, _), hist) in enumerate(zip(series.items(), hists)):
        col = _PALETTE[n % len(_PALETTE)]
        pts = []
        for b in range(bins):
            pts += [xy(edges[b], hist[b]), xy(edges[b + 1], hist[b])]
        cv2.polylines(img, [np.array(pts, np.int32)], False, col, 2, cv2.LINE_AA)
        v = vals[n]
        if v.size:
            mx = xy(float(v.mean()), 0)[0]
            cv2.line(img, (mx, top), (mx, top + ph), col, 1, cv2.LINE_AA)
        cv2.putText(img, f"{label} (mean {float(v.mean()) if v.size else float('nan'):.1f})",
                    (left + pw - 300, top + 18 + 18 * n), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1, cv2.LINE_AA)
    return img


def draw_bar_chart(labels: Sequence[str], series: Mapping[str, np.ndarray], title: str, ylabel: str, *,
                   height: int = 520) -> np.ndarray:
    """Grouped vertical bars (one group per label, one colour per series), labels written vertically."""
    import cv2

    n, k = len(labels), max(len(series), 1)
    left, right, top, bottom = 60, 20, 40, 130
    group_w = max(14, 6 * k + 6)
    w = max(640, left + right + n * group_w)
    img = np.full((height, w, 3), 255, np.uint8)
    pw, ph = w - left - right, height - top - bottom
    allv = np.concatenate([np.asarray(v, np.float64) for v in series.values()]) if series else np.zeros(0)
    allv = allv[np.isfinite(allv)]
    ymax = float(allv.max()) * 1.1 if allv.size and allv.max() > 0 else 1.0
    _axes(img, left, top, pw, ph, title, "", ylabel, None, (0.0, ymax))
    gw = pw / max(n, 1)
    bw = max(2, int(gw * 0.8 / k))
    for s, (name, vals) in enumerate(series.items()):
        col = _PALETTE[s % len(_PALETTE)]
        for j, v in enumerate(np.asarray(vals, np.float64)):
            if not np.isfinite(v):
                continue
            x0 = int(left + j * gw + gw * 0.1 + s * bw)
            cv2.rectangle(img, (x0, int(top + ph - v / ymax * ph)), (x0 + bw - 1, top + ph), col, -1)
        cv2.putText(img, name, (left + pw - 200, top + 18 + 18 * s), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1,
                    cv2.LINE_AA)
    # vertical joint names: draw horizontally on a strip, rotate it by 90 degrees
    strip = np.full((int(gw) if gw >= 10 else 10, bottom - 8, 3), 255, np.uint8)
    for j, label in enumerate(labels):
        strip[:] = 255
        cv2.putText(strip, str(label)[:18], (2, strip.shape[0] - 3), cv2.FONT_HERSHEY_SIMPLEX,
                    min(0.4, strip.shape[0] / 30), (0, 0, 0), 1, cv2.LINE_AA)
        rot = np.rot90(strip, 1)  # text reads bottom-to-top
        x0 = int(left + j * gw)
        x1 = min(x0 + rot.shape[1], w)
        img[top + ph + 4: top + ph + 4 + rot.shape[0], x0:x1] = np.minimum(
            img[top + ph + 4: top + ph + 4 + rot.shape[0], x0:x1], rot[:, : x1 - x0])
    return img


def _axes(img: np.ndarray, left: int, top: int, pw: int, ph: int, title: str, xlabel: str, ylabel: str,
          xrange: tuple[float, float] | None, yrange: tuple[float, float]) -> None:
    import cv2

    black = (0, 0, 0)
    grey = (200, 200, 200)
    cv2.putText(img, title, (left, top - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.55, black, 1, cv2.LINE_AA)
    for t in range(5):
        y = int(top + ph - t / 4 * ph)
        cv2.line(img, (left, y), (left + pw, y), grey, 1)
        val = yrange[0] + (yrange[1] - yrange[0]) * t / 4
        cv2.putText(img, f"{val:.3g}", (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1, cv2.LINE_AA)
    if xrange is not None:
        for t in range(6):
            x = int(left + t / 5 * pw)
            cv2.line(img, (x, top + ph), (x, top + ph + 5), black, 1)
            val = xrange[0] + (xrange[1] - xrange[0]) * t / 5
            cv2.putText(img, f"{val:.3g}", (x - 12, top + ph + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.38, black, 1,
                        cv2.LINE_AA)
    cv2.line(img, (left, top), (left, top + ph), black, 1)
    cv2.line(img, (left, top + ph), (left + pw, top + ph), black, 1)
    if xlabel:
        cv2.putText(img, xlabel, (left + pw // 2 - 60, top + ph + 42), cv2.FONT_HERSHEY_SIMPLEX, 0.45, black, 1,
                    cv2.LINE_AA)
    if ylabel:
        cv2.putText(img, ylabel, (left + 4, top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, black, 1, cv2.LINE_AA)


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"{path}: cannot write the PNG")
    return path


def write_report(report: DirectReport, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``report.json``, ``error_hist.png`` and ``per_joint.png`` under ``out_dir`` (created) -> their paths."""
    from neuralannot_cli.io.atomic import atomic_write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    with_3d = [m for m in report.methods if m.num_3d]
    if with_3d:
        paths["error_hist"] = _write_png(out / "error_hist.png", draw_histogram(
            {m.name: m.per_sample_pa_mpjpe_mm for m in with_3d},
            f"PA-MPJPE per sample ({report.kind}, {report.part})", "PA-MPJPE (mm)"))
        names = with_3d[0].joint_names
        same = [m for m in with_3d if m.joint_names == names]
        paths["per_joint"] = _write_png(out / "per_joint.png", draw_bar_chart(
            names, {m.name: m.per_joint_mpjpe_mm for m in same}, "MPJPE per joint (root-aligned)", "mm"))
    else:
        with_2d = [m for m in report.methods if m.num_2d]
        if with_2d:
            paths["error_hist"] = _write_png(out / "error_hist.png", draw_histogram(
                {m.name: m.per_sample_error_2d_px for m in with_2d}, f"2D error per sample ({report.kind})",
                "2D error (px)"))
    for name in ("error_hist", "per_joint"):  # a reused folder must not keep another evaluation's plot
        if name not in paths:
            (out / f"{name}.png").unlink(missing_ok=True)
    doc = report.to_json()
    doc["plots"] = {k: str(v) for k, v in paths.items()}
    paths["report"] = atomic_write_json(out / "report.json", doc, indent=2)
    return paths
