"""Camera models (pure tensor math, any leading batch dims).

Conventions
-----------
- Camera frame: OpenCV. x right, y DOWN, z forward (points in front of the camera have ``z > 0``).
  Points are in whatever length unit the caller uses (metres for SMPL-X); translations come out in the
  same unit.
- Pixel coordinates ``(u, v)``: ``u`` along image columns (x), ``v`` along rows (y), continuous. The
  project's convention (:mod:`neuralannot_cli.data.pipeline`, COCO, ``cv2.warpAffine``): integer
  coordinates are pixel CENTRES, an image of width ``W`` spans ``[-0.5, W - 0.5]``, and a crop of ``S``
  pixels has its centre at ``(S - 1) / 2``. The functions here never add a half-pixel offset; they only
  need the principal point the caller passes. The crop formulas assume the crop camera's principal point
  is the crop centre, the point the box centre maps to: ``(S - 1) / 2`` here, ``S / 2`` in SPIN /
  Hand4Whole / CLIFF (which span crops over ``[0, S]``); the formulas are the same either way.
- Intrinsics: focal length and principal point in pixels, ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``,
  ``u = fx * x / z + cx``, ``v = fy * y / z + cy``.
- Normalised crop coordinates: ``[-1, 1]`` across the crop, ``uv_norm = (uv_crop_px - crop_centre) / (S / 2)``;
  a crop of a square box of side ``b`` pixels centred at ``c`` in the full image maps back by
  ``uv_full_px = c + uv_norm * b / 2`` (:func:`crop_norm_to_full_px`), equivalently
  ``uv_full_px = c + (uv_crop_px - crop_centre) * b / S``.
- Weak-perspective camera ``cam_sxy = (s, tx, ty)`` (HMR / SPIN / Hand4Whole): a point ``X`` projects to
  ``uv_norm = s * (X[:2] + (tx, ty))`` in normalised crop coordinates (:func:`project_weak_persp`).
  It is the perspective camera of focal ``f`` (pixels) looking at the crop (``S`` pixels, principal
  point at the crop centre) with translation ``(tx, ty, tz)``, ``tz = 2 f / (S s)``, for points at the root
  depth (:func:`weak_persp_to_transl`, SPIN's ``convert_weak_perspective_to_perspective``).
  These weak-perspective functions take ONE focal length per element (square pixels, ``fx == fy``),
  as the field does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "PROJECT_EPS",
    "WEAK_PERSP_EPS",
    "project_perspective",
    "unproject",
    "project_weak_persp",
    "weak_persp_to_transl",
    "transl_to_weak_persp",
    "crop_norm_to_full_px",
    "full_px_to_crop_norm",
    "cam_crop_to_full",
    "cam_full_to_crop",
    "transl_crop_to_full",
    "transl_full_to_crop",
    "PinholeCamera",
]

#: Depth floor of :func:`project_perspective` (in the points' unit): ``z`` is clamped to ``>= PROJECT_EPS``,
#: so points on or behind the camera plane give large but finite pixel coordinates (callers mask them).
PROJECT_EPS = 1e-6

#: Floor of the weak-perspective scale ``s`` and of the depth ``tz`` in the divisions of the weak-perspective
#: conversions (SPIN adds 1e-9 to ``S * s``; we clamp, which also keeps negative values from flipping sign).
WEAK_PERSP_EPS = 1e-9


def _check(x: object, trailing: tuple[int, ...], name: str, fn: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    n = len(trailing)
    if x.dim() < n or tuple(x.shape[x.dim() - n :]) != trailing:
        want = "(..., " + ", ".join("N" if d < 0 else str(d) for d in trailing) + ")"
        raise ValueError(f"{fn}: {name} must have shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_points(x: object, last: int, name: str, fn: str) -> torch.Tensor:
    """``(..., N, last)``: at least 2 dims."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[-1] != last:
        raise ValueError(f"{fn}: {name} must have shape (..., N, {last}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _like(value: object, ref: torch.Tensor, name: str, fn: str, last: int | None = None) -> torch.Tensor:
    """Turn a float / tuple / tensor into a tensor of ``ref``'s dtype and device; check the trailing dim.

    A Python number becomes a ``torch.full`` (a fill kernel, no host-to-device copy: CUDA-graph safe)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        t = torch.full((), float(value), dtype=ref.dtype, device=ref.device)
    else:
        t = torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    if last is not None and (t.dim() < 1 or t.shape[-1] != last):
        raise ValueError(f"{fn}: {name} must have shape (..., {last}), got {tuple(t.shape)}")
    return t


def _stack_last(*components: torch.Tensor) -> torch.Tensor:
    """Broadcast ``(...)`` components against each other and stack them on a new last dim."""
    return torch.stack(torch.broadcast_tensors(*components), dim=-1)


# ---------------------------------------------------------------------------------- perspective


def project_perspective(
    points_cam: torch.Tensor,
    focal_px: torch.Tensor | tuple[float, float],
    princpt_px: torch.Tensor | tuple[float, float],
    eps: float = PROJECT_EPS,
) -> torch.Tensor:
    """Pinhole projection, ``uv = f * xy / max(z, eps) + c``.

    Args:
        points_cam: ``(..., N, 3)`` in the OpenCV camera frame.
        focal_px: ``(..., 2)`` ``(fx, fy)``; batch dims broadcast with those of ``points_cam``.
        princpt_px: ``(..., 2)`` ``(cx, cy)``.
        eps: depth floor, see :data:`PROJECT_EPS`.

    Returns:
        ``(..., N, 2)`` pixels.
    """
    fn = "project_perspective"
    _check_points(points_cam, 3, "points_cam", fn)
    focal = _like(focal_px, points_cam, "focal_px", fn, last=2)
    princpt = _like(princpt_px, points_cam, "princpt_px", fn, last=2)
    z = points_cam[..., 2:3].clamp_min(eps)
    return focal.unsqueeze(-2) * (points_cam[..., :2] / z) + princpt.unsqueeze(-2)


def unproject(
    points_px: torch.Tensor,
    depth: torch.Tensor,
    focal_px: torch.Tensor | tuple[float, float],
    princpt_px: torch.Tensor | tuple[float, float],
) -> torch.Tensor:
    """Inverse of :func:`project_perspective` given depth: ``xy = (uv - c) / f * z``.

    Args:
        points_px: ``(..., N, 2)`` pixels.
        depth: ``(..., N)`` camera-frame ``z`` (same unit as the returned points).
        focal_px: ``(..., 2)``.
        princpt_px: ``(..., 2)``.

    Returns:
        ``(..., N, 3)`` points in the camera frame.
    """
    fn = "unproject"
    _check_points(points_px, 2, "points_px", fn)
    if not isinstance(depth, torch.Tensor) or depth.shape != points_px.shape[:-1]:
        got = tuple(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__
        raise ValueError(f"{fn}: depth must have shape {tuple(points_px.shape[:-1])} (points_px without its last dim), got {got}")
    focal = _like(focal_px, points_px, "focal_px", fn, last=2)
    princpt = _like(princpt_px, points_px, "princpt_px", fn, last=2)
    z = depth.to(points_px.dtype).unsqueeze(-1)
    xy = (points_px - princpt.unsqueeze(-2)) / focal.unsqueeze(-2) * z
    return torch.cat([xy, z], dim=-1)


# ----------------------------------------------------------------------------- weak perspective


def project_weak_persp(points: torch.Tensor, cam_sxy: torch.Tensor) -> torch.Tensor:
    """Weak-perspective projection ``s * (xy + (tx, ty))`` into normalised crop coordinates ``[-1, 1]``.

    Args:
        points: ``(..., N, 3)`` (root-relative or not; ``z`` is ignored).
        cam_sxy: ``(..., 3)`` ``(s, tx, ty)``.

    Returns:
        ``(..., N, 2)`` normalised crop coordinates.
    """
    fn = "project_weak_persp"
    _check_points(points, 3, "points", fn)
    _check(cam_sxy, (3,), "cam_sxy", fn)
    s = cam_sxy[..., 0:1].unsqueeze(-2)
    t = cam_sxy[..., 1:3].unsqueeze(-2)
    return s * (points[..., :2] + t)


def weak_persp_to_transl(
    cam_sxy: torch.Tensor,
    focal_px: torch.Tensor | float,
    crop_size_px: torch.Tensor | float,
    eps: float = WEAK_PERSP_EPS,
) -> torch.Tensor:
    """Weak-perspective ``(s, tx, ty)`` to the crop camera's translation ``(tx, ty, 2 f / (S s))``.

    With this translation, the perspective camera of focal ``f`` and principal point at the crop centre
    projects points at the root depth exactly where :func:`project_weak_persp` (mapped to
    crop pixels) puts them. The translation is in the unit of the points (metres for SMPL-X).

    Args:
        cam_sxy: ``(..., 3)``; ``s`` should be positive (clamped to ``>= eps``).
        focal_px: ``(...)`` or a float, the crop camera's focal length (one value, square pixels).
        crop_size_px: ``(...)`` or a float, crop side ``S`` in pixels.
        eps: see :data:`WEAK_PERSP_EPS`.

    Returns:
        ``(..., 3)`` translation ``(tx, ty, tz)``.
    """
    fn = "weak_persp_to_transl"
    _check(cam_sxy, (3,), "cam_sxy", fn)
    f = _like(focal_px, cam_sxy, "focal_px", fn)
    size = _like(crop_size_px, cam_sxy, "crop_size_px", fn)
    tz = 2.0 * f / (size * cam_sxy[..., 0].clamp_min(eps))
    return _stack_last(cam_sxy[..., 1], cam_sxy[..., 2], tz)


def transl_to_weak_persp(
    transl: torch.Tensor,
    focal_px: torch.Tensor | float,
    crop_size_px: torch.Tensor | float,
    eps: float = WEAK_PERSP_EPS,
) -> torch.Tensor:
    """Inverse of :func:`weak_persp_to_transl`: ``(tx, ty, tz) -> (2 f / (S tz), tx, ty)``.

    Args:
        transl: ``(..., 3)`` crop-camera translation; ``tz`` clamped to ``>= eps``.
        focal_px: ``(...)`` or a float.
        crop_size_px: ``(...)`` or a float.

    Returns:
        ``(..., 3)`` ``(s, tx, ty)``.
    """
    fn = "transl_to_weak_persp"
    _check(transl, (3,), "transl", fn)
    f = _like(focal_px, transl, "focal_px", fn)
    size = _like(crop_size_px, transl, "crop_size_px", fn)
    s = 2.0 * f / (size * transl[..., 2].clamp_min(eps))
    return _stack_last(s, transl[..., 0], transl[..., 1])


# ---------------------------------------------------------------------------------- crop <-> full


def crop_norm_to_full_px(
    points_norm: torch.Tensor, box_center_px: torch.Tensor, box_size_px: torch.Tensor | float
) -> torch.Tensor:
    """Normalised crop coordinates to full-image pixels: ``c + uv_norm * b / 2``.

    Args:
        points_norm: ``(..., N, 2)``.
        box_center_px: ``(..., 2)`` box centre in the full image.
        box_size_px: ``(...)`` or float, side of the square box in full-image pixels.

    Returns:
        ``(..., N, 2)``.
    """
    fn = "crop_norm_to_full_px"
    _check_points(points_norm, 2, "points_norm", fn)
    c = _like(box_center_px, points_norm, "box_center_px", fn, last=2)
    b = _like(box_size_px, points_norm, "box_size_px", fn)
    return c.unsqueeze(-2) + points_norm * (b / 2.0)[..., None, None]


def full_px_to_crop_norm(
    points_px: torch.Tensor, box_center_px: torch.Tensor, box_size_px: torch.Tensor | float
) -> torch.Tensor:
    """Inverse of :func:`crop_norm_to_full_px`: ``(uv - c) * 2 / b``; shapes as there."""
    fn = "full_px_to_crop_norm"
    _check_points(points_px, 2, "points_px", fn)
    c = _like(box_center_px, points_px, "box_center_px", fn, last=2)
    b = _like(box_size_px, points_px, "box_size_px", fn)
    return (points_px - c.unsqueeze(-2)) * (2.0 / b)[..., None, None]


def cam_crop_to_full(
    cam_sxy: torch.Tensor,
    box_center_px: torch.Tensor,
    box_size_px: torch.Tensor | float,
    focal_px: torch.Tensor | float,
    princpt_px: torch.Tensor | tuple[float, float],
    eps: float = WEAK_PERSP_EPS,
) -> torch.Tensor:
    """Weak-perspective camera of a crop to the translation in the FULL-image camera (CLIFF's ``cam_crop2full``).

    With ``bs = b * s``::

        tz = 2 f / bs,   tx_full = tx + 2 (cx_box - cx) / bs,   ty_full = ty + 2 (cy_box - cy) / bs

    i.e. ``t_full_xy = t_xy + tz * (c_box - c) / f``. CLIFF uses ``c = (W/2, H/2)``; here the principal
    point is an argument. Assumptions under which it is exact: square box (crop keeps the aspect), square
    pixels (one focal), no rotation between crop and full camera; then projecting points at the root depth
    (``z`` offset 0 from the translation) with the full camera equals mapping their weak-perspective
    projection through :func:`crop_norm_to_full_px`. Points off that plane differ by perspective effects of
    relative order ``depth offset / tz`` (the weak-perspective approximation itself).

    Args:
        cam_sxy: ``(..., 3)`` ``(s, tx, ty)``; ``b * s`` is clamped to ``>= eps``.
        box_center_px: ``(..., 2)`` box centre in the full image.
        box_size_px: ``(...)`` or float, box side ``b`` in full-image pixels.
        focal_px: ``(...)`` or float, full-image focal length.
        princpt_px: ``(..., 2)`` full-image principal point.

    Returns:
        ``(..., 3)`` translation in the full-image camera, in the unit of the points (metres for SMPL-X).
    """
    fn = "cam_crop_to_full"
    _check(cam_sxy, (3,), "cam_sxy", fn)
    c_box = _like(box_center_px, cam_sxy, "box_center_px", fn, last=2)
    b = _like(box_size_px, cam_sxy, "box_size_px", fn)
    f = _like(focal_px, cam_sxy, "focal_px", fn)
    c = _like(princpt_px, cam_sxy, "princpt_px", fn, last=2)
    bs = (b * cam_sxy[..., 0]).clamp_min(eps)
    tz = 2.0 * f / bs
    t_xy = cam_sxy[..., 1:3] + 2.0 * (c_box - c) / bs.unsqueeze(-1)
    return _stack_last(t_xy[..., 0], t_xy[..., 1], tz)


def cam_full_to_crop(
    transl_full: torch.Tensor,
    box_center_px: torch.Tensor,
    box_size_px: torch.Tensor | float,
    focal_px: torch.Tensor | float,
    princpt_px: torch.Tensor | tuple[float, float],
    eps: float = WEAK_PERSP_EPS,
) -> torch.Tensor:
    """Inverse of :func:`cam_crop_to_full`: ``s = 2 f / (b tz)``, ``t_xy = t_full_xy - tz (c_box - c) / f``.

    Args:
        transl_full: ``(..., 3)``; ``tz`` clamped to ``>= eps``. Other arguments as in :func:`cam_crop_to_full`.

    Returns:
        ``(..., 3)`` ``(s, tx, ty)``.
    """
    fn = "cam_full_to_crop"
    _check(transl_full, (3,), "transl_full", fn)
    c_box = _like(box_center_px, transl_full, "box_center_px", fn, last=2)
    b = _like(box_size_px, transl_full, "box_size_px", fn)
    f = _like(focal_px, transl_full, "focal_px", fn)
    c = _like(princpt_px, transl_full, "princpt_px", fn, last=2)
    tz = transl_full[..., 2].clamp_min(eps)
    s = 2.0 * f / (b * tz)
    t_xy = transl_full[..., :2] - tz.unsqueeze(-1) * (c_box - c) / f.unsqueeze(-1)
    return _stack_last(s, t_xy[..., 0], t_xy[..., 1])


def transl_crop_to_full(
    transl_crop: torch.Tensor,
    box_center_px: torch.Tensor,
    box_size_px: torch.Tensor | float,
    focal_px: torch.Tensor | float,
    princpt_px: torch.Tensor | tuple[float, float],
    crop_focal_px: torch.Tensor | float,
    crop_size_px: torch.Tensor | float,
) -> torch.Tensor:
    """Translation in a crop's virtual perspective camera to the translation in the full-image camera.

    The crop camera has focal ``f_c`` (e.g. Hand4Whole's virtual 5000 px) and its principal point at the
    crop centre; the crop of ``S`` pixels shows a box of ``b`` full-image pixels centred at ``c_box``, so a
    crop pixel maps to the full image by ``uv_full = c_box + (uv_crop - crop_centre) * b / S``. Matching the scale
    and the root position gives::

        tz_full = tz_crop * (f / f_c) * (S / b),   t_full_xy = t_crop_xy + tz_full * (c_box - c) / f

    (the ``x, y`` translation is unchanged up to the shift of the viewing ray). Exact, under the
    assumptions of :func:`cam_crop_to_full`, for points at the root depth. ``box_size_px`` and
    ``crop_size_px`` may be any one matching dimension (box width with crop width) of an aspect-preserving
    crop. Composition check: ``transl_crop_to_full(weak_persp_to_transl(cam, f_c, S), ..., f_c, S)``
    equals ``cam_crop_to_full(cam, ...)``.

    Args:
        transl_crop: ``(..., 3)`` translation in the crop camera.
        box_center_px: ``(..., 2)``.
        box_size_px: ``(...)`` or float.
        focal_px: ``(...)`` or float, full-image focal.
        princpt_px: ``(..., 2)`` full-image principal point.
        crop_focal_px: ``(...)`` or float, crop camera focal.
        crop_size_px: ``(...)`` or float.

    Returns:
        ``(..., 3)`` translation in the full-image camera.
    """
    fn = "transl_crop_to_full"
    _check(transl_crop, (3,), "transl_crop", fn)
    c_box = _like(box_center_px, transl_crop, "box_center_px", fn, last=2)
    b = _like(box_size_px, transl_crop, "box_size_px", fn)
    f = _like(focal_px, transl_crop, "focal_px", fn)
    c = _like(princpt_px, transl_crop, "princpt_px", fn, last=2)
    f_c = _like(crop_focal_px, transl_crop, "crop_focal_px", fn)
    size = _like(crop_size_px, transl_crop, "crop_size_px", fn)
    tz = transl_crop[..., 2] * (f / f_c) * (size / b)
    t_xy = transl_crop[..., :2] + tz.unsqueeze(-1) * (c_box - c) / f.unsqueeze(-1)
    return _stack_last(t_xy[..., 0], t_xy[..., 1], tz)


def transl_full_to_crop(
    transl_full: torch.Tensor,
    box_center_px: torch.Tensor,
    box_size_px: torch.Tensor | float,
    focal_px: torch.Tensor | float,
    princpt_px: torch.Tensor | tuple[float, float],
    crop_focal_px: torch.Tensor | float,
    crop_size_px: torch.Tensor | float,
) -> torch.Tensor:
    """Inverse of :func:`transl_crop_to_full` (same arguments): the translation in the crop camera."""
    fn = "transl_full_to_crop"
    _check(transl_full, (3,), "transl_full", fn)
    c_box = _like(box_center_px, transl_full, "box_center_px", fn, last=2)
    b = _like(box_size_px, transl_full, "box_size_px", fn)
    f = _like(focal_px, transl_full, "focal_px", fn)
    c = _like(princpt_px, transl_full, "princpt_px", fn, last=2)
    f_c = _like(crop_focal_px, transl_full, "crop_focal_px", fn)
    size = _like(crop_size_px, transl_full, "crop_size_px", fn)
    tz_full = transl_full[..., 2]
    t_xy = transl_full[..., :2] - tz_full.unsqueeze(-1) * (c_box - c) / f.unsqueeze(-1)
    tz = tz_full * (f_c / f) * (b / size)
    return _stack_last(t_xy[..., 0], t_xy[..., 1], tz)


# ------------------------------------------------------------------------------------ dataclass


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera with OpenCV conventions (see the module docstring).

    Attributes:
        focal_px: ``(fx, fy)`` in pixels, positive.
        princpt_px: ``(cx, cy)`` in pixels.
        image_hw: ``(height, width)`` in pixels.
    """

    focal_px: tuple[float, float]
    princpt_px: tuple[float, float]
    image_hw: tuple[int, int]

    def __post_init__(self) -> None:
        for name in ("focal_px", "princpt_px", "image_hw"):
            value = getattr(self, name)
            if len(tuple(value)) != 2:
                raise ValueError(f"PinholeCamera: {name} must have 2 entries, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not all(f > 0 for f in self.focal_px):
            raise ValueError(f"PinholeCamera: focal_px must be positive, got {self.focal_px!r}")
        if not all(int(v) == v and v > 0 for v in self.image_hw):
            raise ValueError(f"PinholeCamera: image_hw must be positive integers, got {self.image_hw!r}")
        object.__setattr__(self, "focal_px", tuple(float(v) for v in self.focal_px))
        object.__setattr__(self, "princpt_px", tuple(float(v) for v in self.princpt_px))
        object.__setattr__(self, "image_hw", tuple(int(v) for v in self.image_hw))

    def K(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """``(3, 3)`` intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
        (fx, fy), (cx, cy) = self.focal_px, self.princpt_px
        return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)

    def project(self, points_cam: torch.Tensor, eps: float = PROJECT_EPS) -> torch.Tensor:
        """``(..., N, 3)`` camera-frame points to ``(..., N, 2)`` pixels (see :func:`project_perspective`)."""
        return project_perspective(points_cam, self.focal_px, self.princpt_px, eps=eps)

    def unproject(self, points_px: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``(..., N, 2)`` pixels and ``(..., N)`` depths to ``(..., N, 3)`` points (see :func:`unproject`)."""
        return unproject(points_px, depth, self.focal_px, self.princpt_px)
