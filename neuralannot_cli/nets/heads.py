"""NeuralAnnot regressors: the stage-1 network (image + GT 3D pose -> Theta) and the stage-2 network (image -> Theta).

Architecture (Moon, Choi & Lee, "NeuralAnnot", CVPRW 2022, Fig. 2)
-----------------------------------------------------------------
- Both stages: a ResNet (:class:`~neuralannot_cli.nets.backbone.ResNetBackbone`) gives the global-average-pooled
  image feature ``F`` (``C`` = 512 or 2048).
- Stage 1 (:class:`Stage1Net`): the GT 3D joints, root-relative, in METRES, flattened ``(J*3,)`` ->
  FC 512 -> ReLU -> FC 512 -> ReLU = pose feature; ``concat(F, pose feature)`` -> one FC -> Theta.
- Stage 2 (:class:`Stage2Net`): ``F`` alone -> one FC -> Theta, where the articulated pose is a low-dimensional
  code (VPoser latent for the body, PCA coefficients for MANO hands) decoded by the pose prior passed to
  ``forward``; with ``code_dim=None`` it regresses the joint rotations directly (the "without prior" ablation).

Theta (one flat FC output, split in this order)
-----------------------------------------------
``root_rot6d (6)`` | ``pose_rot6d (K*6)`` or ``pose_code (Z)`` | ``betas (10)`` | ``cam_raw (3)``.

- Rotations use the project's 6D layout (:mod:`neuralannot_cli.rotation`): the FIRST TWO COLUMNS of the
  rotation matrix, column-major, ``[R00, R10, R20, R01, R11, R21]``, decoded by Gram-Schmidt
  (:func:`~neuralannot_cli.rotation.rot6d_to_rotvec`). Not the interleaved SPIN/Hand4Whole layout.
- ``cam_sxy = (s, tx, ty)``: weak perspective in normalised crop coordinates (``[-1, 1]`` across the crop,
  :func:`neuralannot_cli.camera.project_weak_persp`: ``uv_norm = s * (X[:2] + (tx, ty))``, ``X`` in metres).
  ``s = s0 * exp(L * tanh(raw_s / L))`` with ``L = CAM_LOG_SCALE_LIMIT``: always positive and smoothly bounded
  to ``s0 * [e^-L, e^L]`` (the person fills a crop made from its own box, so its scale is known to within that
  factor); ``tx, ty`` are the raw outputs (metres). Bounding the depth is what Hand4Whole's sigmoid ``gamma``
  does; a hard clamp (or none) let a few steps at a large learning rate push ``s`` to a flat region where the 2D
  loss has no gradient (a body kilometres away whose joints project onto one point) and stay there.

Initialisation (training starts from the mean pose, not from noise)
-------------------------------------------------------------------
The output FC has small weights (Xavier uniform, gain 0.01, as HMR/SPIN's ``decpose``) and a bias that
decodes to the "mean" Theta:

- joint rotations: identity (``rot6d = [1, 0, 0, 0, 1, 0]``); the pose code: 0 (the prior's mean);
- root rotation: ``PartSpec.init_root_rotvec`` = ``(pi, 0, 0)``, i.e. the model's y-up canonical frame seen
  upright by the project's OpenCV camera (x right, y DOWN, z forward) -- SPIN's mean root orientation. An
  identity root would start every person upside down in the image;
- betas: 0 (mean shape);
- camera: ``raw_s = 0`` so ``s = s0 = PartSpec.init_cam_scale``, ``tx = ty = 0``. ``s0`` makes the part fill
  about 80 % of the crop (the crop is the 1.25x enlarged box): body ``2 * 0.8 / 1.7 m ~ 0.9``,
  right hand (wrist to fingertip ~0.2 m) ``2 * 0.8 / 0.2 m = 8``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from neuralannot_cli.nets.backbone import ResNetBackbone
from neuralannot_cli.rotation import (
    rot6d_to_rotmat,
    rotmat_to_rot6d,
    rotmat_to_rotvec,
    rotvec_to_rot6d,
    rotvec_to_rotmat,
)
from neuralannot_cli.train.geometry import frame_rotmat_from_joints

if TYPE_CHECKING:  # the prior module is optional at import time
    from neuralannot_cli.nets.prior import PosePrior

__all__ = [
    "PartSpec",
    "part_spec",
    "RegressorOutput",
    "Stage1Net",
    "Stage2Net",
    "CAM_LOG_SCALE_LIMIT",
    "IDENTITY_ROT6D",
]

#: 6D of the identity rotation in the project's layout (first two columns, column-major).
IDENTITY_ROT6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

#: ``|log(s / s0)|`` is smoothly bounded by this (``s`` within ``s0 * [e^-2, e^2]``, about 0.14x to 7.4x the
#: initial scale), so a diverging output can neither overflow ``exp`` nor collapse the scale towards 0.
CAM_LOG_SCALE_LIMIT = 2.0

NUM_BETAS = 10


@dataclass(frozen=True)
class PartSpec:
    """What a regressor predicts for one part.

    Attributes:
        part: ``'body'`` or ``'hand'``.
        model_type: body model the parameters drive (``'smplx'`` / ``'mano'``, right hand).
        num_pose_joints: articulated joints ``K`` below the root (SMPL-X body 21, MANO 15).
        num_betas: shape coefficients (10).
        init_root_rotvec: root rotation the head starts from (axis-angle, radians).
        init_cam_scale: weak-perspective scale ``s0`` the head starts from (part fills ~80 % of the crop).
    """

    part: Literal["body", "hand"]
    model_type: Literal["smplx", "mano"]
    num_pose_joints: int
    num_betas: int
    init_root_rotvec: tuple[float, float, float]
    init_cam_scale: float


_PART_SPECS = {
    "body": PartSpec("body", "smplx", 21, NUM_BETAS, (math.pi, 0.0, 0.0), 0.9),
    "hand": PartSpec("hand", "mano", 15, NUM_BETAS, (math.pi, 0.0, 0.0), 8.0),
}


def part_spec(part: Literal["body", "hand"]) -> PartSpec:
    """The :class:`PartSpec` of ``'body'`` (SMPL-X root + 21 body joints) or ``'hand'`` (MANO root + 15)."""
    if part not in _PART_SPECS:
        raise ValueError(f"part_spec: part must be 'body' or 'hand', got {part!r}")
    return _PART_SPECS[part]


@dataclass(frozen=True)
class RegressorOutput:
    """Theta predicted for a batch.

    Attributes:
        root_rotvec: ``(batch, 3)`` root (global) rotation, axis-angle, crop camera frame.
        pose_rotvecs: ``(batch, K, 3)`` joint rotations relative to the parent, or ``None`` (stage 2 with a code
            and no prior passed to ``forward``).
        pose_code: ``(batch, Z)`` prior code (stage 2 with a prior) or ``None``.
        root_rot6d: ``(batch, 6)`` raw 6D of the root (project layout, see module docstring).
        pose_rot6d: ``(batch, K, 6)`` raw 6D of the joints, or ``None`` when the pose is a code.
        betas: ``(batch, 10)``.
        cam_sxy: ``(batch, 3)`` weak perspective ``(s, tx, ty)``, ``s > 0``.
        root_rotmat: ``(batch, 3, 3)`` the root rotation as the matrix that ``root_rotvec`` was computed from, or
            ``None``.
        pose_rotmats: ``(batch, K, 3, 3)`` the joint rotations as the matrices decoded from ``pose_rot6d`` (that
            ``pose_rotvecs`` was computed from), or ``None`` when the pose is a code. Training feeds the matrices
            to the body model (:func:`~neuralannot_cli.train.geometry.regressor_body_forward`), which spares the
            axis-angle -> matrix conversion and its backward; the axis-angle values are what the losses
            regularise and what pseudo-GT files hold.
    """

    root_rotvec: torch.Tensor
    pose_rotvecs: torch.Tensor | None
    pose_code: torch.Tensor | None
    root_rot6d: torch.Tensor
    pose_rot6d: torch.Tensor | None
    betas: torch.Tensor
    cam_sxy: torch.Tensor
    root_rotmat: torch.Tensor | None = None
    pose_rotmats: torch.Tensor | None = None


class _ThetaDecoder(nn.Module):
    """One FC layer from a feature to Theta (``root6d | pose | betas | cam_raw``) with the mean-Theta init."""

    def __init__(self, in_dim: int, spec: PartSpec, pose_dim: int, pose_bias: torch.Tensor,
                 init_root_rotvec: tuple[float, float, float] | None = None):
        super().__init__()
        self.spec = spec
        self.pose_dim = pose_dim
        self.fc = nn.Linear(in_dim, 6 + pose_dim + spec.num_betas + 3)
        nn.init.xavier_uniform_(self.fc.weight, gain=0.01)
        init = spec.init_root_rotvec if init_root_rotvec is None else init_root_rotvec
        root6d = rotvec_to_rot6d(torch.tensor(init, dtype=torch.float64)).float()
        bias = torch.cat([root6d, pose_bias.float(), torch.zeros(spec.num_betas + 3)])
        with torch.no_grad():
            self.fc.bias.copy_(bias)
        self.register_buffer("cam_scale0", torch.tensor(float(spec.init_cam_scale)), persistent=False)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.fc(feat)
        root6d, pose, betas, cam_raw = out.split([6, self.pose_dim, self.spec.num_betas, 3], dim=-1)
        log_s = CAM_LOG_SCALE_LIMIT * torch.tanh(cam_raw[:, :1] / CAM_LOG_SCALE_LIMIT)
        cam_sxy = torch.cat([self.cam_scale0.to(out.dtype) * torch.exp(log_s), cam_raw[:, 1:]], dim=-1)
        return root6d, pose, betas, cam_sxy


def _check_images(images: object, cls: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{cls}.forward: images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{cls}.forward: images must have shape (batch, 3, H, W), got {tuple(images.shape)}")
    return images


class Stage1Net(nn.Module):
    """Stage-1 regressor: image + GT 3D joints -> Theta (see module docstring).

    Args:
        part: ``'body'`` or ``'hand'``.
        backbone_depth: ResNet depth (18, 34, 50).
        num_input_joints: ``J`` of the GT 3D joint set fed in (e.g. 17 for ``h36m_17``, 21 for ``hand_21``).
        pose_feat_dim: width of the two pose FC layers (512 in the paper).
        root_frame: optional ``(joint_indices, rest_joints_m)``: indices ``(F,)`` into the input joints of a
            near-rigid frame (body: pelvis, hips, torso, neck; hand: wrist and the four finger MCPs) and their
            rest-pose positions ``(F, 3)`` (root-relative, model frame). The root rotation is then
            ``R_frame @ R_net``, where ``R_frame`` aligns the rest frame to the GT joints in closed form
            (:func:`~neuralannot_cli.train.geometry.frame_rotmat_from_joints`) and the network's 6D (starting
            at identity) is a residual in the body's own frame. Without it the root is regressed from the
            mean root (the paper's plain design), which settles in a wrong pelvis yaw.
        canonical_joints: with ``root_frame``, feed the pose branch the GT joints rotated into that frame
            (``R_frame^T x``) instead of the camera frame. The articulated rotations are relative to their
            parents, so they do not change with the viewpoint; in the camera frame the two FC layers must learn
            that invariance from the data, in the body's own frame it is given.

    Attributes:
        backbone: the :class:`ResNetBackbone` (load ImageNet weights into it with ``load_backbone_weights``).
        spec: the :class:`PartSpec`.
    """

    def __init__(
        self,
        part: Literal["body", "hand"],
        backbone_depth: Literal[18, 34, 50] = 50,
        num_input_joints: int = 17,
        *,
        pose_feat_dim: int = 512,
        root_frame: tuple[tuple[int, ...], torch.Tensor] | None = None,
        canonical_joints: bool = False,
    ):
        super().__init__()
        if int(num_input_joints) < 1:
            raise ValueError(f"Stage1Net: num_input_joints must be >= 1, got {num_input_joints}")
        if canonical_joints and root_frame is None:
            raise ValueError("Stage1Net: canonical_joints needs a root_frame (the frame the joints are rotated into)")
        self.canonical_joints = bool(canonical_joints)
        self.spec = part_spec(part)
        self.num_input_joints = int(num_input_joints)
        self.root_frame_idx: tuple[int, ...] | None = None
        if root_frame is not None:
            idx, rest = tuple(int(i) for i in root_frame[0]), torch.as_tensor(root_frame[1], dtype=torch.float32)
            if len(idx) < 3 or tuple(rest.shape) != (len(idx), 3) or not all(0 <= i < self.num_input_joints for i in idx):
                raise ValueError(f"Stage1Net: root_frame needs >= 3 joint indices in [0, {self.num_input_joints}) "
                                 f"and rest joints of shape ({len(idx)}, 3); got {idx} and {tuple(rest.shape)}")
            self.root_frame_idx = idx
            # the same indices on the module's device (a Python-list index is uploaded on every call)
            self.register_buffer("root_frame_index", torch.tensor(idx, dtype=torch.long), persistent=False)
            self.register_buffer("root_frame_rest_m", rest.clone())
            self.register_buffer("root_frame_fallback", rotvec_to_rotmat(
                torch.tensor(self.spec.init_root_rotvec, dtype=torch.float64)).float())
        self.backbone = ResNetBackbone(backbone_depth)
        self.pose_mlp = nn.Sequential(
            nn.Linear(self.num_input_joints * 3, pose_feat_dim),
            nn.ReLU(inplace=True),
            nn.Linear(pose_feat_dim, pose_feat_dim),
            nn.ReLU(inplace=True),
        )
        k = self.spec.num_pose_joints
        self.decoder = _ThetaDecoder(
            self.backbone.out_channels + pose_feat_dim, self.spec, k * 6, torch.tensor(IDENTITY_ROT6D).repeat(k),
            init_root_rotvec=None if root_frame is None else (0.0, 0.0, 0.0),
        )

    def _valid_joints(self, joints_3d_rel_m: torch.Tensor, joints_conf: torch.Tensor | None,
                      b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(joints, valid)``: the input joints with invalid ones zeroed, and ``(B, J, 1)`` validity."""
        j = self.num_input_joints
        if not isinstance(joints_3d_rel_m, torch.Tensor) or tuple(joints_3d_rel_m.shape) != (b, j, 3):
            got = tuple(joints_3d_rel_m.shape) if isinstance(joints_3d_rel_m, torch.Tensor) else type(joints_3d_rel_m)
            raise ValueError(f"Stage1Net.forward: joints_3d_rel_m must have shape ({b}, {j}, 3), got {got}")
        valid = torch.isfinite(joints_3d_rel_m).all(dim=-1, keepdim=True)
        if joints_conf is not None:
            if tuple(joints_conf.shape) != (b, j):
                raise ValueError(
                    f"Stage1Net.forward: joints_conf must have shape ({b}, {j}), got {tuple(joints_conf.shape)}"
                )
            valid = valid & (joints_conf > 0).unsqueeze(-1)
        return torch.where(valid, joints_3d_rel_m, torch.zeros_like(joints_3d_rel_m)), valid

    def root_frame_rotmat(self, joints_3d_rel_m: torch.Tensor,
                          joints_conf: torch.Tensor | None = None) -> torch.Tensor | None:
        """``(B, 3, 3)`` the torso / palm frame of the GT joints (weighted Kabsch), or ``None`` without a root frame.

        A function of the inputs only (no parameters): :meth:`forward` computes it unless it is given, so a
        caller can compute it outside a captured CUDA graph (its 3x3 solve may synchronise with the host).
        """
        if self.root_frame_idx is None:
            return None
        return self._frame(*self._valid_joints(joints_3d_rel_m, joints_conf, joints_3d_rel_m.shape[0]))

    def _frame(self, joints: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The root frame from :meth:`_valid_joints`' output."""
        idx = self.root_frame_index
        weights = valid[:, idx, 0].to(joints.dtype)
        return frame_rotmat_from_joints(self.root_frame_rest_m, joints[:, idx], weights, self.root_frame_fallback)

    def forward(
        self,
        images: torch.Tensor,
        joints_3d_rel_m: torch.Tensor,
        joints_conf: torch.Tensor | None = None,
        frame_rotmat: torch.Tensor | None = None,
    ) -> RegressorOutput:
        """Predict Theta.

        Args:
            images: ``(batch, 3, H, W)`` ImageNet-normalised crops.
            joints_3d_rel_m: ``(batch, J, 3)`` GT 3D joints, root-relative (see
                :func:`neuralannot_cli.losses.root_align`), metres, crop camera frame.
            joints_conf: optional ``(batch, J)``; joints with ``conf <= 0`` or non-finite coordinates are fed as 0.
            frame_rotmat: optional ``(batch, 3, 3)`` :meth:`root_frame_rotmat` of these joints, precomputed
                (ignored without a root frame).

        Returns:
            :class:`RegressorOutput` with ``pose_rotvecs`` / ``pose_rot6d`` set and ``pose_code`` None.
        """
        images = _check_images(images, "Stage1Net")
        b = images.shape[0]
        joints, valid = self._valid_joints(joints_3d_rel_m, joints_conf, b)
        frame = None
        if self.root_frame_idx is not None:
            if frame_rotmat is None:
                frame = self._frame(joints, valid)
            elif tuple(frame_rotmat.shape) != (b, 3, 3):
                raise ValueError(f"Stage1Net.forward: frame_rotmat must have shape ({b}, 3, 3), "
                                 f"got {tuple(frame_rotmat.shape)}")
            else:
                frame = frame_rotmat
        pose_in = joints @ frame.to(joints.dtype) if self.canonical_joints else joints  # rows: R^T x
        feat = torch.cat([self.backbone(images), self.pose_mlp(pose_in.flatten(1).to(images.dtype))], dim=-1)
        root6d, pose6d_flat, betas, cam_sxy = self.decoder(feat)
        if frame is not None:
            root6d = rotmat_to_rot6d(frame.to(root6d.dtype) @ rot6d_to_rotmat(root6d))
        root_rotmat = rot6d_to_rotmat(root6d)
        pose6d = pose6d_flat.unflatten(-1, (self.spec.num_pose_joints, 6))
        pose_rotmats = rot6d_to_rotmat(pose6d)
        return RegressorOutput(
            root_rotvec=rotmat_to_rotvec(root_rotmat),
            pose_rotvecs=rotmat_to_rotvec(pose_rotmats),
            pose_code=None,
            root_rot6d=root6d,
            pose_rot6d=pose6d,
            betas=betas,
            cam_sxy=cam_sxy,
            root_rotmat=root_rotmat,
            pose_rotmats=pose_rotmats,
        )


class Stage2Net(nn.Module):
    """Stage-2 regressor: image alone -> Theta with the pose as a prior code (see module docstring).

    Args:
        part: ``'body'`` or ``'hand'``.
        backbone_depth: ResNet depth (18, 34, 50).
        code_dim: ``Z`` of the pose prior's code (VPoser latent 32, MANO PCA e.g. 6..45), or ``None`` to regress
            the ``K`` joint rotations in 6D directly (the paper's "without prior" ablation, Table 2).

    Attributes:
        backbone: the :class:`ResNetBackbone`.
        spec: the :class:`PartSpec`.
        code_dim: as given.
    """

    def __init__(
        self,
        part: Literal["body", "hand"],
        backbone_depth: Literal[18, 34, 50] = 50,
        code_dim: int | None = 32,
    ):
        super().__init__()
        if code_dim is not None and int(code_dim) < 1:
            raise ValueError(f"Stage2Net: code_dim must be >= 1 or None, got {code_dim}")
        self.spec = part_spec(part)
        self.code_dim = None if code_dim is None else int(code_dim)
        self.backbone = ResNetBackbone(backbone_depth)
        k = self.spec.num_pose_joints
        if self.code_dim is None:
            pose_dim, pose_bias = k * 6, torch.tensor(IDENTITY_ROT6D).repeat(k)
        else:
            pose_dim, pose_bias = self.code_dim, torch.zeros(self.code_dim)
        self.decoder = _ThetaDecoder(self.backbone.out_channels, self.spec, pose_dim, pose_bias)

    def forward(self, images: torch.Tensor, prior: PosePrior | None = None) -> RegressorOutput:
        """Predict Theta.

        Args:
            images: ``(batch, 3, H, W)`` ImageNet-normalised crops.
            prior: the pose prior whose code the head regresses (``prior.code_dim == code_dim``,
                ``prior.num_joints == K``); decodes ``pose_rotvecs``. Ignored (must be None) when ``code_dim`` is
                None.

        Returns:
            :class:`RegressorOutput`: with a code, ``pose_code`` set, ``pose_rot6d`` None and ``pose_rotvecs``
            decoded by ``prior`` (None if no prior given); without a code, ``pose_rot6d`` / ``pose_rotvecs`` set.
        """
        images = _check_images(images, "Stage2Net")
        root6d, pose, betas, cam_sxy = self.decoder(self.backbone(images))
        k = self.spec.num_pose_joints
        pose_code = pose6d = pose_rotvecs = pose_rotmats = None
        if self.code_dim is None:
            if prior is not None:
                raise ValueError(
                    "Stage2Net.forward: this network regresses rotations directly (code_dim=None); pass no prior"
                )
            pose6d = pose.unflatten(-1, (k, 6))
            pose_rotmats = rot6d_to_rotmat(pose6d)
            pose_rotvecs = rotmat_to_rotvec(pose_rotmats)
        else:
            pose_code = pose
            if prior is not None:
                if int(prior.code_dim) != self.code_dim or int(prior.num_joints) != k:
                    raise ValueError(
                        f"Stage2Net.forward: prior has code_dim={prior.code_dim}, num_joints={prior.num_joints}; "
                        f"the network needs code_dim={self.code_dim}, num_joints={k}"
                    )
                pose_rotvecs = prior.decode(pose_code)
                if tuple(pose_rotvecs.shape) != (images.shape[0], k, 3):
                    raise ValueError(
                        f"Stage2Net.forward: prior.decode returned shape {tuple(pose_rotvecs.shape)}, "
                        f"expected ({images.shape[0]}, {k}, 3)"
                    )
        root_rotmat = rot6d_to_rotmat(root6d)
        return RegressorOutput(
            root_rotvec=rotmat_to_rotvec(root_rotmat),
            pose_rotvecs=pose_rotvecs,
            pose_code=pose_code,
            root_rot6d=root6d,
            pose_rot6d=pose6d,
            betas=betas,
            cam_sxy=cam_sxy,
            root_rotmat=root_rotmat,
            pose_rotmats=pose_rotmats,
        )
