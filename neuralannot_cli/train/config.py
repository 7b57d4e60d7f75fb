"""Training configuration of ``neuralannot train`` (Algorithm 1): one frozen dataclass.

:class:`TrainConfig` is built from CLI options and/or a YAML file (:func:`load_yaml_options`); CLI values
override the file. It is written to ``<out>/config.json`` (together with what the annotator needs) and to
``<out>/state/config.json`` so that ``--resume`` can check that it continues the same run.

YAML example (keys are the field names; ``aux`` / ``target`` map a dataset kind to its root)::

    part: body
    aux: {h36m: /data/Human36M, mpi3dhp: /data/MPI_INF_3DHP}
    target: {coco_wholebody: /data/coco}
    stage1_epochs: 10
    stage2_epochs: 10
    batch_size: 32
    lr: 1.0e-4
    lr_decay_epochs: [8]
    backbone: resnet50
    prior: learned            # or learned-pca, learned-vposer, none, or an official VPoser v2 checkpoint
    dataset_options: {h36m: {subjects: [1, 5, 6, 7, 8], frame_step: 5}}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

PRIOR_NAMES = ("learned", "learned-vposer", "learned-pca", "none", "mano")
"""The named pose priors of :attr:`TrainConfig.prior` (anything else is a VPoser checkpoint path)."""

__all__ = [
    "AUX_KINDS",
    "PRIOR_NAMES",
    "TARGET_KINDS",
    "TrainConfig",
    "load_yaml_options",
    "config_from_options",
    "config_to_dict",
    "config_from_dict",
]

Part = Literal["body", "hand"]
AUX_KINDS: dict[str, tuple[str, ...]] = {"body": ("h36m", "mpi3dhp", "3dpw"), "hand": ("freihand", "interhand")}
"""Auxiliary (3D) dataset kinds per part (kinds of :func:`neuralannot_cli.data.loaders.load_dataset`). 3DPW's GT
3D joints are its GT SMPL meshes through the SMPL Human3.6M regressor (:mod:`neuralannot_cli.data.pw3d_joints`;
SMPL from ``model_dir`` or the usual lookup); its split defaults to ``train`` (``dataset_options`` to change)."""
TARGET_KINDS: tuple[str, ...] = ("coco_wholebody",)
"""Target (2D-only) dataset kinds."""
_BACKBONES = {"resnet18": 18, "resnet34": 34, "resnet50": 50}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
        part: ``'body'`` (SMPL-X body) or ``'hand'`` (right MANO).
        aux: ``{kind: root}`` auxiliary 3D datasets, in order (one stage-1 network each).
        target: ``{kind: root}`` 2D target dataset (one).
        out_dir: output directory (checkpoint, pseudo-GT of stage 1, ``state/`` for resume, metrics).
        stage1_epochs, stage2_epochs: epochs of each stage (``--epochs`` sets both).
        prior_epochs: epochs of the learned VPoser (body, ``prior='learned'``).
        batch_size: per-process batch (stage 2: half aux, half target; must be even).
        lr: Adam learning rate (paper: 1e-4).
        lr_decay_epochs: epochs (0-based, per stage) at which the lr is multiplied by ``lr_decay_factor``.
        lr_decay_factor: step decay factor (0.1).
        input_size: crop side in pixels (256).
        backbone: ``'resnet18' | 'resnet34' | 'resnet50'``.
        backbone_weights: optional ImageNet weights (.pth / .safetensors, torchvision names).
        prior: ``'learned'`` (the part's default prior learned from stage-1 Θ*: a VPoser for the body, PCA for
            the hand), ``'learned-vposer'`` / ``'learned-pca'`` (that kind, learned from Θ*), ``'mano'`` (hand:
            the MANO file's PCA), ``'none'`` (6D pose regressed directly) or a path to an official VPoser v2
            checkpoint.
        prior_dim: latent size of the learned VPoser / number of hand PCA components.
        lambda_ax, lambda_tg, w_2d, w_3d, w_param, w_root, w_shape: loss weights (``None``: the part's defaults,
            :meth:`neuralannot_cli.losses.LossWeights.for_part` -- the hand's 3D term has ``w_3d = 10``).
        stage1_root_frame: start stage 1's root rotation from the GT torso / palm frame (closed-form Kabsch,
            the network predicts a residual); ``False`` = the paper's plain regression from the mean root, which
            settles in a wrong pelvis yaw (see :class:`~neuralannot_cli.nets.heads.Stage1Net`).
        stage1_canonical_joints: with ``stage1_root_frame``, stage 1's pose branch sees the GT joints in that
            torso / palm frame rather than the camera frame (viewpoint-free input; ``Stage1Net(canonical_joints)``).
        augment: scale/rotation/colour augmentation of training crops (flip is never used: it would change
            the meaning of θ*).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'`` ... (under torchrun the local rank picks the GPU).
        seed: base seed of everything random.
        workers: DataLoader workers.
        cache_images: decode every image once, before training, and keep it in RAM for the whole run
            (:class:`~neuralannot_cli.train.datasets.ImageCache`; sets that fit in memory; forked DataLoader
            workers share the decoded images). With ``augment`` off the finished crops are kept too
            (:class:`~neuralannot_cli.train.datasets.CropStore`, ``input_size**2 * 12`` bytes per item): an item is
            computed once for stage 1, Θ*, stage 2 and the per-epoch 2D error.
        model_dir: folder of the SMPL-X / MANO files (None: the usual lookup, then the stand-in).
        max_samples: keep the first N samples of each dataset (debugging).
        dataset_options: ``{kind: {option: value}}`` passed to the loaders (``subjects``, ``split``, ...).
        eval_samples: target samples used for the per-epoch 2D error in ``metrics.jsonl``.
        checkpoint_every: save the resumable state (model + optimizer + RNG, ~140 MB for a ResNet-18) every N
            epochs of a step and after its last epoch; a kill loses at most N - 1 epochs, which ``--resume``
            replays exactly. The epochs' ``metrics.jsonl`` lines are written with their checkpoint (one line per
            epoch, also across a resume). 1 suits slow epochs; on a GPU an epoch can take less than the write.
        cuda_graphs: replay each training step's loss forward and backward from a CUDA graph
            (:mod:`~neuralannot_cli.train.cuda_graphs`; single-process CUDA training; eager under DDP, on the CPU,
            or after a failed capture). Same numbers as eager, far fewer kernel launches.
        progress: show a rich progress bar (auto-disabled when stderr is not a terminal).
    """

    part: Part
    aux: tuple[tuple[str, str], ...]
    target: tuple[tuple[str, str], ...]
    out_dir: str
    stage1_epochs: int = 10
    stage2_epochs: int = 10
    prior_epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    lr_decay_epochs: tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    input_size: int = 256
    backbone: str = "resnet50"
    backbone_weights: str | None = None
    prior: str = "learned"
    prior_dim: int = 32
    lambda_ax: float | None = None
    lambda_tg: float | None = None
    w_2d: float | None = None
    w_3d: float | None = None
    w_param: float | None = None
    w_root: float | None = None
    w_shape: float | None = None
    stage1_root_frame: bool = True
    stage1_canonical_joints: bool = True
    augment: bool = True
    device: str = "cpu"
    seed: int = 0
    workers: int = 0
    cache_images: bool = False
    model_dir: str | None = None
    max_samples: int | None = None
    dataset_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    eval_samples: int = 256
    checkpoint_every: int = 1
    cuda_graphs: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.part not in ("body", "hand"):
            raise ValueError(f"part: expected 'body' or 'hand', got {self.part!r}")
        if not self.aux:
            raise ValueError("aux: at least one auxiliary 3D dataset is required (e.g. --aux h36m=/data/h36m)")
        for kind, root in self.aux:
            if kind not in AUX_KINDS[self.part]:
                raise ValueError(f"aux: {kind!r} is not an auxiliary set of part {self.part!r}; "
                                 f"choose from {AUX_KINDS[self.part]}")
            if not root:
                raise ValueError(f"aux: {kind}: no dataset root given")
        if len(self.target) != 1 or self.target[0][0] not in TARGET_KINDS:
            raise ValueError(f"target: expected exactly one of {TARGET_KINDS} with its root, got {dict(self.target)}")
        if self.backbone not in _BACKBONES:
            raise ValueError(f"backbone: expected one of {sorted(_BACKBONES)}, got {self.backbone!r}")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"batch_size: expected an even number >= 2, got {self.batch_size}")
        for name in ("stage1_epochs", "stage2_epochs", "prior_epochs", "input_size", "prior_dim", "eval_samples",
                     "checkpoint_every"):
            if int(getattr(self, name)) < (0 if name.endswith("epochs") else 1):
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr}")
        if self.cuda_graphs and not str(self.device).startswith("cuda"):
            raise ValueError(f"cuda_graphs: needs a CUDA device (--device cuda), got device {self.device!r}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples: expected >= 1, got {self.max_samples}")
        if self.prior not in PRIOR_NAMES and not (Path(self.prior).is_file() or Path(self.prior).is_dir()):
            raise ValueError(f"prior: expected one of {', '.join(map(repr, PRIOR_NAMES))}, an existing checkpoint "
                             f"file or a VPoser folder (V02_05/), got {self.prior!r}")
        if self.prior == "mano" and self.part != "hand":
            raise ValueError("prior: 'mano' (the MANO file's PCA) applies to --part hand only")
        if self.prior == "learned-vposer" and self.part != "body":
            raise ValueError("prior: 'learned-vposer' applies to --part body only (hands use PCA)")
        if self.prior not in PRIOR_NAMES and self.part != "body":
            raise ValueError("prior: a VPoser checkpoint applies to --part body only")

    @property
    def backbone_depth(self) -> int:
        return _BACKBONES[self.backbone]

    @property
    def aux_names(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.aux)

    def options_for(self, kind: str) -> dict[str, Any]:
        for name, opts in self.dataset_options:
            if name == kind:
                return {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts}
        return {}


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple((str(k), _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def load_yaml_options(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict of :class:`TrainConfig` field values (one-line errors)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)} | {"epochs", "out"}
    for key in data:
        if key.replace("-", "_") not in known:
            raise ValueError(f"{path}: {key}: unknown option; known: {sorted(known)}")
    out = {str(k).replace("-", "_"): v for k, v in data.items()}
    for key in ("aux", "target"):
        if key in out and not isinstance(out[key], Mapping):
            raise ValueError(f"{path}: {key}: expected a mapping {{kind: root}}, got {type(out[key]).__name__}")
    return out


def config_from_options(yaml_options: Mapping[str, Any] | None, cli_options: Mapping[str, Any]) -> TrainConfig:
    """Merge YAML values with CLI values (CLI wins when not ``None``) into a :class:`TrainConfig`.

    ``epochs`` sets ``stage1_epochs`` and ``stage2_epochs`` unless those are given; ``out`` is an alias of
    ``out_dir``; ``aux`` / ``target`` / ``dataset_options`` may be mappings.
    """
    merged: dict[str, Any] = dict(yaml_options or {})
    for key, value in cli_options.items():
        if value is None or (key in ("aux", "target") and not value):
            continue
        if key in ("aux", "target") and key in merged and isinstance(merged[key], Mapping):
            # names given on the CLI without roots take their roots from YAML
            base = dict(merged[key])
            merged[key] = {k: (v if v else base.get(k, "")) for k, v in dict(value).items()}
            continue
        merged[key] = value
    if "out" in merged:
        merged.setdefault("out_dir", merged.pop("out"))
    epochs = merged.pop("epochs", None)
    if epochs is not None:
        merged.setdefault("stage1_epochs", epochs)
        merged.setdefault("stage2_epochs", epochs)
    for key in ("aux", "target", "dataset_options"):
        if key in merged and isinstance(merged[key], Mapping):
            merged[key] = _freeze({str(k): (str(v) if key != "dataset_options" else v) for k, v in merged[key].items()})
    if "lr_decay_epochs" in merged and merged["lr_decay_epochs"] is not None:
        merged["lr_decay_epochs"] = tuple(int(v) for v in merged["lr_decay_epochs"])
    for key in ("out_dir", "model_dir", "backbone_weights", "prior"):
        if merged.get(key) is not None:
            merged[key] = str(merged[key])
    missing = [k for k in ("part", "aux", "target", "out_dir") if k not in merged]
    if missing:
        raise ValueError(f"missing option(s) {missing} (give them on the command line or in --config)")
    return TrainConfig(**merged)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON-ready dict (mappings as dicts)."""
    d = dataclasses.asdict(config)
    d["aux"] = dict(config.aux)
    d["target"] = dict(config.target)
    d["dataset_options"] = {k: dict(v) for k, v in config.dataset_options}
    d["lr_decay_epochs"] = list(config.lr_decay_epochs)
    return json.loads(json.dumps(d))


def config_from_dict(d: Mapping[str, Any]) -> TrainConfig:
    """Inverse of :func:`config_to_dict`."""
    d = dict(d)
    d["aux"] = _freeze(d["aux"])
    d["target"] = _freeze(d["target"])
    d["dataset_options"] = _freeze(d.get("dataset_options", {}))
    d["lr_decay_epochs"] = tuple(d.get("lr_decay_epochs", ()))
    return TrainConfig(**d)


# comparisons for --resume: fields that may change between the interrupted run and its continuation
RESUME_MUTABLE_FIELDS = frozenset({"device", "workers", "cache_images", "progress", "model_dir", "out_dir",
                                   "eval_samples", "checkpoint_every", "cuda_graphs"})
