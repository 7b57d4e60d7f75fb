"""Prior terms of the SMPLify-X-style fitting engine (pure tensor math, one value per sample).

Every function returns a ``(batch,)`` tensor: the engine sums samples' losses (never averages over the
batch) so that, with Adam, a sample's gradient depends on that sample alone.

- :func:`l2_prior`: ``sum(x ** 2)`` over all non-batch dims. Used for the shape prior ``||betas||^2``
  (betas are in units of the PCA standard deviation, so this is the Gaussian negative log-likelihood up
  to a factor), the expression prior ``||psi||^2``, the jaw prior and the plain pose prior
  ``||theta||^2`` (SMPL-X body pose in axis-angle; MANO pose relative to the mean hand, so zero = mean
  hand).
- :func:`angle_prior`: SMPLify's penalty on elbows and knees bending the wrong way,
  ``exp(sign * theta_axis) ** 2`` per joint (Bogo et al. 2016, ``angle_prior`` of smplify-x's
  ``prior.py``). Axis and sign per joint, in :data:`SMPLX_ANGLE_PRIOR` for the SMPL-X body pose
  (``body_pose_rotvecs``, 21 joints, parent-relative, model rest frame y up, body faces +z, body's left
  at +x): the knees fold with ``x > 0`` and the left / right elbow with ``y < 0`` / ``y > 0`` (the same
  signs as :mod:`neuralannot_cli.data.synth_pose`'s joint limits, pinned by its tests). So the natural
  bend direction costs ``exp(-|theta|) ** 2 < 1``, hyper-extension costs ``exp(|theta|) ** 2``.
- :class:`LatentPose`: the optional VPoser-style latent prior. The optimiser works on a code ``z``
  (``pose = prior.decode(z)``) and the prior term is ``||z||^2`` (the VAE's standard normal prior).
  ``prior`` is any :class:`neuralannot_cli.nets.prior.PosePrior` (``code_dim``, ``num_joints``,
  ``decode``, ``encode_mean``); ``mirror=True`` serves a LEFT hand with a right-hand prior
  (``pose_left = mirror_rotvec(decode(z))``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from neuralannot_cli.rotation import mirror_rotvec

__all__ = ["l2_prior", "angle_prior", "SMPLX_ANGLE_PRIOR", "LatentPose"]

SMPLX_ANGLE_PRIOR: tuple[tuple[int, int, float], ...] = (
    (17, 1, 1.0),  # left elbow (body joint 18 - 1): natural y < 0, penalise y > 0
    (18, 1, -1.0),  # right elbow: natural y > 0, penalise y < 0
    (3, 0, -1.0),  # left knee: natural x > 0, penalise x < 0
    (4, 0, -1.0),  # right knee
)
"""``(index into body_pose_rotvecs (21 joints), axis, sign)``: the penalty is ``exp(sign * theta[index, axis])**2``."""


def l2_prior(x: Tensor) -> Tensor:
    """``(batch, ...)`` -> ``(batch,)`` sum of squares over all non-batch dims."""
    if not isinstance(x, Tensor) or x.dim() < 1:
        raise ValueError(f"l2_prior: x must be a tensor (batch, ...), got {getattr(x, 'shape', type(x).__name__)}")
    return x.reshape(x.shape[0], -1).pow(2).sum(-1)


def angle_prior(body_pose_rotvecs: Tensor, table: tuple[tuple[int, int, float], ...] = SMPLX_ANGLE_PRIOR) -> Tensor:
    """SMPLify's elbow/knee prior. ``body_pose_rotvecs (batch, 21, 3)`` -> ``(batch,)``."""
    if not isinstance(body_pose_rotvecs, Tensor) or body_pose_rotvecs.dim() != 3 or body_pose_rotvecs.shape[-1] != 3:
        got = getattr(body_pose_rotvecs, "shape", type(body_pose_rotvecs).__name__)
        raise ValueError(f"angle_prior: body_pose_rotvecs must have shape (batch, joints, 3), got {tuple(got)}")
    # plain int indexing and Python-float signs: no index tensor is copied to the device on every call (this
    # runs once per optimisation step; each host-to-device copy would synchronise a GPU loop)
    signed = torch.stack([body_pose_rotvecs[:, i, a] * s for i, a, s in table], -1)  # (batch, n)
    return torch.exp(signed).pow(2).sum(-1)


class LatentPose:
    """Pose through a :class:`~neuralannot_cli.nets.prior.PosePrior`: ``decode(code) -> pose_rotvecs``.

    Args:
        prior: the prior (frozen, eval mode; its parameters get no gradient here).
        mirror: decode then mirror (``(x, y, z) -> (x, -y, -z)``): a right-hand prior for a LEFT MANO.
    """

    def __init__(self, prior: Any, *, mirror: bool = False) -> None:
        for attr in ("code_dim", "num_joints", "decode", "encode_mean"):
            if not hasattr(prior, attr):
                raise ValueError(f"LatentPose: prior {type(prior).__name__} lacks {attr!r} (not a PosePrior)")
        self.prior = prior
        self.mirror = bool(mirror)
        self.code_dim = int(prior.code_dim)
        self.num_joints = int(prior.num_joints)

    def decode(self, code: Tensor) -> Tensor:
        """``(batch, Z)`` -> ``(batch, K, 3)``."""
        pose = self.prior.decode(code)
        return mirror_rotvec(pose) if self.mirror else pose

    @torch.no_grad()
    def encode(self, pose_rotvecs: Tensor) -> Tensor:
        """``(batch, K, 3)`` -> ``(batch, Z)`` (the prior's ``encode_mean``), detached."""
        pose = mirror_rotvec(pose_rotvecs) if self.mirror else pose_rotvecs
        return self.prior.encode_mean(pose).detach()

    @staticmethod
    def prior_term(code: Tensor) -> Tensor:
        """``||code||^2`` per sample, ``(batch,)``."""
        return l2_prior(code)
