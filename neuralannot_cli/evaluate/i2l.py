"""I2L-MeshNet-style lixel estimator (``neuralannot evaluate indirect --estimator i2l``).

After Moon & Lee, "I2L-MeshNet: Image-to-Lixel Prediction Network for Accurate 3D Human Pose and Mesh
Estimation from a Single RGB Image" (ECCV 2020). Trained on the pseudo-GT of a target set and tested with the
same test-set path and metrics as the ``regressor`` estimator (:mod:`neuralannot_cli.evaluate.indirect`), so
pseudo-GT sources compare fairly.

Network (:class:`LixelNet`)
---------------------------
ResNet feature map ``(batch, C, S/32, S/32)`` (:meth:`~neuralannot_cli.nets.backbone.ResNetBackbone.
forward_featmap`), shared by two :class:`LixelHead` s (PoseNet over the body model's pose joints, MeshNet
over the vertices of a sub-sampled mesh). Each head: three stride-2 deconvolutions to the heatmap resolution
``H = S/4``; x lixels = 1x1 conv1d of the feature averaged over the rows, y lixels = the same averaged over
the columns, z lixels = the pooled feature -> conv1d to ``256 * D`` channels -> view ``(256, D)`` -> conv1d;
each 1D heatmap -> :func:`soft_argmax_1d`. Simplification vs I2L: one backbone (I2L runs a second ResNet on
pose-guided features for MeshNet; not worth its CPU cost here).

Lixel coordinates (:func:`encode_lixels` / :func:`decode_lixels`)
-----------------------------------------------------------------
``(batch, N, 3)`` = (x, y) in heatmap pixels of the crop and z in depth bins. Pixel centres: crop pixel
``u`` <-> heatmap ``x = (u + 0.5) H / S - 0.5``. Depth: ``dz = Z - Z_root`` (metres, camera frame, root =
body-model kinematic joint 0: pelvis / wrist) over a fixed range (2 m body, 0.3 m hand), bin centres:
``z = (dz / range + 0.5) D - 0.5``, ``D = H``. Targets come from the pseudo-GT: body model forward in the
camera frame -> project with the record's camera -> the crop's affine -> lixels.

Sub-sampled mesh (:func:`subsample_mesh`)
-----------------------------------------
Farthest-point sampling on the template vertices (``v_template``), deterministic (starts at vertex 0), to
``num_mesh_vertices`` (default 1024 for SMPL-X's 10475 vertices, all 778 for MANO). Back to the full mesh:
every vertex is the inverse-distance-weighted mean of its 3 nearest sampled vertices on the template (a
sampled vertex maps to itself exactly), a fixed sparse ``(V, 3)`` upsampling; I2L predicts the full SMPL
mesh instead, its Pose2Pose follow-ups use a downsampled mesh with a learned upsampling.

Joints from the mesh (:func:`mesh_joint_regressor`): a ``(J, V)`` matrix applied to the predicted full mesh,
rows = the body model's kinematic ``J_regressor`` (applied to the POSED mesh, as I2L does; on an exact mesh
this differs from smplx's joints, which regress the rest shape and pose it), then one-hot rows for smplx's
vertex joints (nose, eyes, ears, feet, finger tips) and the barycentric rows of its face landmarks (the
contour landmarks at the frontal head pose). The result feeds ``BodyModel.joints_in`` for any joint set.

Loss: L1 on the lixels of the pose joints, of the sampled vertices, and of the joints regressed from the
(sub-sampled -> upsampled) mesh, each masked to targets inside the heatmap volume.

Metric 3D (:func:`lixels_to_camera`): x, y, z lixels -> crop pixels and root-relative depth; the root's
absolute depth is not estimated (I2L's protocol uses the GT root depth): we place the mesh so that the test
set's root joint (pelvis / hips / wrist, :func:`~neuralannot_cli.evaluate.direct.root_joint_indices`) has
its GT depth (fixed point, 3 iterations), back-project with the crop camera, and evaluate root-relative:
MPJPE, PA-MPJPE, MPVPE, PA-MPVPE (mm, :mod:`neuralannot_cli.evaluate.metrics`), AUC for hands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn


__all__ = ["DEPTH_RANGE_M", "soft_argmax_1d", "encode_lixels", "decode_lixels", "subsample_mesh",
           "MeshSampling", "mesh_joint_regressor", "LixelHead", "LixelNet", "I2LTargets", "I2LEstimator",
           "lixel_loss", "lixels_to_camera", "train_i2l", "test_i2l"]

Part = Literal["body", "hand"]

DEPTH_RANGE_M: dict[str, float] = {"body": 2.0, "hand": 0.3}
"""Root-relative depth range (metres) covered by the ``D`` depth bins, centred on the root."""

NUM_POSE_JOINTS: dict[str, int] = {"body": 22, "hand": 16}
"""PoseNet joints: the first kinematic joints (SMPL-X pelvis + 21 body joints; MANO wrist + 15)."""


# ------------------------------------------------------------------------------------------- pure math


def soft_argmax_1d(heatmaps: torch.Tensor) -> torch.Tensor:
    """``(batch, N, L)`` 1D heatmap logits -> ``(batch, N)`` expected bin index ``sum_i softmax_i * i``."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 3:
        shape = tuple(heatmaps.shape) if isinstance(heatmaps, torch.Tensor) else type(heatmaps).__name__
        raise ValueError(f"soft_argmax_1d: heatmaps must be (batch, N, L), got {shape}")
    prob = torch.softmax(heatmaps, dim=2)
    bins = torch.arange(heatmaps.shape[2], dtype=heatmaps.dtype, device=heatmaps.device)
    return (prob * bins).sum(dim=2)


def _check_points(x: torch.Tensor, name: str, fn: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{fn}: {name} must be (batch, N, 3), got {shape}")


def _check_batch(x: torch.Tensor, shape: tuple[int, ...], name: str, fn: str, batch: int) -> None:
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != (batch, *shape):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{fn}: {name} must be {(batch, *shape)}, got {got}")


def encode_lixels(points_cam_m: torch.Tensor, root_depth_m: torch.Tensor, focal_px: torch.Tensor,
                  princpt_px: torch.Tensor, crop_affine: torch.Tensor, input_size: int, heatmap_size: int,
                  depth_range_m: float) -> torch.Tensor:
    """Camera-frame points -> lixel coordinates (see the module docstring).

    Args:
        points_cam_m: ``(batch, N, 3)`` metres, camera frame of the original image (``Z > 0``).
        root_depth_m: ``(batch,)`` camera ``Z`` of the root.
        focal_px / princpt_px: ``(batch, 2)`` intrinsics of the original image.
        crop_affine: ``(batch, 2, 3)`` image px -> crop px.
        input_size: crop side ``S``; heatmap_size: ``H`` (= depth bins ``D``); depth_range_m: ``range``.

    Returns:
        ``(batch, N, 3)`` lixels ``(x_hm, y_hm, z_bin)``.
    """
    fn = "encode_lixels"
    _check_points(points_cam_m, "points_cam_m", fn)
    b = points_cam_m.shape[0]
    _check_batch(root_depth_m, (), "root_depth_m", fn, b)
    _check_batch(focal_px, (2,), "focal_px", fn, b)
    _check_batch(princpt_px, (2,), "princpt_px", fn, b)
    _check_batch(crop_affine, (2, 3), "crop_affine", fn, b)
    z = points_cam_m[..., 2:]
    uv_img = points_cam_m[..., :2] / z * focal_px[:, None] + princpt_px[:, None]
    uv_crop = uv_img @ crop_affine[:, :, :2].transpose(1, 2) + crop_affine[:, None, :, 2]
    xy = (uv_crop + 0.5) * (heatmap_size / input_size) - 0.5
    dz = points_cam_m[..., 2] - root_depth_m[:, None]
    zb = (dz / depth_range_m + 0.5) * heatmap_size - 0.5
    return torch.cat([xy, zb[..., None]], dim=-1)


def decode_lixels(lixels: torch.Tensor, root_depth_m: torch.Tensor, focal_crop_px: torch.Tensor,
                  princpt_crop_px: torch.Tensor, input_size: int, heatmap_size: int,
                  depth_range_m: float) -> torch.Tensor:
    """Lixels -> ``(batch, N, 3)`` camera-frame metres, given the root's depth and the crop camera.

    The inverse of :func:`encode_lixels` when ``focal_crop_px`` / ``princpt_crop_px`` is the original camera
    composed with the crop's (scale + shift) affine (``CroppedSampleDataset``'s virtual crop camera).
    """
    fn = "decode_lixels"
    _check_points(lixels, "lixels", fn)
    b = lixels.shape[0]
    _check_batch(root_depth_m, (), "root_depth_m", fn, b)
    _check_batch(focal_crop_px, (2,), "focal_crop_px", fn, b)
    _check_batch(princpt_crop_px, (2,), "princpt_crop_px", fn, b)
    uv_crop = (lixels[..., :2] + 0.5) * (input_size / heatmap_size) - 0.5
    dz = ((lixels[..., 2] + 0.5) / heatmap_size - 0.5) * depth_range_m
    z = root_depth_m[:, None] + dz
    xy = (uv_crop - princpt_crop_px[:, None]) / focal_crop_px[:, None] * z[..., None]
    return torch.cat([xy, z[..., None]], dim=-1)


@dataclass(frozen=True)
class MeshSampling:
    """Sub-sampled mesh: ``indices (Vs,)`` of the kept vertices; ``up_index (V, k)`` / ``up_weight (V, k)``:
    every full-mesh vertex = ``sum_k up_weight * sampled[up_index]`` (rows sum to 1)."""

    indices: torch.Tensor
    up_index: torch.Tensor
    up_weight: torch.Tensor

    @property
    def num_sampled(self) -> int:
        return int(self.indices.shape[0])

    def upsample(self, sampled: torch.Tensor) -> torch.Tensor:
        """``(batch, Vs, C)`` -> ``(batch, V, C)``."""
        if sampled.ndim != 3 or sampled.shape[1] != self.num_sampled:
            raise ValueError(f"MeshSampling.upsample: expected (batch, {self.num_sampled}, C), got "
                             f"{tuple(sampled.shape)}")
        w = self.up_weight.to(sampled)
        return (sampled[:, self.up_index.to(sampled.device)] * w[None, ..., None]).sum(dim=2)

    def upsampling_matrix(self, num_vertices: int) -> torch.Tensor:
        """Dense ``(V, Vs)`` float64 upsampling matrix (small meshes / tests)."""
        m = torch.zeros(num_vertices, self.num_sampled, dtype=torch.float64)
        m.scatter_add_(1, self.up_index, self.up_weight.double())
        return m


def subsample_mesh(template_m: torch.Tensor, num_sampled: int, k: int = 3) -> MeshSampling:
    """Farthest-point sampling of ``template_m (V, 3)`` (from vertex 0) + inverse-distance upsampling."""
    if template_m.ndim != 2 or template_m.shape[1] != 3:
        raise ValueError(f"subsample_mesh: template_m must be (V, 3), got {tuple(template_m.shape)}")
    v = template_m.detach().to("cpu", torch.float64)
    n = int(template_m.shape[0])
    num_sampled = min(int(num_sampled), n)
    if num_sampled < 1:
        raise ValueError(f"subsample_mesh: num_sampled must be >= 1, got {num_sampled}")
    if num_sampled == n:
        idx = torch.arange(n)
    else:
        idx = torch.empty(num_sampled, dtype=torch.int64)
        dist = torch.full((n,), float("inf"), dtype=torch.float64)
        cur = 0
        for i in range(num_sampled):
            idx[i] = cur
            dist = torch.minimum(dist, ((v - v[cur]) ** 2).sum(1))
            cur = int(torch.argmax(dist))
    k = min(k, num_sampled)
    d = torch.cdist(v, v[idx])  # (V, Vs)
    dk, ik = torch.topk(d, k, dim=1, largest=False)
    w = 1.0 / dk.clamp_min(1e-12)
    exact = dk[:, 0] < 1e-12
    w[exact] = 0.0
    w[exact, 0] = 1.0
    w = w / w.sum(1, keepdim=True)
    return MeshSampling(indices=idx, up_index=ik, up_weight=w.float())


def mesh_joint_regressor(body_model) -> torch.Tensor:
    """``(J, V)`` float32 matrix with ``joints ~= R @ vertices`` for a posed mesh (``J`` = the length of the
    model's output ``joints``): kinematic rows = ``J_regressor``; extra rows = smplx's vertex joints
    (one-hot) and face landmarks (barycentric; contour landmarks at the frontal head pose)."""
    layer = body_model.layer
    num_v = body_model.num_vertices
    rows = [layer.J_regressor.detach().to("cpu", torch.float64)]
    selector = getattr(layer, "vertex_joint_selector", None)
    if selector is not None and getattr(selector, "extra_joints_idxs", None) is not None:
        ids = selector.extra_joints_idxs.detach().cpu().long()
        oh = torch.zeros(len(ids), num_v, dtype=torch.float64)
        oh[torch.arange(len(ids)), ids] = 1.0
        rows.append(oh)
    faces = layer.faces_tensor.detach().cpu().long()

    def bary_rows(face_idx: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(face_idx), num_v, dtype=torch.float64)
        for r, (f, w) in enumerate(zip(face_idx.tolist(), bary.double())):
            out[r].index_add_(0, faces[f], w)
        return out

    if getattr(layer, "lmk_faces_idx", None) is not None and layer.lmk_faces_idx.numel():
        rows.append(bary_rows(layer.lmk_faces_idx.detach().cpu().long().reshape(-1),
                              layer.lmk_bary_coords.detach().cpu().reshape(-1, 3)))
    reg = torch.cat(rows)
    with torch.no_grad():
        out = body_model()  # rest pose: contour landmarks at the frontal head pose
    total = int(out.joints.shape[1])
    missing = total - reg.shape[0]
    if missing > 0 and getattr(layer, "dynamic_lmk_faces_idx", None) is not None:
        # pick, among the dynamic tables, the one smplx uses at the rest pose
        target = out.joints[0, reg.shape[0]:].detach().to("cpu", torch.float64)
        verts = out.vertices[0].detach().to("cpu", torch.float64)
        fidx = layer.dynamic_lmk_faces_idx.detach().cpu().long()
        bary = layer.dynamic_lmk_bary_coords.detach().cpu().double()
        best, best_err = None, float("inf")
        for a in range(fidx.shape[0]):
            cand = bary_rows(fidx[a], bary[a])
            err = float((cand @ verts - target).abs().max())
            if err < best_err:
                best, best_err = cand, err
            if err < 1e-9:
                break
        if best is not None:
            reg = torch.cat([reg, best])
    reg = reg[:total]
    if reg.shape[0] == total:
        rest = out.vertices[0].detach().to("cpu", torch.float64)
        err = (reg @ rest - out.joints[0].detach().to("cpu", torch.float64))[body_model.num_kinematic_joints:]
        if err.numel() and float(err.abs().max()) > 1e-5:
            raise ValueError(f"{body_model.model_file}: the mesh joint regressor does not reproduce the "
                             f"model's extra joints (max error {float(err.abs().max()):.2e} m)")
    if reg.shape[0] != total:
        raise ValueError(f"{body_model.model_file}: cannot express the model's {total} output joints as a "
                         f"regressor on the mesh (got {reg.shape[0]} rows)")
    return reg.float()


# ------------------------------------------------------------------------------------------- network


def _deconvs(in_ch: int, width: int, n: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.ConvTranspose2d(in_ch if i == 0 else width, width, 4, stride=2, padding=1,
                                      output_padding=0, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class LixelHead(nn.Module):
    """1D heatmaps along x, y, z for ``num_points`` points -> ``(batch, num_points, 3)`` lixels (soft-argmax).

    Input: ``(batch, C, h, w)`` feature map; x / y heatmaps have ``8 h`` / ``8 w`` bins (three stride-2
    deconvolutions), z has ``depth_bins``.
    """

    def __init__(self, in_channels: int, num_points: int, depth_bins: int, width: int = 256) -> None:
        super().__init__()
        self.num_points, self.depth_bins, self.width = int(num_points), int(depth_bins), int(width)
        self.deconv = _deconvs(in_channels, width)
        self.conv_x = nn.Conv1d(width, num_points, 1)
        self.conv_y = nn.Conv1d(width, num_points, 1)
        self.conv_z1 = nn.Sequential(nn.Conv1d(in_channels, width * depth_bins, 1, bias=False),
                                     nn.BatchNorm1d(width * depth_bins), nn.ReLU(inplace=True))
        self.conv_z2 = nn.Conv1d(width, num_points, 1)

    def forward(self, featmap: torch.Tensor) -> torch.Tensor:
        f = self.deconv(featmap)
        x = soft_argmax_1d(self.conv_x(f.mean(dim=2)))  # average over rows -> heatmap along x
        y = soft_argmax_1d(self.conv_y(f.mean(dim=3)))
        fz = self.conv_z1(featmap.mean(dim=(2, 3))[:, :, None]).view(-1, self.width, self.depth_bins)
        z = soft_argmax_1d(self.conv_z2(fz))
        return torch.stack([x, y, z], dim=-1)


class LixelNet(nn.Module):
    """Backbone + PoseNet (``num_joints``) + MeshNet (``num_mesh_points``) -> ``(joint_lixels, mesh_lixels)``.

    Images ``(batch, 3, S, S)`` with ``S`` divisible by 32; heatmaps ``H = S / 4`` = depth bins.
    """

    def __init__(self, part: Part, num_joints: int, num_mesh_points: int, input_size: int,
                 depth: Literal[18, 34, 50] = 18, width: int = 256) -> None:
        super().__init__()
        from neuralannot_cli.nets.backbone import ResNetBackbone

        if part not in ("body", "hand"):
            raise ValueError(f"part must be 'body' or 'hand', got {part!r}")
        if int(input_size) % 32:
            raise ValueError(f"LixelNet: input_size must be a multiple of 32, got {input_size}")
        self.part = part
        self.input_size = int(input_size)
        self.heatmap_size = self.input_size // 4
        self.backbone = ResNetBackbone(depth)
        c = self.backbone.out_channels
        self.pose_net = LixelHead(c, num_joints, self.heatmap_size, width)
        self.mesh_net = LixelHead(c, num_mesh_points, self.heatmap_size, width)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 \
                or tuple(images.shape[2:]) != (self.input_size, self.input_size):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"LixelNet: images must be (batch, 3, {self.input_size}, {self.input_size}), got {shape}")
        f = self.backbone.forward_featmap(images)
        return self.pose_net(f), self.mesh_net(f)


# ------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class I2LTargets:
    """Per-sample camera-frame targets (metres) from the pseudo-GT, for the crop-dependent lixel encoding.

    ``pose_joints (N, P, 3)`` kinematic joints; ``mesh_points (N, Vs, 3)`` sampled vertices;
    ``mesh_joints (N, P, 3)`` = the mesh joint regressor on the full mesh; ``root_depth (N,)``; intrinsics
    ``focal_px`` / ``princpt_px (N, 2)``.
    """

    pose_joints: torch.Tensor
    mesh_points: torch.Tensor
    mesh_joints: torch.Tensor
    root_depth: torch.Tensor
    focal_px: torch.Tensor
    princpt_px: torch.Tensor


def _make_targets(records: list[Any], body, sampling: MeshSampling, regressor: torch.Tensor,
                  num_pose: int, chunk: int = 64) -> I2LTargets:
    from neuralannot_cli.evaluate.direct import _record_params

    pj, mp, mj, rd = [], [], [], []
    reg = regressor[:num_pose].to(body.device, body.dtype)
    with torch.no_grad():
        for i in range(0, len(records), chunk):
            ps = [_record_params(r, body) for r in records[i:i + chunk]]
            kw = {k: torch.as_tensor(np.stack([p[k] for p in ps]), dtype=body.dtype, device=body.device)
                  for k in ps[0]}
            out = body(**kw)
            pj.append(out.kinematic_joints[:, :num_pose].float().cpu())
            mp.append(out.vertices[:, sampling.indices.to(body.device)].float().cpu())
            mj.append(torch.einsum("jv,bvc->bjc", reg, out.vertices).float().cpu())
            rd.append(out.kinematic_joints[:, 0, 2].float().cpu())
    f = torch.tensor(np.stack([np.asarray(r.focal_px, dtype=np.float64) for r in records]), dtype=torch.float32)
    c = torch.tensor(np.stack([np.asarray(r.princpt_px, dtype=np.float64) for r in records]), dtype=torch.float32)
    return I2LTargets(torch.cat(pj), torch.cat(mp), torch.cat(mj), torch.cat(rd), f, c)


def _encode_batch(t: I2LTargets, idx: torch.Tensor, affine: torch.Tensor, net: LixelNet, depth_range: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    enc = lambda p: encode_lixels(p[idx], t.root_depth[idx], t.focal_px[idx], t.princpt_px[idx],  # noqa: E731
                                  affine, net.input_size, net.heatmap_size, depth_range)
    return enc(t.pose_joints), enc(t.mesh_points), enc(t.mesh_joints)


def _valid(lixels: torch.Tensor, size: int) -> torch.Tensor:
    return ((lixels >= -0.5) & (lixels <= size - 0.5)).all(dim=-1).float()[..., None]


def lixel_loss(pred_joints: torch.Tensor, pred_mesh: torch.Tensor, pred_mesh_joints: torch.Tensor,
               gt_joints: torch.Tensor, gt_mesh: torch.Tensor, gt_mesh_joints: torch.Tensor,
               heatmap_size: int) -> torch.Tensor:
    """Sum of the masked L1 losses on joint, vertex and mesh-joint lixels (targets outside the volume are
    ignored)."""
    total = pred_joints.new_zeros(())
    for p, g in ((pred_joints, gt_joints), (pred_mesh, gt_mesh), (pred_mesh_joints, gt_mesh_joints)):
        w = _valid(g, heatmap_size)
        total = total + ((p - g).abs() * w).sum() / (w.sum() * 3).clamp_min(1.0)
    return total


@dataclass(frozen=True)
class I2LEstimator:
    """A trained :class:`LixelNet` with its mesh sampling, ``(J, V)`` mesh joint regressor, number of pose
    joints and depth range."""

    net: LixelNet
    sampling: MeshSampling
    regressor: torch.Tensor  # (J, V)
    num_pose: int
    depth_range: float

    def mesh_joints(self, mesh_sampled: torch.Tensor) -> torch.Tensor:
        """``(batch, Vs, 3)`` -> ``(batch, P, 3)`` kinematic joints regressed from the upsampled mesh."""
        full = self.sampling.upsample(mesh_sampled)
        return torch.einsum("jv,bvc->bjc", self.regressor[: self.num_pose].to(full), full)


def train_i2l(config: Any, on_progress: Callable[[int, int, float], None] | None = None
              ) -> tuple[I2LEstimator, dict[str, Any]]:
    """Train :class:`LixelNet` on the pseudo-GT of ``config.train_dataset`` (an ``IndirectConfig``; its
    ``work_dir`` / ``resume`` make the training resumable, as ``indirect.fit_estimator`` says)."""
    from neuralannot_cli.evaluate.direct import BodyModels
    from neuralannot_cli.evaluate.indirect import _with_index, fit_estimator, open_work_dir, training_records

    cfg = config.checked()
    if cfg.input_size % 32:
        raise ValueError(f"input_size must be a multiple of 32 for the i2l estimator, got {cfg.input_size}")
    open_work_dir(cfg)
    models = BodyModels(cfg.model_dir, cfg.device)
    part_name, records, samples, keys, skipped = training_records(cfg, models)
    part: Part = "hand" if part_name == "hand" else "body"
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    body = models.get("smplx" if part == "body" else "mano", "right")
    sampling = subsample_mesh(body.layer.v_template, 1024 if part == "body" else body.num_vertices)
    regressor = mesh_joint_regressor(body)
    num_pose = NUM_POSE_JOINTS[part]
    t = _make_targets([records[k] for k in keys], body, sampling, regressor, num_pose)
    net = LixelNet(part, num_pose, sampling.num_sampled, cfg.input_size, cfg.depth).to(device)
    state = I2LEstimator(net, sampling, regressor, num_pose, DEPTH_RANGE_M[part])
    ds = _with_index([samples[k] for k in keys], cfg.input_size)

    def batch_loss(batch: dict[str, Any]) -> torch.Tensor:
        gj, gm, gmj = (x.to(device) for x in _encode_batch(t, batch["index"], batch["crop_affine"], net,
                                                            state.depth_range))
        pj, pm = net(batch["image"].to(device))
        return lixel_loss(pj, pm, state.mesh_joints(pm), gj, gm, gmj, net.heatmap_size)

    last, seconds = fit_estimator(net, ds, cfg, batch_loss, on_progress)
    info = {"part": part, "num_train": len(keys), "num_skipped": skipped,
            "seconds": seconds, "final_loss": last,
            "train_images": frozenset(str(samples[k].image_path) for k in keys)}
    return state, info


# ------------------------------------------------------------------------------------------- testing


def lixels_to_camera(state: I2LEstimator, mesh_lixels: torch.Tensor, body, joint_set: str, num_joints: int,
                     root_indices: tuple[int, ...], gt_root_depth_m: torch.Tensor, focal_crop_px: torch.Tensor,
                     princpt_crop_px: torch.Tensor, iterations: int = 3
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampled-mesh lixels -> ``(vertices (B, V, 3), joints (B, num_joints, 3), body root (B, 3))`` metres,
    camera frame, with the test set's root joint(s) at ``gt_root_depth_m (B,)``. The body root is row 0 of the
    regressor (``J_regressor[0] @ vertices``), the same as :func:`~neuralannot_cli.evaluate.direct.mesh_root`
    of the GT mesh, so MPVPE translates both meshes by the same kind of root."""
    from neuralannot_cli.body.model import BodyOutput

    net = state.net
    full = state.sampling.upsample(mesh_lixels)
    reg = state.regressor.to(full)
    z_root = gt_root_depth_m.to(full).clone()
    for _ in range(max(1, iterations)):
        verts = decode_lixels(full, z_root, focal_crop_px.to(full), princpt_crop_px.to(full), net.input_size,
                              net.heatmap_size, state.depth_range)
        joints_all = torch.einsum("jv,bvc->bjc", reg, verts)
        out = BodyOutput(vertices=verts, joints=joints_all, kinematic_joints=joints_all[:, : body.num_kinematic_joints],
                         faces=body.layer.faces_tensor)
        joints = body.joints_in(out, joint_set)[:, :num_joints]
        z_root = z_root + (gt_root_depth_m.to(full) - joints[:, list(root_indices), 2].mean(1))
    return verts, joints, joints_all[:, 0]


@torch.no_grad()
def test_i2l(state: I2LEstimator, test_dataset: str | os.PathLike, *, kind: str = "auto",
             hidden_gt: str | os.PathLike | None = None, model_dir: str | os.PathLike | None = None,
             batch_size: int = 32, device: torch.device | str = "cpu",
             train_images: Collection[str] = ()) -> dict[str, float]:
    """MPJPE / PA-MPJPE (+ MPVPE / PA-MPVPE with hidden GT, + AUC for hands), as ``indirect.test_estimator``."""
    from neuralannot_cli.evaluate.direct import BodyModels, load_ground_truth, \
        load_samples, root_joint_indices
    from neuralannot_cli.evaluate.indirect import _with_index

    net = state.net
    part = net.part
    _, gts = load_ground_truth(test_dataset, kind, part=part, hidden_gt=hidden_gt, model_dir=model_dir, device=device)
    _, samples = load_samples(test_dataset, kind, part=part, gt_3d=False)
    keys = sorted(k for k in samples if gts[k].joints_3d_cam_mm is not None
                  and str(gts[k].hand_side or "right") == "right")
    if not keys:
        raise ValueError(f"{test_dataset}: no test sample with GT 3D joints")
    mt = "smplx" if part == "body" else "mano"
    body = BodyModels(model_dir, device).get(mt, "right")
    net.eval().to(device)
    js = gts[keys[0]].joint_set
    nj = gts[keys[0]].num_joints
    roots = root_joint_indices(js, nj)
    gt_j = torch.tensor(np.stack([gts[k].joints_3d_cam_mm for k in keys]), dtype=torch.float64)
    gt_root_z_m = gt_j[:, list(roots), 2].mean(1) / 1000.0
    ds = _with_index([samples[k] for k in keys], net.input_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    pj, pv, pr = [], [], []
    for batch in loader:
        _, mesh = net(batch["image"].to(device))
        idx = batch["index"]
        verts, joints, root = lixels_to_camera(state, mesh.double().cpu(), body, js, nj, roots,
                                               gt_root_z_m[idx], batch["focal_crop_px"].double(),
                                               batch["princpt_crop_px"].double())
        pj.append(joints * 1000.0)
        pv.append(verts * 1000.0)
        pr.append(root * 1000.0)
    pred_j, pred_v, pred_r = torch.cat(pj), torch.cat(pv), torch.cat(pr)
    from neuralannot_cli.evaluate.indirect import score_predictions

    return score_predictions(pred_j, pred_v, pred_r, gt_j, keys, gts, part, body, train_images)
