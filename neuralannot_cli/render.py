"""CPU mesh renderer: a vectorised z-buffer rasteriser in plain PyTorch (no OpenGL, no pytorch3d).

Conventions (pinned by ``tests/test_render.py``):

- Camera: OpenCV pinhole. Camera frame x right, y down, z forward (into the scene). A point
  ``(x, y, z)_cam`` projects to ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` (pixels).
- Pixels: pixel ``(row v, column u)`` has its centre at the integer coordinates ``(u, v)``; a pixel
  belongs to a triangle when its centre lies inside the projected triangle or on its boundary (with
  a slack of 1e-6 in barycentric units, so that float32 rounding leaves no cracks along shared
  edges). Where several faces cover a pixel the nearest wins; exact depth ties go to the lower face id.
- Units: vertices in any length unit (metres, millimetres); ``depth`` and ``near`` use the same unit.
- ``depth`` is the camera-space z of the front surface, interpolated perspective-correctly (1/z is
  affine in screen space); empty pixels hold ``+inf``. ``face_index`` is -1 where empty.
- Faces with any vertex at ``z <= near`` are dropped whole (no polygon clipping), which is what
  body renders in front of the camera need.
- Face orientation: a face ``(i, j, k)`` is front-facing when its right-hand normal
  ``(v_j - v_i) x (v_k - v_i)`` points towards the camera (``n . v_i < 0``), the usual outward
  winding of SMPL-X/MANO/FLAME meshes. With ``cull_backfaces=False`` (default) back faces are drawn
  too (two-sided lighting: their normal is flipped towards the camera).
- Images are RGB ``uint8``.

Algorithm: project vertices; per face compute the pixel bounding box and the affine screen-space
forms of the three barycentrics and of 1/z (relative to an anchor pixel, so float32 stays
accurate). Faces are binned by bounding-box size: boxes up to ``_MAX_TILE`` pixels a side are
rasterised in fixed power-of-two tiles (square up to 8 x 8, rectangular beyond) by broadcasting one
tile against all faces of its class (no per-candidate gathers); larger faces by a ragged enumeration
of their exact bounding boxes, in chunks of ``max_candidates``. Covered candidates are z-tested with
one ``scatter_reduce(amin)`` on an int64 key packing (1/z float bits, inverted; face id), so depth
and the winning face come out of one pass. Lambert + ambient shading (perspective-correct
interpolated vertex normals and colours) is then computed for the covered pixels only. A batch is
rasterised a few images per pass (``_PIXELS_PER_PASS``) to keep the working set cache-sized.

Throughput (``benchmarks/render_throughput.py``): about 140-190 images/s for the 20,908-face
stand-in SMPL-X body at 256 x 256 on one core of the 2-core CI machine; see the benchmark for the
table. The implementation is device-agnostic torch, with numpy used for ``nonzero`` on CPU only.

Batches: :func:`render_batch` renders many meshes of one topology (``(batch, verts, 3)``) in one call
and returns ``(batch, H, W, ...)`` arrays; :func:`render_mesh` accepts ``(verts, 3)`` or
``(batch, verts, 3)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

__all__ = [
    "RenderResult",
    "render_mesh",
    "render_batch",
    "overlay",
    "draw_keypoints",
    "DEFAULT_MESH_COLOR",
]

DEFAULT_MESH_COLOR: tuple[float, float, float] = (0.65, 0.74, 0.86)
"""Default mesh albedo (RGB in [0, 1]), a light blue-grey."""

_MAX_TILE = 16  # largest tile side (pixels) handled by the broadcast path; larger boxes go ragged
_SQUARE_UP_TO_LOG2 = 3  # boxes up to 8 x 8 pixels use square tiles, larger ones rectangular tiles
_PIXELS_PER_PASS = 1 << 17  # batch images rasterised together (2 at 256 x 256)
_EDGE_EPS = 1e-6  # barycentric slack so that shared edges leave no cracks under float32 rounding
_EMPTY_KEY = torch.iinfo(torch.int64).max
_INT32_MAX = 0x7FFFFFFF
_FACE_BITS = 0xFFFFFFFF


@dataclass(frozen=True)
class RenderResult:
    """Output of :func:`render_mesh` / :func:`render_batch` (numpy arrays on the host).

    Shapes are ``(H, W, ...)`` for a single mesh and ``(batch, H, W, ...)`` for a batch.

    Attributes:
        rgb: ``(..., H, W, 3)`` uint8, shaded mesh over the background (RGB).
        depth: ``(..., H, W)`` float32, camera-space z of the front surface; ``+inf`` where empty.
        mask: ``(..., H, W)`` bool, True where a face covers the pixel centre.
        face_index: ``(..., H, W)`` int64, index into ``faces`` of the visible face; -1 where empty.
    """

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    face_index: np.ndarray

    def unbind(self) -> list[RenderResult]:
        """Split a batched result ``(batch, H, W, ...)`` into one result per image."""
        if self.mask.ndim != 3:
            raise ValueError(f"unbind needs a batched result with mask (batch, H, W), got {self.mask.shape}")
        return [
            RenderResult(self.rgb[i], self.depth[i], self.mask[i], self.face_index[i])
            for i in range(self.mask.shape[0])
        ]


# ----------------------------------------------------------------------------------------------
# input checks


def _as_tensor(x, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _check_image_hw(image_hw: Sequence[int]) -> tuple[int, int]:
    if len(image_hw) != 2 or int(image_hw[0]) <= 0 or int(image_hw[1]) <= 0:
        raise ValueError(f"image_hw must be two positive ints (H, W), got {tuple(image_hw)}")
    return int(image_hw[0]), int(image_hw[1])


def _check_camera(name: str, value, batch: int, device: torch.device) -> torch.Tensor:
    t = _as_tensor(value, torch.float64, device)
    if t.shape == (2,):
        return t.expand(batch, 2)
    if t.shape == (batch, 2):
        return t
    raise ValueError(f"{name} must have shape (2,) or (batch={batch}, 2), got {tuple(t.shape)}")


# ----------------------------------------------------------------------------------------------
# rasterisation


@dataclass(frozen=True)
class _FaceSetup:
    """Per-face data of a batch, over ``n = batch * faces`` faces (flat id ``b * faces + f``).

    ``coef`` is row-major (one row per face, gathered per candidate); the rest is component-first
    (one contiguous row per component), which is what elementwise math and 1D gathers want on CPU.
    """

    coef: torch.Tensor  # (n, 12) float32: constants, d/dx, d/dy of the affine forms (b0, b1, b2, 1/z)
    origin: torch.Tensor  # (2, n) int64: pixel (x, y) where the affine forms are anchored
    tile: torch.Tensor  # (n,) int64: tile class 1 + 16 * log2(tile_w) + log2(tile_h), 0 ragged, -1 not drawn
    box_wh: torch.Tensor  # (2, n) int64: bounding-box width, height in pixels
    z: torch.Tensor  # (3 corners, n) float32: vertex depths
    front: torch.Tensor  # (n,) bool: right-hand normal points towards the camera
    face_normals: torch.Tensor  # (3 xyz, n) float32, area-weighted (not normalised)
    corner_ids: torch.Tensor  # (3 corners, n) int64: vertex indices into batch * verts


def _setup_faces(
    verts: torch.Tensor,
    faces: torch.Tensor,
    focal: torch.Tensor,
    princpt: torch.Tensor,
    height: int,
    width: int,
    near: float,
    cull_backfaces: bool,
) -> _FaceSetup:
    batch, num_verts = verts.shape[0], verts.shape[1]
    num_faces = faces.shape[0]
    n = batch * num_faces
    device = verts.device
    offsets = torch.arange(batch, device=device) * num_verts
    corner_ids = (faces.t().contiguous()[:, None, :] + offsets[None, :, None]).reshape(3, n).contiguous()
    # component-first layout: x[i] is the x coordinate of corner i of every face, (batch, faces)
    # (elementwise math on contiguous rows; transposes and reductions over short dims are slow on CPU)
    vt = verts.reshape(-1, 3).t().contiguous()  # (3 xyz, batch * verts)
    x, y, z = ([vt[c].index_select(0, corner_ids[i]).view(batch, num_faces) for i in range(3)] for c in range(3))

    e1 = [x[1] - x[0], y[1] - y[0], z[1] - z[0]]
    e2 = [x[2] - x[0], y[2] - y[0], z[2] - z[0]]
    nx = e1[1] * e2[2] - e1[2] * e2[1]
    ny = e1[2] * e2[0] - e1[0] * e2[2]
    nz = e1[0] * e2[1] - e1[1] * e2[0]
    front = nx * x[0] + ny * y[0] + nz * z[0] < 0  # (batch, faces)

    valid = torch.minimum(torch.minimum(z[0], z[1]), z[2]) > near
    if cull_backfaces:
        valid &= front
    one = torch.ones((), dtype=verts.dtype, device=device)
    inv_z = [1.0 / torch.where(valid, zi, one) for zi in z]
    fx, fy = focal[:, 0:1].float(), focal[:, 1:2].float()  # (batch, 1)
    cx, cy = princpt[:, 0:1].float(), princpt[:, 1:2].float()
    u = [xi * iz * fx + cx for xi, iz in zip(x, inv_z)]  # pixels, (batch, faces) each
    v = [yi * iz * fy + cy for yi, iz in zip(y, inv_z)]

    # pixel bounding box (pixel centres at integer coordinates), clamped to the image
    big = float(4 * max(height, width) + 4)
    umin = torch.minimum(torch.minimum(u[0], u[1]), u[2]).clamp_(-big, big)
    umax = torch.maximum(torch.maximum(u[0], u[1]), u[2]).clamp_(-big, big)
    vmin = torch.minimum(torch.minimum(v[0], v[1]), v[2]).clamp_(-big, big)
    vmax = torch.maximum(torch.maximum(v[0], v[1]), v[2]).clamp_(-big, big)
    xmin = umin.ceil_().clamp_(0, width).long()
    xmax = umax.floor_().clamp_(-1, width - 1).long()
    ymin = vmin.ceil_().clamp_(0, height).long()
    ymax = vmax.floor_().clamp_(-1, height - 1).long()
    box_w = xmax - xmin + 1
    box_h = ymax - ymin + 1
    valid &= (box_w > 0) & (box_h > 0)

    # tile class: tile of (2 ** log_x) x (2 ** log_y) pixels, the smallest powers of two covering
    # the box, encoded as 1 + 16 * log_x + log_y; 0 for the ragged path (box side > _MAX_TILE)
    log_x = torch.log2(box_w.clamp(min=1).float()).ceil_().long()
    log_y = torch.log2(box_h.clamp(min=1).float()).ceil_().long()
    # small faces share square tiles: fewer classes (less per-class overhead) for little waste
    log_max = torch.maximum(log_x, log_y)
    small = log_max <= _SQUARE_UP_TO_LOG2
    log_x = torch.where(small, log_max, log_x)
    log_y = torch.where(small, log_max, log_y)
    tile_w, tile_h = torch.ones_like(log_x) << log_x, torch.ones_like(log_y) << log_y
    ragged = (tile_w > min(_MAX_TILE, width)) | (tile_h > min(_MAX_TILE, height))
    tile = (1 + 16 * log_x + log_y).masked_fill_(ragged, 0)
    # tiles are shifted inside the image so that every candidate pixel is a real pixel;
    # tile pixels outside the face's bounding box fail the barycentric test anyway
    ox = torch.where(ragged, xmin, torch.minimum(xmin, width - tile_w))
    oy = torch.where(ragged, ymin, torch.minimum(ymin, height - tile_h))

    # affine forms b_i(x, y) = c_i + a_i * (x - ox) + d_i * (y - oy) with coordinates relative to
    # the anchor, so the numbers stay small and float32 is accurate
    oxf, oyf = ox.float(), oy.float()
    px = [ui - oxf for ui in u]
    py = [vi - oyf for vi in v]
    area = (px[1] - px[0]) * (py[2] - py[0]) - (px[2] - px[0]) * (py[1] - py[0])
    valid &= torch.isfinite(area) & (area.abs() > 1e-10)
    tile.masked_fill_(~valid, -1)
    inv_area = 1.0 / torch.where(valid, area, one)
    rows_c, rows_a, rows_d = [], [], []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        dyk, dxk = (py[k] - py[j]) * inv_area, (px[k] - px[j]) * inv_area
        rows_c.append(dyk * px[j] - dxk * py[j])
        rows_a.append(-dyk)
        rows_d.append(dxk)
    for rows in (rows_c, rows_a, rows_d):  # the same affine form for 1/z = sum_i b_i / z_i
        rows.append(rows[0] * inv_z[0] + rows[1] * inv_z[1] + rows[2] * inv_z[2])
    coef = torch.stack(rows_c + rows_a + rows_d, dim=-1).view(n, 12)
    return _FaceSetup(
        coef=coef,
        origin=torch.stack([ox.view(n), oy.view(n)]),
        tile=tile.view(n),
        box_wh=torch.stack([box_w.view(n), box_h.view(n)]),
        z=torch.stack(inv_z).view(3, n).reciprocal_(),
        front=front.view(n),
        face_normals=torch.stack([nx, ny, nz]).view(3, n),
        corner_ids=corner_ids,
    )


def _where_ge(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices ``(K,)`` int64 where the 1D tensor ``values >= threshold``.

    On CPU this goes through numpy: torch's CPU comparison and ``nonzero`` are several times slower
    than numpy's vectorised ones, and this is the rasteriser's hot spot.
    """
    if values.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(values.numpy() >= threshold))
    return (values >= threshold).nonzero().squeeze(1)


def _where_lt(values: torch.Tensor, threshold: int) -> torch.Tensor:
    """Indices ``(K,)`` int64 where the 1D tensor ``values < threshold`` (see :func:`_where_ge`)."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(values.numpy() < threshold))
    return (values < threshold).nonzero().squeeze(1)


def _group_by_tile(tile: torch.Tensor) -> dict[int, torch.Tensor]:
    """``{tile class: face ids (int64)}`` for the classes present, skipping -1 (not drawn)."""
    if tile.device.type == "cpu":
        t = tile.numpy()
        present = np.flatnonzero(np.bincount(t + 1)) - 1
        return {int(k): torch.from_numpy(np.flatnonzero(t == k)) for k in present if k >= 0}
    return {int(k): (tile == k).nonzero().squeeze(1) for k in torch.unique(tile).tolist() if k >= 0}


def _pack_keys(inv_z: torch.Tensor, face_ids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordered by depth (nearest = smallest), ties broken by the lower face id."""
    # clamp: rounding at a triangle's edge must not make 1/z negative (its bits would wrap the key)
    bits = inv_z.clamp(min=0.0).view(torch.int32).long()  # monotonic in inv_z for positive floats
    return ((_INT32_MAX - bits) << 32) | face_ids


def _rasterise(
    setup: _FaceSetup, num_faces: int, batch: int, height: int, width: int, max_candidates: int
) -> torch.Tensor:
    """Return the z-buffer keys (batch * H * W,) int64; ``_EMPTY_KEY`` where nothing is drawn."""
    device = setup.tile.device
    hw = height * width
    pix_parts: list[torch.Tensor] = []
    key_parts: list[torch.Tensor] = []
    # pixel index of each face's anchor
    gid = torch.arange(setup.tile.numel(), device=device)
    base = (gid // num_faces) * hw + setup.origin[1] * width + setup.origin[0]

    classes = _group_by_tile(setup.tile)
    for cls, sel_all in classes.items():
        if cls == 0:
            continue
        log_x, log_y = divmod(cls - 1, 16)
        tile_w, tile_h = 1 << log_x, 1 << log_y
        offs_x = torch.arange(tile_w, device=device, dtype=torch.float32)[:, None]
        offs_y = torch.arange(tile_h, device=device, dtype=torch.float32)[:, None, None]
        per_chunk = max(1, max_candidates // (tile_w * tile_h))
        for start in range(0, sel_all.numel(), per_chunk):
            sel = sel_all[start : start + per_chunk]
            # faces innermost: (value, y, x, face) keeps the broadcasts contiguous and vectorised
            cf = setup.coef.index_select(0, sel).t().contiguous()[:, None, None, :]  # (12, 1, 1, m)
            vals = (cf[0:4] + cf[4:8] * offs_x) + cf[8:12] * offs_y  # (4, tile_h, tile_w, m)
            idx = _where_ge(torch.minimum(torch.minimum(vals[0], vals[1]), vals[2]).view(-1), -_EDGE_EPS)
            if idx.numel() == 0:
                continue
            m = sel.numel()
            cell = idx // m
            g = sel[idx - cell * m]
            dy = cell >> log_x
            dx = cell & (tile_w - 1)
            pix_parts.append(base[g] + dy * width + dx)
            key_parts.append(_pack_keys(vals[3].reshape(-1)[idx], g % num_faces))

    # ragged path: exact bounding boxes of large faces, in chunks of about max_candidates
    if 0 in classes:
        sel_all = classes[0]
        counts_all = setup.box_wh[0, sel_all] * setup.box_wh[1, sel_all]
        cum = counts_all.cumsum(0)
        start = 0
        while start < sel_all.numel():
            offset = int(cum[start - 1]) if start > 0 else 0
            stop = max(int(torch.searchsorted(cum, offset + max_candidates, right=True)), start + 1)
            sel = sel_all[start:stop]
            counts = counts_all[start:stop]
            owner = torch.repeat_interleave(counts)  # (N,) local face of each candidate
            local = torch.arange(owner.numel(), device=device) - (counts.cumsum(0) - counts)[owner]
            box_w = setup.box_wh[0, sel][owner]
            dy = local // box_w
            dx = local - dy * box_w
            g = sel[owner]
            cf = setup.coef.index_select(0, g).t().contiguous()  # (12, N)
            vals = cf[0:4] + cf[4:8] * dx.float() + cf[8:12] * dy.float()
            idx = _where_ge(torch.minimum(torch.minimum(vals[0], vals[1]), vals[2]), -_EDGE_EPS)
            if idx.numel() > 0:
                gi = g[idx]
                pix_parts.append(base[gi] + dy[idx] * width + dx[idx])
                key_parts.append(_pack_keys(vals[3, idx], gi % num_faces))
            start = stop

    keys = torch.full((batch * hw,), _EMPTY_KEY, dtype=torch.int64, device=device)
    if pix_parts:
        keys.scatter_reduce_(0, torch.cat(pix_parts), torch.cat(key_parts), reduce="amin", include_self=True)
    return keys


def _shade(
    setup: _FaceSetup,
    num_verts: int,
    batch: int,
    pix: torch.Tensor,
    g: torch.Tensor,
    width: int,
    hw: int,
    light: torch.Tensor,
    ambient: float,
    diffuse: float,
    shading: str,
    colors: torch.Tensor | None,
) -> torch.Tensor:
    """Lambert shading of covered pixels ``pix`` (flat over batch*H*W) showing faces ``g`` (flat over
    batch*faces) -> ``(M, 3)`` uint8."""
    rem = pix % hw
    y = rem // width
    x = rem - y * width
    dx = (x - setup.origin[0].index_select(0, g)).float()[:, None]
    dy = (y - setup.origin[1].index_select(0, g)).float()[:, None]
    cf = setup.coef.index_select(0, g)  # (M, 12)
    bary = (cf[:, 0:3] + cf[:, 4:7] * dx + cf[:, 8:11] * dy).clamp_(min=0).t()  # (3 corners, M)
    # perspective-correct weights: screen-space barycentrics divided by depth, renormalised
    w = [bary[i] / setup.z[i].index_select(0, g) for i in range(3)]
    total = (w[0] + w[1] + w[2]).clamp_(min=1e-30)
    w = [wi / total for wi in w]
    vid = [setup.corner_ids[i].index_select(0, g) for i in range(3)]

    def interpolate(per_vertex: torch.Tensor) -> list[torch.Tensor]:  # (3, batch*verts) -> 3 x (M,)
        return [sum(w[i] * per_vertex[c].index_select(0, vid[i]) for i in range(3)) for c in range(3)]

    if shading == "smooth":
        fn = setup.face_normals  # (3, n)
        vn = torch.zeros((3, batch * num_verts), dtype=torch.float32, device=pix.device)
        vn.scatter_add_(1, setup.corner_ids.view(1, -1).expand(3, -1), fn.repeat(1, 3))
        nx, ny, nz = interpolate(vn)
    else:
        nx, ny, nz = (setup.face_normals[c].index_select(0, g) for c in range(3))
    # two-sided lighting: back faces get their normal flipped towards the camera
    lx, ly, lz = light.tolist()
    sign = torch.where(setup.front.index_select(0, g), 1.0, -1.0)
    cos = (nx * lx + ny * ly + nz * lz) * sign / (nx * nx + ny * ny + nz * nz).sqrt_().clamp_(min=1e-12)
    intensity = (cos.clamp_(min=0) * diffuse + ambient) * 255.0
    if colors is None:
        rgb = [intensity * c for c in DEFAULT_MESH_COLOR]
    else:
        rgb = [intensity * ch for ch in interpolate(colors)]
    return torch.stack(rgb, dim=1).round_().clamp_(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# public API


def render_batch(
    vertices_cam,
    faces,
    focal_px,
    princpt_px,
    image_hw: Sequence[int],
    *,
    vertex_colors=None,
    light_dir_cam: Sequence[float] = (0.0, 0.0, -1.0),
    ambient: float = 0.35,
    diffuse: float = 0.65,
    shading: Literal["smooth", "flat"] = "smooth",
    background=None,
    cull_backfaces: bool = False,
    near: float = 1e-3,
    max_candidates: int = 1 << 22,
    device: torch.device | str = "cpu",
) -> RenderResult:
    """Render a batch of meshes that share one topology; one image per mesh.

    Args:
        vertices_cam: ``(batch, verts, 3)`` camera-frame vertices (OpenCV axes, any length unit),
            a tensor or array.
        faces: ``(faces, 3)`` integer vertex indices.
        focal_px: ``(2,)`` or ``(batch, 2)`` focal lengths ``(fx, fy)`` in pixels.
        princpt_px: ``(2,)`` or ``(batch, 2)`` principal point ``(cx, cy)`` in pixels.
        image_hw: output size ``(H, W)``.
        vertex_colors: ``(verts, 3)`` or ``(batch, verts, 3)`` RGB albedo, float in [0, 1] or uint8;
            None uses :data:`DEFAULT_MESH_COLOR`.
        light_dir_cam: ``(3,)`` direction from the surface towards the light, camera frame; the
            default ``(0, 0, -1)`` is a headlight at the camera.
        ambient, diffuse: intensity = ``ambient + diffuse * max(0, n . l)``.
        shading: ``"smooth"`` (perspective-correct interpolated vertex normals) or ``"flat"``.
        background: ``(H, W, 3)`` or ``(batch, H, W, 3)`` uint8 RGB; None is black.
        cull_backfaces: drop faces whose normal points away from the camera (faster, needs
            consistent outward winding).
        near: faces with any vertex at ``z <= near`` are dropped (same unit as the vertices).
        max_candidates: cap on candidate pixels evaluated at once (bounds memory).
        device: where to rasterise; results are returned as numpy arrays.

    Returns:
        :class:`RenderResult` with arrays of shape ``(batch, H, W, ...)``.
    """
    device = torch.device(device)
    height, width = _check_image_hw(image_hw)
    verts = _as_tensor(vertices_cam, torch.float32, device)
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"vertices_cam must have shape (batch, verts, 3), got {tuple(verts.shape)}")
    batch, num_verts = verts.shape[0], verts.shape[1]
    faces_t = _as_tensor(faces, torch.int64, device)
    if faces_t.ndim != 2 or faces_t.shape[1] != 3:
        raise ValueError(f"faces must have shape (faces, 3), got {tuple(faces_t.shape)}")
    if faces_t.numel() and (int(faces_t.min()) < 0 or int(faces_t.max()) >= num_verts):
        raise ValueError(
            f"faces index vertices in [{int(faces_t.min())}, {int(faces_t.max())}], "
            f"but vertices_cam has {num_verts} vertices (shape {tuple(verts.shape)})"
        )
    focal = _check_camera("focal_px", focal_px, batch, device)
    princpt = _check_camera("princpt_px", princpt_px, batch, device)
    if shading not in ("smooth", "flat"):
        raise ValueError(f"shading must be 'smooth' or 'flat', got {shading!r}")
    light = _as_tensor(light_dir_cam, torch.float32, device)
    if light.shape != (3,) or float(light.norm()) == 0.0:
        raise ValueError(f"light_dir_cam must be a non-zero (3,) vector, got shape {tuple(light.shape)}")
    light = light / light.norm()

    colors = None
    if vertex_colors is not None:
        raw = vertex_colors
        colors = _as_tensor(raw, torch.float32, device)
        if colors.shape == (num_verts, 3):
            colors = colors.expand(batch, num_verts, 3)
        elif colors.shape != (batch, num_verts, 3):
            raise ValueError(
                f"vertex_colors must have shape (verts={num_verts}, 3) or (batch={batch}, verts, 3), "
                f"got {tuple(colors.shape)}"
            )
        is_uint8 = (isinstance(raw, np.ndarray) and raw.dtype == np.uint8) or (
            isinstance(raw, torch.Tensor) and raw.dtype == torch.uint8
        )
        if is_uint8:
            colors = colors / 255.0

    if background is None:
        rgb = torch.zeros((batch, height, width, 3), dtype=torch.uint8, device=device)
    else:
        bg_dtype = background.dtype if isinstance(background, (np.ndarray, torch.Tensor)) else None
        if bg_dtype not in (np.uint8, torch.uint8):
            raise ValueError(f"background must be a uint8 array or tensor, got dtype {bg_dtype}")
        bg = _as_tensor(background, torch.uint8, device)
        if bg.shape == (height, width, 3):
            rgb = bg.expand(batch, height, width, 3).clone()
        elif bg.shape == (batch, height, width, 3):
            rgb = bg.clone()
        else:
            raise ValueError(
                f"background must have shape (H={height}, W={width}, 3) or (batch={batch}, H, W, 3), "
                f"got {tuple(bg.shape)}"
            )

    num_faces = faces_t.shape[0]
    hw = height * width
    depth = torch.full((batch * hw,), float("inf"), dtype=torch.float32, device=device)
    face_index = torch.full((batch * hw,), -1, dtype=torch.int64, device=device)
    # images are rasterised a few at a time so that the candidate arrays stay cache-sized
    per_pass = max(1, _PIXELS_PER_PASS // hw)
    for b0 in range(0, batch if num_faces > 0 else 0, per_pass):
        b1 = min(batch, b0 + per_pass)
        nb = b1 - b0
        with torch.no_grad():
            setup = _setup_faces(
                verts[b0:b1], faces_t, focal[b0:b1], princpt[b0:b1], height, width, near, cull_backfaces
            )
            keys = _rasterise(setup, num_faces, nb, height, width, max_candidates)
            pix = _where_lt(keys, _EMPTY_KEY)
            if pix.numel() == 0:
                continue
            k = keys[pix]
            f = k & _FACE_BITS
            inv_z = (_INT32_MAX - (k >> 32)).int().view(torch.float32)
            out = pix + b0 * hw
            depth[out] = 1.0 / inv_z
            face_index[out] = f
            chunk_colors = None
            if colors is not None:
                chunk_colors = colors[b0:b1].reshape(-1, 3).t().contiguous()  # (3 rgb, nb * verts)
            g = (pix // hw) * num_faces + f
            rgb.view(batch * hw, 3)[out] = _shade(
                setup, num_verts, nb, pix, g, width, hw, light, ambient, diffuse, shading, chunk_colors
            )

    shape = (batch, height, width)
    return RenderResult(
        rgb=rgb.cpu().numpy(),
        depth=depth.view(shape).cpu().numpy(),
        mask=(face_index >= 0).view(shape).cpu().numpy(),
        face_index=face_index.view(shape).cpu().numpy(),
    )


def render_mesh(
    vertices_cam,
    faces,
    focal_px,
    princpt_px,
    image_hw: Sequence[int],
    *,
    vertex_colors=None,
    light_dir_cam: Sequence[float] = (0.0, 0.0, -1.0),
    ambient: float = 0.35,
    diffuse: float = 0.65,
    shading: Literal["smooth", "flat"] = "smooth",
    background=None,
    cull_backfaces: bool = False,
    near: float = 1e-3,
    max_candidates: int = 1 << 22,
    device: torch.device | str = "cpu",
) -> RenderResult:
    """Render one mesh ``(verts, 3)`` -> arrays ``(H, W, ...)``; ``(batch, verts, 3)`` -> ``(batch, H, W, ...)``.

    Same arguments as :func:`render_batch` (there ``vertex_colors`` may be ``(verts, 3)`` only for a
    single mesh, and ``background`` ``(H, W, 3)``).
    """
    verts = vertices_cam if isinstance(vertices_cam, torch.Tensor) else np.asarray(vertices_cam)
    single = verts.ndim == 2
    if verts.ndim not in (2, 3) or verts.shape[-1] != 3:
        raise ValueError(f"vertices_cam must have shape (verts, 3) or (batch, verts, 3), got {tuple(verts.shape)}")
    result = render_batch(
        verts[None] if single else verts,
        faces,
        focal_px,
        princpt_px,
        image_hw,
        vertex_colors=vertex_colors,
        light_dir_cam=light_dir_cam,
        ambient=ambient,
        diffuse=diffuse,
        shading=shading,
        background=background,
        cull_backfaces=cull_backfaces,
        near=near,
        max_candidates=max_candidates,
        device=device,
    )
    return result.unbind()[0] if single else result


# ----------------------------------------------------------------------------------------------
# visual helpers (OpenCV)


def overlay(image: np.ndarray, result: RenderResult, alpha: float = 0.8) -> np.ndarray:
    """Blend a single render onto ``image`` ``(H, W, 3)`` uint8 where ``result.mask`` is set.

    Returns a new ``(H, W, 3)`` uint8 image: ``alpha * render + (1 - alpha) * image`` on the mask,
    ``image`` elsewhere.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != result.mask.shape:
        raise ValueError(
            f"image must have shape (H, W, 3) matching the render mask {result.mask.shape}, got {image.shape}"
        )
    out = image.copy()
    m = result.mask
    blended = alpha * result.rgb[m].astype(np.float32) + (1.0 - alpha) * image[m].astype(np.float32)
    out[m] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def draw_keypoints(
    image: np.ndarray,
    keypoints_px: np.ndarray,
    conf: np.ndarray | None = None,
    radius: int = 3,
    color: tuple[int, int, int] = (0, 255, 0),
    *,
    conf_threshold: float = 0.0,
    skeleton: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Draw 2D keypoints (and optional skeleton lines) on a copy of ``image`` ``(H, W, 3)`` uint8.

    Args:
        keypoints_px: ``(joints, 2)`` pixel coordinates ``(u, v)``.
        conf: ``(joints,)`` confidences; keypoints with ``conf <= conf_threshold`` are skipped.
            None draws all finite keypoints.
        radius: circle radius in pixels (filled circles).
        color: colour in the image's channel order (RGB for this package).
        skeleton: pairs of joint indices to join with lines.
    """
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got shape {image.shape} dtype {image.dtype}")
    kp = np.asarray(keypoints_px, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise ValueError(f"keypoints_px must have shape (joints, 2), got {kp.shape}")
    if conf is None:
        visible = np.ones(len(kp), dtype=bool)
    else:
        conf = np.asarray(conf, dtype=np.float64)
        if conf.shape != (len(kp),):
            raise ValueError(f"conf must have shape (joints={len(kp)},), got {conf.shape}")
        visible = conf > conf_threshold
    visible &= np.isfinite(kp).all(1)
    out = np.ascontiguousarray(image.copy())
    col = tuple(int(c) for c in color)
    shift = 4  # sub-pixel precision for OpenCV drawing
    pts = np.zeros_like(kp, dtype=np.int64)
    pts[visible] = np.rint(kp[visible] * (1 << shift)).astype(np.int64)
    for i, j in skeleton or ():
        if visible[i] and visible[j]:
            thickness = max(1, radius // 2)
            cv2.line(out, tuple(map(int, pts[i])), tuple(map(int, pts[j])), col, thickness, cv2.LINE_AA, shift)
    for i in np.flatnonzero(visible):
        cv2.circle(out, tuple(map(int, pts[i])), int(radius) << shift, col, -1, cv2.LINE_AA, shift)
    return out
