"""Throughput of the CPU rasteriser (neuralannot_cli.render) against the 100 images/s target.

Usage::

    python benchmarks/render_throughput.py [--resolutions 256 512] [--batches 1 16] [--threads 1 2]
        [--seconds 2]

Meshes: the stand-in SMPL-X body (10,475 vertices, 20,908 faces, from
``neuralannot_cli.body.standin.make_standin`` written to a temporary folder) in its template pose,
and a procedural UV-sphere with about 20k faces. Each mesh is framed to fill most of the image, as
a person crop does. Throughput = images rendered per second of wall time, ``render_batch`` with the
given batch size (batch 1 is one mesh per call), median of repeated timed calls, for each
``torch.set_num_threads`` value; ``vs 100/s`` is the wall-clock rate over the 100 images/s target.
Timings on a shared machine are noisy: the load average is printed, and ``img/cpu-s`` (images per
CPU second of this process) with one thread estimates an idle core's rate under contention. With
more torch threads than free cores, OpenMP oversubscription makes the wall rate collapse.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch

from neuralannot_cli.render import render_batch

TARGET_IMAGES_PER_S = 100.0


def uv_sphere(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit UV-sphere: vertices ``(2 + (n_lat - 1) * n_lon, 3)``, faces ``(2 * n_lon * (n_lat - 1), 3)``."""
    theta = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0.0, 2.0 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), -np.cos(t)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, -1.0]], ring, [[0.0, 0.0, 1.0]]])
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon
    faces = [np.stack([np.zeros(n_lon, int), 1 + jn, 1 + j], 1)]
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon + j, 1 + i * n_lon + jn
        faces += [np.stack([a, b, a + n_lon], 1), np.stack([b, b + n_lon, a + n_lon], 1)]
    last = 1 + (n_lat - 2) * n_lon
    faces.append(np.stack([last + j, last + jn, np.full(n_lon, len(verts) - 1)], 1))
    return verts, np.concatenate(faces)


def standin_body() -> tuple[np.ndarray, np.ndarray] | None:
    """Template vertices (metres, y up) and faces of the stand-in SMPL-X model, or None if unavailable."""
    try:
        from neuralannot_cli.body.standin import make_standin
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_standin(tmp)
        data = np.load(paths["smplx_neutral"], allow_pickle=False)
        return np.asarray(data["v_template"], np.float64), np.asarray(data["f"], np.int64)


def frame_for_camera(verts: np.ndarray, y_up: bool, image_side: int, fill: float = 0.9):
    """Place a mesh in front of an OpenCV camera so that it spans ``fill`` of a square image.

    Returns ``(vertices_cam (V, 3) float32, focal_px (2,), princpt_px (2,))``.
    """
    v = verts - (verts.max(0) + verts.min(0)) / 2
    if y_up:  # model frame (y up, facing +z) -> camera frame (y down, facing the camera at -z)
        v = v * np.array([1.0, -1.0, -1.0])
    distance = 3.0 * np.abs(v).max()
    v = v + np.array([0.0, 0.0, distance])
    extent = np.abs(v[:, :2] / v[:, 2:]).max()
    focal = fill * image_side / 2 / extent
    return v.astype(np.float32), np.array([focal, focal]), np.array([image_side / 2, image_side / 2])


def measure(
    verts_cam, faces, focal, princpt, side: int, batch: int, seconds: float, cull: bool
) -> tuple[float, float, float]:
    """Return (images per wall second, images per CPU second of this process, covered fraction).

    With one thread, images per CPU second estimates the throughput of an idle core when other
    processes compete for the machine (wall-clock rates then drop with the load).
    """
    vb = torch.from_numpy(verts_cam)[None].expand(batch, -1, -1).contiguous()
    result = render_batch(vb, faces, focal, princpt, (side, side), cull_backfaces=cull)  # warm-up
    wall, cpu = [], []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(wall) < 5:
        t0, c0 = time.perf_counter(), time.process_time()
        render_batch(vb, faces, focal, princpt, (side, side), cull_backfaces=cull)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return batch / statistics.median(wall), batch / statistics.median(cpu), float(result.mask.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per configuration")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads values")
    parser.add_argument("--cull", type=int, nargs="+", default=[0], help="cull_backfaces values (0 and/or 1)")
    args = parser.parse_args()

    meshes = []
    body = standin_body()
    if body is not None:
        meshes.append(("stand-in SMPL-X", body[0], body[1], True))
    sphere_v, sphere_f = uv_sphere(72, 146)
    meshes.append(("UV-sphere", sphere_v, sphere_f, False))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.2f} before the run")
    header = (
        f"{'mesh':<16} {'faces':>6} {'res':>5} {'batch':>5} {'thr':>3} {'cull':>4} {'covered':>8} "
        f"{'img/s':>8} {'vs 100/s':>8} {'img/cpu-s':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, verts, faces, y_up in meshes:
        for side in args.resolutions:
            verts_cam, focal, princpt = frame_for_camera(verts, y_up, side)
            for batch in args.batches:
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    for cull in args.cull:
                        rate, cpu_rate, covered = measure(
                            verts_cam, faces, focal, princpt, side, batch, args.seconds, bool(cull)
                        )
                        print(
                            f"{name:<16} {len(faces):>6} {side:>5} {batch:>5} {threads:>3} {cull:>4} {covered:>8.1%} "
                            f"{rate:>8.1f} {rate / TARGET_IMAGES_PER_S:>8.2f} {cpu_rate:>9.1f}"
                        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} after the run")


if __name__ == "__main__":
    main()
