"""The annotation job behind ``neuralannot annotate``: dataset -> batched inference -> pseudo-GT file.

Flow: :func:`infer_dataset` (kind and root from the dataset JSON's name and folder) -> the dataset loader ->
the part's samples (COCO-WholeBody body persons, or one sample per valid hand, LEFT hands flagged
``mirrored`` exactly as in training, :mod:`neuralannot_cli.train.datasets`) -> batches of samples (for the
network: cropped dataset + ``DataLoader``) -> ``predictor.predict_samples(...)`` -> records -> :class:`~neuralannot_cli.io.progress.ProgressLog`
(one fsync-ed line per batch) -> at the end, the whole file written atomically, then the ``.meta.json``
sidecar, then the progress log is deleted.

Resume guarantee: a record is "done" only once its batch's line is on disk; ``resume=True`` skips exactly
those keys and re-runs the rest, so a SIGKILL at any point followed by a resumed run gives the same set of
keys as an uninterrupted run, each once.

Two methods share everything but the prediction (a :class:`Predictor`): ``'neuralannot'``
(:class:`NetworkPredictor`: a trained annotator on image crops, batched through a ``DataLoader``) and
``'smplifyx'`` (:class:`FitPredictor`: the SMPLify-X-style baseline of :mod:`neuralannot_cli.fit.baseline`
on the 2D keypoints, optionally the 3D joints, and optionally started from a pseudo-GT file, the paper's
"SMPLify-X on ours"; it never loads or crops an image). Same keys, records, file layouts, resume and
metadata (``method`` and ``samples_per_s`` in the ``.meta.json`` sidecar), so evaluations compare like
with like.

Left hands -- one contract for every predictor: a prediction is in the ORIGINAL image's camera and, for a
left hand (``mirrored = True``), holds parameters of the LEFT MANO model (what
``train.inference.Annotator.predict`` returns after mapping its mirrored crop back, and what the baseline
fits directly). Records are written as predicted, ``hand_type = 'left'``; a prediction carrying a
``mirrored`` field that disagrees with the sample's side is an error. :func:`mirror_right_to_left` is the
map a predictor applies when it predicts the right hand of the mirrored scene ``X -> -X`` (the mirrored
crop is an ordinary crop of the image mirrored about the principal point's column, same intrinsics):
rotations ``(x, y, z) -> (x, -y, -z)`` (``rotation.mirror_rotvec``), ``transl_m`` ``x -> -x``; exact when
the left model is the mirror image of the right one (MANO after smplx's left ``shapedirs`` fix; the
stand-in by construction).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
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
    "FitPredictor",
    "NetworkPredictor",
    "Predictor",
    "infer_dataset",
    "init_from_pseudo_gt",
    "mirror_right_to_left",
    "progress_path_for",
    "run_annotate",
]

Kind = Literal["coco_wholebody", "h36m", "mpi3dhp", "freihand", "interhand", "3dpw"]
Method = Literal["neuralannot", "smplifyx"]
_WORLD_KINDS = ("h36m", "mpi3dhp")
_HAND_KINDS = ("freihand", "interhand")


class Annotator(Protocol):
    """What ``run_annotate`` needs from ``neuralannot_cli.train.checkpoint.load_annotator(dir, device)``."""

    part: str  # 'body' | 'hand'
    input_size: int

    def predict(self, batch: dict[str, Any]) -> Any: ...  # -> Prediction (see the issue-4 contracts)


class Predictor(Protocol):
    """A way of predicting pseudo-GT for batches of samples (the strategy :func:`run_annotate` runs).

    Attributes:
        method: ``'neuralannot'`` or ``'smplifyx'`` (metadata, fingerprint).
        part: ``'body'`` or ``'hand'``.
        needs_images: True: ``predict_samples`` gets the collated crop batch of the samples (built with
            ``input_size``); False: ``batch`` is ``None`` and no image is read.
        input_size: crop side in pixels (ignored when ``needs_images`` is False).
        joint_set: joint set of the predicted ``keypoints_2d_px`` (body: the first 23 of
            ``coco_wholebody_133``; hand: ``hand_21``), recorded in the file.
    """

    method: str
    part: str
    needs_images: bool
    input_size: int
    joint_set: str | None

    def describe(self) -> dict[str, Any]: ...  # JSON-able: the resume fingerprint and the metadata

    def predict_samples(self, samples: Sequence[Sample], keys: Sequence[str], mirrored: Sequence[bool],
                        batch: dict[str, Any] | None) -> Any: ...  # -> Prediction-like (module docstring)


def _file_stamps(folder: Path, names: Sequence[str]) -> dict[str, list[int]]:
    stamp = {}
    for name in names:
        f = folder / name
        if f.is_file():
            st = f.stat()
            stamp[name] = [st.st_size, int(st.st_mtime)]
    return stamp


class NetworkPredictor:
    """A trained NeuralAnnot annotator (``predict(batch)`` on image crops) as a :class:`Predictor`."""

    method = "neuralannot"
    needs_images = True

    def __init__(self, annotator: Annotator, checkpoint: Path | None = None) -> None:
        self.annotator = annotator
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.part = str(getattr(annotator, "part", "body"))
        self.input_size = int(getattr(annotator, "input_size", 256))
        self.joint_set = getattr(annotator, "target_joint_set", None) or getattr(annotator, "joint_set", None)
        self.is_standin = bool(getattr(annotator, "is_standin", False)
                               or getattr(getattr(annotator, "body_model", None), "is_standin", False))

    def describe(self) -> dict[str, Any]:
        ckpt = None if self.checkpoint is None else self.checkpoint.resolve()
        return {"checkpoint": None if ckpt is None else str(ckpt),
                "checkpoint_files": {} if ckpt is None else _file_stamps(ckpt, ("config.json", "model.safetensors"))}

    def predict_samples(self, samples: Sequence[Sample], keys: Sequence[str], mirrored: Sequence[bool],
                        batch: dict[str, Any] | None) -> Any:
        if batch is None:
            raise ValueError("NetworkPredictor.predict_samples: needs the collated crop batch")
        with torch.inference_mode():
            return self.annotator.predict(batch)


class FitPredictor:
    """The SMPLify-X-style baseline (:func:`neuralannot_cli.fit.baseline.fit_samples`) as a :class:`Predictor`.

    Each batch of samples is fitted as one optimisation batch; no image is read. Left hands are fitted with
    the LEFT MANO model in the original image (``mirrored = True`` in the prediction, as the contract asks).

    Args:
        part: ``'body'`` or ``'hand'``.
        fit_config: engine configuration (default :func:`~neuralannot_cli.fit.engine.default_fit_config`).
        init: optional start per record key (:func:`init_from_pseudo_gt`): "SMPLify-X on ours".
        init_file: where ``init`` came from (recorded in the metadata and the fingerprint).
        use_3d: also fit the root-relative 3D joints of samples that have them (auxiliary sets).
        model_dir: body-model folder (else the usual lookup, then the stand-in).
        device: where to fit.
    """

    method = "smplifyx"
    needs_images = False
    input_size = 0

    def __init__(self, part: Literal["body", "hand"], *, fit_config: Any | None = None,
                 init: dict[str, dict[str, np.ndarray]] | None = None, init_file: Path | None = None,
                 use_3d: bool = False, model_dir: Path | None = None, device: str = "cpu") -> None:
        from neuralannot_cli.fit.engine import default_fit_config

        if part not in ("body", "hand"):
            raise ValueError(f"part must be 'body' or 'hand', got {part!r}")
        self.part = part
        self.fit_config = fit_config or default_fit_config(part, use_3d=use_3d)
        self.init = dict(init or {})
        self.init_file = None if init_file is None else Path(init_file)
        self.use_3d = bool(use_3d)
        self.model_dir = model_dir
        self.device = device
        self.joint_set = "coco_wholebody_133" if part == "body" else "hand_21"
        self._models: dict[str, Any] = {}
        self.reproj_err_px: list[float] = []  # per fitted sample, in order (metadata)

    @property
    def is_standin(self) -> bool:
        return any(bool(getattr(m, "is_standin", False)) for m in self._models.values())

    def describe(self) -> dict[str, Any]:
        import dataclasses

        cfg = self.fit_config
        return {
            "fit_config": json_safe(dataclasses.asdict(cfg)) if dataclasses.is_dataclass(cfg) else repr(cfg),
            "use_3d": self.use_3d,
            "init_file": None if self.init_file is None else str(self.init_file.resolve()),
            "init_files": {} if self.init_file is None else _file_stamps(self.init_file.resolve().parent, (self.init_file.name,)),
        }

    def _model(self, name: str) -> Any:
        if name not in self._models:
            from neuralannot_cli.body import load_body_model

            if name == "smplx":
                self._models[name] = load_body_model("smplx", model_dir=self.model_dir, device=self.device)
            else:
                self._models[name] = load_body_model("mano", is_rhand=name == "mano_right", model_dir=self.model_dir,
                                                     device=self.device)
        return self._models[name]

    def predict_samples(self, samples: Sequence[Sample], keys: Sequence[str], mirrored: Sequence[bool],
                        batch: dict[str, Any] | None) -> Any:
        from neuralannot_cli.fit.baseline import fit_samples, hand_side

        if self.part == "body":
            models = {"smplx": self._model("smplx")}
        else:
            models = {f"mano_{side}": self._model(f"mano_{side}") for side in sorted({hand_side(s) for s in samples})}
        pred = fit_samples(samples, part=self.part, config=self.fit_config, init=self.init, keys=keys,
                           use_3d=self.use_3d, models=models, device=self.device, batch_size=max(1, len(samples)))
        self.reproj_err_px.extend(float(e) for e in pred.reproj_err_px)
        return pred


def json_safe(obj: Any) -> Any:
    """Tuples -> lists, floats/ints/str/None kept, anything else ``repr`` (fingerprints and metadata)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def init_from_pseudo_gt(path: Path, part: Literal["body", "hand"], *, dataset_json: Path | None = None,
                        kind: str = "auto", model_dir: str | os.PathLike | None = None, device: str = "cpu"
                        ) -> dict[str, dict[str, np.ndarray]]:
    """A pseudo-GT file (JSON of the field's layouts, a Human3.6M folder, or npz) -> ``fit_samples`` init.

    Returns ``{record key: {"root_rotvec" (3,), "pose_rotvecs" (21|15, 3), "betas" (10,), "transl_m" (3,)}}``
    in the camera frame; left-hand records hold LEFT-MANO parameters, which is what the baseline fits left hands
    with. With ``dataset_json`` (the set being fitted), a world-frame file (Human3.6M / MPI-INF-3DHP /
    InterHand2.6M: one entry per frame, ours or a released one) starts every view of its frames, as the field's
    loaders place it (:func:`~neuralannot_cli.evaluate.direct.records_in_every_view`; ``model_dir`` gives the
    body model a released entry's rest root comes from); entries of frames the set lacks are left out.

    Raises:
        FileNotFoundError / ValueError: unreadable file, a record of the wrong model (``--init`` of a body
            file for hands), or (without ``dataset_json``) a world-frame record without the extrinsics to bring it
            to the camera.
    """
    from neuralannot_cli.io.pseudo_gt import read_pseudo_gt, read_pseudo_gt_npz

    path = Path(path)
    if path.suffix == ".npz":
        records = read_pseudo_gt_npz(path)
    elif dataset_json is not None:
        from neuralannot_cli.evaluate.direct import read_pseudo_gt_for

        records = read_pseudo_gt_for(path, kind, dataset_json)
    else:
        records = read_pseudo_gt(path)
    want = SmplxRecord if part == "body" else ManoRecord
    for key, rec in records.items():
        if not isinstance(rec, want):
            raise ValueError(f"{path}: {key}: a {'MANO' if isinstance(rec, ManoRecord) else 'SMPL-X'} record "
                             f"cannot start a {part} fit")
    if dataset_json is not None:
        from neuralannot_cli.evaluate.direct import BodyModels, load_samples, records_in_every_view, sample_view

        ds_kind, samples = load_samples(dataset_json, kind, part=part, gt_3d=False)
        records, _, _ = records_in_every_view(records, {k: sample_view(s) for k, s in samples.items()}, ds_kind,
                                              BodyModels(model_dir, device))
        records = {k: r for k, r in records.items() if r.frame == "camera"}
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, rec in records.items():
        if rec.frame != "camera":
            raise ValueError(f"{path}: {key}: frame: world-frame record without camera extrinsics; cannot start "
                             "a camera-frame fit from it")
        pose = rec.body_pose_rotvecs if isinstance(rec, SmplxRecord) else rec.hand_pose_rotvecs
        out[key] = {"root_rotvec": np.asarray(rec.root_rotvec, np.float64).reshape(3),
                    "pose_rotvecs": np.asarray(pose, np.float64), "betas": np.asarray(rec.betas, np.float64)[:10],
                    "transl_m": np.asarray(rec.transl_m, np.float64).reshape(3)}
    if not out:
        raise ValueError(f"{path}: no records to start from")
    return out


@dataclass(frozen=True)
class AnnotateConfig:
    """One annotation job (built by the CLI).

    Attributes:
        dataset_json: the dataset file (e.g. ``.../annotations/coco_wholebody_train_v1.0.json``).
        checkpoint: the checkpoint folder (method ``neuralannot``; recorded in the metadata and fingerprint).
        out: output file (``.json`` / ``.npz``); for Human3.6M JSON a folder of per-subject files.
        kind: dataset kind or ``"auto"``.
        fmt: ``"json"`` (the field's layout) or ``"npz"`` (bulk).
        batch_size / workers / device: inference settings (``batch_size``: samples per forward pass or per
            optimisation batch, and per progress-log line).
        resume: continue an interrupted job (same options) from its progress log.
        model_dir: body-model folder (needed for the world-frame output of Human3.6M / MPI-INF-3DHP /
            InterHand2.6M).
        limit: annotate only the first ``limit`` samples (``None``: all).
    """

    dataset_json: Path
    checkpoint: Path | None
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
    method: str = "neuralannot"
    samples_per_s: float | None = None


def progress_path_for(out: Path) -> Path:
    """``out`` -> ``out.progress.jsonl`` next to it (Human3.6M folders: ``folder.progress.jsonl``)."""
    out = Path(out)
    return out.with_name(out.name + ".progress.jsonl")


# ----------------------------------------------------------------------------------------- dataset discovery

_COCO_RE = re.compile(r"^coco_wholebody_(train|val)_v1\.0\.json$")
_H36M_RE = re.compile(r"^Human36M_subject(\d+)_data\.json$")
_FREI_RE = re.compile(r"^(training|evaluation)_(xyz|K|mano|verts)\.json$")
_IH_RE = re.compile(r"^InterHand2\.6M_(train|val|test)_data\.json$")
_PW3D_RE = re.compile(r"^3DPW_(?:latest_)?(train|validation|test)\.json$")
_KIND_NAMES = ("coco_wholebody", "h36m", "mpi3dhp", "freihand", "interhand", "3dpw")


def _root_above_annotations(path: Path) -> Path:
    parent = path.parent
    return parent.parent if parent.name == "annotations" else parent


def infer_dataset(dataset_json: Path, kind: str = "auto") -> tuple[Kind, Path, dict[str, Any]]:
    """``(kind, root, loader options)`` for a dataset file, from its name and folder layout.

    ``.../annotations/coco_wholebody_{split}_v1.0.json`` -> coco_wholebody, root = parent of ``annotations/``;
    ``.../annotations/Human36M_subject{S}_data.json`` -> h36m (that subject); ``.../MPI-INF-3DHP_1k.json`` ->
    mpi3dhp; ``.../{training,evaluation}_xyz.json`` -> freihand; ``.../annotations/{split}/
    InterHand2.6M_{split}_data.json`` -> interhand; ``.../3DPW_{split}.json`` (or 3DCrowdNet's
    ``3DPW_latest_{split}.json``) -> 3dpw, root = its folder. With an explicit ``kind`` the same rules give root and
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
    if m := _PW3D_RE.match(name):
        guesses.append(("3dpw", path.parent, {"split": m.group(1), "file_name": name}))
    if kind == "auto":
        if not guesses:
            raise ValueError(
                f"{path}: cannot infer the dataset kind from the file name; pass --kind "
                f"({'|'.join(_KIND_NAMES)})"
            )
        return guesses[0]
    if kind not in _KIND_NAMES:
        raise ValueError(f"--kind: unknown {kind!r}; expected auto|{'|'.join(_KIND_NAMES)}")
    if kind == "3dpw" and not any(g[0] == "3dpw" for g in guesses):
        raise ValueError(f"{path}: a 3DPW file is named 3DPW_{{train,validation,test}}.json "
                         "(or 3DPW_latest_{split}.json)")
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
        raise ValueError(f"a {part} annotator cannot annotate {kind} ({'hands' if kind in hand_kinds else 'bodies'})")
    return part_aux_samples(samples)


def _sample_key(kind: str, sample: Sample, part: str) -> str:
    side = None
    if part == "hand" and kind in ("coco_wholebody", "interhand"):
        side = str(sample.ids.get("hand_side", sample.extras.get("hand_side", "right")))
    return record_key(kind, sample.ids, side)


def rest_root_joint(body_model: Any, betas: np.ndarray, device: str) -> np.ndarray:
    """``(batch, 3)`` joint 0 of the shaped rest model (SMPL-X: pelvis; MANO: wrist), float64 metres."""
    with torch.no_grad():
        out = body_model(betas=torch.as_tensor(betas, dtype=body_model.dtype,
                                               device=getattr(body_model, "device", device)))
    return out.kinematic_joints[:, 0].detach().to("cpu", torch.float64).numpy()


def _scores_in_sample_joints(body_model: Any, root: np.ndarray, pose: np.ndarray, betas: np.ndarray,
                             transl: np.ndarray, focal: np.ndarray, princpt: np.ndarray, samples: Sequence[Sample],
                             device: str) -> list[float | None]:
    """Per sample: mean 2D distance (px) between its labelled keypoints (weighted by confidence) and the body's
    joints of the SAMPLE's joint set projected with the predicted camera -- the score that picks the view a
    world-frame file keeps (Human3.6M ``h36m_17`` / MPI-INF-3DHP ``mpi3dhp_17``, which the annotator's own
    keypoints, e.g. COCO-WholeBody's, cannot be compared with). ``None`` where the model lacks that joint set
    (e.g. no ``J_regressor_h36m_smplx.npy``) or a sample has no labelled keypoint."""
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=body_model.dtype,  # noqa: E731
                                  device=getattr(body_model, "device", device))
    with torch.no_grad():
        out = body_model(root_rotvec=t(root), body_pose_rotvecs=t(pose), betas=t(betas), transl_m=t(transl))
    scores: list[float | None] = [None] * len(samples)
    for js in sorted({s.joint_set for s in samples}):
        try:
            joints = body_model.joints_in(out, js).detach().to("cpu", torch.float64).numpy()  # (B, J, 3) m
        except ValueError:
            continue
        for i, s in enumerate(samples):
            if s.joint_set != js:
                continue
            z = np.clip(joints[i, :, 2:3], 1e-6, None)
            px = joints[i, :, :2] / z * np.asarray(focal[i], np.float64) + np.asarray(princpt[i], np.float64)
            scores[i] = _score(px, s)
    return scores


def _check_fit_inputs(predictor: Any, samples: Sequence[Sample], keys: Sequence[str], config: Any) -> None:
    """The baseline's inputs, before any fitting: a fit needs labelled 2D keypoints (or, with ``--use-3d``, 3D
    joints), ``--use-3d`` needs a set with 3D joints, and an ``--init`` file must start at least one sample.
    Where only some samples are affected, a warning says how many."""
    import warnings

    use_3d = bool(getattr(predictor, "use_3d", False))
    has_3d = [s.joints_3d_cam_mm is not None for s in samples]
    if use_3d and not any(has_3d):
        raise ValueError(f"{config.dataset_json}: --use-3d: no sample has 3D joints (joints_3d_cam_mm)")
    empty = [i for i, s in enumerate(samples)
             if not (np.asarray(s.keypoints_conf) > 0).any() and not (use_3d and has_3d[i])]
    if len(empty) == len(samples):
        raise ValueError(f"{config.dataset_json}: keypoints: no sample has a labelled 2D keypoint; the smplifyx "
                         "baseline has nothing to fit (e.g. FreiHAND's evaluation split without evaluation_xyz.json)")
    if empty:
        warnings.warn(f"{config.dataset_json}: {len(empty)} of {len(samples)} samples have no labelled 2D keypoint: "
                      "their records are the fit's starting pose", stacklevel=3)
    init = getattr(predictor, "init", None)
    if init:
        matched = sum(k in init for k in keys)
        if matched == 0:
            raise ValueError(f"{getattr(predictor, 'init_file', None) or '--init'}: none of its {len(init)} records "
                             f"matches a sample of {config.dataset_json} (another split or dataset?)")
        if matched < len(keys):
            warnings.warn(f"--init: {len(keys) - matched} of {len(keys)} samples have no record in "
                          f"{getattr(predictor, 'init_file', None)} and start from the default", stacklevel=3)


def _check_joint_sets(body_model: Any, joint_sets: set[str], config: Any, kind: str) -> None:
    """Raise the one-line error of :meth:`BodyModel.joints_in` (e.g. a missing ``J_regressor_h36m_smplx.npy``) when
    the body model cannot give a joint set the world-frame view choice needs."""
    with torch.no_grad():
        out = body_model(betas=torch.zeros(1, int(body_model.num_betas), dtype=body_model.dtype,
                                           device=getattr(body_model, "device", config.device)))
    for js in sorted(joint_sets):
        try:
            body_model.joints_in(out, js)
        except ValueError as exc:
            raise ValueError(f"{config.dataset_json}: the {kind} file keeps one view per frame, chosen by the 2D "
                             f"error of the set's own {js} joints: {exc} (or write --format npz, which keeps every "
                             "view)") from None


def _records_from_prediction(kind: str, part: str, pred: Any, samples: Sequence[Sample], keys: Sequence[str],
                             mirrored: Sequence[bool], body_model: Any, device: str, joint_set: str | None,
                             hand_models: dict[str, Any] | None = None) -> list[SmplxRecord | ManoRecord]:
    """Camera-frame records of one predicted batch; with the extrinsics and rest root joint that the world-frame
    files need: Human3.6M / MPI-INF-3DHP (``body_model``: SMPL-X) and InterHand2.6M (``hand_models``:
    ``{"right"|"left": MANO}``, the sides in the batch; ``t = -camrot @ campos``)."""
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
        pelvis = rest_root_joint(body_model, betas, device) if kind in _WORLD_KINDS else None
        # the score picks the view a world-frame file keeps: measured in the sample's own joints
        world_scores = (_scores_in_sample_joints(body_model, root, pose, betas, transl, focal, princpt, samples,
                                                 device) if kind in _WORLD_KINDS else None)
        for i, s in enumerate(samples):
            kpi = None if kp is None else kp[i]
            extra: dict[str, Any] = {}
            score = _score(kpi, s)
            if kind in _WORLD_KINDS:
                extra = dict(cam_rotmat=s.extras["cam_rotmat"], cam_trans_mm=s.extras["cam_trans_mm"],
                             rest_pelvis_m=pelvis[i])  # type: ignore[index]
                score = world_scores[i] if world_scores[i] is not None else score  # type: ignore[index]
            out.append(SmplxRecord(key=keys[i], ids=s.ids, root_rotvec=root[i], body_pose_rotvecs=pose[i],
                                   betas=betas[i], transl_m=transl[i], focal_px=focal[i], princpt_px=princpt[i],
                                   keypoints_2d_px=kpi, joint_set=js, score=score, **extra))
        return out
    pred_mirrored = getattr(pred, "mirrored", None)
    if pred_mirrored is not None:
        flags = _np(pred_mirrored).reshape(-1).astype(bool)
        want = np.asarray(mirrored, bool)
        if flags.shape != want.shape or (flags != want).any():
            bad = int(np.flatnonzero(flags != want)[0]) if flags.shape == want.shape else 0
            raise ValueError(f"Prediction.mirrored: {keys[bad]}: the prediction's hand side "
                             f"({'left' if flags.shape == want.shape and flags[bad] else 'right'}) disagrees with "
                             f"the sample's ({'left' if want[bad] else 'right'})")
    sides = ["left" if m else "right" for m in mirrored]
    wrist = np.full((n, 3), np.nan)
    if kind == "interhand" and hand_models:
        for side, model in hand_models.items():
            rows = [i for i in range(n) if sides[i] == side]
            if rows:
                wrist[rows] = rest_root_joint(model, betas[rows], device)
    for i, s in enumerate(samples):
        # the prediction already holds LEFT-MANO parameters for left hands (module docstring): no mirroring here
        kpi = None if kp is None else kp[i]
        extra = {}
        if not np.isnan(wrist[i]).any() and "cam_rotmat" in s.extras and "campos_mm" in s.extras:
            camrot = np.asarray(s.extras["cam_rotmat"], np.float64).reshape(3, 3)
            campos_mm = np.asarray(s.extras["campos_mm"], np.float64).reshape(3)
            extra = dict(cam_rotmat=camrot, cam_trans_mm=-camrot @ campos_mm, rest_wrist_m=wrist[i])
        out.append(ManoRecord(key=keys[i], ids=s.ids, hand_type=sides[i], root_rotvec=root[i],
                              hand_pose_rotvecs=pose[i], betas=betas[i], transl_m=transl[i], focal_px=focal[i],
                              princpt_px=princpt[i], keypoints_2d_px=kpi, joint_set=js, score=_score(kpi, s), **extra))
    return out


# --------------------------------------------------------------------------------------------------- run


def _fingerprint(config: AnnotateConfig, predictor: Predictor, kind: str, part: str) -> dict[str, Any]:
    return {"dataset_json": str(Path(config.dataset_json).resolve()), "method": predictor.method, "kind": kind,
            "part": part, "format": config.fmt, "limit": config.limit, **json_safe(predictor.describe())}


def _batches(predictor: Predictor, sub: list[Sample], sub_mirrored: list[bool], config: AnnotateConfig
             ) -> Iterator[tuple[list[int], dict[str, Any] | None]]:
    """``(positions in sub, collated crop batch or None)`` in order, ``config.batch_size`` samples each."""
    if not predictor.needs_images:
        for start in range(0, len(sub), config.batch_size):
            yield list(range(start, min(start + config.batch_size, len(sub)))), None
        return
    from torch.utils.data import DataLoader

    from neuralannot_cli.train.datasets import make_dataset

    dataset = make_dataset(sub, sub_mirrored, int(predictor.input_size), augment=False, seed=0)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.workers,
                        pin_memory=str(config.device).startswith("cuda"))
    for batch in loader:
        yield [int(i) for i in batch["index"]], batch


def run_annotate(
    config: AnnotateConfig,
    annotator: Annotator | Predictor,
    *,
    samples: Sequence[Sample] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    stop_after_batches: int | None = None,
) -> AnnotateSummary:
    """Annotate every sample and write the pseudo-GT (see the module docstring).

    Args:
        config: the job.
        annotator: a :class:`Predictor` (:class:`FitPredictor`, :class:`NetworkPredictor`) or a loaded
            annotator (``part``, ``input_size``, ``predict``), which is wrapped in a :class:`NetworkPredictor`.
        samples: pre-loaded samples (else loaded from ``config.dataset_json``).
        on_progress: ``(done, total)`` after each batch (and once at the start).
        stop_after_batches: testing aid: return after this many new batches without assembling the output
            (simulates an interruption; the progress log stays).

    Raises:
        FileNotFoundError / ValueError / OSError: one-line messages naming the file and field.
    """
    from neuralannot_cli.data.loaders import load_dataset

    t0 = time.perf_counter()
    predictor: Predictor = (annotator if hasattr(annotator, "predict_samples")  # type: ignore[assignment]
                            else NetworkPredictor(annotator, config.checkpoint))  # type: ignore[arg-type]
    kind, root, options = infer_dataset(config.dataset_json, config.kind)
    part = str(predictor.part)
    if part not in ("body", "hand"):
        raise ValueError(f"{config.checkpoint}: part: expected 'body' or 'hand', got {part!r}")
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
    if predictor.method == "smplifyx":
        _check_fit_inputs(predictor, part_samples, keys, config)

    out = Path(config.out)
    if config.fmt == "npz" and out.suffix != ".npz":
        raise ValueError(f"{out}: --format npz needs an output path ending in .npz")
    body_model = None
    if part == "body" and kind in _WORLD_KINDS:  # extrinsics + rest pelvis of the world-frame layouts
        from neuralannot_cli.body import load_body_model

        body_model = load_body_model("smplx", model_dir=config.model_dir, device=config.device)
        if config.fmt == "json":  # the kept view is chosen in the set's own joints: fail now, not silently later
            _check_joint_sets(body_model, {s.joint_set for s in part_samples}, config, kind)
    log = ProgressLog.open(progress_path_for(out), _fingerprint(config, predictor, kind, part), resume=config.resume)
    try:
        num_resumed = len(log.done_keys & set(keys))
        pending = [i for i, k in enumerate(keys) if k not in log.done_keys]
        total = len(keys)
        done = total - len(pending)
        if on_progress:
            on_progress(done, total)
        hand_models = None
        if part == "hand" and kind == "interhand" and pending:  # rest wrists for the world-frame file
            from neuralannot_cli.body import load_body_model

            hand_models = {side: load_body_model("mano", is_rhand=side == "right", model_dir=config.model_dir,
                                                 device=config.device)
                           for side in sorted({"left" if mirrored[i] else "right" for i in pending})}
        new_batches = 0
        predict_seconds = 0.0
        if pending:
            sub = [part_samples[i] for i in pending]
            sub_mirrored = [mirrored[i] for i in pending]
            sub_keys = [keys[i] for i in pending]
            for idx, batch in _batches(predictor, sub, sub_mirrored, config):
                tp = time.perf_counter()
                pred = predictor.predict_samples([sub[i] for i in idx], [sub_keys[i] for i in idx],
                                                 [sub_mirrored[i] for i in idx], batch)
                predict_seconds += time.perf_counter() - tp
                recs = _records_from_prediction(
                    kind, part, pred, [sub[i] for i in idx], [sub_keys[i] for i in idx],
                    [sub_mirrored[i] for i in idx], body_model, config.device, predictor.joint_set, hand_models)
                log.append([r.key for r in recs], [record_to_dict(r) for r in recs])
                done += len(recs)
                new_batches += 1
                if on_progress:
                    on_progress(done, total)
                if stop_after_batches is not None and new_batches >= stop_after_batches:
                    log.close()
                    return AnnotateSummary(kind, part, done, done - num_resumed, num_resumed, (), out,
                                           time.perf_counter() - t0, predictor.method)
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

        num_new = len(records) - num_resumed
        rate = round(num_new / seconds, 3) if seconds > 0 else None
        scores = [r.score for r in records if r.score is not None]
        meta = {
            "tool": "neuralannot", "version": __version__, "method": predictor.method, "dataset_kind": kind,
            "part": part, "dataset_json": str(Path(config.dataset_json).resolve()),
            "checkpoint": None if config.checkpoint is None else str(Path(config.checkpoint).resolve()),
            "format": config.fmt, "num_records": len(records), "files": [str(f) for f in files],
            "model_type": "smplx" if part == "body" else "mano",
            "frame": "world" if kind in (*_WORLD_KINDS, "interhand") and config.fmt == "json" else "camera",
            "standin_body_model": bool(getattr(predictor, "is_standin", False)),
            "input_size": int(predictor.input_size) if predictor.needs_images else None,
            "batch_size": config.batch_size, "device": str(config.device),
            "seconds": round(seconds, 3), "predict_seconds": round(predict_seconds, 3),
            "resumed_records": num_resumed, "new_records": num_new,
            # end-to-end rate of this run's new samples (loading, cropping / fitting, writing): the number the
            # evaluation compares between methods; images_per_s is the same number under its earlier name
            "samples_per_s": rate, "images_per_s": rate,
            "mean_score_px": round(float(np.mean(scores)), 4) if scores else None,
            **{k: v for k, v in json_safe(predictor.describe()).items() if k not in ("checkpoint",)},
        }
        meta_file = write_meta(meta_target, meta)
        if meta_target != files[0]:  # Human3.6M folder: also one sidecar per subject file, so that annotating
            for f in files:          # several subjects into one folder keeps every subject's timing
                write_meta(f, meta)
        log.discard()
        return AnnotateSummary(kind, part, len(records), num_new, num_resumed, tuple(files), meta_file, seconds,
                               predictor.method, rate)
    finally:
        log.close()
