"""Rotation matrices straight into the body model: ``BodyModel.forward(root_rotmat=, body_pose_rotmats=)``, the
regressors' ``root_rotmat`` / ``pose_rotmats`` and :func:`~neuralannot_cli.train.geometry.regressor_body_forward`.

The reference is the axis-angle path with the matrices built here by Rodrigues' formula in float64 (not roma):
same joints, vertices and gradients; the training losses give the same values either way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from neuralannot_cli.body.model import BodyModel, load_body_model
from neuralannot_cli.body.paths import ModelSearchConfig
from neuralannot_cli.train import geometry
from neuralannot_cli.train.geometry import body_forward, regressor_body_forward
from tests.test_body_joint_support import cfg, smplx64  # noqa: F401 (fixtures)


def rodrigues(rotvecs: torch.Tensor) -> torch.Tensor:
    """``(..., 3) -> (..., 3, 3)``: ``I + sin t K + (1 - cos t) K^2`` (angles here are well away from 0)."""
    angle = rotvecs.norm(dim=-1, keepdim=True)[..., None]  # (..., 1, 1)
    k = rotvecs / rotvecs.norm(dim=-1, keepdim=True)
    zero = torch.zeros_like(k[..., 0])
    kx, ky, kz = k.unbind(-1)
    K = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], dim=-1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=rotvecs.dtype).expand(K.shape)
    return eye + torch.sin(angle) * K + (1 - torch.cos(angle)) * (K @ K)


def _rotvecs(*shape: int, seed: int, scale: float = 0.6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(*shape, 3, generator=g, dtype=torch.float64)
    return scale * (0.3 + torch.rand(*shape, 1, generator=g, dtype=torch.float64)) * v / v.norm(dim=-1, keepdim=True)


def test_rodrigues_reference_is_a_rotation() -> None:
    r = rodrigues(_rotvecs(7, seed=0, scale=2.5))
    torch.testing.assert_close(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(7, 3, 3),
                               rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(7, dtype=torch.float64), rtol=0, atol=1e-14)
    # a quarter turn about z maps x to y
    q = rodrigues(torch.tensor([[0.0, 0.0, torch.pi / 2]], dtype=torch.float64))[0]
    torch.testing.assert_close(q @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("full_mesh", [True, False])
@pytest.mark.parametrize("tail", [False, True])
def test_smplx_rotmats_equal_rotvecs(smplx64: BodyModel, full_mesh: bool, tail: bool) -> None:  # noqa: F811
    b = 6
    root, body = _rotvecs(b, seed=1, scale=2.5), _rotvecs(b, 21, seed=2)
    betas = torch.randn(b, smplx64.num_betas, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    extra = {}
    if tail:  # jaw / eyes / hands given: converted with the rest; else the cached rest pose
        extra = {"jaw_rotvec": _rotvecs(b, seed=4, scale=0.2), "left_hand_pose_rotvecs": _rotvecs(b, 15, seed=5),
                 "right_hand_pose_rotvecs": torch.zeros(b, 15, 3, dtype=torch.float64)}
    ref = smplx64(root_rotvec=root, body_pose_rotvecs=body, betas=betas, full_mesh=full_mesh, **extra)
    for kw in ({"root_rotmat": rodrigues(root), "body_pose_rotmats": rodrigues(body)},
               {"root_rotmat": rodrigues(root), "body_pose_rotvecs": body},
               {"root_rotvec": root, "body_pose_rotmats": rodrigues(body)}):
        out = smplx64(**kw, betas=betas, full_mesh=full_mesh, **extra)
        torch.testing.assert_close(out.joints, ref.joints, rtol=0, atol=1e-12)
        torch.testing.assert_close(out.vertices, ref.vertices, rtol=0, atol=1e-12)
    # the cached rest tail equals converting explicit zero jaw / eye / hand poses (hands at the mean pose)
    if not tail:
        zeros = {"jaw_rotvec": torch.zeros(b, 3, dtype=torch.float64),
                 "left_hand_pose_rotvecs": torch.zeros(b, 15, 3, dtype=torch.float64)}
        explicit = smplx64(root_rotvec=root, body_pose_rotvecs=body, betas=betas, full_mesh=full_mesh, **zeros)
        torch.testing.assert_close(ref.joints, explicit.joints, rtol=0, atol=1e-12)


def test_smplx_rotmat_gradients_equal_rotvec_gradients(smplx64: BodyModel) -> None:  # noqa: F811
    b = 4
    w = torch.linspace(-1, 1, 3, dtype=torch.float64)
    grads = []
    for as_rotmats in (False, True):
        root = _rotvecs(b, seed=6, scale=2.5).requires_grad_(True)
        body = _rotvecs(b, 21, seed=7).requires_grad_(True)
        kw = ({"root_rotmat": rodrigues(root), "body_pose_rotmats": rodrigues(body)} if as_rotmats
              else {"root_rotvec": root, "body_pose_rotvecs": body})
        out = smplx64(**kw, full_mesh=False)
        loss = sum((smplx64.joints_in(out, n) * w).square().sum() for n in ("coco_wholebody_133", "h36m_17"))
        loss.backward()
        grads.append((root.grad, body.grad))
    for a, r in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("model_type", ["mano", "flame"])
def test_root_rotmat_other_models(standin_dir: Path, cfg: ModelSearchConfig, model_type: str) -> None:
    bm = load_body_model(model_type, model_dir=standin_dir, config=cfg, dtype=torch.float64)
    root = _rotvecs(3, seed=8, scale=2.0)
    torch.testing.assert_close(bm(root_rotmat=rodrigues(root)).joints, bm(root_rotvec=root).joints, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="body_pose_rotmats"):
        bm(body_pose_rotmats=rodrigues(_rotvecs(3, 21, seed=9)))


def test_rotmat_input_errors(smplx64: BodyModel) -> None:  # noqa: F811
    root = _rotvecs(2, seed=10)
    with pytest.raises(ValueError, match="both 'root_rotvec' and 'root_rotmat'"):
        smplx64(root_rotvec=root, root_rotmat=rodrigues(root))
    with pytest.raises(ValueError, match=r"body_pose_rotmats must have shape \(batch, 21, 3, 3\)"):
        smplx64(body_pose_rotmats=torch.zeros(2, 21, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="inconsistent batch sizes"):
        smplx64(root_rotmat=rodrigues(root), body_pose_rotvecs=_rotvecs(3, 21, seed=11))


def test_rest_tail_cache_follows_dtype_and_survives_inference_mode(standin_dir: Path, cfg: ModelSearchConfig) -> None:
    bm = load_body_model("smplx", model_dir=standin_dir, config=cfg)  # float32
    root, body = _rotvecs(3, seed=12, scale=2.0), _rotvecs(3, 21, seed=13)
    with torch.inference_mode():  # first use (the rest tail cached) inside inference mode
        bm(root_rotvec=root.float(), body_pose_rotvecs=body.float(), full_mesh=False)
    rm = rodrigues(body).float().requires_grad_(True)
    bm(root_rotvec=root.float(), body_pose_rotmats=rm, full_mesh=False).joints.sum().backward()
    assert rm.grad is not None and torch.isfinite(rm.grad).all()
    bm.double()  # the float32 tail must not be reused: exact float64 again
    zeros = {"left_hand_pose_rotvecs": torch.zeros(3, 15, 3, dtype=torch.float64)}
    torch.testing.assert_close(bm(root_rotvec=root, body_pose_rotvecs=body).joints,
                               bm(root_rotvec=root, body_pose_rotvecs=body, **zeros).joints, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------ regressors


@pytest.mark.parametrize("part", ["body", "hand"])
def test_regressor_rotmats_match_rotvecs_and_body_forward(standin_dir: Path, cfg: ModelSearchConfig,
                                                          part: str) -> None:
    from neuralannot_cli.nets.heads import Stage1Net, Stage2Net

    torch.manual_seed(0)
    bm = load_body_model("smplx" if part == "body" else "mano", model_dir=standin_dir, config=cfg,
                         dtype=torch.float64)
    images = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    nets = [Stage2Net(part, 18, None).double(), Stage1Net(part, 18, 21 if part == "hand" else 17).double()]
    for net in nets:
        # a larger head so that the rotations are far from the mean
        torch.nn.init.normal_(net.decoder.fc.weight, std=0.5)
        net.eval()
        if isinstance(net, Stage1Net):
            out = net(images, torch.randn(3, net.num_input_joints, 3, dtype=torch.float64) * 0.3)
        else:
            out = net(images)
        assert out.root_rotmat is not None and out.pose_rotmats is not None
        torch.testing.assert_close(rodrigues(out.root_rotvec), out.root_rotmat, rtol=0, atol=1e-12)
        torch.testing.assert_close(rodrigues(out.pose_rotvecs), out.pose_rotmats, rtol=0, atol=1e-12)
        transl = torch.tensor([[0.1, -0.2, 3.0]], dtype=torch.float64).expand(3, 3)
        ref = body_forward(bm, part, out.root_rotvec, out.pose_rotvecs, out.betas, transl)
        got = regressor_body_forward(bm, part, out, transl)
        torch.testing.assert_close(got.joints, ref.joints, rtol=0, atol=1e-12)
        # without the matrices (a pose decoded by a prior): the axis-angle path, exactly
        plain = dataclasses.replace(out, root_rotmat=None, pose_rotmats=None)
        assert torch.equal(regressor_body_forward(bm, part, plain, transl).joints, ref.joints)


def test_stage2_loss_feeds_matrices_and_equals_the_rotvec_loss(standin_dir: Path, cfg: ModelSearchConfig,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage-2 loss sends the decoded matrices to the body model, and its value and gradients are those of
    the axis-angle formulation (float64)."""
    from neuralannot_cli.losses import LossWeights
    from neuralannot_cli.nets.heads import Stage2Net
    from neuralannot_cli.train import steps
    from neuralannot_cli.train.steps import Stage2Loss, stage2_inputs

    bm = load_body_model("smplx", model_dir=standin_dir, config=cfg, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)

    def group(jset: str, j: int, target: bool) -> dict:
        d = {"image": torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64),
             "focal_crop_px": torch.full((2, 2), 40.0, dtype=torch.float64),
             "princpt_crop_px": torch.full((2, 2), 16.0, dtype=torch.float64), "joint_set": [jset] * 2,
             "keypoints_2d_crop_px": torch.rand(2, j, 2, generator=g, dtype=torch.float64) * 32,
             "keypoints_conf": torch.ones(2, j, dtype=torch.float64)}
        if not target:
            d.update({"joints_3d_cam_mm": torch.randn(2, j, 3, generator=g, dtype=torch.float64) * 300
                      + torch.tensor([0.0, 0.0, 4000.0], dtype=torch.float64),
                      "has_3d": torch.ones(2, dtype=torch.bool),
                      "pose_rotvecs_star": 0.3 * torch.randn(2, 21, 3, generator=g, dtype=torch.float64),
                      "cam_aug_rotmat": torch.eye(3, dtype=torch.float64).expand(2, 3, 3).clone(),
                      "root_rotvec_star": torch.tensor([[3.0, 0.1, 0.0]], dtype=torch.float64).expand(2, 3).clone()})
        return d

    groups, inputs = stage2_inputs({"aux": [group("h36m_17", 17, False)],
                                    "target": group("coco_wholebody_133", 23, True)},
                                   torch.device("cpu"), with_root=True)
    torch.manual_seed(0)
    net = Stage2Net("body", 18, None).double()
    torch.nn.init.normal_(net.decoder.fc.weight, std=0.05)
    weights = dataclasses.replace(LossWeights.for_part("body"), w_root=1.0)
    loss = Stage2Loss(net, None, bm, "body", 32, weights, groups, with_root=True)

    seen: list[set[str]] = []
    real_forward = BodyModel.forward

    def spy(self, **kw):
        seen.append({k for k, v in kw.items() if v is not None})
        return real_forward(self, **kw)

    results = []
    for use_rotmats in (True, False):
        net.zero_grad()
        with monkeypatch.context() as m:
            m.setattr(BodyModel, "forward", spy)
            if not use_rotmats:  # the axis-angle formulation: the matrices dropped before the body model
                m.setattr(steps, "regressor_body_forward", lambda bm_, part, out, transl=None: geometry.body_forward(
                    bm_, part, out.root_rotvec, out.pose_rotvecs, out.betas, transl))
            total, parts = loss(*inputs)
        total.backward()
        results.append((total.detach(), parts, [p.grad.clone() for p in net.parameters()]))
    assert {"root_rotmat", "body_pose_rotmats"} <= seen[0] and not {"root_rotvec", "body_pose_rotvecs"} & seen[0]
    assert {"root_rotvec", "body_pose_rotvecs"} <= seen[1]
    (t1, p1, g1), (t0, p0, g0) = results
    torch.testing.assert_close(t1, t0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p1, p0, rtol=1e-12, atol=1e-12)
    assert float(p1[4]) > 0  # the root term is active
    for a, r in zip(g1, g0):
        torch.testing.assert_close(a, r, rtol=1e-8, atol=1e-10)
