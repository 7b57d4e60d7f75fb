"""Body + hands + face into one SMPL-X parameter set (NeuralAnnot, Algorithm 2).

NeuralAnnot annotates the body (SMPL-X body), the hands (MANO) and the face (FLAME) with separate
networks and then integrates them into SMPL-X. Fingers, jaw and expression copy over directly; the
wrist is the hard part: the body network's wrist is blurry (the hand is small in the body crop) while the
hand network sees the hand's orientation well. Copying the hand's global rotation onto the wrist puts
all of the forearm twist into the wrist joint (a "candy-wrapper" wrist). Algorithm 2 therefore

1. runs forward kinematics of the body to the elbow (global rotation ``G_e`` of the elbow),
2. replaces the wrist's global rotation with the hand's global rotation ``H`` (the MANO root rotation,
   expressed in the body's frame), i.e. the wrist's local rotation would become ``G_e^T H``,
3. averages the rotation about the forearm (the elbow's x-axis rotation, "roll"/twist) between the
   elbow and the hand: half of the twist of ``G_e^T H`` moves into the elbow's local rotation,
4. recovers the new local elbow and wrist rotations by inverse kinematics through the chain (so the
   wrist's global rotation is exactly ``H`` and the forearm keeps its direction),
5. keeps the new elbow/wrist only if the new local wrist rotation is anatomically plausible,
   ``|y| < pi/4`` and ``|z| < pi/2`` in the Euler convention below; otherwise the body's original
   elbow and wrist are kept (the fingers are still copied).

Euler convention and axes (pinned by tests)
-------------------------------------------
Intrinsic ``'XYZ'`` (roma / :func:`neuralannot_cli.rotation.rotmat_to_euler`):
``R = R_x(ax) @ R_y(ay) @ R_z(az)``, evaluated in the **forearm bone frame** ``B``:
``(ax, ay, az) = rotmat_to_euler(B^T @ R_wrist_local @ B, 'XYZ')``.
``B`` is the smallest rotation taking the model's x axis onto the rest-pose forearm direction
(elbow joint -> wrist joint for the left arm; wrist -> elbow for the right arm, so that ``x`` points to
the body's left on both sides and ``B`` is close to the identity). In the SMPL-X T-pose (y up, the body
faces +z, the left arm along +x) the forearm lies along +-x, so ``B ~ I`` and:

- ``x``: twist about the forearm (pronation / supination), the rotation shared with the elbow;
- ``y``: rotation about the vertical axis, i.e. radial / ulnar deviation of the hand (palm faces down
  in the T-pose) -> threshold ``|ay| < pi/4``;
- ``z``: rotation about the forward axis, i.e. wrist flexion / extension -> threshold ``|az| < pi/2``.

The twist comes first (``R_x`` is the leftmost factor), so moving ``R_x(ax / 2)`` into the elbow leaves
the wrist with ``R_x(ax / 2) R_y(ay) R_z(az)``: the y and z angles the thresholds test are unchanged
by the averaging, and the middle angle ``ay`` lies in ``[-pi/2, pi/2]`` (Tait-Bryan). Using the bone
frame rather than the raw x axis makes the twist exactly about the forearm, so the forearm direction and
the elbow flexion are preserved exactly even where a template's forearm is slightly off the x axis
(real SMPL-X); for the stand-in models ``B`` is the identity.

Hands
-----
- MANO and SMPL-X hand poses are both axis-angle rotations of the same 15 joints (index, middle,
  pinky, ring, thumb; 3 each), relative to each model's mean hand (``flat_hand_mean=False``, what
  the released NeuralAnnot parameters and ``smplx.create`` use). The conversion keeps the *full*
  pose: ``smplx_rel = mano_rel + mano_mean - smplx_mean`` (axis-angle sums, as smplx applies the mean).
  For the official files the two means are identical (SMPL-X's hands are MANO's), so this is a copy.
- The MANO root rotation is taken as the SMPL-X wrist's global rotation: MANO's template hand has the
  orientation of SMPL-X's T-pose hand (the practice of FrankMocap, Hand4Whole and NeuralAnnot; for the
  stand-ins the rest hand joints coincide to 1e-5 mm).
- Left hands annotated by a right-hand network on the horizontally flipped crop are mirrored back:
  the flip maps camera ``x -> -x``, so every rotation (root and fingers, full poses including the
  mean) goes through :func:`neuralannot_cli.rotation.mirror_rotvec`:
  ``left_rel = mirror(right_rel + right_mean) - left_mean``. The left MANO model is the mirror of the
  right one, so this gives the same hand as a left-MANO annotation.
- When a part's ``cam_param`` has an extrinsic rotation ``R`` (camera-from-world, Human3.6M style, as
  Hand4Whole reads it), the root rotation is in world coordinates and ``R @ root`` is the camera-frame
  rotation; the hand's rotation is moved into the body's frame with ``R_body^T R_hand``.

Face: FLAME jaw rotation -> SMPL-X ``jaw_pose`` and the first ``num_expression_coeffs`` FLAME
expression coefficients -> SMPL-X ``expr`` (zero-padded), as NeuralAnnot integrates them (its released
SMPL-X files carry 10 ``expr``, read with ``smplx.create`` defaults by NeuralAnnot_RELEASE
``MSCOCO/demo_smplx.py`` and Hand4Whole). Both jaw rotations are local to the jaw's parent (FLAME neck,
SMPL-X head) with identity rest frames, so the axis-angle copies unchanged; that SMPL-X's expression basis
matches FLAME's is an assumption of the method (exact only where the two model files share the basis).

Invalid parts (missing, ``null``, ``"valid": false``, or for faces ``"face_valid": false`` as
:mod:`neuralannot_cli.fit.face` writes skipped faces) give a zero (mean) hand pose / zero jaw and
expression and the flag ``lhand_valid`` / ``rhand_valid`` / ``face_valid`` false; the body's wrist is
then left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from neuralannot_cli.rotation import (
    euler_to_rotmat,
    mirror_rotvec,
    rotmat_to_euler,
    rotmat_to_rotvec,
    rotvec_to_rotmat,
)

__all__ = [
    "EULER_CONVENTION",
    "SMPLX_BODY_PARENTS",
    "SMPLX_ELBOW_JOINTS",
    "SMPLX_WRIST_JOINTS",
    "SIDES",
    "WristThresholds",
    "WristIntegration",
    "IntegrationInputs",
    "IntegrationResult",
    "HandMeans",
    "forward_kinematics_rotmats",
    "forearm_bone_frames",
    "rotmat_about_axis",
    "integrate_wrist_rotmats",
    "mano_to_smplx_hand_pose",
    "mirror_mano_pose",
    "integrate_smplx",
    "rest_forearm_dirs",
    "hand_means_from_models",
    "IntegrationSummary",
    "integrate_records",
]

EULER_CONVENTION = "XYZ"  # intrinsic, in the forearm bone frame; see the module docstring
SIDES: tuple[str, str] = ("left", "right")
# Parents of SMPL-X's 22 body joints (pelvis .. right wrist), as in the model files' kintree_table.
SMPLX_BODY_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
SMPLX_ELBOW_JOINTS: tuple[int, int] = (18, 19)  # left, right (kinematic joint indices; body_pose index - 1)
SMPLX_WRIST_JOINTS: tuple[int, int] = (20, 21)


def _check(x: object, trailing: tuple[int, ...], name: str, fn: str, *, batch_dims: int | None = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    n = len(trailing)
    want = "(" + ", ".join(["..."] if batch_dims is None else ["batch"] * batch_dims) + (", " if n else "")
    want += ", ".join(str(d) for d in trailing) + ")"
    ok = x.dim() >= n and tuple(x.shape[x.dim() - n :]) == trailing
    if batch_dims is not None:
        ok = ok and x.dim() == n + batch_dims
    if not ok:
        raise ValueError(f"{fn}: {name} must have shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


# ------------------------------------------------------------------------------------------ pure math


@dataclass(frozen=True)
class WristThresholds:
    """Acceptance limits on the new local wrist rotation (radians, absolute Euler angles, see module doc)."""

    max_abs_y_rad: float = math.pi / 4
    max_abs_z_rad: float = math.pi / 2


def forward_kinematics_rotmats(local_rotmats: Tensor, parents: tuple[int, ...] | list[int] | np.ndarray) -> Tensor:
    """Global rotations from local ones along a kinematic tree: ``G_j = G_parent(j) @ L_j``.

    Args:
        local_rotmats: ``(..., joints, 3, 3)``; joint 0's local rotation is the root (global) rotation.
        parents: ``(joints,)`` parent indices, ``-1`` for the root, each parent before its children.

    Returns:
        ``(..., joints, 3, 3)`` global rotations.
    """
    fn = "forward_kinematics_rotmats"
    _check(local_rotmats, (3, 3), "local_rotmats", fn)
    parents = [int(p) for p in np.asarray(parents).reshape(-1)]
    if local_rotmats.dim() < 3 or local_rotmats.shape[-3] != len(parents):
        raise ValueError(
            f"{fn}: local_rotmats must have shape (..., {len(parents)}, 3, 3) for {len(parents)} parents, "
            f"got {tuple(local_rotmats.shape)}"
        )
    glob: list[Tensor] = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError(f"{fn}: parents must list each parent before its child; joint {j} has parent {p}")
        loc = local_rotmats[..., j, :, :]
        glob.append(loc if p < 0 else glob[p] @ loc)
    return torch.stack(glob, dim=-3)


def rotmat_about_axis(axis_unit: Tensor, angle_rad: Tensor) -> Tensor:
    """Rotation by ``angle_rad`` about the unit axis ``axis_unit``: ``(..., 3), (...) -> (..., 3, 3)``."""
    fn = "rotmat_about_axis"
    _check(axis_unit, (3,), "axis_unit", fn)
    if not isinstance(angle_rad, Tensor) or tuple(angle_rad.shape) != tuple(axis_unit.shape[:-1]):
        got = tuple(angle_rad.shape) if isinstance(angle_rad, Tensor) else type(angle_rad).__name__
        raise ValueError(f"{fn}: angle_rad must have shape {tuple(axis_unit.shape[:-1])}, got {got}")
    return rotvec_to_rotmat(axis_unit * angle_rad[..., None])


def forearm_bone_frames(forearm_dirs: Tensor) -> Tensor:
    """Smallest rotation ``B`` with ``B @ e_x = forearm_dirs / |forearm_dirs|``.

    Args:
        forearm_dirs: ``(..., 3)`` rest-pose forearm directions, pointing to +x-ish (left arm: elbow ->
            wrist; right arm: wrist -> elbow, see the module docstring). Must not point along -x.

    Returns:
        ``(..., 3, 3)``; the identity for a forearm exactly along +x.
    """
    fn = "forearm_bone_frames"
    _check(forearm_dirs, (3,), "forearm_dirs", fn)
    norm = forearm_dirs.norm(dim=-1, keepdim=True)
    if bool((norm <= 1e-9).any()):
        raise ValueError(f"{fn}: forearm_dirs has a zero-length direction")
    u = forearm_dirs / norm
    if bool((u[..., 0] <= -0.5).any()):
        raise ValueError(f"{fn}: forearm_dirs must point towards +x (x component > -0.5 after normalising)")
    ex = torch.zeros_like(u)
    ex[..., 0] = 1.0
    v = torch.linalg.cross(ex, u, dim=-1)
    c = u[..., 0]
    zero = torch.zeros_like(c)
    vx = torch.stack(
        [
            torch.stack([zero, -v[..., 2], v[..., 1]], -1),
            torch.stack([v[..., 2], zero, -v[..., 0]], -1),
            torch.stack([-v[..., 1], v[..., 0], zero], -1),
        ],
        dim=-2,
    )
    eye = torch.eye(3, dtype=u.dtype, device=u.device).expand(vx.shape)
    return eye + vx + (vx @ vx) / (1.0 + c)[..., None, None]


@dataclass(frozen=True)
class WristIntegration:
    """Result of :func:`integrate_wrist_rotmats` for one arm over a batch.

    Attributes:
        elbow_local_rotmats: ``(batch, 3, 3)`` new local elbow rotation (the original where rejected).
        wrist_local_rotmats: ``(batch, 3, 3)`` new local wrist rotation (the original where rejected).
        accepted: ``(batch,)`` bool, the candidate passed the thresholds (and the hand was valid).
        candidate_euler_rad: ``(batch, 3)`` Euler angles (x, y, z; intrinsic XYZ in the bone frame) of the
            candidate local wrist rotation that the thresholds were tested on.
        twist_rad: ``(batch,)`` twist ``ax`` of the hand relative to the elbow, half of which went into
            the elbow where accepted.
    """

    elbow_local_rotmats: Tensor
    wrist_local_rotmats: Tensor
    accepted: Tensor
    candidate_euler_rad: Tensor
    twist_rad: Tensor


def integrate_wrist_rotmats(
    elbow_parent_glob_rotmats: Tensor,
    elbow_local_rotmats: Tensor,
    wrist_local_rotmats: Tensor,
    hand_glob_rotmats: Tensor,
    bone_frames: Tensor,
    *,
    hand_valid: Tensor | None = None,
    thresholds: WristThresholds = WristThresholds(),
) -> WristIntegration:
    """Algorithm 2 for one arm (see the module docstring), batched.

    Args:
        elbow_parent_glob_rotmats: ``(batch, 3, 3)`` global rotation of the elbow's parent (shoulder).
        elbow_local_rotmats: ``(batch, 3, 3)`` the body's local elbow rotation.
        wrist_local_rotmats: ``(batch, 3, 3)`` the body's local wrist rotation.
        hand_glob_rotmats: ``(batch, 3, 3)`` the hand's global rotation in the body's frame.
        bone_frames: ``(batch, 3, 3)`` or ``(3, 3)`` forearm bone frames (:func:`forearm_bone_frames`).
        hand_valid: ``(batch,)`` bool; invalid rows keep the body's rotations. Default: all valid.
        thresholds: limits on ``|y|`` and ``|z|`` of the new local wrist rotation.

    Returns:
        :class:`WristIntegration`. Where accepted, ``shoulder @ elbow' @ wrist' == hand`` and the
        forearm keeps its direction.
    """
    fn = "integrate_wrist_rotmats"
    names = ("elbow_parent_glob_rotmats", "elbow_local_rotmats", "wrist_local_rotmats", "hand_glob_rotmats")
    tensors = (elbow_parent_glob_rotmats, elbow_local_rotmats, wrist_local_rotmats, hand_glob_rotmats)
    for name, t in zip(names, tensors):
        _check(t, (3, 3), name, fn, batch_dims=1)
    batch = elbow_parent_glob_rotmats.shape[0]
    for name, t in zip(names, tensors):
        if t.shape[0] != batch:
            raise ValueError(f"{fn}: {name} has batch {t.shape[0]}, expected {batch} (shape {tuple(t.shape)})")
    _check(bone_frames, (3, 3), "bone_frames", fn)
    if bone_frames.dim() == 2:
        bone_frames = bone_frames.expand(batch, 3, 3)
    elif tuple(bone_frames.shape) != (batch, 3, 3):
        raise ValueError(f"{fn}: bone_frames must have shape ({batch}, 3, 3) or (3, 3), got {tuple(bone_frames.shape)}")
    if hand_valid is None:
        hand_valid = torch.ones(batch, dtype=torch.bool, device=elbow_local_rotmats.device)
    if not isinstance(hand_valid, Tensor) or tuple(hand_valid.shape) != (batch,):
        got = tuple(hand_valid.shape) if isinstance(hand_valid, Tensor) else type(hand_valid).__name__
        raise ValueError(f"{fn}: hand_valid must have shape ({batch},), got {got}")

    elbow_glob = elbow_parent_glob_rotmats @ elbow_local_rotmats
    wrist_needed = elbow_glob.transpose(-1, -2) @ hand_glob_rotmats  # local wrist with the elbow unchanged
    b_t = bone_frames.transpose(-1, -2)
    euler_needed = rotmat_to_euler(b_t @ wrist_needed @ bone_frames, EULER_CONVENTION)  # (ax, ay, az)
    twist = euler_needed[..., 0]
    half = torch.zeros_like(euler_needed)
    half[..., 0] = 0.5 * twist
    twist_half = bone_frames @ euler_to_rotmat(half, EULER_CONVENTION) @ b_t  # about the forearm
    elbow_new = elbow_local_rotmats @ twist_half
    wrist_new = twist_half.transpose(-1, -2) @ wrist_needed  # inverse kinematics: (G_p E')^T H
    candidate_euler = rotmat_to_euler(b_t @ wrist_new @ bone_frames, EULER_CONVENTION)
    accepted = (
        hand_valid.to(torch.bool)
        & (candidate_euler[..., 1].abs() < thresholds.max_abs_y_rad)
        & (candidate_euler[..., 2].abs() < thresholds.max_abs_z_rad)
    )
    keep = accepted[:, None, None]
    return WristIntegration(
        elbow_local_rotmats=torch.where(keep, elbow_new, elbow_local_rotmats),
        wrist_local_rotmats=torch.where(keep, wrist_new, wrist_local_rotmats),
        accepted=accepted,
        candidate_euler_rad=candidate_euler,
        twist_rad=twist,
    )


def mano_to_smplx_hand_pose(
    mano_hand_pose_rotvecs: Tensor, mano_hand_mean_rotvecs: Tensor, smplx_hand_mean_rotvecs: Tensor
) -> Tensor:
    """MANO hand pose (relative to MANO's mean hand) -> SMPL-X hand pose (relative to SMPL-X's mean).

    Args:
        mano_hand_pose_rotvecs: ``(batch, 15, 3)``.
        mano_hand_mean_rotvecs: ``(15, 3)`` MANO ``hands_mean`` of the same side.
        smplx_hand_mean_rotvecs: ``(15, 3)`` SMPL-X ``hands_mean{l,r}`` of the same side.

    Returns:
        ``(batch, 15, 3)`` with the same full (mean-added) finger rotations.
    """
    fn = "mano_to_smplx_hand_pose"
    _check(mano_hand_pose_rotvecs, (15, 3), "mano_hand_pose_rotvecs", fn, batch_dims=1)
    _check(mano_hand_mean_rotvecs, (15, 3), "mano_hand_mean_rotvecs", fn, batch_dims=0)
    _check(smplx_hand_mean_rotvecs, (15, 3), "smplx_hand_mean_rotvecs", fn, batch_dims=0)
    return mano_hand_pose_rotvecs + (mano_hand_mean_rotvecs - smplx_hand_mean_rotvecs).to(mano_hand_pose_rotvecs)


def mirror_mano_pose(
    root_rotvec: Tensor, hand_pose_rotvecs: Tensor, src_hand_mean_rotvecs: Tensor, dst_hand_mean_rotvecs: Tensor
) -> tuple[Tensor, Tensor]:
    """Mirror a MANO hand across ``x -> -x`` (right hand of a flipped image -> left hand, and back).

    Full poses (relative pose + mean) are mirrored with :func:`mirror_rotvec` and re-expressed relative
    to the other side's mean: ``dst_rel = mirror(src_rel + src_mean) - dst_mean``.

    Args:
        root_rotvec: ``(batch, 3)`` global rotation in the (flipped) camera frame.
        hand_pose_rotvecs: ``(batch, 15, 3)`` relative to ``src_hand_mean_rotvecs``.
        src_hand_mean_rotvecs: ``(15, 3)`` mean of the model the pose is given for.
        dst_hand_mean_rotvecs: ``(15, 3)`` mean of the mirrored model.

    Returns:
        ``(root_rotvec (batch, 3), hand_pose_rotvecs (batch, 15, 3))`` of the mirrored hand.
    """
    fn = "mirror_mano_pose"
    _check(root_rotvec, (3,), "root_rotvec", fn, batch_dims=1)
    _check(hand_pose_rotvecs, (15, 3), "hand_pose_rotvecs", fn, batch_dims=1)
    _check(src_hand_mean_rotvecs, (15, 3), "src_hand_mean_rotvecs", fn, batch_dims=0)
    _check(dst_hand_mean_rotvecs, (15, 3), "dst_hand_mean_rotvecs", fn, batch_dims=0)
    full = hand_pose_rotvecs + src_hand_mean_rotvecs.to(hand_pose_rotvecs)
    return mirror_rotvec(root_rotvec), mirror_rotvec(full) - dst_hand_mean_rotvecs.to(hand_pose_rotvecs)


# ------------------------------------------------------------------------------------- batched assembly


@dataclass(frozen=True)
class IntegrationInputs:
    """Per-person parts, batched (``batch`` persons); hands are ordered ``(left, right)``.

    Attributes:
        root_rotvec: ``(batch, 3)`` body root rotation.
        body_pose_rotvecs: ``(batch, 21, 3)`` SMPL-X body pose (joints 1..21).
        shape_betas: ``(batch, num_betas)``.
        transl_m: ``(batch, 3)``.
        hand_glob_rotmats: ``(batch, 2, 3, 3)`` hand global rotation in the body's frame (any value
            where the hand is invalid).
        hand_pose_rotvecs: ``(batch, 2, 15, 3)`` finger poses in SMPL-X's convention (relative to
            SMPL-X's mean hand of that side; see :func:`mano_to_smplx_hand_pose`).
        hand_valid: ``(batch, 2)`` bool.
        jaw_rotvec: ``(batch, 3)``.
        expression: ``(batch, num_expression_coeffs)``.
        face_valid: ``(batch,)`` bool.
    """

    root_rotvec: Tensor
    body_pose_rotvecs: Tensor
    shape_betas: Tensor
    transl_m: Tensor
    hand_glob_rotmats: Tensor
    hand_pose_rotvecs: Tensor
    hand_valid: Tensor
    jaw_rotvec: Tensor
    expression: Tensor
    face_valid: Tensor


@dataclass(frozen=True)
class IntegrationResult:
    """SMPL-X parameters after integration (``batch`` persons; hands ordered ``(left, right)``).

    Attributes:
        root_rotvec, body_pose_rotvecs, shape_betas, transl_m, jaw_rotvec, expression: as the SMPL-X
            forward takes them (``jaw_rotvec`` / ``expression`` zero where the face is invalid).
        left_hand_pose_rotvecs, right_hand_pose_rotvecs: ``(batch, 15, 3)`` (zero = mean hand where
            invalid).
        hand_valid: ``(batch, 2)`` bool, ``face_valid``: ``(batch,)`` bool.
        wrist_replaced: ``(batch, 2)`` bool, Algorithm 2 accepted (elbow/wrist changed).
        wrist_rejected: ``(batch, 2)`` bool, the hand was valid but the thresholds rejected it.
        wrist_candidate_euler_rad: ``(batch, 2, 3)`` Euler angles the thresholds were tested on.
    """

    root_rotvec: Tensor
    body_pose_rotvecs: Tensor
    shape_betas: Tensor
    transl_m: Tensor
    left_hand_pose_rotvecs: Tensor
    right_hand_pose_rotvecs: Tensor
    jaw_rotvec: Tensor
    expression: Tensor
    hand_valid: Tensor
    face_valid: Tensor
    wrist_replaced: Tensor
    wrist_rejected: Tensor
    wrist_candidate_euler_rad: Tensor


def integrate_smplx(
    inputs: IntegrationInputs,
    forearm_dirs: Tensor,
    *,
    thresholds: WristThresholds = WristThresholds(),
) -> IntegrationResult:
    """Assemble SMPL-X parameters and run Algorithm 2 on both arms.

    Args:
        inputs: :class:`IntegrationInputs`.
        forearm_dirs: ``(batch, 2, 3)`` or ``(2, 3)`` rest-pose forearm directions (left: elbow -> wrist,
            right: wrist -> elbow; :func:`rest_forearm_dirs`).
        thresholds: wrist acceptance limits.

    Returns:
        :class:`IntegrationResult`.
    """
    fn = "integrate_smplx"
    root = _check(inputs.root_rotvec, (3,), "root_rotvec", fn, batch_dims=1)
    batch = root.shape[0]
    body = _check(inputs.body_pose_rotvecs, (21, 3), "body_pose_rotvecs", fn, batch_dims=1)
    hand_glob = _check(inputs.hand_glob_rotmats, (2, 3, 3), "hand_glob_rotmats", fn, batch_dims=1)
    hand_pose = _check(inputs.hand_pose_rotvecs, (2, 15, 3), "hand_pose_rotvecs", fn, batch_dims=1)
    jaw = _check(inputs.jaw_rotvec, (3,), "jaw_rotvec", fn, batch_dims=1)
    for name in ("shape_betas", "expression"):
        t = getattr(inputs, name)
        if not isinstance(t, Tensor) or t.dim() != 2 or not t.is_floating_point():
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{fn}: {name} must be a float tensor of shape (batch, n), got {got}")
    _check(inputs.transl_m, (3,), "transl_m", fn, batch_dims=1)
    for name, want in (("hand_valid", (batch, 2)), ("face_valid", (batch,))):
        t = getattr(inputs, name)
        if not isinstance(t, Tensor) or tuple(t.shape) != want:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{fn}: {name} must have shape {want}, got {got}")
    for name in ("body_pose_rotvecs", "hand_glob_rotmats", "hand_pose_rotvecs", "jaw_rotvec",
                 "shape_betas", "expression", "transl_m"):
        if getattr(inputs, name).shape[0] != batch:
            raise ValueError(f"{fn}: {name} has batch {getattr(inputs, name).shape[0]}, root_rotvec has {batch}")
    _check(forearm_dirs, (2, 3), "forearm_dirs", fn)
    if forearm_dirs.dim() == 2:
        forearm_dirs = forearm_dirs.expand(batch, 2, 3)
    elif tuple(forearm_dirs.shape) != (batch, 2, 3):
        raise ValueError(
            f"{fn}: forearm_dirs must have shape ({batch}, 2, 3) or (2, 3), got {tuple(forearm_dirs.shape)}"
        )

    hand_valid = inputs.hand_valid.to(torch.bool)
    face_valid = inputs.face_valid.to(torch.bool)
    local = rotvec_to_rotmat(torch.cat([root[:, None], body], dim=1))  # (batch, 22, 3, 3)
    glob = forward_kinematics_rotmats(local, SMPLX_BODY_PARENTS)
    frames = forearm_bone_frames(forearm_dirs.to(local))
    new_local = local.clone()
    replaced, eulers = [], []
    for s, (elbow, wrist) in enumerate(zip(SMPLX_ELBOW_JOINTS, SMPLX_WRIST_JOINTS)):
        res = integrate_wrist_rotmats(
            glob[:, SMPLX_BODY_PARENTS[elbow]],
            local[:, elbow],
            local[:, wrist],
            hand_glob[:, s].to(local),
            frames[:, s],
            hand_valid=hand_valid[:, s],
            thresholds=thresholds,
        )
        new_local[:, elbow] = res.elbow_local_rotmats
        new_local[:, wrist] = res.wrist_local_rotmats
        replaced.append(res.accepted)
        eulers.append(res.candidate_euler_rad)
    replaced_t = torch.stack(replaced, dim=1)
    new_body = body.clone()
    for s, (elbow, wrist) in enumerate(zip(SMPLX_ELBOW_JOINTS, SMPLX_WRIST_JOINTS)):
        take = replaced_t[:, s, None]  # rows not replaced keep the exact input (no round-trip noise)
        for joint in (elbow, wrist):
            new_body[:, joint - 1] = torch.where(take, rotmat_to_rotvec(new_local[:, joint]), body[:, joint - 1])

    hand_pose = torch.where(hand_valid[:, :, None, None], hand_pose, torch.zeros_like(hand_pose))
    return IntegrationResult(
        root_rotvec=root,
        body_pose_rotvecs=new_body,
        shape_betas=inputs.shape_betas,
        transl_m=inputs.transl_m,
        left_hand_pose_rotvecs=hand_pose[:, 0],
        right_hand_pose_rotvecs=hand_pose[:, 1],
        jaw_rotvec=torch.where(face_valid[:, None], jaw, torch.zeros_like(jaw)),
        expression=torch.where(face_valid[:, None], inputs.expression, torch.zeros_like(inputs.expression)),
        hand_valid=hand_valid,
        face_valid=face_valid,
        wrist_replaced=replaced_t,
        wrist_rejected=hand_valid & ~replaced_t,
        wrist_candidate_euler_rad=torch.stack(eulers, dim=1),
    )


# ------------------------------------------------------------------------------- model-derived inputs


@dataclass(frozen=True)
class HandMeans:
    """Mean hand poses ``(15, 3)`` axis-angle of SMPL-X and MANO, per side (zeros for flat-hand models)."""

    smplx_left: Tensor
    smplx_right: Tensor
    mano_left: Tensor
    mano_right: Tensor

    def smplx(self, side: str) -> Tensor:
        return self.smplx_left if side == "left" else self.smplx_right

    def mano(self, side: str) -> Tensor:
        return self.mano_left if side == "left" else self.mano_right


def hand_means_from_models(smplx_model: Any, mano_left: Any | None = None, mano_right: Any | None = None) -> HandMeans:
    """Read the mean hands from loaded :class:`~neuralannot_cli.body.BodyModel` s.

    A missing MANO model falls back to SMPL-X's mean of that side (the official SMPL-X files carry
    MANO's means, so the conversion is then a copy).
    """
    layer = smplx_model.layer
    left = layer.left_hand_mean.detach().reshape(15, 3).double().cpu()
    right = layer.right_hand_mean.detach().reshape(15, 3).double().cpu()

    def mano_mean(model: Any | None, fallback: Tensor) -> Tensor:
        if model is None:
            return fallback
        return model.layer.hand_mean.detach().reshape(15, 3).double().cpu()

    return HandMeans(left, right, mano_mean(mano_left, left), mano_mean(mano_right, right))


def rest_forearm_dirs(smplx_model: Any, shape_betas: Tensor) -> Tensor:
    """Rest-pose forearm directions ``(batch, 2, 3)`` (left: elbow -> wrist, right: wrist -> elbow).

    Args:
        smplx_model: a loaded SMPL-X :class:`~neuralannot_cli.body.BodyModel`.
        shape_betas: ``(batch, n)``; the first ``min(n, num_betas)`` coefficients are used.
    """
    fn = "rest_forearm_dirs"
    if not isinstance(shape_betas, Tensor) or shape_betas.dim() != 2:
        got = tuple(shape_betas.shape) if isinstance(shape_betas, Tensor) else type(shape_betas).__name__
        raise ValueError(f"{fn}: shape_betas must have shape (batch, n), got {got}")
    layer = smplx_model.layer
    dtype, device = layer.v_template.dtype, layer.v_template.device
    n = min(int(shape_betas.shape[1]), int(layer.shapedirs.shape[-1]))
    betas = shape_betas[:, :n].to(dtype=dtype, device=device)
    verts = layer.v_template[None] + torch.einsum("bk,vdk->bvd", betas, layer.shapedirs[..., :n])
    idx = list(SMPLX_ELBOW_JOINTS + SMPLX_WRIST_JOINTS)
    joints = torch.einsum("jv,bvd->bjd", layer.J_regressor[idx], verts)  # (batch, 4, 3): le, re, lw, rw
    left = joints[:, 2] - joints[:, 0]
    right = joints[:, 1] - joints[:, 3]
    return torch.stack([left, right], dim=1)


# ----------------------------------------------------------------------------------- JSON records
# Layout of the field's released NeuralAnnot files (Hand4Whole's data/MSCOCO/MSCOCO.py):
#   body: {ann_id: {"smplx_param": {root_pose, body_pose, shape, trans, ...}, "cam_param": {focal, princpt}}}
#   hand: {ann_id: {"left": {"mano_param": {pose (48), shape, trans}, "cam_param": {...}} | null,
#                   "right": ... | null}}
#   face: {ann_id: {"flame_param": {root_pose, jaw_pose, shape, expr, ...}, "cam_param": {...}} | null}
# A hand entry may carry "flipped": true (in the entry or in mano_param) or "hand_type" naming the other
# side: its parameters are then those of the other side's MANO on the horizontally flipped image.
# Any entry may carry "valid": false; a face entry "face_valid": false (fit-face's skipped faces) too.


def _format_error(path: Path, where: str, problem: str) -> Exception:
    from neuralannot_cli.data.record import DatasetFormatError

    return DatasetFormatError(path, where, problem)


def _field(obj: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise _format_error(path, where or "<top level>", f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise _format_error(path, f"{where}.{key}" if where else key, "missing")
    return obj[key]


def _numbers(value: Any, sizes: tuple[int, ...], path: Path, where: str) -> np.ndarray:
    """A flat or nested list of numbers with exactly one of the given total sizes, as float64."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _format_error(path, where, "expected a list of numbers") from None
    if arr.size not in sizes:
        want = " or ".join(str(s) for s in sizes)
        raise _format_error(path, where, f"expected {want} numbers, got shape {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise _format_error(path, where, "contains NaN or infinity")
    return arr.reshape(-1)


def _vector(value: Any, path: Path, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise _format_error(path, where, "expected a list of numbers") from None
    if arr.size == 0 or not np.isfinite(arr).all():
        raise _format_error(path, where, "expected a non-empty list of finite numbers")
    return arr


def _cam_rotation(record: Mapping, path: Path, where: str) -> np.ndarray | None:
    cam = record.get("cam_param")
    if cam is None:
        return None
    if not isinstance(cam, Mapping):
        raise _format_error(path, f"{where}.cam_param", "expected an object")
    if "R" not in cam:
        return None
    rot = _numbers(cam["R"], (9,), path, f"{where}.cam_param.R").reshape(3, 3)
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
        raise _format_error(path, f"{where}.cam_param.R", "not a rotation matrix")
    return rot


def _is_valid(entry: Any, flag: str | None = None) -> bool:
    """Not ``None`` and not marked invalid by ``"valid": false`` (or by ``flag``, e.g. ``"face_valid"``,
    which ``neuralannot fit-face`` writes for skipped faces, without ``flame_param``)."""
    if entry is None:
        return False
    if not isinstance(entry, Mapping):
        return True  # a malformed entry: the field checks that follow name the problem
    return entry.get("valid", True) is not False and (flag is None or entry.get(flag, True) is not False)


@dataclass(frozen=True)
class _HandEntry:
    glob_rotmat_cam: np.ndarray  # (3, 3) in the camera frame of the unflipped image
    pose_smplx: np.ndarray  # (15, 3) relative to SMPL-X's mean of that side
    flipped: bool


def _parse_hand(entry: Mapping, side: str, means: HandMeans, path: Path, where: str) -> _HandEntry:
    mano = _field(entry, "mano_param", path, where)
    mwhere = f"{where}.mano_param"
    if not isinstance(mano, Mapping):
        raise _format_error(path, mwhere, "expected an object")
    if "pose" in mano:
        pose = _numbers(mano["pose"], (48,), path, f"{mwhere}.pose").reshape(16, 3)
        root, fingers = pose[0], pose[1:]
    elif "root_pose" in mano and "hand_pose" in mano:
        root = _numbers(mano["root_pose"], (3,), path, f"{mwhere}.root_pose")
        fingers = _numbers(mano["hand_pose"], (45,), path, f"{mwhere}.hand_pose").reshape(15, 3)
    else:
        raise _format_error(path, f"{mwhere}.pose", "missing (need pose (48) or root_pose (3) + hand_pose (45))")
    flipped = bool(entry.get("flipped", False)) or bool(mano.get("flipped", False))
    other = "right" if side == "left" else "left"
    hand_type = mano.get("hand_type", entry.get("hand_type"))
    if hand_type is not None:
        if hand_type not in SIDES:
            raise _format_error(path, f"{mwhere}.hand_type", f"expected 'left' or 'right', got {hand_type!r}")
        if hand_type == other:
            flipped = True
        elif flipped:
            raise _format_error(
                path, f"{mwhere}.hand_type", f"{hand_type!r} contradicts flipped=true under the {side!r} key"
            )
    model_side = other if flipped else side
    root_t = torch.as_tensor(root, dtype=torch.float64)[None]
    fingers_t = torch.as_tensor(fingers, dtype=torch.float64)[None]
    rot_cam = _cam_rotation(entry, path, where)
    if rot_cam is not None:  # root given in world coordinates: camera-frame root = R @ root
        glob = torch.as_tensor(rot_cam) @ rotvec_to_rotmat(root_t[0])
        root_t = rotmat_to_rotvec(glob)[None]
    if flipped:
        root_t, fingers_t = mirror_mano_pose(root_t, fingers_t, means.mano(model_side), means.mano(side))
    pose_smplx = mano_to_smplx_hand_pose(fingers_t, means.mano(side), means.smplx(side))
    return _HandEntry(rotvec_to_rotmat(root_t[0]).numpy(), pose_smplx[0].numpy(), flipped)


@dataclass(frozen=True)
class IntegrationSummary:
    """Counts printed by ``neuralannot integrate``."""

    persons: int
    wrists_replaced: dict[str, int]
    wrists_rejected: dict[str, int]
    hand_valid: dict[str, int]
    flipped_hands: dict[str, int]
    face_valid: int
    hands_without_body: int
    faces_without_body: int
    rejected_ids: dict[str, list[str]] = field(default_factory=dict)


def integrate_records(
    body: Mapping[str, Any],
    hand: Mapping[str, Any],
    face: Mapping[str, Any],
    *,
    smplx_model: Any,
    hand_means: HandMeans,
    thresholds: WristThresholds = WristThresholds(),
    body_path: str | Path = "body.json",
    hand_path: str | Path = "hand.json",
    face_path: str | Path = "face.json",
) -> tuple[dict[str, Any], IntegrationSummary]:
    """Join body / hand / face pseudo-GT records by annotation id and integrate them into SMPL-X.

    Args:
        body, hand, face: parsed JSON objects in the layout described above (keyed by ``str(ann_id)``).
        smplx_model: loaded SMPL-X :class:`~neuralannot_cli.body.BodyModel` (rest forearm directions,
            number of expression coefficients).
        hand_means: :func:`hand_means_from_models`.
        thresholds: wrist acceptance limits.
        body_path, hand_path, face_path: file names used in error messages.

    Returns:
        ``(records, summary)``: ``records[ann_id] = {"smplx_param": {...}, "integration": {...}, ...}``
        (other keys of the body record, e.g. ``cam_param``, carried over); ``smplx_param`` holds flat
        lists (``body_pose`` 63, ``lhand_pose`` / ``rhand_pose`` 45, ``jaw_pose`` 3, ``expr``
        num_expression_coeffs) and the flags ``lhand_valid`` / ``rhand_valid`` / ``face_valid``.

    Raises:
        DatasetFormatError: a missing or malformed field (one line naming the file and the field); an empty
            ``body``; a hand entry with neither ``left`` nor ``right``; a non-empty ``hand`` / ``face`` none
            of whose keys is a body annotation id (some unmatched entries are fine: they are counted).
    """
    bpath, hpath, fpath = Path(body_path), Path(hand_path), Path(face_path)
    for obj, p in ((body, bpath), (hand, hpath), (face, fpath)):
        if not isinstance(obj, Mapping):
            raise _format_error(
                p, "<top level>", f"expected an object keyed by annotation id, got {type(obj).__name__}"
            )
    ids = [str(k) for k in body.keys()]
    if not ids:
        raise _format_error(bpath, "<top level>", "no body records (an empty file)")
    body_ids = set(ids)
    for part, obj, p in (("hand", hand, hpath), ("face", face, fpath)):
        # A part file that matches no person would leave every person without that part (exit 0, the
        # body written back unchanged): another dataset, split or part, not a partial annotation.
        if obj and not any(str(k) in body_ids for k in obj.keys()):
            first = next(iter(obj.keys()))
            raise _format_error(
                p, "<top level>", f"none of its {len(obj)} {part} entries (first key {str(first)!r}) matches a "
                f"body record of {bpath.name} (keys are annotation ids; another dataset or split?)"
            )
    n_expr = int(smplx_model.num_expression_coeffs)
    rows: dict[str, list[Any]] = {k: [] for k in (
        "root", "body", "shape", "trans", "hglob", "hpose", "hvalid", "jaw", "expr", "fvalid", "flipped")}
    max_betas = 1
    for aid in ids:
        rec = body[aid]
        where = f'["{aid}"]'
        sp = _field(rec, "smplx_param", bpath, where)
        swhere = f"{where}.smplx_param"
        rows["root"].append(_numbers(_field(sp, "root_pose", bpath, swhere), (3,), bpath, f"{swhere}.root_pose"))
        rows["body"].append(
            _numbers(_field(sp, "body_pose", bpath, swhere), (63,), bpath, f"{swhere}.body_pose").reshape(21, 3))
        shape = _vector(_field(sp, "shape", bpath, swhere), bpath, f"{swhere}.shape")
        max_betas = max(max_betas, shape.size)
        rows["shape"].append(shape)
        rows["trans"].append(_numbers(_field(sp, "trans", bpath, swhere), (3,), bpath, f"{swhere}.trans"))
        body_rot = _cam_rotation(rec, bpath, where)  # body root in world coordinates when present

        hglob, hpose = np.tile(np.eye(3), (2, 1, 1)), np.zeros((2, 15, 3))
        hvalid, flipped = [False, False], [False, False]
        hrec = hand.get(aid) if isinstance(hand, Mapping) else None
        if hrec is not None:
            if not isinstance(hrec, Mapping):
                raise _format_error(
                    hpath, where, f"expected an object with 'left' / 'right', got {type(hrec).__name__}"
                )
            if not any(side in hrec for side in SIDES):  # e.g. a body file or a FreiHAND file given as --hand
                keys = ", ".join(repr(str(k)) for k in list(hrec.keys())[:4]) or "none"
                raise _format_error(
                    hpath, where, f"expected a hand entry with 'left' / 'right' keys, got keys {keys}"
                )
            for s, side in enumerate(SIDES):
                entry = hrec.get(side)
                if not _is_valid(entry):
                    continue
                parsed = _parse_hand(entry, side, hand_means, hpath, f"{where}.{side}")
                g = parsed.glob_rotmat_cam
                if body_rot is not None:
                    g = body_rot.T @ g
                hglob[s], hpose[s], hvalid[s], flipped[s] = g, parsed.pose_smplx, True, parsed.flipped
        rows["hglob"].append(hglob)
        rows["hpose"].append(hpose)
        rows["hvalid"].append(hvalid)
        rows["flipped"].append(flipped)

        jaw, expr, fvalid = np.zeros(3), np.zeros(n_expr), False
        frec = face.get(aid)
        if _is_valid(frec, "face_valid"):
            fp = _field(frec, "flame_param", fpath, where)
            fwhere = f"{where}.flame_param"
            jaw = _numbers(_field(fp, "jaw_pose", fpath, fwhere), (3,), fpath, f"{fwhere}.jaw_pose")
            e = _vector(_field(fp, "expr", fpath, fwhere), fpath, f"{fwhere}.expr")[:n_expr]
            expr = np.concatenate([e, np.zeros(n_expr - e.size)])
            fvalid = True
        rows["jaw"].append(jaw)
        rows["expr"].append(expr)
        rows["fvalid"].append(fvalid)

    def t(x: Any, dtype: torch.dtype = torch.float64) -> Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype)

    batch = len(ids)
    shapes = np.zeros((batch, max_betas))
    for i, s in enumerate(rows["shape"]):
        shapes[i, : s.size] = s
    if batch:
        inputs = IntegrationInputs(
            root_rotvec=t(rows["root"]),
            body_pose_rotvecs=t(rows["body"]),
            shape_betas=t(shapes),
            transl_m=t(rows["trans"]),
            hand_glob_rotmats=t(rows["hglob"]),
            hand_pose_rotvecs=t(rows["hpose"]),
            hand_valid=t(rows["hvalid"], torch.bool),
            jaw_rotvec=t(rows["jaw"]),
            expression=t(rows["expr"]),
            face_valid=t(rows["fvalid"], torch.bool),
        )
        with torch.no_grad():
            dirs = rest_forearm_dirs(smplx_model, inputs.shape_betas).double().cpu()
            # A degenerate shape (e.g. |beta| >> 3 from an untrained annotator) can fold the rest forearm
            # back on itself; its twist axis is then taken from the mean shape rather than failing the file.
            unit = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            degenerate = (unit[..., 0] <= -0.5) | (dirs.norm(dim=-1) <= 1e-9)
            if bool(degenerate.any()):
                mean_dirs = rest_forearm_dirs(smplx_model, torch.zeros_like(inputs.shape_betas[:1])).double().cpu()
                dirs = torch.where(degenerate[..., None], mean_dirs.expand_as(dirs), dirs)
            result = integrate_smplx(inputs, dirs, thresholds=thresholds)

    out: dict[str, Any] = {}
    replaced = {s: 0 for s in SIDES}
    rejected = {s: 0 for s in SIDES}
    rejected_ids: dict[str, list[str]] = {s: [] for s in SIDES}
    hvalid_count = {s: 0 for s in SIDES}
    flipped_count = {s: 0 for s in SIDES}
    for i, aid in enumerate(ids):
        rec = body[aid]
        sp = dict(rec["smplx_param"])
        hv = result.hand_valid[i].tolist()
        status = {}
        for s, side in enumerate(SIDES):
            if bool(result.wrist_replaced[i, s]):
                status[side] = "replaced"
                replaced[side] += 1
            elif bool(result.wrist_rejected[i, s]):
                status[side] = "rejected"
                rejected[side] += 1
                rejected_ids[side].append(aid)
            else:
                status[side] = "no_hand"
            hvalid_count[side] += int(hv[s])
            flipped_count[side] += int(rows["flipped"][i][s])
        sp.update(
            root_pose=result.root_rotvec[i].tolist(),
            body_pose=result.body_pose_rotvecs[i].reshape(-1).tolist(),
            lhand_pose=result.left_hand_pose_rotvecs[i].reshape(-1).tolist(),
            rhand_pose=result.right_hand_pose_rotvecs[i].reshape(-1).tolist(),
            jaw_pose=result.jaw_rotvec[i].tolist(),
            shape=rows["shape"][i].tolist(),
            expr=result.expression[i].tolist(),
            trans=result.transl_m[i].tolist(),
            lhand_valid=bool(hv[0]),
            rhand_valid=bool(hv[1]),
            face_valid=bool(result.face_valid[i]),
        )
        euler_deg = torch.rad2deg(result.wrist_candidate_euler_rad[i])
        new_rec: dict[str, Any] = dict(rec)  # keeps cam_param and any extra keys of the body record
        new_rec["smplx_param"] = sp
        new_rec["integration"] = {
            "lwrist": status["left"],
            "rwrist": status["right"],
            "lhand_flipped": bool(rows["flipped"][i][0]),
            "rhand_flipped": bool(rows["flipped"][i][1]),
            "lwrist_euler_xyz_deg": [round(float(v), 4) for v in euler_deg[0]],
            "rwrist_euler_xyz_deg": [round(float(v), 4) for v in euler_deg[1]],
        }
        out[aid] = new_rec
    summary = IntegrationSummary(
        persons=batch,
        wrists_replaced=replaced,
        wrists_rejected=rejected,
        hand_valid=hvalid_count,
        flipped_hands=flipped_count,
        face_valid=int(sum(bool(v) for v in rows["fvalid"])),
        hands_without_body=sum(1 for k in hand.keys() if str(k) not in body_ids),
        faces_without_body=sum(1 for k in face.keys() if str(k) not in body_ids),
        rejected_ids=rejected_ids,
    )
    return out, summary
