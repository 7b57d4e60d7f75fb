"""Batched SMPLify-X-style fitting of SMPL-X (body), MANO (hand) or FLAME (face) to 2D keypoints.

What is minimised, per sample ``b`` (the batch loss is the SUM over samples, so samples never interact
through the loss):

``E_b = sum_j w_j c_bj rho(||Pi(J_bj) - x_bj||^2)``                      2D data term (px^2)
``    + lambda_3d sum_j c3_bj ||(J_bj - J_b,root) - (X_bj - X_b,root)||^2``  optional 3D term (mm^2)
``    + lambda_pose P(theta_b) + lambda_shape ||beta_b||^2 + lambda_expr ||psi_b||^2``
``    + lambda_angle sum exp(s_k theta_bk)^2``                            (SMPL-X elbows / knees)

- ``rho`` is Geman-McClure, ``rho(r^2) = sigma^2 r^2 / (sigma^2 + r^2)`` with ``sigma`` in PIXELS
  (:attr:`FitConfig.sigma_px`; SMPLify-X's ``rho = 100``). It is applied to the squared 2D distance
  of each joint; residuals much larger than ``sigma`` saturate at ``sigma^2`` (outliers stop pulling).
- ``c_bj`` is the keypoint confidence (0 = missing), ``w_j`` is 1, or 0 outside the *torso* joints in
  the camera stage (:data:`LAYOUTS`).
- ``Pi`` is the pinhole camera of the image (:func:`neuralannot_cli.camera.project_perspective`), fixed;
  the model's ``transl_m`` is the camera translation (OpenCV camera frame, metres).
- ``P(theta)`` is ``||theta||^2`` on the axis-angle pose (SMPL-X body, MANO relative to the mean hand,
  FLAME jaw), or ``||z||^2`` on the code of a VPoser-style prior (:class:`~.priors.LatentPose`).

Initialisation (when ``init`` does not give it): root rotation from :attr:`FitConfig.root_candidates`
(the body/face/hand upright and facing the camera, ``(pi, 0, 0)``, and, for bodies, also turned
around, ``(0, 0, pi)``); stage 1 runs every candidate and keeps, per sample, the one with the lowest
loss (SMPLify's flipped-orientation check). Depth from the *torso height*: similar triangles
``t_z = f * L_3d / L_2d`` with ``L`` the summed lengths of the layout's depth pairs (body: shoulder-hip
on each side; hand: wrist to index/middle/pinky knuckles; face: outer eye corners and nose bridge)
measured on the model at its initial pose and in the visible keypoints; ``t_x, t_y`` put the visible
torso joints' centroid on its 2D centroid. Translation is optimised as ``transl = t0 + t0_z * delta``
(``delta`` dimensionless), so an Adam step moves a far and a near person by the same relative amount.

Stages (:func:`default_fit_config`; iterations are Adam steps, or L-BFGS function evaluations):

=========  ===========================================  ============  ======================================
part       stage: free parameters                        iterations    prior weights (pose, shape, expr, angle)
=========  ===========================================  ============  ======================================
body       1 camera: root, transl (torso joints)          60           -
body       2 pose: + body pose, betas                     120          (100, 10, -, 30)
body       3 refine: same, lower priors                   120          (20, 2, -, 10)
hand       1 camera: root, transl (palm joints)           60           -
hand       2 pose: + hand pose, betas                     120          (5, 10, -, -)
hand       3 refine                                       120          (1, 2, -, -)
face       1 camera: root, transl (nose + eye landmarks)  60           -
face       2 face: + jaw, expression, shape               150          (jaw 200, 20, 5, -)
face       3 refine                                       150          (jaw 50, 5, 1, -)
=========  ===========================================  ============  ======================================

``3D`` term weight (only when 3D targets are given): 0.1 per mm^2 in stages 2 and 3.

Optimisers (:attr:`FitConfig.optimizer`):

- ``'adam'`` (default): a fresh Adam per stage, learning rate :attr:`FitConfig.lr` (radians, betas,
  relative translation per step). Adam is element-wise and the loss is a sum over samples, so fitting
  a batch gives the same result as fitting each sample alone (up to float rounding): ``mode='batched'``
  and ``mode='per_sample'`` of :func:`fit` agree.
- ``'lbfgs'``: ``torch.optim.LBFGS`` with ``line_search_fn='strong_wolfe'`` (SMPLify-X). One L-BFGS
  instance sees all parameters of the batch, so its curvature history and its line search (one step
  length for the whole batch) COUPLE the samples: batched and per-sample results differ (both are valid
  local minima of the same per-sample objectives). Use Adam where exact independence matters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from neuralannot_cli.camera import project_perspective
from neuralannot_cli.fit.priors import LatentPose, angle_prior, l2_prior

__all__ = [
    "PartName",
    "TargetLayout",
    "LAYOUTS",
    "layout_for",
    "StageConfig",
    "FitConfig",
    "default_fit_config",
    "FitTargets",
    "FitResult",
    "gmof",
    "fit",
    "fit_batch",
]

PartName = Literal["body", "hand", "face"]

_MODEL_TYPE = {"body": "smplx", "hand": "mano", "face": "flame"}
_POSE_NAME = {"body": "body_pose_rotvecs", "hand": "hand_pose_rotvecs", "face": "jaw_rotvec"}
_POSE_SHAPE = {"body": (21, 3), "hand": (15, 3), "face": (3,)}


# ------------------------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class TargetLayout:
    """Which model joints the keypoints are, and the joints used by the camera stage.

    Attributes:
        joint_set: body-model joint set (:mod:`neuralannot_cli.body.joint_sets`).
        num_joints: use the first ``num_joints`` of the set (body: 23 of ``coco_wholebody_133``).
        torso: indices (into the used joints) fitted in the camera stage and used for ``t_x, t_y``.
        depth_pairs: ``(i, j)`` index pairs whose lengths give the depth (similar triangles).
        root: index of the root joint for the 3D term (root-relative), or ``None`` (no 3D term).
    """

    joint_set: str
    num_joints: int
    torso: tuple[int, ...]
    depth_pairs: tuple[tuple[int, int], ...]
    root: int | None = None


LAYOUTS: dict[str, TargetLayout] = {
    # COCO body 17 + feet 6: shoulders 5/6, hips 11/12; shoulder-hip on each side.
    "coco_wholebody_133": TargetLayout("coco_wholebody_133", 23, (5, 6, 11, 12), ((5, 11), (6, 12))),
    # COCO body 17 alone (3DPW's OpenPose keypoints, re-ordered by its loader): the same joints.
    "coco_17": TargetLayout("coco_17", 17, (5, 6, 11, 12), ((5, 11), (6, 12))),
    # H36M: pelvis 0, r_hip 1, l_hip 4, thorax 8, l_shoulder 11, r_shoulder 14.
    "h36m_17": TargetLayout("h36m_17", 17, (0, 1, 4, 8, 11, 14), ((11, 4), (14, 1)), root=0),
    # MPI-INF-3DHP 17: r_shoulder 2, l_shoulder 5, r_hip 8, l_hip 11, pelvis 14.
    "mpi3dhp_17": TargetLayout("mpi3dhp_17", 17, (2, 5, 8, 11, 14), ((5, 11), (2, 8)), root=14),
    # hand_21: wrist 0, index1 5, middle1 9, ring1 13, pinky1 17.
    "hand_21": TargetLayout("hand_21", 21, (0, 5, 9, 13, 17), ((0, 5), (0, 9), (0, 17)), root=0),
    # iBUG-68: nose 27..35, eyes 36..47; outer eye corners 36/45, nose bridge top 27 to tip 30.
    "face_68": TargetLayout("face_68", 68, tuple(range(27, 48)), ((36, 45), (27, 30))),
}
"""Layouts by the joint set of the keypoints."""


def layout_for(joint_set: str, num_joints: int | None = None) -> TargetLayout:
    """The :class:`TargetLayout` of keypoints in ``joint_set`` (``num_joints`` overrides how many are used)."""
    if joint_set not in LAYOUTS:
        raise ValueError(f"no fitting layout for joint set {joint_set!r}; known: {', '.join(LAYOUTS)}")
    lay = LAYOUTS[joint_set]
    if num_joints is not None and num_joints != lay.num_joints:
        if num_joints < max(max(lay.torso), max(max(p) for p in lay.depth_pairs)) + 1:
            raise ValueError(f"{joint_set}: {num_joints} joints are too few for the fitting layout")
        lay = replace(lay, num_joints=int(num_joints))
    return lay


# -------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class StageConfig:
    """One optimisation stage.

    Attributes:
        name: label (progress, history).
        iterations: Adam steps, or L-BFGS function evaluations (``max_eval`` budget).
        free: parameter groups optimised: ``'global'`` (root rotation + translation), ``'pose'`` (body /
            hand pose, or the FLAME jaw), ``'shape'`` (betas), ``'expression'`` (FLAME).
        torso_only: the 2D term uses only the layout's torso joints.
        pose_prior, shape_prior, expression_prior, angle_prior, joints_3d: term weights.
    """

    name: str
    iterations: int
    free: tuple[str, ...]
    torso_only: bool = False
    pose_prior: float = 0.0
    shape_prior: float = 0.0
    expression_prior: float = 0.0
    angle_prior: float = 0.0
    joints_3d: float = 0.0

    def __post_init__(self) -> None:
        bad = [g for g in self.free if g not in ("global", "pose", "shape", "expression")]
        if bad:
            raise ValueError(f"StageConfig {self.name}: unknown parameter groups {bad}")
        if self.iterations < 0:
            raise ValueError(f"StageConfig {self.name}: iterations must be >= 0, got {self.iterations}")


@dataclass(frozen=True)
class FitConfig:
    """Fitting configuration (see the module docstring).

    Attributes:
        stages: run in order.
        optimizer: ``'adam'`` or ``'lbfgs'``.
        sigma_px: Geman-McClure scale in pixels.
        lr: Adam learning rate (L-BFGS: its ``lr``, 1.0 by SMPLify-X).
        lbfgs_history: L-BFGS ``history_size``.
        root_candidates: initial root rotations (axis-angle) tried in stage 1 when ``init`` has no root.
    """

    stages: tuple[StageConfig, ...]
    optimizer: Literal["adam", "lbfgs"] = "adam"
    sigma_px: float = 100.0
    lr: float = 0.02
    lbfgs_history: int = 10
    root_candidates: tuple[tuple[float, float, float], ...] = ((math.pi, 0.0, 0.0),)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"FitConfig.optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if not self.sigma_px > 0:
            raise ValueError(f"FitConfig.sigma_px must be > 0, got {self.sigma_px}")
        if not self.root_candidates:
            raise ValueError("FitConfig.root_candidates must not be empty")


def default_fit_config(
    part: PartName,
    *,
    optimizer: Literal["adam", "lbfgs"] = "adam",
    iterations_scale: float = 1.0,
    use_3d: bool = False,
) -> FitConfig:
    """The documented stages of ``part`` (module docstring table).

    Args:
        iterations_scale: multiplies every stage's iteration count (e.g. 0.25 for quick tests).
        use_3d: weight 0.1 on the 3D joint term in stages 2 and 3 (auxiliary sets with 3D labels).
    """
    def it(n: int) -> int:
        return max(1, int(round(n * iterations_scale)))

    w3d = 0.1 if use_3d else 0.0
    if part == "body":
        stages = (
            StageConfig("camera", it(60), ("global",), torso_only=True),
            StageConfig("pose", it(120), ("global", "pose", "shape"), pose_prior=100.0, shape_prior=10.0,
                        angle_prior=30.0, joints_3d=w3d),
            StageConfig("refine", it(120), ("global", "pose", "shape"), pose_prior=20.0, shape_prior=2.0,
                        angle_prior=10.0, joints_3d=w3d),
        )
        return FitConfig(stages, optimizer=optimizer, sigma_px=100.0,
                         root_candidates=((math.pi, 0.0, 0.0), (0.0, 0.0, math.pi)))
    if part == "hand":
        stages = (
            StageConfig("camera", it(60), ("global",), torso_only=True),
            StageConfig("pose", it(120), ("global", "pose", "shape"), pose_prior=5.0, shape_prior=10.0, joints_3d=w3d),
            StageConfig("refine", it(120), ("global", "pose", "shape"), pose_prior=1.0, shape_prior=2.0, joints_3d=w3d),
        )
        return FitConfig(stages, optimizer=optimizer, sigma_px=50.0)
    if part == "face":
        stages = (
            StageConfig("camera", it(60), ("global",), torso_only=True),
            StageConfig("face", it(150), ("global", "pose", "expression", "shape"), pose_prior=200.0,
                        shape_prior=20.0, expression_prior=5.0),
            StageConfig("refine", it(150), ("global", "pose", "expression", "shape"), pose_prior=50.0,
                        shape_prior=5.0, expression_prior=1.0),
        )
        return FitConfig(stages, optimizer=optimizer, sigma_px=20.0)
    raise ValueError(f"part must be 'body', 'hand' or 'face', got {part!r}")


# -------------------------------------------------------------------------------------- targets/result


def _check(t: Any, shape: tuple[int | None, ...], name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise ValueError(f"FitTargets.{name} must be a torch.Tensor, got {type(t).__name__}")
    ok = t.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
    if not ok:
        dims = ", ".join("batch" if i == 0 else ("joints" if s is None else str(s)) for i, s in enumerate(shape))
        raise ValueError(f"FitTargets.{name} must have shape ({dims}), got {tuple(t.shape)}")
    return t


@dataclass(frozen=True)
class FitTargets:
    """What a batch is fitted to.

    Attributes:
        keypoints_2d_px: ``(batch, joints, 2)`` pixels of the original image.
        keypoints_conf: ``(batch, joints)`` weights in ``[0, 1]``; 0 = missing.
        focal_px, princpt_px: ``(batch, 2)`` the image's intrinsics.
        joints_3d_cam_mm: ``(batch, joints, 3)`` optional 3D joints (camera frame, mm; only their
            root-relative positions are used).
        joints_3d_conf: ``(batch, joints)`` optional weights of the 3D joints (default: all 1).
    """

    keypoints_2d_px: Tensor
    keypoints_conf: Tensor
    focal_px: Tensor
    princpt_px: Tensor
    joints_3d_cam_mm: Tensor | None = None
    joints_3d_conf: Tensor | None = None

    def __post_init__(self) -> None:
        kp = _check(self.keypoints_2d_px, (None, None, 2), "keypoints_2d_px")
        b, j = kp.shape[:2]
        _check(self.keypoints_conf, (b, j), "keypoints_conf")
        _check(self.focal_px, (b, 2), "focal_px")
        _check(self.princpt_px, (b, 2), "princpt_px")
        if self.joints_3d_cam_mm is not None:
            _check(self.joints_3d_cam_mm, (b, j, 3), "joints_3d_cam_mm")
        if self.joints_3d_conf is not None:
            _check(self.joints_3d_conf, (b, j), "joints_3d_conf")

    @property
    def batch(self) -> int:
        return int(self.keypoints_2d_px.shape[0])

    def select(self, index: slice | Tensor) -> FitTargets:
        """The targets of a subset of the batch."""
        def s(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        return FitTargets(s(self.keypoints_2d_px), s(self.keypoints_conf), s(self.focal_px), s(self.princpt_px),
                          s(self.joints_3d_cam_mm), s(self.joints_3d_conf))

    def to(self, device: torch.device | str, dtype: torch.dtype) -> FitTargets:
        def c(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype)

        return FitTargets(c(self.keypoints_2d_px), c(self.keypoints_conf), c(self.focal_px), c(self.princpt_px),
                          c(self.joints_3d_cam_mm), c(self.joints_3d_conf))


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters of a batch (detached).

    Attributes:
        params: :class:`~neuralannot_cli.body.BodyModel` keyword arguments, ``(batch, ...)`` each:
            body ``root_rotvec, body_pose_rotvecs, betas, transl_m``; hand ``root_rotvec,
            hand_pose_rotvecs, betas, transl_m``; face ``root_rotvec, jaw_rotvec, betas, expression,
            transl_m``. Camera frame (OpenCV), metres, radians.
        pose_code: ``(batch, Z)`` the prior code when a pose prior was used, else ``None``.
        keypoints_2d_px: ``(batch, joints, 2)`` projected fitted joints (the layout's joints).
        joints_3d_cam_m: ``(batch, joints, 3)``.
        reproj_err_px: ``(batch,)`` confidence-weighted mean 2D distance to the keypoints (NaN: none visible).
        loss: ``(batch,)`` final objective per sample.
        history: ``{stage name: (batch,) loss at the end of the stage}``.
    """

    params: dict[str, Tensor]
    pose_code: Tensor | None
    keypoints_2d_px: Tensor
    joints_3d_cam_m: Tensor
    reproj_err_px: Tensor
    loss: Tensor
    history: dict[str, Tensor] = field(default_factory=dict)

    @staticmethod
    def concat(results: list[FitResult]) -> FitResult:
        """Concatenate along the batch."""
        if not results:
            raise ValueError("FitResult.concat: no results")
        r0 = results[0]
        cat = lambda ts: torch.cat(ts, 0)  # noqa: E731
        return FitResult(
            params={k: cat([r.params[k] for r in results]) for k in r0.params},
            pose_code=None if r0.pose_code is None else cat([r.pose_code for r in results]),  # type: ignore[misc]
            keypoints_2d_px=cat([r.keypoints_2d_px for r in results]),
            joints_3d_cam_m=cat([r.joints_3d_cam_m for r in results]),
            reproj_err_px=cat([r.reproj_err_px for r in results]),
            loss=cat([r.loss for r in results]),
            history={k: cat([r.history[k] for r in results]) for k in r0.history},
        )


# ---------------------------------------------------------------------------------------------- math


def gmof(sq_dist: Tensor, sigma: float) -> Tensor:
    """Geman-McClure ``sigma^2 r^2 / (sigma^2 + r^2)`` of squared residuals ``r^2`` (any shape)."""
    s2 = sigma * sigma
    return s2 * sq_dist / (s2 + sq_dist)


def _weighted_mean_dist(pred_px: Tensor, kp_px: Tensor, conf: Tensor) -> Tensor:
    d = (pred_px - kp_px).norm(dim=-1)
    w = conf.clamp_min(0)
    den = w.sum(-1)
    return torch.where(den > 0, (d * w).sum(-1) / den.clamp_min(1e-12), torch.full_like(den, float("nan")))


class _Problem:
    """The free variables of one batch and how they map to body-model parameters."""

    def __init__(self, model: Any, part: PartName, layout: TargetLayout, targets: FitTargets,
                 init: Mapping[str, Tensor] | None, latent: LatentPose | None) -> None:
        self.model, self.part, self.layout, self.targets, self.latent = model, part, layout, targets, latent
        self._torso_mask: Tensor | None = None
        dev, dt = model.device, model.dtype
        b = targets.batch
        init = dict(init or {})
        zeros = lambda *s: torch.zeros((b, *s), device=dev, dtype=dt)  # noqa: E731

        def given(name: str, shape: tuple[int, ...]) -> Tensor | None:
            v = init.get(name)
            if v is None:
                return None
            v = torch.as_tensor(v, device=dev, dtype=dt)
            if tuple(v.shape) != (b, *shape):
                raise ValueError(f"init[{name!r}] must have shape {(b, *shape)}, got {tuple(v.shape)}")
            return v.clone()

        nb = model.num_betas
        self.pose_name = _POSE_NAME[part]
        pose0 = given(self.pose_name, _POSE_SHAPE[part])
        pose0 = zeros(*_POSE_SHAPE[part]) if pose0 is None else pose0
        self.root_given = given("root_rotvec", (3,)) is not None
        self.root = given("root_rotvec", (3,))
        if self.root is None:
            self.root = zeros(3)
        self.betas = given("betas", (nb,))
        self.betas = zeros(nb) if self.betas is None else self.betas
        self.expression = None
        if part == "face":
            e = given("expression", (model.num_expression_coeffs,))
            self.expression = zeros(model.num_expression_coeffs) if e is None else e
        t0 = given("transl_m", (3,))
        self.transl_given = t0 is not None
        self.transl0 = zeros(3) if t0 is None else t0
        self.delta = zeros(3)
        if latent is not None:
            self.code = latent.encode(pose0.reshape(b, -1, 3)).to(dev, dt)
            self.pose = None
        else:
            self.code = None
            self.pose = pose0

    def torso_mask(self) -> Tensor:
        """``(joints,)`` 1 on the layout's torso joints, 0 elsewhere; built once per device (no host-to-device
        copy in the optimisation loop)."""
        w = self.targets.keypoints_conf
        if self._torso_mask is None or self._torso_mask.device != w.device or self._torso_mask.dtype != w.dtype:
            mask = torch.zeros(w.shape[-1], dtype=w.dtype)
            mask[list(self.layout.torso)] = 1.0
            self._torso_mask = mask.to(w.device)
        return self._torso_mask

    # parameter groups -> leaf tensors
    def leaves(self, groups: tuple[str, ...]) -> list[Tensor]:
        out: list[Tensor] = []
        if "global" in groups:
            out += [self.root, self.delta]
        if "pose" in groups:
            out.append(self.code if self.latent is not None else self.pose)  # type: ignore[arg-type]
        if "shape" in groups:
            out.append(self.betas)
        if "expression" in groups and self.expression is not None:
            out.append(self.expression)
        return out

    def all_leaves(self) -> list[Tensor]:
        return self.leaves(("global", "pose", "shape", "expression"))

    def pose_rotvecs(self) -> Tensor:
        if self.latent is not None:
            return self.latent.decode(self.code).to(self.model.dtype)  # type: ignore[arg-type]
        return self.pose  # type: ignore[return-value]

    def transl(self) -> Tensor:
        return self.transl0 + self.transl0[:, 2:3].abs().clamp_min(1e-3) * self.delta

    def params(self) -> dict[str, Tensor]:
        p = {"root_rotvec": self.root, self.pose_name: self.pose_rotvecs(), "betas": self.betas,
             "transl_m": self.transl()}
        if self.expression is not None:
            p["expression"] = self.expression
        return p

    def joints(self, params: dict[str, Tensor] | None = None) -> Tensor:
        out = self.model(**(params or self.params()), full_mesh=False)  # joints only (SMPL-X: joint-support vertices)
        return self.model.joints_in(out, self.layout.joint_set)[:, : self.layout.num_joints]

    def losses(self, stage: StageConfig, sigma_px: float) -> Tensor:
        """``(batch,)`` per-sample objective of ``stage``."""
        tg = self.targets
        params = self.params()
        joints = self.joints(params)
        proj = project_perspective(joints, tg.focal_px, tg.princpt_px)
        sq = (proj - tg.keypoints_2d_px).pow(2).sum(-1)
        w = tg.keypoints_conf
        if stage.torso_only:
            w = w * self.torso_mask()
        loss = (w * gmof(sq, sigma_px)).sum(-1)
        if stage.joints_3d > 0 and tg.joints_3d_cam_mm is not None and self.layout.root is not None:
            r = self.layout.root
            pred_mm = (joints - joints[:, r : r + 1]) * 1000.0
            gt_mm = tg.joints_3d_cam_mm - tg.joints_3d_cam_mm[:, r : r + 1]
            c3 = tg.joints_3d_conf if tg.joints_3d_conf is not None else torch.ones_like(w)
            loss = loss + stage.joints_3d * (c3 * (pred_mm - gt_mm).pow(2).sum(-1)).sum(-1)
        if stage.pose_prior > 0:
            term = LatentPose.prior_term(self.code) if self.latent is not None else l2_prior(params[self.pose_name])
            loss = loss + stage.pose_prior * term
        if stage.shape_prior > 0:
            loss = loss + stage.shape_prior * l2_prior(self.betas)
        if stage.expression_prior > 0 and self.expression is not None:
            loss = loss + stage.expression_prior * l2_prior(self.expression)
        if stage.angle_prior > 0 and self.part == "body":
            loss = loss + stage.angle_prior * angle_prior(params["body_pose_rotvecs"])
        return loss

    @torch.no_grad()
    def init_camera(self) -> None:
        """Depth from similar triangles on the depth pairs, ``t_x, t_y`` from the torso centroid."""
        if self.transl_given:
            return
        tg, lay = self.targets, self.layout
        params = self.params()
        params["transl_m"] = torch.zeros_like(params["transl_m"])
        j3 = self.joints(params)  # (B, J, 3) at the origin
        kp, conf = tg.keypoints_2d_px, tg.keypoints_conf > 0
        f = tg.focal_px.mean(-1)
        i = torch.tensor([p[0] for p in lay.depth_pairs], device=kp.device)
        k = torch.tensor([p[1] for p in lay.depth_pairs], device=kp.device)
        vis = (conf[:, i] & conf[:, k]).to(kp.dtype)
        len2d = ((kp[:, i] - kp[:, k]).norm(dim=-1) * vis).sum(-1)
        len3d = ((j3[:, i] - j3[:, k]).norm(dim=-1) * vis).sum(-1)
        # fallback: RMS spread of all visible keypoints vs the same joints' 3D spread
        cw = conf.to(kp.dtype)
        n = cw.sum(-1).clamp_min(1.0)
        c2 = (kp * cw[..., None]).sum(1) / n[:, None]
        c3 = (j3 * cw[..., None]).sum(1) / n[:, None]
        spread2d = (((kp - c2[:, None]).pow(2).sum(-1) * cw).sum(-1) / n).sqrt()
        spread3d = (((j3 - c3[:, None]).pow(2).sum(-1) * cw).sum(-1) / n).sqrt()
        use_pairs = len2d > 1e-3
        ratio = torch.where(use_pairs, len3d / len2d.clamp_min(1e-3), spread3d / spread2d.clamp_min(1e-3))
        tz = (f * ratio).clamp(0.1, 1e3)
        tz = torch.where(torch.isfinite(tz), tz, torch.full_like(tz, 5.0))
        # centroid of the visible torso joints (all visible keypoints if no torso joint is visible)
        tmask = torch.zeros_like(cw)
        tmask[:, list(lay.torso)] = 1.0
        tw = cw * tmask
        tw = torch.where(tw.sum(-1, keepdim=True) > 0, tw, cw)
        tn = tw.sum(-1).clamp_min(1.0)
        ct2 = (kp * tw[..., None]).sum(1) / tn[:, None]
        ct3 = (j3 * tw[..., None]).sum(1) / tn[:, None]
        depth = tz + ct3[:, 2]
        txy = (ct2 - tg.princpt_px) / tg.focal_px * depth[:, None] - ct3[:, :2]
        self.transl0 = torch.stack([txy[:, 0], txy[:, 1], tz], -1).to(self.transl0.dtype)

    def detach_(self) -> None:
        for name in ("root", "delta", "betas", "expression", "code", "pose"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.detach().clone())

    def select_(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (after the root-candidate stage)."""
        for name in ("root", "delta", "betas", "expression", "code", "pose", "transl0"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.detach()[index].clone())
        self.targets = self.targets.select(index)


def _run_stage(problem: _Problem, stage: StageConfig, config: FitConfig) -> Tensor:
    """Optimise one stage in place; returns the final ``(batch,)`` loss."""
    problem.detach_()
    leaves = problem.leaves(stage.free)
    for t in leaves:
        t.requires_grad_(True)
    if stage.iterations > 0 and leaves:
        if config.optimizer == "adam":
            opt = torch.optim.Adam(leaves, lr=config.lr)
            for _ in range(stage.iterations):
                opt.zero_grad(set_to_none=True)
                problem.losses(stage, config.sigma_px).sum().backward()
                opt.step()
        else:
            opt = torch.optim.LBFGS(leaves, lr=1.0, max_iter=stage.iterations, max_eval=stage.iterations * 5 // 4,
                                    history_size=config.lbfgs_history, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure() -> Tensor:
                opt.zero_grad(set_to_none=True)
                loss = problem.losses(stage, config.sigma_px).sum()
                loss.backward()
                return loss

            opt.step(closure)
    problem.detach_()
    with torch.no_grad():
        return problem.losses(stage, config.sigma_px)


def fit_batch(
    model: Any,
    targets: FitTargets,
    config: FitConfig,
    *,
    part: PartName,
    layout: TargetLayout,
    init: Mapping[str, Tensor] | None = None,
    pose_prior: Any | None = None,
    mirror_prior: bool = False,
) -> FitResult:
    """Fit one batch jointly (the samples stay independent; see the module docstring).

    Args:
        model: :class:`~neuralannot_cli.body.BodyModel` of the part (``smplx`` / ``mano`` / ``flame``).
        targets: keypoints (the first ``layout.num_joints`` joints of ``layout.joint_set``) and camera.
        config: stages and optimiser.
        part: ``'body'``, ``'hand'`` or ``'face'``.
        layout: the keypoints' :class:`TargetLayout`.
        init: optional initial parameters (BodyModel keyword names, ``(batch, ...)``); given
            ``root_rotvec`` skips the root candidates, given ``transl_m`` skips the depth initialisation.
        pose_prior: optional :class:`~neuralannot_cli.nets.prior.PosePrior` for the body / hand pose.
        mirror_prior: the prior is for the other side (a right-hand prior for a left MANO).
    """
    if part not in _MODEL_TYPE:
        raise ValueError(f"part must be 'body', 'hand' or 'face', got {part!r}")
    if getattr(model, "model_type", None) != _MODEL_TYPE[part]:
        raise ValueError(f"part {part!r} needs a {_MODEL_TYPE[part]} model, got {getattr(model, 'model_type', None)!r}")
    j = int(targets.keypoints_2d_px.shape[1])
    if j != layout.num_joints:
        raise ValueError(f"keypoints_2d_px has {j} joints but layout {layout.joint_set} uses {layout.num_joints}")
    latent = None
    if pose_prior is not None and part != "face":
        latent = LatentPose(pose_prior, mirror=mirror_prior)
        if latent.num_joints != _POSE_SHAPE[part][0]:
            raise ValueError(f"pose prior decodes {latent.num_joints} joints, part {part} needs {_POSE_SHAPE[part][0]}")
    targets = targets.to(model.device, model.dtype)
    b = targets.batch
    history: dict[str, Tensor] = {}
    stages = list(config.stages)
    k = len(config.root_candidates)
    init_d = dict(init or {})
    use_candidates = init_d.get("root_rotvec") is None and k > 1 and stages and "global" in stages[0].free
    if use_candidates:
        # replicate the batch once per candidate root, run stage 1, keep the best candidate per sample
        rep = {name: torch.as_tensor(v, device=model.device).repeat_interleave(k, 0)
               for name, v in init_d.items() if v is not None}
        cand = torch.tensor(config.root_candidates, device=model.device, dtype=model.dtype)
        rep["root_rotvec"] = cand.repeat(b, 1)
        idx = torch.arange(b, device=model.device).repeat_interleave(k)
        problem = _Problem(model, part, layout, targets.select(idx), rep, latent)
        problem.init_camera()
        loss = _run_stage(problem, stages[0], config).reshape(b, k)
        best = loss.argmin(-1)
        problem.select_(torch.arange(b, device=model.device) * k + best)
        history[stages[0].name] = loss.gather(1, best[:, None])[:, 0]
        stages = stages[1:]
    else:
        if init_d.get("root_rotvec") is None:
            init_d["root_rotvec"] = torch.tensor(config.root_candidates[0], device=model.device,
                                                 dtype=model.dtype).expand(b, 3)
        problem = _Problem(model, part, layout, targets, init_d, latent)
        problem.init_camera()
    loss = None
    for stage in stages:
        loss = _run_stage(problem, stage, config)
        history[stage.name] = loss
    if loss is None:
        loss = (history[config.stages[-1].name] if config.stages
                else torch.zeros(b, device=model.device, dtype=model.dtype))
    with torch.no_grad():
        params = {n: t.detach().clone() for n, t in problem.params().items()}
        joints = problem.joints(params)
        proj = project_perspective(joints, problem.targets.focal_px, problem.targets.princpt_px)
        err = _weighted_mean_dist(proj, problem.targets.keypoints_2d_px, problem.targets.keypoints_conf)
    return FitResult(params=params, pose_code=None if problem.code is None else problem.code.detach().clone(),
                     keypoints_2d_px=proj, joints_3d_cam_m=joints, reproj_err_px=err, loss=loss.detach(),
                     history=history)


def fit(
    model: Any,
    targets: FitTargets,
    config: FitConfig,
    *,
    part: PartName,
    layout: TargetLayout,
    init: Mapping[str, Tensor] | None = None,
    pose_prior: Any | None = None,
    mirror_prior: bool = False,
    mode: Literal["batched", "per_sample"] = "batched",
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> FitResult:
    """Fit all samples of ``targets``: in chunks of ``batch_size`` (``'batched'``) or one at a time
    (``'per_sample'``, SMPLify-X's way, for comparison). ``progress(n)`` is called with the number of
    samples finished so far. Arguments as :func:`fit_batch`."""
    if mode not in ("batched", "per_sample"):
        raise ValueError(f"mode must be 'batched' or 'per_sample', got {mode!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = targets.batch
    step = 1 if mode == "per_sample" else batch_size
    results: list[FitResult] = []
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        sub_init = None if init is None else {k: v[sl] for k, v in init.items() if v is not None}
        results.append(fit_batch(model, targets.select(sl), config, part=part, layout=layout, init=sub_init,
                                 pose_prior=pose_prior, mirror_prior=mirror_prior))
        if progress is not None:
            progress(sl.stop)
    return FitResult.concat(results)
