"""Level-batched forward kinematics equals smplx's joint-by-joint ``batch_rigid_transform`` (float64, values and
gradients) on the SMPL-X and MANO trees and on a tree whose joints are not in topological order."""

from __future__ import annotations

import pytest
import torch
from smplx.lbs import batch_rigid_transform

from neuralannot_cli.body.kinematics import kinematic_levels, rigid_transforms
from neuralannot_cli.rotation import rotvec_to_rotmat

SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15, 20, 25, 26,
                 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21,
                 52, 53]
MANO_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


def _inputs(num_joints: int, batch: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rotvecs = torch.randn(batch, num_joints, 3, generator=g, dtype=torch.float64)
    joints = torch.randn(batch, num_joints, 3, generator=g, dtype=torch.float64) * 0.3
    return rotvec_to_rotmat(rotvecs).requires_grad_(), joints.requires_grad_()


@pytest.mark.parametrize("parents", [SMPLX_PARENTS, MANO_PARENTS], ids=["smplx", "mano"])
def test_matches_smplx_batch_rigid_transform(parents):
    rotmats, joints = _inputs(len(parents))
    ref_j, ref_t = batch_rigid_transform(rotmats, joints, torch.tensor(parents), dtype=torch.float64)
    tree = kinematic_levels(parents)
    got_j, got_t = rigid_transforms(rotmats, joints, tree)
    torch.testing.assert_close(got_j, ref_j, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_t, ref_t, rtol=0, atol=1e-12)
    w_j, w_t = torch.randn_like(ref_j), torch.randn_like(ref_t)
    ref_g = torch.autograd.grad((ref_j * w_j).sum() + (ref_t * w_t).sum(), (rotmats, joints))
    got_g = torch.autograd.grad((got_j * w_j).sum() + (got_t * w_t).sum(), (rotmats, joints))
    for a, b in zip(got_g, ref_g):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)
    # pelvis, spine1-3, collar, shoulder, elbow, wrist, three finger joints; MANO: wrist + three
    assert len(tree.levels) == (11 if parents is SMPLX_PARENTS else 4)


def test_any_joint_order_and_hand_computed_chain():
    # 0 <- 2 <- 1 (joint 1's parent comes after it): a 90-degree turn about z at the root, none below
    parents = [-1, 2, 0]
    rot = torch.eye(3, dtype=torch.float64).repeat(1, 3, 1, 1)
    rot[0, 0] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    joints = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    posed, rel = rigid_transforms(rot, joints, kinematic_levels(parents))
    torch.testing.assert_close(posed, torch.tensor([[[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.0]]],
                                                   dtype=torch.float64), rtol=0, atol=1e-15)
    # the relative transform maps each rest joint onto its posed position
    rest_h = torch.cat([joints, torch.ones(1, 3, 1, dtype=torch.float64)], dim=-1)
    torch.testing.assert_close((rel @ rest_h[..., None])[..., :3, 0], posed, rtol=0, atol=1e-15)


@pytest.mark.parametrize("parents", [[0, 0], [-1, -1], [-1, 2, 1], [-1, 5]])
def test_rejects_non_trees(parents):
    with pytest.raises(ValueError, match="parents"):
        kinematic_levels(parents)
