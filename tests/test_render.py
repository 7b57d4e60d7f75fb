"""Tests for the CPU rasteriser (neuralannot_cli.render) against float64 geometric references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralannot_cli.render import (
    DEFAULT_MESH_COLOR,
    RenderResult,
    draw_keypoints,
    overlay,
    render_batch,
    render_mesh,
)

FOCAL = np.array([300.0, 280.0])
PRINCPT = np.array([40.0, 30.0])  # integer, so the optical axis hits a pixel centre
HW = (64, 80)


def uv_sphere(n_lat: int, n_lon: int, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """UV-sphere around the origin with poles on the z axis, outward (right-hand) winding.

    Returns vertices ``(2 + (n_lat - 1) * n_lon, 3)`` float64 and faces ``(2 * n_lon * (n_lat - 1), 3)``.
    Vertex 0 is the pole at ``-z`` (towards an OpenCV camera looking along +z), the last one at ``+z``.
    """
    theta = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]  # polar angle from -z
    phi = np.linspace(0.0, 2.0 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), -np.cos(t)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, -1.0]], ring, [[0.0, 0.0, 1.0]]]) * radius
    faces = []
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon
    faces.append(np.stack([np.zeros(n_lon, int), 1 + jn, 1 + j], 1))
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon + j, 1 + i * n_lon + jn
        c, d = a + n_lon, b + n_lon
        faces += [np.stack([a, b, c], 1), np.stack([b, d, c], 1)]
    last = 1 + (n_lat - 2) * n_lon
    faces.append(np.stack([last + j, last + jn, np.full(n_lon, len(verts) - 1)], 1))
    faces = np.concatenate(faces)
    # make the winding outward whatever the construction above did
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = (normal * tri.mean(1)).sum(1) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces


def unproject(uv_px: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Pixel coordinates ``(N, 2)`` at camera depth ``z`` -> camera points ``(N, 3)`` (float64)."""
    z = np.broadcast_to(np.asarray(z, dtype=np.float64), (len(uv_px),))
    x = (uv_px[:, 0] - PRINCPT[0]) / FOCAL[0] * z
    y = (uv_px[:, 1] - PRINCPT[1]) / FOCAL[1] * z
    return np.stack([x, y, z], 1)


def project(points_cam: np.ndarray) -> np.ndarray:
    return points_cam[:, :2] / points_cam[:, 2:] * FOCAL + PRINCPT


def pixel_grid(hw=HW) -> np.ndarray:
    """(H, W, 2) pixel-centre coordinates (u, v) in float64."""
    v, u = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    return np.stack([u, v], -1)


def triangle_reference(tri_px: np.ndarray, hw=HW) -> tuple[np.ndarray, np.ndarray]:
    """float64 point-in-triangle on pixel centres -> (inside (H, W) bool, distance to the nearest edge (H, W))."""
    pts = pixel_grid(hw)
    signs, dists = [], []
    for i in range(3):
        a, b = tri_px[i], tri_px[(i + 1) % 3]
        edge = b - a
        cross = edge[0] * (pts[..., 1] - a[1]) - edge[1] * (pts[..., 0] - a[0])
        signs.append(cross)
        dists.append(np.abs(cross) / np.linalg.norm(edge))
    signs = np.stack(signs)
    inside = (signs >= 0).all(0) | (signs <= 0).all(0)
    return inside, np.min(dists, 0)


def ray_dirs(hw=HW) -> np.ndarray:
    """(H, W, 3) rays through the pixel centres with z = 1."""
    pts = pixel_grid(hw)
    return np.stack([(pts[..., 0] - PRINCPT[0]) / FOCAL[0], (pts[..., 1] - PRINCPT[1]) / FOCAL[1], np.ones(hw)], -1)


def render(verts, faces, **kw) -> RenderResult:
    return render_mesh(np.asarray(verts, np.float32), faces, FOCAL, PRINCPT, HW, **kw)


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("winding", [(0, 1, 2), (0, 2, 1)])
def test_single_triangle_mask_and_depth(winding):
    tri_px = np.array([[7.3, 5.6], [70.45, 18.2], [25.7, 58.35]])
    z0 = 2.5
    verts = unproject(tri_px, z0)
    res = render(verts, np.array([winding]))
    inside, edge_dist = triangle_reference(tri_px)
    certain = edge_dist > 1e-3
    assert certain.mean() > 0.99
    np.testing.assert_array_equal(res.mask[certain], inside[certain])
    assert res.mask.sum() > 800
    np.testing.assert_allclose(res.depth[res.mask], z0, rtol=1e-5)
    assert np.isinf(res.depth[~res.mask]).all()
    assert (res.face_index[res.mask] == 0).all() and (res.face_index[~res.mask] == -1).all()
    assert res.rgb.dtype == np.uint8 and res.rgb.shape == (*HW, 3)
    assert (res.rgb[~res.mask] == 0).all()


def test_tilted_quad_depth_is_ray_plane_intersection():
    # plane n . X = d, tilted about both axes
    normal = np.array([0.3, -0.4, -1.0]) / np.linalg.norm([0.3, -0.4, -1.0])
    d = -2.0  # the plane is 2 units from the camera centre
    quad_px = np.array([[5.2, 4.7], [74.6, 9.1], [70.3, 60.4], [9.8, 55.25]])
    # lift the pixel corners onto the plane along their rays
    rays = np.concatenate([(quad_px - PRINCPT) / FOCAL, np.ones((4, 1))], 1)
    verts = rays * (d / (rays @ normal))[:, None]
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    res = render(verts, faces)

    in0, dist0 = triangle_reference(quad_px[[0, 1, 2]])
    in1, dist1 = triangle_reference(quad_px[[0, 2, 3]])
    inside = in0 | in1
    certain = (np.minimum(dist0, dist1) > 1e-3) | (in0 & (dist0 > 1e-3)) | (in1 & (dist1 > 1e-3))
    np.testing.assert_array_equal(res.mask[certain], inside[certain])

    r = ray_dirs()
    z_ref = d / (r @ normal)  # ray r(t) = t * (u', v', 1): its z is t
    np.testing.assert_allclose(res.depth[res.mask], z_ref[res.mask], rtol=1e-4)
    assert np.ptp(z_ref[res.mask]) > 0.2  # the plane really is tilted


def test_shared_diagonal_has_no_cracks():
    # the diagonal passes exactly through pixel centres: every one of them must be covered
    quad_px = np.array([[10.0, 10.0], [50.0, 10.0], [50.0, 50.0], [10.0, 50.0]])
    z = np.array([2.0, 2.5, 3.0, 2.2])
    verts = np.concatenate([unproject(quad_px[i : i + 1], z[i]) for i in range(4)])
    res = render(verts, np.array([[0, 1, 2], [0, 2, 3]]))
    assert res.mask[10:51, 10:51].all()
    assert res.mask.sum() == 41 * 41


def test_sphere_mask_depth_and_visible_vertices():
    radius, centre = 0.25, np.array([0.0, 0.0, 3.0])  # about 25 px across, inside the image
    n_lat, n_lon = 24, 48
    verts_obj, faces = uv_sphere(n_lat, n_lon, radius)
    verts = verts_obj + centre
    res = render(verts, faces)

    # the front pole projects exactly onto pixel (cx, cy): depth is the pole's z
    cx, cy = int(PRINCPT[0]), int(PRINCPT[1])
    assert res.depth[cy, cx] == pytest.approx(centre[2] - radius, rel=1e-5)

    # analytic sphere: the inscribed mesh lies inside it and deviates by at most the chord sagitta
    r = ray_dirs()
    b = r @ centre
    a = (r * r).sum(-1)
    disc = b * b - a * (centre @ centre - radius**2)
    t_hit = (b - np.sqrt(np.maximum(disc, 0))) / a  # ray parameter = z of the hit
    sagitta = radius * (1 - np.cos(np.pi / min(n_lat, n_lon / 2)))
    assert not (res.mask & (disc < 0)).any()  # mesh silhouette inside the sphere silhouette
    # pixels clearly inside the inscribed silhouette are covered
    ang = np.arccos(np.clip(b / np.sqrt(a * (centre @ centre)), -1, 1))  # angle off the centre direction
    half_angle = np.arcsin(radius / np.linalg.norm(centre))
    inner = ang < half_angle * np.cos(np.pi / n_lon) * 0.97
    assert res.mask[inner].all()
    # depth between the true sphere (front) and the sphere shrunk by the sagitta
    front = res.mask & (disc > 0)
    assert (res.depth[front] >= t_hit[front] - 1e-4).all()
    np.testing.assert_allclose(res.depth[inner], t_hit[inner], atol=3 * sagitta * centre[2])

    # smooth shading follows the analytic sphere normal (white albedo, light along -z)
    shaded = render(verts, faces, vertex_colors=np.ones((len(verts), 3)), ambient=0.1, diffuse=0.9)
    hit = r * t_hit[..., None]
    normal = (hit - centre) / radius
    expected = 255 * (0.1 + 0.9 * np.clip(-normal[..., 2], 0, None))
    np.testing.assert_allclose(shaded.rgb[inner][:, 0], expected[inner], atol=0.02 * 255)
    flat = render(verts, faces, vertex_colors=np.ones((len(verts), 3)), ambient=0.1, diffuse=0.9, shading="flat")
    smooth_err = np.abs(shaded.rgb[inner][:, 0] - expected[inner]).mean()
    assert smooth_err < np.abs(flat.rgb[inner][:, 0] - expected[inner]).mean()

    # every front-facing vertex falls on the mask (within one pixel)
    vis = ((verts - centre) * verts).sum(1) < -0.05 * radius * np.linalg.norm(verts, axis=1)
    uv = np.rint(project(verts[vis])).astype(int)
    padded = np.pad(res.mask, 1)
    near_mask = np.zeros_like(res.mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near_mask |= padded[1 + dy : 1 + dy + HW[0], 1 + dx : 1 + dx + HW[1]]
    assert vis.sum() > 100
    assert near_mask[uv[:, 1], uv[:, 0]].all()


@pytest.mark.parametrize("near_first", [True, False])
def test_occlusion_nearer_triangle_wins(near_first):
    tri_a = np.array([[5.0, 5.0], [60.0, 8.0], [20.0, 55.0]])
    tri_b = np.array([[70.0, 50.0], [15.0, 30.0], [60.0, 2.0]])
    near_z, far_z = 2.0, 4.0
    z_a, z_b = (near_z, far_z) if near_first else (far_z, near_z)
    verts = np.concatenate([unproject(tri_a, z_a), unproject(tri_b, z_b)])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    res = render(verts, faces)
    in_a, da = triangle_reference(tri_a)
    in_b, db = triangle_reference(tri_b)
    both = in_a & in_b & (da > 1e-3) & (db > 1e-3)
    assert both.sum() > 50
    near_face = 0 if near_first else 1
    assert (res.face_index[both] == near_face).all()
    np.testing.assert_allclose(res.depth[both], near_z, rtol=1e-5)
    only_far = (in_b if near_first else in_a) & ~(in_a if near_first else in_b) & (np.minimum(da, db) > 1e-3)
    np.testing.assert_allclose(res.depth[only_far], far_z, rtol=1e-5)


def test_interpenetrating_planes_split_along_intersection():
    # two large quads crossing each other: the per-pixel z-test picks the nearer at every pixel
    quad_px = np.array([[-5.0, -5.0], [90.0, -5.0], [90.0, 70.0], [-5.0, 70.0]])
    r = np.concatenate([(quad_px - PRINCPT) / FOCAL, np.ones((4, 1))], 1)
    n1, d1 = np.array([0.2, 0.0, -1.0]), -3.0
    n2, d2 = np.array([-0.2, 0.1, -1.0]), -3.0
    v1 = r * (d1 / (r @ n1))[:, None]
    v2 = r * (d2 / (r @ n2))[:, None]
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    res = render(np.concatenate([v1, v2]), faces)
    rays = ray_dirs()
    z1, z2 = d1 / (rays @ n1), d2 / (rays @ n2)
    assert res.mask.all()
    np.testing.assert_allclose(res.depth, np.minimum(z1, z2), rtol=1e-4)
    clear = np.abs(z1 - z2) > 1e-3
    np.testing.assert_array_equal((res.face_index >= 2)[clear], (z2 < z1)[clear])


def test_empty_scenes():
    tri = unproject(np.array([[10.0, 10.0], [50.0, 12.0], [30.0, 40.0]]), 2.0)
    bg = np.random.default_rng(0).integers(0, 256, (*HW, 3), dtype=np.uint8)
    cases = {
        "behind": tri * np.array([1, 1, -1]),
        "outside": tri + np.array([10.0, 0.0, 0.0]),
        "straddles_near": np.concatenate([tri[:2], [[0.0, 0.0, -1.0]]]),
    }
    for name, verts in cases.items():
        res = render(verts, np.array([[0, 1, 2]]), background=bg)
        assert not res.mask.any(), name
        assert np.isinf(res.depth).all() and (res.face_index == -1).all(), name
        np.testing.assert_array_equal(res.rgb, bg)
    res = render(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    assert not res.mask.any() and np.isinf(res.depth).all()


def test_backface_culling():
    tri_px = np.array([[10.0, 10.0], [50.0, 12.0], [30.0, 40.0]])
    verts = unproject(tri_px, 2.0)
    n = np.cross(verts[1] - verts[0], verts[2] - verts[0])
    front_face = np.array([[0, 1, 2]]) if n @ verts[0] < 0 else np.array([[0, 2, 1]])
    back_face = front_face[:, ::-1].copy()
    assert render(verts, front_face, cull_backfaces=True).mask.sum() > 100
    assert render(verts, back_face, cull_backfaces=True).mask.sum() == 0
    # without culling both windings give the same coverage and the same (two-sided) shading
    a, b = render(verts, front_face), render(verts, back_face)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.rgb, b.rgb)


def test_lambert_shading_flat_plane():
    # a plane tilted by a known angle, flat shading, light along the camera axis
    angle = np.deg2rad(50.0)
    normal = np.array([np.sin(angle), 0.0, -np.cos(angle)])  # unit, facing the camera
    quad_px = np.array([[10.0, 10.0], [70.0, 10.0], [70.0, 50.0], [10.0, 50.0]])
    r = np.concatenate([(quad_px - PRINCPT) / FOCAL, np.ones((4, 1))], 1)
    verts = r * (-2.0 / (r @ normal))[:, None]
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    tri = verts[faces[0]]
    if np.cross(tri[1] - tri[0], tri[2] - tri[0]) @ tri[0] > 0:
        faces = faces[:, ::-1].copy()
    ambient, diffuse = 0.2, 0.7
    colors = np.tile([[0.9, 0.5, 0.25]], (4, 1))
    for shading in ("flat", "smooth"):
        res = render(verts, faces, shading=shading, ambient=ambient, diffuse=diffuse, vertex_colors=colors,
                     light_dir_cam=(0.0, 0.0, -3.0))
        expected = np.array([0.9, 0.5, 0.25]) * (ambient + diffuse * np.cos(angle)) * 255
        assert res.mask.sum() > 1000
        covered = res.rgb[res.mask].astype(float)
        np.testing.assert_allclose(covered, np.broadcast_to(expected, covered.shape), atol=1.0)
    # default colour, headlight, plane facing the camera: full intensity
    flat = unproject(quad_px, 2.0)
    res = render(flat, faces, ambient=0.3, diffuse=0.7)
    np.testing.assert_allclose(res.rgb[res.mask][0], np.array(DEFAULT_MESH_COLOR) * 255, atol=1.0)


def test_vertex_colours_are_interpolated_perspective_correctly():
    # a triangle with red at vertex 0 and blue elsewhere, tilted in depth: the colour at the pixel
    # where the 3D midpoint of edge 0-1 projects is the 50/50 mix
    verts = np.array([[-0.5, -0.3, 2.0], [0.6, -0.2, 4.0], [0.0, 0.5, 3.0]])
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    # point inside the triangle at 3D barycentrics (0.5, 0.3, 0.2) placed on a pixel centre
    bary = np.array([0.5, 0.3, 0.2])
    p = bary @ verts
    uv = project(p[None])[0]
    shift = np.round(uv) - uv  # move the triangle parallel to the image plane so p hits a centre
    verts = verts + np.array([shift[0] / FOCAL[0] * p[2], shift[1] / FOCAL[1] * p[2], 0.0])
    res = render(verts, np.array([[0, 1, 2]]), vertex_colors=colors, ambient=1.0, diffuse=0.0)
    u, v = np.round(uv).astype(int)
    assert res.mask[v, u]
    np.testing.assert_allclose(res.rgb[v, u].astype(float), [127.5, 0.0, 127.5], atol=1.0)
    # screen-space (affine) interpolation would give a visibly different mix
    assert res.depth[v, u] == pytest.approx((bary @ verts)[2], rel=1e-5)


def test_batch_matches_single_and_chunking(monkeypatch):
    rng = np.random.default_rng(1)
    verts_obj, faces = uv_sphere(12, 20, 0.4)
    shifts = [np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2), 2.0 + i]) for i in range(3)]
    batch = np.stack([verts_obj + shift for shift in shifts])
    focal = np.array([[300.0, 280.0], [250.0, 250.0], [320.0, 300.0]])
    out = render_batch(torch.tensor(batch, dtype=torch.float32), faces, focal, PRINCPT, HW)
    assert out.mask.shape == (3, *HW) and out.rgb.shape == (3, *HW, 3)
    tiny = render_batch(batch, faces, focal, PRINCPT, HW, max_candidates=64)  # many chunks
    import neuralannot_cli.render as render_module

    monkeypatch.setattr(render_module, "_PIXELS_PER_PASS", HW[0] * HW[1] * 2)  # passes of 2 + 1 images
    passes = render_batch(batch, faces, focal, PRINCPT, HW, vertex_colors=np.full((len(verts_obj), 3), 0.5))
    monkeypatch.undo()
    one_pass = render_batch(batch, faces, focal, PRINCPT, HW, vertex_colors=np.full((len(verts_obj), 3), 0.5))
    for field in ("rgb", "depth", "mask", "face_index"):
        np.testing.assert_array_equal(getattr(passes, field), getattr(one_pass, field))
    for i, single in enumerate(out.unbind()):
        ref = render_mesh(batch[i], faces, focal[i], PRINCPT, HW)
        for field in ("rgb", "depth", "mask", "face_index"):
            np.testing.assert_array_equal(getattr(single, field), getattr(ref, field))
            np.testing.assert_array_equal(getattr(tiny, field)[i], getattr(ref, field))
        assert ref.mask.sum() > 50


def test_large_triangles_and_off_screen_vertices():
    # vertices far outside the image (and a large image): exercises the ragged path and clamping
    tri_px = np.array([[-3000.0, -50.0], [400.0, 20.0], [30.0, 5000.0]])
    hw = (96, 128)
    verts = unproject(tri_px, 1.5)
    res = render_mesh(verts.astype(np.float32), np.array([[0, 1, 2]]), FOCAL, PRINCPT, hw)
    inside, dist = triangle_reference(tri_px, hw)
    certain = dist > 1e-2
    np.testing.assert_array_equal(res.mask[certain], inside[certain])
    assert 0 < res.mask.sum() < hw[0] * hw[1]


def test_shape_errors_name_the_shape():
    faces = np.array([[0, 1, 2]])
    verts = unproject(np.array([[10.0, 10.0], [50.0, 12.0], [30.0, 40.0]]), 2.0)
    with pytest.raises(ValueError, match=r"vertices_cam.*\(3, 2\)"):
        render(verts[:, :2], faces)
    with pytest.raises(ValueError, match=r"faces.*\(1, 4\)"):
        render(verts, np.array([[0, 1, 2, 0]]))
    with pytest.raises(ValueError, match=r"faces index"):
        render(verts, np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match=r"focal_px.*\(3,\)"):
        render_mesh(verts, faces, [1.0, 2.0, 3.0], PRINCPT, HW)
    with pytest.raises(ValueError, match=r"image_hw"):
        render_mesh(verts, faces, FOCAL, PRINCPT, (0, 10))
    with pytest.raises(ValueError, match=r"background.*\(10, 10, 3\)"):
        render(verts, faces, background=np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"background.*uint8"):
        render(verts, faces, background=np.zeros((*HW, 3), np.float32))
    with pytest.raises(ValueError, match=r"vertex_colors.*\(2, 3\)"):
        render(verts, faces, vertex_colors=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"vertices_cam.*\(2, 3, 3, 3\)"):
        render_mesh(np.zeros((2, 3, 3, 3)), faces, FOCAL, PRINCPT, HW)


def test_overlay_blends_only_the_mask():
    verts = unproject(np.array([[10.0, 10.0], [50.0, 12.0], [30.0, 40.0]]), 2.0)
    res = render(verts, np.array([[0, 1, 2]]))
    image = np.full((*HW, 3), 100, np.uint8)
    out = overlay(image, res, alpha=0.25)
    np.testing.assert_array_equal(out[~res.mask], image[~res.mask])
    expected = np.rint(0.25 * res.rgb[res.mask].astype(float) + 0.75 * 100)
    np.testing.assert_allclose(out[res.mask], expected, atol=1)
    with pytest.raises(ValueError, match=r"\(5, 5, 3\)"):
        overlay(np.zeros((5, 5, 3), np.uint8), res)


def test_draw_keypoints():
    image = np.zeros((40, 50, 3), np.uint8)
    kps = np.array([[10.0, 12.0], [30.0, 25.0], [np.nan, 3.0]])
    out = draw_keypoints(image, kps, conf=np.array([0.9, 0.05, 1.0]), radius=3, color=(255, 0, 0), conf_threshold=0.1)
    assert (out[12, 10] == [255, 0, 0]).all()
    assert (out[25, 30] == 0).all()  # below the confidence threshold
    assert (image == 0).all()  # input untouched
    assert out[..., 0].astype(bool).sum() < 60
    with pytest.raises(ValueError, match=r"keypoints_px.*\(3, 3\)"):
        draw_keypoints(image, np.zeros((3, 3)))
