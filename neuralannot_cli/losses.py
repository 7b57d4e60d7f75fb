"""NeuralAnnot training losses (pure tensor math).

The paper (Moon, Choi & Lee, "NeuralAnnot", CVPRW 2022, Sec. 3), per sample::

    L_ax = ||P3D_hat - P3D||_1 + lambda_ax * sum(theta_hat^2)                                   (stage 1)
    L_tg = ||P2D_hat - P2D||_1 + 1_tg * lambda_tg * sum(theta_hat^2)
           + (1 - 1_tg) * (||P3D_hat - P3D||_1 + sum(||theta_hat - theta_star||_1))          (stage 2)

``1_tg`` is 1 for a sample of the target (2D-only) set and 0 for a sample of an auxiliary set, which in stage 2
comes with its 3D joints and the stage-1 pseudo-GT ``theta_star``. Configurable weights (:class:`LossWeights`)
multiply each term: ``w_2d``, ``w_3d``, ``w_param`` (1, 1, 1 would be the formula as printed) and ``lambda_ax``,
``lambda_tg``.

Units and reductions (all documented defaults were chosen for these units)
------------------------------------------------------------------------
- 3D joints in METRES (the body model's unit; divide ``joints_3d_cam_mm`` by 1000), compared after root
  alignment (:func:`root_align`: the root joint, or the midpoint of two joints such as the hips, moved to 0).
- 2D keypoints in CROP-NORMALISED units ``px / input_size`` (crop pixels divided by the crop side), so the
  weights do not depend on the input size: :func:`loss_target` takes crop pixels and ``input_size``.
- Keypoint term ``||P_hat - P||_1``: per joint, the L1 norm of the difference vector (sum over x, y(, z)),
  averaged over the joints weighted by their visibility / confidence ``conf`` (:func:`keypoint_l1`).
  Joints with ``conf <= 0`` or a non-finite coordinate or confidence are masked out with ``torch.where`` (never
  multiplied: ``0 * NaN`` is NaN), so missing keypoints stored as NaN give finite losses and gradients.
- ``sum(theta^2)`` and ``sum(|theta_hat - theta_star|)``: sums over the ``K`` articulated joints and the 3
  axis-angle components (the root rotation is excluded: its rotation vector jumps between ``+pi`` and ``-pi``
  for the upright people of an OpenCV camera, and the 3D / 2D joints constrain it), then the mean over the
  samples the term applies to (:func:`pose_sq_reg`, :func:`param_l1`).
- Each masked term is the mean over the samples it applies to (target samples for the ``lambda_tg`` term,
  auxiliary samples for the 3D and parameter terms), so the weights keep their meaning whatever the batch mix.
  A term that applies to no sample of the batch is 0.

Default weights (:class:`LossWeights`) and why
----------------------------------------------
- ``w_3d = 1``: the 3D unit (metres) as printed.
- ``w_2d = 10`` (body): a 1 cm 3D error is 0.01 per coordinate, the same error seen by the camera of a body
  filling 80 % of the crop ~0.005 per crop-normalised coordinate, so ``w_2d = 1`` already weighs 2D half as much
  as 3D; on target samples the 2D term is the only data term, and the network under-fitted it. Measured (512 +
  512 synthetic images, 32-px crops, resnet18, 30 + 60 epochs, lr 1e-3 x0.1 at stage-2 epoch 50, hidden-GT
  target PA-MPJPE / 2D error, one run each): ``w_2d = 4`` 135.3 mm / 6.17 px, ``10`` 112.2 mm / 4.35 px (better on
  every one of the 23 joints; aux PA-MPJPE 89.6 -> 80.9 mm, aux root-aligned MPJPE 107.1 -> 116.8 mm); with 30 +
  30 epochs ``1`` 154.2 mm, ``4`` 149.7 mm. Caveat measured later: repeats of the ``w_2d = 10`` run with
  another training seed or a rounding-level code change gave 128.9 and 137.4 mm, so single 512-image runs
  carry +-13 mm of noise; the 2,000-image run with ``w_2d = 10`` (120.4 mm) vs ``1`` (152.9 mm) supports the
  change. The hand keeps ``w_2d = 1`` (not measured).
- ``w_root = 0``: the root's share of the parameter term is off by default. Measured as above with ``w_root =
  0.1``: ``w_2d = 4`` aux MPJPE 107.1 -> 92.0 mm and target 135.3 -> 133.1 mm, but with ``w_2d = 10`` target
  112.2 -> 135.6 mm and aux MPJPE unchanged (116.8 -> 116.9); single runs, not conclusive.
- ``w_param = 0.05``: the parameter sum runs over ``K * 3`` = 63 (body) / 45 (hand) components, the keypoint
  term over the 3 coordinates of one joint; 0.05 ~ 3 / 63 gives the per-component weighting of the field's
  implementations (Hand4Whole averages every term over its elements with unit weights).
- ``lambda_ax = 1e-3``: a weak pull towards the rest pose; with 3D supervision it only settles the rotations
  the joints do not determine (bone twists).
- ``lambda_tg = 1e-3``: the same weak pull on target samples; the learned prior of stage 2 keeps their poses
  plausible. Measured (128 + 128 synthetic images, 32-px crops, 100 + 100 epochs, hidden-GT target PA-MPJPE /
  2D error): ``1e-2`` 155.0 mm / 7.38 px (the rest pose, 206 mm here, pulls ambiguous limbs in), ``1e-3``
  128.2 mm / 5.78 px, ``1e-4`` 128.6 mm / 7.30 px; the SMPLify-X-style baseline 153.3 mm / 1.24 px.
- Hands (:meth:`LossWeights.for_part` ``('hand')``): ``w_3d = 10``. Metres are not scale-free (a hand is ~0.2 m,
  a body ~1.7 m) while the crop-normalised 2D units are; weighting the hand's 3D term ten times keeps its balance
  against ``sum(theta^2)`` and the parameter term the same as for the body (and against the 2D term as the body's
  was with ``w_2d = 1``; the hand keeps that, unmeasured). (With ``w_3d = 1`` the
  rest-pose pull of ``lambda_ax`` is as large as a 5 mm hand-joint error and visibly biases stage 1.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = [
    "LossWeights",
    "keypoint_l1",
    "root_rotmat_l1",
    "keypoint_l1_per_sample",
    "root_align",
    "keypoint_3d_l1_root_aligned",
    "pose_sq_reg",
    "param_l1",
    "loss_aux",
    "loss_target",
]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the NeuralAnnot losses (units in the module docstring).

    Attributes:
        lambda_ax: weight of ``sum(theta_hat^2)`` in ``L_ax`` (stage 1).
        lambda_tg: weight of ``sum(theta_hat^2)`` on target samples in ``L_tg`` (stage 2).
        w_3d: weight of the root-aligned 3D keypoint L1 (metres).
        w_2d: weight of the 2D keypoint L1 (crop-normalised, ``px / input_size``).
        w_param: weight of ``sum(|theta_hat - theta_star|)`` on auxiliary samples in ``L_tg``.
        w_root: weight of ``sum |R_root_hat - R_root_star|`` (the 9 rotation-matrix entries) on auxiliary
            samples in ``L_tg``: the global orientation's share of ``sum |theta_hat - theta_star|`` (the field's
            parameter losses include the root; as a matrix L1 because axis-angle wraps at pi). 0 = articulated
            pose only.
        w_shape: weight of ``sum(beta_hat^2)`` on all samples in ``L_tg`` (stage 2). Not in the paper's
            formula: an addition (as SMPLify-X's and Hand4Whole-style training's shape prior) because on 2D-only
            target samples shape and depth trade off freely; without it tiny CPU runs drift to |beta| > 20 and
            a camera kilometres away. 0 restores the paper's loss exactly.
    """

    lambda_ax: float = 1e-3
    lambda_tg: float = 1e-3
    w_3d: float = 1.0
    w_2d: float = 10.0
    w_param: float = 0.05
    w_root: float = 0.0
    w_shape: float = 1e-3

    @classmethod
    def for_part(cls, part: Literal["body", "hand"], **overrides: float) -> LossWeights:
        """Documented defaults of ``part`` (body: the class defaults; hand: ``w_3d = 10``, ``w_2d = 1``), with
        ``overrides``."""
        if part not in ("body", "hand"):
            raise ValueError(f"LossWeights.for_part: part must be 'body' or 'hand', got {part!r}")
        base = {"w_3d": 10.0, "w_2d": 1.0} if part == "hand" else {}
        return cls(**{**base, **overrides})

    def __post_init__(self) -> None:
        for name in ("lambda_ax", "lambda_tg", "w_3d", "w_2d", "w_param", "w_root", "w_shape"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
                raise ValueError(f"LossWeights: {name} must be a finite number >= 0, got {value!r}")


# ------------------------------------------------------------------------------------------- checks


def _check_points(x: object, name: str, fn: str, dims: tuple[int, ...] = (2, 3)) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] not in dims:
        want = " or ".join(f"(batch, joints, {d})" for d in dims)
        raise ValueError(f"{fn}: {name} must have shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_same(a: torch.Tensor, b: torch.Tensor, names: str, fn: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {names} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _check_conf(conf: object, shape: tuple[int, int], fn: str, name: str = "conf") -> torch.Tensor:
    if not isinstance(conf, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(conf).__name__}")
    if tuple(conf.shape) not in (shape, (*shape, 1)):
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {tuple(conf.shape)}")
    return conf.reshape(shape)


def _check_mask(mask: object, batch: int, fn: str, name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != (batch,):
        raise ValueError(f"{fn}: {name} must have shape ({batch},), got {tuple(mask.shape)}")
    return mask.bool()


def _check_pose(x: object, name: str, fn: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"{fn}: {name} must have shape (batch, joints, 3), got {tuple(x.shape)}")
    return x


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values (batch,)`` over ``mask`` (all if None); 0 when the mask is empty."""
    if mask is None:
        return values.mean() if values.numel() else values.sum()
    mask = mask.to(values.device)
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)


# ------------------------------------------------------------------------------------------ keypoints


def _joint_errors(pred: torch.Tensor, target: torch.Tensor, conf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-joint L1 norms ``(batch, joints)`` and masked weights ``(batch, joints)`` (0 where invalid)."""
    conf = conf.to(pred.dtype)
    valid = torch.isfinite(target).all(dim=-1) & torch.isfinite(conf) & (conf > 0)
    weight = torch.where(valid, conf, torch.zeros_like(conf))
    safe_target = torch.where(valid.unsqueeze(-1), target.to(pred.dtype), pred.detach())
    err = (pred - safe_target).abs().sum(dim=-1)
    return torch.where(valid, err, torch.zeros_like(err)), weight


def keypoint_l1_per_sample(pred: torch.Tensor, target: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """Per-sample confidence-weighted mean over joints of the per-joint L1 norm.

    Args:
        pred: ``(batch, joints, D)`` predicted keypoints, ``D`` = 2 or 3 (must be finite).
        target: ``(batch, joints, D)``; entries of masked joints may be NaN / inf.
        conf: ``(batch, joints)`` visibility / confidence ``>= 0``; ``conf <= 0`` or non-finite = missing.

    Returns:
        ``(batch,)``: ``sum_j conf_j * sum_d |pred - target| / sum_j conf_j``; 0 for a sample with no valid joint.
    """
    fn = "keypoint_l1_per_sample"
    pred = _check_points(pred, "pred", fn)
    target = _check_points(target, "target", fn)
    _check_same(pred, target, "pred and target", fn)
    conf = _check_conf(conf, tuple(pred.shape[:2]), fn)
    err, weight = _joint_errors(pred, target, conf)
    return (weight * err).sum(dim=-1) / weight.sum(dim=-1).clamp_min(torch.finfo(pred.dtype).tiny)


def keypoint_l1(
    pred: torch.Tensor, target: torch.Tensor, conf: torch.Tensor, sample_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Confidence-weighted mean of the per-joint L1 norm ``sum_d |pred - target|`` over the batch's joints.

    ``sum_{b,j} w_bj * sum_d |pred - target|_bjd / sum_{b,j} w_bj`` with ``w = conf`` on valid joints of the
    samples in ``sample_mask`` and 0 elsewhere (missing / NaN joints are masked with ``torch.where``).

    Args:
        pred: ``(batch, joints, D)``, ``D`` = 2 or 3.
        target: ``(batch, joints, D)``; masked entries may be non-finite.
        conf: ``(batch, joints)``.
        sample_mask: optional ``(batch,)`` bool: only these samples count.

    Returns:
        Scalar; 0 when no joint is valid.
    """
    fn = "keypoint_l1"
    pred = _check_points(pred, "pred", fn)
    target = _check_points(target, "target", fn)
    _check_same(pred, target, "pred and target", fn)
    conf = _check_conf(conf, tuple(pred.shape[:2]), fn)
    err, weight = _joint_errors(pred, target, conf)
    if sample_mask is not None:
        mask = _check_mask(sample_mask, pred.shape[0], fn, "sample_mask").to(pred.device)
        weight = torch.where(mask.unsqueeze(-1), weight, torch.zeros_like(weight))
    return (weight * err).sum() / weight.sum().clamp_min(torch.finfo(pred.dtype).tiny)


def root_align(joints: torch.Tensor, root: int | tuple[int, int]) -> torch.Tensor:
    """Subtract the root: ``joints - joints[:, root]`` or ``joints - (joints[:, i] + joints[:, k]) / 2``.

    Args:
        joints: ``(batch, joints, D)``, D = 2 or 3.
        root: joint index, or a pair of indices whose midpoint is the root (e.g. the two hips).

    Returns:
        ``(batch, joints, D)``. A non-finite root makes the whole sample non-finite; the losses here leave
        such samples out (:func:`keypoint_3d_l1_root_aligned`).
    """
    fn = "root_align"
    joints = _check_points(joints, "joints", fn)
    return joints - _root_point(joints, root, fn)


def _root_indices(root: int | tuple[int, int], num_joints: int, fn: str) -> tuple[int, ...]:
    idx = (root,) if isinstance(root, int) else tuple(root)
    if len(idx) not in (1, 2) or not all(isinstance(i, int) and -num_joints <= i < num_joints for i in idx):
        raise ValueError(f"{fn}: root must be a joint index or a pair of indices in [0, {num_joints}), got {root!r}")
    return idx


def _take(x: torch.Tensor, idx: tuple[int, ...]) -> torch.Tensor:
    """``x[:, idx]`` by slices (a Python-list index is a host-to-device upload on every call)."""
    n = x.shape[1]
    return torch.cat([x[:, i % n : i % n + 1] for i in idx], dim=1)


def _root_point(joints: torch.Tensor, root: int | tuple[int, int], fn: str) -> torch.Tensor:
    idx = _root_indices(root, joints.shape[1], fn)
    return _take(joints, idx).mean(dim=1, keepdim=True)


def _root_conf(conf: torch.Tensor, target: torch.Tensor, root: int | tuple[int, int], fn: str) -> torch.Tensor:
    """``(batch,)`` bool: the target root (all its joints) is present and finite."""
    idx = _root_indices(root, target.shape[1], fn)
    c = _take(conf, idx)
    ok = torch.isfinite(c) & (c > 0) & torch.isfinite(_take(target, idx)).all(dim=-1)
    return ok.all(dim=-1)


def keypoint_3d_l1_root_aligned(
    joints_pred_m: torch.Tensor,
    joints_target_m: torch.Tensor,
    conf: torch.Tensor,
    root: int | tuple[int, int],
    sample_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`keypoint_l1` of root-aligned 3D joints; samples whose target root is missing are left out."""
    fn = "keypoint_3d_l1_root_aligned"
    joints_pred_m = _check_points(joints_pred_m, "joints_pred_m", fn, (3,))
    joints_target_m = _check_points(joints_target_m, "joints_target_m", fn, (3,))
    _check_same(joints_pred_m, joints_target_m, "joints_pred_m and joints_target_m", fn)
    conf = _check_conf(conf, tuple(joints_pred_m.shape[:2]), fn)
    has_root = _root_conf(conf, joints_target_m, root, fn)
    if sample_mask is not None:
        has_root = has_root & _check_mask(sample_mask, joints_pred_m.shape[0], fn, "sample_mask").to(has_root.device)
    pred_rel = root_align(joints_pred_m, root)
    target_root = _root_point(joints_target_m, root, fn)
    target_root = torch.where(has_root[:, None, None], target_root, torch.zeros_like(target_root))
    return keypoint_l1(pred_rel, joints_target_m - target_root, conf, has_root)


# ------------------------------------------------------------------------------------------ pose terms


def pose_sq_reg(pose_rotvecs: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_{k,d} theta_kd^2`` per sample, averaged over the batch (or the samples in ``sample_mask``).

    Args:
        pose_rotvecs: ``(batch, K, 3)`` articulated joint rotations (axis-angle, radians; no root).
        sample_mask: optional ``(batch,)`` bool.

    Returns:
        Scalar (0 when the mask is empty).
    """
    fn = "pose_sq_reg"
    pose_rotvecs = _check_pose(pose_rotvecs, "pose_rotvecs", fn)
    mask = None if sample_mask is None else _check_mask(sample_mask, pose_rotvecs.shape[0], fn, "sample_mask")
    return _masked_mean(pose_rotvecs.square().sum(dim=(1, 2)), mask)


def shape_sq_reg(betas: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_k beta_k^2`` per sample, averaged over the batch (or the samples in ``sample_mask``).

    Args:
        betas: ``(batch, num_betas)`` shape coefficients.
        sample_mask: optional ``(batch,)`` bool.
    """
    fn = "shape_sq_reg"
    if not isinstance(betas, torch.Tensor):
        raise TypeError(f"{fn}: betas must be a torch.Tensor, got {type(betas).__name__}")
    if betas.dim() != 2:
        raise ValueError(f"{fn}: betas must have shape (batch, num_betas), got {tuple(betas.shape)}")
    mask = None if sample_mask is None else _check_mask(sample_mask, betas.shape[0], fn, "sample_mask")
    return _masked_mean(betas.square().sum(dim=1), mask)


def _l1_to_star(pred: torch.Tensor, star: torch.Tensor, sample_mask: torch.Tensor | None, fn: str) -> torch.Tensor:
    """``sum |pred - star|`` over the two trailing dims per sample, averaged over the samples that count: those in
    ``sample_mask`` whose ``star`` is finite (the others get a zero, gradient-free term)."""
    finite = torch.isfinite(star).all(dim=(1, 2))
    mask = finite if sample_mask is None else finite & _check_mask(sample_mask, pred.shape[0], fn, "sample_mask").to(
        finite.device)
    star = torch.where(mask[:, None, None], star.to(pred.dtype), pred.detach())
    return _masked_mean((pred - star).abs().sum(dim=(1, 2)), mask)


def param_l1(
    pose_rotvecs: torch.Tensor, pose_rotvecs_star: torch.Tensor, sample_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_{k,d} |theta_hat - theta_star|`` per sample, averaged over the batch (or ``sample_mask``).

    Samples whose ``theta_star`` has a non-finite entry are left out (masked with ``torch.where``).

    Args:
        pose_rotvecs: ``(batch, K, 3)`` predicted rotations.
        pose_rotvecs_star: ``(batch, K, 3)`` stage-1 pseudo-GT.
        sample_mask: optional ``(batch,)`` bool.

    Returns:
        Scalar (0 when no sample counts).
    """
    fn = "param_l1"
    pose_rotvecs = _check_pose(pose_rotvecs, "pose_rotvecs", fn)
    pose_rotvecs_star = _check_pose(pose_rotvecs_star, "pose_rotvecs_star", fn)
    _check_same(pose_rotvecs, pose_rotvecs_star, "pose_rotvecs and pose_rotvecs_star", fn)
    return _l1_to_star(pose_rotvecs, pose_rotvecs_star, sample_mask, fn)


def root_rotmat_l1(
    root_rotmat: torch.Tensor, root_rotmat_star: torch.Tensor, sample_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_{ij} |R_hat - R_star|_ij`` per sample, averaged over the batch (or ``sample_mask``).

    Samples whose ``root_rotmat_star`` has a non-finite entry are left out.

    Args:
        root_rotmat: ``(batch, 3, 3)`` predicted global orientation.
        root_rotmat_star: ``(batch, 3, 3)`` stage-1 pseudo-GT (in the same, possibly augmented, camera).
        sample_mask: optional ``(batch,)`` bool.

    Returns:
        Scalar (0 when no sample counts).
    """
    fn = "root_rotmat_l1"
    for x, name in ((root_rotmat, "root_rotmat"), (root_rotmat_star, "root_rotmat_star")):
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or tuple(x.shape[1:]) != (3, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{fn}: {name} must have shape (batch, 3, 3), got {got}")
    _check_same(root_rotmat, root_rotmat_star, "root_rotmat and root_rotmat_star", fn)
    return _l1_to_star(root_rotmat, root_rotmat_star, sample_mask, fn)


# ------------------------------------------------------------------------------------------ the losses


def loss_aux(
    joints_3d_pred_m: torch.Tensor,
    joints_3d_m: torch.Tensor,
    joints_3d_conf: torch.Tensor,
    pose_rotvecs: torch.Tensor,
    *,
    root: int | tuple[int, int],
    weights: LossWeights = LossWeights(),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stage-1 loss ``L_ax = w_3d * ||P3D_hat - P3D||_1 + lambda_ax * sum(theta_hat^2)``.

    Args:
        joints_3d_pred_m: ``(batch, J, 3)`` model joints in the aux set's joint set, metres (any translation).
        joints_3d_m: ``(batch, J, 3)`` GT joints, metres, same frame orientation (missing ones may be NaN).
        joints_3d_conf: ``(batch, J)`` validity / confidence.
        pose_rotvecs: ``(batch, K, 3)`` predicted articulated rotations (no root).
        root: root joint index or pair of indices (midpoint) for the alignment.
        weights: :class:`LossWeights`.

    Returns:
        ``(total, parts)`` with ``parts = {'kp3d': ..., 'pose_reg': ...}`` (unweighted, detached).
    """
    kp3d = keypoint_3d_l1_root_aligned(joints_3d_pred_m, joints_3d_m, joints_3d_conf, root)
    reg = pose_sq_reg(pose_rotvecs)
    total = weights.w_3d * kp3d + weights.lambda_ax * reg
    return total, {"kp3d": kp3d.detach(), "pose_reg": reg.detach()}


def loss_target(
    keypoints_2d_pred_crop_px: torch.Tensor,
    keypoints_2d_crop_px: torch.Tensor,
    keypoints_conf: torch.Tensor,
    pose_rotvecs: torch.Tensor,
    is_target: torch.Tensor,
    *,
    input_size: int | float,
    joints_3d_pred_m: torch.Tensor | None = None,
    joints_3d_m: torch.Tensor | None = None,
    joints_3d_conf: torch.Tensor | None = None,
    pose_rotvecs_star: torch.Tensor | None = None,
    root_rotmat: torch.Tensor | None = None,
    root_rotmat_star: torch.Tensor | None = None,
    root: int | tuple[int, int] = 0,
    weights: LossWeights = LossWeights(),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stage-2 loss ``L_tg`` on a mixed batch (module docstring for the formula, units and reductions).

    Args:
        keypoints_2d_pred_crop_px: ``(batch, N, 2)`` projected model keypoints, crop pixels.
        keypoints_2d_crop_px: ``(batch, N, 2)`` GT / detected keypoints, crop pixels (missing may be NaN).
        keypoints_conf: ``(batch, N)`` visibility / confidence.
        pose_rotvecs: ``(batch, K, 3)`` predicted articulated rotations (decoded from the prior code).
        is_target: ``(batch,)`` bool, ``1_tg``: True for target (2D-only) samples.
        input_size: crop side ``S`` in pixels; 2D errors are divided by it.
        joints_3d_pred_m, joints_3d_m, joints_3d_conf: ``(batch, J, 3)``, ``(batch, J, 3)``, ``(batch, J)``:
            3D term of the auxiliary samples (rows of target samples are ignored and may be NaN). Needed when
            ``is_target`` has a False entry.
        pose_rotvecs_star: ``(batch, K, 3)`` stage-1 pseudo-GT of the auxiliary samples (target rows ignored).
        root_rotmat, root_rotmat_star: ``(batch, 3, 3)`` predicted and stage-1 global orientations (target rows
            ignored); needed when ``weights.w_root > 0`` and the batch has auxiliary samples.
        root: root joint(s) of the 3D joint set for the alignment.
        weights: :class:`LossWeights`.

    Returns:
        ``(total, parts)`` with ``parts = {'kp2d', 'pose_reg', 'kp3d', 'param', 'root'}`` (unweighted, detached).
    """
    fn = "loss_target"
    if not float(input_size) > 0:
        raise ValueError(f"{fn}: input_size must be > 0, got {input_size!r}")
    pred_2d = _check_points(keypoints_2d_pred_crop_px, "keypoints_2d_pred_crop_px", fn, (2,))
    target_2d = _check_points(keypoints_2d_crop_px, "keypoints_2d_crop_px", fn, (2,))
    _check_same(pred_2d, target_2d, "keypoints_2d_pred_crop_px and keypoints_2d_crop_px", fn)
    is_target = _check_mask(is_target, pred_2d.shape[0], fn, "is_target").to(pred_2d.device)
    is_aux = ~is_target
    kp2d = keypoint_l1(pred_2d / float(input_size), target_2d / float(input_size), keypoints_conf)
    reg = pose_sq_reg(pose_rotvecs, is_target)
    zero = pred_2d.new_zeros(())
    kp3d = param = root_l1 = zero
    if bool(is_aux.any()):
        if joints_3d_pred_m is None or joints_3d_m is None or joints_3d_conf is None or pose_rotvecs_star is None:
            raise ValueError(
                f"{fn}: the batch has auxiliary samples (is_target False); pass joints_3d_pred_m, joints_3d_m, "
                "joints_3d_conf and pose_rotvecs_star"
            )
        kp3d = keypoint_3d_l1_root_aligned(joints_3d_pred_m, joints_3d_m, joints_3d_conf, root, is_aux)
        param = param_l1(pose_rotvecs, pose_rotvecs_star, is_aux)
        if weights.w_root > 0:
            if root_rotmat is None or root_rotmat_star is None:
                raise ValueError(f"{fn}: weights.w_root > 0 and the batch has auxiliary samples; pass root_rotmat "
                                 "and root_rotmat_star")
            root_l1 = root_rotmat_l1(root_rotmat, root_rotmat_star, is_aux)
    total = (
        weights.w_2d * kp2d
        + weights.lambda_tg * reg
        + weights.w_3d * kp3d
        + weights.w_param * param
        + weights.w_root * root_l1
    )
    parts = {"kp2d": kp2d.detach(), "pose_reg": reg.detach(), "kp3d": kp3d.detach(), "param": param.detach(),
             "root": root_l1.detach()}
    return total, parts
