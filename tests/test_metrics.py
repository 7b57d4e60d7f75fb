"""Metric functions against hand-computed values and an independent float64 numpy Procrustes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralannot_cli.evaluate import metrics as M


def _rotmat(axis, angle) -> np.ndarray:
    """Rodrigues' formula written out (independent of roma / the code under test)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _numpy_procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (N,3) aligned to y: the textbook SVD formula (Umeyama), float64, one sample at a time."""
    mx, my = x.mean(0), y.mean(0)
    x0, y0 = x - mx, y - my
    h = x0.T @ y0  # (3,3) = sum x y^T
    u, s, vt = np.linalg.svd(h)
    v = vt.T
    d = np.sign(np.linalg.det(v @ u.T))
    e = np.diag([1.0, 1.0, d])
    r = v @ e @ u.T
    scale = np.trace(np.diag(s) @ e) / (x0 ** 2).sum()
    t = my - scale * r @ mx
    return scale * x @ r.T + t


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_known_similarity_is_recovered_exactly(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 17, 3)) * 300.0
    rots = np.stack([_rotmat(rng.normal(size=3), rng.uniform(0.2, 3.0)) for _ in range(4)])
    scales = np.array([0.5, 1.0, 1.7, 3.0])
    trans = rng.normal(size=(4, 3)) * 1000.0
    y = scales[:, None, None] * np.einsum("bij,bnj->bni", rots, x) + trans[:, None]
    s, r, t = M.similarity_procrustes(torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype))
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    np.testing.assert_allclose(s.numpy(), scales, rtol=tol)
    np.testing.assert_allclose(r.numpy(), rots, atol=tol)
    np.testing.assert_allclose(t.numpy(), trans, atol=tol * 1000 * 5)
    err = M.pa_mpjpe(torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype))
    assert err.dtype == dtype
    assert float(err.max()) < (1e-8 if dtype == torch.float64 else 0.05)


def test_pa_alignment_matches_independent_numpy():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(6, 21, 3)) * 50
    gt = pred + rng.normal(size=pred.shape) * 20  # noisy, not an exact similarity
    gt[3] = pred[3] * np.array([-1.0, 1.0, 1.0])  # mirror image: the best proper rotation, not a reflection
    aligned = M.procrustes_align(torch.tensor(pred), torch.tensor(gt)).numpy()
    for b in range(6):
        ref = _numpy_procrustes(pred[b], gt[b])
        np.testing.assert_allclose(aligned[b], ref, atol=1e-9)
        expected = np.linalg.norm(ref - gt[b], axis=-1).mean()
        assert M.pa_mpjpe(torch.tensor(pred[b:b + 1]), torch.tensor(gt[b:b + 1])).item() == pytest.approx(expected, rel=1e-10)
    _, r, _ = M.similarity_procrustes(torch.tensor(pred), torch.tensor(gt))
    np.testing.assert_allclose(np.linalg.det(r.numpy()), 1.0, atol=1e-10)  # reflection excluded
    assert M.pa_mpjpe(torch.tensor(pred[3:4]), torch.tensor(gt[3:4])).item() > 1.0


def test_pa_with_mask_ignores_invalid_joints():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 10, 3))
    rot = _rotmat([1, 2, 3], 0.7)
    y = 2.0 * x @ rot.T + 5.0
    y_bad = y.copy()
    y_bad[0, 7, 0] += 100.0  # an outlier that is masked out
    valid = np.ones((1, 10))
    valid[0, 7] = 0
    err = M.pa_mpjpe(torch.tensor(x), torch.tensor(y_bad), torch.tensor(valid))
    assert err.item() < 1e-9
    per_joint = M.pa_mpjpe(torch.tensor(x), torch.tensor(y_bad), torch.tensor(valid), per_joint=True)
    assert per_joint[0, 7].item() == pytest.approx(100.0, abs=1e-6)


def test_mpjpe_root_alignment_by_hand():
    gt = torch.tensor([[[0.0, 0, 0], [100.0, 0, 0], [0.0, 200, 0]]])
    pred = gt + torch.tensor([1000.0, -50.0, 7.0])  # a pure translation -> 0 after root alignment
    assert M.mpjpe(pred, gt, root_index=0).item() == pytest.approx(0.0)
    pred2 = pred.clone()
    pred2[0, 1, 0] += 30.0  # one joint off by 30 mm; root unchanged
    assert M.mpjpe(pred2, gt, root_index=0).item() == pytest.approx(10.0)
    # root = mean of joints 1 and 2: moving joint 1 by 30 moves the root by 15 -> errors 15, 15, 15
    assert M.mpjpe(pred2, gt, root_index=(1, 2)).item() == pytest.approx(15.0)
    valid = torch.tensor([[1.0, 0.0, 1.0]])
    assert M.mpjpe(pred2, gt, root_index=0, valid=valid).item() == pytest.approx(0.0)
    assert torch.isnan(M.mpjpe(pred2, gt, valid=torch.zeros(1, 3))).all()


def test_mpvpe_and_pa_mpvpe():
    rng = np.random.default_rng(3)
    v = torch.tensor(rng.normal(size=(2, 50, 3)))
    shifted = v + torch.tensor([3.0, 4.0, 0.0])
    assert M.mpvpe(shifted, v).numpy() == pytest.approx([5.0, 5.0])
    root_p = shifted[:, 0]
    root_g = v[:, 0]
    assert M.mpvpe(shifted, v, root_p, root_g).numpy() == pytest.approx([0.0, 0.0], abs=1e-12)
    rot = torch.tensor(_rotmat([0, 0, 1], 1.0))
    assert M.pa_mpvpe(3.0 * v @ rot.T, v).numpy() == pytest.approx([0.0, 0.0], abs=1e-9)


def test_keypoint_error_2d_weighted():
    pred = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]]])
    gt = torch.zeros(1, 3, 2)
    assert M.keypoint_error_2d(pred, gt).item() == pytest.approx(5.0)  # (0 + 5 + 10) / 3
    w = torch.tensor([[1.0, 1.0, 0.0]])
    assert M.keypoint_error_2d(pred, gt, w).item() == pytest.approx(2.5)
    w = torch.tensor([[0.0, 0.5, 1.0]])
    assert M.keypoint_error_2d(pred, gt, w).item() == pytest.approx((2.5 + 10) / 1.5)


def test_pck_auc_uniform_errors_is_analytic():
    # errors uniform on [0, E]: PCK(t) = t / E (t <= E), 1 beyond; AUC over [0, 50] / 50.
    n = 20000
    for e_max, expected in ((50.0, 0.5), (100.0, 0.25), (25.0, 1 - 12.5 / 50)):
        errors = (np.arange(n) + 0.5) / n * e_max  # a deterministic uniform sample
        auc, thr, curve = M.pck_auc(np.stack([errors, errors[::-1]], 1))  # two joints
        assert auc == pytest.approx(expected, abs=2e-3)
        assert thr.shape == (100,) and thr[0] == 0 and thr[-1] == 50
        np.testing.assert_allclose(curve.numpy(), np.minimum(thr.numpy() / e_max, 1.0), atol=2e-3)


def test_pck_curve_by_hand_and_mean_over_joints():
    errors = torch.tensor([[10.0, 0.0], [30.0, 0.0]])  # joint 0: 10, 30; joint 1: always 0
    thr = torch.tensor([0.0, 10.0, 20.0, 30.0])
    curve = M.pck_curve(errors, thr)
    np.testing.assert_allclose(curve.numpy(), [0.5, 0.75, 0.75, 1.0])
    valid = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # joint 1 never valid: left out
    np.testing.assert_allclose(M.pck_curve(errors, thr, valid).numpy(), [0.0, 0.5, 0.5, 1.0])
    auc, _, _ = M.pck_auc(torch.tensor([[20.0]]), lo=0.0, hi=40.0, steps=5)  # thresholds 0,10,20,30,40
    assert auc == pytest.approx((0 + 0 + 0.5 * 10 + 10 + 10) / 40)  # trapezoid of 0,0,1,1,1


def _mpii_3d_pck_reference(errors: np.ndarray) -> tuple[float, float]:
    """``errors (frames, 17)`` -> (3DPCK, AUC) as ``mpii_compute_3d_pck.m`` computes them: per joint group of
    ``mpii_get_pck_auc_joint_groups.m`` (1-based joint numbers), then the size-weighted total; AUC = 100 x the
    plain mean of the total curve over ``0:5:150``."""
    groups = ([1, 17], [2], [3, 6], [4, 7], [5, 8], [16], [9, 12, 15], [10, 13], [11, 14])
    thresh = np.arange(0, 151, 5)
    nf = errors.shape[0]
    total_curve, total_pck, joint_count = np.zeros(len(thresh)), 0.0, 0
    for g in groups:
        e = errors[:, [j - 1 for j in g]]
        curve = np.array([(e < t).sum() / (len(g) * nf) for t in thresh])
        total_curve += curve * len(g)
        total_pck += 100 * (e < 150).sum() / (len(g) * nf) * len(g)
        joint_count += len(g)
    total_curve /= joint_count
    return total_pck / joint_count, 100 * total_curve.sum() / len(thresh)


def test_pck_3d_by_hand_and_against_the_mpii_script():
    # one joint, five frames: correct strictly below t; 3DPCK@150 = 3/5; AUC: each error is below
    # 30, 29, 1, 0, 0 of the 31 thresholds 0:5:150 -> 100 * 60 / 155
    pck, auc, thr, curve = M.pck_3d(torch.tensor([0.0, 5.0, 149.9, 150.0, 200.0]))
    assert pck == pytest.approx(60.0) and auc == pytest.approx(100 * 60 / 155)
    assert thr.shape == (31,) and thr[0] == 0 and thr[-1] == 150 and curve[0] == 0
    # errors uniform on [0, 300): PCK(t) = t / 300 -> 3DPCK 50 %, AUC = 100 * mean(t) / 300 = 25 %
    n = 6000
    uni = (np.arange(n) + 0.5) / n * 300.0
    pck, auc, _, _ = M.pck_3d(np.stack([uni, uni[::-1]], 1))
    assert pck == pytest.approx(50.0, abs=0.02) and auc == pytest.approx(25.0, abs=0.02)
    # 17 joints with a spread of errors: the group-wise script's numbers
    rng = np.random.default_rng(0)
    err = np.abs(rng.normal(0, 90, (40, 17))) * rng.uniform(0.5, 1.5, 17)
    ref_pck, ref_auc = _mpii_3d_pck_reference(err)
    pck, auc, _, _ = M.pck_3d(err)
    assert pck == pytest.approx(ref_pck, abs=1e-9) and auc == pytest.approx(ref_auc, abs=1e-9)
    assert 10.0 < ref_pck < 99.0  # neither trivial end
    # invalid entries count neither as correct nor in the total
    valid = np.ones_like(err)
    valid[:5, 3] = 0
    keep = err[valid > 0]
    pck, auc, _, _ = M.pck_3d(err, valid)
    assert pck == pytest.approx(100 * (keep < 150).mean())
    assert np.isnan(M.pck_3d(err, np.zeros_like(err))[0])
    with pytest.raises(ValueError, match="multiple of step"):
        M.pck_3d(err, lo=0.0, hi=150.0, step=7.0)


def test_per_joint_mean():
    err = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(M.per_joint_mean(err).numpy(), [2.0, 4.0])
    np.testing.assert_allclose(M.per_joint_mean(err, torch.tensor([[1.0, 0.0], [1.0, 1.0]])).numpy(), [2.0, 6.0])


def test_shape_errors_are_value_errors():
    with pytest.raises(ValueError, match=r"\(2, 5, 3\)"):
        M.pa_mpjpe(torch.zeros(2, 5, 3), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="last dim 3"):
        M.mpjpe(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="valid"):
        M.pa_mpjpe(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), valid=torch.ones(5))
    with pytest.raises(ValueError):
        M.pck_auc(torch.zeros(3), lo=5, hi=5)


def test_f_score_against_hand_counts_and_a_brute_force_reference():
    """FreiHAND's F-score: precision / recall are the fractions of points whose nearest neighbour in the other set
    is closer than the threshold (strict), F = 2PR / (P + R)."""
    gt = torch.tensor([[[0.0, 0, 0], [10, 0, 0], [20, 0, 0], [30, 0, 0]]], dtype=torch.float64)
    pred = torch.tensor([[[1.0, 0, 0], [10, 4, 0], [26, 0, 0]]], dtype=torch.float64)  # 1, 4, 4 mm (26 <-> 30)
    # threshold 5: pred all within (3/3); gt: 0 (1), 10 (4), 20 (6 > 5 to 26), 30 (4) -> 3/4
    assert float(M.f_score(pred, gt, 5.0)[0]) == pytest.approx(2 * 1 * 0.75 / 1.75)
    # threshold 4 (strict): pred 1/3 (only the 1 mm one); gt 1/4 -> F = 2 (1/3)(1/4) / (7/12) = 2/7
    assert float(M.f_score(pred, gt, 4.0)[0]) == pytest.approx(2 / 7)
    assert float(M.f_score(pred + 100.0, gt, 5.0)[0]) == 0.0  # nothing close: P = R = 0 -> 0, not NaN
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 10, (3, 50, 3)), rng.normal(0, 10, (3, 40, 3))
    got = M.f_score(a, b, 5.0).numpy()
    for i in range(3):  # float64 brute force
        d = np.sqrt(((a[i][:, None] - b[i][None]) ** 2).sum(-1))
        p, r = (d.min(1) < 5.0).mean(), (d.min(0) < 5.0).mean()
        assert got[i] == pytest.approx(0.0 if p + r == 0 else 2 * p * r / (p + r), abs=1e-12)
    with pytest.raises(ValueError, match="batch sizes differ"):
        M.f_score(a[:2], b, 5.0)
    with pytest.raises(ValueError, match="threshold"):
        M.f_score(a, b, 0.0)
