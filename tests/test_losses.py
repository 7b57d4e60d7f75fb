"""NeuralAnnot losses against float64 numpy loops; masking of missing (NaN) keypoints; finite gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralannot_cli.losses import (
    LossWeights,
    keypoint_3d_l1_root_aligned,
    keypoint_l1,
    keypoint_l1_per_sample,
    loss_aux,
    loss_target,
    param_l1,
    root_rotmat_l1,
    pose_sq_reg,
    root_align,
)

DTYPES = [torch.float32, torch.float64]


def _keypoints(b, j, d, seed, dtype, nan_missing=True):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(b, j, d))
    target = rng.normal(size=(b, j, d))
    conf = rng.uniform(0.1, 1.0, size=(b, j))
    conf[rng.uniform(size=(b, j)) < 0.3] = 0.0
    if nan_missing:
        target[conf == 0] = np.nan
    t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    return pred, target, conf, t(pred), t(target), t(conf)


def _ref_keypoint_l1(pred, target, conf, sample_mask=None):
    num = den = 0.0
    for b in range(pred.shape[0]):
        if sample_mask is not None and not sample_mask[b]:
            continue
        for j in range(pred.shape[1]):
            if conf[b, j] > 0 and np.all(np.isfinite(target[b, j])):
                num += conf[b, j] * sum(abs(float(pred[b, j, d]) - float(target[b, j, d])) for d in range(pred.shape[2]))
                den += conf[b, j]
    return num / den if den > 0 else 0.0


def _ref_per_sample(pred, target, conf):
    return np.array([_ref_keypoint_l1(pred[b : b + 1], target[b : b + 1], conf[b : b + 1]) for b in range(pred.shape[0])])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [2, 3])
def test_keypoint_l1_matches_numpy_loop(dtype, d):
    pred, target, conf, tp, tt, tc = _keypoints(5, 7, d, seed=d, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert keypoint_l1(tp, tt, tc).item() == pytest.approx(_ref_keypoint_l1(pred, target, conf), rel=tol)
    mask = np.array([True, False, True, True, False])
    got = keypoint_l1(tp, tt, tc, torch.tensor(mask)).item()
    assert got == pytest.approx(_ref_keypoint_l1(pred, target, conf, mask), rel=tol)
    np.testing.assert_allclose(keypoint_l1_per_sample(tp, tt, tc).numpy(), _ref_per_sample(pred, target, conf), rtol=tol)


def test_keypoint_l1_zero_when_nothing_valid():
    pred = torch.ones(2, 3, 2)
    target = torch.full((2, 3, 2), float("nan"))
    conf = torch.zeros(2, 3)
    out = keypoint_l1(pred, target, conf)
    assert out.item() == 0.0
    assert torch.all(keypoint_l1_per_sample(pred, target, conf) == 0)


def test_keypoint_l1_nan_conf_and_inf_target_are_masked():
    pred = torch.zeros(1, 3, 2, requires_grad=True)
    target = torch.tensor([[[1.0, 1.0], [float("inf"), 0.0], [3.0, 3.0]]])
    conf = torch.tensor([[1.0, 1.0, float("nan")]])
    out = keypoint_l1(pred, target, conf)
    assert out.item() == pytest.approx(2.0)  # only joint 0 counts: |1| + |1|
    out.backward()
    assert torch.isfinite(pred.grad).all()
    assert torch.all(pred.grad[0, 1:] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_finite_with_nan_missing_keypoints(dtype):
    _, _, conf, tp, tt, tc = _keypoints(4, 9, 3, seed=11, dtype=dtype)
    tp.requires_grad_(True)
    assert torch.isnan(tt).any()
    loss = keypoint_l1(tp, tt, tc)
    (grad,) = torch.autograd.grad(loss, tp)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert torch.all(grad[torch.tensor(conf == 0)] == 0)
    # the gradient of a valid joint is conf * sign(diff) / sum(conf)
    b, j = np.argwhere(conf > 0)[0]
    expected = conf[b, j] * np.sign(tp[b, j].detach().numpy() - tt[b, j].numpy()) / conf.sum()
    np.testing.assert_allclose(grad[b, j].numpy(), expected, rtol=1e-5)


def test_keypoint_l1_gradcheck():
    _, _, _, tp, tt, tc = _keypoints(2, 4, 2, seed=3, dtype=torch.float64)
    tp.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: keypoint_l1(p, tt, tc), (tp,))


def test_keypoint_l1_shape_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        keypoint_l1(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"\(2, 4, 2\)"):
        keypoint_l1(torch.zeros(2, 3, 2), torch.zeros(2, 4, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"conf.*\(2, 4\)"):
        keypoint_l1(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"sample_mask.*\(3,\)"):
        keypoint_l1(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 3), torch.ones(3, dtype=torch.bool))


# ------------------------------------------------------------------------------------------ root alignment


def test_root_align_index_and_midpoint():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(3, 6, 3))
    out = root_align(torch.tensor(joints), 2).numpy()
    for b in range(3):
        for j in range(6):
            np.testing.assert_allclose(out[b, j], joints[b, j] - joints[b, 2], rtol=0, atol=1e-15)
    out = root_align(torch.tensor(joints), (1, 4)).numpy()
    for b in range(3):
        mid = 0.5 * (joints[b, 1] + joints[b, 4])
        np.testing.assert_allclose(out[b], joints[b] - mid, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out[:, 1], -out[:, 4], atol=1e-15)  # the midpoint is at the origin
    with pytest.raises(ValueError, match="root"):
        root_align(torch.tensor(joints), 6)
    with pytest.raises(ValueError, match="root"):
        root_align(torch.tensor(joints), (0, 1, 2))  # type: ignore[arg-type]


def test_3d_loss_is_translation_invariant_and_skips_missing_root():
    gen = torch.Generator().manual_seed(5)
    pred = torch.randn(4, 10, 3, generator=gen, dtype=torch.float64)
    target = torch.randn(4, 10, 3, generator=gen, dtype=torch.float64)
    conf = torch.ones(4, 10, dtype=torch.float64)
    base = keypoint_3d_l1_root_aligned(pred, target, conf, (2, 3))
    shifted = keypoint_3d_l1_root_aligned(
        pred + torch.randn(4, 1, 3, generator=gen, dtype=torch.float64),
        target + torch.randn(4, 1, 3, generator=gen, dtype=torch.float64),
        conf,
        (2, 3),
    )
    torch.testing.assert_close(base, shifted)
    # reference: root-align both in numpy, weighted L1
    p, t = pred.numpy(), target.numpy()
    ref = _ref_keypoint_l1(p - p[:, [2, 3]].mean(1, keepdims=True), t - t[:, [2, 3]].mean(1, keepdims=True), conf.numpy())
    assert base.item() == pytest.approx(ref, rel=1e-12)
    # sample 1 loses a hip: it must drop out entirely (not produce NaN)
    target_missing = target.clone()
    target_missing[1, 3] = float("nan")
    conf_missing = conf.clone()
    conf_missing[1, 3] = 0.0
    got = keypoint_3d_l1_root_aligned(pred, target_missing, conf_missing, (2, 3))
    keep = np.array([True, False, True, True])
    ref = _ref_keypoint_l1(
        p - p[:, [2, 3]].mean(1, keepdims=True), t - t[:, [2, 3]].mean(1, keepdims=True), conf.numpy(), keep
    )
    assert got.item() == pytest.approx(ref, rel=1e-12)


# ------------------------------------------------------------------------------------------ pose terms


def test_pose_sq_reg_and_param_l1_match_numpy():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(4, 21, 3))
    star = rng.normal(size=(4, 21, 3))
    mask = np.array([True, False, True, False])
    ref_reg = np.mean([np.sum(theta[b] ** 2) for b in range(4)])
    assert pose_sq_reg(torch.tensor(theta)).item() == pytest.approx(ref_reg, rel=1e-12)
    ref_reg_m = np.mean([np.sum(theta[b] ** 2) for b in range(4) if mask[b]])
    assert pose_sq_reg(torch.tensor(theta), torch.tensor(mask)).item() == pytest.approx(ref_reg_m, rel=1e-12)
    assert pose_sq_reg(torch.tensor(theta), torch.zeros(4, dtype=torch.bool)).item() == 0.0
    ref_p = np.mean([np.sum(np.abs(theta[b] - star[b])) for b in range(4) if mask[b]])
    assert param_l1(torch.tensor(theta), torch.tensor(star), torch.tensor(mask)).item() == pytest.approx(ref_p, rel=1e-12)
    star_nan = star.copy()
    star_nan[2, 5, 1] = np.nan  # sample 2 has no pseudo-GT: left out
    theta_t = torch.tensor(theta, requires_grad=True)
    out = param_l1(theta_t, torch.tensor(star_nan), torch.tensor(mask))
    assert out.item() == pytest.approx(np.sum(np.abs(theta[0] - star[0])), rel=1e-12)
    out.backward()
    assert torch.isfinite(theta_t.grad).all() and torch.all(theta_t.grad[1:] == 0)
    with pytest.raises(ValueError, match=r"\(4, 21\)"):
        pose_sq_reg(torch.zeros(4, 21))


def test_root_rotmat_l1_matches_numpy_and_skips_missing():
    rng = np.random.default_rng(4)
    def rotmats(n):
        q = rng.normal(size=(n, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        w, x, y, z = q.T
        return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                         2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                         2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)
    pred, star = rotmats(5), rotmats(5)
    mask = np.array([True, True, False, True, True])
    ref = np.mean([np.abs(pred[b] - star[b]).sum() for b in range(5) if mask[b]])
    assert root_rotmat_l1(torch.tensor(pred), torch.tensor(star), torch.tensor(mask)).item() == pytest.approx(ref, rel=1e-12)
    assert root_rotmat_l1(torch.tensor(pred), torch.tensor(pred)).item() == 0.0
    star_nan = star.copy()
    star_nan[1, 0, 2] = np.nan  # no pseudo-GT root: left out
    pred_t = torch.tensor(pred, requires_grad=True)
    out = root_rotmat_l1(pred_t, torch.tensor(star_nan), torch.tensor(mask))
    assert out.item() == pytest.approx(np.mean([np.abs(pred[b] - star[b]).sum() for b in (0, 3, 4)]), rel=1e-12)
    out.backward()
    assert torch.isfinite(pred_t.grad).all() and torch.all(pred_t.grad[1:3] == 0)
    with pytest.raises(ValueError, match=r"\(batch, 3, 3\)"):
        root_rotmat_l1(torch.zeros(4, 9), torch.zeros(4, 3, 3))


# ------------------------------------------------------------------------------------------ L_ax, L_tg


def test_loss_weights_defaults_and_validation():
    w = LossWeights()
    assert (w.lambda_ax, w.lambda_tg, w.w_3d, w.w_2d, w.w_param, w.w_root) == (1e-3, 1e-3, 1.0, 10.0, 0.05, 0.0)
    with pytest.raises(ValueError, match="lambda_tg"):
        LossWeights(lambda_tg=-1.0)
    with pytest.raises(ValueError, match="w_2d"):
        LossWeights(w_2d=float("nan"))


def test_loss_aux_matches_reference():
    rng = np.random.default_rng(7)
    pred, target = rng.normal(size=(3, 17, 3)), rng.normal(size=(3, 17, 3))
    conf = np.ones((3, 17))
    conf[0, 5] = 0.0
    target[0, 5] = np.nan
    theta = rng.normal(size=(3, 21, 3))
    w = LossWeights(lambda_ax=0.3, w_3d=2.0)
    total, parts = loss_aux(
        torch.tensor(pred), torch.tensor(target), torch.tensor(conf), torch.tensor(theta), root=0, weights=w
    )
    kp3d = _ref_keypoint_l1(pred - pred[:, :1], target - target[:, :1], conf)
    reg = np.mean(np.sum(theta**2, axis=(1, 2)))
    assert parts["kp3d"].item() == pytest.approx(kp3d, rel=1e-12)
    assert parts["pose_reg"].item() == pytest.approx(reg, rel=1e-12)
    assert total.item() == pytest.approx(2.0 * kp3d + 0.3 * reg, rel=1e-12)


def test_loss_target_mixed_batch_matches_formula():
    rng = np.random.default_rng(9)
    b, n, j, k, size = 6, 23, 17, 21, 256
    is_target = np.array([True, True, False, True, False, False])
    kp_pred = rng.uniform(0, size, size=(b, n, 2))
    kp = rng.uniform(0, size, size=(b, n, 2))
    kp_conf = rng.uniform(0, 1, size=(b, n))
    kp_conf[rng.uniform(size=(b, n)) < 0.2] = 0.0
    kp[kp_conf == 0] = np.nan
    j3_pred, j3 = rng.normal(size=(b, j, 3)), rng.normal(size=(b, j, 3))
    j3[is_target] = np.nan  # target samples have no 3D
    j3_conf = np.where(is_target[:, None], 0.0, 1.0) * np.ones((b, j))
    theta, star = rng.normal(size=(b, k, 3)), rng.normal(size=(b, k, 3))
    star[is_target] = np.nan
    w = LossWeights(lambda_tg=0.5, w_param=0.2, w_3d=3.0, w_2d=2.0)
    tt = lambda a: torch.tensor(a)  # noqa: E731
    theta_t = tt(theta).requires_grad_(True)
    kp_pred_t = tt(kp_pred).requires_grad_(True)
    total, parts = loss_target(
        kp_pred_t, tt(kp), tt(kp_conf), theta_t, tt(is_target), input_size=size,
        joints_3d_pred_m=tt(j3_pred), joints_3d_m=tt(j3), joints_3d_conf=tt(j3_conf), pose_rotvecs_star=tt(star),
        root=(1, 4), weights=w,
    )
    aux = ~is_target
    ref_2d = _ref_keypoint_l1(kp_pred / size, kp / size, kp_conf)
    ref_reg = np.mean(np.sum(theta[is_target] ** 2, axis=(1, 2)))
    p_rel = j3_pred - j3_pred[:, [1, 4]].mean(1, keepdims=True)
    t_rel = j3 - j3[:, [1, 4]].mean(1, keepdims=True)
    ref_3d = _ref_keypoint_l1(p_rel, t_rel, j3_conf, aux)
    ref_param = np.mean(np.sum(np.abs(theta[aux] - star[aux]), axis=(1, 2)))
    for name, ref in [("kp2d", ref_2d), ("pose_reg", ref_reg), ("kp3d", ref_3d), ("param", ref_param)]:
        assert parts[name].item() == pytest.approx(ref, rel=1e-12), name
    assert total.item() == pytest.approx(2.0 * ref_2d + 0.5 * ref_reg + 3.0 * ref_3d + 0.2 * ref_param, rel=1e-12)
    total.backward()
    assert torch.isfinite(theta_t.grad).all() and torch.isfinite(kp_pred_t.grad).all()
    # 1_tg: target rows get the regulariser gradient 2 * lambda * theta / n_target, aux rows the L1 gradient
    n_tg, n_aux = is_target.sum(), aux.sum()
    np.testing.assert_allclose(theta_t.grad[is_target].numpy(), 2 * 0.5 * theta[is_target] / n_tg, rtol=1e-12)
    np.testing.assert_allclose(
        theta_t.grad[aux].numpy(), 0.2 * np.sign(theta[aux] - star[aux]) / n_aux, rtol=1e-12
    )
    # 2D units: the loss does not depend on the crop size once keypoints scale with it
    total2, parts2 = loss_target(
        tt(kp_pred * 2), tt(kp * 2), tt(kp_conf), tt(theta), tt(np.ones(b, bool)), input_size=2 * size
    )
    assert parts2["kp2d"].item() == pytest.approx(ref_2d, rel=1e-12)
    assert parts2["kp3d"].item() == 0.0 and parts2["param"].item() == 0.0
    # w_root: the root term joins on the auxiliary rows only (target rows' roots are ignored, even NaN)
    rot = torch.linalg.qr(tt(rng.normal(size=(b, 3, 3)))).Q  # orthogonal: enough for an L1 check
    rot_star = torch.linalg.qr(tt(rng.normal(size=(b, 3, 3)))).Q
    rot_star[torch.tensor(is_target)] = float("nan")
    w_r = LossWeights(lambda_tg=0.5, w_param=0.2, w_3d=3.0, w_2d=2.0, w_root=0.7)
    total3, parts3 = loss_target(
        tt(kp_pred), tt(kp), tt(kp_conf), tt(theta), tt(is_target), input_size=size,
        joints_3d_pred_m=tt(j3_pred), joints_3d_m=tt(j3), joints_3d_conf=tt(j3_conf), pose_rotvecs_star=tt(star),
        root_rotmat=rot, root_rotmat_star=rot_star, root=(1, 4), weights=w_r,
    )
    ref_root = np.mean([np.abs(rot[i].numpy() - rot_star[i].numpy()).sum() for i in np.flatnonzero(aux)])
    assert parts3["root"].item() == pytest.approx(ref_root, rel=1e-12)
    assert total3.item() == pytest.approx(total.item() + 0.7 * ref_root, rel=1e-12)
    with pytest.raises(ValueError, match="w_root"):
        loss_target(tt(kp_pred), tt(kp), tt(kp_conf), tt(theta), tt(is_target), input_size=size,
                    joints_3d_pred_m=tt(j3_pred), joints_3d_m=tt(j3), joints_3d_conf=tt(j3_conf),
                    pose_rotvecs_star=tt(star), root=(1, 4), weights=w_r)


def test_loss_target_needs_3d_for_aux_samples():
    with pytest.raises(ValueError, match="auxiliary"):
        loss_target(
            torch.zeros(2, 5, 2), torch.zeros(2, 5, 2), torch.ones(2, 5), torch.zeros(2, 21, 3),
            torch.tensor([True, False]), input_size=64,
        )
    with pytest.raises(ValueError, match="is_target.*\\(3,\\)"):
        loss_target(
            torch.zeros(2, 5, 2), torch.zeros(2, 5, 2), torch.ones(2, 5), torch.zeros(2, 21, 3),
            torch.ones(3, dtype=torch.bool), input_size=64,
        )
    with pytest.raises(ValueError, match="input_size"):
        loss_target(
            torch.zeros(2, 5, 2), torch.zeros(2, 5, 2), torch.ones(2, 5), torch.zeros(2, 21, 3),
            torch.ones(2, dtype=torch.bool), input_size=0,
        )


def test_loss_weights_for_part():
    assert LossWeights.for_part("body") == LossWeights()
    hand = LossWeights.for_part("hand")
    assert hand.w_3d == 10.0 and hand.w_2d == 1.0 and hand.lambda_ax == LossWeights().lambda_ax
    assert LossWeights.for_part("hand", w_3d=2.0, lambda_tg=0.0) == LossWeights(w_3d=2.0, w_2d=1.0, lambda_tg=0.0)
    assert LossWeights.for_part("hand", w_2d=3.0).w_2d == 3.0
    with pytest.raises(ValueError, match="part"):
        LossWeights.for_part("face")  # type: ignore[arg-type]


def test_shape_sq_reg_matches_numpy_and_masks():
    from neuralannot_cli.losses import shape_sq_reg

    rng = np.random.default_rng(7)
    betas = rng.normal(size=(5, 10)) * 3
    mask = np.array([True, False, True, True, False])
    ref_all = float(np.mean(np.sum(betas**2, axis=1)))
    ref_mask = float(np.mean(np.sum(betas[mask] ** 2, axis=1)))
    t = torch.tensor(betas, dtype=torch.float64, requires_grad=True)
    assert float(shape_sq_reg(t).detach()) == pytest.approx(ref_all, rel=1e-12)
    assert float(shape_sq_reg(t, torch.tensor(mask)).detach()) == pytest.approx(ref_mask, rel=1e-12)
    shape_sq_reg(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * betas / 5, rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(5, 10, 1\)"):
        shape_sq_reg(t.detach()[..., None])
    from neuralannot_cli.losses import LossWeights

    assert LossWeights().w_shape == 1e-3 and LossWeights.for_part("hand", w_shape=0.0).w_shape == 0.0
