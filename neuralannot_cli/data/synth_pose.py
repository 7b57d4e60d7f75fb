"""Random but plausible SMPL-X / MANO parameters for the synthetic generator (:mod:`.synth`).

Everything is drawn from a ``numpy.random.Generator`` in float64, so the same seed gives the same
parameters bit for bit. Nothing here depends on a particular model file: joints are addressed by the
SMPL-X / MANO joint *names* (``smplx.joint_names``), the hand mean pose is read from the loaded
model, so real SMPL-X/MANO files and the stand-in behave alike.

Frames and angles
-----------------
Joint limits are intrinsic ``'XYZ'`` Euler angles in degrees (``R = R_x(a) @ R_y(b) @ R_z(c)``, see
:mod:`neuralannot_cli.rotation`) of each joint *relative to its parent*, in the model's rest frame:
y up, the body faces +z, the body's left side at +x (SMPL-X T-pose, arms along +-x). Consequences
(signs pinned by ``tests/test_synth.py``):

- hips: ``x < 0`` swings the leg forward (flexion), ``z > 0`` moves the left leg outwards;
- knees: ``x > 0`` only (the shin folds backwards);
- spine: ``x > 0`` bends forward; small ranges per spine joint (they add up over three joints);
- shoulders: left ``z < 0`` lowers the arm from the T-pose towards the side, ``y < 0`` swings it
  forward; the right side is the mirror (signs of y and z flipped);
- elbows: left ``y <= 0``, right ``y >= 0`` (the forearm folds forwards, never backwards);
- fingers (MANO / SMPL-X right hand, fingers along -x, palm down): flexion is ``z > 0``; the left
  hand is the mirror image (:func:`neuralannot_cli.rotation.mirror_rotvec`: ``(x, y, z) -> (x, -y, -z)``).

Hand poses are returned *relative to the model's mean hand pose* (``flat_hand_mean=False``, the
convention of :class:`neuralannot_cli.body.BodyModel`): ``hand_pose_rotvecs = absolute - mean``, so
``BodyModel`` reproduces the sampled absolute (flat-hand-relative) articulation.

Sampling: each body angle is ``lo + (hi - lo) * Beta(1.6, 1.6)`` (uniform-like, a little thinner at
the limits). Finger curls are correlated: a per-hand grip ``g ~ U(0, 1)``, per-finger curl
``clip(g + N(0, 0.25), 0, 1)``, joint flexion ``curl * limit + N(0, 4 deg)``, clipped to the limits.
Betas ``~ N(0, 1)`` clipped to ``[-2.5, 2.5]``; jaw opening ``x in [0, 20] deg``; expression
``~ N(0, 0.7)`` clipped to ``[-2, 2]``.

Global orientation (:func:`sample_upright_root_rotmat`): the body's up axis (+y) is mapped to the
scene's up direction with a random yaw about it and a small tilt (``<= 8 deg`` by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neuralannot_cli.rotation import euler_to_rotmat, mirror_rotvec, rotmat_to_rotvec

__all__ = [
    "BODY_JOINT_NAMES",
    "BODY_LIMITS_DEG",
    "FINGER_NAMES",
    "FINGER_FLEX_LIMITS_DEG",
    "SmplxParams",
    "ManoParams",
    "euler_deg_to_rotvec",
    "rotvec_to_rotmat_np",
    "rotmat_to_rotvec_np",
    "sample_body_pose_rotvecs",
    "sample_hand_pose_rotvecs_abs",
    "sample_betas",
    "sample_smplx_params",
    "sample_mano_params",
    "sample_upright_root_rotmat",
    "sample_random_rotmat",
]

BODY_JOINT_NAMES: tuple[str, ...] = (
    "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
"""The 21 SMPL-X body joints of ``body_pose_rotvecs`` (SMPL-X kinematic joints 1..21)."""

_Lim = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]

_LEFT_BODY_LIMITS_DEG: dict[str, _Lim] = {
    "left_hip": ((-85.0, 25.0), (-25.0, 25.0), (-8.0, 35.0)),
    "spine1": ((-10.0, 22.0), (-12.0, 12.0), (-8.0, 8.0)),
    "left_knee": ((0.0, 110.0), (-4.0, 4.0), (-3.0, 3.0)),
    "spine2": ((-6.0, 12.0), (-8.0, 8.0), (-5.0, 5.0)),
    "left_ankle": ((-20.0, 30.0), (-10.0, 10.0), (-10.0, 10.0)),
    "spine3": ((-6.0, 12.0), (-8.0, 8.0), (-5.0, 5.0)),
    "left_foot": ((-10.0, 15.0), (-3.0, 3.0), (-3.0, 3.0)),
    "neck": ((-15.0, 25.0), (-25.0, 25.0), (-10.0, 10.0)),
    "left_collar": ((-5.0, 5.0), (-8.0, 8.0), (-5.0, 12.0)),
    "head": ((-15.0, 20.0), (-25.0, 25.0), (-12.0, 12.0)),
    "left_shoulder": ((-35.0, 35.0), (-70.0, 25.0), (-75.0, 35.0)),
    "left_elbow": ((-10.0, 10.0), (-125.0, 0.0), (-5.0, 5.0)),
    "left_wrist": ((-35.0, 35.0), (-15.0, 15.0), (-45.0, 45.0)),
}


def _mirror_limits(lim: _Lim) -> _Lim:
    (xl, xh), (yl, yh), (zl, zh) = lim
    return ((xl, xh), (-yh, -yl), (-zh, -zl))


def _build_body_limits() -> dict[str, _Lim]:
    out: dict[str, _Lim] = {}
    for name in BODY_JOINT_NAMES:
        if name in _LEFT_BODY_LIMITS_DEG:
            out[name] = _LEFT_BODY_LIMITS_DEG[name]
        else:
            out[name] = _mirror_limits(_LEFT_BODY_LIMITS_DEG[name.replace("right_", "left_")])
    return out


BODY_LIMITS_DEG: dict[str, _Lim] = _build_body_limits()
"""Per body joint ``((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi))`` intrinsic XYZ Euler limits (deg)."""

FINGER_NAMES: tuple[str, ...] = ("index", "middle", "pinky", "ring", "thumb")
"""Finger order of the 15 MANO / SMPL-X hand joints (3 joints each, base to tip)."""

FINGER_FLEX_LIMITS_DEG: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    # (flexion about z) per joint 1..3, right hand; joint 1 also spreads about y.
    "index": ((-10.0, 80.0), (0.0, 100.0), (0.0, 70.0)),
    "middle": ((-10.0, 85.0), (0.0, 100.0), (0.0, 70.0)),
    "pinky": ((-10.0, 85.0), (0.0, 100.0), (0.0, 70.0)),
    "ring": ((-10.0, 85.0), (0.0, 100.0), (0.0, 70.0)),
    "thumb": ((-15.0, 30.0), (-5.0, 40.0), (0.0, 60.0)),
}
"""Right-hand finger flexion limits (deg), per finger and joint 1..3 (base to tip)."""
_FINGER_SPREAD_DEG = 12.0  # +- spread (about y) of joint 1, +- twist (about x) of every joint is 1/3 of it


def euler_deg_to_rotvec(angles_deg: np.ndarray) -> np.ndarray:
    """``(..., 3)`` intrinsic XYZ Euler angles (deg) -> ``(..., 3)`` axis-angle (rad), float64."""
    angles = torch.as_tensor(np.asarray(angles_deg, dtype=np.float64))
    return rotmat_to_rotvec(euler_to_rotmat(angles, "XYZ", degrees=True)).numpy()


def rotvec_to_rotmat_np(rotvecs: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle -> ``(..., 3, 3)`` float64 (Rodrigues, via roma)."""
    import roma

    return roma.rotvec_to_rotmat(torch.as_tensor(np.asarray(rotvecs, dtype=np.float64))).numpy()


def rotmat_to_rotvec_np(rotmats: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` -> ``(..., 3)`` float64 axis-angle (shortest arc)."""
    return rotmat_to_rotvec(torch.as_tensor(np.asarray(rotmats, dtype=np.float64))).numpy()


def _rotx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _roty(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def sample_body_pose_rotvecs(rng: np.random.Generator, batch: int) -> np.ndarray:
    """``(batch, 21, 3)`` body joint rotations within :data:`BODY_LIMITS_DEG` (rad, axis-angle)."""
    lim = np.array([BODY_LIMITS_DEG[n] for n in BODY_JOINT_NAMES])  # (21, 3, 2)
    u = rng.beta(1.6, 1.6, size=(batch, 21, 3))
    angles = lim[..., 0] + (lim[..., 1] - lim[..., 0]) * u
    return euler_deg_to_rotvec(angles)


def sample_hand_pose_rotvecs_abs(rng: np.random.Generator, batch: int, *, is_right: bool = True) -> np.ndarray:
    """``(batch, 15, 3)`` absolute (flat-hand-relative) finger rotations, MANO joint order (rad)."""
    grip = rng.uniform(0.0, 1.0, size=(batch, 1))
    curl = np.clip(grip + rng.normal(0.0, 0.25, size=(batch, 5)), 0.0, 1.0)  # per finger
    angles = np.zeros((batch, 5, 3, 3))
    for f, finger in enumerate(FINGER_NAMES):
        for j in range(3):
            lo, hi = FINGER_FLEX_LIMITS_DEG[finger][j]
            flex = lo + (hi - lo) * curl[:, f] + rng.normal(0.0, 4.0, size=batch)
            angles[:, f, j, 2] = np.clip(flex, lo, hi)
            twist = _FINGER_SPREAD_DEG / 3.0
            angles[:, f, j, 0] = rng.uniform(-twist, twist, size=batch)
            if j == 0:
                angles[:, f, j, 1] = rng.uniform(-_FINGER_SPREAD_DEG, _FINGER_SPREAD_DEG, size=batch)
    rotvecs = euler_deg_to_rotvec(angles.reshape(batch, 15, 3))
    if not is_right:
        rotvecs = mirror_rotvec(torch.as_tensor(rotvecs)).numpy()
    return rotvecs


def sample_betas(rng: np.random.Generator, batch: int, num_betas: int) -> np.ndarray:
    """``(batch, num_betas)`` shape coefficients ``~ N(0, 1)`` clipped to ``[-2.5, 2.5]``."""
    return np.clip(rng.normal(0.0, 1.0, size=(batch, num_betas)), -2.5, 2.5)


def sample_upright_root_rotmat(
    rng: np.random.Generator,
    batch: int,
    up_to_scene: np.ndarray,
    *,
    yaw_range_deg: tuple[float, float] = (-180.0, 180.0),
    max_tilt_deg: float = 8.0,
) -> np.ndarray:
    """``(batch, 3, 3)`` root rotations (model frame -> scene frame) of a mostly upright body.

    Args:
        up_to_scene: ``(3, 3)`` rotation taking the model's rest frame (y up, facing +z) to the scene
            frame with zero yaw (e.g. ``diag(1, -1, -1)`` for an OpenCV camera: upright, facing the camera).
        yaw_range_deg: yaw about the model's up axis (0 = as ``up_to_scene``).
        max_tilt_deg: largest lean (about the model's x and z axes).
    """
    yaw = np.deg2rad(rng.uniform(*yaw_range_deg, size=batch))
    tilt = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg, size=(batch, 2)))
    out = np.empty((batch, 3, 3))
    for i in range(batch):
        lean = _rotx(tilt[i, 0]) @ np.array(
            [[np.cos(tilt[i, 1]), -np.sin(tilt[i, 1]), 0.0], [np.sin(tilt[i, 1]), np.cos(tilt[i, 1]), 0.0], [0, 0, 1.0]]
        )
        out[i] = up_to_scene @ lean @ _roty(yaw[i])
    return out


def sample_random_rotmat(rng: np.random.Generator, batch: int) -> np.ndarray:
    """``(batch, 3, 3)`` rotations uniform on SO(3) (normalised Gaussian quaternions)."""
    q = rng.normal(size=(batch, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


@dataclass(frozen=True)
class SmplxParams:
    """A batch of SMPL-X parameters (float64 numpy), names as :class:`neuralannot_cli.body.BodyModel`.

    Hand poses are relative to the model's mean hand pose. ``root_rotvec`` / ``transl_m`` are filled
    in by the scene set-up (they depend on the camera / world frame).
    """

    body_pose_rotvecs: np.ndarray  # (batch, 21, 3)
    betas: np.ndarray  # (batch, num_betas)
    left_hand_pose_rotvecs: np.ndarray  # (batch, 15, 3)
    right_hand_pose_rotvecs: np.ndarray  # (batch, 15, 3)
    jaw_rotvec: np.ndarray  # (batch, 3)
    expression: np.ndarray  # (batch, num_expression_coeffs)


@dataclass(frozen=True)
class ManoParams:
    """A batch of MANO parameters: ``hand_pose_rotvecs (batch, 15, 3)`` (relative to the mean), ``betas``."""

    hand_pose_rotvecs: np.ndarray
    betas: np.ndarray


def sample_smplx_params(
    rng: np.random.Generator,
    batch: int,
    *,
    num_betas: int,
    num_expression_coeffs: int,
    left_hand_mean: np.ndarray,
    right_hand_mean: np.ndarray,
    hands: bool = True,
    face: bool = True,
) -> SmplxParams:
    """Body, hand and face parameters for ``batch`` people.

    Args:
        left_hand_mean, right_hand_mean: ``(15, 3)`` the model's mean hand poses (rad), subtracted so
            that the returned poses are relative to them.
        hands: sample finger articulation; False leaves the hands at the model's mean pose.
        face: sample jaw opening and expression; False leaves them at zero.
    """
    body = sample_body_pose_rotvecs(rng, batch)
    betas = sample_betas(rng, batch, num_betas)
    if hands:
        left = sample_hand_pose_rotvecs_abs(rng, batch, is_right=False) - np.asarray(left_hand_mean).reshape(1, 15, 3)
        right = sample_hand_pose_rotvecs_abs(rng, batch, is_right=True) - np.asarray(right_hand_mean).reshape(1, 15, 3)
    else:
        left = np.zeros((batch, 15, 3))
        right = np.zeros((batch, 15, 3))
    if face:
        jaw = euler_deg_to_rotvec(
            np.stack([rng.uniform(0.0, 20.0, batch), rng.uniform(-3, 3, batch), rng.uniform(-3, 3, batch)], -1)
        )
        expression = np.clip(rng.normal(0.0, 0.7, size=(batch, num_expression_coeffs)), -2.0, 2.0)
    else:
        jaw = np.zeros((batch, 3))
        expression = np.zeros((batch, num_expression_coeffs))
    return SmplxParams(body, betas, left, right, jaw, expression)


def sample_mano_params(
    rng: np.random.Generator, batch: int, *, num_betas: int, hand_mean: np.ndarray, is_right: bool
) -> ManoParams:
    """Finger articulation (relative to ``hand_mean`` ``(15, 3)``) and betas for ``batch`` hands."""
    pose = sample_hand_pose_rotvecs_abs(rng, batch, is_right=is_right) - np.asarray(hand_mean).reshape(1, 15, 3)
    return ManoParams(pose, sample_betas(rng, batch, num_betas))
