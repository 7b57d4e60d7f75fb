"""FLAME fitting to the 68 COCO-WholeBody face keypoints (the paper's face part; ``neuralannot fit-face``).

Per annotation, FLAME's global rotation, jaw rotation, shape (10), expression (10) and translation are
fitted with the batched engine (:mod:`.engine`, part ``'face'``, stages in its docstring) to the
``face_kpts`` (indices 23..90 of the 133 COCO-WholeBody keypoints, iBUG-68 order), which FLAME gives as the
``face_68`` joint set (17 dynamic contour + 51 static landmarks of its landmark embedding). Neck and eyes
stay at zero, as in the released NeuralAnnot FLAME parameters.

Camera: the sample's intrinsics when known (``Sample.focal_px / princpt_px``, e.g. a ``cam_param``);
otherwise the default of :func:`default_camera`: ``focal = sqrt(W^2 + H^2)`` px for both axes (CLIFF's
default, a ~53 degree diagonal field of view) and the principal point at the image centre
``((W - 1) / 2, (H - 1) / 2)`` (pixel centres at integers, :mod:`neuralannot_cli.camera`).

Skipped annotations (``face_valid = false`` with a ``skip_reason``): ``face_valid`` false in the
annotation, an empty ``face_box``, or fewer than ``min_visible`` labelled face keypoints.

Output (:func:`face_records_to_json`), keyed by ``str(ann_id)``, in the layout of the released
``MSCOCO_train_FLAME_NeuralAnnot.json`` (NeuralAnnot_RELEASE ``MSCOCO/demo_flame.py`` reads
``flame_param['flame_param'][root_pose|jaw_pose|expr|shape|trans]`` and
``flame_param['cam_param'][focal|princpt]``; ``smplx.create(path, 'flame')(betas=shape, jaw_pose=jaw_pose,
global_orient=root_pose, transl=trans, expression=expr)`` gives the mesh in the camera frame, metres,
OpenCV axes)::

    {"<ann_id>": {"flame_param": {"root_pose": [3], "jaw_pose": [3], "shape": [10], "expr": [10],
                                  "trans": [3]},            # axis-angle (rad), camera frame, metres
                  "cam_param": {"focal": [fx, fy], "princpt": [cx, cy]},   # pixels
                  "face_valid": true, "skip_reason": null,
                  "reproj_err_px": float, "num_visible": int}}
    skipped: {"face_valid": false, "skip_reason": "...", "num_visible": int}   (no flame_param/cam_param)

The extra keys (``face_valid``, ``skip_reason``, ...) are ignored by the field's readers; skipped entries
lack ``flame_param`` (readers that test ``str(aid) in params`` should be given a file written with
``omit_skipped=True``).

A whole dataset (:func:`run_fit_face`, ``neuralannot fit-face``) is fitted batch by batch; each finished batch
goes durably to ``OUT.progress.jsonl`` (:class:`~neuralannot_cli.io.progress.ProgressLog`), so a killed job
resumes (``--resume``) where it stopped and ends with the file an uninterrupted run writes (the batches are
the same: consecutive ``batch_size`` groups of the fittable faces).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from neuralannot_cli.data.record import Sample
from neuralannot_cli.fit.engine import FitConfig, FitTargets, default_fit_config, fit, layout_for

__all__ = ["FACE_SLICE", "FaceFitRecord", "FitFaceSummary", "default_camera", "face_keypoints", "fit_faces",
           "face_records_to_json", "run_fit_face"]

FACE_SLICE = slice(23, 91)
"""The 68 face keypoints inside the 133 COCO-WholeBody keypoints."""


@dataclass(frozen=True)
class FaceFitRecord:
    """FLAME fit of one annotation (arrays ``None`` when skipped).

    Attributes:
        key: ``str(ann_id)`` (or the sample index when the sample has no ``ann_id``).
        face_valid: fitted.
        skip_reason: why not, or ``None``.
        root_rotvec, jaw_rotvec: ``(3,)``; betas ``(10,)``; expression ``(10,)``; transl_m ``(3,)``.
        focal_px, princpt_px: ``(2,)`` the camera used.
        reproj_err_px: mean distance of the fitted landmarks to the visible keypoints.
        num_visible: labelled face keypoints.
    """

    key: str
    face_valid: bool
    skip_reason: str | None
    num_visible: int
    root_rotvec: np.ndarray | None = None
    jaw_rotvec: np.ndarray | None = None
    betas: np.ndarray | None = None
    expression: np.ndarray | None = None
    transl_m: np.ndarray | None = None
    focal_px: np.ndarray | None = None
    princpt_px: np.ndarray | None = None
    reproj_err_px: float | None = None


def default_camera(image_hw: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((f, f), (cx, cy))`` for an image of ``(height, width)`` pixels (module docstring)."""
    h, w = (float(v) for v in image_hw)
    if not (h > 0 and w > 0):
        raise ValueError(f"default_camera: image_hw must be positive (height, width), got {image_hw}")
    f = math.sqrt(w * w + h * h)
    return (f, f), ((w - 1) / 2.0, (h - 1) / 2.0)


def _key(sample: Sample, index: int) -> str:
    return str(sample.ids.get("ann_id", index))


def face_keypoints(sample: Sample, *, min_visible: int = 10) -> tuple[np.ndarray, np.ndarray, str | None]:
    """``(68, 2)`` face keypoints, ``(68,)`` confidences and a skip reason (``None`` = fit it).

    Accepts ``coco_wholebody_133`` samples (133 keypoints) or ``face_68`` samples (68).
    """
    kp, conf = np.asarray(sample.keypoints_2d_px, np.float64), np.asarray(sample.keypoints_conf, np.float64)
    if sample.joint_set == "coco_wholebody_133" and kp.shape == (133, 2):
        kp, conf = kp[FACE_SLICE], conf[FACE_SLICE]
    elif not (sample.joint_set == "face_68" and kp.shape == (68, 2)):
        raise ValueError(f"fit-face needs coco_wholebody_133 (133, 2) or face_68 (68, 2) keypoints, got "
                         f"{sample.joint_set} {kp.shape}")
    conf = np.where(np.isfinite(kp).all(-1), conf, 0.0)
    n = int((conf > 0).sum())
    if sample.extras.get("face_valid") is False:
        return kp, conf, "face_valid is false in the annotation"
    box = sample.extras.get("face_box_xywh_px")
    if box is not None and not (float(box[2]) > 0 and float(box[3]) > 0):
        return kp, conf, "no face box"
    if n < min_visible:
        return kp, conf, f"{n} visible face keypoints (< {min_visible})"
    return kp, conf, None


def fit_faces(
    samples: Sequence[Sample],
    *,
    model: Any,
    config: FitConfig | None = None,
    min_visible: int = 10,
    batch_size: int = 32,
    mode: Literal["batched", "per_sample"] = "batched",
    progress: Callable[[int, int], None] | None = None,
) -> list[FaceFitRecord]:
    """Fit FLAME to the face keypoints of ``samples`` (one record per sample, in order).

    Args:
        model: FLAME :class:`~neuralannot_cli.body.BodyModel` (10 betas, 10 expression coefficients
            as the released files; others work too).
        config: engine configuration (default :func:`~.engine.default_fit_config` ``('face')``).
        min_visible: fewer labelled face keypoints -> skipped.
        progress: ``progress(done, total)`` after each batch (skipped samples count as done at once).
    """
    if getattr(model, "model_type", None) != "flame":
        raise ValueError(f"fit_faces needs a FLAME model, got {getattr(model, 'model_type', None)!r}")
    if min_visible < 1:
        raise ValueError(f"min_visible must be >= 1, got {min_visible}")
    config = config or default_fit_config("face")
    total = len(samples)
    records: list[FaceFitRecord | None] = [None] * total
    todo: list[int] = []
    kps, confs, focals, princpts = [], [], [], []
    for i, s in enumerate(samples):
        kp, conf, reason = face_keypoints(s, min_visible=min_visible)
        n = int((conf > 0).sum())
        if reason is not None:
            records[i] = FaceFitRecord(_key(s, i), False, reason, n)
            continue
        if s.focal_px is not None and s.princpt_px is not None:
            focal, princpt = tuple(s.focal_px), tuple(s.princpt_px)
        else:
            focal, princpt = default_camera(s.image_hw)
        todo.append(i)
        kps.append(np.where(conf[:, None] > 0, kp, 0.0))
        confs.append(conf)
        focals.append(focal)
        princpts.append(princpt)
    skipped = total - len(todo)
    if progress is not None:
        progress(skipped, total)
    if todo:
        t = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=model.dtype, device=model.device)  # noqa: E731
        targets = FitTargets(t(kps), t(confs), t(focals), t(princpts))
        result = fit(model, targets, config, part="face", layout=layout_for("face_68"), mode=mode,
                     batch_size=batch_size,
                     progress=None if progress is None else (lambda done: progress(skipped + done, total)))
        p = {k: v.detach().cpu().double().numpy() for k, v in result.params.items()}
        err = result.reproj_err_px.detach().cpu().double().numpy()
        for row, i in enumerate(todo):
            s = samples[i]
            records[i] = FaceFitRecord(
                _key(s, i), True, None, int((confs[row] > 0).sum()),
                root_rotvec=p["root_rotvec"][row], jaw_rotvec=p["jaw_rotvec"][row], betas=p["betas"][row],
                expression=p["expression"][row], transl_m=p["transl_m"][row],
                focal_px=np.asarray(focals[row], np.float64), princpt_px=np.asarray(princpts[row], np.float64),
                reproj_err_px=float(err[row]),
            )
    return [r for r in records if r is not None]


def _l(a: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(a, np.float64).reshape(-1)]


def face_records_to_json(records: Sequence[FaceFitRecord], *, omit_skipped: bool = False) -> dict[str, Any]:
    """The output JSON object (module docstring). Duplicate keys raise ``ValueError``."""
    out: dict[str, Any] = {}
    for r in records:
        if r.key in out:
            raise ValueError(f"duplicate annotation id {r.key} in the face fits")
        if not r.face_valid:
            if not omit_skipped:
                out[r.key] = {"face_valid": False, "skip_reason": r.skip_reason, "num_visible": r.num_visible}
            continue
        out[r.key] = {
            "flame_param": {"root_pose": _l(r.root_rotvec), "jaw_pose": _l(r.jaw_rotvec), "shape": _l(r.betas),
                            "expr": _l(r.expression), "trans": _l(r.transl_m)},
            "cam_param": {"focal": _l(r.focal_px), "princpt": _l(r.princpt_px)},
            "face_valid": True,
            "skip_reason": None,
            "reproj_err_px": float(r.reproj_err_px) if r.reproj_err_px is not None and math.isfinite(r.reproj_err_px) else None,
            "num_visible": r.num_visible,
        }
    return out


@dataclass(frozen=True)
class FitFaceSummary:
    """What :func:`run_fit_face` did.

    Attributes:
        out: the JSON written.
        num_records / num_fitted: faces in the file / of them fitted (the rest skipped, with a reason).
        num_resumed: records taken from an interrupted run's progress log.
        seconds: wall time of this call.
    """

    out: Path
    num_records: int
    num_fitted: int
    num_resumed: int
    seconds: float


def run_fit_face(
    samples: Sequence[Sample],
    out: str | os.PathLike,
    *,
    model: Any,
    config: FitConfig | None = None,
    min_visible: int = 10,
    batch_size: int = 32,
    omit_skipped: bool = False,
    resume: bool = False,
    fingerprint: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FitFaceSummary:
    """Fit every face of ``samples`` and write :func:`face_records_to_json`'s file to ``out`` atomically.

    Finished batches go to ``out.progress.jsonl`` first (module docstring); with ``resume`` an interrupted job
    with the same ``fingerprint`` (the caller's description of the input and options; the fitting options are
    added here) continues, and its output equals an uninterrupted run's. The progress log is deleted once
    ``out`` is written.

    Raises:
        ValueError: two samples share an annotation id, no sample has a fittable face (face_valid false, no
            face box or fewer than ``min_visible`` labelled face keypoints; raised before anything is written),
            or the progress log belongs to another job / is corrupt.
        OSError: ``out`` (or its progress log) cannot be written; ``filename`` is ``out``.
    """
    from neuralannot_cli.io.atomic import atomic_write_json
    from neuralannot_cli.io.progress import ProgressLog

    t0 = time.perf_counter()
    out = Path(out)
    config = config or default_fit_config("face")
    keys = [_key(s, i) for i, s in enumerate(samples)]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"{out}: two face annotations share the id {dup!r}")
    reasons = [face_keypoints(s, min_visible=min_visible)[2] for s in samples]
    fittable = [i for i, r in enumerate(reasons) if r is None]
    if samples and not fittable:  # a file of skipped faces (or {} with omit_skipped) is no result: say why
        counts = {"face_valid false": 0, "no face box": 0, f"fewer than {min_visible} labelled face keypoints": 0}
        for r in reasons:
            key = ("face_valid false" if r is not None and r.startswith("face_valid") else
                   "no face box" if r == "no face box" else f"fewer than {min_visible} labelled face keypoints")
            counts[key] += 1
        source = (fingerprint or {}).get("dataset_json")
        why = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        raise ValueError(f"{out}: no face to fit in {source or 'the samples'}: of {len(samples)} annotations, "
                         f"{why} (nothing written)")
    skipped = sorted(set(range(len(samples))) - set(fittable))
    chunks = ([skipped] if skipped else []) + [fittable[i:i + batch_size] for i in range(0, len(fittable), batch_size)]
    job = {**dict(fingerprint or {}), "num_samples": len(samples), "min_visible": int(min_visible),
           "batch_size": int(batch_size), "config": repr(config), "model": str(getattr(model, "model_file", "")),
           "dtype": str(model.dtype)}
    def cannot_write(exc: OSError) -> OSError:
        return OSError(exc.errno, f"cannot write the output: {exc.strerror or exc}", str(out))

    try:
        log = ProgressLog.open(out.with_name(out.name + ".progress.jsonl"), job, resume=resume)
    except OSError as exc:  # e.g. the folder is a file, or not writable: before any fitting
        raise cannot_write(exc) from None
    try:
        num_resumed = len(log.done_keys & set(keys))
        done = num_resumed
        if progress is not None:
            progress(done, len(samples))
        for chunk in chunks:
            chunk_keys = [keys[i] for i in chunk]
            if all(k in log.done_keys for k in chunk_keys):
                continue
            recs = fit_faces([samples[i] for i in chunk], model=model, config=config, min_visible=min_visible,
                             batch_size=batch_size)
            entries = face_records_to_json(recs)
            log.append([r.key for r in recs], [entries[r.key] for r in recs])
            done += len(chunk)
            if progress is not None:
                progress(done, len(samples))
        entries = log.records()
        missing = [k for k in keys if k not in entries]
        if missing:
            raise ValueError(f"{log.path}: {len(missing)} faces have no record after the run (first: {missing[0]})")
        data = {k: entries[k] for k in keys if not (omit_skipped and not entries[k].get("face_valid"))}
        try:
            atomic_write_json(out, data)
        except OSError as exc:
            raise cannot_write(exc) from None
    finally:
        log.close()
    log.discard()
    fitted = sum(1 for k in keys if entries[k].get("face_valid"))
    return FitFaceSummary(out, len(keys), fitted, num_resumed, time.perf_counter() - t0)
