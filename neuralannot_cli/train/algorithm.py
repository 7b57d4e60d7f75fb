"""Algorithm 1 of NeuralAnnot: stage 1 per auxiliary set -> Θ* -> pose prior -> stage 2 -> annotator.

Steps (each resumable, see :mod:`.checkpoint` for the files):

1. ``stage1_<aux>`` for each auxiliary 3D set: a fresh :class:`~neuralannot_cli.nets.heads.Stage1Net`
   (image + GT 3D joints, root-relative, metres) is trained with ``L_ax`` (:func:`neuralannot_cli.losses.loss_aux`:
   body-model joints in the aux joint set -- ``h36m_17`` via the H36M regressor, ``mpi3dhp_17``, MANO
   ``hand_21`` -- root-aligned L1 + ``lambda_ax Σθ²``), Adam. Then Θ* = its predictions on ALL images of the
   set (eval mode, no augmentation), saved as ``theta_star_<aux>.safetensors`` with the sample indices.
   The stage-1 network never sees a camera, so Θ*'s translation comes from the GT: the aux sets have
   camera-frame 3D joints, and ``transl_cam_m = root_gt - root_pred(transl=0)`` puts the predicted root
   joint (pelvis / wrist) exactly on the GT root; the root rotation is already in the camera frame because
   the GT joints fed to and compared with the network are.
2. ``prior``: ``learned`` = a VPoser trained on the union of the body Θ* poses (``train_vposer``), or for the
   hand a PCA fitted on the Θ* hand poses; ``mano`` = the MANO file's PCA; a path = the official VPoser v2
   checkpoint; ``none`` = the stage-2 network regresses 6D joint rotations directly (Table 2 ablation).
3. ``stage2``: a fresh :class:`~neuralannot_cli.nets.heads.Stage2Net` on half-aux / half-target batches
   (:class:`~neuralannot_cli.data.sampler.MixedBatchSampler`; several aux sets are concatenated, each keeping
   its joint set). ``L_tg``: 2D L1 (crop pixels / input size) of the projected body-model joints on every
   sample (aux in its own joint set; target: COCO-WholeBody body+feet 23 joints, or hand_21), ``λ_tg Σθ²``
   on target samples, and on aux samples the root-aligned 3D L1 + ``Σ|θ - θ*|``. The projection uses each
   item's crop camera (:mod:`.geometry`), so the network's camera converts exactly to the original image.
   After each epoch the target 2D error (px, original image, on up to ``eval_samples`` target samples, no
   augmentation) goes to ``metrics.jsonl`` (and once before training, as stage ``stage2_init``).
4. The annotator (``model.safetensors``, ``prior/``, ``config.json``) is written by rank 0.

Learning-rate schedule: ``lr * lr_decay_factor ** (number of lr_decay_epochs <= epoch)`` set at the start of
each epoch of a stage (a step decay with no scheduler object to persist). Non-finite losses: the step is
skipped (all ranks agree via an all-reduce), a warning is printed and ``skipped_steps`` is counted in the
metrics; weights are never updated from a non-finite gradient either.

Each epoch's record in ``metrics.jsonl`` also says where its time went: ``seconds`` (the whole epoch),
``loader_seconds`` (blocked on the DataLoader: on a GPU, time the device waited for data) and, in stage 2,
``eval_seconds`` (the target 2D error above).
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from neuralannot_cli.train.checkpoint import (
    Progress,
    atomic_save_tensors,
    atomic_write_json,
    load_tensors,
    load_train_state,
    save_train_state,
)
from neuralannot_cli.train.config import RESUME_MUTABLE_FIELDS, TrainConfig, config_to_dict
from neuralannot_cli.train.cuda_graphs import LossRunner
from neuralannot_cli.train.datasets import (
    AUX_JOINT_SET,
    ROOT_FRAME_JOINTS,
    ROOT_JOINT,
    ConcatWithEpoch,
    CropStore,
    ImageCache,
    MemoizedCrops,
    ThetaStarDataset,
    collate_stage2,
    make_dataset,
    part_aux_samples,
    part_target_samples,
)
from neuralannot_cli.train.distributed import DistContext, cleanup_distributed, setup_distributed, unwrap, wrap_ddp
from neuralannot_cli.evaluate.metrics import procrustes_align
from neuralannot_cli.train.geometry import body_forward
from neuralannot_cli.train.inference import annotator_config, predict_with
from neuralannot_cli.train.steps import (STAGE1_PARTS, STAGE2_PARTS, Stage1Loss, Stage2Loss, stage1_inputs, valid_3d,
                                         stage2_inputs)

__all__ = ["train", "StopTraining", "TrainResult", "EpochHook"]

EpochHook = Callable[[str, int], None]
"""``hook(step, epoch)`` called after each completed epoch (saved when ``checkpoint_every`` says so); raise to
stop (tests)."""


class StopTraining(Exception):
    """Raised by an epoch hook to stop a run (it can be resumed)."""


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    metrics: list[dict[str, Any]]


# ----------------------------------------------------------------------------------------------- helpers


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _lr_at(config: TrainConfig, epoch: int) -> float:
    return config.lr * config.lr_decay_factor ** sum(1 for e in config.lr_decay_epochs if e <= epoch)


def _loss_weights(config: TrainConfig):
    from neuralannot_cli.losses import LossWeights

    given = {k: getattr(config, k) for k in ("lambda_ax", "lambda_tg", "w_2d", "w_3d", "w_param", "w_root",
                                                 "w_shape")}
    return LossWeights.for_part(config.part, **{k: float(v) for k, v in given.items() if v is not None})


class _Logger:
    """metrics.jsonl (rank 0) + a rich progress bar with live losses (only on a terminal)."""

    def __init__(self, out_dir: Path, ctx: DistContext, enabled: bool) -> None:
        self.path = out_dir / "metrics.jsonl"
        self.ctx = ctx
        self.enabled = enabled and ctx.is_main and sys.stderr.isatty()
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if not self.ctx.is_main:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if not self.enabled:
            return
        from rich.console import Console

        Console(stderr=True).print(
            ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))

    def progress(self, description: str, total: int):
        if not self.enabled:
            return _NoProgress()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     TextColumn("{task.fields[losses]}"), transient=True)
        return _RichProgress(p, description, total)


class _NoProgress:
    active = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, losses: dict[str, float]) -> None:
        pass


class _RichProgress(_NoProgress):
    active = True

    def __init__(self, progress, description: str, total: int) -> None:
        self.p = progress
        self.description = description
        self.total = total

    def __enter__(self):
        self.p.__enter__()
        self.task = self.p.add_task(self.description, total=self.total, losses="")
        return self

    def __exit__(self, *exc):
        return self.p.__exit__(*exc)

    def update(self, losses: dict[str, float]) -> None:
        self.p.update(self.task, advance=1, losses=" ".join(f"{k}={v:.4f}" for k, v in losses.items()))


def _optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ctx: DistContext) -> bool:
    """Backward + step unless the loss (on any rank) or a gradient is non-finite; returns True if stepped.

    The backward pass always runs (DDP needs every rank in its all-reduce; a non-finite loss on one rank makes
    the averaged gradients non-finite on all of them); the finiteness check is one fused max-abs over all
    gradients (``get_total_norm(..., inf)``: inf or NaN iff some gradient element is), one device-side flag
    and one host sync per step (per-parameter checks cost ~4 kernels per tensor, ~250 per ResNet-18 step).
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    finite = torch.isfinite(loss.detach())
    if grads:
        finite = finite & torch.isfinite(torch.nn.utils.get_total_norm(grads, norm_type=math.inf, foreach=True))
    bad = (~finite).float().reshape(1)
    if ctx.enabled:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if bad.item() > 0:
        optimizer.zero_grad(set_to_none=True)
        return False
    optimizer.step()
    return True


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _step_seed(config: TrainConfig, step: str) -> int:
    return (config.seed * 1000003 + sum((i + 1) * ord(c) for i, c in enumerate(step))) % (2**31)


# -------------------------------------------------------------------------------------------- the engine


class _Run:
    def __init__(self, config: TrainConfig, *, resume: bool, hook: EpochHook | None) -> None:
        from neuralannot_cli.body import load_body_model
        from neuralannot_cli.data.loaders import load_dataset

        self.config = config
        self.hook = hook
        self.ctx = setup_distributed(config.device)
        self.device = self.ctx.device
        self.out = Path(config.out_dir)
        self.weights = _loss_weights(config)
        self.use_cuda_graphs = config.cuda_graphs and self.device.type == "cuda" and not self.ctx.enabled
        if config.cuda_graphs and self.ctx.enabled:
            warnings.warn("cuda_graphs: not used under DDP (torchrun); training runs eagerly", stacklevel=2)
        # A DataLoader's pin-memory thread allocates pinned host memory while it prefetches; during a graph
        # capture (global mode, which make_graphed_callables uses) that call fails and poisons the thread, which
        # then kills the run at the next batch. With graphs, batches are copied from pageable memory instead.
        self.pin_memory = self.device.type == "cuda" and not self.use_cuda_graphs
        self.model_type = "smplx" if config.part == "body" else "mano"
        self.body_model = load_body_model(self.model_type, model_dir=config.model_dir, device=self.device)
        for p in self.body_model.parameters():
            p.requires_grad_(False)
        self.log = _Logger(self.out, self.ctx, config.progress)
        self.image_loader = ImageCache() if config.cache_images else None
        self.crop_stores: dict[str, CropStore] = {}
        self.aux_samples = {}
        for kind, root in config.aux:
            options = config.options_for(kind)
            if kind == "3dpw":
                options.setdefault("split", "train")
            samples = load_dataset(kind, root, **options)
            if config.max_samples:
                samples = samples[: config.max_samples]
            if not samples:
                raise ValueError(f"{root}: aux set {kind} has no samples")
            if kind == "3dpw":  # GT 3D joints (h36m_17) from the GT SMPL meshes
                from neuralannot_cli.data.pw3d_joints import with_gt_joints

                samples = with_gt_joints(samples, model_dir=config.model_dir)
            if not any(sample.joints_3d_cam_mm is not None for sample in samples):
                # e.g. FreiHAND's evaluation split without evaluation_xyz.json: stage 1 would train on the
                # regulariser alone and Θ* would be measured against (and placed at) an all-zero skeleton
                raise ValueError(f"{root}: aux set {kind}: joints_3d_cam_mm: no sample has 3D joints (an auxiliary "
                                 "set needs 3D joints; use a split or files that provide them)")
            self.aux_samples[kind] = part_aux_samples(samples)
        tkind, troot = config.target[0]
        tsamples = load_dataset(tkind, troot, **config.options_for(tkind))
        tsamples, tmirror = part_target_samples(tsamples, config.part)
        if config.max_samples:
            tsamples, tmirror = tsamples[: config.max_samples], tmirror[: config.max_samples]
        if not tsamples:
            raise ValueError(f"{troot}: target set {tkind} has no labelled {config.part} samples")
        self.target_samples = (tsamples, tmirror)
        if self.image_loader is not None:  # decoded in this process: forked DataLoader workers share them
            aux_paths = [sample.image_path for samples, _ in self.aux_samples.values() for sample in samples]
            self.image_loader.preload(aux_paths + [sample.image_path for sample in tsamples])
        self.progress_file = Progress(self.out)
        cfg_dict = config_to_dict(config)
        if self.progress_file.exists:
            if not resume:
                raise ValueError(f"{self.out}: holds a training run already (state/progress.json); pass --resume "
                                 "to continue it or choose another --out")
            old = self.progress_file.data.get("config") or {}
            diff = sorted(k for k in cfg_dict if k not in RESUME_MUTABLE_FIELDS and old.get(k) != cfg_dict[k])
            if diff:
                raise ValueError(f"{self.progress_file.path}: config: --resume needs the same options as the "
                                 f"interrupted run; differing: {diff}")
        self.ctx.barrier()
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not self.progress_file.exists:
                self.progress_file.set_config(cfg_dict)
        self.ctx.barrier()

    def _crop_store(self, key: str) -> CropStore | None:
        """The shared store of finished items of ``key`` (``aux_<kind>`` / ``target``), when they never change:
        ``cache_images`` with augmentation off (a prefix of the target set, the per-epoch 2D error's, shares the
        target's store: same items at the same indices)."""
        if not (self.config.cache_images and not self.config.augment):
            return None
        if key not in self.crop_stores:
            n = len(self.target_samples[0]) if key == "target" else len(self.aux_samples[key[4:]][0])
            self.crop_stores[key] = CropStore(n)
        return self.crop_stores[key]

    def _preload(self, dataset) -> None:
        """Fill a :class:`MemoizedCrops` in this process before DataLoader workers fork (they then share it)."""
        if isinstance(dataset, MemoizedCrops) and self.config.workers > 0:
            dataset.preload()

    # ------------------------------------------------------------------------------------------- epochs

    def _epochs(self, step: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, num_epochs: int,
                run_epoch: Callable[[int], dict[str, Any]]) -> None:
        """Run epochs ``start..num_epochs-1`` with lr decay, state saving every ``checkpoint_every`` epochs (and
        after the last) and the hook; each epoch's record gets its wall time (``seconds``) and, when the state
        was saved after it, the save's time (``save_seconds``, outside ``seconds``)."""
        start = 0
        js = load_train_state(self.out, step, model=unwrap(model), optimizer=optimizer, scheduler=None,
                              device=self.device)
        if js is not None:
            start = int(js["epoch"]) + 1
        every = self.config.checkpoint_every
        pending: list[dict[str, Any]] = []  # records of epochs not yet covered by a saved state
        for epoch in range(start, num_epochs):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(self.config, epoch)
            t0 = time.perf_counter()
            record = run_epoch(epoch)
            pending.append({"stage": step, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"], **record,
                            "seconds": round(time.perf_counter() - t0, 3)})
            if (epoch + 1) % every == 0 or epoch == num_epochs - 1:
                self.ctx.barrier()
                if self.ctx.is_main:
                    t_save = time.perf_counter()
                    save_train_state(self.out, step, epoch=epoch, model=unwrap(model), optimizer=optimizer,
                                     scheduler=None)
                    pending[-1]["save_seconds"] = round(time.perf_counter() - t_save, 3)  # not in its "seconds"
                for rec in pending:  # logged with their checkpoint: a resume never repeats a line
                    self.log.write(rec)
                pending.clear()
                self.ctx.barrier()
            if self.hook is not None:
                self.hook(step, epoch)

    def _train_loop(self, step: str, epoch: int, loader: Iterable, model, optimizer, loss_fn,
                    runner: LossRunner) -> dict[str, Any]:
        model.train()
        sums: dict[str, torch.Tensor] = {}  # on the device: read once per epoch (no per-step host sync)
        n = skipped = 0
        graph_calls = runner.graph_calls
        loader_s = 0.0  # time blocked on the DataLoader (a device waits for its data when this grows)
        with self.log.progress(f"{step} epoch {epoch}", len(loader)) as bar:  # type: ignore[arg-type]
            batches = iter(loader)
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                loader_s += time.perf_counter() - t0
                if batch is None:
                    break
                loss, parts = loss_fn(model, batch)
                if _optimizer_step(loss, model, optimizer, self.ctx):
                    n += 1
                    for k, v in {"loss": loss.detach(), **parts}.items():
                        # a copy: a graph replay's outputs are overwritten by the next replay
                        v = v.detach().to(torch.float64, copy=True)
                        sums[k] = sums[k] + v if k in sums else v
                else:
                    skipped += 1
                    warnings.warn(f"{step} epoch {epoch}: non-finite loss or gradient, step skipped", stacklevel=2)
                if bar.active:
                    bar.update({k: float(v) / max(n, 1) for k, v in sums.items() if k in ("loss", "kp2d", "kp3d")})
        record: dict[str, Any] = {**{k: float(v) / max(n, 1) for k, v in sums.items()}, "steps": n,
                                  "skipped_steps": skipped, "loader_seconds": round(loader_s, 3)}
        if runner.enabled:
            record["cuda_graph_steps"] = runner.graph_calls - graph_calls
        return record

    # ------------------------------------------------------------------------------------------ stage 1

    def stage1(self, kind: str) -> None:
        from neuralannot_cli.nets.heads import Stage1Net

        config, step = self.config, f"stage1_{kind}"
        samples, mirrored = self.aux_samples[kind]
        joint_set, root = AUX_JOINT_SET[kind], ROOT_JOINT[AUX_JOINT_SET[kind]]
        _seed_everything(_step_seed(config, step))
        net = Stage1Net(config.part, config.backbone_depth, len(samples[0].keypoints_conf),
                        root_frame=self.root_frame(joint_set, root) if config.stage1_root_frame else None,
                        canonical_joints=config.stage1_root_frame and config.stage1_canonical_joints)
        self._load_backbone(net)
        net.to(self.device)
        if not self.progress_file.is_done(step):
            dataset = make_dataset(samples, mirrored, config.input_size, augment=config.augment, seed=config.seed,
                                   image_loader=self.image_loader, crop_store=self._crop_store(f"aux_{kind}"))
            self._preload(dataset)
            batch = min(config.batch_size, len(dataset))
            sampler = DistributedSampler(dataset, num_replicas=self.ctx.world_size, rank=self.ctx.rank, shuffle=True,
                                         seed=_step_seed(config, step), drop_last=True)
            loader = DataLoader(dataset, batch_size=max(batch // self.ctx.world_size, 2) if self.ctx.enabled else batch,
                                sampler=sampler, num_workers=config.workers, drop_last=True,
                                pin_memory=self.pin_memory, persistent_workers=config.workers > 0)
            model = wrap_ddp(net, self.ctx)
            optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)

            runner = LossRunner(self.use_cuda_graphs)

            def loss_fn(model, batch):
                inputs = stage1_inputs(batch, self.device, net=net, joint_set=joint_set)
                total, parts = runner(joint_set, lambda: Stage1Loss(model, self.body_model, config.part, joint_set,
                                                                     self.weights), inputs)
                return total, dict(zip(STAGE1_PARTS, parts.unbind()))

            def run_epoch(epoch: int) -> dict[str, Any]:
                sampler.set_epoch(epoch)
                dataset.set_epoch(epoch)
                return self._train_loop(step, epoch, loader, model, optimizer, loss_fn, runner)

            self._epochs(step, model, optimizer, config.stage1_epochs, run_epoch)
            if self.ctx.is_main:
                atomic_save_tensors(unwrap(model).state_dict(), self.out / f"stage1_{kind}.safetensors")
                theta, record = self.theta_star(net, kind)
                atomic_save_tensors(theta, self.out / f"theta_star_{kind}.safetensors")
                self.log.write({"stage": f"theta_star_{kind}", **record})
                self.progress_file.mark_done(step)
            self.ctx.barrier()
        self.progress_file = Progress(self.out)

    @torch.no_grad()
    def root_frame(self, joint_set: str, root: int) -> tuple[tuple[int, ...], torch.Tensor]:
        """Indices of :data:`ROOT_FRAME_JOINTS` in ``joint_set`` and their rest-pose (zero pose, mean shape)
        positions relative to the root joint, model frame, metres (on the CPU)."""
        from neuralannot_cli.body.joint_sets import get_joint_set
        from neuralannot_cli.nets.heads import part_spec

        jset, spec = get_joint_set(joint_set), part_spec(self.config.part)
        idx = tuple(jset.index(n) for n in ROOT_FRAME_JOINTS[self.config.part])
        zeros = lambda *shape: torch.zeros(*shape, device=self.device)  # noqa: E731
        rest = self.body_model.joints_in(body_forward(self.body_model, self.config.part, zeros(1, 3),
                                                      zeros(1, spec.num_pose_joints, 3), zeros(1, spec.num_betas)),
                                         joint_set)[0]
        return idx, (rest[list(idx)] - rest[root]).float().cpu()

    @torch.no_grad()
    def theta_star(self, net, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Θ* on all images of ``kind`` (eval, no augmentation) and its root-aligned / PA 3D errors (mm)."""
        config = self.config
        samples, mirrored = self.aux_samples[kind]
        joint_set, root = AUX_JOINT_SET[kind], ROOT_JOINT[AUX_JOINT_SET[kind]]
        dataset = make_dataset(samples, mirrored, config.input_size, augment=False, seed=config.seed,
                               image_loader=self.image_loader, crop_store=self._crop_store(f"aux_{kind}"))
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.workers,
                            pin_memory=self.pin_memory)
        net.eval()
        keys = ("root_rotvec", "pose_rotvecs", "betas", "transl_cam_m", "index")
        acc: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        err = {"theta_star_mpjpe_mm": [], "theta_star_pa_mpjpe_mm": [], "mean_pose_mpjpe_mm": [],
               "mean_pose_pa_mpjpe_mm": []}
        from neuralannot_cli.nets.heads import part_spec

        spec = part_spec(config.part)
        for batch in loader:
            batch = _to(batch, self.device)
            gt_m = batch["joints_3d_cam_mm"].float() / 1000.0
            gt_rel = gt_m - gt_m[:, root : root + 1]
            valid = valid_3d(batch["has_3d"], batch["keypoints_conf"], root)  # (B, J), e.g. InterHand joint_valid
            out = net(batch["image"], gt_rel, valid)
            joints = self.body_model.joints_in(
                body_forward(self.body_model, config.part, out.root_rotvec, out.pose_rotvecs, out.betas), joint_set)
            transl = gt_m[:, root] - joints[:, root]
            for k, v in (("root_rotvec", out.root_rotvec), ("pose_rotvecs", out.pose_rotvecs), ("betas", out.betas),
                         ("transl_cam_m", transl), ("index", batch["index"])):
                acc[k].append(v.detach().cpu())
            rel = joints - joints[:, root : root + 1]
            vmean = lambda e: (e * valid).sum(-1) / valid.sum(-1)  # noqa: E731  (NaN for a sample without 3D)
            err["theta_star_mpjpe_mm"].append(vmean((rel - gt_rel).norm(dim=-1)) * 1000)
            err["theta_star_pa_mpjpe_mm"].append(vmean((procrustes_align(rel, gt_rel, valid) - gt_rel).norm(dim=-1))
                                                 * 1000)
            b = gt_m.shape[0]
            mean = self.body_model.joints_in(body_forward(
                self.body_model, config.part, torch.tensor([spec.init_root_rotvec], device=self.device).expand(b, 3),
                torch.zeros(b, spec.num_pose_joints, 3, device=self.device),
                torch.zeros(b, spec.num_betas, device=self.device)), joint_set)
            mrel = mean - mean[:, root : root + 1]
            err["mean_pose_mpjpe_mm"].append(vmean((mrel - gt_rel).norm(dim=-1)) * 1000)
            err["mean_pose_pa_mpjpe_mm"].append(vmean((procrustes_align(mrel, gt_rel, valid) - gt_rel).norm(dim=-1))
                                                * 1000)
        theta = {k: torch.cat(v) for k, v in acc.items()}
        theta["index"] = theta["index"].long()
        record = {k: float(torch.cat(v).nanmean()) for k, v in err.items()}
        record["count"] = int(theta["index"].numel())
        return theta, record

    def _load_backbone(self, net) -> None:
        if self.config.backbone_weights:
            from neuralannot_cli.nets.backbone import load_backbone_weights

            load_backbone_weights(net.backbone, self.config.backbone_weights)

    # -------------------------------------------------------------------------------------------- prior

    def prior(self) -> Any:
        """Build (rank 0) / load the prior; returns it (frozen) or None for ``prior='none'``."""
        from neuralannot_cli.nets import prior as P

        config, step, prior_dir = self.config, "prior", self.out / "prior"
        if config.prior == "none":
            if self.ctx.is_main and not self.progress_file.is_done(step):
                self.progress_file.mark_done(step)
            self.ctx.barrier()
            return None
        if self.ctx.is_main and not self.progress_file.is_done(step):
            if config.prior == "mano":
                prior = P.PCAPosePrior.from_mano(self.body_model, config.prior_dim)
            elif config.prior.startswith("learned"):
                poses = torch.cat([load_tensors(self.out / f"theta_star_{k}.safetensors")["pose_rotvecs"]
                                   for k in config.aux_names])
                kind = config.prior.partition("-")[2] or ("vposer" if config.part == "body" else "pca")
                if kind == "vposer":
                    prior = P.train_vposer(poses, latent_dim=config.prior_dim, epochs=config.prior_epochs,
                                           batch_size=min(256, max(2, len(poses))), device=self.device,
                                           seed=_step_seed(config, step))
                else:
                    prior = P.PCAPosePrior.fit_pca(poses, min(config.prior_dim, poses.shape[0], 45))
            else:
                prior = P.load_vposer_checkpoint(config.prior, device=self.device)
            P.save_prior(prior, prior_dir)
            self.progress_file.mark_done(step)
        self.ctx.barrier()
        self.progress_file = Progress(self.out)
        return P.load_prior(prior_dir, device=self.device)

    # ------------------------------------------------------------------------------------------ stage 2

    def stage2(self, prior) -> None:
        from torch.utils.data import DataLoader as DL

        from neuralannot_cli.data.sampler import MixedBatchSampler, MixedDataset
        from neuralannot_cli.nets.heads import Stage2Net

        config, step, size = self.config, "stage2", self.config.input_size
        _seed_everything(_step_seed(config, step))
        net = Stage2Net(config.part, config.backbone_depth, None if prior is None else prior.code_dim)
        self._load_backbone(net)
        net.to(self.device)
        if self.progress_file.is_done(step):
            return
        aux_sets = []
        for kind in config.aux_names:
            samples, mirrored = self.aux_samples[kind]
            theta = load_tensors(self.out / f"theta_star_{kind}.safetensors")
            crops = make_dataset(samples, mirrored, size, augment=config.augment, seed=config.seed,
                                 image_loader=self.image_loader, crop_store=self._crop_store(f"aux_{kind}"))
            self._preload(crops)
            aux_sets.append(ThetaStarDataset(crops, theta))
        aux = aux_sets[0] if len(aux_sets) == 1 else ConcatWithEpoch(aux_sets)
        tsamples, tmirror = self.target_samples
        target = make_dataset(tsamples, tmirror, size, augment=config.augment, seed=config.seed + 1,
                              image_loader=self.image_loader, crop_store=self._crop_store("target"))
        self._preload(target)
        mixed = MixedDataset(aux, target)
        sampler = MixedBatchSampler(len(aux), len(target), config.batch_size, seed=_step_seed(config, step),
                                    rank=self.ctx.rank, world_size=self.ctx.world_size)
        # persistent workers: no fork per epoch (the datasets' epoch lives in shared memory, the batch sampler
        # runs in this process)
        loader = DL(mixed, batch_sampler=sampler, collate_fn=collate_stage2, num_workers=config.workers,
                    pin_memory=self.pin_memory, persistent_workers=config.workers > 0)
        eval_n = min(config.eval_samples, len(tsamples))
        eval_set = make_dataset(tsamples[:eval_n], tmirror[:eval_n], size, augment=False, seed=0,
                                image_loader=self.image_loader, crop_store=self._crop_store("target"))
        self._preload(eval_set)
        eval_loader = DL(eval_set, batch_size=config.batch_size, shuffle=False, num_workers=config.workers,
                         pin_memory=self.pin_memory, persistent_workers=config.workers > 0)
        model = wrap_ddp(net, self.ctx)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
        runner = LossRunner(self.use_cuda_graphs)
        with_root = self.weights.w_root > 0

        def loss_fn(model, batch):
            groups, inputs = stage2_inputs(batch, self.device, with_root=with_root)
            total, parts = runner(groups, lambda: Stage2Loss(model, prior, self.body_model, config.part, size,
                                                             self.weights, groups, with_root=with_root), inputs)
            return total, dict(zip(STAGE2_PARTS, parts.unbind()))

        def run_epoch(epoch: int) -> dict[str, Any]:
            sampler.set_epoch(epoch)
            aux.set_epoch(epoch)
            target.set_epoch(epoch)
            record = self._train_loop(step, epoch, loader, model, optimizer, loss_fn, runner)
            t0 = time.perf_counter()
            record.update(self.target_2d_error(unwrap(model), prior, eval_loader))
            record["eval_seconds"] = round(time.perf_counter() - t0, 3)
            return record

        if not (self.out / "state" / f"{step}.json").is_file():  # fresh start: the untrained network's error
            self.log.write({"stage": "stage2_init", **self.target_2d_error(net, prior, eval_loader)})
        self._epochs(step, model, optimizer, config.stage2_epochs, run_epoch)
        if self.ctx.is_main:
            self.save_annotator(unwrap(model), prior)
            self.progress_file.mark_done(step)
        self.ctx.barrier()

    @torch.no_grad()
    def target_2d_error(self, net, prior, loader) -> dict[str, float]:
        """2D error (px, original image) of the projected target joints on labelled keypoints: the mean over
        keypoints (``target_2d_err_px``) and the median of the per-sample means (``target_2d_err_px_median``,
        robust to a sample whose body crosses the camera plane)."""
        from neuralannot_cli.data.pipeline import transform_points

        was_training = net.training
        net.eval()
        total, count, per_sample = 0.0, 0.0, []
        for batch in loader:
            pred = predict_with(net, prior, self.body_model, self.config.part, batch, self.device)
            gt = transform_points(batch["keypoints_2d_crop_px"].to(self.device), batch["crop_affine_inv"].to(self.device))
            conf = (batch["keypoints_conf"].to(self.device) > 0).float()
            err = (pred.keypoints_2d_px - gt).norm(dim=-1)
            err = torch.where(conf > 0, err, torch.zeros_like(err))
            total += float(err.sum())
            count += float(conf.sum())
            per_sample.append(err.sum(-1) / conf.sum(-1).clamp_min(1))
        net.train(was_training)
        return {"target_2d_err_px": total / max(count, 1.0),
                "target_2d_err_px_median": float(torch.cat(per_sample).median())}

    def save_annotator(self, net, prior) -> None:
        config = self.config
        cfg = annotator_config(part=config.part, model_type=self.model_type, backbone_depth=config.backbone_depth,
                               code_dim=None if prior is None else int(prior.code_dim), input_size=config.input_size,
                               has_prior=prior is not None, train_config=config_to_dict(config))
        atomic_save_tensors(net.state_dict(), self.out / "model.safetensors")
        atomic_write_json(cfg, self.out / "config.json")


def train(config: TrainConfig, *, resume: bool = False, hook: EpochHook | None = None) -> TrainResult:
    """Run Algorithm 1 (see the module docstring); returns the output directory and this run's metrics.

    Args:
        config: the run's :class:`TrainConfig`.
        resume: continue a run in ``config.out_dir`` (completed steps are skipped; the current step restarts
            after its last completed epoch). Without it, an existing run there is an error.
        hook: called as ``hook(step, epoch)`` after each saved epoch (raise :class:`StopTraining` to stop).
    """
    run = _Run(config, resume=resume, hook=hook)
    try:
        for kind in config.aux_names:
            run.stage1(kind)
        prior = run.prior()
        run.stage2(prior)
    finally:
        cleanup_distributed(run.ctx)
    return TrainResult(run.out, run.log.records)

