"""The training losses of stage 1 and stage 2 as ``nn.Module``\\ s over tensors only.

A training step is ``loss, parts = LossModule(*inputs)`` followed by backward and the optimiser step
(:mod:`.algorithm`). The inputs are the collated batch's tensors in a fixed order (:func:`stage1_inputs`,
:func:`stage2_inputs`); everything that is not a tensor (joint sets, which sub-batch is the target, loss
weights, the crop size) is fixed when the module is built. That makes a loss module a drop-in callable for
``torch.cuda.make_graphed_callables`` (:mod:`.cuda_graphs`): its forward and backward can be captured once and
replayed, because the forward has no host synchronisation and no host data (pinned by
``tests/test_train_steps.py``, which watches both losses' second forward + backward on the CPU for syncs, boolean
masks, host data, device-to-host reads and linear algebra).

Outputs: ``(total, parts)``, the scalar loss and a ``(P,)`` tensor of its unweighted, detached parts, named by
:data:`STAGE1_PARTS` / :data:`STAGE2_PARTS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from neuralannot_cli.losses import (
    LossWeights,
    keypoint_3d_l1_root_aligned,
    keypoint_l1,
    loss_aux,
    param_l1,
    pose_sq_reg,
    root_rotmat_l1,
    shape_sq_reg,
)
from neuralannot_cli.rotation import rotvec_to_rotmat
from neuralannot_cli.train.datasets import ROOT_JOINT
from neuralannot_cli.train.geometry import crop_transl, project_crop_px, regressor_body_forward
from neuralannot_cli.train.inference import target_joints

__all__ = [
    "STAGE1_PARTS",
    "STAGE2_PARTS",
    "Stage1Loss",
    "Stage2Group",
    "Stage2Loss",
    "stage1_inputs",
    "stage2_inputs",
    "valid_3d",
]

STAGE1_PARTS = ("kp3d", "pose_reg")
"""Names of the parts returned by :class:`Stage1Loss`, in order."""
STAGE2_PARTS = ("kp2d", "pose_reg", "kp3d", "param", "root", "shape_reg")
"""Names of the parts returned by :class:`Stage2Loss`, in order."""

_TARGET_KEYS = ("image", "focal_crop_px", "princpt_crop_px", "keypoints_2d_crop_px", "keypoints_conf")
_AUX_KEYS = (*_TARGET_KEYS, "joints_3d_cam_mm", "has_3d", "pose_rotvecs_star")
_ROOT_KEYS = ("cam_aug_rotmat", "root_rotvec_star")

Stage2Group = tuple[str, bool]
"""``(joint_set, is_target)`` of one sub-batch of a stage-2 batch."""


def _to_device(t: Any, device: torch.device, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what}: expected a tensor, got {type(t).__name__}")
    return t.to(device, non_blocking=True)


def valid_3d(has_3d: torch.Tensor, keypoints_conf: torch.Tensor, root: int) -> torch.Tensor:
    """``(B, J)`` float weight of each GT 3D joint: the sample has 3D joints, the joint is labelled
    (``keypoints_conf > 0``: the loaders' validity, e.g. InterHand2.6M ``joint_valid``, as the evaluation reads it)
    and so is the root (targets are root-relative). Elementwise only (no host sync, graph-capturable)."""
    valid = has_3d.float()[:, None] * (keypoints_conf > 0).float()
    return valid * valid[:, root : root + 1]


def _stage1_targets(joints_3d_cam_mm: torch.Tensor, valid: torch.Tensor, root: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gt_m, conf, gt_rel)``: GT joints in metres, ``(B, J)`` validity, root-relative joints. ``valid``: the
    per-joint weights ``(B, J)`` (:func:`valid_3d`) or a per-sample ``has_3d`` ``(B,)``."""
    gt_m = joints_3d_cam_mm.float() / 1000.0
    conf = valid.float() if valid.dim() == 2 else valid.float()[:, None].expand(gt_m.shape[:2])
    return gt_m, conf, gt_m - gt_m[:, root : root + 1]


def stage1_inputs(batch: dict[str, Any], device: torch.device, *, net: nn.Module | None = None,
                  joint_set: str | None = None) -> tuple[torch.Tensor, ...]:
    """``(image (B, 3, S, S), joints_3d_cam_mm (B, J, 3), valid (B, J))`` of a collated stage-1 batch, on ``device``:
    ``valid`` = :func:`valid_3d` of its ``has_3d`` and ``keypoints_conf`` (with ``joint_set``; without it, or a batch
    without ``keypoints_conf``, the ``(B,)`` ``has_3d``).

    With ``net`` (a :class:`~neuralannot_cli.nets.heads.Stage1Net` that has a root frame) and the batch's
    ``joint_set``, a 4th tensor: the ``(B, 3, 3)`` root frame of the GT joints
    (:meth:`~neuralannot_cli.nets.heads.Stage1Net.root_frame_rotmat`), computed here, outside the loss module,
    because its 3x3 solve may synchronise with the host (it has no parameters: same numbers either way).
    """
    tensors = tuple(_to_device(batch[k], device, f"stage-1 batch[{k!r}]")
                    for k in ("image", "joints_3d_cam_mm", "has_3d"))
    if joint_set is not None and "keypoints_conf" in batch:
        conf = _to_device(batch["keypoints_conf"], device, "stage-1 batch['keypoints_conf']")
        tensors = (*tensors[:2], valid_3d(tensors[2], conf, ROOT_JOINT[joint_set]))
    if net is None or getattr(net, "root_frame_idx", None) is None:
        return tensors
    if joint_set is None:
        raise ValueError("stage1_inputs: the root frame needs the batch's joint_set")
    with torch.no_grad():
        _, conf, gt_rel = _stage1_targets(tensors[1], tensors[2], ROOT_JOINT[joint_set])
        return (*tensors, net.root_frame_rotmat(gt_rel, conf))


def stage2_inputs(batch: dict[str, Any], device: torch.device, *, with_root: bool
                  ) -> tuple[tuple[Stage2Group, ...], tuple[torch.Tensor, ...]]:
    """Layout and flat tensors of a :func:`~neuralannot_cli.train.datasets.collate_stage2` batch, on ``device``.

    Sub-batches in order: the aux ones (one per joint set), then the target. Per sub-batch: image, focal_crop_px,
    princpt_crop_px, keypoints_2d_crop_px, keypoints_conf; aux ones also joints_3d_cam_mm, has_3d,
    pose_rotvecs_star and, when ``with_root``, cam_aug_rotmat and root_rotvec_star.
    """
    groups: list[Stage2Group] = []
    tensors: list[torch.Tensor] = []
    subs = [(g, False) for g in batch["aux"]]
    if batch.get("target") is not None:
        subs.append((batch["target"], True))
    for g, is_target in subs:
        keys = _TARGET_KEYS if is_target else (*_AUX_KEYS, *(_ROOT_KEYS if with_root else ()))
        groups.append((str(g["joint_set"][0]), is_target))
        tensors.extend(_to_device(g[k], device, f"stage-2 batch[{k!r}]") for k in keys)
    if not groups or not groups[-1][1]:
        raise ValueError("stage-2 batch: no target sub-batch (MixedBatchSampler batches are half aux, half target)")
    return tuple(groups), tuple(tensors)


class Stage1Loss(nn.Module):
    """``L_ax`` of a :class:`~neuralannot_cli.nets.heads.Stage1Net` on one aux joint set.

    ``forward(image, joints_3d_cam_mm, valid[, frame_rotmat]) -> (total, parts)`` (the tensors of
    :func:`stage1_inputs`; ``valid`` ``(B, J)`` or ``has_3d`` ``(B,)``); ``parts`` = :data:`STAGE1_PARTS`.

    Args:
        model: the stage-1 network (or its DDP wrapper).
        body_model: the frozen :class:`~neuralannot_cli.body.model.BodyModel`.
        part: ``'body'`` or ``'hand'``.
        joint_set: the aux set's joint set (e.g. ``'h36m_17'``).
        weights: the loss weights.
    """

    def __init__(self, model: nn.Module, body_model: nn.Module, part: str, joint_set: str,
                 weights: LossWeights) -> None:
        super().__init__()
        self.model = model
        self.body_model = body_model
        self.part = part
        self.joint_set = joint_set
        self.root = ROOT_JOINT[joint_set]
        self.weights = weights

    def forward(self, image: torch.Tensor, joints_3d_cam_mm: torch.Tensor, valid: torch.Tensor,
                frame_rotmat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        root = self.root
        gt_m, conf, gt_rel = _stage1_targets(joints_3d_cam_mm, valid, root)
        out = self.model(image, gt_rel, conf, frame_rotmat)
        joints = self.body_model.joints_in(regressor_body_forward(self.body_model, self.part, out), self.joint_set)
        total, parts = loss_aux(joints, gt_m, conf, out.pose_rotvecs, root=root, weights=self.weights)
        return total, torch.stack([parts[k] for k in STAGE1_PARTS])


class Stage2Loss(nn.Module):
    """``L_tg`` of a :class:`~neuralannot_cli.nets.heads.Stage2Net` on a half-aux / half-target batch.

    ``forward(*tensors) -> (total, parts)`` with the tensors of :func:`stage2_inputs` for ``groups``;
    ``parts`` = :data:`STAGE2_PARTS` (2D L1 in crop units averaged over sub-batches, the target pose
    regulariser, aux 3D L1, aux ``|θ - θ*|``, aux root-rotation L1, shape regulariser).

    Args:
        model: the stage-2 network (or its DDP wrapper).
        prior: the frozen pose prior, or ``None`` (6D rotations regressed directly).
        body_model: the frozen body model.
        part: ``'body'`` or ``'hand'``.
        input_size: crop side ``S`` (px).
        weights: the loss weights.
        groups: the batch layout, ``(joint_set, is_target)`` per sub-batch, the target last.
        with_root: the aux sub-batches carry ``cam_aug_rotmat`` and ``root_rotvec_star`` (``w_root > 0``).
    """

    def __init__(self, model: nn.Module, prior: nn.Module | None, body_model: nn.Module, part: str, input_size: int,
                 weights: LossWeights, groups: Sequence[Stage2Group], *, with_root: bool) -> None:
        super().__init__()
        groups = tuple((str(j), bool(t)) for j, t in groups)
        if not groups or not groups[-1][1] or any(t for _, t in groups[:-1]):
            raise ValueError(f"Stage2Loss: groups must be aux sub-batches then one target, got {groups}")
        self.model = model
        self.prior = prior
        self.body_model = body_model
        self.part = part
        self.input_size = int(input_size)
        self.weights = weights
        self.groups = groups
        self.with_root = bool(with_root)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size, part, w = self.input_size, self.part, self.weights
        subs: list[dict[str, torch.Tensor]] = []
        pos = 0
        for _, is_target in self.groups:
            keys = _TARGET_KEYS if is_target else (*_AUX_KEYS, *(_ROOT_KEYS if self.with_root else ()))
            subs.append(dict(zip(keys, tensors[pos : pos + len(keys)])))
            pos += len(keys)
        if pos != len(tensors):
            raise ValueError(f"Stage2Loss: expected {pos} tensors for groups {self.groups}, got {len(tensors)}")
        images = torch.cat([g["image"] for g in subs])
        out = self.model(images, self.prior) if self.prior is not None else self.model(images)
        focal = torch.cat([g["focal_crop_px"] for g in subs]).float()
        princpt = torch.cat([g["princpt_crop_px"] for g in subs]).float()
        transl = crop_transl(out.cam_sxy, focal, princpt, size)
        bo = regressor_body_forward(self.body_model, part, out, transl)
        kp2d_terms, kp3d_terms, param_terms, root_terms = [], [], [], []
        start = 0
        for g, (jset, is_target) in zip(subs, self.groups):
            b = g["image"].shape[0]
            sl = slice(start, start + b)
            start += b
            joints = (target_joints(self.body_model, part, bo) if is_target
                      else self.body_model.joints_in(bo, jset))[sl]
            uv = project_crop_px(joints, focal[sl], princpt[sl])
            kp2d_terms.append(keypoint_l1(uv / size, g["keypoints_2d_crop_px"] / size, g["keypoints_conf"]))
            if not is_target:
                gt_m = g["joints_3d_cam_mm"].float() / 1000.0
                conf3 = valid_3d(g["has_3d"], g["keypoints_conf"], ROOT_JOINT[jset])
                kp3d_terms.append(keypoint_3d_l1_root_aligned(joints, gt_m, conf3, ROOT_JOINT[jset]))
                param_terms.append(param_l1(out.pose_rotvecs[sl], g["pose_rotvecs_star"].float()))
                if w.w_root > 0:
                    star = g["cam_aug_rotmat"].float() @ rotvec_to_rotmat(g["root_rotvec_star"].float())
                    root_terms.append(root_rotmat_l1(out.root_rotmat[sl], star))
        nt = subs[-1]["image"].shape[0]
        reg = pose_sq_reg(out.pose_rotvecs[-nt:])
        kp2d = torch.stack(kp2d_terms).mean()
        kp3d = torch.stack(kp3d_terms).mean() if kp3d_terms else kp2d.new_zeros(())
        param = torch.stack(param_terms).mean() if param_terms else kp2d.new_zeros(())
        root_l1 = torch.stack(root_terms).mean() if root_terms else kp2d.new_zeros(())
        shape = shape_sq_reg(out.betas)
        total = (w.w_2d * kp2d + w.lambda_tg * reg + w.w_3d * kp3d + w.w_param * param
                 + w.w_root * root_l1 + w.w_shape * shape)
        parts = torch.stack([kp2d, reg, kp3d, param, root_l1, shape]).detach()
        return total, parts
