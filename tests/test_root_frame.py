"""Stage 1's closed-form root frame: weighted Kabsch against a float64 reference, fallbacks, and the
Stage1Net root starting from the GT frame (the fix for the pelvis-yaw local minimum)."""

import math

import numpy as np
import pytest
import torch

from neuralannot_cli.nets.heads import Stage1Net
from neuralannot_cli.rotation import rotmat_geodesic_distance, rotvec_to_rotmat
from neuralannot_cli.train.geometry import frame_rotmat_from_joints


def _random_rotmats(n: int, gen: torch.Generator) -> torch.Tensor:
    q = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)


def _kabsch_np(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """float64 weighted Kabsch (independent of roma): R minimising sum w |R a + t - b|^2."""
    ca, cb = (w[:, None] * a).sum(0) / w.sum(), (w[:, None] * b).sum(0) / w.sum()
    h = ((a - ca) * w[:, None]).T @ (b - cb)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def test_frame_rotmat_matches_float64_kabsch_with_weights_and_noise():
    gen = torch.Generator().manual_seed(0)
    rest = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 0.2
    rot = _random_rotmats(16, gen)
    joints = (rot @ rest.T).transpose(1, 2) + 0.01 * torch.randn(16, 5, 3, generator=gen, dtype=torch.float64)
    weights = torch.rand(16, 5, generator=gen, dtype=torch.float64) + 0.1
    weights[:4, 4] = 0.0  # a missing joint
    got = frame_rotmat_from_joints(rest, joints, weights, torch.eye(3))
    for i in range(16):
        ref = _kabsch_np(rest.numpy(), joints[i].numpy(), weights[i].numpy())
        np.testing.assert_allclose(got[i].numpy(), ref, atol=1e-9)
    # noise-free: the exact rotation comes back
    exact = frame_rotmat_from_joints(rest, (rot @ rest.T).transpose(1, 2), torch.ones(16, 5), torch.eye(3))
    torch.testing.assert_close(exact, rot, atol=1e-9, rtol=0)


def test_frame_rotmat_falls_back_with_fewer_than_three_joints_or_nan():
    rest = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [-0.1, 0.05, 0], [0, 0.3, 0.02]])
    joints = rest.expand(3, 4, 3).clone()
    weights = torch.ones(3, 4)
    weights[0, :2] = 0  # 2 joints left
    joints[1, 3] = float("nan")  # NaN joint is ignored: 3 valid joints remain, identity found
    fallback = rotvec_to_rotmat(torch.tensor([math.pi, 0.0, 0.0]))
    got = frame_rotmat_from_joints(rest, joints, weights, fallback)
    torch.testing.assert_close(got[0], fallback)
    torch.testing.assert_close(got[1], torch.eye(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(got[2], torch.eye(3), atol=1e-6, rtol=0)


def test_frame_rotmat_checks_shapes():
    with pytest.raises(ValueError, match="rest_joints_m"):
        frame_rotmat_from_joints(torch.zeros(5), torch.zeros(1, 5, 3), torch.ones(1, 5), torch.eye(3))
    with pytest.raises(ValueError, match="joints_m"):
        frame_rotmat_from_joints(torch.zeros(5, 3), torch.zeros(1, 4, 3), torch.ones(1, 4), torch.eye(3))


def test_stage1net_root_starts_from_the_gt_frame():
    """At initialisation the residual is ~identity, so the root is the frame rotation of the GT joints; the
    plain net starts every sample at the mean root instead (up to 180 degrees off)."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    rest17 = torch.randn(17, 3, generator=gen) * 0.3
    rest17[0] = 0
    idx = (0, 1, 4, 7, 8)
    rot = _random_rotmats(6, gen).float()
    joints = (rot @ rest17.T).transpose(1, 2)
    images = torch.rand(6, 3, 32, 32, generator=gen)
    net = Stage1Net("body", 18, 17, root_frame=(idx, rest17[list(idx)])).eval()
    with torch.no_grad():
        out = net(images, joints)
    err = torch.rad2deg(rotmat_geodesic_distance(rotvec_to_rotmat(out.root_rotvec), rot))
    assert float(err.max()) < 3.0, err
    plain = Stage1Net("body", 18, 17).eval()
    with torch.no_grad():
        err_plain = torch.rad2deg(rotmat_geodesic_distance(rotvec_to_rotmat(plain(images, joints).root_rotvec), rot))
    assert float(err_plain.mean()) > 30.0


def test_stage1net_rejects_a_bad_root_frame():
    with pytest.raises(ValueError, match="root_frame"):
        Stage1Net("body", 18, 17, root_frame=((0, 1), torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="root_frame"):
        Stage1Net("body", 18, 17, root_frame=((0, 1, 40), torch.zeros(3, 3)))
    with pytest.raises(ValueError, match="canonical_joints"):
        Stage1Net("body", 18, 17, canonical_joints=True)


def test_stage1net_canonical_joints_make_the_pose_viewpoint_free():
    """Rotating the GT joints by any R (a different camera looking at the same body) must leave the
    articulated pose unchanged and turn the root by R (root' = R root): exact with the canonical input, while
    the camera-frame input changes the pose (the invariance the two FC layers would have to learn)."""
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    rest17 = torch.randn(17, 3, generator=gen, dtype=torch.float64) * 0.3
    rest17[0] = 0
    idx = (0, 1, 4, 7, 8)
    posed = rest17 + 0.05 * torch.randn(4, 17, 3, generator=gen, dtype=torch.float64)  # articulated, not rigid
    posed[:, 0] = 0
    view = _random_rotmats(4, gen)
    images = torch.rand(4, 3, 32, 32, generator=gen)
    kw = dict(root_frame=(idx, rest17[list(idx)].float()))
    for canonical in (True, False):
        torch.manual_seed(5)
        net = Stage1Net("body", 18, 17, canonical_joints=canonical, **kw).double().eval()
        with torch.no_grad():
            a = net(images.double(), posed)
            b = net(images.double(), (view @ posed.transpose(1, 2)).transpose(1, 2))
        pose_change = (rotvec_to_rotmat(a.pose_rotvecs) - rotvec_to_rotmat(b.pose_rotvecs)).abs().max()
        if canonical:
            assert float(pose_change) < 1e-9
            torch.testing.assert_close(rotvec_to_rotmat(b.root_rotvec), view @ rotvec_to_rotmat(a.root_rotvec),
                                       atol=1e-9, rtol=0)
        else:
            assert float(pose_change) > 1e-4
