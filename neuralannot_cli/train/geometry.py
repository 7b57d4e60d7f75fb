"""Pure tensor math shared by training and inference: body-model forward per part, the crop camera,
projections into normalised crop coordinates, the closed-form root frame of stage 1 (PA alignment lives in
:func:`neuralannot_cli.evaluate.metrics.procrustes_align`).

The crop camera
---------------
Every item of :class:`~neuralannot_cli.data.pipeline.CroppedSampleDataset` carries the intrinsics of its
*virtual crop camera* (``focal_crop_px``, ``princpt_crop_px``): the original camera's focal scaled into
crop pixels and its principal point mapped through the crop affine; 3D joints are in that camera's frame
(which equals the original camera frame when the crop is not rotated or mirrored). Stage 2 turns the
network's weak-perspective ``cam_sxy`` into a translation in that camera with
:func:`neuralannot_cli.camera.cam_crop_to_full` (box = the whole crop: centre ``(S - 1) / 2``, side ``S``;
focal ``fx`` of the crop camera; principal point ``princpt_crop_px``), then projects the posed joints with
the full pinhole model of the crop camera. This is CLIFF's full-perspective reprojection; it replaces the
usual virtual 5000 px crop focal so that, for an un-rotated crop, the translation IS the translation in the
original image's camera and the projection into the original image (:mod:`.inference`) is exactly the
crop projection mapped through the inverse crop affine -- no approximation between training and annotation.
"""

from __future__ import annotations

import torch

from neuralannot_cli.camera import cam_crop_to_full, project_perspective

__all__ = [
    "body_forward",
    "regressor_body_forward",
    "crop_transl",
    "project_crop_px",
    "crop_px_to_norm",
    "frame_rotmat_from_joints",
]


def body_forward(body_model, part: str, root_rotvec, pose_rotvecs, betas, transl_m=None, *, full_mesh: bool = False,
                 root_rotmat=None, pose_rotmats=None):
    """Forward the part's body model: SMPL-X body (hands at the mean pose) or right MANO.

    Training and annotation read joints only, so by default SMPL-X poses only the vertices its joints and
    joint sets need (``BodyModel.forward(full_mesh=False)``: same joints, ~4x cheaper with its backward at
    batch 32 on a CPU core); pass ``full_mesh=True`` for the whole mesh.

    Args:
        root_rotvec: ``(B, 3)``; pose_rotvecs: ``(B, 21, 3)`` body / ``(B, 15, 3)`` hand; betas ``(B, 10)``;
        transl_m: ``(B, 3)`` or ``None``.
        root_rotmat: optional ``(B, 3, 3)``: the root as a matrix, used instead of ``root_rotvec``.
        pose_rotmats: optional ``(B, 21, 3, 3)``: the body joints as matrices, used instead of ``pose_rotvecs``
            (body only: MANO's hand pose stays axis-angle, which smplx offsets by the mean pose).
    """
    dtype = body_model.dtype
    kw = {"betas": betas.to(dtype)}
    if transl_m is not None:
        kw["transl_m"] = transl_m.to(dtype)
    if root_rotmat is not None:
        kw["root_rotmat"] = root_rotmat.to(dtype)
    else:
        kw["root_rotvec"] = root_rotvec.to(dtype)
    if part != "body":
        kw["hand_pose_rotvecs"] = pose_rotvecs.to(dtype)
    elif pose_rotmats is not None:
        kw["body_pose_rotmats"] = pose_rotmats.to(dtype)
    else:
        kw["body_pose_rotvecs"] = pose_rotvecs.to(dtype)
    return body_model(**kw, full_mesh=full_mesh)


def regressor_body_forward(body_model, part: str, out, transl_m=None, *, full_mesh: bool = False):
    """:func:`body_forward` of a :class:`~neuralannot_cli.nets.heads.RegressorOutput`, from its rotation matrices.

    The root (and, for the body, the joint rotations) go to the body model as the matrices the regressor decoded
    from 6D (``out.root_rotmat``, ``out.pose_rotmats``) where the output has them, so the training step does not
    convert them to axis-angle and back (the same rotations up to float rounding); otherwise (a pose decoded by a
    prior, MANO's hand pose) the axis-angle values are used.

    Args:
        out: the regressor output (``root_rotvec (B, 3)``, ``pose_rotvecs (B, K, 3)``, ``betas (B, 10)``, and
            optionally ``root_rotmat (B, 3, 3)`` / ``pose_rotmats (B, K, 3, 3)``).
        transl_m: ``(B, 3)`` or ``None``.
    """
    return body_forward(body_model, part, out.root_rotvec, out.pose_rotvecs, out.betas, transl_m,
                        full_mesh=full_mesh, root_rotmat=out.root_rotmat, pose_rotmats=out.pose_rotmats)


def crop_transl(cam_sxy: torch.Tensor, focal_crop_px: torch.Tensor, princpt_crop_px: torch.Tensor,
                crop_size: int) -> torch.Tensor:
    """``(B, 3)`` translation (metres) in the crop camera from the weak perspective ``(B, 3)``.

    ``tz = 2 fx / (S s)``, ``t_xy = (tx, ty) + tz (crop_centre - princpt_crop) / fx`` (see module docstring).
    """
    if cam_sxy.dim() != 2 or cam_sxy.shape[-1] != 3:
        raise ValueError(f"crop_transl: cam_sxy must have shape (batch, 3), got {tuple(cam_sxy.shape)}")
    centre = torch.full_like(princpt_crop_px, (crop_size - 1) / 2.0).to(cam_sxy.dtype)
    return cam_crop_to_full(cam_sxy, centre, float(crop_size), focal_crop_px[..., 0].to(cam_sxy.dtype),
                            princpt_crop_px.to(cam_sxy.dtype))


def project_crop_px(joints_cam_m: torch.Tensor, focal_crop_px: torch.Tensor, princpt_crop_px: torch.Tensor) -> torch.Tensor:
    """``(B, J, 3)`` crop-camera points -> ``(B, J, 2)`` crop pixels."""
    return project_perspective(joints_cam_m, focal_crop_px.to(joints_cam_m.dtype), princpt_crop_px.to(joints_cam_m.dtype))


def crop_px_to_norm(uv_crop_px: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Crop pixels -> normalised crop coordinates ``(uv - (S - 1) / 2) / (S / 2)``."""
    return (uv_crop_px - (crop_size - 1) / 2.0) / (crop_size / 2.0)


def frame_rotmat_from_joints(rest_joints_m: torch.Tensor, joints_m: torch.Tensor, weights: torch.Tensor,
                             fallback_rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation that best maps rest-pose joints onto observed joints (weighted Kabsch via roma, no scale).

    Used by stage 1 to start the root rotation from the GT torso (or palm) frame: the pelvis' yaw is only weakly
    pinned by the L1 on 17 joints (the network can misplace the hips by a few cm and bend the legs back),
    so a regressed root rotation settles in a wrong yaw; the frame of the GT joints fixes it in closed form.

    Args:
        rest_joints_m: ``(F, 3)`` frame joints of the rest pose, root-relative, model frame.
        joints_m: ``(B, F, 3)`` observed frame joints (root-relative; any translation is removed).
        weights: ``(B, F)`` >= 0 (0 = missing joint).
        fallback_rotmat: ``(3, 3)`` used where fewer than 3 joints have weight.

    Returns:
        ``(B, 3, 3)`` rotation ``R`` with ``joints ~ R @ rest + t`` (no gradient flows through it).
    """
    import roma

    if rest_joints_m.dim() != 2 or rest_joints_m.shape[-1] != 3:
        raise ValueError(f"frame_rotmat_from_joints: rest_joints_m must be (F, 3), got {tuple(rest_joints_m.shape)}")
    f = rest_joints_m.shape[0]
    if joints_m.dim() != 3 or tuple(joints_m.shape[1:]) != (f, 3) or tuple(weights.shape) != tuple(joints_m.shape[:2]):
        raise ValueError(f"frame_rotmat_from_joints: expected joints_m (B, {f}, 3) and weights (B, {f}), got "
                         f"{tuple(joints_m.shape)} and {tuple(weights.shape)}")
    with torch.no_grad():
        w = torch.where(torch.isfinite(joints_m).all(-1), weights.clamp_min(0).double(), torch.zeros_like(weights,
                        dtype=torch.float64))
        x = torch.nan_to_num(joints_m.double())
        ok = (w > 0).sum(-1) >= 3
        w_safe = torch.where(ok[:, None], w, torch.ones_like(w))
        rest = rest_joints_m.double().expand(x.shape[0], f, 3)
        rotmat = roma.rigid_points_registration(rest, x, weights=w_safe)[0]
        fb = fallback_rotmat.to(rotmat).expand_as(rotmat)
        good = ok & torch.isfinite(rotmat).flatten(1).all(-1)
        return torch.where(good[:, None, None], rotmat, fb).to(joints_m.dtype)
