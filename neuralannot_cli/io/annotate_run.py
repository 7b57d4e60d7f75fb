"""The annotation job behind ``neuralannot annotate``: dataset -> batched inference -> pseudo-GT file.

Flow: :func:`infer_dataset` (kind and root from the dataset JSON's name and folder) -> the dataset loader ->
the part's samples (COCO-WholeBody body persons, or one sample per valid hand with LEFT hands mirrored
into right hands exactly as in training, :mod:`neuralannot_cli.train.datasets`) -> cropped dataset +
``DataLoader`` -> ``annotator.predict(batch)`` -> records -> :class:`~neuralannot_cli.io.progress.ProgressLog`
(one fsync-ed line per batch) -> at the end, the whole file written atomically, then the ``.meta.json``
sidecar, then the progress log is deleted.

Resume guarantee: a record is "done" only once its batch's line is on disk; ``resume=True`` skips exactly
those keys and re-runs the rest, so a SIGKILL at any point followed by a resumed run gives the same set of
keys as an uninterrupted run, each once.

Left hands (mirrored crops): the network predicts a RIGHT MANO hand of the mirrored scene ``X -> -X``
(the mirrored crop is an ordinary crop of the image mirrored about the principal point's column, same
intrinsics). It is turned into the LEFT MANO hand of the original image by :func:`mirror_right_to_left`:
rotations ``(x, y, z) -> (x, -y, -z)`` (``rotation.mirror_rotvec``), ``transl_m`` ``x -> -x``; exact when
the left model is the mirror image of the right one (MANO after smplx's left ``shapedirs`` fix; the
stand-in by construction). This assumes ``Annotator.predict`` returns, for items with ``mirrored=True``,
the right-hand parameters of the mirrored scene in the original camera.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from neuralannot_cli.data.record import Sample
from neuralannot_cli.io.progress import ProgressLog
from neuralannot_cli.io.pseudo_gt import (
    ManoRecord,
    SmplxRecord,
    record_from_dict,
    record_key,
    record_to_dict,
    write_meta,
    write_pseudo_gt_json,
    write_pseudo_gt_npz,
)

__all__ = [
    "AnnotateConfig",
    "AnnotateSummary",
    "Annotator",
    "infer_dataset",
    "mirror_right_to_left",
    "progress_path_for",
    "run_annotate",
]

Kind = Literal["coco_wholebody", "h36m", "mpi3dhp", "freihand", "interhand"]
_WORLD_KINDS = ("h36m", "mpi3dhp")


class Annotator(Protocol):
    """What ``run_annotate`` needs from ``neuralannot_cli.train.checkpoint.load_annotator(dir, device)``."""

    part: str  # 'body' | 'hand'
    input_size: int

    def predict(self, batch: dict[str, Any]) -> Any: ...  # -> Prediction (see the issue-4 contracts)


@dataclass(frozen=True)
class AnnotateConfig:
    """One annotation job (built by the CLI).

    Attributes:
        dataset_json: the dataset file (e.g. ``.../annotations/coco_wholebody_train_v1.0.json``).
        checkpoint: the checkpoint folder (recorded in the metadata and the resume fingerprint).
        out: output file (``.json`` / ``.npz``); for Human3.6M JSON a folder of per-subject files.
        kind: dataset kind or ``"auto"``.
        fmt: ``"json"`` (the field's layout) or ``"npz"`` (bulk).
        batch_size / workers / device: inference settings.
        resume: continue an interrupted job (same options) from its progress log.
        model_dir: body-model folder (needed for Human3.6M / MPI-INF-3DHP world-frame output).
        limit: annotate only the first ``limit`` samples (``None``: all).
    """

    dataset_json: Path
    checkpoint: Path
    out: Path
    kind: str = "auto"
    fmt: Literal["json", "npz"] = "json"
    batch_size: int = 32
    workers: int = 0
    device: str = "cpu"
    resume: bool = False
    model_dir: Path | None = None
    limit: int | None = None


@dataclass(frozen=True)
class AnnotateSummary:
    kind: str
    part: str
    num_records: int
    num_new: int
    num_resumed: int
    files: tuple[Path, ...]
    meta_file: Path
    seconds: float


def progress_path_for(out: Path) -> Path:
    """``out`` -> ``out.progress.jsonl`` next to it (Human3.6M folders: ``folder.progress.jsonl``)."""
    out = Path(out)
    return out.with_name(out.name + ".progress.jsonl")


# ----------------------------------------------------------------------------------------- dataset discovery

_COCO_RE = re.compile(r"^coco_wholebody_(train|val)_v1\.0\.json$")
_H36M_RE = re.compile(r"^Human36M_subject(\d+)_data\.json$")
_FREI_RE = re.compile(r"^(training|evaluation)_(xyz|K|mano|verts)\.json$")
_IH_RE = re.compile(r"^InterHand2\.6M_(train|val|test)_data\.json$")


def _root_above_annotations(path: Path) -> Path:
    parent = path.parent
    return parent.parent if parent.name == "annotations" else parent


def infer_dataset(dataset_json: Path, kind: str = "auto") -> tuple[Kind, Path, dict[str, Any]]:
    """``(kind, root, loader options)`` for a dataset file, from its name and folder layout.

    ``.../annotations/coco_wholebody_{split}_v1.0.json`` -> coco_wholebody, root = parent of ``annotations/``;
    ``.../annotations/Human36M_subject{S}_data.json`` -> h36m (that subject); ``.../MPI-INF-3DHP_1k.json`` ->
    mpi3dhp; ``.../{training,evaluation}_xyz.json`` -> freihand; ``.../annotations/{split}/
    InterHand2.6M_{split}_data.json`` -> interhand. With an explicit ``kind`` the same rules give root and
    options where the name matches, else the file's folder (or the folder above ``annotations/``) is the root.

    Raises:
        ValueError: the kind cannot be inferred (the message says to pass ``--kind``) or does not match.
    """
    path = Path(dataset_json).resolve()
    name = path.name
    guesses: list[tuple[Kind, Path, dict[str, Any]]] = []
    if m := _COCO_RE.match(name):
        guesses.append(("coco_wholebody", _root_above_annotations(path), {"split": m.group(1), "annotation_path": path}))
    if m := _H36M_RE.match(name):
        guesses.append(("h36m", _root_above_annotations(path), {"subjects": (int(m.group(1)),)}))
    if name == "MPI-INF-3DHP_1k.json":
        guesses.append(("mpi3dhp", path.parent, {}))
    if m := _FREI_RE.match(name):
        guesses.append(("freihand", path.parent, {"split": m.group(1)}))
    if m := _IH_RE.match(name):
        root = path.parents[2] if path.parent.parent.name == "annotations" else path.parent.parent
        guesses.append(("interhand", root, {"split": m.group(1)}))
    if kind == "auto":
        if not guesses:
            raise ValueError(
                f"{path}: cannot infer the dataset kind from the file name; pass --kind "
                "(coco_wholebody|h36m|mpi3dhp|freihand|interhand)"
            )
        return guesses[0]
    if kind not in ("coco_wholebody", "h36m", "mpi3dhp", "freihand", "interhand"):
        raise ValueError(f"--kind: unknown {kind!r}; expected auto|coco_wholebody|h36m|mpi3dhp|freihand|interhand")
    for g in guesses:
        if g[0] == kind:
            return g
    if kind == "coco_wholebody":
        return kind, _root_above_annotations(path), {"annotation_path": path}  # type: ignore[return-value]
    return kind, _root_above_annotations(path), {}  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------- records


def mirror_right_to_left(root_rotvec: np.ndarray, pose_rotvecs: np.ndarray, transl_m: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right MANO hand of the mirrored scene -> LEFT MANO hand of the original scene (module docstring).

    Args: ``root_rotvec (..., 3)``, ``pose_rotvecs (..., 15, 3)``, ``transl_m (..., 3)``. Returns the same shapes.
    """
    sign = np.array([1.0, -1.0, -1.0])
    flip_x = np.array([-1.0, 1.0, 1.0])
    return np.asarray(root_rotvec) * sign, np.asarray(pose_rotvecs) * sign, np.asarray(transl_m) * flip_x


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _field(pred: Any, name: str) -> np.ndarray:
    if not hasattr(pred, name):
        raise ValueError(f"Prediction.{name}: missing (annotator returned {type(pred).__name__})")
    return _np(getattr(pred, name))


def _score(kp_pred: np.ndarray | None, sample: Sample) -> float | None:
    """Mean 2D distance (px) to the sample's labelled keypoints, when both use the same joints."""
    if kp_pred is None:
        return None
    kp = np.asarray(sample.keypoints_2d_px, dtype=np.float64)
    conf = np.asarray(sample.keypoints_conf, dtype=np.float64)
    if kp.shape != kp_pred.shape:
        if kp_pred.shape[0] < kp.shape[0] and kp_pred.shape[1:] == kp.shape[1:]:
            kp, conf = kp[: kp_pred.shape[0]], conf[: kp_pred.shape[0]]  # e.g. body 23 of coco_wholebody_133
        else:
            return None
    mask = conf > 0
    if not mask.any():
        return None
    return float(np.linalg.norm(kp_pred[mask] - kp[mask], axis=-1).mean())


def _part_samples(kind: str, part: str, samples: list[Sample]) -> tuple[list[Sample], list[bool]]:
    from neuralannot_cli.train.datasets import part_aux_samples, part_target_samples

    if kind == "coco_wholebody":
        return part_target_samples(samples, part)
    hand_kinds = ("freihand", "interhand")
    if (part == "hand") != (kind in hand_kinds):
        raise ValueError(f"a {part} checkpoint cannot annotate {kind} ({'hands' if kind in hand_kinds else 'bodies'})")
    return part_aux_samples(samples)


def _sample_key(kind: str, sample: Sample, part: str) -> str:
    side = None
    if part == "hand" and kind in ("coco_wholebody", "interhand"):
        side = str(sample.ids.get("hand_side", sample.extras.get("hand_side", "right")))
    return record_key(kind, sample.ids, side)


def _rest_pelvis(body_model: Any, betas: np.ndarray, device: str) -> np.ndarray:
    with torch.no_grad():
        out = body_model(betas=torch.as_tensor(betas, dtype=body_model.dtype, device=device))
    return out.kinematic_joints[:, 0].detach().to("cpu", torch.float64).numpy()


def _records_from_prediction(kind: str, part: str, pred: Any, samples: Sequence[Sample], keys: Sequence[str],
                             mirrored: Sequence[bool], body_model: Any, device: str, joint_set: str | None
                             ) -> list[SmplxRecord | ManoRecord]:
    root = _field(pred, "root_rotvec")
    pose = _field(pred, "pose_rotvecs")
    betas = _field(pred, "betas")
    transl = _field(pred, "transl_cam_m")
    focal = _field(pred, "focal_px")
    princpt = _field(pred, "princpt_px")
    kp = _field(pred, "keypoints_2d_px") if getattr(pred, "keypoints_2d_px", None) is not None else None
    n = len(samples)
    for name, arr in (("root_rotvec", root), ("pose_rotvecs", pose), ("betas", betas), ("transl_cam_m", transl)):
        if arr.shape[0] != n:
            raise ValueError(f"Prediction.{name}: expected batch {n}, got shape {arr.shape}")
    js = getattr(pred, "joint_set", None) or joint_set
    out: list[SmplxRecord | ManoRecord] = []
    if part == "body":
        pelvis = _rest_pelvis(body_model, betas, device) if kind in _WORLD_KINDS else None
        for i, s in enumerate(samples):
            kpi = None if kp is None else kp[i]
            extra: dict[str, Any] = {}
            if kind in _WORLD_KINDS:
                extra = dict(cam_rotmat=s.extras["cam_rotmat"], cam_trans_mm=s.extras["cam_trans_mm"],
                             rest_pelvis_m=pelvis[i])  # type: ignore[index]
            out.append(SmplxRecord(key=keys[i], ids=s.ids, root_rotvec=root[i], body_pose_rotvecs=pose[i],
                                   betas=betas[i], transl_m=transl[i], focal_px=focal[i], princpt_px=princpt[i],
                                   keypoints_2d_px=kpi, joint_set=js, score=_score(kpi, s), **extra))
        return out
    for i, s in enumerate(samples):
        r, p, t = root[i], pose[i], transl[i]
        hand_type = "right"
        if mirrored[i]:
            r, p, t = mirror_right_to_left(r, p, t)
            hand_type = "left"
        kpi = None if kp is None else kp[i]
        out.append(ManoRecord(key=keys[i], ids=s.ids, hand_type=hand_type, root_rotvec=r, hand_pose_rotvecs=p,  # type: ignore[arg-type]
                              betas=betas[i], transl_m=t, focal_px=focal[i], princpt_px=princpt[i],
                              keypoints_2d_px=kpi, joint_set=js, score=_score(kpi, s)))
    return out


# --------------------------------------------------------------------------------------------------- run


def _fingerprint(config: AnnotateConfig, kind: str, part: str) -> dict[str, Any]:
    ckpt = Path(config.checkpoint).resolve()
    stamp = {}
    for name in ("config.json", "model.safetensors"):
        f = ckpt / name
        if f.is_file():
            st = f.stat()
            stamp[name] = [st.st_size, int(st.st_mtime)]
    return {"dataset_json": str(Path(config.dataset_json).resolve()), "checkpoint": str(ckpt),
            "checkpoint_files": stamp, "kind": kind, "part": part, "format": config.fmt, "limit": config.limit}


def run_annotate(
    config: AnnotateConfig,
    annotator: Annotator,
    *,
    samples: Sequence[Sample] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    stop_after_batches: int | None = None,
) -> AnnotateSummary:
    """Annotate every sample and write the pseudo-GT (see the module docstring).

    Args:
        config: the job.
        annotator: a loaded annotator (``part``, ``input_size``, ``predict``).
        samples: pre-loaded samples (else loaded from ``config.dataset_json``).
        on_progress: ``(done, total)`` after each batch (and once at the start).
        stop_after_batches: testing aid: return after this many new batches without assembling the output
            (simulates an interruption; the progress log stays).

    Raises:
        FileNotFoundError / ValueError / OSError: one-line messages naming the file and field.
    """
    from torch.utils.data import DataLoader

    from neuralannot_cli.data.loaders import load_dataset
    from neuralannot_cli.train.datasets import make_dataset

    t0 = time.perf_counter()
    kind, root, options = infer_dataset(config.dataset_json, config.kind)
    part = str(getattr(annotator, "part", "body"))
    if part not in ("body", "hand"):
        raise ValueError(f"{config.checkpoint}: part: expected 'body' or 'hand', got {part!r}")
    input_size = int(getattr(annotator, "input_size", 256))
    if samples is None:
        samples = load_dataset(kind, root, **options)
    part_samples, mirrored = _part_samples(kind, part, list(samples))
    if config.limit is not None:
        part_samples, mirrored = part_samples[: config.limit], mirrored[: config.limit]
    keys = [_sample_key(kind, s, part) for s in part_samples]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"{config.dataset_json}: ids: two samples share the key {dup!r}")
    if not keys:
        raise ValueError(f"{config.dataset_json}: no {part} samples to annotate")

    out = Path(config.out)
    if config.fmt == "npz" and out.suffix != ".npz":
        raise ValueError(f"{out}: --format npz needs an output path ending in .npz")
    log = ProgressLog.open(progress_path_for(out), _fingerprint(config, kind, part), resume=config.resume)
    try:
        num_resumed = len(log.done_keys & set(keys))
        pending = [i for i, k in enumerate(keys) if k not in log.done_keys]
        total = len(keys)
        done = total - len(pending)
        if on_progress:
            on_progress(done, total)
        body_model = None
        if part == "body" and kind in _WORLD_KINDS and pending:
            from neuralannot_cli.body import load_body_model

            body_model = load_body_model("smplx", model_dir=config.model_dir, device=config.device)
        joint_set = getattr(annotator, "target_joint_set", None)
        new_batches = 0
        if pending:
            sub = [part_samples[i] for i in pending]
            sub_mirrored = [mirrored[i] for i in pending]
            dataset = make_dataset(sub, sub_mirrored, input_size, augment=False, seed=0)
            loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.workers,
                                pin_memory=str(config.device).startswith("cuda"))
            for batch in loader:
                idx = [int(i) for i in batch["index"]]
                with torch.inference_mode():
                    pred = annotator.predict(batch)
                recs = _records_from_prediction(
                    kind, part, pred, [sub[i] for i in idx], [keys[pending[i]] for i in idx],
                    [sub_mirrored[i] for i in idx], body_model, config.device, joint_set)
                log.append([r.key for r in recs], [record_to_dict(r) for r in recs])
                done += len(recs)
                new_batches += 1
                if on_progress:
                    on_progress(done, total)
                if stop_after_batches is not None and new_batches >= stop_after_batches:
                    log.close()
                    return AnnotateSummary(kind, part, done, done - num_resumed, num_resumed, (), out,
                                           time.perf_counter() - t0)
        all_recs = log.records()
        wanted = set(keys)
        records = [record_from_dict(all_recs[k]) for k in keys if k in all_recs]
        if len(records) != len(wanted):
            raise ValueError(f"{log.path}: {len(wanted) - len(records)} samples have no record after the run")
        if config.fmt == "npz":
            files = [write_pseudo_gt_npz(records, out)]
        else:
            target = out.parent if (kind == "h36m" and out.suffix == ".json") else out
            files = write_pseudo_gt_json(records, target, dataset_kind=kind)
        seconds = time.perf_counter() - t0
        meta_target = files[0].parent if (kind == "h36m" and config.fmt == "json") else files[0]
        from neuralannot_cli import __version__

        meta = {
            "tool": "neuralannot", "version": __version__, "dataset_kind": kind, "part": part,
            "dataset_json": str(Path(config.dataset_json).resolve()), "checkpoint": str(Path(config.checkpoint).resolve()),
            "format": config.fmt, "num_records": len(records), "files": [str(f) for f in files],
            "model_type": "smplx" if part == "body" else "mano", "frame": "world" if kind in _WORLD_KINDS and config.fmt == "json" else "camera",
            "standin_body_model": bool(getattr(annotator, "is_standin", False)),
            "input_size": input_size, "batch_size": config.batch_size, "device": str(config.device),
            "seconds": round(seconds, 3), "resumed_records": num_resumed,
            "images_per_s": round((len(records) - num_resumed) / seconds, 3) if seconds > 0 else None,
        }
        meta_file = write_meta(meta_target, meta)
        log.discard()
        return AnnotateSummary(kind, part, len(records), len(records) - num_resumed, num_resumed, tuple(files),
                               meta_file, seconds)
    finally:
        log.close()
