"""Tests for neuralannot_cli.camera against hand-written float64 numpy references and round trips."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from neuralannot_cli import camera as cam

DTYPES = [torch.float32, torch.float64]
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _body_points(batch: int, n: int, dtype, seed=0, depth_spread=0.3) -> torch.Tensor:
    """Root-relative points of a body-sized object (metres): x, y in [-0.5, 0.5], z in +-depth_spread/2."""
    p = torch.rand(batch, n, 3, generator=_gen(seed), dtype=torch.float64) - 0.5
    p[..., 2] *= depth_spread
    return p.to(dtype)


# ---------------------------------------------------------------------------------- perspective


@pytest.mark.parametrize("dtype", DTYPES)
def test_project_perspective_matches_numpy_K(dtype):
    pts = torch.rand(2, 3, 10, 3, generator=_gen(1), dtype=torch.float64) + torch.tensor([-0.5, -0.5, 2.0], dtype=torch.float64)
    focal = torch.tensor([[1000.0, 1100.0], [800.0, 790.0]], dtype=torch.float64)[:, None].expand(2, 3, 2)
    princpt = torch.tensor([[320.0, 240.0], [500.5, 300.25]], dtype=torch.float64)[:, None].expand(2, 3, 2)
    got = cam.project_perspective(pts.to(dtype), focal.to(dtype), princpt.to(dtype))
    assert got.shape == (2, 3, 10, 2) and got.dtype == dtype
    ref = np.empty((2, 3, 10, 2))
    for i in range(2):
        for j in range(3):
            K = np.array([[focal[i, j, 0], 0, princpt[i, j, 0]], [0, focal[i, j, 1], princpt[i, j, 1]], [0, 0, 1]])
            h = (K @ pts[i, j].numpy().T).T
            ref[i, j] = h[:, :2] / h[:, 2:]
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=RTOL[dtype] * 10)


def test_project_perspective_y_down_and_eps():
    # A point below the optical axis (y > 0 in OpenCV) lands below the principal point (larger v).
    uv = cam.project_perspective(torch.tensor([[0.0, 0.1, 1.0]]), (500.0, 500.0), (100.0, 100.0))
    assert torch.allclose(uv, torch.tensor([[100.0, 150.0]]))
    # z = 0 and behind the camera: finite, clamped to PROJECT_EPS.
    uv = cam.project_perspective(torch.tensor([[1e-3, 0.0, 0.0], [1e-3, 0.0, -1.0]], dtype=torch.float64), (1.0, 1.0), (0.0, 0.0))
    assert torch.isfinite(uv).all()
    assert torch.allclose(uv[:, 0], torch.full((2,), 1e-3 / cam.PROJECT_EPS, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_unproject_round_trip(dtype):
    pts = _body_points(4, 20, torch.float64, seed=2) + torch.tensor([0.1, -0.2, 3.0], dtype=torch.float64)
    focal = torch.tensor([1200.0, 1150.0], dtype=torch.float64)
    princpt = torch.tensor([640.0, 360.0], dtype=torch.float64)
    uv = cam.project_perspective(pts.to(dtype), focal, princpt)
    back = cam.unproject(uv, pts[..., 2].to(dtype), focal, princpt)
    assert torch.allclose(back.double(), pts, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


def test_pinhole_camera_dataclass():
    c = cam.PinholeCamera(focal_px=(1000.0, 1000.0), princpt_px=(320.0, 240.0), image_hw=(480, 640))
    K = c.K(dtype=torch.float64)
    assert torch.equal(K, torch.tensor([[1000.0, 0, 320.0], [0, 1000.0, 240.0], [0, 0, 1]], dtype=torch.float64))
    pts = _body_points(1, 5, torch.float64, seed=3) + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    h = (K @ pts[0].T).T
    assert torch.allclose(c.project(pts)[0], h[:, :2] / h[:, 2:], atol=1e-10)
    assert torch.allclose(c.unproject(c.project(pts), pts[..., 2]), pts, atol=1e-10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.focal_px = (1.0, 1.0)  # type: ignore[misc]
    with pytest.raises(ValueError, match="focal_px"):
        cam.PinholeCamera(focal_px=(-1.0, 1.0), princpt_px=(0.0, 0.0), image_hw=(10, 10))
    with pytest.raises(ValueError, match="image_hw"):
        cam.PinholeCamera(focal_px=(1.0, 1.0), princpt_px=(0.0, 0.0), image_hw=(10,))


# ----------------------------------------------------------------------------- weak perspective


@pytest.mark.parametrize("dtype", DTYPES)
def test_project_weak_persp_formula(dtype):
    pts = _body_points(3, 7, dtype, seed=4)
    cam_sxy = torch.tensor([[0.9, 0.1, -0.2], [1.1, 0.0, 0.05], [0.5, -0.3, 0.3]], dtype=dtype)
    got = cam.project_weak_persp(pts, cam_sxy)
    p, c = pts.double().numpy(), cam_sxy.double().numpy()
    ref = c[:, None, :1] * (p[..., :2] + c[:, None, 1:])
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_weak_persp_transl_round_trips(dtype):
    cam_sxy = torch.tensor([[0.9, 0.1, -0.2], [1.1, 0.0, 0.05]], dtype=dtype)
    f, S = 5000.0, 256.0
    t = cam.weak_persp_to_transl(cam_sxy, f, S)
    # SPIN's formula written by hand: tz = 2 f / (S s).
    ref_tz = 2 * f / (S * cam_sxy[:, 0].double())
    assert torch.allclose(t[:, 2].double(), ref_tz, rtol=RTOL[dtype] * 10)
    assert torch.equal(t[:, :2], cam_sxy[:, 1:])
    assert torch.allclose(cam.transl_to_weak_persp(t, f, S), cam_sxy, rtol=RTOL[dtype] * 10)
    transl = torch.tensor([[0.1, -0.2, 3.0], [0.0, 0.3, 12.0]], dtype=dtype)
    back = cam.weak_persp_to_transl(cam.transl_to_weak_persp(transl, f, S), f, S)
    assert torch.allclose(back, transl, rtol=RTOL[dtype] * 10)
    # Per-element focal and crop size broadcast.
    t2 = cam.weak_persp_to_transl(cam_sxy, torch.tensor([5000.0, 1000.0], dtype=dtype), torch.tensor([256.0, 192.0], dtype=dtype))
    assert torch.allclose(t2[1, 2].double(), torch.tensor(2 * 1000.0 / (192.0 * 1.1), dtype=torch.float64), rtol=1e-6)


def test_weak_persp_matches_root_depth_plane_exactly():
    # Points at the root depth: perspective with (f, S/2) and transl == weak perspective, mapped to crop px.
    f, S = 5000.0, 224.0
    cam_sxy = torch.tensor([[0.8, 0.05, -0.1]], dtype=torch.float64)
    pts = _body_points(1, 30, torch.float64, seed=5)
    pts[..., 2] = 0.0
    t = cam.weak_persp_to_transl(cam_sxy, f, S)
    centre = (S - 1) / 2  # crop centre, pixel-centre convention
    uv_px = cam.project_perspective(pts + t[:, None], (f, f), (centre, centre))
    uv_norm = cam.project_weak_persp(pts, cam_sxy)
    assert torch.allclose((uv_px - centre) / (S / 2), uv_norm, atol=1e-12)


def test_weak_persp_approximates_perspective_for_distant_shallow_object():
    # Body 1 m tall with 0.3 m depth spread at ~45 m (f = 5000, 224 px crop): relative error ~ dz / tz.
    f, S = 5000.0, 224.0
    cam_sxy = torch.tensor([[1.1, 0.02, -0.03]], dtype=torch.float64)
    pts = _body_points(1, 50, torch.float64, seed=6, depth_spread=0.3)
    t = cam.weak_persp_to_transl(cam_sxy, f, S)
    uv_norm_persp = cam.project_perspective(pts + t[:, None], (f, f), (S / 2, S / 2)) / (S / 2) - 1.0
    uv_norm_weak = cam.project_weak_persp(pts, cam_sxy)
    err = (uv_norm_persp - uv_norm_weak).abs().max().item()
    tz = t[0, 2].item()
    bound = 0.15 / (tz - 0.15) * uv_norm_weak.abs().max().item() + 1e-12
    assert err <= bound
    assert err < 2e-3  # well under a pixel of a 224 crop (1 px = 2/224 ~ 9e-3)
    assert err > 0  # and the test is not vacuous: perspective effects exist


# ---------------------------------------------------------------------------------- crop <-> full


def _crop_setup(dtype):
    box_center = torch.tensor([[700.0, 380.0], [200.0, 650.0], [960.0, 540.0]], dtype=dtype)
    box_size = torch.tensor([300.0, 150.0, 900.0], dtype=dtype)
    focal = torch.tensor([1500.0, 1500.0, 2202.9], dtype=dtype)
    princpt = torch.tensor([[960.0, 540.0], [955.5, 545.0], [960.0, 540.0]], dtype=dtype)
    cam_sxy = torch.tensor([[0.9, 0.1, -0.2], [1.2, -0.05, 0.03], [0.6, 0.0, 0.4]], dtype=dtype)
    return box_center, box_size, focal, princpt, cam_sxy


def test_cam_crop_to_full_matches_cliff_formula_numpy():
    box_center, box_size, focal, princpt, cam_sxy = _crop_setup(torch.float64)
    got = cam.cam_crop_to_full(cam_sxy, box_center, box_size, focal, princpt).numpy()
    c, bc, b, f, p = cam_sxy.numpy(), box_center.numpy(), box_size.numpy(), focal.numpy(), princpt.numpy()
    bs = b * c[:, 0]
    ref = np.stack([c[:, 1] + 2 * (bc[:, 0] - p[:, 0]) / bs, c[:, 2] + 2 * (bc[:, 1] - p[:, 1]) / bs, 2 * f / bs], -1)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cam_crop_to_full_projection_equals_crop_affine(dtype):
    """Exact for points at the root depth (weak-perspective assumption), square box, square pixels."""
    box_center, box_size, focal, princpt, cam_sxy = _crop_setup(dtype)
    pts = _body_points(3, 40, dtype, seed=7)
    pts[..., 2] = 0.0
    transl_full = cam.cam_crop_to_full(cam_sxy, box_center, box_size, focal, princpt)
    uv_full = cam.project_perspective(pts + transl_full[:, None], torch.stack([focal, focal], -1), princpt)
    uv_affine = cam.crop_norm_to_full_px(cam.project_weak_persp(pts, cam_sxy), box_center, box_size)
    tol = 1e-3 if dtype == torch.float32 else 1e-9  # pixels
    assert (uv_full - uv_affine).abs().max() < tol
    # Round trip.
    back = cam.cam_full_to_crop(transl_full, box_center, box_size, focal, princpt)
    assert torch.allclose(back, cam_sxy, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transl_crop_to_full_projection_equals_crop_affine(dtype):
    box_center, box_size, focal, princpt, _ = _crop_setup(dtype)
    f_c, S = 5000.0, 256.0
    transl_crop = torch.tensor([[0.1, -0.2, 20.0], [0.0, 0.1, 35.0], [-0.3, 0.2, 12.0]], dtype=dtype)
    pts = _body_points(3, 40, dtype, seed=8)
    pts[..., 2] = 0.0
    transl_full = cam.transl_crop_to_full(transl_crop, box_center, box_size, focal, princpt, f_c, S)
    uv_full = cam.project_perspective(pts + transl_full[:, None], torch.stack([focal, focal], -1), princpt)
    crop_centre = (S - 1) / 2  # pixel-centre convention of data.pipeline; S / 2 in SPIN gives the same result
    uv_crop = cam.project_perspective(pts + transl_crop[:, None], (f_c, f_c), (crop_centre, crop_centre))
    # Crop pixel -> full pixel through the box affine, written by hand.
    uv_affine = box_center[:, None] + (uv_crop - crop_centre) * (box_size / S)[:, None, None]
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    assert (uv_full - uv_affine).abs().max() < tol
    back = cam.transl_full_to_crop(transl_full, box_center, box_size, focal, princpt, f_c, S)
    assert torch.allclose(back, transl_crop, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)
    # Consistent with the weak-perspective route (CLIFF).
    cam_sxy = cam.transl_to_weak_persp(transl_crop, f_c, S)
    via_weak = cam.cam_crop_to_full(cam_sxy, box_center, box_size, focal, princpt)
    assert torch.allclose(via_weak, transl_full, rtol=RTOL[dtype] * 10)


def test_crop_to_full_non_planar_points_only_approximate():
    box_center, box_size, focal, princpt, cam_sxy = _crop_setup(torch.float64)
    pts = _body_points(3, 40, torch.float64, seed=9, depth_spread=0.3)
    transl_full = cam.cam_crop_to_full(cam_sxy, box_center, box_size, focal, princpt)
    uv_full = cam.project_perspective(pts + transl_full[:, None], torch.stack([focal, focal], -1), princpt)
    uv_affine = cam.crop_norm_to_full_px(cam.project_weak_persp(pts, cam_sxy), box_center, box_size)
    err = (uv_full - uv_affine).abs().amax(dim=(-1, -2))
    # Error is the weak-perspective one: ~ (dz / tz) * |offset from the principal point| in pixels.
    offset = (uv_affine - princpt[:, None]).abs().amax(dim=(-1, -2))
    assert (err > 0).all()
    assert (err <= 0.16 / (transl_full[:, 2] - 0.15) * offset).all()


def test_crop_norm_full_px_round_trip_and_corners():
    c = torch.tensor([100.0, 50.0], dtype=torch.float64)
    corners = torch.tensor([[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)
    full = cam.crop_norm_to_full_px(corners, c[None], torch.tensor([40.0], dtype=torch.float64))
    assert torch.equal(full[0], torch.tensor([[80.0, 30.0], [120.0, 70.0], [100.0, 50.0]], dtype=torch.float64))
    assert torch.allclose(cam.full_px_to_crop_norm(full, c[None], torch.tensor([40.0], dtype=torch.float64)), corners)


# ------------------------------------------------------------------------------ shapes, grads


@pytest.mark.parametrize(
    "call, received",
    [
        (lambda: cam.project_perspective(torch.zeros(4, 2), (1.0, 1.0), (0.0, 0.0)), "(4, 2)"),
        (lambda: cam.project_perspective(torch.zeros(4, 3), (1.0, 1.0, 1.0), (0.0, 0.0)), "(3,)"),
        (lambda: cam.project_weak_persp(torch.zeros(2, 4, 3), torch.zeros(2, 2)), "(2, 2)"),
        (lambda: cam.weak_persp_to_transl(torch.zeros(2, 4), 1.0, 1.0), "(2, 4)"),
        (lambda: cam.transl_to_weak_persp(torch.zeros(3), 1.0, 1.0), None),
        (lambda: cam.unproject(torch.zeros(5, 2), torch.zeros(4), (1.0, 1.0), (0.0, 0.0)), "(4,)"),
        (lambda: cam.cam_crop_to_full(torch.zeros(1, 3), torch.zeros(1, 3), 1.0, 1.0, (0.0, 0.0)), "(1, 3)"),
        (lambda: cam.crop_norm_to_full_px(torch.zeros(5, 3), torch.zeros(2), 1.0), "(5, 3)"),
    ],
)
def test_bad_shapes_raise_value_error(call, received):
    if received is None:
        call()  # a single (3,) translation is valid
        return
    with pytest.raises(ValueError, match=re.escape(received)):
        call()


def test_gradcheck_smooth_functions():
    d = torch.float64
    pts = (_body_points(2, 4, d, seed=10) + torch.tensor([0.0, 0.0, 3.0], dtype=d)).requires_grad_(True)
    focal = torch.tensor([[900.0, 950.0], [1000.0, 1000.0]], dtype=d, requires_grad=True)
    princpt = torch.tensor([[300.0, 200.0], [310.0, 220.0]], dtype=d, requires_grad=True)
    assert torch.autograd.gradcheck(cam.project_perspective, (pts, focal, princpt))
    uv = cam.project_perspective(pts, focal, princpt).detach().requires_grad_(True)
    depth = pts[..., 2].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(cam.unproject, (uv, depth, focal, princpt))
    cam_sxy = torch.tensor([[0.9, 0.1, -0.2], [1.2, 0.0, 0.1]], dtype=d, requires_grad=True)
    assert torch.autograd.gradcheck(cam.project_weak_persp, (pts, cam_sxy))
    assert torch.autograd.gradcheck(lambda c: cam.weak_persp_to_transl(c, 5000.0, 256.0), (cam_sxy,))
    transl = torch.tensor([[0.1, 0.2, 20.0], [0.0, -0.1, 30.0]], dtype=d, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: cam.transl_to_weak_persp(t, 5000.0, 256.0), (transl,))
    box_center = torch.tensor([[700.0, 380.0], [200.0, 650.0]], dtype=d, requires_grad=True)
    box_size = torch.tensor([300.0, 150.0], dtype=d, requires_grad=True)
    f = torch.tensor([1500.0, 1600.0], dtype=d, requires_grad=True)
    pp = torch.tensor([[960.0, 540.0], [955.0, 545.0]], dtype=d)
    assert torch.autograd.gradcheck(cam.cam_crop_to_full, (cam_sxy, box_center, box_size, f, pp))
    assert torch.autograd.gradcheck(cam.cam_full_to_crop, (transl, box_center, box_size, f, pp))
    assert torch.autograd.gradcheck(
        lambda t, bc, b: cam.transl_crop_to_full(t, bc, b, f, pp, 5000.0, 256.0), (transl, box_center, box_size)
    )
    assert torch.autograd.gradcheck(
        lambda t, bc, b: cam.transl_full_to_crop(t, bc, b, f, pp, 5000.0, 256.0), (transl, box_center, box_size)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_finite_float32_and_float64(dtype):
    pts = torch.tensor([[[0.1, 0.2, 0.0], [0.1, 0.2, 2.0]]], dtype=dtype, requires_grad=True)
    uv = cam.project_perspective(pts, (1000.0, 1000.0), (100.0, 100.0))
    uv.sum().backward()
    assert torch.isfinite(pts.grad).all()
    cam_sxy = torch.tensor([[0.0, 0.1, 0.1], [0.9, 0.1, 0.1]], dtype=dtype, requires_grad=True)
    t = cam.cam_crop_to_full(cam_sxy, torch.tensor([[10.0, 20.0]], dtype=dtype), 100.0, 1000.0, (50.0, 50.0))
    assert torch.isfinite(t).all()
    t[1].sum().backward()
    assert torch.isfinite(cam_sxy.grad).all()
