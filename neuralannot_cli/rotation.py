"""Rotation conversions (pure tensor math, any leading batch dims).

Every function accepts tensors with arbitrary leading batch dims ``...`` and keeps them; names follow
``<src>_to_<dst>``. ``roma`` (>= 1.4) does the numerically delicate work (Rodrigues near 0, matrix to
quaternion near pi, Gram-Schmidt); this module pins the conventions and checks shapes.

Representations
---------------
- ``rotvec`` ``(..., 3)``: axis-angle, axis * angle in radians (SMPL-X / MANO / FLAME pose parameters).
  :func:`rotmat_to_rotvec` returns the shortest arc, ``|rotvec| <= pi``.
- ``rotmat`` ``(..., 3, 3)``: rotation matrix acting on column vectors, ``x' = R @ x``.
- ``rot6d`` ``(..., 6)``: Zhou et al., "On the Continuity of Rotation Representations in Neural
  Networks", CVPR 2019: the FIRST TWO COLUMNS of the rotation matrix, stored column after column::

      rot6d = [R[0,0], R[1,0], R[2,0],  R[0,1], R[1,1], R[2,1]]
             \\______ column 0 ______/  \\______ column 1 ______/

  Decoding (:func:`rot6d_to_rotmat`) is Gram-Schmidt: column 0 = normalised ``rot6d[0:3]``; column 1 =
  ``rot6d[3:6]`` minus its component along column 0, normalised; column 2 = column 0 x column 1.
  This is the layout of 4D-Humans / ProHMR (``x.reshape(-1, 2, 3).permute(0, 2, 1)``). Two other layouts
  are common and are NOT interchangeable with it:

  * SPIN / HMR / Hand4Whole / NeuralAnnot code: ``x.view(-1, 3, 2)`` then columns, i.e. the same two
    columns stored row-major (interleaved): ``[R00, R01, R10, R11, R20, R21]``. Convert with
    :func:`rot6d_interleaved_to_rot6d` / :func:`rot6d_to_rot6d_interleaved` (a pure permutation).
  * pytorch3d ``matrix_to_rotation_6d``: the first two ROWS, ``[R00, R01, R02, R10, R11, R12]``; its
    decoding is our decoding transposed, see :func:`rot6d_rows_to_rotmat` / :func:`rotmat_to_rot6d_rows`.

- Euler angles ``(..., 3)`` in radians (or degrees with ``degrees=True``), roma's convention strings:
  three letters from ``x, y, z`` (no two consecutive letters equal), UPPERCASE = intrinsic (rotations
  about the axes of the body frame as it moves), lowercase = extrinsic (about the fixed world axes).
  ``angles[..., i]`` is the angle about the i-th letter. Concretely, with ``R_a(t)`` the elementary
  rotation about axis ``a``:

  * intrinsic ``'XYZ'``: ``R = R_x(angles[0]) @ R_y(angles[1]) @ R_z(angles[2])``;
  * extrinsic ``'xyz'``: ``R = R_z(angles[2]) @ R_y(angles[1]) @ R_x(angles[0])``
    (the first angle is applied first, about the fixed world x axis).

  Intrinsic ``'XYZ'`` equals extrinsic ``'zyx'`` with the angles reversed.

Mirroring
---------
:func:`mirror_rotvec` reflects a joint rotation across the sagittal plane ``x -> -x`` (a left hand pose
seen as a right hand, as MANO left/right and flip augmentation need): with ``M = diag(-1, 1, 1)``,
``R' = M R M``, which for an axis-angle vector (an axial vector, ``w' = det(M) M w``) is
``(x, y, z) -> (x, -y, -z)``.
"""

from __future__ import annotations

import torch
import roma

__all__ = [
    "rot6d_to_rotmat",
    "rotmat_to_rot6d",
    "rotvec_to_rotmat",
    "rotmat_to_rotvec",
    "rot6d_to_rotvec",
    "rotvec_to_rot6d",
    "rot6d_interleaved_to_rot6d",
    "rot6d_to_rot6d_interleaved",
    "rot6d_rows_to_rotmat",
    "rotmat_to_rot6d_rows",
    "euler_to_rotmat",
    "rotmat_to_euler",
    "rotvec_compose",
    "rotmat_geodesic_distance",
    "mirror_rotvec",
    "mirror_rotmat",
]

# Clamp used when normalising the 6D columns; keeps all-zero input finite (the output is then not a rotation).
_GRAM_SCHMIDT_EPS = 1e-12


def _check_tensor(x: object, trailing: tuple[int, ...], name: str, fn: str) -> torch.Tensor:
    """Check that ``x`` is a floating tensor of shape ``(..., *trailing)``; raise ValueError otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    n = len(trailing)
    if x.dim() < n or tuple(x.shape[x.dim() - n :]) != trailing:
        want = "(..., " + ", ".join(str(d) for d in trailing) + ")"
        raise ValueError(f"{fn}: {name} must have shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


# --------------------------------------------------------------------------------------------- 6D


def rot6d_to_rotmat(rot6d: torch.Tensor) -> torch.Tensor:
    """Decode Zhou et al. 6D (first two columns, column-major, see module docstring) by Gram-Schmidt.

    Args:
        rot6d: ``(..., 6)``, any scale (network output); columns need not be orthonormal.

    Returns:
        ``(..., 3, 3)`` rotation matrices. Degenerate input (a zero or colinear column pair) gives a
        finite but non-rotation matrix.
    """
    _check_tensor(rot6d, (6,), "rot6d", "rot6d_to_rotmat")
    two_columns = rot6d.unflatten(-1, (2, 3)).transpose(-1, -2)  # (..., 3, 2): [:, 0] = rot6d[0:3]
    return roma.special_gramschmidt(two_columns, epsilon=_GRAM_SCHMIDT_EPS)


def rotmat_to_rot6d(rotmats: torch.Tensor) -> torch.Tensor:
    """First two columns of ``rotmats``, column-major: ``[R00, R10, R20, R01, R11, R21]``.

    Args:
        rotmats: ``(..., 3, 3)``.

    Returns:
        ``(..., 6)``.
    """
    _check_tensor(rotmats, (3, 3), "rotmats", "rotmat_to_rot6d")
    return rotmats[..., :, :2].transpose(-1, -2).flatten(-2)


def rot6d_interleaved_to_rot6d(rot6d_interleaved: torch.Tensor) -> torch.Tensor:
    """SPIN / HMR / Hand4Whole 6D (``view(-1, 3, 2)``: ``[R00, R01, R10, R11, R20, R21]``) to our layout.

    Args:
        rot6d_interleaved: ``(..., 6)``.

    Returns:
        ``(..., 6)`` in the layout of :func:`rot6d_to_rotmat`. Pure permutation, exact.
    """
    _check_tensor(rot6d_interleaved, (6,), "rot6d_interleaved", "rot6d_interleaved_to_rot6d")
    return rot6d_interleaved.unflatten(-1, (3, 2)).transpose(-1, -2).flatten(-2)


def rot6d_to_rot6d_interleaved(rot6d: torch.Tensor) -> torch.Tensor:
    """Our 6D layout to the SPIN / HMR / Hand4Whole interleaved one (inverse of the function above).

    Args:
        rot6d: ``(..., 6)``.

    Returns:
        ``(..., 6)``: ``[R00, R01, R10, R11, R20, R21]``.
    """
    _check_tensor(rot6d, (6,), "rot6d", "rot6d_to_rot6d_interleaved")
    return rot6d.unflatten(-1, (2, 3)).transpose(-1, -2).flatten(-2)


def rot6d_rows_to_rotmat(rot6d_rows: torch.Tensor) -> torch.Tensor:
    """Decode pytorch3d's 6D (first two ROWS, ``[R00, R01, R02, R10, R11, R12]``) as pytorch3d does.

    pytorch3d's Gram-Schmidt builds rows from the two 3-vectors, which is our column decoding transposed.

    Args:
        rot6d_rows: ``(..., 6)``.

    Returns:
        ``(..., 3, 3)``.
    """
    _check_tensor(rot6d_rows, (6,), "rot6d_rows", "rot6d_rows_to_rotmat")
    return rot6d_to_rotmat(rot6d_rows).transpose(-1, -2)


def rotmat_to_rot6d_rows(rotmats: torch.Tensor) -> torch.Tensor:
    """pytorch3d's ``matrix_to_rotation_6d``: the first two rows, ``[R00, R01, R02, R10, R11, R12]``.

    Args:
        rotmats: ``(..., 3, 3)``.

    Returns:
        ``(..., 6)``.
    """
    _check_tensor(rotmats, (3, 3), "rotmats", "rotmat_to_rot6d_rows")
    return rotmats[..., :2, :].flatten(-2)


# ----------------------------------------------------------------------------------- axis-angle


def rotvec_to_rotmat(rotvecs: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula (roma; first-order expansion below 1e-6 rad, so finite value and gradient at 0).

    Matches ``smplx.lbs.batch_rodrigues`` (to ~1e-7; smplx adds 1e-8 to the vector before its norm).

    Args:
        rotvecs: ``(..., 3)`` axis * angle, radians.

    Returns:
        ``(..., 3, 3)``.
    """
    _check_tensor(rotvecs, (3,), "rotvecs", "rotvec_to_rotmat")
    return roma.rotvec_to_rotmat(rotvecs)


def rotmat_to_rotvec(rotmats: torch.Tensor) -> torch.Tensor:
    """Shortest-arc axis-angle (``|rotvec| <= pi``), robust near 0 and near pi (roma, via Markley's quaternion).

    At exactly pi the sign of the axis is arbitrary (both represent the same rotation).

    Args:
        rotmats: ``(..., 3, 3)``; slightly non-orthonormal input is tolerated.

    Returns:
        ``(..., 3)``.
    """
    _check_tensor(rotmats, (3, 3), "rotmats", "rotmat_to_rotvec")
    return roma.rotmat_to_rotvec(rotmats)


def rot6d_to_rotvec(rot6d: torch.Tensor) -> torch.Tensor:
    """``rotmat_to_rotvec(rot6d_to_rotmat(rot6d))``: ``(..., 6) -> (..., 3)``."""
    _check_tensor(rot6d, (6,), "rot6d", "rot6d_to_rotvec")
    return rotmat_to_rotvec(rot6d_to_rotmat(rot6d))


def rotvec_to_rot6d(rotvecs: torch.Tensor) -> torch.Tensor:
    """``rotmat_to_rot6d(rotvec_to_rotmat(rotvecs))``: ``(..., 3) -> (..., 6)``."""
    _check_tensor(rotvecs, (3,), "rotvecs", "rotvec_to_rot6d")
    return rotmat_to_rot6d(rotvec_to_rotmat(rotvecs))


def rotvec_compose(rotvecs_outer: torch.Tensor, rotvecs_inner: torch.Tensor) -> torch.Tensor:
    """Axis-angle of ``R(outer) @ R(inner)``: ``inner`` is applied first, then ``outer``.

    E.g. rotating a global orientation by a camera rotation: ``rotvec_compose(cam_rotvec, glob_rotvec)``.

    Args:
        rotvecs_outer: ``(..., 3)``.
        rotvecs_inner: ``(..., 3)``; batch dims broadcast with ``rotvecs_outer``.

    Returns:
        ``(..., 3)``, shortest arc.
    """
    _check_tensor(rotvecs_outer, (3,), "rotvecs_outer", "rotvec_compose")
    _check_tensor(rotvecs_inner, (3,), "rotvecs_inner", "rotvec_compose")
    outer, inner = torch.broadcast_tensors(rotvecs_outer, rotvecs_inner)
    return roma.rotvec_composition([outer, inner])


# ------------------------------------------------------------------------------------------ Euler


def _parse_convention(convention: str, intrinsic: bool | None, fn: str) -> str:
    """Validate a 3-letter Euler convention; return it in roma's case (upper = intrinsic, lower = extrinsic)."""
    if not isinstance(convention, str) or len(convention) != 3 or any(c not in "xyzXYZ" for c in convention):
        raise ValueError(f"{fn}: convention must be 3 letters from x/y/z (e.g. 'XYZ', 'zyx'), got {convention!r}")
    if intrinsic is None:
        if not (convention.isupper() or convention.islower()):
            raise ValueError(
                f"{fn}: convention {convention!r} mixes upper case (intrinsic) and lower case (extrinsic)"
            )
        out = convention
    else:
        out = convention.upper() if intrinsic else convention.lower()
    low = out.lower()
    if low[0] == low[1] or low[1] == low[2]:
        raise ValueError(f"{fn}: consecutive axes of convention {convention!r} must differ")
    return out


def euler_to_rotmat(
    angles: torch.Tensor,
    convention: str = "XYZ",
    intrinsic: bool | None = None,
    degrees: bool = False,
) -> torch.Tensor:
    """Euler angles to rotation matrices (roma's conventions, see the module docstring).

    Args:
        angles: ``(..., 3)``; ``angles[..., i]`` is the angle about axis ``convention[i]``.
        convention: 3 letters from x/y/z. With ``intrinsic=None`` the CASE decides, as in roma:
            ``'XYZ'`` intrinsic, ``R = R_x(a0) @ R_y(a1) @ R_z(a2)``; ``'xyz'`` extrinsic,
            ``R = R_z(a2) @ R_y(a1) @ R_x(a0)``.
        intrinsic: if given, overrides the case of ``convention`` (True: intrinsic, False: extrinsic).
        degrees: angles in degrees instead of radians.

    Returns:
        ``(..., 3, 3)``.
    """
    fn = "euler_to_rotmat"
    _check_tensor(angles, (3,), "angles", fn)
    conv = _parse_convention(convention, intrinsic, fn)
    return roma.euler_to_rotmat(conv, angles, degrees=degrees)


def rotmat_to_euler(
    rotmats: torch.Tensor,
    convention: str = "XYZ",
    intrinsic: bool | None = None,
    degrees: bool = False,
) -> torch.Tensor:
    """Rotation matrices to Euler angles, inverse of :func:`euler_to_rotmat` with the same arguments.

    Angles lie in ``[-pi, pi]``; the middle angle lies in ``[-pi/2, pi/2]`` for Tait-Bryan conventions
    (three distinct axes) and in ``[0, pi]`` for proper Euler ones (``'ZXZ'``). At gimbal lock the third
    angle is set to 0 (roma / scipy behaviour).

    Args:
        rotmats: ``(..., 3, 3)``.
        convention, intrinsic, degrees: as in :func:`euler_to_rotmat`.

    Returns:
        ``(..., 3)``.
    """
    fn = "rotmat_to_euler"
    _check_tensor(rotmats, (3, 3), "rotmats", fn)
    conv = _parse_convention(convention, intrinsic, fn)
    return roma.rotmat_to_euler(conv, rotmats, degrees=degrees)


# ----------------------------------------------------------------------------- metrics, mirroring


def rotmat_geodesic_distance(rotmats_a: torch.Tensor, rotmats_b: torch.Tensor) -> torch.Tensor:
    """Angle in radians, in ``[0, pi]``, of the rotation ``R_a^T R_b`` (geodesic distance on SO(3)).

    Uses ``|R_b - R_a|_F = 2 sqrt(2) sin(angle / 2)`` (roma), accurate for nearby rotations, unlike
    ``acos((trace - 1) / 2)``. The gradient is infinite at exactly pi apart (asin at 1).

    Args:
        rotmats_a: ``(..., 3, 3)``.
        rotmats_b: ``(..., 3, 3)``; batch dims broadcast.

    Returns:
        ``(...)`` radians.
    """
    _check_tensor(rotmats_a, (3, 3), "rotmats_a", "rotmat_geodesic_distance")
    _check_tensor(rotmats_b, (3, 3), "rotmats_b", "rotmat_geodesic_distance")
    return roma.rotmat_geodesic_distance(rotmats_a, rotmats_b)


def mirror_rotvec(rotvecs: torch.Tensor) -> torch.Tensor:
    """Mirror joint rotations across the sagittal plane ``x -> -x``: ``(x, y, z) -> (x, -y, -z)``.

    Equals ``rotmat_to_rotvec(M @ rotvec_to_rotmat(rotvecs) @ M)`` with ``M = diag(-1, 1, 1)``. Used to turn
    a left-hand MANO pose into the equivalent right-hand one (and back: it is an involution) and for
    horizontal-flip augmentation (together with swapping left/right joints).

    Args:
        rotvecs: ``(..., 3)``.

    Returns:
        ``(..., 3)``.
    """
    _check_tensor(rotvecs, (3,), "rotvecs", "mirror_rotvec")
    # no sign tensor: a new_tensor here is a host-to-device copy in every step of a GPU fitting loop
    return torch.cat([rotvecs[..., :1], -rotvecs[..., 1:]], dim=-1)


def mirror_rotmat(rotmats: torch.Tensor) -> torch.Tensor:
    """Matrix form of :func:`mirror_rotvec`: ``M R M`` with ``M = diag(-1, 1, 1)``.

    Args:
        rotmats: ``(..., 3, 3)``.

    Returns:
        ``(..., 3, 3)``: entries ``R[i, j]`` with exactly one of ``i, j`` equal to 0 change sign.
    """
    _check_tensor(rotmats, (3, 3), "rotmats", "mirror_rotmat")
    sign = rotmats.new_tensor([-1.0, 1.0, 1.0])
    return rotmats * sign[:, None] * sign[None, :]
