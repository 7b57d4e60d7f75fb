"""Tests for neuralannot_cli.rotation against independent float64 references (numpy formulas, roma, smplx)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch
from smplx.lbs import batch_rodrigues

from neuralannot_cli import rotation as rot

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _np_rodrigues(w: np.ndarray) -> np.ndarray:
    """Hand-written float64 Rodrigues for one vector."""
    theta = np.linalg.norm(w)
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * K + (1 - math.cos(theta)) * K @ K


def _np_elementary(axis: str, t: float) -> np.ndarray:
    c, s = math.cos(t), math.sin(t)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _random_rotvecs(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return roma.random_rotvec(shape, dtype=dtype, generator=g)


# ------------------------------------------------------------------------------------ 6D layout


def test_rot6d_exact_layout_known_matrix():
    # 90 deg about z: columns e_y, -e_x, e_z.
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([0.0, 1.0, 0.0, -1.0, 0.0, 0.0], dtype=torch.float64)  # col 0 then col 1
    assert torch.equal(rot.rotmat_to_rot6d(R), expected)
    assert torch.allclose(rot.rot6d_to_rotmat(expected), R, atol=1e-15)


def test_rot6d_layout_generic_matrix_entries():
    R = rot.rotvec_to_rotmat(torch.tensor([0.3, -0.5, 0.7], dtype=torch.float64))
    r = R.numpy()
    hand = np.array([r[0, 0], r[1, 0], r[2, 0], r[0, 1], r[1, 1], r[2, 1]])
    np.testing.assert_array_equal(rot.rotmat_to_rot6d(R).numpy(), hand)
    # The other two layouts of the field, written by hand.
    inter = np.array([r[0, 0], r[0, 1], r[1, 0], r[1, 1], r[2, 0], r[2, 1]])  # Hand4Whole view(-1,3,2)
    rows = np.array([r[0, 0], r[0, 1], r[0, 2], r[1, 0], r[1, 1], r[1, 2]])  # pytorch3d
    np.testing.assert_array_equal(rot.rot6d_to_rot6d_interleaved(rot.rotmat_to_rot6d(R)).numpy(), inter)
    np.testing.assert_array_equal(rot.rot6d_interleaved_to_rot6d(torch.from_numpy(inter)).numpy(), hand)
    np.testing.assert_array_equal(rot.rotmat_to_rot6d_rows(R).numpy(), rows)
    np.testing.assert_allclose(rot.rot6d_rows_to_rotmat(torch.from_numpy(rows)).numpy(), r, atol=1e-14)


def _np_gram_schmidt_columns(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    b1 = a1 / np.linalg.norm(a1)
    b2 = a2 - (b1 @ a2) * b1
    b2 = b2 / np.linalg.norm(b2)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rot6d_decode_unnormalised_matches_numpy_gram_schmidt(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 6, generator=g, dtype=torch.float64) * 3.0
    got = rot.rot6d_to_rotmat(x.to(dtype))
    assert got.shape == (4, 5, 3, 3) and got.dtype == dtype
    ref = np.stack([_np_gram_schmidt_columns(v[:3], v[3:]) for v in x.reshape(-1, 6).numpy()]).reshape(4, 5, 3, 3)
    np.testing.assert_allclose(got.double().numpy(), ref, atol=TOL[dtype] * 10)
    # Interleaved decoding = Hand4Whole's (view(-1,3,2), columns), written independently.
    inter = x.reshape(-1, 6).numpy()
    ref_inter = np.stack([_np_gram_schmidt_columns(v.reshape(3, 2)[:, 0], v.reshape(3, 2)[:, 1]) for v in inter])
    got_inter = rot.rot6d_to_rotmat(rot.rot6d_interleaved_to_rot6d(x.reshape(-1, 6)))
    np.testing.assert_allclose(got_inter.numpy(), ref_inter, atol=1e-12)
    # pytorch3d decoding: rows.
    ref_rows = np.stack([_np_gram_schmidt_columns(v[:3], v[3:]).T for v in inter])
    np.testing.assert_allclose(rot.rot6d_rows_to_rotmat(x.reshape(-1, 6)).numpy(), ref_rows, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rot6d_round_trips(dtype):
    R = roma.random_rotmat((3, 7), dtype=dtype, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(rot.rot6d_to_rotmat(rot.rotmat_to_rot6d(R)), R, atol=TOL[dtype] * 10)
    x = torch.randn(3, 7, 6, dtype=dtype, generator=torch.Generator().manual_seed(3))
    assert torch.equal(rot.rot6d_interleaved_to_rot6d(rot.rot6d_to_rot6d_interleaved(x)), x)
    w = _random_rotvecs((3, 7), dtype)
    assert torch.allclose(rot.rot6d_to_rotvec(rot.rotvec_to_rot6d(w)), w, atol=TOL[dtype] * 100)


def test_rot6d_degenerate_input_is_finite():
    out = rot.rot6d_to_rotmat(torch.zeros(2, 6))
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------------- axis-angle


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotvec_to_rotmat_matches_numpy_and_smplx(dtype):
    w = _random_rotvecs((64,), torch.float64, seed=4)
    w = torch.cat([w, torch.tensor([[0.0, 0.0, 0.0], [1e-9, 0.0, 0.0], [0.0, math.pi, 0.0]], dtype=torch.float64)])
    ref = np.stack([_np_rodrigues(v) for v in w.numpy()])
    got = rot.rotvec_to_rotmat(w.to(dtype))
    np.testing.assert_allclose(got.double().numpy(), ref, atol=TOL[dtype] * 10)
    smplx_R = batch_rodrigues(w.to(dtype))
    tol = 1e-6 if dtype == torch.float64 else 2e-6
    assert torch.allclose(got, smplx_R, atol=tol), (got - smplx_R).abs().max()


def test_rotvec_to_rotmat_batch_dims():
    w = _random_rotvecs((2, 3, 4), torch.float64)
    R = rot.rotvec_to_rotmat(w)
    assert R.shape == (2, 3, 4, 3, 3)
    assert torch.allclose(R.reshape(-1, 3, 3), batch_rodrigues(w.reshape(-1, 3)), atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotmat_to_rotvec_round_trip_including_near_zero_and_pi(dtype):
    w = _random_rotvecs((100,), torch.float64, seed=5)
    axis = torch.nn.functional.normalize(torch.tensor([[0.3, -0.2, 0.9]], dtype=torch.float64))
    special = torch.cat(
        [
            axis * 0.0,
            axis * 1e-7,
            axis * 1e-3,
            axis * (math.pi - 1e-3),
            axis * (math.pi - 1e-6),
        ]
    )
    w = torch.cat([w, special])
    back = rot.rotmat_to_rotvec(rot.rotvec_to_rotmat(w.to(dtype)))
    # Compare as rotations (a rotvec at pi and its negation are the same rotation) and as vectors.
    dist = rot.rotmat_geodesic_distance(rot.rotvec_to_rotmat(back.double()), rot.rotvec_to_rotmat(w))
    assert dist.max() < (1e-5 if dtype == torch.float32 else 1e-9)
    assert (back.double().norm(dim=-1) <= math.pi + 1e-6).all()
    assert torch.allclose(back[:-2].double(), w[:-2], atol=TOL[dtype] * 100)


def test_rotmat_to_rotvec_exact_pi():
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # pi about x
    w = rot.rotmat_to_rotvec(R)
    assert torch.allclose(w.abs(), torch.tensor([math.pi, 0.0, 0.0], dtype=torch.float64), atol=1e-12)


def test_rotvec_compose_order():
    a = _random_rotvecs((10,), torch.float64, seed=6)
    b = _random_rotvecs((10,), torch.float64, seed=7)
    got = rot.rotvec_to_rotmat(rot.rotvec_compose(a, b))
    ref = np.stack([_np_rodrigues(x) @ _np_rodrigues(y) for x, y in zip(a.numpy(), b.numpy())])
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)
    # Broadcasting a single outer rotation over a batch.
    got_b = rot.rotvec_compose(a[:1], b)
    assert got_b.shape == (10, 3)


def test_geodesic_distance_against_numpy():
    a = _random_rotvecs((50,), torch.float64, seed=8)
    b = _random_rotvecs((50,), torch.float64, seed=9)
    Ra, Rb = rot.rotvec_to_rotmat(a), rot.rotvec_to_rotmat(b)
    got = rot.rotmat_geodesic_distance(Ra, Rb)
    ref = []
    for x, y in zip(Ra.numpy(), Rb.numpy()):
        c = (np.trace(x.T @ y) - 1) / 2
        ref.append(math.acos(min(1.0, max(-1.0, c))))
    np.testing.assert_allclose(got.numpy(), np.array(ref), atol=1e-7)
    # Small angle: exact to the angle itself.
    w = torch.tensor([1e-6, 0.0, 0.0], dtype=torch.float64)
    d = rot.rotmat_geodesic_distance(torch.eye(3, dtype=torch.float64), rot.rotvec_to_rotmat(w))
    assert abs(d.item() - 1e-6) < 1e-12


# -------------------------------------------------------------------------------------- Euler


@pytest.mark.parametrize("convention", ["XYZ", "ZYX", "YXZ", "xyz", "zyx", "ZXZ", "xzx"])
def test_euler_to_rotmat_matches_hand_written_products(convention):
    g = torch.Generator().manual_seed(10)
    angles = (torch.rand(20, 3, generator=g, dtype=torch.float64) - 0.5) * 2.0
    if convention[0].lower() == convention[2].lower():
        angles[:, 1] = angles[:, 1].abs() + 0.1  # proper Euler: middle angle returned in [0, pi]
    got = rot.euler_to_rotmat(angles, convention)
    ref = []
    for a in angles.numpy():
        mats = [_np_elementary(ax.lower(), t) for ax, t in zip(convention, a)]
        if convention.isupper():  # intrinsic: R = R0 @ R1 @ R2
            ref.append(mats[0] @ mats[1] @ mats[2])
        else:  # extrinsic: first applied first, about fixed axes -> R = R2 @ R1 @ R0
            ref.append(mats[2] @ mats[1] @ mats[0])
    np.testing.assert_allclose(got.numpy(), np.stack(ref), atol=1e-12)
    back = rot.rotmat_to_euler(got, convention)
    np.testing.assert_allclose(back.numpy(), angles.numpy(), atol=1e-9)


def test_euler_intrinsic_flag_and_degrees():
    angles = torch.tensor([[10.0, -20.0, 30.0]], dtype=torch.float64)
    a = rot.euler_to_rotmat(angles, "xyz", intrinsic=True, degrees=True)
    b = rot.euler_to_rotmat(torch.deg2rad(angles), "XYZ")
    assert torch.allclose(a, b, atol=1e-14)
    # Intrinsic XYZ == extrinsic zyx with angles reversed.
    c = rot.euler_to_rotmat(torch.deg2rad(angles).flip(-1), "zyx")
    assert torch.allclose(b, c, atol=1e-14)
    assert torch.allclose(rot.rotmat_to_euler(a, "XYZ", degrees=True), angles, atol=1e-9)


@pytest.mark.parametrize("bad", ["XY", "XXY", "XyZ", "abc", "XYZW"])
def test_euler_bad_convention(bad):
    with pytest.raises(ValueError, match="convention"):
        rot.euler_to_rotmat(torch.zeros(3), bad)


# ------------------------------------------------------------------------------------ mirroring


def test_mirror_rotvec_is_reflection_conjugation():
    w = _random_rotvecs((30,), torch.float64, seed=11)
    M = np.diag([-1.0, 1.0, 1.0])
    ref = np.stack([M @ _np_rodrigues(v) @ M for v in w.numpy()])
    got = rot.rotvec_to_rotmat(rot.mirror_rotvec(w))
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(rot.mirror_rotmat(rot.rotvec_to_rotmat(w)).numpy(), ref, atol=1e-12)
    assert torch.equal(rot.mirror_rotvec(rot.mirror_rotvec(w)), w)
    assert torch.equal(rot.mirror_rotvec(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([1.0, -2.0, -3.0]))


def test_mirror_flips_a_mirrored_point_set():
    # Rotating a point then mirroring it equals mirroring it then applying the mirrored rotation.
    w = _random_rotvecs((5,), torch.float64, seed=12)
    p = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    flip = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    lhs = (rot.rotvec_to_rotmat(w) @ p[..., None])[..., 0] * flip
    rhs = (rot.rotvec_to_rotmat(rot.mirror_rotvec(w)) @ (p * flip)[..., None])[..., 0]
    assert torch.allclose(lhs, rhs, atol=1e-12)


# ------------------------------------------------------------------------------ shapes, grads


@pytest.mark.parametrize(
    "fn, shape",
    [
        (rot.rot6d_to_rotmat, (4, 5)),
        (rot.rotmat_to_rot6d, (4, 3, 2)),
        (rot.rotvec_to_rotmat, (4, 4)),
        (rot.rotmat_to_rotvec, (3,)),
        (rot.rot6d_to_rotvec, (3, 3)),
        (rot.rotvec_to_rot6d, (6,)),
        (rot.mirror_rotvec, (2, 2)),
        (rot.mirror_rotmat, (9,)),
        (rot.euler_to_rotmat, (2, 4)),
        (rot.rotmat_to_euler, (2, 3)),
    ],
)
def test_bad_shapes_raise_value_error_with_shape(fn, shape):
    with pytest.raises(ValueError, match=re_escape(str(shape))):
        fn(torch.zeros(shape))


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


def test_non_tensor_raises_type_error():
    with pytest.raises(TypeError):
        rot.rotvec_to_rotmat([0.0, 0.0, 0.0])


def test_gradcheck_smooth_functions():
    g = torch.Generator().manual_seed(14)
    x6 = torch.randn(3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(rot.rot6d_to_rotmat, (x6,))
    w = (_random_rotvecs((3,), torch.float64, seed=15) * 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.rotvec_to_rotmat, (w,))
    assert torch.autograd.gradcheck(rot.rotvec_to_rot6d, (w,))
    R = rot.rotvec_to_rotmat(w.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.rotmat_to_rotvec, (R,))
    a = torch.randn(3, 3, dtype=torch.float64, generator=g).mul(0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: rot.euler_to_rotmat(t, "XYZ"), (a,))
    Rb = rot.rotvec_to_rotmat(_random_rotvecs((3,), torch.float64, seed=16) * 0.5)
    assert torch.autograd.gradcheck(lambda r: rot.rotmat_geodesic_distance(r, Rb), (R,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_finite_at_zero_and_near_pi(dtype):
    w = torch.tensor([[0.0, 0.0, 0.0], [1e-8, 0.0, 0.0], [0.0, 0.0, math.pi - 1e-4]], dtype=dtype, requires_grad=True)
    R = rot.rotvec_to_rotmat(w)
    R.sum().backward()
    assert torch.isfinite(w.grad).all()
    w2 = w.detach().clone().requires_grad_(True)
    rot.rotvec_to_rot6d(w2).pow(2).sum().backward()
    assert torch.isfinite(w2.grad).all()
    x6 = rot.rotvec_to_rot6d(w.detach()).clone().requires_grad_(True)
    rot.rot6d_to_rotvec(x6).sum().backward()
    assert torch.isfinite(x6.grad).all()
    # Geodesic distance of a matrix to itself: zero and zero gradient, not NaN.
    R0 = rot.rotvec_to_rotmat(w.detach()).clone().requires_grad_(True)
    d = rot.rotmat_geodesic_distance(R0, R0.detach())
    d.sum().backward()
    assert torch.isfinite(R0.grad).all() and d.abs().max() < 1e-3
