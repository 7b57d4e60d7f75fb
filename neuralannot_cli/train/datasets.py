"""Dataset assembly for Algorithm 1: loaders -> per-part samples -> cropped datasets.

Joint sets per part (see ``notes``: the issue's contracts):

- body: aux ``h36m_17`` (Human3.6M; 3DPW, whose GT joints come from its SMPL meshes via the SMPL Human3.6M
  regressor) / ``mpi3dhp_17`` (MPI-INF-3DHP), root = pelvis; target = the first 23
  joints of ``coco_wholebody_133`` (17 body + 6 feet), :data:`BODY_TARGET_JOINTS`.
- hand: aux ``hand_21`` (FreiHAND, InterHand2.6M right hands; InterHand left hands are mirrored), root =
  wrist; target = COCO-WholeBody hands as ``hand_21`` (the COCO-WholeBody hand order is the ``hand_21``
  order). LEFT hands are **mirrored into right hands** in crop space (:class:`MirroredCrops`): the crop is
  flipped about its vertical centre line ``u -> S - 1 - u``, the crop affine is composed with that mirror,
  3D joints get ``x -> -x``; the item carries ``mirrored = True`` so predictions can be mapped back.

Items of :class:`~neuralannot_cli.data.pipeline.CroppedSampleDataset` gain ``mirrored`` (bool) and, for
stage 2, :class:`ThetaStarDataset` adds the stage-1 pseudo-GT of the item (``root_rotvec_star``,
``pose_rotvecs_star``, ``betas_star``). Horizontal-flip augmentation is never used in training: it would
change the meaning of θ* and mix left and right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, default_collate

from neuralannot_cli.data.pipeline import AugmentConfig, CroppedSampleDataset, invert_affine
from neuralannot_cli.data.record import Sample

__all__ = [
    "BODY_TARGET_JOINTS",
    "AUX_JOINT_SET",
    "ROOT_JOINT",
    "ROOT_FRAME_JOINTS",
    "CropStore",
    "ImageCache",
    "MemoizedCrops",
    "TARGET_JOINT_SET",
    "part_target_samples",
    "part_aux_samples",
    "make_dataset",
    "MirroredCrops",
    "ThetaStarDataset",
    "collate_stage2",
]

BODY_TARGET_JOINTS = 23
"""COCO-WholeBody body (17) + feet (6): the first 23 joints of ``coco_wholebody_133``."""
AUX_JOINT_SET = {"h36m": "h36m_17", "mpi3dhp": "mpi3dhp_17", "3dpw": "h36m_17", "freihand": "hand_21",
                 "interhand": "hand_21"}
ROOT_JOINT = {"h36m_17": 0, "mpi3dhp_17": 14, "hand_21": 0}
#: Near-rigid joints whose frame gives stage 1's root rotation in closed form (by name, any joint-set order):
#: the pelvis, both hips, the torso (spine) and the neck (thorax); the wrist and the four finger MCPs (MANO's
#: palm is rigid). Shoulders are left out: the collar joints move them.
ROOT_FRAME_JOINTS = {"body": ("pelvis", "right_hip", "left_hip", "torso", "neck"),
                     "hand": ("wrist", "index1", "middle1", "ring1", "pinky1")}
"""Index of the root (pelvis / wrist) used for root alignment, per aux joint set."""
TARGET_JOINT_SET = {"body": "coco_wholebody_133", "hand": "hand_21"}
"""Body-model joint set whose joints the target keypoints are (body: its first 23 joints)."""
_HAND_SLICES = {"left": slice(91, 112), "right": slice(112, 133)}


def part_target_samples(samples: Sequence[Sample], part: str) -> tuple[list[Sample], list[bool]]:
    """COCO-WholeBody samples -> the target samples of ``part`` and their ``mirrored`` flags.

    body: keypoints restricted to the first 23 joints (one sample per person; persons without a labelled
    body/feet keypoint are dropped). hand: one sample per valid hand (``*hand_valid`` extras, or any
    labelled hand keypoint), ``joint_set = 'hand_21'``, box = the hand box; left hands flagged mirrored.
    """
    out: list[Sample] = []
    mirrored: list[bool] = []
    for s in samples:
        kp = np.asarray(s.keypoints_2d_px, dtype=np.float32)
        conf = np.asarray(s.keypoints_conf, dtype=np.float32)
        if kp.shape[0] != 133:
            raise ValueError(f"{s.image_path}: target samples must be coco_wholebody_133, got {s.joint_set} "
                             f"with {kp.shape[0]} joints")
        if part == "body":
            if not (conf[:BODY_TARGET_JOINTS] > 0).any():
                continue
            out.append(dataclasses.replace(s, keypoints_2d_px=kp[:BODY_TARGET_JOINTS],
                                           keypoints_conf=conf[:BODY_TARGET_JOINTS]))
            mirrored.append(False)
            continue
        for side in ("right", "left"):
            sl = _HAND_SLICES[side]
            valid = s.extras.get(f"{side}hand_valid")
            box = s.extras.get(f"{side}hand_box_xywh_px")
            hconf = conf[sl]
            if valid is False or box is None or not (hconf > 0).any():
                continue
            box = np.asarray(box, dtype=np.float32)
            if box.shape != (4,) or box[2] <= 0 or box[3] <= 0:
                continue
            out.append(dataclasses.replace(
                s, keypoints_2d_px=kp[sl], keypoints_conf=hconf, joint_set="hand_21", bbox_xywh_px=box,
                ids={**s.ids, "hand_side": side}, extras={**s.extras, "hand_side": side}))
            mirrored.append(side == "left")
    return out, mirrored


def part_aux_samples(samples: Sequence[Sample]) -> tuple[list[Sample], list[bool]]:
    """Aux samples and their ``mirrored`` flags (InterHand left hands are mirrored into right hands)."""
    flags = [str(s.extras.get("hand_side", s.ids.get("hand_side", "right"))) == "left" for s in samples]
    return list(samples), flags


class MirroredCrops(Dataset):
    """Wrap a :class:`CroppedSampleDataset`; items whose flag is set are mirrored in crop space.

    A mirrored item is the crop of the mirrored person: ``image`` flipped left-right, crop pixels
    ``u -> S - 1 - u`` (keypoints, ``princpt_crop_px``), ``crop_affine = M @ A`` with ``M`` that mirror,
    ``joints_3d_cam_mm`` ``x -> -x`` (the virtual crop camera of the mirrored image). Joint labels are not
    permuted (only used for single hands, whose joint set has no left/right pairs). Every item gets
    ``mirrored`` (bool tensor).
    """

    def __init__(self, base: CroppedSampleDataset, mirrored: Sequence[bool]) -> None:
        if len(mirrored) != len(base):
            raise ValueError(f"mirrored: expected {len(base)} flags, got {len(mirrored)}")
        self.base = base
        self.mirrored = [bool(m) for m in mirrored]
        self.joint_set = base.joint_set

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        flag = self.mirrored[int(item["index"])]
        item["mirrored"] = torch.tensor(flag)
        if not flag:
            return item
        size = item["image"].shape[-1]
        item["image"] = torch.flip(item["image"], dims=[-1])
        kp = item["keypoints_2d_crop_px"].clone()
        kp[:, 0] = (size - 1) - kp[:, 0]
        item["keypoints_2d_crop_px"] = kp
        pp = item["princpt_crop_px"].clone()
        pp[0] = (size - 1) - pp[0]
        item["princpt_crop_px"] = pp
        mirror = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        aff = item["crop_affine"].double().numpy()
        aff3 = np.vstack([aff, [0.0, 0.0, 1.0]])
        new = (mirror @ aff3)[:2]
        item["crop_affine"] = torch.from_numpy(new.astype(np.float32))
        item["crop_affine_inv"] = torch.from_numpy(invert_affine(new).astype(np.float32))
        j3 = item["joints_3d_cam_mm"].clone()
        j3[:, 0] = -j3[:, 0]
        item["joints_3d_cam_mm"] = j3
        return item


class ImageCache:
    """``path -> (H, W, 3) BGR uint8`` like ``cv2.imread``, decoding each file once and keeping it in RAM.

    For sets that fit in memory (e.g. 4,000 synthetic 128-px images are ~200 MB) trained for many short epochs
    on a GPU, where decoding every image every epoch costs more than the training step. :meth:`preload` fills it
    in the parent process, so forked DataLoader workers share the decoded arrays (copy-on-write) instead of
    decoding their own copies. The arrays are read-only views; the dataset copies before writing.
    """

    def __init__(self) -> None:
        self._images: dict[str, np.ndarray | None] = {}

    def __call__(self, path: str) -> np.ndarray | None:
        if path not in self._images:
            img = cv2.imread(path)
            if img is not None:
                img.setflags(write=False)
            self._images[path] = img
        return self._images[path]

    def preload(self, paths: Iterable[str | Path]) -> None:
        """Decode every file of ``paths`` now (each once; missing or unreadable files are left to the
        dataset, which reports them with the sample)."""
        for path in dict.fromkeys(str(p) for p in paths):
            self(path)

    def __len__(self) -> int:
        return len(self._images)


class CropStore:
    """The finished items (crop, keypoints, camera, ...) of one list of samples at one input size, kept in RAM.

    With augmentation off a training item never changes between epochs, so recomputing it (crop warp,
    normalisation, keypoint transforms: ~0.3 ms per item on a CPU core) is wasted work; on a GPU it can cost
    more than the training step. One store serves every dataset built over the same sample list (stage 1,
    Θ*, stage 2, the per-epoch 2D error on a prefix). ``input_size**2 * 12`` bytes per item (12 KB at 32 px).
    Filled lazily, or by :meth:`MemoizedCrops.preload` in the parent so forked DataLoader workers share it.
    """

    def __init__(self, num_items: int) -> None:
        self.items: list[dict[str, Any] | None] = [None] * int(num_items)

    @property
    def num_filled(self) -> int:
        """How many items have been computed."""
        return sum(item is not None for item in self.items)


class MemoizedCrops(Dataset):
    """A deterministic dataset (augmentation off) whose items are computed once, in a :class:`CropStore`.

    Items are returned as shallow copies (callers may add keys; tensors must not be written in place, which
    the training code never does). ``set_epoch`` is accepted and ignored: the items do not depend on it.
    """

    def __init__(self, base: Dataset, store: CropStore) -> None:
        n = len(base)  # type: ignore[arg-type]
        if len(store.items) < n:
            raise ValueError(f"MemoizedCrops: the store holds {len(store.items)} items, the dataset has {n}")
        self.base = base
        self.store = store
        self.joint_set = getattr(base, "joint_set", None)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not -self._n <= index < self._n:
            raise IndexError(f"index {index} out of range for {self._n} items")
        index %= self._n
        item = self.store.items[index]
        if item is None:
            item = self.store.items[index] = self.base[index]
        return dict(item)

    def preload(self) -> None:
        """Compute every item now (in the parent process, before DataLoader workers fork)."""
        for i in range(self._n):
            self[i]


def make_dataset(
    samples: Sequence[Sample],
    mirrored: Sequence[bool],
    input_size: int,
    *,
    augment: bool,
    seed: int,
    image_loader: Callable[[str], np.ndarray | None] | None = None,
    crop_store: CropStore | None = None,
) -> MirroredCrops | MemoizedCrops:
    """:class:`CroppedSampleDataset` (no flip augmentation) wrapped in :class:`MirroredCrops`;
    ``image_loader`` defaults to ``cv2.imread`` (pass an :class:`ImageCache` to decode each image once);
    ``crop_store`` (augmentation off only) keeps the finished items (:class:`MemoizedCrops`)."""
    base = CroppedSampleDataset(
        samples, input_size, augment=augment, rng_seed=seed, flip_pairs={},
        augment_config=AugmentConfig(flip_prob=0.0), image_loader=cv2.imread if image_loader is None else image_loader,
    )
    crops = MirroredCrops(base, mirrored)
    if crop_store is None:
        return crops
    if augment:
        raise ValueError("make_dataset: crop_store needs augment=False (augmented items change every epoch)")
    return MemoizedCrops(crops, crop_store)


class ThetaStarDataset(Dataset):
    """Add the stage-1 pseudo-GT θ* of each item (looked up by the item's ``index``).

    Args:
        base: an aux dataset (items with ``index``).
        theta_star: ``{"root_rotvec": (N, 3), "pose_rotvecs": (N, K, 3), "betas": (N, 10), "index": (N,)}``
            as saved by stage 1 (``index`` = sample positions).
    """

    def __init__(self, base: Dataset, theta_star: dict[str, torch.Tensor]) -> None:
        self.base = base
        self.joint_set = getattr(base, "joint_set", None)
        idx = theta_star["index"].long()
        n = len(base)  # type: ignore[arg-type]
        pos = torch.full((n,), -1, dtype=torch.long)
        pos[idx] = torch.arange(idx.numel())
        if bool((pos < 0).any()):
            raise ValueError(f"theta_star: no pseudo-GT for sample(s) {torch.nonzero(pos < 0)[:5, 0].tolist()}")
        self.pos = pos
        self.theta = {k: v for k, v in theta_star.items() if k in ("root_rotvec", "pose_rotvecs", "betas")}

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        p = int(self.pos[int(item["index"])])
        for k, v in self.theta.items():
            item[f"{k}_star"] = v[p]
        return item


class ConcatWithEpoch(ConcatDataset):
    """``ConcatDataset`` that forwards :meth:`set_epoch` to its parts."""

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)


def collate_stage2(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate stage-2 items (with ``source``) into ``{"aux": [sub-batch per joint set], "target": batch}``.

    The aux half may mix joint sets (e.g. ``h36m_17`` and ``mpi3dhp_17``): one sub-batch per set.
    """
    aux: dict[str, list[dict[str, Any]]] = {}
    target: list[dict[str, Any]] = []
    for item in items:
        body = {k: v for k, v in item.items() if k != "source"}
        if item.get("source") == "aux":
            aux.setdefault(str(item["joint_set"]), []).append(body)
        else:
            target.append(body)
    return {
        "aux": [default_collate(group) for group in aux.values()],
        "target": default_collate(target) if target else None,
    }
