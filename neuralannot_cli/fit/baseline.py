"""The SMPLify-X-style baseline annotator (``neuralannot annotate ... --method smplifyx``).

The batched engine (:mod:`.engine`) on the body or hand keypoints of :class:`~neuralannot_cli.data.record.Sample`
records, returning :class:`FitPrediction`, which has the fields of the NeuralAnnot annotator's
``Prediction`` (:mod:`neuralannot_cli.train.inference`) so the same writer serves both.

- part ``'body'``: SMPL-X root + 21 body joints, 10 betas, translation; hands at the mean pose, jaw and
  expression zero. Keypoints: ``coco_wholebody_133`` samples use their first 23 joints (body 17 + feet
  6; 23-joint samples too), auxiliary sets their own 2D joints (``h36m_17``, ``mpi3dhp_17``; 3DPW's ``coco_17``), plus the
  root-relative 3D joints when ``use_3d=True`` and the sample has them.
- part ``'hand'``: MANO root + 15 joints (relative to the mean hand), 10 betas, translation; ``hand_21``
  keypoints. A LEFT hand (``extras['hand_side'] == 'left'`` or ``ids['hand_side']``) is fitted with the
  LEFT MANO model directly in the original image, so its parameters are LEFT-MANO parameters in the
  original camera, i.e. what ``Prediction`` holds for ``mirrored = True``; no image flip is needed.
- Camera: the sample's intrinsics (``focal_px``, ``princpt_px``) when known, else
  :func:`neuralannot_cli.fit.face.default_camera` (``f = sqrt(W^2 + H^2)``, centre).
- ``init``: ``{key: {"root_rotvec", "pose_rotvecs", "betas", "transl_m"}}`` (numpy / lists / tensors), e.g.
  NeuralAnnot's pseudo-GT read back from its JSON: the paper's "SMPLify-X on ours" (Table 5). Keys are
  whatever the caller uses in ``keys`` (``annotate`` uses its record keys). An initialised sample skips the
  root candidates and the depth initialisation; missing entries fall back to the default start.

Samples are grouped by model (body, right hand, left hand) and by whether they have an init, and each
group is fitted in batches of ``batch_size``; the output keeps the input order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from neuralannot_cli.data.record import Sample
from neuralannot_cli.fit.engine import FitConfig, FitTargets, default_fit_config, fit, layout_for
from neuralannot_cli.fit.face import default_camera

__all__ = ["FitPrediction", "fit_samples", "hand_side", "sample_layout"]


@dataclass(frozen=True)
class FitPrediction:
    """Baseline fits of ``N`` samples, fields as ``neuralannot_cli.train.inference.Prediction``.

    Attributes:
        root_rotvec: ``(N, 3)`` global rotation, original camera frame (OpenCV).
        pose_rotvecs: ``(N, K, 3)`` SMPL-X body (21) / MANO hand (15, relative to the mean hand).
        betas: ``(N, 10)``.
        transl_cam_m: ``(N, 3)`` smplx ``transl`` in the original camera (metres).
        focal_px, princpt_px: ``(N, 2)`` the intrinsics used.
        keypoints_2d_px: ``(N, J, 2)`` the fitted target-set joints projected into the image (body: the
            first 23 of ``coco_wholebody_133``; hand: ``hand_21``), whatever set was fitted.
        joints_3d_cam_mm: ``(N, J, 3)`` the same joints, camera frame, millimetres.
        cam_sxy: ``(N, 3)`` zeros (a fit has no weak-perspective crop camera; kept for the field set).
        mirrored: ``(N,)`` bool: a LEFT hand, parameters for the LEFT MANO model.
        reproj_err_px: ``(N,)`` mean 2D distance to the keypoints that were fitted.
        loss: ``(N,)`` final objective.
        keys: ``N`` keys (``keys`` argument, else the sample indices as strings).
    """

    root_rotvec: Tensor
    pose_rotvecs: Tensor
    betas: Tensor
    transl_cam_m: Tensor
    focal_px: Tensor
    princpt_px: Tensor
    keypoints_2d_px: Tensor
    joints_3d_cam_mm: Tensor
    cam_sxy: Tensor
    mirrored: Tensor
    reproj_err_px: Tensor
    loss: Tensor
    keys: tuple[str, ...]


def hand_side(sample: Sample) -> str:
    """``'left'`` or ``'right'`` (``extras['hand_side']``, then ``ids['hand_side']``, default right)."""
    side = str(sample.extras.get("hand_side", sample.ids.get("hand_side", "right")))
    if side not in ("left", "right"):
        raise ValueError(f"sample hand_side must be 'left' or 'right', got {side!r}")
    return side


def sample_layout(sample: Sample, part: Literal["body", "hand"]) -> tuple[str, int]:
    """``(joint set, number of joints used)`` of a sample's keypoints for ``part``."""
    j = int(np.asarray(sample.keypoints_2d_px).shape[0])
    js = sample.joint_set
    if part == "body":
        if js == "coco_wholebody_133" and j in (23, 133):
            return js, 23
        if js in ("h36m_17", "mpi3dhp_17", "coco_17") and j == 17:
            return js, 17
    elif part == "hand" and js == "hand_21" and j == 21:
        return js, 21
    raise ValueError(f"the {part} baseline cannot fit {js} keypoints of shape {np.asarray(sample.keypoints_2d_px).shape}")


def _init_tensor(entry: Mapping[str, Any], name: str, shape: tuple[int, ...], key: str) -> np.ndarray:
    v = entry.get(name)
    if v is None:
        raise ValueError(f"init[{key!r}] lacks {name!r}")
    a = np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, np.float64)
    if a.size != int(np.prod(shape)):
        raise ValueError(f"init[{key!r}].{name}: expected {shape}, got shape {a.shape}")
    return a.reshape(shape)


def fit_samples(
    samples: Sequence[Sample],
    *,
    part: Literal["body", "hand"],
    config: FitConfig | None = None,
    init: Mapping[str, Mapping[str, Any]] | None = None,
    keys: Sequence[str] | None = None,
    use_3d: bool = False,
    pose_prior: Any | None = None,
    model_dir: str | None = None,
    models: Mapping[str, Any] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    mode: Literal["batched", "per_sample"] = "batched",
    progress: Callable[[int, int], None] | None = None,
) -> FitPrediction:
    """Fit the body or hand model to each sample (module docstring).

    Args:
        samples: body samples (``coco_wholebody_133`` / ``h36m_17`` / ``mpi3dhp_17``) or hand samples
            (``hand_21``).
        part: ``'body'`` or ``'hand'``.
        config: engine configuration; default :func:`~.engine.default_fit_config` ``(part, use_3d=use_3d)``.
        init: optional start per key (see the module docstring).
        keys: one key per sample (matches ``init``); default ``str(index)``.
        use_3d: add the root-relative 3D joint term for samples with ``joints_3d_cam_mm``.
        pose_prior: optional right-hand / body :class:`~neuralannot_cli.nets.prior.PosePrior`.
        model_dir: body-model folder for :func:`~neuralannot_cli.body.load_body_model`.
        models: preloaded models ``{'smplx' | 'mano_right' | 'mano_left': BodyModel}`` (overrides loading).
        device: where to fit.
        batch_size: samples per optimisation batch.
        mode: ``'batched'`` or ``'per_sample'`` (one sample at a time, for comparison).
        progress: ``progress(done, total)``.
    """
    if part not in ("body", "hand"):
        raise ValueError(f"part must be 'body' or 'hand', got {part!r}")
    n = len(samples)
    keys = tuple(str(k) for k in keys) if keys is not None else tuple(str(i) for i in range(n))
    if len(keys) != n:
        raise ValueError(f"keys: expected {n} keys, got {len(keys)}")
    config = config or default_fit_config(part, use_3d=use_3d)
    init = init or {}
    device = torch.device(device)
    loaded: dict[str, Any] = dict(models or {})

    def model_for(name: str) -> Any:
        if name not in loaded:
            from neuralannot_cli.body import load_body_model

            if name == "smplx":
                loaded[name] = load_body_model("smplx", model_dir=model_dir, device=device)
            else:
                loaded[name] = load_body_model("mano", is_rhand=name == "mano_right", model_dir=model_dir, device=device)
        return loaded[name]

    # group samples: (model name, joint set, num joints, has init, has 3D)
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        js, nj = sample_layout(s, part)
        name = "smplx" if part == "body" else f"mano_{hand_side(s)}"
        has3d = bool(use_3d and s.joints_3d_cam_mm is not None)
        groups.setdefault((name, js, nj, keys[i] in init, has3d), []).append(i)

    k_pose = 21 if part == "body" else 15
    n_target = 23 if part == "body" else 21
    out: dict[str, np.ndarray] = {
        "root_rotvec": np.zeros((n, 3)), "pose_rotvecs": np.zeros((n, k_pose, 3)), "betas": np.zeros((n, 10)),
        "transl": np.zeros((n, 3)), "focal": np.zeros((n, 2)), "princpt": np.zeros((n, 2)),
        "kp2d": np.zeros((n, n_target, 2)), "j3d": np.zeros((n, n_target, 3)), "err": np.zeros(n), "loss": np.zeros(n),
    }
    mirrored = np.zeros(n, bool)
    done = 0
    pose_name = "body_pose_rotvecs" if part == "body" else "hand_pose_rotvecs"
    for (name, js, nj, has_init, has3d), idx in groups.items():
        model = model_for(name)
        dt = model.dtype
        mdev = model.device  # a preloaded model (``models``) may live elsewhere than ``device``: follow the model
        kp = np.stack([np.asarray(samples[i].keypoints_2d_px, np.float64)[:nj] for i in idx])
        conf = np.stack([np.asarray(samples[i].keypoints_conf, np.float64)[:nj] for i in idx])
        ok = np.isfinite(kp).all(-1)
        conf = np.where(ok, conf, 0.0)
        kp = np.where(ok[..., None], kp, 0.0)
        cams = [(samples[i].focal_px, samples[i].princpt_px) if samples[i].focal_px is not None
                and samples[i].princpt_px is not None else default_camera(samples[i].image_hw) for i in idx]
        t = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=dt, device=mdev)  # noqa: E731
        j3d = j3c = None
        if has3d:
            j3d = t(np.stack([np.asarray(samples[i].joints_3d_cam_mm, np.float64)[:nj] for i in idx]))
            j3c = torch.isfinite(j3d).all(-1).to(dt)
            j3d = torch.nan_to_num(j3d)
        targets = FitTargets(t(kp), t(conf), t([c[0] for c in cams]), t([c[1] for c in cams]), j3d, j3c)
        group_init = None
        if has_init:
            entries = [init[keys[i]] for i in idx]
            group_init = {
                "root_rotvec": t([_init_tensor(e, "root_rotvec", (3,), keys[i]) for e, i in zip(entries, idx)]),
                pose_name: t([_init_tensor(e, "pose_rotvecs", (k_pose, 3), keys[i]) for e, i in zip(entries, idx)]),
                "betas": t([_init_tensor(e, "betas", (10,), keys[i]) for e, i in zip(entries, idx)]),
                "transl_m": t([_init_tensor(e, "transl_m", (3,), keys[i]) for e, i in zip(entries, idx)]),
            }
        base = done
        result = fit(model, targets, config, part=part, layout=layout_for(js, nj), init=group_init,
                     pose_prior=pose_prior, mirror_prior=name == "mano_left", mode=mode, batch_size=batch_size,
                     progress=None if progress is None else (lambda d: progress(base + d, n)))
        done += len(idx)
        p = {k: v.detach().cpu().double().numpy() for k, v in result.params.items()}
        with torch.no_grad():
            bo = model(**result.params, full_mesh=False)
            tj = model.joints_in(bo, "coco_wholebody_133")[:, :23] if part == "body" else model.joints_in(bo, "hand_21")
            tp = torch.stack([targets.focal_px, targets.princpt_px], 1)
            from neuralannot_cli.camera import project_perspective

            kp2d = project_perspective(tj, tp[:, 0], tp[:, 1])
        ix = np.asarray(idx)
        out["root_rotvec"][ix] = p["root_rotvec"]
        out["pose_rotvecs"][ix] = p[pose_name]
        out["betas"][ix] = p["betas"]
        out["transl"][ix] = p["transl_m"]
        out["focal"][ix] = targets.focal_px.cpu().double().numpy()
        out["princpt"][ix] = targets.princpt_px.cpu().double().numpy()
        out["kp2d"][ix] = kp2d.cpu().double().numpy()
        out["j3d"][ix] = tj.cpu().double().numpy() * 1000.0
        out["err"][ix] = result.reproj_err_px.cpu().double().numpy()
        out["loss"][ix] = result.loss.cpu().double().numpy()
        mirrored[ix] = name == "mano_left"
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return FitPrediction(
        root_rotvec=f(out["root_rotvec"]), pose_rotvecs=f(out["pose_rotvecs"]), betas=f(out["betas"]),
        transl_cam_m=f(out["transl"]), focal_px=f(out["focal"]), princpt_px=f(out["princpt"]),
        keypoints_2d_px=f(out["kp2d"]), joints_3d_cam_mm=f(out["j3d"]), cam_sxy=torch.zeros(n, 3),
        mirrored=torch.as_tensor(mirrored), reproj_err_px=f(out["err"]), loss=f(out["loss"]), keys=keys,
    )
