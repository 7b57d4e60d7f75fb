"""Stage-1 / stage-2 regressors: output layout and values at init (mean Theta), input checks, prior decoding,
and an overfit run of the stage-1 loss through the (stand-in) MANO model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from neuralannot_cli.losses import LossWeights, loss_aux, root_align
from neuralannot_cli.nets.heads import IDENTITY_ROT6D, RegressorOutput, Stage1Net, Stage2Net, part_spec


def _rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """float64 axis-angle -> rotation matrix (independent of roma)."""
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _angle_deg(r_a: np.ndarray, r_b: np.ndarray) -> float:
    cos = (np.trace(r_a.T @ r_b) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))


def _images(b: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_part_specs():
    body, hand = part_spec("body"), part_spec("hand")
    assert (body.model_type, body.num_pose_joints, body.num_betas) == ("smplx", 21, 10)
    assert (hand.model_type, hand.num_pose_joints, hand.num_betas) == ("mano", 15, 10)
    with pytest.raises(ValueError, match="face"):
        part_spec("face")  # type: ignore[arg-type]


@pytest.mark.parametrize("part", ["body", "hand"])
def test_stage1_at_init_is_the_mean_theta(part):
    torch.manual_seed(0)
    spec = part_spec(part)
    net = Stage1Net(part, 18, num_input_joints=17)
    gen = torch.Generator().manual_seed(1)
    out = net(_images(3), 0.3 * torch.randn(3, 17, 3, generator=gen))
    k = spec.num_pose_joints
    assert isinstance(out, RegressorOutput)
    assert out.root_rotvec.shape == (3, 3) and out.root_rot6d.shape == (3, 6)
    assert out.pose_rotvecs.shape == (3, k, 3) and out.pose_rot6d.shape == (3, k, 6)
    assert out.betas.shape == (3, 10) and out.cam_sxy.shape == (3, 3) and out.pose_code is None
    # joint rotations within 3 degrees of the identity, root within 3 degrees of (pi, 0, 0) (upright in OpenCV)
    root_ref = _rodrigues(np.array(spec.init_root_rotvec))
    np.testing.assert_allclose(root_ref, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    for b in range(3):
        assert _angle_deg(_rodrigues(out.root_rotvec[b].double().detach().numpy()), root_ref) < 3.0
        for j in range(k):
            assert _angle_deg(_rodrigues(out.pose_rotvecs[b, j].double().detach().numpy()), np.eye(3)) < 3.0
    # the 6D layout: the first two COLUMNS of the decoded rotation, column-major
    for b, j in [(0, 0), (2, k - 1)]:
        r = _rodrigues(out.pose_rotvecs[b, j].double().detach().numpy())
        six = out.pose_rot6d[b, j].double().detach().numpy()
        c0 = six[:3] / np.linalg.norm(six[:3])
        np.testing.assert_allclose(r[:, 0], c0, atol=1e-5)
        c1 = six[3:] - c0 * (c0 @ six[3:])
        np.testing.assert_allclose(r[:, 1], c1 / np.linalg.norm(c1), atol=1e-5)
    np.testing.assert_allclose(out.pose_rot6d.detach().numpy(), np.broadcast_to(IDENTITY_ROT6D, (3, k, 6)), atol=0.05)
    # shape at the mean, camera at the part's sensible scale, centred
    assert out.betas.abs().max() < 0.05
    np.testing.assert_allclose(out.cam_sxy[:, 0].detach().numpy(), spec.init_cam_scale, rtol=0.05)
    assert out.cam_sxy[:, 1:].abs().max() < 0.05


def test_stage1_input_checks_and_missing_joints():
    torch.manual_seed(0)
    net = Stage1Net("body", 18, num_input_joints=17).eval()
    images = _images(2)
    with pytest.raises(ValueError, match=r"\(2, 16, 3\)"):
        net(images, torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match=r"\(2, 17\).*\(2, 16\)"):
        net(images, torch.zeros(2, 17, 3), torch.ones(2, 16))
    with pytest.raises(ValueError, match=r"\(2, 64, 64\)"):
        net(images[:, 0], torch.zeros(2, 17, 3))
    joints = 0.2 * torch.randn(2, 17, 3, generator=torch.Generator().manual_seed(3))
    conf = torch.ones(2, 17)
    conf[0, 4] = 0
    with_nan = joints.clone()
    with_nan[0, 4] = float("nan")
    zeroed = joints.clone()
    zeroed[0, 4] = 0.0
    with torch.no_grad():
        a = net(images, with_nan, conf)
        b = net(images, zeroed)
    assert torch.isfinite(a.pose_rot6d).all()
    torch.testing.assert_close(a.pose_rot6d, b.pose_rot6d)
    torch.testing.assert_close(a.cam_sxy, b.cam_sxy)
    with pytest.raises(ValueError, match="num_input_joints"):
        Stage1Net("body", 18, num_input_joints=0)


def test_stage1_gradients_finite():
    torch.manual_seed(0)
    net = Stage1Net("hand", 18, num_input_joints=21)
    out = net(_images(2, 32), 0.05 * torch.randn(2, 21, 3))
    loss = out.pose_rotvecs.square().sum() + out.root_rotvec.sum() + out.betas.square().sum() + out.cam_sxy.sum()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


class _LinearPrior(nn.Module):
    """A stand-in PosePrior: ``decode(code) = (code @ W + mean)`` as (B, K, 3)."""

    def __init__(self, code_dim: int, num_joints: int):
        super().__init__()
        self.code_dim, self.num_joints = code_dim, num_joints
        gen = torch.Generator().manual_seed(7)
        self.weight = nn.Parameter(0.1 * torch.randn(code_dim, num_joints * 3, generator=gen))
        self.mean = nn.Parameter(0.1 * torch.randn(num_joints * 3, generator=gen))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return (code @ self.weight + self.mean).unflatten(-1, (self.num_joints, 3))

    def encode_mean(self, pose_rotvecs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - not used here
        raise NotImplementedError


def test_stage2_with_code_and_prior():
    torch.manual_seed(0)
    net = Stage2Net("body", 18, code_dim=8)
    prior = _LinearPrior(8, 21)
    images = _images(2, 32)
    out = net(images, prior)
    assert out.pose_code.shape == (2, 8) and out.pose_rot6d is None
    assert out.pose_code.abs().max() < 0.05  # the prior's mean code
    torch.testing.assert_close(out.pose_rotvecs, prior.decode(out.pose_code))
    np.testing.assert_allclose(out.cam_sxy[:, 0].detach().numpy(), part_spec("body").init_cam_scale, rtol=0.05)
    no_prior = net(images)
    assert no_prior.pose_rotvecs is None
    torch.testing.assert_close(no_prior.pose_code, out.pose_code)
    with pytest.raises(ValueError, match="code_dim=6"):
        net(images, _LinearPrior(6, 21))
    with pytest.raises(ValueError, match="num_joints=15"):
        net(images, _LinearPrior(8, 15))


def test_stage2_without_prior_regresses_rotations():
    torch.manual_seed(0)
    net = Stage2Net("hand", 18, code_dim=None)
    out = net(_images(2, 32))
    assert out.pose_code is None and out.pose_rot6d.shape == (2, 15, 6) and out.pose_rotvecs.shape == (2, 15, 3)
    assert out.pose_rotvecs.norm(dim=-1).max() < math.radians(5.0)
    with pytest.raises(ValueError, match="code_dim=None"):
        net(_images(2, 32), _LinearPrior(8, 15))
    with pytest.raises(ValueError, match="code_dim"):
        Stage2Net("hand", 18, code_dim=0)


# ------------------------------------------------------------------------------------------ overfit


def _overfit_one_hand(standin_dir, *, train_backbone: bool, steps: int) -> tuple[list[float], dict]:
    """Adam (lr 1e-3) on one (image, 3D hand pose) pair through the stand-in MANO; returns the L_ax curve."""
    from neuralannot_cli.body import load_body_model

    torch.manual_seed(0)
    mano = load_body_model("mano", model_dir=standin_dir)
    gen = torch.Generator().manual_seed(0)
    pose_gt = 0.4 * torch.randn(1, 15, 3, generator=gen)
    root_gt = torch.tensor([[math.pi * 0.8, 0.3, -0.2]])
    with torch.no_grad():
        out_gt = mano(root_rotvec=root_gt, hand_pose_rotvecs=pose_gt, betas=torch.zeros(1, 10))
        joints_gt_m = mano.joints_in(out_gt, "hand_21")
    conf = torch.ones(1, 21)
    joints_in = root_align(joints_gt_m, 0)
    image = _images(1, 64, seed=5)
    weights = LossWeights.for_part("hand")

    net = Stage1Net("hand", 18, num_input_joints=21)
    if not train_backbone:
        net.backbone.requires_grad_(False).eval()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(steps):
        pred = net(image, joints_in, conf)
        out = mano(root_rotvec=pred.root_rotvec, hand_pose_rotvecs=pred.pose_rotvecs, betas=pred.betas)
        loss, parts = loss_aux(
            mano.joints_in(out, "hand_21"), joints_gt_m, conf, pred.pose_rotvecs, root=0, weights=weights
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, parts


def test_stage1_overfits_one_hand_heads(standin_dir):
    """Heads only (frozen ResNet-18 at 64 px): L_ax falls by > 90 % in 80 steps, 3D error to a few mm."""
    losses, parts = _overfit_one_hand(standin_dir, train_backbone=False, steps=80)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    assert parts["kp3d"].item() < 0.01  # per-joint L1 (sum over x, y, z) below 1 cm; the mean pose is ~6 cm


@pytest.mark.slow
def test_stage1_overfits_one_hand_full(standin_dir):
    """The whole network, backbone in train mode (BatchNorm on a batch of one): > 90 % in 100 steps."""
    losses, _ = _overfit_one_hand(standin_dir, train_backbone=True, steps=100)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
