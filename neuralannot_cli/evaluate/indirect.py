"""Indirect evaluation: train a 3D mesh estimator on a pseudo-GT set, test it on a set with GT 3D.

Estimators (one code path for every pseudo-GT source, so that sources compare fairly):

- ``regressor`` (:class:`ParamRegressor`, the paper's Table 8 regressor): ResNet (:class:`~neuralannot_cli.
  nets.backbone.ResNetBackbone`) -> global average pool -> FC(512) -> ReLU -> FC regressing the root and
  body (SMPL-X: 1 + 21, MANO: 1 + 15) rotations in 6D (:func:`neuralannot_cli.rotation.rot6d_to_rotmat`,
  bias initialised to the identity, the root to the mean training orientation) and the shape ``betas``.
  No camera is regressed: the metrics are root-relative (MPJPE after root alignment, PA-MPJPE, MPVPE with each mesh translated by its root joint).
- ``i2l`` (I2L-MeshNet-style lixel estimator): :mod:`neuralannot_cli.evaluate.i2l` (1D heatmaps per joint
  and per vertex of a sub-sampled mesh, soft-argmax), same test-set path and metrics.

Training (:func:`train_regressor`): crops of the training samples matched to pseudo-GT records
(:class:`~neuralannot_cli.data.pipeline.CroppedSampleDataset`, no augmentation, the record's parameters as
targets); loss = L1 on the rotation matrices + 0.1 L1 on ``betas`` + L1 on the root-relative kinematic joints
of the body model (metres). Rotations are those of the CAMERA frame; the crop is a scale + shift of the
image, so the orientation seen in the crop is the camera-frame orientation. SMPL-X hand / face parameters
are not regressed (mean hand, neutral face). MANO: right hands only (left-hand records are skipped and
counted).

Every estimator trains in :func:`fit_estimator`: Adam, shuffled batches whose order is a function of
``(seed, epoch)`` only (the sampler's generator is re-seeded at the start of each epoch), so an epoch sees the
same batches whether the run went through its earlier epochs in this process or resumed after them.

Resume (``work_dir``; none = nothing written). Layout of ``<work_dir>``::

    job.json                                 {"version": 1, "fingerprint": {...}}: what the job is
    state/indirect_<estimator>.json          last saved epoch, optimizer groups, RNG, {"loss", "seconds"}
    state/indirect_<estimator>.e<k>.safetensors  model + optimizer tensors after epoch k (0-based)

The state (:func:`~neuralannot_cli.train.checkpoint.save_train_state`: atomic, the JSON is the commit point)
is saved every ``checkpoint_every`` epochs and after the last. ``resume`` continues from the saved epoch and
refuses a job whose fingerprint differs (estimator, training inputs by resolved path and SHA-256, test files,
kinds, epochs, batch size, lr, input size, depth, seed); ``device``, ``workers``, ``model_dir`` and
``checkpoint_every`` may change. A work folder that holds a job is never overwritten without ``resume``. A job
killed after its last epoch (while testing) resumes straight into the test.

Testing (:func:`test_estimator`): crops of the test samples with GT 3D joints -> parameters -> body model ->
joints of the test set's joint set (mm) -> MPJPE / PA-MPJPE (:func:`~neuralannot_cli.evaluate.direct.
joint_errors_mm`: the set's metric joints, e.g. Human3.6M's 14, valid GT joints only), plus MPVPE / PA-MPVPE
when a hidden-GT file with parameters of the same model type is given, and (hands) the FreiHAND AUC of PCK
over 0-50 mm. Only the test set's GT enters the metrics; ``num_test_in_train`` counts the test samples whose
image was also a training image (non-zero when training and testing on the same set: not held out).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from neuralannot_cli.evaluate import metrics as M

__all__ = ["IndirectConfig", "IndirectResult", "ParamRegressor", "train_regressor", "test_estimator",
           "run_indirect", "job_fingerprint", "open_work_dir"]

Estimator = Literal["regressor", "i2l"]


@dataclass(frozen=True)
class IndirectConfig:
    """Options of :func:`run_indirect` (see the module docstring)."""

    estimator: Estimator
    train_pseudo_gt: Path
    train_dataset: Path
    test_dataset: Path
    test_gt: Path | None = None
    train_kind: str = "auto"
    test_kind: str = "auto"
    epochs: int = 10
    batch_size: int = 16
    lr: float = 3e-4
    input_size: int = 128
    depth: Literal[18, 34, 50] = 18
    model_dir: Path | None = None
    device: str = "cpu"
    seed: int = 0
    workers: int = 0
    work_dir: Path | None = None
    """Folder for the resumable training state (``None``: nothing is written, a kill loses the training)."""
    checkpoint_every: int = 1
    """Save the state every this many epochs (and after the last); only with ``work_dir``."""
    resume: bool = False
    """Continue the job saved in ``work_dir`` (which must then be set)."""

    def checked(self) -> IndirectConfig:
        if self.estimator not in ("regressor", "i2l"):
            raise ValueError(f"estimator must be 'regressor' or 'i2l', got {self.estimator!r}")
        for name in ("epochs", "batch_size", "input_size", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.depth not in (18, 34, 50):
            raise ValueError(f"depth must be 18, 34 or 50, got {self.depth}")
        if self.work_dir is not None and not isinstance(self.work_dir, (str, os.PathLike)):
            raise ValueError(f"work_dir must be a path or None, got {type(self.work_dir).__name__}")
        if not isinstance(self.resume, bool):
            raise ValueError(f"resume must be True or False, got {self.resume!r}")
        if self.resume and self.work_dir is None:
            raise ValueError("resume: needs work_dir (--work-dir), the folder of the job to continue")
        return self


@dataclass(frozen=True)
class IndirectResult:
    estimator: str
    part: str
    num_train: int
    num_skipped_train: int
    num_test: int
    train_seconds: float
    final_train_loss: float
    mpjpe_mm: float
    pa_mpjpe_mm: float
    mpvpe_mm: float
    pa_mpvpe_mm: float
    pck_auc_pa: float
    num_test_in_train: int = 0
    f_score_5mm: float = float("nan")
    f_score_15mm: float = float("nan")
    pck3d_150mm: float = float("nan")
    auc3d_0_150mm: float = float("nan")

    def summary(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}


class ParamRegressor(nn.Module):
    """ResNet + FC regressing ``(batch, 1 + K, 3, 3)`` root/pose rotation matrices and ``(batch, num_betas)``.

    ``K`` = 21 (SMPL-X body) or 15 (MANO). Images: ``(batch, 3, S, S)`` ImageNet-normalised.
    """

    def __init__(self, part: Literal["body", "hand"], depth: Literal[18, 34, 50] = 18, num_betas: int = 10,
                 hidden: int = 512, root_init_rotmat: torch.Tensor | None = None) -> None:
        super().__init__()
        from neuralannot_cli.nets.backbone import ResNetBackbone
        from neuralannot_cli.rotation import rotmat_to_rot6d

        if part not in ("body", "hand"):
            raise ValueError(f"part must be 'body' or 'hand', got {part!r}")
        self.part = part
        self.num_rot = 22 if part == "body" else 16
        self.num_betas = int(num_betas)
        self.backbone = ResNetBackbone(depth)
        self.fc1 = nn.Linear(self.backbone.out_channels, hidden)
        self.fc2 = nn.Linear(hidden, self.num_rot * 6 + self.num_betas)
        nn.init.normal_(self.fc2.weight, std=1e-3)
        rot_bias = torch.eye(3).repeat(self.num_rot, 1, 1)
        if root_init_rotmat is not None:
            root_init_rotmat = torch.as_tensor(root_init_rotmat, dtype=torch.float32)
            if root_init_rotmat.shape != (3, 3):
                raise ValueError(f"root_init_rotmat must be (3, 3), got {tuple(root_init_rotmat.shape)}")
            rot_bias[0] = root_init_rotmat
        bias = torch.cat([rotmat_to_rot6d(rot_bias).reshape(-1), torch.zeros(self.num_betas)])
        with torch.no_grad():
            self.fc2.bias.copy_(bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from neuralannot_cli.rotation import rot6d_to_rotmat

        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"ParamRegressor: images must be (batch, 3, H, W), got {shape}")
        out = self.fc2(torch.relu(self.fc1(self.backbone(images))))
        rot = rot6d_to_rotmat(out[:, : self.num_rot * 6].reshape(-1, self.num_rot, 6))
        return rot, out[:, self.num_rot * 6:]


def _forward_rotmats(model, rotmats: torch.Tensor, betas: torch.Tensor, part: str):
    """Body model from rotation matrices (converted to rotvecs, the BodyModel's input)."""
    from neuralannot_cli.rotation import rotmat_to_rotvec

    rv = rotmat_to_rotvec(rotmats)
    kw: dict[str, torch.Tensor] = {"root_rotvec": rv[:, 0], "betas": betas[:, : model.num_betas]}
    kw["body_pose_rotvecs" if part == "body" else "hand_pose_rotvecs"] = rv[:, 1:]
    return model(**kw)


def _targets(records: list[Any], part: str) -> tuple[torch.Tensor, torch.Tensor]:
    from neuralannot_cli.rotation import rotvec_to_rotmat

    rv = np.stack([np.concatenate([r.root_rotvec[None], r.body_pose_rotvecs if part == "body"
                                   else r.hand_pose_rotvecs]) for r in records])
    betas = np.stack([r.betas for r in records])
    return rotvec_to_rotmat(torch.tensor(rv, dtype=torch.float32)), torch.tensor(betas, dtype=torch.float32)


def _with_index(samples: list[Any], input_size: int):
    from neuralannot_cli.data.pipeline import CroppedSampleDataset

    return CroppedSampleDataset(samples, input_size, augment=False)


# ------------------------------------------------------------------------------------------ resume


def _state_step(cfg: IndirectConfig) -> str:
    return f"indirect_{cfg.estimator}"


def _epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the batch order (and augmentation draws) of ``epoch``: a function of ``(seed, epoch)`` only."""
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63)


def _input_digest(path: str | os.PathLike) -> dict[str, str]:
    """``{"path": resolved path, "sha256": content digest}`` of a file, or of a folder's files (sorted
    relative names and contents; a Human3.6M pseudo-GT folder)."""
    path = Path(path).resolve()
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return {"path": str(path), "sha256": h.hexdigest()}


def job_fingerprint(cfg: IndirectConfig) -> dict[str, Any]:
    """What a resumed job must share with the interrupted one (JSON-able; see the module docstring)."""
    def resolved(p: Path | None) -> str | None:
        return None if p is None else str(Path(p).resolve())

    return {"estimator": cfg.estimator, "train_pseudo_gt": _input_digest(cfg.train_pseudo_gt),
            "train_dataset": _input_digest(cfg.train_dataset), "train_kind": cfg.train_kind,
            "test_dataset": resolved(cfg.test_dataset), "test_gt": resolved(cfg.test_gt),
            "test_kind": cfg.test_kind, "epochs": int(cfg.epochs), "batch_size": int(cfg.batch_size),
            "lr": float(cfg.lr), "input_size": int(cfg.input_size), "depth": int(cfg.depth), "seed": int(cfg.seed)}


def open_work_dir(cfg: IndirectConfig) -> None:
    """Check or start the job in ``cfg.work_dir`` (no-op without one): a new folder gets ``job.json``; a folder
    holding a job needs ``cfg.resume`` and the same :func:`job_fingerprint`.

    Raises:
        ValueError: the folder holds a job and ``resume`` is off, or the fingerprints differ (names the field).
    """
    from neuralannot_cli.io.progress import first_difference
    from neuralannot_cli.train.checkpoint import atomic_write_json, read_json

    if cfg.work_dir is None:
        return
    path = Path(cfg.work_dir) / "job.json"
    fingerprint = json.loads(json.dumps(job_fingerprint(cfg)))
    if path.exists():
        if not cfg.resume:
            raise ValueError(f"{path}: the work folder holds an indirect-evaluation job already; pass --resume to "
                             "continue it or choose another --work-dir")
        old = read_json(path).get("fingerprint", {})
        key = first_difference(old, fingerprint)
        if key is not None:
            raise ValueError(f"{path}: fingerprint.{key}: the interrupted job had {old.get(key)!r}, this one "
                             f"has {fingerprint.get(key)!r}; rerun with the same options or another --work-dir")
        return
    atomic_write_json({"version": 1, "fingerprint": fingerprint}, path)


# ---------------------------------------------------------------------------------------- training


def training_records(cfg: Any, models: Any = None) -> tuple[str, dict[str, Any], dict[str, Any], list[str], int]:
    """The training pairs of an estimator: the records of ``cfg.train_pseudo_gt`` matched with the samples of
    ``cfg.train_dataset`` (right hands only, for hand sets).

    World-frame files (Human3.6M, MPI-INF-3DHP, InterHand2.6M: one entry per frame) give every view of their frames a
    training sample, as the field's loaders do (:func:`~neuralannot_cli.evaluate.direct.records_in_every_view`).

    ``models``: the caller's :class:`~neuralannot_cli.evaluate.direct.BodyModels` (a released world-frame file's rest
    root comes from them), so the body model is loaded once; ``None`` builds them from ``cfg``.

    Returns:
        ``(part, records, samples, keys, skipped)``: ``'body'`` / ``'hand'``, the (placed) records and the samples by
        key, the sorted training keys, and how many records of the file gave no training sample.
    """
    from neuralannot_cli.evaluate.direct import (BodyModels, load_samples, read_pseudo_gt_for, records_in_every_view,
                                                 sample_view)

    records = read_pseudo_gt_for(Path(cfg.train_pseudo_gt), cfg.train_kind, cfg.train_dataset)
    types = {r.model_type for r in records.values()}
    if len(types) != 1:
        raise ValueError(f"{cfg.train_pseudo_gt}: expected records of one model type, got {sorted(types)}")
    part = "hand" if types.pop() == "mano" else "body"
    kind, samples = load_samples(cfg.train_dataset, cfg.train_kind, part=part, gt_3d=False)  # type: ignore[arg-type]
    file_keys = set(records)
    records, _, sources = records_in_every_view(records, {k: sample_view(s) for k, s in samples.items()}, kind,
                                                models if models is not None else BodyModels(cfg.model_dir, cfg.device))
    keys = sorted(k for k in records if k in samples and records[k].frame == "camera"
                  and getattr(records[k], "hand_type", "right") == "right")
    if len(keys) < 2:  # BatchNorm needs two samples per batch
        raise ValueError(f"{cfg.train_pseudo_gt}: {len(keys)} camera-frame record(s) match a sample of "
                         f"{cfg.train_dataset}; training needs at least 2 (another split or dataset?)")
    used = (set(keys) & file_keys) | sources
    return part, records, samples, keys, len(file_keys - used)


def train_regressor(config: IndirectConfig, on_progress: Callable[[int, int, float], None] | None = None
                    ) -> tuple[ParamRegressor, dict[str, Any]]:
    """Train :class:`ParamRegressor` on the pseudo-GT of ``config.train_dataset`` -> ``(model, info)``
    (resumable with ``config.work_dir`` / ``config.resume``, see :func:`fit_estimator`)."""
    from neuralannot_cli.evaluate.direct import BodyModels

    cfg = config.checked()
    open_work_dir(cfg)
    models = BodyModels(cfg.model_dir, cfg.device)
    part, records, samples, keys, skipped = training_records(cfg, models)
    sample_list = [samples[k] for k in keys]
    rot_t, betas_t = _targets([records[k] for k in keys], part)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    # start the root at the chordal mean orientation of the targets (SMPL-X bodies stand upside down in an
    # OpenCV camera at the identity)
    u, _, vh = torch.linalg.svd(rot_t[:, 0].double().mean(0))
    mean_root = u @ torch.diag(torch.tensor([1.0, 1.0, float(torch.det(u @ vh))], dtype=torch.float64)) @ vh
    net = ParamRegressor(part, cfg.depth, num_betas=betas_t.shape[1],  # type: ignore[arg-type]
                         root_init_rotmat=mean_root.float()).to(device)
    body = models.get("smplx" if part == "body" else "mano", "right")
    ds = _with_index(sample_list, cfg.input_size)

    def batch_loss(batch: dict[str, Any]) -> torch.Tensor:
        idx = batch["index"]
        rot_gt, betas_gt = rot_t[idx].to(device), betas_t[idx].to(device)
        rot, betas = net(batch["image"].to(device))
        out_p = _forward_rotmats(body, rot, betas, part)
        with torch.no_grad():
            out_g = _forward_rotmats(body, rot_gt, betas_gt, part)
        jp = out_p.kinematic_joints - out_p.kinematic_joints[:, :1]
        jg = out_g.kinematic_joints - out_g.kinematic_joints[:, :1]
        return ((rot - rot_gt).abs().mean() + 0.1 * (betas - betas_gt).abs().mean()
                + (jp - jg).abs().mean() * 10.0)

    last, seconds = fit_estimator(net, ds, cfg, batch_loss, on_progress)
    info = {"part": part, "num_train": len(keys), "num_skipped": skipped, "seconds": seconds,
            "final_loss": last, "train_images": frozenset(str(s.image_path) for s in sample_list)}
    return net, info


def fit_estimator(net: nn.Module, dataset: Any, cfg: Any, batch_loss: Callable[[dict[str, Any]], torch.Tensor],
                  on_progress: Callable[[int, int, float], None] | None = None) -> tuple[float, float]:
    """The training loop every estimator shares: Adam (``cfg.lr``), ``cfg.epochs`` epochs of shuffled batches
    whose order is a function of ``(cfg.seed, epoch)`` (:func:`_epoch_seed`); ``batch_loss(batch)`` computes
    one mini-batch's loss. With ``cfg.work_dir`` the state is saved every ``cfg.checkpoint_every`` epochs and
    after the last, and ``cfg.resume`` continues from it (call :func:`open_work_dir` first).

    A last batch of a single sample is dropped (BatchNorm needs two). ``on_progress(epoch, epochs, loss)`` is
    called after each epoch run here (1-based), after its state was saved when it was due; an exception from it
    stops the run (resumable).

    Returns:
        ``(mean loss of the last epoch, seconds of training, summed over the interrupted runs)``.
    """
    from neuralannot_cli.train.checkpoint import load_train_state, save_train_state

    gen = torch.Generator()
    # BatchNorm cannot normalise a batch of one sample in training mode (the i2l depth head always, the
    # regressor's pooled features at small crops): a last batch of one is dropped (another sample each epoch)
    num_items = len(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                                         num_workers=cfg.workers,
                                         drop_last=num_items > cfg.batch_size and num_items % cfg.batch_size == 1)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    work_dir, step = cfg.work_dir, _state_step(cfg)
    start, last, seconds_before = 0, float("nan"), 0.0
    if work_dir is not None and cfg.resume:
        js = load_train_state(work_dir, step, model=net, optimizer=opt, scheduler=None, device=cfg.device)
        if js is not None:
            start = int(js["epoch"]) + 1
            last = float(js["extra"].get("loss", float("nan")))
            seconds_before = float(js["extra"].get("seconds", 0.0))
    t0 = time.perf_counter()
    net.train()
    for epoch in range(start, cfg.epochs):
        gen.manual_seed(_epoch_seed(cfg.seed, epoch))  # the sampler's permutation and the workers' base seed
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        total, count = 0.0, 0
        for batch in loader:
            loss = batch_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = len(batch["index"])
            total += float(loss.detach()) * n
            count += n
        last = total / max(count, 1)
        if work_dir is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or epoch == cfg.epochs - 1):
            save_train_state(work_dir, step, epoch=epoch, model=net, optimizer=opt, scheduler=None,
                             extra={"loss": last, "seconds": seconds_before + time.perf_counter() - t0})
        if on_progress is not None:
            on_progress(epoch + 1, cfg.epochs, last)
    return last, seconds_before + time.perf_counter() - t0


@torch.no_grad()
def test_estimator(net: ParamRegressor, test_dataset: str | os.PathLike, *, kind: str = "auto",
                   hidden_gt: str | os.PathLike | None = None, model_dir: str | os.PathLike | None = None,
                   input_size: int = 128, batch_size: int = 32, device: torch.device | str = "cpu",
                   train_images: Collection[str] = ()) -> dict[str, float]:
    """MPJPE / PA-MPJPE (+ MPVPE / PA-MPVPE with hidden GT, + AUC for hands) of ``net`` on a set with GT 3D.

    ``train_images``: image paths the estimator was trained on (counted in ``num_test_in_train``)."""
    from neuralannot_cli.evaluate.direct import BodyModels, load_ground_truth, load_samples, mesh_root

    part = net.part
    _, gts = load_ground_truth(test_dataset, kind, part=part,  # type: ignore[arg-type]
                               hidden_gt=hidden_gt, model_dir=model_dir, device=device)
    _, samples = load_samples(test_dataset, kind, part=part, gt_3d=False)  # type: ignore[arg-type]
    keys = sorted(k for k in samples if gts[k].joints_3d_cam_mm is not None
                  and str(gts[k].hand_side or "right") == "right")
    if not keys:
        raise ValueError(f"{test_dataset}: no test sample with GT 3D joints")
    models = BodyModels(model_dir, device)
    mt = "smplx" if part == "body" else "mano"
    body = models.get(mt, "right")
    net.eval().to(device)
    ds = _with_index([samples[k] for k in keys], input_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    js = gts[keys[0]].joint_set
    nj = gts[keys[0]].num_joints
    pj, pv, pr = [], [], []
    for batch in loader:
        rot, betas = net(batch["image"].to(device))
        out = _forward_rotmats(body, rot, betas, part)
        pj.append(body.joints_in(out, js)[:, :nj].to("cpu", torch.float64) * 1000.0)
        pv.append(out.vertices.to("cpu", torch.float64) * 1000.0)
        pr.append(mesh_root(body, out.vertices.to("cpu", torch.float64)) * 1000.0)
    pred_j, pred_v, pred_r = torch.cat(pj), torch.cat(pv), torch.cat(pr)
    gt_j = torch.tensor(np.stack([gts[k].joints_3d_cam_mm for k in keys]))
    return score_predictions(pred_j, pred_v, pred_r, gt_j, keys, gts, part, body, train_images)


def score_predictions(pred_j: torch.Tensor, pred_v: torch.Tensor, pred_r: torch.Tensor, gt_j: torch.Tensor,
                      keys: list, gts: dict, part: str, body: Any, train_images: Collection[str] = ()
                      ) -> dict[str, float]:
    """The test metrics of every estimator (same code path, so pseudo-GT sources compare fairly).

    Args:
        pred_j: ``(N, J, 3)`` predicted joints of the test set's joint set (mm, camera frame); pred_v
            ``(N, V, 3)`` vertices (mm); pred_r ``(N, 3)`` :func:`~neuralannot_cli.evaluate.direct.mesh_root`
            of the predicted mesh (mm).
        gt_j: ``(N, J, 3)`` GT joints (mm).
        keys, gts: the test keys and their ground truth (``evaluate.direct.load_ground_truth``); the joint set,
            its root and metric joints and the GT validity come from there
            (:func:`~neuralannot_cli.evaluate.direct.joint_errors_mm`).
        part: ``'body'`` or ``'hand'`` (hands also get the FreiHAND PCK AUC); body: the body model.
        train_images: image paths of the training samples.

    Returns:
        ``num_test``, ``num_test_in_train``, ``mpjpe_mm``, ``pa_mpjpe_mm``, and where the hidden GT has
        parameters ``mpvpe_mm`` / ``pa_mpvpe_mm`` (else NaN), ``pck_auc_pa`` for hands (else NaN), and for
        hands with GT meshes FreiHAND's ``f_score_5mm`` / ``f_score_15mm`` (else NaN), and on MPI-INF-3DHP
        (:data:`~neuralannot_cli.evaluate.direct.PCK3D_JOINT_SETS`) ``pck3d_150mm`` / ``auc3d_0_150mm`` (else NaN).
    """
    from neuralannot_cli.evaluate.direct import (PCK3D_JOINT_SETS, _gt_params, _nanmean, forward_params,
                                                 joint_errors_mm)

    mt = "smplx" if part == "body" else "mano"
    valid = torch.tensor(np.stack([gts[k].valid_3d() for k in keys]))
    mp, pa, w, _ = joint_errors_mm(pred_j, gt_j.to(pred_j.dtype), gts[keys[0]].joint_set, valid)
    seen = {str(p) for p in train_images}
    res = {"num_test": float(len(keys)),
           "num_test_in_train": float(sum(str(gts[k].image_path) in seen for k in keys)),
           "mpjpe_mm": _nanmean(M.masked_mean(mp, w).numpy()),
           "pa_mpjpe_mm": _nanmean(M.masked_mean(pa, w).numpy()),
           "mpvpe_mm": float("nan"), "pa_mpvpe_mm": float("nan"), "pck_auc_pa": float("nan"),
           "f_score_5mm": float("nan"), "f_score_15mm": float("nan"),
           "pck3d_150mm": float("nan"), "auc3d_0_150mm": float("nan")}
    if gts[keys[0]].joint_set in PCK3D_JOINT_SETS:
        res["pck3d_150mm"], res["auc3d_0_150mm"] = M.pck_3d(mp, w)[:2]
    if part == "hand":
        res["pck_auc_pa"] = M.pck_auc(pa, valid=w)[0]
    idxm = [i for i, k in enumerate(keys) if gts[k].params_cam is not None and gts[k].model_type == mt]
    if idxm:
        gp = [_gt_params(gts[keys[i]].params_cam, body, f"hidden GT[{keys[i]}]") for i in idxm]  # type: ignore[arg-type]
        gv, _, groot = forward_params(body, gp, None)
        gv_t, groot_t = torch.tensor(gv * 1000.0), torch.tensor(groot * 1000.0)
        res["mpvpe_mm"] = float(M.mpvpe(pred_v[idxm], gv_t, pred_r[idxm], groot_t).mean())
        res["pa_mpvpe_mm"] = float(M.pa_mpvpe(pred_v[idxm], gv_t).mean())
        if part == "hand":  # FreiHAND's mesh F-scores, on the Procrustes-aligned mesh
            aligned = M.procrustes_align(pred_v[idxm], gv_t)
            res["f_score_5mm"] = float(M.f_score(aligned, gv_t, M.FREIHAND_F_SCORE_MM[0]).mean())
            res["f_score_15mm"] = float(M.f_score(aligned, gv_t, M.FREIHAND_F_SCORE_MM[1]).mean())
    return res


def run_indirect(config: IndirectConfig, on_progress: Callable[[int, int, float], None] | None = None
                 ) -> IndirectResult:
    """Train the configured estimator on the pseudo-GT and test it."""
    cfg = config.checked()
    threads = torch.get_num_threads()
    try:
        if cfg.estimator == "i2l":
            from neuralannot_cli.evaluate.i2l import test_i2l, train_i2l

            est, info = train_i2l(cfg, on_progress)
            res = test_i2l(est, cfg.test_dataset, kind=cfg.test_kind, hidden_gt=cfg.test_gt,
                           model_dir=cfg.model_dir, device=cfg.device, train_images=info["train_images"])
        else:
            net, info = train_regressor(cfg, on_progress)
            res = test_estimator(net, cfg.test_dataset, kind=cfg.test_kind, hidden_gt=cfg.test_gt,
                                 model_dir=cfg.model_dir, input_size=cfg.input_size, device=cfg.device,
                                 train_images=info["train_images"])
    finally:
        torch.set_num_threads(threads)
    return IndirectResult(estimator=cfg.estimator, part=info["part"], num_train=info["num_train"],
                          num_skipped_train=info["num_skipped"], num_test=int(res["num_test"]),
                          train_seconds=round(info["seconds"], 3), final_train_loss=info["final_loss"],
                          mpjpe_mm=res["mpjpe_mm"], pa_mpjpe_mm=res["pa_mpjpe_mm"], mpvpe_mm=res["mpvpe_mm"],
                          pa_mpvpe_mm=res["pa_mpvpe_mm"], pck_auc_pa=res["pck_auc_pa"],
                          num_test_in_train=int(res["num_test_in_train"]), f_score_5mm=res["f_score_5mm"],
                          f_score_15mm=res["f_score_15mm"], pck3d_150mm=res["pck3d_150mm"],
                          auc3d_0_150mm=res["auc3d_0_150mm"])
