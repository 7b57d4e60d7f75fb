"""Low-dimensional pose priors for the stage-2 regressor: VPoser (body), hand PCA, and "no prior".

NeuralAnnot's stage-2 network regresses a low-dimensional pose code instead of per-joint rotations; the
code is decoded by a frozen prior. The paper uses VPoser for the body and MANO's PCA for hands, and notes
that "the low-dimensional embeddings can be learned from D*_ax" (the stage-1 pseudo-GT) when no official
prior is at hand.

Protocol (:class:`PosePrior`, an ``nn.Module``):

- ``code_dim``: size ``Z`` of a code; ``num_joints``: number ``K`` of joint rotations it decodes to.
- ``decode(code (batch, Z)) -> pose_rotvecs (batch, K, 3)`` (axis-angle, radians), differentiable.
- ``encode_mean(pose_rotvecs (batch, K, 3)) -> code (batch, Z)``: the code that best explains a pose
  (VPoser: the posterior mean; PCA: the least-squares projection; identity: the exact 6D).

Priors returned by :func:`train_vposer`, :func:`load_vposer_checkpoint` and :func:`load_prior` are frozen:
eval mode (no dropout, BatchNorm running statistics) and ``requires_grad=False`` on every parameter.

Implementations
---------------
- :class:`VPoserPrior`: the VPoser v2 VAE (Pavlakos et al. 2019, ``human_body_prior`` v2,
  ``models/vposer_model.py``) with the same module tree, so the official ``V02_05`` checkpoint loads with
  :func:`load_vposer_checkpoint`. Its ``state_dict`` keys (``latent = Z``, ``hidden = H``, ``K = 21``)::

      encoder_net.1.{weight,bias,running_mean,running_var,num_batches_tracked}   BatchNorm1d(3K)
      encoder_net.2.{weight (H, 3K), bias}                                       Linear
      encoder_net.4.{weight,bias,running_mean,running_var,num_batches_tracked}   BatchNorm1d(H)
      encoder_net.6.{weight (H, H), bias}                                        Linear
      encoder_net.7.{weight (H, H), bias}                                        Linear
      encoder_net.8.mu.{weight (Z, H), bias}, encoder_net.8.logvar.{...}         NormalDistDecoder
      decoder_net.0.{weight (H, Z), bias}                                        Linear
      decoder_net.3.{weight (H, H), bias}                                        Linear
      decoder_net.5.{weight (6K, H), bias}                                       Linear

  (``encoder_net`` = BatchFlatten, BN, Linear, LeakyReLU, BN, Dropout(0.1), Linear, Linear, NormalDist;
  ``decoder_net`` = Linear, LeakyReLU, Dropout(0.1), Linear, LeakyReLU, Linear, then VPoser's
  ``ContinousRotReprDecoder``, which has no parameters and is applied in :meth:`VPoserPrior.decode_rotmats`.)
  The encoder's posterior scale is ``softplus(logvar(h))`` as in VPoser (despite the name, not
  ``exp(logvar / 2)``).

  **6D layout.** VPoser's decoder output per joint is ``x.view(-1, 3, 2)`` whose two *columns* are
  Gram-Schmidt'ed into the first two columns of the rotation matrix: the interleaved layout
  ``[R00, R01, R10, R11, R20, R21]`` (SPIN / HMR). :mod:`neuralannot_cli.rotation` stores 6D column after
  column (``[R00, R10, R20, R01, R11, R21]``); the decoder output is permuted with
  :func:`~neuralannot_cli.rotation.rot6d_interleaved_to_rot6d` before :func:`rot6d_to_rotmat`. The
  Gram-Schmidt itself is the same (normalise column 0; remove its component from column 1, normalise;
  column 2 = cross product), so the official weights decode to the official rotations (pinned in the tests).

- :class:`PCAPosePrior`: ``pose = mean + code @ components`` (MANO's hand PCA, or PCA fitted to Θ*).
- :class:`IdentityPosePrior`: no prior (the paper's Table 2 ablation): the code is each joint's 6D
  rotation (our column-major layout), flattened, ``Z = 6K``.

Persistence: :func:`save_prior` / :func:`load_prior` write ``prior.safetensors`` (weights) and
``prior.json`` (``{"format": "neuralannot.pose_prior", "version": 1, "kind": ..., "params": {...}}``) into
a directory, each atomically (temporary file, then ``os.replace``; the JSON last).
"""

from __future__ import annotations

import builtins
import collections
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from neuralannot_cli.rotation import (
    rot6d_interleaved_to_rot6d,
    rot6d_to_rotmat,
    rotmat_to_rotvec,
    rotvec_to_rot6d,
    rotvec_to_rotmat,
)

__all__ = [
    "PosePrior",
    "VPoserPrior",
    "PCAPosePrior",
    "IdentityPosePrior",
    "load_vposer_checkpoint",
    "vposer_state_dict_shapes",
    "train_vposer",
    "save_prior",
    "load_prior",
    "PRIOR_WEIGHTS_FILENAME",
    "PRIOR_CONFIG_FILENAME",
]

PRIOR_WEIGHTS_FILENAME = "prior.safetensors"
PRIOR_CONFIG_FILENAME = "prior.json"
_CONFIG_FORMAT = "neuralannot.pose_prior"
_CONFIG_VERSION = 1


def _check_pose(pose_rotvecs: object, num_joints: int, fn: str, name: str = "pose_rotvecs") -> Tensor:
    """``pose_rotvecs`` must be a floating tensor ``(batch, num_joints, 3)``."""
    if not isinstance(pose_rotvecs, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(pose_rotvecs).__name__}")
    if pose_rotvecs.dim() != 3 or tuple(pose_rotvecs.shape[1:]) != (num_joints, 3):
        raise ValueError(f"{fn}: {name} must have shape (batch, {num_joints}, 3), got {tuple(pose_rotvecs.shape)}")
    if not pose_rotvecs.is_floating_point():
        raise ValueError(f"{fn}: {name} must be a floating-point tensor, got dtype {pose_rotvecs.dtype}")
    return pose_rotvecs


def _check_code(code: object, code_dim: int, fn: str) -> Tensor:
    """``code`` must be a floating tensor ``(batch, code_dim)``."""
    if not isinstance(code, Tensor):
        raise TypeError(f"{fn}: code must be a torch.Tensor, got {type(code).__name__}")
    if code.dim() != 2 or code.shape[1] != code_dim:
        raise ValueError(f"{fn}: code must have shape (batch, {code_dim}), got {tuple(code.shape)}")
    if not code.is_floating_point():
        raise ValueError(f"{fn}: code must be a floating-point tensor, got dtype {code.dtype}")
    return code


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ------------------------------------------------------------------------------------------ protocol


class PosePrior(nn.Module):
    """Base class of the pose priors: ``decode(code (B, Z)) -> pose_rotvecs (B, K, 3)`` and back.

    Subclasses set ``code_dim`` / ``num_joints`` and implement :meth:`decode`, :meth:`encode_mean` and
    :meth:`config` (the JSON-able constructor arguments that, with ``state_dict()``, rebuild the prior).
    ``forward`` is ``decode``.
    """

    kind: ClassVar[str] = ""
    code_dim: int
    num_joints: int

    def decode(self, code: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode_mean(self, pose_rotvecs: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, code: Tensor) -> Tensor:
        return self.decode(code)


# ------------------------------------------------------------------------------------------- VPoser


class _BatchFlatten(nn.Module):
    """``(batch, ...) -> (batch, prod(...))`` (VPoser's ``BatchFlatten``)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


class _NormalDistHead(nn.Module):
    """VPoser's ``NormalDistDecoder``: returns ``(mu, scale)`` with ``scale = softplus(logvar(h))``."""

    def __init__(self, num_feat_in: int, latent_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(num_feat_in, latent_dim)
        self.logvar = nn.Linear(num_feat_in, latent_dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mu(h), F.softplus(self.logvar(h))


def vposer_state_dict_shapes(
    num_joints: int = 21, latent_dim: int = 32, hidden: int = 512
) -> dict[str, tuple[int, ...]]:
    """The exact ``state_dict`` key -> shape map of VPoser v2 (what ``V02_05`` holds under ``vp_model.``)."""
    k3, k6, h, z = 3 * num_joints, 6 * num_joints, hidden, latent_dim
    shapes: dict[str, tuple[int, ...]] = {}
    for idx, n in (("1", k3), ("4", h)):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"encoder_net.{idx}.{name}"] = (n,)
        shapes[f"encoder_net.{idx}.num_batches_tracked"] = ()
    shapes.update(
        {
            "encoder_net.2.weight": (h, k3),
            "encoder_net.2.bias": (h,),
            "encoder_net.6.weight": (h, h),
            "encoder_net.6.bias": (h,),
            "encoder_net.7.weight": (h, h),
            "encoder_net.7.bias": (h,),
            "encoder_net.8.mu.weight": (z, h),
            "encoder_net.8.mu.bias": (z,),
            "encoder_net.8.logvar.weight": (z, h),
            "encoder_net.8.logvar.bias": (z,),
            "decoder_net.0.weight": (h, z),
            "decoder_net.0.bias": (h,),
            "decoder_net.3.weight": (h, h),
            "decoder_net.3.bias": (h,),
            "decoder_net.5.weight": (k6, h),
            "decoder_net.5.bias": (k6,),
        }
    )
    return shapes


class VPoserPrior(PosePrior):
    """VPoser v2 VAE over ``num_joints`` body joint rotations (SMPL-X body pose without the root).

    Args:
        num_joints: ``K`` (21 for SMPL / SMPL-X body poses).
        latent_dim: ``Z`` (32 in VPoser v2).
        hidden: width ``H`` of the hidden layers (512 in VPoser v2).

    The encoder reads axis-angle ``(batch, K, 3)``; the decoder outputs VPoser's interleaved 6D per joint
    (see the module docstring), returned as rotation matrices / axis-angle.
    """

    kind: ClassVar[str] = "vposer"

    def __init__(self, num_joints: int = 21, latent_dim: int = 32, hidden: int = 512) -> None:
        super().__init__()
        for name, value in (("num_joints", num_joints), ("latent_dim", latent_dim), ("hidden", hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VPoserPrior: {name} must be a positive int, got {value!r}")
        self.num_joints = num_joints
        self.latent_dim = latent_dim
        self.code_dim = latent_dim
        self.hidden = hidden
        n_in = 3 * num_joints
        self.encoder_net = nn.Sequential(
            _BatchFlatten(),
            nn.BatchNorm1d(n_in),
            nn.Linear(n_in, hidden),
            nn.LeakyReLU(),
            nn.BatchNorm1d(hidden),
            nn.Dropout(0.1),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, hidden),
            _NormalDistHead(hidden, latent_dim),
        )
        self.decoder_net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.LeakyReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, 6 * num_joints),
        )

    def config(self) -> dict[str, Any]:
        return {"num_joints": self.num_joints, "latent_dim": self.latent_dim, "hidden": self.hidden}

    def extra_repr(self) -> str:
        return f"num_joints={self.num_joints}, latent_dim={self.latent_dim}, hidden={self.hidden}"

    def encode(self, pose_rotvecs: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``q(z | pose)``: ``(mu, scale)``, each ``(batch, Z)``.

        In train mode BatchNorm uses batch statistics (and needs ``batch > 1``); frozen priors are in eval mode.
        """
        _check_pose(pose_rotvecs, self.num_joints, "VPoserPrior.encode")
        return self.encoder_net(pose_rotvecs)

    def encode_mean(self, pose_rotvecs: Tensor) -> Tensor:
        """Posterior mean ``(batch, Z)`` of ``pose_rotvecs (batch, K, 3)``."""
        return self.encode(pose_rotvecs)[0]

    def decode_rot6d(self, code: Tensor) -> Tensor:
        """Decoder output in OUR 6D layout (first two columns, column-major): ``(batch, K, 6)``."""
        _check_code(code, self.latent_dim, "VPoserPrior.decode")
        raw = self.decoder_net(code).unflatten(-1, (self.num_joints, 6))  # VPoser's interleaved 6D
        return rot6d_interleaved_to_rot6d(raw)

    def decode_rotmats(self, code: Tensor) -> Tensor:
        """``code (batch, Z) -> rotmats (batch, K, 3, 3)``, equal to VPoser's ``pose_body_matrot``."""
        return rot6d_to_rotmat(self.decode_rot6d(code))

    def decode(self, code: Tensor) -> Tensor:
        """``code (batch, Z) -> pose_rotvecs (batch, K, 3)`` (VPoser's ``pose_body``, shortest arc)."""
        return rotmat_to_rotvec(self.decode_rotmats(code))


# --- checkpoint loading ------------------------------------------------------------------------------


class _Opaque:
    """Inert stand-in for any non-tensor object in a checkpoint (hyper-parameters, callbacks, ...)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


_TENSOR_REBUILDERS = frozenset(
    {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"}
)
_SAFE_BUILTINS = frozenset({"set", "frozenset", "tuple", "list", "dict", "int", "float", "bool", "str", "complex"})


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Resolves tensor-rebuilding globals only; every other global becomes :class:`_Opaque` (never imported)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in _TENSOR_REBUILDERS:
            return getattr(torch._utils, name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and (name == "Size" or isinstance(getattr(torch, name, None), torch.dtype)):
            return getattr(torch, name)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        return _Opaque


class _TensorsOnlyPickleModule:
    """A ``pickle_module`` for ``torch.load`` whose unpickler never imports arbitrary code."""

    Unpickler = _TensorsOnlyUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        # torch's legacy (non-zip) reader calls pickle_module.load for its header records: it must be the
        # restricted unpickler too (plain pickle.load here ran the code of a crafted file)
        return _TensorsOnlyUnpickler(file, **kwargs).load()
    __name__ = "neuralannot_tensors_only_pickle"


def _torch_load_tensors(path: Path) -> Any:
    """``torch.load(weights_only=True)``; for checkpoints that also pickle foreign objects (a Lightning
    ``.ckpt``'s OmegaConf hyper-parameters), fall back to an unpickler that rebuilds tensors and replaces
    every other object by an inert placeholder, so no code from the file is imported or run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_TensorsOnlyPickleModule)
    except Exception as exc:  # noqa: BLE001 - any failure means "not a readable torch checkpoint"
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc


def _read_raw_state_dict(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    obj = _torch_load_tensors(path)
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state_dict (or a dict with 'state_dict'), got {type(obj).__name__}")
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}


def _vposer_snapshot(directory: Path) -> Path:
    """The ``.ckpt`` of an official VPoser experiment folder (``V02_05/``): ``snapshots/*.ckpt``, the newest by
    modification time when there are several, as ``human_body_prior.tools.model_loader.exprdir2model`` picks."""
    snapshots = sorted((directory / "snapshots").glob("*.ckpt"), key=lambda p: (p.stat().st_mtime, p.name))
    if not snapshots:
        raise FileNotFoundError(f"VPoser checkpoint not found: no {directory / 'snapshots' / '*.ckpt'} in the folder "
                                f"{directory} (expected the V02_05 layout of the VPoser download)")  # fmt: skip
    return snapshots[-1]


def load_vposer_checkpoint(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> VPoserPrior:
    """Load VPoser v2 weights: the official Lightning ``.ckpt`` (``V02_05/snapshots/*.ckpt``, keys
    ``state_dict['vp_model.encoder_net...']``) or its experiment folder ``V02_05/`` (newest snapshot, as
    ``human_body_prior`` picks it), a plain ``state_dict`` ``.pt`` / ``.pth``, or ``.safetensors``.

    Keys with the ``vp_model.`` prefix are used when present (the body-model buffers the official trainer
    also saved are ignored, as ``human_body_prior.tools.model_loader`` does); ``num_joints``, ``latent_dim``
    and ``hidden`` are read from the weight shapes. ``num_batches_tracked`` may be missing.

    Returns:
        A frozen :class:`VPoserPrior` on ``device``.

    Raises:
        FileNotFoundError: no such file, or a folder without ``snapshots/*.ckpt``.
        ValueError: unreadable file, or VPoser keys missing / unexpected / of the wrong shape (named).
    """
    path = Path(path)
    if path.is_dir():
        path = _vposer_snapshot(path)
    if not path.is_file():
        raise FileNotFoundError(f"VPoser checkpoint not found: {path}")
    raw = _read_raw_state_dict(path)
    prefix = "vp_model."
    if any(k.startswith(prefix) for k in raw):
        state = {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}
    else:
        state = {k: v for k, v in raw.items() if k.startswith(("encoder_net.", "decoder_net."))}
    for key in ("decoder_net.0.weight", "decoder_net.5.weight"):
        if key not in state or state[key].dim() != 2:
            raise ValueError(f"{path}: no VPoser weight {key!r} (nor 'vp_model.{key}') of 2 dims in the file")
    hidden, latent_dim = state["decoder_net.0.weight"].shape
    out6k = state["decoder_net.5.weight"].shape[0]
    if out6k % 6:
        raise ValueError(f"{path}: decoder_net.5.weight has shape {tuple(state['decoder_net.5.weight'].shape)}, "
                         "expected (6 * num_joints, hidden)")  # fmt: skip
    expected = vposer_state_dict_shapes(out6k // 6, int(latent_dim), int(hidden))
    for name in ("encoder_net.1.num_batches_tracked", "encoder_net.4.num_batches_tracked"):
        state.setdefault(name, torch.zeros((), dtype=torch.long))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: not a VPoser v2 state_dict; missing keys {missing}, unexpected keys {unexpected}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {shape}")
    prior = VPoserPrior(num_joints=out6k // 6, latent_dim=int(latent_dim), hidden=int(hidden))
    prior.load_state_dict({k: v.to(torch.long) if k.endswith("num_batches_tracked") else v.float()
                           for k, v in state.items()})  # fmt: skip
    return _freeze(prior.to(torch.device(device)))


# --- training ------------------------------------------------------------------------------------------


def train_vposer(
    pose_rotvecs: Tensor | np.ndarray,
    *,
    latent_dim: int = 32,
    hidden: int = 512,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    kl_weight: float = 5e-3,
    weight_decay: float = 1e-5,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> VPoserPrior:
    """Train a :class:`VPoserPrior` on poses (NeuralAnnot: the stage-1 pseudo-GT body poses Θ* of D*_ax).

    Loss per sample (Adam, ``lr``, ``weight_decay``; minibatches of ``batch_size``, shuffled each epoch,
    a last batch of one sample is dropped because of BatchNorm)::

        L = sum_k ||R_hat_k - R_k||_F^2  +  kl_weight * KL(q(z | pose) || N(0, I))

    with ``R_hat = decode(z)``, ``z ~ q`` by the reparameterisation trick and the KL summed over the latent
    dims. ``||R_hat - R||_F^2 = 8 sin^2(angle / 2)`` is a smooth, monotone function of the geodesic angle
    (the geodesic itself has an infinite gradient at 0). VPoser v2 weighs its KL by 5e-3 against its
    reconstruction terms; here the reconstruction is summed over joints, so ``kl_weight=5e-3`` keeps the
    latent informative while pulling ``decode(0)`` towards the data mean.

    Args:
        pose_rotvecs: ``(N, K, 3)`` axis-angle (``N >= 2``), any float dtype; trained in float32.
        latent_dim, hidden: architecture (VPoser v2: 32, 512).
        epochs, batch_size, lr, kl_weight, weight_decay: optimisation.
        device: where to train; the returned prior stays there.
        seed: seeds initialisation, shuffling, dropout and the latent noise (the global RNG is restored).
        progress: called after each epoch with ``(epoch_index, mean_loss)``.

    Returns:
        A frozen :class:`VPoserPrior`.
    """
    fn = "train_vposer"
    if isinstance(pose_rotvecs, np.ndarray):
        pose_rotvecs = torch.from_numpy(pose_rotvecs)
    if not isinstance(pose_rotvecs, Tensor) or pose_rotvecs.dim() != 3 or pose_rotvecs.shape[-1] != 3:
        shape = tuple(pose_rotvecs.shape) if hasattr(pose_rotvecs, "shape") else type(pose_rotvecs).__name__
        raise ValueError(f"{fn}: pose_rotvecs must have shape (N, K, 3), got {shape}")
    if pose_rotvecs.shape[0] < 2:
        raise ValueError(f"{fn}: need at least 2 poses, got pose_rotvecs of shape {tuple(pose_rotvecs.shape)}")
    if not torch.isfinite(pose_rotvecs).all():
        raise ValueError(f"{fn}: pose_rotvecs contains NaN or inf")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
    if batch_size < 2:
        raise ValueError(f"{fn}: batch_size must be >= 2 (BatchNorm), got {batch_size}")
    device = torch.device(device)
    n, num_joints = int(pose_rotvecs.shape[0]), int(pose_rotvecs.shape[1])
    data = pose_rotvecs.detach().to(device=device, dtype=torch.float32)
    data_rotmats = rotvec_to_rotmat(data)
    fork_devices = []
    if device.type == "cuda":
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        prior = VPoserPrior(num_joints=num_joints, latent_dim=latent_dim, hidden=hidden).to(device)
        prior.train()
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        optimizer = torch.optim.Adam(prior.parameters(), lr=lr, weight_decay=weight_decay)
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen, device=device)
            total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
            count = 0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                if idx.numel() < 2:
                    continue
                mu, scale = prior.encode(data[idx])
                eps = torch.randn(mu.shape, generator=gen, device=device, dtype=mu.dtype)
                z = mu + scale * eps
                rotmats = prior.decode_rotmats(z)
                rec = (rotmats - data_rotmats[idx]).square().sum(dim=(-1, -2, -3)).mean()
                var = scale.square().clamp_min(1e-12)
                kl = 0.5 * (var + mu.square() - 1.0 - var.log()).sum(-1).mean()
                loss = rec + kl_weight * kl
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach().double() * idx.numel()
                count += idx.numel()
            if progress is not None:
                progress(epoch, float(total) / max(count, 1))
    return _freeze(prior)


# ---------------------------------------------------------------------------------------------- PCA


class PCAPosePrior(PosePrior):
    """Linear pose prior ``pose = mean + code @ components`` (MANO hand PCA or one fitted to Θ*).

    Args:
        components: ``(Z, 3K)``, rows are the components (need not be orthonormal; MANO's are).
        mean: ``(3K,)`` pose at code 0, in the convention of the poses the prior is meant to produce.

    :meth:`encode_mean` is the least-squares code ``(pose - mean) @ pinv(components)`` (exact when the rows
    are orthonormal and the pose lies in their span).
    """

    kind: ClassVar[str] = "pca"

    def __init__(self, components: Tensor | np.ndarray, mean: Tensor | np.ndarray) -> None:
        super().__init__()
        components = torch.as_tensor(components)
        mean = torch.as_tensor(mean)
        if components.dim() != 2 or components.shape[1] % 3 or components.shape[0] < 1:
            raise ValueError(f"PCAPosePrior: components must have shape (Z, 3K), got {tuple(components.shape)}")
        if mean.shape != (components.shape[1],):
            raise ValueError(f"PCAPosePrior: mean must have shape ({components.shape[1]},), got {tuple(mean.shape)}")
        if not (torch.isfinite(components).all() and torch.isfinite(mean).all()):
            raise ValueError("PCAPosePrior: components / mean contain NaN or inf")
        self.code_dim = int(components.shape[0])
        self.num_joints = int(components.shape[1]) // 3
        self.register_buffer("components", components.detach().to(torch.float32).clone())
        self.register_buffer("mean", mean.detach().to(torch.float32).clone())
        pinv = torch.linalg.pinv(self.components.to(torch.float64))  # (3K, Z), from the stored float32 rows
        self.register_buffer("projection", pinv.to(torch.float32), persistent=False)

    def config(self) -> dict[str, Any]:
        return {"code_dim": self.code_dim, "num_joints": self.num_joints}

    def extra_repr(self) -> str:
        return f"code_dim={self.code_dim}, num_joints={self.num_joints}"

    def decode(self, code: Tensor) -> Tensor:
        """``code (batch, Z) -> pose_rotvecs (batch, K, 3)``."""
        _check_code(code, self.code_dim, "PCAPosePrior.decode")
        flat = self.mean.to(code.dtype) + code @ self.components.to(code.dtype)
        return flat.unflatten(-1, (self.num_joints, 3))

    def encode_mean(self, pose_rotvecs: Tensor) -> Tensor:
        """Least-squares code ``(batch, Z)`` of ``pose_rotvecs (batch, K, 3)``."""
        _check_pose(pose_rotvecs, self.num_joints, "PCAPosePrior.encode_mean")
        centred = pose_rotvecs.flatten(1) - self.mean.to(pose_rotvecs.dtype)
        return centred @ self.projection.to(pose_rotvecs.dtype)

    @classmethod
    def fit_pca(cls, pose_rotvecs: Tensor | np.ndarray, num_comps: int) -> PCAPosePrior:
        """PCA of poses (NeuralAnnot: the stage-1 hand pseudo-GT Θ*), in float64 by SVD.

        ``mean`` = the data mean; ``components`` = the top ``num_comps`` right singular vectors of the
        centred data (orthonormal rows, unscaled as MANO's), each signed so its largest-magnitude entry is
        positive. Decoded poses are in the convention of the input poses.

        Args:
            pose_rotvecs: ``(N, K, 3)``.
            num_comps: ``1 <= num_comps <= min(N, 3K)``.
        """
        fn = "PCAPosePrior.fit_pca"
        if isinstance(pose_rotvecs, np.ndarray):
            pose_rotvecs = torch.from_numpy(pose_rotvecs)
        if not isinstance(pose_rotvecs, Tensor) or pose_rotvecs.dim() != 3 or pose_rotvecs.shape[-1] != 3:
            shape = tuple(pose_rotvecs.shape) if hasattr(pose_rotvecs, "shape") else type(pose_rotvecs).__name__
            raise ValueError(f"{fn}: pose_rotvecs must have shape (N, K, 3), got {shape}")
        x = pose_rotvecs.detach().to("cpu", torch.float64).flatten(1)
        n, d = x.shape
        if not isinstance(num_comps, int) or not 1 <= num_comps <= min(n, d):
            raise ValueError(f"{fn}: num_comps must be in [1, min(N, 3K)] = [1, {min(n, d)}], got {num_comps!r}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{fn}: pose_rotvecs contains NaN or inf")
        mean = x.mean(0)
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        comps = vh[:num_comps]
        pivot = comps.abs().argmax(dim=1, keepdim=True)
        comps = comps * torch.sign(torch.gather(comps, 1, pivot))
        return cls(comps, mean)

    @classmethod
    def from_mano(cls, body_model: Any, num_comps: int) -> PCAPosePrior:
        """MANO's hand PCA (``hands_components`` / ``hands_mean`` of the model file), for ``body_model``.

        ``body_model`` is a :class:`neuralannot_cli.body.BodyModel` of type ``'mano'`` (the file's
        ``hands_components`` / ``hands_mean``, left or right as loaded) or ``'smplx'`` (the right hand's
        ``hands_componentsr`` / ``hands_meanr``).

        Convention: as in MANO / ``smplx`` with ``use_pca=True, flat_hand_mean=False``, code 0 is the MANO
        mean hand and the absolute hand pose is ``hands_mean + code @ hands_components``. Decoded poses are
        expressed in what ``BodyModel.forward(hand_pose_rotvecs=...)`` expects: with
        ``flat_hand_mean=False`` (our default) BodyModel adds ``hands_mean`` itself, so ``mean = 0``; with
        ``flat_hand_mean=True`` it does not, so ``mean = hands_mean``. (Unlike smplx's
        ``flat_hand_mean=True`` PCA, code 0 is never the flat hand.)
        """
        fn = "PCAPosePrior.from_mano"
        model_type = getattr(body_model, "model_type", None)
        if model_type not in ("mano", "smplx"):
            raise ValueError(f"{fn}: body_model must be a MANO or SMPL-X BodyModel, got model_type={model_type!r}")
        suffix = "" if model_type == "mano" else "r"
        path = Path(body_model.layer_path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                comps_key, mean_key = f"hands_components{suffix}", f"hands_mean{suffix}"
                for key in (comps_key, mean_key):
                    if key not in npz.files:
                        raise ValueError(f"{path}: no field {key!r} (hand PCA) in the model file")
                comps = np.asarray(npz[comps_key], dtype=np.float64)
                hands_mean = np.asarray(npz[mean_key], dtype=np.float64).reshape(-1)
        except (OSError, pickle.UnpicklingError) as exc:
            raise ValueError(f"{path}: cannot read the hand PCA ({exc})") from exc
        if comps.ndim != 2 or comps.shape[1] != 45 or hands_mean.shape != (45,):
            raise ValueError(f"{path}: hands_components{suffix} has shape {comps.shape} and hands_mean{suffix} "
                             f"{hands_mean.shape}, expected (n, 45) and (45,)")  # fmt: skip
        if not isinstance(num_comps, int) or not 1 <= num_comps <= comps.shape[0]:
            raise ValueError(f"{fn}: num_comps must be in [1, {comps.shape[0]}], got {num_comps!r}")
        layer = body_model.layer
        added = layer.hand_mean if model_type == "mano" else layer.right_hand_mean
        added = added.detach().to("cpu", torch.float64).reshape(-1).numpy()
        return cls(torch.from_numpy(comps[:num_comps]), torch.from_numpy(hands_mean - added))


# ----------------------------------------------------------------------------------------- identity


class IdentityPosePrior(PosePrior):
    """No prior: the code is each joint's 6D rotation (column-major, see :mod:`neuralannot_cli.rotation`),
    flattened: ``code (batch, 6K) -> pose_rotvecs (batch, K, 3)`` by Gram-Schmidt (any 6 numbers decode)."""

    kind: ClassVar[str] = "identity"

    def __init__(self, num_joints: int) -> None:
        super().__init__()
        if not isinstance(num_joints, int) or isinstance(num_joints, bool) or num_joints < 1:
            raise ValueError(f"IdentityPosePrior: num_joints must be a positive int, got {num_joints!r}")
        self.num_joints = num_joints
        self.code_dim = 6 * num_joints

    def config(self) -> dict[str, Any]:
        return {"num_joints": self.num_joints}

    def extra_repr(self) -> str:
        return f"num_joints={self.num_joints}"

    def decode(self, code: Tensor) -> Tensor:
        _check_code(code, self.code_dim, "IdentityPosePrior.decode")
        return rotmat_to_rotvec(rot6d_to_rotmat(code.unflatten(-1, (self.num_joints, 6))))

    def encode_mean(self, pose_rotvecs: Tensor) -> Tensor:
        _check_pose(pose_rotvecs, self.num_joints, "IdentityPosePrior.encode_mean")
        return rotvec_to_rot6d(pose_rotvecs).flatten(1)


# --------------------------------------------------------------------------------------- persistence

_KINDS: dict[str, type[PosePrior]] = {"vposer": VPoserPrior, "pca": PCAPosePrior, "identity": IdentityPosePrior}


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_prior(prior: PosePrior, directory: str | os.PathLike) -> Path:
    """Write ``prior`` to ``directory/prior.safetensors`` + ``directory/prior.json`` (atomically, JSON last).

    Returns:
        The JSON path.
    """
    from safetensors.torch import save_file

    if not isinstance(prior, PosePrior) or type(prior).kind not in _KINDS:
        raise TypeError(
            f"save_prior: expected a VPoserPrior, PCAPosePrior or IdentityPosePrior, got {type(prior).__name__}"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in prior.state_dict().items()}
    config = {"format": _CONFIG_FORMAT, "version": _CONFIG_VERSION, "kind": type(prior).kind, "params": prior.config()}
    metadata = {"format": _CONFIG_FORMAT}
    _atomic_write(directory / PRIOR_WEIGHTS_FILENAME, lambda tmp: save_file(tensors, tmp, metadata=metadata))

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")

    _atomic_write(directory / PRIOR_CONFIG_FILENAME, write_json)
    return directory / PRIOR_CONFIG_FILENAME


def load_prior(directory: str | os.PathLike, device: torch.device | str = "cpu") -> PosePrior:
    """Rebuild the prior written by :func:`save_prior`; frozen, on ``device``.

    Raises:
        FileNotFoundError: ``prior.json`` or ``prior.safetensors`` missing (named).
        ValueError: malformed config (file and field named) or weights that do not fit it.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, weights_path = directory / PRIOR_CONFIG_FILENAME, directory / PRIOR_WEIGHTS_FILENAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"pose prior file not found: {p}")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{cfg_path}: expected a JSON object, got {type(config).__name__}")
    if config.get("format") != _CONFIG_FORMAT:
        raise ValueError(f"{cfg_path}: field 'format' must be {_CONFIG_FORMAT!r}, got {config.get('format')!r}")
    if config.get("version") != _CONFIG_VERSION:
        raise ValueError(f"{cfg_path}: field 'version' must be {_CONFIG_VERSION}, got {config.get('version')!r}")
    kind = config.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"{cfg_path}: field 'kind' must be one of {sorted(_KINDS)}, got {kind!r}")
    params = config.get("params")
    if not isinstance(params, dict):
        raise ValueError(f"{cfg_path}: field 'params' must be an object, got {type(params).__name__}")
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
    try:
        if kind == "vposer":
            prior: PosePrior = VPoserPrior(**{k: params[k] for k in ("num_joints", "latent_dim", "hidden")})
        elif kind == "identity":
            prior = IdentityPosePrior(params["num_joints"])
        else:
            for key in ("components", "mean"):
                if key not in tensors:
                    raise ValueError(f"{weights_path}: missing tensor {key!r}")
            prior = PCAPosePrior(tensors["components"], tensors["mean"])
            if prior.code_dim != params.get("code_dim") or prior.num_joints != params.get("num_joints"):
                raise ValueError(f"{cfg_path}: field 'params' {params} does not match the weights "
                                 f"(code_dim={prior.code_dim}, num_joints={prior.num_joints})")  # fmt: skip
    except KeyError as exc:
        raise ValueError(f"{cfg_path}: field 'params.{exc.args[0]}' is missing") from exc
    except TypeError as exc:
        raise ValueError(f"{cfg_path}: field 'params' is invalid ({exc})") from exc
    try:
        prior.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights_path}: weights do not fit the {kind} prior of {cfg_path.name}: {exc}") from exc
    return _freeze(prior.to(torch.device(device)))
