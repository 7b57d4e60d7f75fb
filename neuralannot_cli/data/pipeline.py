"""Crop geometry and the cropped-sample ``Dataset`` (image -> crop -> network input).

Conventions (pinned by ``tests/test_pipeline.py``)
--------------------------------------------------
- **Pixel centres.** As in :mod:`neuralannot_cli.data.record`: pixel ``(u, v)`` of an image is the unit square
  centred at the integer point ``(u, v)``; the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. This is the
  convention of ``cv2.warpAffine`` and of COCO keypoints, so :func:`crop_image` needs no half-pixel fix.
- **Boxes** are ``(x, y, w, h)`` in the same continuous frame: the box covers ``[x, x + w] x [y, y + h]``.
- **Crop affine.** :func:`crop_affine` returns a ``(2, 3)`` float64 matrix ``A`` with
  ``[u_crop, v_crop] = A @ [u, v, 1]``. Without rotation the box's edges go *exactly* to the crop's edges:
  ``x -> -0.5``, ``x + w -> W_out - 0.5`` (likewise in ``y``), and the box centre to the crop centre
  ``((W_out - 1) / 2, (H_out - 1) / 2)``. With flip and rotation::

      A(p) = D @ R(-rotation) @ F @ (p - box_centre) + crop_centre

  with ``F = diag(-1, 1)`` when flipping (a mirror about the box's vertical centre line), ``R(a)`` the 2x2
  matrix ``[[cos a, -sin a], [sin a, cos a]]`` acting on ``(x right, y down)`` coordinates and
  ``D = diag(W_out / w, H_out / h)``. A positive ``rotation_deg`` therefore turns the *content* of the crop
  counter-clockwise on screen (the crop window turns clockwise), as in Hand4Whole's
  ``gen_trans_from_patch_cv``, whose 3D counterpart rotates camera points by ``R_z(-rotation)``.
- **Difference from Hand4Whole / I2L-MeshNet.** Their ``gen_trans_from_patch_cv`` maps the box centre to
  ``(W_out / 2, H_out / 2)`` and the box edges to ``0`` and ``W_out`` (a corner convention in the crop but a
  centre convention in the image), so their crops sit half a crop pixel off ours; keypoints mapped through
  their matrix are ``+0.5`` crop px from ours. Their ``process_bbox`` also first *sanitises* the box (clips it to
  the image and shrinks ``w``/``h`` by one pixel); :func:`expand_box_to_aspect` does not clip, because clipping a
  truncated person's box moves its centre. The aspect padding and the 1.25 enlargement are the same (aspect is
  ``width / height`` of the network input, ``input_img_shape[1] / input_img_shape[0]`` there).
- **Image normalisation.** Crops are RGB, scaled to ``[0, 1]`` and normalised with the ImageNet statistics
  :data:`IMAGENET_MEAN_RGB` / :data:`IMAGENET_STD_RGB` (torchvision's ``Normalize`` values, the ones every
  ImageNet-pretrained ResNet/HRNet backbone expects). :func:`denormalize_image` undoes it.
- **Intrinsics fallback.** When a sample has no ``focal_px`` the dataset uses CLIFF's estimate
  ``f = sqrt(H**2 + W**2)`` (a diagonal field of view of 2*atan(1/2) ~ 53 deg, typical of phone and consumer
  cameras; a fixed 5000 px "orthographic-like" focal would make perspective cues meaningless for full images),
  and ``has_intrinsics`` is ``False``. A missing ``princpt_px`` falls back to the image centre
  ``((W - 1) / 2, (H - 1) / 2)`` in the pixel-centre convention.
- **Virtual crop camera.** The dataset also returns ``focal_crop_px`` / ``princpt_crop_px`` and
  ``joints_3d_cam_mm`` expressed in the *augmented* camera (flip negates ``x``, rotation applies
  ``R_z(-rotation)``), so that projecting ``joints_3d_cam_mm`` with the crop intrinsics gives the crop pixels of
  the projected original joints. This is exact when ``fx == fy`` or the rotation is zero; with ``fx != fy`` and
  a rotation it is off by the tiny anisotropy (which real cameras barely have).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from neuralannot_cli.data.record import Sample

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
"""ImageNet channel means (RGB, for images scaled to ``[0, 1]``)."""
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations (RGB, for images scaled to ``[0, 1]``)."""

ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "AugmentConfig",
    "AugmentParams",
    "CroppedSampleDataset",
    "crop_affine",
    "crop_image",
    "default_intrinsics",
    "denormalize_image",
    "expand_box_to_aspect",
    "invert_affine",
    "normalize_image",
    "transform_points",
]


# ----------------------------------------------------------------------------------------------------------
# Crop geometry (pure functions)
# ----------------------------------------------------------------------------------------------------------


def _check_last_dim(name: str, x: ArrayLike, size: int) -> None:
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{name}: expected shape (..., {size}), got {tuple(x.shape)}")


def expand_box_to_aspect(bbox_xywh_px: ArrayLike, aspect: float = 1.0, scale: float = 1.25) -> ArrayLike:
    """Pad a box to the aspect ``width / height = aspect`` around its centre, then enlarge it by ``scale``.

    The shorter side grows until the aspect matches (the box is never shrunk); both sides are then multiplied
    by ``scale``; the centre stays put. Unlike Hand4Whole's ``process_bbox`` the box is not clipped to the image.

    Args:
        bbox_xywh_px: ``(..., 4)`` boxes ``(x, y, w, h)``, numpy or torch, with ``w, h > 0``.
        aspect: target ``width / height`` (of the network input), ``> 0``.
        scale: enlargement factor, ``> 0``.

    Returns:
        ``(..., 4)`` boxes: float64 numpy for numpy or list input; for a torch tensor, a tensor of its dtype
        (float64 math for float64 input).
    """
    if not (aspect > 0 and math.isfinite(aspect)):
        raise ValueError(f"aspect: expected a finite number > 0, got {aspect!r}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
    is_torch = isinstance(bbox_xywh_px, torch.Tensor)
    box = bbox_xywh_px if is_torch else np.asarray(bbox_xywh_px, dtype=np.float64)
    _check_last_dim("bbox_xywh_px", box, 4)
    if is_torch and not box.is_floating_point():
        box = box.to(torch.float64)
    x, y, w, h = box[..., 0], box[..., 1], box[..., 2], box[..., 3]
    if bool((w <= 0).any()) or bool((h <= 0).any()):
        raise ValueError(f"bbox_xywh_px: width and height must be > 0, got boxes {box.tolist()}")
    cx, cy = x + 0.5 * w, y + 0.5 * h
    if is_torch:
        new_w = torch.maximum(w, h * aspect) * scale
        new_h = torch.maximum(h, w / aspect) * scale
        return torch.stack([cx - 0.5 * new_w, cy - 0.5 * new_h, new_w, new_h], dim=-1)
    new_w = np.maximum(w, h * aspect) * scale
    new_h = np.maximum(h, w / aspect) * scale
    return np.stack([cx - 0.5 * new_w, cy - 0.5 * new_h, new_w, new_h], axis=-1)


def _out_hw(out_size_hw: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(out_size_hw, (int, np.integer)):
        out_h = out_w = int(out_size_hw)
    else:
        vals = tuple(out_size_hw)
        if len(vals) != 2:
            raise ValueError(f"out_size_hw: expected an int or (height, width), got {out_size_hw!r}")
        out_h, out_w = int(vals[0]), int(vals[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"out_size_hw: expected positive sizes, got {(out_h, out_w)}")
    return out_h, out_w


def crop_affine(
    bbox_xywh: ArrayLike | Sequence[float],
    out_size_hw: int | Sequence[int],
    *,
    rotation_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """The ``(2, 3)`` float64 affine from original-image pixels to crop pixels (see the module docstring).

    Args:
        bbox_xywh: ``(4,)`` box ``(x, y, w, h)`` in image pixels (``w, h > 0``); usually the output of
            :func:`expand_box_to_aspect`.
        out_size_hw: crop size, an int (square) or ``(height, width)``.
        rotation_deg: in-plane rotation; positive turns the crop content counter-clockwise on screen.
        flip: mirror left-right about the box's vertical centre line (applied before the rotation).

    Returns:
        ``(2, 3)`` float64 matrix ``A``: ``crop_px = A @ [u, v, 1]``.
    """
    box = np.asarray(
        bbox_xywh.detach().cpu().numpy() if isinstance(bbox_xywh, torch.Tensor) else bbox_xywh, dtype=np.float64
    )
    if box.shape != (4,):
        raise ValueError(f"bbox_xywh: expected shape (4,), got {box.shape}")
    if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"bbox_xywh: expected finite (x, y, w, h) with w, h > 0, got {box.tolist()}")
    out_h, out_w = _out_hw(out_size_hw)
    x, y, w, h = box
    centre = np.array([x + 0.5 * w, y + 0.5 * h])
    crop_centre = np.array([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
    a = math.radians(-float(rotation_deg))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    mirror = np.diag([-1.0 if flip else 1.0, 1.0])
    linear = np.diag([out_w / w, out_h / h]) @ rot @ mirror
    affine = np.empty((2, 3), dtype=np.float64)
    affine[:, :2] = linear
    affine[:, 2] = crop_centre - linear @ centre
    return affine


def invert_affine(affine: ArrayLike) -> ArrayLike:
    """Invert ``(..., 2, 3)`` affine matrices (numpy or torch; closed form, same dtype).

    Raises ``ValueError`` for a singular matrix.
    """
    if affine.ndim < 2 or tuple(affine.shape[-2:]) != (2, 3):
        raise ValueError(f"affine: expected shape (..., 2, 3), got {tuple(affine.shape)}")
    lin = affine[..., :2]
    t = affine[..., 2:]
    if isinstance(affine, torch.Tensor):
        det = torch.linalg.det(lin)
        if bool((det == 0).any()):
            raise ValueError("affine: singular matrix, cannot invert")
        lin_inv = torch.linalg.inv(lin)
        return torch.cat([lin_inv, -lin_inv @ t], dim=-1)
    lin = np.asarray(lin)
    det = lin[..., 0, 0] * lin[..., 1, 1] - lin[..., 0, 1] * lin[..., 1, 0]
    if np.any(det == 0):
        raise ValueError("affine: singular matrix, cannot invert")
    lin_inv = np.empty_like(lin)
    lin_inv[..., 0, 0] = lin[..., 1, 1] / det
    lin_inv[..., 0, 1] = -lin[..., 0, 1] / det
    lin_inv[..., 1, 0] = -lin[..., 1, 0] / det
    lin_inv[..., 1, 1] = lin[..., 0, 0] / det
    return np.concatenate([lin_inv, -lin_inv @ t], axis=-1)


def transform_points(points_px: ArrayLike, affine: ArrayLike) -> ArrayLike:
    """Apply ``(..., 2, 3)`` affines to ``(..., N, 2)`` points (leading dims broadcast; numpy or torch).

    Returns ``(..., N, 2)`` points: ``affine[..., :2] @ p + affine[..., 2]``. With numpy, the result has the
    promoted dtype of both inputs (float64 when the affine comes from :func:`crop_affine`); with torch, the
    affine is converted to the points' dtype and device.
    """
    if points_px.ndim < 2 or points_px.shape[-1] != 2:
        raise ValueError(f"points_px: expected shape (..., N, 2), got {tuple(points_px.shape)}")
    if affine.ndim < 2 or tuple(affine.shape[-2:]) != (2, 3):
        raise ValueError(f"affine: expected shape (..., 2, 3), got {tuple(affine.shape)}")
    if isinstance(points_px, torch.Tensor):
        aff = torch.as_tensor(affine, dtype=points_px.dtype, device=points_px.device)
        return points_px @ aff[..., :2].transpose(-1, -2) + aff[..., None, :, 2]
    aff = np.asarray(affine)
    pts = np.asarray(points_px)
    return pts @ np.swapaxes(aff[..., :2], -1, -2) + aff[..., None, :, 2]


def crop_image(
    image: np.ndarray,
    affine: np.ndarray,
    out_size: int | Sequence[int],
    *,
    border_value: float | tuple[float, ...] = 0,
) -> np.ndarray:
    """Warp ``image`` into the crop defined by ``affine`` (bilinear, constant border).

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` uint8 (or float32) image.
        affine: ``(2, 3)`` image-to-crop matrix from :func:`crop_affine`.
        out_size: crop size, an int (square) or ``(height, width)``.
        border_value: fill value outside the image.

    Returns:
        ``(out_h, out_w, C)`` (or ``(out_h, out_w)``) crop of the same dtype. ``cv2.warpAffine`` samples
        integer crop pixels at their centres, matching the pixel-centre convention of the module.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        shape = getattr(image, "shape", None)
        raise ValueError(f"image: expected a (H, W, C) or (H, W) numpy array, got shape {shape}")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (2, 3):
        raise ValueError(f"affine: expected shape (2, 3), got {aff.shape}")
    out_h, out_w = _out_hw(out_size)
    if isinstance(border_value, (int, float)):
        border = (float(border_value),) * 4
    else:
        border = tuple(float(b) for b in border_value)
    return cv2.warpAffine(
        image, aff, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )


def normalize_image(image_rgb_uint8: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` RGB image in ``[0, 255]`` -> ``(3, H, W)`` float32 tensor normalised with ImageNet stats."""
    if image_rgb_uint8.ndim != 3 or image_rgb_uint8.shape[-1] != 3:
        raise ValueError(f"image_rgb_uint8: expected shape (H, W, 3), got {image_rgb_uint8.shape}")
    img = torch.from_numpy(np.ascontiguousarray(image_rgb_uint8, dtype=np.float32)).permute(2, 0, 1) / 255.0
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD_RGB, dtype=torch.float32)[:, None, None]
    return (img - mean) / std


def denormalize_image(image: torch.Tensor) -> torch.Tensor:
    """Undo :func:`normalize_image`: ``(..., 3, H, W)`` normalised -> RGB in ``[0, 1]`` (not clipped)."""
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"image: expected shape (..., 3, H, W), got {tuple(image.shape)}")
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=image.dtype, device=image.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD_RGB, dtype=image.dtype, device=image.device)[:, None, None]
    return image * std + mean


def default_intrinsics(image_hw: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Fallback ``(focal_px, princpt_px)`` for an image without intrinsics.

    ``focal = sqrt(H**2 + W**2)`` for both axes (CLIFF's estimate, ~53 deg diagonal field of view) and the
    principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)`` (pixel-centre convention).
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image_hw: expected positive (height, width), got {image_hw!r}")
    f = math.sqrt(h * h + w * w)
    return (f, f), ((w - 1) * 0.5, (h - 1) * 0.5)


# ----------------------------------------------------------------------------------------------------------
# Augmentation
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (Hand4Whole's ``get_aug_config`` defaults).

    Attributes:
        scale_factor: box scale ``1 + clip(N(0,1), -1, 1) * scale_factor``.
        rot_factor_deg: rotation ``clip(N(0,1), -2, 2) * rot_factor_deg`` ...
        rot_prob: ... applied with this probability (else 0).
        color_factor: per-channel multiplicative colour ``U(1 - color_factor, 1 + color_factor)``.
        flip_prob: probability of a left-right flip (only for joint sets with known flip pairs).
    """

    scale_factor: float = 0.25
    rot_factor_deg: float = 30.0
    rot_prob: float = 0.6
    color_factor: float = 0.2
    flip_prob: float = 0.5


@dataclass(frozen=True)
class AugmentParams:
    """One draw of augmentation parameters (identity by default)."""

    scale: float = 1.0
    rotation_deg: float = 0.0
    flip: bool = False
    color_scale_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @staticmethod
    def sample(rng: np.random.Generator, config: AugmentConfig, *, can_flip: bool) -> AugmentParams:
        scale = 1.0 + float(np.clip(rng.standard_normal(), -1.0, 1.0)) * config.scale_factor
        rot = float(np.clip(rng.standard_normal(), -2.0, 2.0)) * config.rot_factor_deg
        if rng.random() >= config.rot_prob:
            rot = 0.0
        lo, hi = 1.0 - config.color_factor, 1.0 + config.color_factor
        color = tuple(float(c) for c in rng.uniform(lo, hi, size=3))
        flip = bool(rng.random() < config.flip_prob) and can_flip
        return AugmentParams(scale=scale, rotation_deg=rot, flip=flip, color_scale_rgb=color)  # type: ignore[arg-type]


def _lookup_flip_pairs(joint_set: str) -> list[tuple[int, int]] | None:
    """Flip pairs from the joint-set module, or ``None`` when it (or the set) is unavailable."""
    try:
        from neuralannot_cli.body.joint_sets import flip_pairs  # lazy: another module, may not exist yet
    except ImportError:
        return None
    try:
        return [(int(a), int(b)) for a, b in flip_pairs(joint_set)]
    except (KeyError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------


class CroppedSampleDataset(torch.utils.data.Dataset):
    """Map-style dataset: :class:`Sample` records -> network-ready crops and targets.

    A dataset holds **one joint set** (all samples share ``joint_set`` and the joint count) so that a batch
    from it stacks; mix joint sets by concatenating datasets and collating per dataset
    (:func:`neuralannot_cli.data.sampler.collate_mixed`).

    Each item is a dict:

    - ``image``: ``(3, S, S)`` float32, RGB, ImageNet-normalised (:func:`normalize_image`).
    - ``keypoints_2d_crop_px``: ``(J, 2)`` float32 keypoints in crop pixels (after augmentation).
    - ``keypoints_conf``: ``(J,)`` float32 confidence (flip-swapped with the keypoints).
    - ``keypoints_in_crop``: ``(J,)`` bool, keypoint inside ``[-0.5, S - 0.5]^2``.
    - ``crop_affine`` / ``crop_affine_inv``: ``(2, 3)`` float32 image->crop / crop->image matrices; map
      predictions back with ``transform_points(pred_crop_px, crop_affine_inv)``.
    - ``cam_aug_rotmat``: ``(3, 3)`` float32 ``R_z(-rotation)``, the rotation from the original camera to the
      augmented one (identity without rotation; a flip is not included): a rotation ``R`` of the original
      camera frame (a pseudo-GT root) becomes ``cam_aug_rotmat @ R``.
    - ``joints_3d_cam_mm``: ``(J, 3)`` float32 3D joints in the augmented camera (zeros when absent);
      ``has_3d``: bool scalar.
    - ``focal_px`` / ``princpt_px``: ``(2,)`` float32 intrinsics of the original image (fallback
      :func:`default_intrinsics`), ``has_intrinsics``: bool scalar.
    - ``focal_crop_px`` / ``princpt_crop_px``: ``(2,)`` float32 intrinsics of the virtual crop camera.
    - ``bbox_xywh_px``: ``(4,)`` float32 crop box in the original image (aspect-padded, scaled, before the
      augmentation's scale jitter); ``image_hw``: ``(2,)`` int64.
    - ``index``: int64 scalar, position in ``samples`` of the record actually used; ``joint_set``: str.

    Args:
        samples: records of one joint set.
        input_size: crop side ``S`` in pixels.
        scale: box enlargement of :func:`expand_box_to_aspect`.
        augment: enable scale/rotation/flip/colour jitter (:class:`AugmentConfig`).
        rng_seed: seed; the draw for item ``i`` depends only on ``(rng_seed, epoch, i)`` so it does not depend
            on worker assignment. Call :meth:`set_epoch` before building each epoch's iterator; the epoch is
            held in shared memory, so DataLoader workers kept alive across epochs (``persistent_workers=True``)
            see it too.
        image_loader: ``path -> (H, W, 3) BGR uint8`` array or ``None`` (``cv2.imread`` semantics).
        flip_pairs: ``{joint_set: [(left, right), ...]}``; ``None`` looks the set up lazily in
            ``neuralannot_cli.body.joint_sets.flip_pairs``; flipping is skipped for a set without pairs.
        on_bad_image: ``"raise"`` (``FileNotFoundError`` naming the file) or ``"skip"`` (warn and use the next
            readable sample, cyclically; ``index`` reports which one).
        augment_config: augmentation ranges.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        input_size: int = 256,
        *,
        scale: float = 1.25,
        augment: bool = False,
        rng_seed: int = 0,
        image_loader: Callable[[str], np.ndarray | None] = cv2.imread,
        flip_pairs: Mapping[str, Sequence[tuple[int, int]]] | None = None,
        on_bad_image: Literal["raise", "skip"] = "raise",
        augment_config: AugmentConfig = AugmentConfig(),
    ) -> None:
        if len(samples) == 0:
            raise ValueError("samples: expected at least one Sample, got an empty sequence")
        if int(input_size) <= 0:
            raise ValueError(f"input_size: expected a positive int, got {input_size!r}")
        if on_bad_image not in ("raise", "skip"):
            raise ValueError(f"on_bad_image: expected 'raise' or 'skip', got {on_bad_image!r}")
        first = samples[0]
        joint_set = first.joint_set
        num_joints = int(np.asarray(first.keypoints_2d_px).shape[0])
        for i, s in enumerate(samples):
            kp = np.asarray(s.keypoints_2d_px)
            if s.joint_set != joint_set or kp.shape != (num_joints, 2):
                raise ValueError(
                    f"samples[{i}] ({s.image_path}): a CroppedSampleDataset holds one joint set; expected "
                    f"{joint_set!r} with keypoints_2d_px (J={num_joints}, 2), got {s.joint_set!r} with {kp.shape}"
                )
            conf_shape = np.shape(s.keypoints_conf)
            if conf_shape != (num_joints,):
                raise ValueError(f"{s.image_path}: keypoints_conf: expected ({num_joints},), got {conf_shape}")
            if s.joints_3d_cam_mm is not None and np.shape(s.joints_3d_cam_mm) != (num_joints, 3):
                got = np.shape(s.joints_3d_cam_mm)
                raise ValueError(f"{s.image_path}: joints_3d_cam_mm: expected ({num_joints}, 3), got {got}")
        self.samples = list(samples)
        self.input_size = int(input_size)
        self.scale = float(scale)
        self.augment = bool(augment)
        self.rng_seed = int(rng_seed)
        self.image_loader = image_loader
        self.on_bad_image = on_bad_image
        self.augment_config = augment_config
        self.joint_set = joint_set
        self.num_joints = num_joints
        if flip_pairs is not None:
            pairs = flip_pairs.get(joint_set)
        else:
            pairs = _lookup_flip_pairs(joint_set) if augment else None
        self.flip_pairs: list[tuple[int, int]] | None = None
        if pairs is not None:
            self.flip_pairs = [(int(a), int(b)) for a, b in pairs]
            for a, b in self.flip_pairs:
                if not (0 <= a < num_joints and 0 <= b < num_joints):
                    raise ValueError(f"flip_pairs[{joint_set!r}]: pair {(a, b)} out of range for {num_joints} joints")
        # shared with DataLoader worker processes (fork: inherited; spawn: passed as a shared-memory handle)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (deterministic given ``rng_seed``), in this process and
        in its persistent DataLoader workers."""
        self._epoch.fill_(int(epoch))

    def augment_params(self, index: int) -> AugmentParams:
        """The augmentation drawn for item ``index`` in the current epoch (identity when ``augment`` is off)."""
        if not self.augment:
            return AugmentParams()
        rng = np.random.default_rng([self.rng_seed, self.epoch, int(index)])
        return AugmentParams.sample(rng, self.augment_config, can_flip=self.flip_pairs is not None)

    def _load_rgb(self, sample: Sample) -> np.ndarray:
        path = str(sample.image_path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: image_path: file not found")
        img = self.image_loader(path)
        if img is None or not isinstance(img, np.ndarray) or img.size == 0:
            raise FileNotFoundError(f"{path}: image_path: unreadable image")
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise FileNotFoundError(f"{path}: image_path: expected a colour image, got shape {img.shape}")
        if tuple(img.shape[:2]) != tuple(int(v) for v in sample.image_hw):
            raise ValueError(
                f"{path}: image_hw: record says {tuple(sample.image_hw)} but the image is {tuple(img.shape[:2])}"
            )
        return np.ascontiguousarray(img[:, :, 2::-1])  # BGR(A) -> RGB

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index = index % n
        if self.on_bad_image == "raise":
            return self._make_item(index, self._load_rgb(self.samples[index]))
        for k in range(n):
            j = (index + k) % n
            try:
                image = self._load_rgb(self.samples[j])
            except FileNotFoundError as err:
                warnings.warn(f"skipping sample {j}: {err}", stacklevel=2)
                continue
            return self._make_item(j, image)
        raise FileNotFoundError(f"no readable image among the {n} samples (first: {self.samples[0].image_path})")

    def _make_item(self, index: int, image_rgb: np.ndarray) -> dict[str, Any]:
        s = self.samples[index]
        size = self.input_size
        aug = self.augment_params(index)
        bbox = expand_box_to_aspect(np.asarray(s.bbox_xywh_px, dtype=np.float64), 1.0, self.scale)
        cx, cy = bbox[0] + 0.5 * bbox[2], bbox[1] + 0.5 * bbox[3]
        w, h = bbox[2] * aug.scale, bbox[3] * aug.scale
        aug_box = np.array([cx - 0.5 * w, cy - 0.5 * h, w, h])
        affine = crop_affine(aug_box, size, rotation_deg=aug.rotation_deg, flip=aug.flip)

        crop = crop_image(image_rgb, affine, size)
        if aug.color_scale_rgb != (1.0, 1.0, 1.0):
            crop = np.clip(crop.astype(np.float32) * np.asarray(aug.color_scale_rgb, np.float32), 0, 255)
        image_t = normalize_image(crop)

        kp_crop = transform_points(np.asarray(s.keypoints_2d_px, dtype=np.float64), affine)
        conf = np.asarray(s.keypoints_conf, dtype=np.float32).copy()
        has_3d = s.joints_3d_cam_mm is not None
        joints_3d = (
            np.asarray(s.joints_3d_cam_mm, dtype=np.float64).copy() if has_3d else np.zeros((self.num_joints, 3))
        )
        if aug.flip:
            joints_3d[:, 0] = -joints_3d[:, 0]
            perm = np.arange(self.num_joints)
            for a, b in self.flip_pairs or ():  # flip is only drawn when pairs are known
                perm[a], perm[b] = b, a
            kp_crop, conf, joints_3d = kp_crop[perm], conf[perm], joints_3d[perm]
        rz = np.eye(3)
        if aug.rotation_deg != 0.0:
            a = math.radians(-aug.rotation_deg)
            rz = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
            joints_3d = joints_3d @ rz.T

        has_intr = s.focal_px is not None
        fallback_focal, fallback_pp = default_intrinsics(s.image_hw)
        focal = np.asarray(s.focal_px if s.focal_px is not None else fallback_focal, dtype=np.float64)
        princpt = np.asarray(s.princpt_px if s.princpt_px is not None else fallback_pp, dtype=np.float64)
        # virtual crop camera: crop = s * R(-rot) F (K_xy X/Z + c - box_c) + crop_c  =>  f' = s f, c' = A(c)
        focal_crop = focal * np.array([size / w, size / h])
        princpt_crop = transform_points(princpt[None], affine)[0]

        in_crop = np.all((kp_crop >= -0.5) & (kp_crop <= size - 0.5), axis=-1)
        return {
            "image": image_t,
            "keypoints_2d_crop_px": torch.from_numpy(kp_crop.astype(np.float32)),
            "keypoints_conf": torch.from_numpy(conf.astype(np.float32)),
            "keypoints_in_crop": torch.from_numpy(in_crop),
            "crop_affine": torch.from_numpy(affine.astype(np.float32)),
            "crop_affine_inv": torch.from_numpy(invert_affine(affine).astype(np.float32)),
            "joints_3d_cam_mm": torch.from_numpy(joints_3d.astype(np.float32)),
            "cam_aug_rotmat": torch.from_numpy(rz.astype(np.float32)),
            "has_3d": torch.tensor(has_3d),
            "focal_px": torch.from_numpy(focal.astype(np.float32)),
            "princpt_px": torch.from_numpy(princpt.astype(np.float32)),
            "has_intrinsics": torch.tensor(has_intr),
            "focal_crop_px": torch.from_numpy(focal_crop.astype(np.float32)),
            "princpt_crop_px": torch.from_numpy(princpt_crop.astype(np.float32)),
            "bbox_xywh_px": torch.from_numpy(bbox.astype(np.float32)),
            "image_hw": torch.tensor([int(s.image_hw[0]), int(s.image_hw[1])], dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
            "joint_set": s.joint_set,
        }
