"""``BodyModel.forward(full_mesh=False)``: SMPL-X posed on the joint-support vertices only must give the
same joints (every joint set), the same vertices where it poses them and the same gradients as smplx's
full forward, in float64; in any dtype/device order and after inference mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neuralannot_cli.body.joint_sets import JOINT_SETS
from neuralannot_cli.body.model import BodyModel, load_body_model
from neuralannot_cli.body.paths import ModelSearchConfig
from neuralannot_cli.train.geometry import body_forward


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> ModelSearchConfig:
    return ModelSearchConfig(use_env=False, cache_dir=tmp_path_factory.mktemp("cache"), allow_standin=False)


@pytest.fixture(scope="module")
def smplx64(standin_dir: Path, cfg: ModelSearchConfig) -> BodyModel:
    return load_body_model("smplx", model_dir=standin_dir, config=cfg, dtype=torch.float64)


def _params(bm: BodyModel, batch: int, seed: int, dtype=torch.float64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)

    kw = dict(root_rotvec=r(batch, 3), body_pose_rotvecs=r(batch, 21, 3, scale=0.5), betas=r(batch, bm.num_betas),
              expression=r(batch, bm.num_expression_coeffs), left_hand_pose_rotvecs=r(batch, 15, 3, scale=0.4),
              right_hand_pose_rotvecs=r(batch, 15, 3, scale=0.4), jaw_rotvec=r(batch, 3, scale=0.2),
              leye_rotvec=r(batch, 3, scale=0.1), reye_rotvec=r(batch, 3, scale=0.1), transl_m=r(batch, 3))
    # neck / head yaw over the whole range of smplx's dynamic face-contour table (both signs, past 39 deg)
    yaw = torch.linspace(-1.4, 1.4, batch, dtype=torch.float64).to(dtype)
    kw["body_pose_rotvecs"][:, 11] = torch.stack([torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)], -1)
    return kw


def _smplx_sets() -> list[str]:
    return [name for name, js in JOINT_SETS.items() if "smplx" in js.recipes]


def test_joint_support_forward_equals_full_forward(smplx64: BodyModel) -> None:
    kw = _params(smplx64, 9, 0)
    full = smplx64(**kw)
    sub = smplx64(**kw, full_mesh=False)
    assert full.vertex_ids is None and sub.vertex_ids is not None
    ids = sub.vertex_ids
    assert 0 < ids.numel() < smplx64.num_vertices
    torch.testing.assert_close(sub.joints, full.joints, rtol=0, atol=1e-12)
    torch.testing.assert_close(sub.kinematic_joints, full.kinematic_joints, rtol=0, atol=1e-12)
    torch.testing.assert_close(sub.vertices[:, ids], full.vertices[:, ids], rtol=0, atol=1e-12)
    outside = torch.ones(smplx64.num_vertices, dtype=torch.bool)
    outside[ids] = False
    assert float(sub.vertices[:, outside].abs().max()) == 0.0
    for name in _smplx_sets():
        torch.testing.assert_close(smplx64.joints_in(sub, name), smplx64.joints_in(full, name), rtol=0, atol=1e-12,
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_joint_support_gradients_equal_full(smplx64: BodyModel) -> None:
    grads = []
    for full_mesh in (True, False):
        kw = {k: v.clone().requires_grad_(True) for k, v in _params(smplx64, 5, 1).items()}
        out = smplx64(**kw, full_mesh=full_mesh)
        w = torch.linspace(-1, 1, 3, dtype=torch.float64)
        loss = sum((smplx64.joints_in(out, n) * w).square().sum() for n in ("coco_wholebody_133", "h36m_17"))
        loss.backward()
        grads.append({k: v.grad for k, v in kw.items()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-10, atol=1e-10, msg=lambda m, k=k: f"{k}: {m}")


def test_joint_support_follows_dtype_changes_and_survives_inference_mode(standin_dir: Path,
                                                                         cfg: ModelSearchConfig) -> None:
    bm = load_body_model("smplx", model_dir=standin_dir, config=cfg)  # float32
    kw32 = _params(bm, 4, 2, torch.float32)
    with torch.inference_mode():  # first use (cache built) inside inference mode
        first = bm(**kw32, full_mesh=False).joints
    torch.testing.assert_close(first, bm(**kw32).joints, rtol=1e-4, atol=1e-5)
    kw = {k: v.clone().requires_grad_(True) for k, v in kw32.items()}
    bm(**kw, full_mesh=False).joints.sum().backward()  # no "inference tensors cannot be saved for backward"
    assert torch.isfinite(kw["body_pose_rotvecs"].grad).all()
    bm.double()  # after the float32 cache: the float64 forward must be exact, not float32-rounded
    kw64 = _params(bm, 4, 2)
    torch.testing.assert_close(bm(**kw64, full_mesh=False).joints, bm(**kw64).joints, rtol=0, atol=1e-12)


def test_joint_support_without_h36m_regressor(standin_dir: Path, cfg: ModelSearchConfig, tmp_path: Path) -> None:
    import shutil

    (tmp_path / "smplx").mkdir()
    for f in (standin_dir / "smplx").iterdir():
        if not f.name.startswith("J_regressor_h36m"):
            shutil.copy(f, tmp_path / "smplx" / f.name)
    bm = load_body_model("smplx", model_dir=tmp_path, config=cfg, dtype=torch.float64)
    assert "h36m" not in bm.regressors
    kw = _params(bm, 3, 3)
    sub = bm(**kw, full_mesh=False)
    torch.testing.assert_close(sub.joints, bm(**kw).joints, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="J_regressor_h36m"):
        bm.joints_in(sub, "h36m_17")


def test_mano_ignores_full_mesh_and_body_forward_matches(standin_dir: Path, cfg: ModelSearchConfig,
                                                         smplx64: BodyModel) -> None:
    mano = load_body_model("mano", model_dir=standin_dir, config=cfg, dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    root, pose = torch.randn(2, 3, generator=g, dtype=torch.float64), torch.randn(2, 15, 3, generator=g, dtype=torch.float64)
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)
    out = body_forward(mano, "hand", root, pose, betas)
    assert out.vertex_ids is None
    torch.testing.assert_close(out.vertices, mano(root_rotvec=root, hand_pose_rotvecs=pose, betas=betas).vertices,
                               rtol=0, atol=0)
    kw = _params(smplx64, 3, 5)
    b = body_forward(smplx64, "body", kw["root_rotvec"], kw["body_pose_rotvecs"], kw["betas"], kw["transl_m"])
    ref = smplx64(root_rotvec=kw["root_rotvec"], body_pose_rotvecs=kw["body_pose_rotvecs"], betas=kw["betas"],
                  transl_m=kw["transl_m"])
    assert b.vertex_ids is not None
    torch.testing.assert_close(smplx64.joints_in(b, "coco_wholebody_133"), smplx64.joints_in(ref, "coco_wholebody_133"),
                               rtol=0, atol=1e-12)
