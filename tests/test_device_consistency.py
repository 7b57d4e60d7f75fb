"""Device/dtype hygiene of the helpers that run inside GPU loops (fitting, training, evaluation).

No GPU here: these pin (a) that the helpers rewritten to avoid per-step host-to-device copies still give
the textbook values, in float32 and float64 alike (a cached index/weight tensor of the wrong dtype would
make float64 inputs fail or lose precision), and (b) that the metrics accept ground truth given as numpy /
another dtype than the prediction, the CPU shadow of "GT on the CPU, prediction on the GPU".
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralannot_cli.body.joint_sets import JointSource, gather_joints
from neuralannot_cli.evaluate import metrics as M
from neuralannot_cli.fit.priors import SMPLX_ANGLE_PRIOR, angle_prior
from neuralannot_cli.rotation import mirror_rotvec


def _reference_gather(joints: np.ndarray, vertices: np.ndarray, recipe, regressors) -> np.ndarray:
    out = []
    for entry in recipe:
        pts = []
        for src in entry:
            if src.kind == "joint":
                pts.append(joints[:, src.index])
            elif src.kind == "vertex":
                pts.append(vertices[:, src.index])
            else:
                pts.append(np.einsum("v,bvc->bc", regressors[src.regressor][src.index], vertices))
        out.append(np.mean(pts, axis=0))
    return np.stack(out, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gather_joints_matches_reference_in_both_dtypes(dtype):
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(3, 6, 3))
    vertices = rng.normal(size=(3, 9, 3))
    reg = rng.random((2, 9))
    recipe = (
        (JointSource("joint", 4),),
        (JointSource("vertex", 7),),
        (JointSource("joint", 1), JointSource("vertex", 2)),  # average of two sources
        (JointSource("regressor", 1, "h36m"),),
    )
    want = _reference_gather(joints, vertices, recipe, {"h36m": reg})
    # twice: the second call uses the cached index tensors; the other dtype must not reuse this one's weights
    for _ in range(2):
        got = gather_joints(torch.tensor(joints, dtype=dtype), torch.tensor(vertices, dtype=dtype), recipe,
                            {"h36m": torch.tensor(reg)})
        assert got.dtype == dtype
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        np.testing.assert_allclose(got.double().numpy(), want, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_angle_prior_matches_formula(dtype):
    pose = torch.tensor(np.random.default_rng(1).normal(scale=0.7, size=(4, 21, 3)), dtype=dtype)
    want = np.zeros(4)
    p = pose.double().numpy()
    for idx, axis, sign in SMPLX_ANGLE_PRIOR:
        want += np.exp(sign * p[:, idx, axis]) ** 2
    got = angle_prior(pose)
    assert got.dtype == dtype
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-6 if dtype == torch.float32 else 1e-13)
    # gradient flows to exactly the four prior entries
    pose.requires_grad_(True)
    angle_prior(pose).sum().backward()
    nz = {(int(i), int(a)) for i, a in torch.nonzero(pose.grad[0]).tolist()}
    assert nz == {(i, a) for i, a, _ in SMPLX_ANGLE_PRIOR}


def test_mirror_rotvec_layout_and_dtype():
    v = torch.tensor([[0.1, -0.2, 0.3], [-1.0, 2.0, -3.0]], dtype=torch.float64)
    got = mirror_rotvec(v)
    assert got.dtype == torch.float64
    assert torch.equal(got, torch.tensor([[0.1, 0.2, -0.3], [-1.0, -2.0, 3.0]], dtype=torch.float64))
    assert torch.equal(mirror_rotvec(got), v)  # involution


def test_metrics_accept_numpy_ground_truth_of_another_dtype():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(2, 5, 3))
    # a known similarity: PA-MPJPE of a scaled, rotated, shifted copy is 0; MPJPE is its plain distance
    c, s = math.cos(0.4), math.sin(0.4)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    pred = torch.tensor(1.7 * gt @ rot.T + 0.3, dtype=torch.float32)
    pa = M.pa_mpjpe(pred, gt)  # gt: numpy float64
    np.testing.assert_allclose(pa.numpy(), 0.0, atol=1e-5)
    rel_p = pred.double().numpy() - pred.double().numpy()[:, :1]
    rel_g = gt - gt[:, :1]
    want = np.linalg.norm(rel_p - rel_g, axis=-1).mean(-1)
    np.testing.assert_allclose(M.mpjpe(pred, gt, 0).numpy(), want, rtol=1e-5)
