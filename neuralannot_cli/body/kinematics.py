"""Forward kinematics of a kinematic tree, composed one tree depth at a time.

:func:`rigid_transforms` computes what ``smplx.lbs.batch_rigid_transform`` computes (the posed joints and the
joints' transforms relative to their rest positions, which linear blend skinning applies to the vertices),
but composes the world transforms of all joints of one tree depth in one batched matrix product instead of
one joint at a time. SMPL-X has 55 joints in 11 depths: the chain's forward dispatches ~110 operations
instead of ~510 (counted with a dispatch mode; each is a kernel launch on a GPU), and its backward shrinks
alike. smplx's loop also reads ``parents[i]`` from a tensor (a host sync per joint when the tree lives on a
GPU); the levels here are plain index tensors built once.

Pure math: no ``nn.Module``; the tree structure is a :class:`KinematicLevels` built by
:func:`kinematic_levels` from the model's ``parents`` array (``parents[0] = -1``; any order of the others).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["KinematicLevels", "kinematic_levels", "rigid_transforms"]


@dataclass(frozen=True)
class KinematicLevels:
    """A kinematic tree grouped by depth.

    Attributes:
        num_joints: ``J``.
        child_parents: ``(J - 1,)`` int64, the parents of joints ``1..J-1`` (joint 0 is the root).
        levels: per depth ``d``, the ``(n_d,)`` joint ids at that depth (depth 0 = the root alone).
        parent_pos: per depth ``d >= 1``, ``(n_d,)`` positions of their parents within ``levels[d - 1]``
            (``parent_pos[0]`` is empty).
        order_inv: ``(J,)`` position of each joint in ``torch.cat(levels)``.
    """

    num_joints: int
    child_parents: Tensor
    levels: tuple[Tensor, ...]
    parent_pos: tuple[Tensor, ...]
    order_inv: Tensor


def kinematic_levels(parents: Sequence[int] | Tensor, device: torch.device | str = "cpu") -> KinematicLevels:
    """Group the joints of the tree ``parents`` (``(J,)``; ``parents[0] == -1``, every other joint's parent a
    joint of the tree, no cycles) by depth.

    Raises:
        ValueError: not a tree rooted at joint 0.
    """
    par = [int(p) for p in (parents.tolist() if isinstance(parents, Tensor) else parents)]
    num = len(par)
    if num == 0 or par[0] != -1 or any(p == -1 for p in par[1:]):
        raise ValueError(f"parents: expected -1 for joint 0 only (the root), got {par[:8]}{'...' if num > 8 else ''}")
    if any(not 0 <= p < num for p in par[1:]):
        raise ValueError(f"parents: every non-root parent must be a joint index in [0, {num}), got {par}")
    depth = [-1] * num
    depth[0] = 0
    for j in range(1, num):  # walk up to a joint of known depth (detects cycles)
        chain, k = [], j
        while depth[k] < 0:
            chain.append(k)
            k = par[k]
            if len(chain) > num:
                raise ValueError(f"parents: joint {j} is on a cycle, not in a tree rooted at joint 0")
        for c in reversed(chain):
            depth[c] = depth[par[c]] + 1
    by_depth = [[j for j in range(num) if depth[j] == d] for d in range(max(depth) + 1)]
    pos = {j: i for level in by_depth for i, j in enumerate(level)}
    order = [j for level in by_depth for j in level]
    order_inv = [0] * num
    for i, j in enumerate(order):
        order_inv[j] = i

    def t(values: list[int]) -> Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    return KinematicLevels(num_joints=num, child_parents=t(par[1:]), levels=tuple(t(level) for level in by_depth),
                           parent_pos=(t([]),) + tuple(t([pos[par[j]] for j in level]) for level in by_depth[1:]),
                           order_inv=t(order_inv))


def rigid_transforms(rotmats: Tensor, rest_joints: Tensor, tree: KinematicLevels) -> tuple[Tensor, Tensor]:
    """Pose the joints of a kinematic tree.

    Args:
        rotmats: ``(B, J, 3, 3)`` each joint's rotation relative to its parent (the root's: global).
        rest_joints: ``(B, J, 3)`` joint positions at rest (shaped, unposed).
        tree: :func:`kinematic_levels` of the model's ``parents``, on the inputs' device.

    Returns:
        posed_joints: ``(B, J, 3)``.
        rel_transforms: ``(B, J, 4, 4)`` world transform of each joint composed with the translation by minus
            its rest position (the transform LBS blends; equal to ``smplx.lbs.batch_rigid_transform``'s).
    """
    if rotmats.dim() != 4 or rotmats.shape[1:] != (tree.num_joints, 3, 3):
        raise ValueError(f"rotmats: expected (batch, {tree.num_joints}, 3, 3), got {tuple(rotmats.shape)}")
    if rest_joints.shape != (rotmats.shape[0], tree.num_joints, 3):
        raise ValueError(f"rest_joints: expected ({rotmats.shape[0]}, {tree.num_joints}, 3), got "
                         f"{tuple(rest_joints.shape)}")
    batch = rotmats.shape[0]
    # translation of each joint relative to its parent, at rest (the root's: its own position)
    rel = torch.cat([rest_joints[:, :1], rest_joints[:, 1:] - rest_joints[:, tree.child_parents]], dim=1)
    local = torch.cat([F.pad(rotmats, [0, 0, 0, 1]), F.pad(rel[..., None], [0, 0, 0, 1], value=1.0)],
                      dim=-1)  # (B, J, 4, 4), bottom row (0, 0, 0, 1)
    world = [local[:, tree.levels[0]]]
    for level, ppos in zip(tree.levels[1:], tree.parent_pos[1:]):
        world.append(world[-1][:, ppos] @ local[:, level])
    world_t = torch.cat(world, dim=1)[:, tree.order_inv]  # (B, J, 4, 4) in joint order
    posed_joints = world_t[..., :3, 3]
    shift = (world_t[..., :3, :3] @ rest_joints[..., None])[..., 0]  # R_world @ rest position
    rel_transforms = torch.cat([torch.cat([world_t[..., :3, :3], (posed_joints - shift)[..., None]], dim=-1),
                                world_t[..., 3:, :]], dim=-2)
    return posed_joints, rel_transforms
