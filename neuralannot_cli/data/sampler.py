"""Half-auxiliary / half-target mini-batches (NeuralAnnot's training recipe) and their collate function.

NeuralAnnot trains its regressor on mini-batches made of equal halves: samples of an *auxiliary* set with 3D
ground truth (the 3D loss ``L_ax`` is computed on them) and samples of the *target* set with 2D keypoints only
(the 2D reprojection loss). This module provides:

- :class:`MixedDataset`: ``ConcatDataset([aux, target])`` (aux indices first, ``0 .. aux_len - 1``, then
  target indices ``aux_len .. aux_len + target_len - 1``) whose items carry ``"source": "aux" | "target"``.
- :class:`MixedBatchSampler`: yields index lists over that concatenation, each exactly ``batch_size / 2`` aux
  indices followed by ``batch_size / 2`` target indices.
- :func:`collate_mixed`: turns such a list of item dicts into ``{"aux": {...}, "target": {...}}``, two
  sub-batches collated separately (they may differ in joint set and in which keys hold real data).

Epoch definition (pinned by ``tests/test_pipeline.py``)
-------------------------------------------------------
- An epoch is defined by the **larger** set: with ``half = batch_size // 2`` and ``L = max(aux_len,
  target_len)`` there are ``L // half`` batches (``drop_last=True``) or ``ceil(L / half)`` (``drop_last=False``;
  the last half-batch of the larger set is completed from a fresh permutation, so batches stay half/half).
- Each set is consumed as a stream of random permutations. The larger set's indices each appear at most once
  per epoch (``drop_last=True``); the **smaller set cycles**, reshuffled at every cycle. A half-batch that
  straddles two cycles (or a smaller set shorter than ``half``) may repeat an index.
- The permutations depend only on ``(seed, epoch, set)``; call :meth:`MixedBatchSampler.set_epoch` before each
  epoch (as with ``DistributedSampler``).
- **DDP.** Every rank builds the same global batch list; rank ``r`` of ``world_size`` takes batches
  ``r, r + world_size, r + 2 * world_size, ...``. The global count is first rounded to a multiple of
  ``world_size`` (down with ``drop_last=True``, up with more batches from the same streams otherwise), so all
  ranks run the same number of steps, and the ranks' batches are disjoint (each global batch belongs to one
  rank) and together cover the global list.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Sampler, default_collate

SOURCES = ("aux", "target")
"""The two halves of a mixed batch, in index order."""

__all__ = ["SOURCES", "MixedBatchSampler", "MixedDataset", "collate_mixed"]


class MixedDataset(ConcatDataset):
    """``ConcatDataset([aux, target])`` whose dict items get a ``"source"`` key (``"aux"`` or ``"target"``).

    Attributes:
        aux_len, target_len: the two lengths (pass them to :class:`MixedBatchSampler`).
    """

    def __init__(self, aux: Dataset, target: Dataset) -> None:
        super().__init__([aux, target])
        self.aux_len = len(aux)  # type: ignore[arg-type]
        self.target_len = len(target)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        item = super().__getitem__(index)
        if not isinstance(item, dict):
            raise TypeError(f"MixedDataset: expected dict items, got {type(item).__name__} at index {index}")
        out = dict(item)
        out["source"] = "aux" if index < self.aux_len else "target"
        return out


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size / 2`` aux indices followed by ``batch_size / 2`` target indices.

    Indices address ``ConcatDataset([aux, target])`` (e.g. :class:`MixedDataset`): aux ``0 .. aux_len - 1``,
    target ``aux_len .. aux_len + target_len - 1``. See the module docstring for the epoch length, cycling of
    the smaller set and the DDP split. Use as ``DataLoader(ds, batch_sampler=sampler, collate_fn=collate_mixed)``.

    Args:
        aux_len, target_len: sizes of the two sets (``> 0``).
        batch_size: total batch size per rank, even and ``>= 2``.
        seed: base seed; the batch list depends only on ``(seed, epoch)``.
        drop_last: drop the larger set's incomplete last half-batch (and round the count down for DDP).
        rank, world_size: this process's share, ``0 <= rank < world_size``.
    """

    def __init__(
        self,
        aux_len: int,
        target_len: int,
        batch_size: int,
        *,
        seed: int,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if int(aux_len) <= 0 or int(target_len) <= 0:
            raise ValueError(f"aux_len, target_len: expected both > 0, got {aux_len}, {target_len}")
        if int(batch_size) < 2 or int(batch_size) % 2:
            raise ValueError(f"batch_size: expected an even number >= 2 (half aux, half target), got {batch_size}")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(
                f"rank, world_size: expected 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.aux_len = int(aux_len)
        self.target_len = int(target_len)
        self.batch_size = int(batch_size)
        self.half = self.batch_size // 2
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        if self.num_global_batches == 0:
            raise ValueError(
                f"batch_size={batch_size}, world_size={world_size}: the larger set has only "
                f"{max(self.aux_len, self.target_len)} samples, not enough for one batch per rank with drop_last=True"
            )

    @property
    def num_global_batches(self) -> int:
        """Batches per epoch over all ranks (a multiple of ``world_size``)."""
        larger = max(self.aux_len, self.target_len)
        if self.drop_last:
            n = larger // self.half
            return (n // self.world_size) * self.world_size
        n = math.ceil(larger / self.half)
        return math.ceil(n / self.world_size) * self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch`` (deterministic given ``seed``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_global_batches // self.world_size

    def _stream(self, length: int, count: int, set_id: int) -> np.ndarray:
        """``count`` indices from concatenated random permutations of ``range(length)``."""
        rng = np.random.default_rng([self.seed, self.epoch, set_id])
        cycles = math.ceil(count / length)
        return np.concatenate([rng.permutation(length) for _ in range(cycles)])[:count]

    def global_batches(self) -> list[list[int]]:
        """All ranks' batches of the current epoch, in global order (rank ``r`` gets ``[r::world_size]``)."""
        n = self.num_global_batches
        aux = self._stream(self.aux_len, n * self.half, 0).reshape(n, self.half)
        target = self._stream(self.target_len, n * self.half, 1).reshape(n, self.half) + self.aux_len
        return np.concatenate([aux, target], axis=1).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.global_batches()[self.rank :: self.world_size]


def collate_mixed(items: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Collate :class:`MixedDataset` items into ``{"aux": sub_batch | None, "target": sub_batch | None}``.

    Each sub-batch is ``torch.utils.data.default_collate`` of the items of that source (tensors stacked along
    a new batch dim, strings as lists), without the ``"source"`` key; a source absent from ``items`` gives
    ``None``. A training loop computes the 3D loss ``L_ax`` on ``batch["aux"]`` (masked by its ``has_3d``) and
    the 2D loss on ``batch["target"]``. Items of one source must share one joint set (one
    :class:`~neuralannot_cli.data.pipeline.CroppedSampleDataset` per source, or sets mapped to a common one).
    """
    if len(items) == 0:
        raise ValueError("collate_mixed: got an empty list of items")
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in SOURCES}
    for i, item in enumerate(items):
        source = item.get("source") if isinstance(item, dict) else None
        if source not in groups:
            raise ValueError(
                f"collate_mixed: items[{i}] has source={source!r}; expected dict items with 'source' in {SOURCES} "
                "(wrap the datasets in MixedDataset)"
            )
        groups[source].append({k: v for k, v in item.items() if k != "source"})
    out: dict[str, dict[str, Any] | None] = {}
    for name, group in groups.items():
        if not group:
            out[name] = None
            continue
        joint_sets = {g.get("joint_set") for g in group}
        if len(joint_sets) > 1:
            raise ValueError(
                f"collate_mixed: the {name} half mixes joint sets {sorted(map(str, joint_sets))}; "
                "one joint set per source is required"
            )
        out[name] = default_collate(group)
    return out

