"""Pseudo-GT meshes drawn over their images (the paper's Figure 7 layout), and PNG grids.

:func:`render_record` forwards one record (SMPL-X, or MANO right / left) through its body model in the
CAMERA frame of its original image and rasterises it with the record's own ``focal`` / ``princpt``
(:func:`neuralannot_cli.render.render_mesh`). :func:`render_overlays` does that for the first
``max_images`` records (sorted by key) that have an image in the dataset, one row per sample:
``image | method A`` (``| method B`` with a second file, on the keys both files have), writes one PNG per
sample and ``grid.png`` (rows stacked, each tile scaled to ``tile_px`` rows). Hands (MANO records) are
cropped to a square around both the labelled keypoints and the rendered hand.

The renderer is run with one intra-op thread (restored afterwards): on the 2-core CI machines it slows
down badly with two threads under load.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["OverlaySummary", "render_record", "render_overlays", "make_grid", "label_tile", "read_image_rgb"]

_COLORS = [(0.65, 0.74, 0.86), (0.93, 0.72, 0.45)]  # method A light blue-grey, method B light orange


@dataclass(frozen=True)
class OverlaySummary:
    files: tuple[Path, ...]
    grid: Path | None
    keys: tuple[str, ...]
    skipped: tuple[str, ...]


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB; FileNotFoundError / ValueError naming the file."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return np.ascontiguousarray(img[..., ::-1])


def render_record(record: Any, models: Any, image_hw: Sequence[int], *, color: Sequence[float] = _COLORS[0],
                  background: np.ndarray | None = None, device: torch.device | str = "cpu"):
    """Render one pseudo-GT record over ``background`` (or black) -> :class:`neuralannot_cli.render.RenderResult`.

    Args:
        record: :class:`~neuralannot_cli.io.pseudo_gt.SmplxRecord` / ``ManoRecord`` in the camera frame.
        models: :class:`neuralannot_cli.evaluate.direct.BodyModels`.
        image_hw: ``(H, W)`` of the original image.
    """
    from neuralannot_cli.evaluate.direct import _record_params, forward_params
    from neuralannot_cli.render import render_mesh

    if record.frame != "camera":
        raise ValueError(f"record {record.key}: a world-frame record without extrinsics cannot be drawn")
    model = models.get(record.model_type, getattr(record, "hand_type", None))
    verts, _, _ = forward_params(model, [_record_params(record, model)], None)
    colors = np.tile(np.asarray(color, np.float32), (verts.shape[1], 1))
    return render_mesh(verts[0], model.faces, np.array(record.focal_px), np.array(record.princpt_px), tuple(image_hw),
                       vertex_colors=colors, background=background, device=device)


def label_tile(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with ``text`` in a white box at the top-left."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    scale = max(0.35, min(0.6, out.shape[1] / 600))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (tw + 6, th + 8), (255, 255, 255), -1)
    cv2.putText(out, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def make_grid(rows: Sequence[Sequence[np.ndarray]], tile_px: int = 256, pad: int = 4) -> np.ndarray:
    """Stack rows of RGB tiles: every tile scaled to ``tile_px`` rows (aspect kept), white padding."""
    import cv2

    if not rows:
        raise ValueError("make_grid: no rows")
    scaled = []
    for row in rows:
        scaled.append([cv2.resize(t, (max(1, round(t.shape[1] * tile_px / t.shape[0])), tile_px),
                                  interpolation=cv2.INTER_AREA if t.shape[0] > tile_px else cv2.INTER_LINEAR)
                       for t in row])
    width = max(sum(t.shape[1] for t in r) + pad * (len(r) + 1) for r in scaled)
    grid = np.full((len(scaled) * (tile_px + pad) + pad, width, 3), 255, np.uint8)
    for i, row in enumerate(scaled):
        x, y = pad, pad + i * (tile_px + pad)
        for t in row:
            grid[y:y + tile_px, x:x + t.shape[1]] = t
            x += t.shape[1] + pad
    return grid


def _hand_crop(masks: Sequence[np.ndarray], kp: np.ndarray | None, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    pts = [np.argwhere(m)[:, ::-1] for m in masks if m.any()]
    if kp is not None:
        pts.append(np.asarray(kp, np.float64))
    if not pts:
        return 0, 0, hw[1], hw[0]
    p = np.concatenate(pts)
    lo, hi = p.min(0), p.max(0)
    c = (lo + hi) / 2
    half = max(16.0, float((hi - lo).max()) * 0.65)
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
    x1, y1 = int(min(hw[1], c[0] + half)), int(min(hw[0], c[1] + half))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def render_overlays(pseudo_gt: str | os.PathLike, dataset_json: str | os.PathLike, out_dir: str | os.PathLike, *,
                    compare: str | os.PathLike | None = None, names: Sequence[str] | None = None,
                    kind: str = "auto", max_images: int = 16, model_dir: str | os.PathLike | None = None,
                    tile_px: int = 256, alpha: float = 0.8, device: torch.device | str = "cpu",
                    on_progress: Callable[[int, int], None] | None = None) -> OverlaySummary:
    """Draw pseudo-GT meshes over their images (and beside a second source) -> PNGs under ``out_dir``.

    Returns the per-sample files, the grid, the keys drawn and the keys skipped (image missing). Raises
    FileNotFoundError / ValueError (one line) for missing or malformed inputs. A world-frame file (Human3.6M,
    MPI-INF-3DHP, InterHand2.6M) is drawn in every view of its frames, as the field's loaders place it
    (:func:`~neuralannot_cli.evaluate.direct.records_in_every_view`).
    """
    import cv2

    from neuralannot_cli.evaluate.direct import BodyModels, read_pseudo_gt_for, load_ground_truth, records_in_every_view
    from neuralannot_cli.render import overlay

    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    sources = [Path(pseudo_gt)] + ([Path(compare)] if compare is not None else [])
    recs = [read_pseudo_gt_for(p, kind, dataset_json) for p in sources]
    labels = list(names) if names else [p.stem if p.suffix else p.name for p in sources]
    if len(labels) != len(sources):
        raise ValueError(f"names: expected {len(sources)} names, got {len(labels)}")
    parts = {("hand" if r.model_type == "mano" else "body") for rs in recs for r in rs.values()}
    if len(parts) != 1:
        raise ValueError(f"cannot draw a mix of body and hand records ({sorted(parts)})")
    part = parts.pop()
    ds_kind, gts = load_ground_truth(dataset_json, kind, part=part,  # type: ignore[arg-type]
                                     model_dir=model_dir, device=device)
    models = BodyModels(model_dir, device)
    views = {k: g.view for k, g in gts.items()}
    recs = [records_in_every_view(rs, views, ds_kind, models)[0] for rs in recs]
    keys = sorted(k for k in recs[0] if k in gts and all(k in rs for rs in recs[1:])
                  and all(rs[k].frame == "camera" for rs in recs))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    files: list[Path] = []
    rows: list[list[np.ndarray]] = []
    drawn: list[str] = []
    skipped: list[str] = []
    try:
        for k in keys:
            if len(drawn) >= max_images:
                break
            gt = gts[k]
            if gt.image_path is None or not Path(gt.image_path).is_file():
                skipped.append(k)
                continue
            image = read_image_rgb(gt.image_path)
            hw = image.shape[:2]
            results = [render_record(rs[k], models, hw, color=_COLORS[i % 2], device=device)
                       for i, rs in enumerate(recs)]
            tiles = [image] + [overlay(image, r, alpha) for r in results]
            if part == "hand":
                x0, y0, x1, y1 = _hand_crop([r.mask for r in results], gt.keypoints_2d_px, hw)
                tiles = [t[y0:y1, x0:x1] for t in tiles]
            tiles = [label_tile(t, s) for t, s in zip(tiles, [f"image {k}"] + labels)]
            row = make_grid([tiles], tile_px=tile_px)
            name = "overlay_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in k) + ".png"
            if not cv2.imwrite(str(out / name), row[..., ::-1]):
                raise OSError(f"{out / name}: cannot write the PNG")
            files.append(out / name)
            rows.append(tiles)
            drawn.append(k)
            if on_progress is not None:
                on_progress(len(drawn), min(max_images, len(keys)))
    finally:
        torch.set_num_threads(threads)
    grid_path = None
    if rows:
        grid_path = out / "grid.png"
        if not cv2.imwrite(str(grid_path), make_grid(rows, tile_px=tile_px)[..., ::-1]):
            raise OSError(f"{grid_path}: cannot write the PNG")
    return OverlaySummary(tuple(files), grid_path, tuple(drawn), tuple(skipped))
