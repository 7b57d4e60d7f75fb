"""Synthetic datasets in the real public formats: posed SMPL-X / MANO meshes rendered over random
backgrounds, with exact ground truth (``neuralannot synth``).

:func:`generate` samples plausible poses within joint limits (:mod:`.synth_pose`), places cameras,
renders the mesh with :mod:`neuralannot_cli.render` (Lambert light from a random direction, per-person
clothes/skin colours by body part from the skinning weights, a noisy background of gradients and
shapes or a flat green screen) and writes JPEGs (quality 90) plus the annotation files of the chosen
format (:mod:`.synth_writers`), which :func:`neuralannot_cli.data.loaders.load_dataset` reads unchanged.
Works with real SMPL-X / MANO files or the stand-in; nothing depends on stand-in specifics (joints
come from named joint sets).

Layouts written under ``out_dir`` (``S`` = ``--image-size``; FreiHAND is always 224 x 224)::

    h36m            images/s_{SS}_act_{AA}_subact_01_ca_{C}/s_..._ca_{C}_{frame+1:06d}.jpg
                    annotations/Human36M_subject{S}_{data,camera,joint_3d}.json
                    (4 fixed cameras per subject around the capture volume, world z up, mm;
                    one subject = one body shape and one set of clothes; action_idx cycles 2..16)
    mpi3dhp         images_1k/S{s}/Seq1/imageSequence/video_{cam}/img_{frame:06d}.jpg
                    MPI-INF-3DHP_{1k,camera_1k,joint_3d}.json     (4 cameras 0..3 per subject)
    coco-wholebody  images/{split}2017/{image_id:012d}.jpg
                    annotations/coco_wholebody_{split}_v1.0.json   (2D only: 133 x (x, y, v), boxes)
    freihand        {split}/rgb/{index:08d}.jpg   ({split} = training | evaluation; "gs" block only)
                    {split}_{K,xyz,mano,verts}.json                (metres, camera frame)
    interhand       images/{split}/Capture{c}/ROM03_{RT|LT}_No_Occlusion/cam{name}/image{frame:05d}.jpg
                    annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d}.json
                    annotations/skeleton.txt      (4 cameras per capture; single right or left hands)
    3dpw            imageFiles/synth_{seq:02d}/image_{frame:05d}.jpg
                    3DPW_{split}.json    (I2L-MeshNet packaging: SMPL GT of one person per image, male or
                    female SMPL at random, camera frame; 16 frames per sequence, one camera per sequence)
    every kind      annotations/synth_hidden_gt_{split}.json       (the side file below)

Hidden ground-truth side file (``annotations/synth_hidden_gt_{split}.json``)::

    {"meta": {"generator": "neuralannot synth", "kind", "split", "seed", "count", "image_size",
              "kp_noise_px", "occlusion_frac", "hands", "face", "background",
              "model_type": "smplx" | "mano" | "smpl", "model_file", "model_is_standin", "flat_hand_mean": false,
              "num_betas", "num_expression_coeffs", "joint_set", "units": "..."},
     "annotations": {"<ann_id>": {            # FreiHAND: the sample index
        "image_id", "image_file" (relative to out_dir), "image_hw": [H, W],
        "focal_px": [fx, fy], "princpt_px": [cx, cy],
        "cam_rotmat": 3x3, "cam_trans_mm": [3]      # X_cam = R X_world + t (identity / 0: monocular sets)
        "model_type", "hand_side"? (MANO: "right" | "left"),
        "params_cam": {BodyModel keyword: list}     # camera frame, metres: BodyModel(**params_cam) gives
                                                   # the rendered mesh; hand poses relative to the mean
                                                   # hand (flat_hand_mean=False); SMPL-X: root_rotvec,
                                                   # body_pose_rotvecs, betas, left/right_hand_pose_rotvecs,
                                                   # jaw_rotvec, expression, transl_m; MANO: root_rotvec,
                                                   # hand_pose_rotvecs, betas, transl_m; SMPL (3dpw):
                                                   # root_rotvec, body_pose_rotvecs (23), betas, transl_m
        "gender"?: SMPL's ("male" | "female", 3dpw),
        "params_world"?: {...}, "joints_3d_world_mm"?  # multi-camera sets (h36m, mpi3dhp, interhand)
        "joint_set": the format's set (h36m_17, mpi3dhp_17, coco_wholebody_133, hand_21; 3dpw: h36m_17 of
                     the SMPL Human3.6M regressor, the joints 3DPW is evaluated on),
        "joints_3d_cam_mm": Jx3, "keypoints_2d_px": Jx2 (exact projections, no noise),
        "keypoints_visible": J bools (False: occluded by --occlusion-frac or off-image),
        "bbox_xywh_px", "light_dir_cam": [3], "ids": {...format ids...}}}}

Options that a format cannot represent are ignored there (reported in ``SynthSummary.notes``):
``kp_noise_px`` needs stored 2D labels (COCO-WholeBody only: the others derive 2D from 3D);
``occlusion_frac`` is written as ``v = 0`` (COCO-WholeBody), ``keypoints_vis = false`` (Human3.6M)
or ``joint_valid = 0`` (InterHand2.6M, never the wrist, whose loss would drop the hand); MPI-INF-3DHP,
FreiHAND and 3DPW have no visibility field. Same seed -> byte-identical files (on the same machine and
library versions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from neuralannot_cli.data import synth_pose as sp
from neuralannot_cli.data.synth_writers import (
    SynthView,
    write_3dpw_files,
    write_coco_wholebody_files,
    write_freihand_files,
    write_h36m_files,
    write_hidden_gt,
    write_interhand_files,
    write_mpi3dhp_files,
)

__all__ = ["SynthKind", "SYNTH_KINDS", "SynthConfig", "SynthSummary", "generate", "hidden_gt_path",
           "LOADER_KIND", "make_background"]

SynthKind = Literal["h36m", "mpi3dhp", "coco-wholebody", "freihand", "interhand", "3dpw"]
SYNTH_KINDS: tuple[str, ...] = ("h36m", "mpi3dhp", "coco-wholebody", "freihand", "interhand", "3dpw")
LOADER_KIND: dict[str, str] = {"h36m": "h36m", "mpi3dhp": "mpi3dhp", "coco-wholebody": "coco_wholebody",
                               "freihand": "freihand", "interhand": "interhand", "3dpw": "3dpw"}
"""``--kind`` -> the ``kind`` of :func:`neuralannot_cli.data.loaders.load_dataset`."""

_SPLITS: dict[str, tuple[str, ...]] = {
    "h36m": ("train", "test"), "mpi3dhp": ("train",), "coco-wholebody": ("train", "val"),
    "freihand": ("training", "evaluation"), "interhand": ("train", "val", "test"),
    "3dpw": ("train", "validation", "test"),
}
_JOINT_SET = {"h36m": "h36m_17", "mpi3dhp": "mpi3dhp_17", "coco-wholebody": "coco_wholebody_133",
              "freihand": "hand_21", "interhand": "hand_21", "3dpw": "h36m_17"}
_FRAMES_PER_SEQUENCE = 16
_FREIHAND_SIZE = 224
_CAMERAS_PER_RIG = 4
_INTERHAND_CAMERAS = ("400262", "400263", "400264", "400265")
_FRAMES_PER_CAPTURE = 60


@dataclass(frozen=True)
class SynthConfig:
    """What to generate (see the module docstring for the layouts).

    Attributes:
        kind: dataset format.
        out_dir: dataset root to write into (created).
        count: number of images (= annotations) to write.
        image_size: square image side in pixels (FreiHAND: always 224).
        seed: everything random derives from ``numpy.random.default_rng(seed)``.
        kp_noise_px: sigma of Gaussian noise added to written 2D labels (COCO-WholeBody).
        occlusion_frac: probability that a keypoint is marked missing/invisible.
        hands: SMPL-X sets: sample finger articulation and label hands (COCO-WholeBody); False keeps
            the mean hand pose and writes no hand labels.
        face: SMPL-X sets: sample jaw/expression and label the face (COCO-WholeBody).
        model_dir: directory of the SMPL-X / MANO files (None: the usual lookup, then the stand-in).
        split: dataset split (None: the format's training split).
        subjects: Human3.6M / MPI-INF-3DHP subject numbers (None: protocol defaults / 1..8).
        background: ``"random"`` (gradients, noise, shapes) or ``"green"`` (flat (0, 255, 0) screen).
        batch_size: bodies posed per body-model call.
    """

    kind: SynthKind
    out_dir: Path
    count: int = 16
    image_size: int = 256
    seed: int = 0
    kp_noise_px: float = 0.0
    occlusion_frac: float = 0.0
    hands: bool = True
    face: bool = True
    model_dir: Path | None = None
    split: str | None = None
    subjects: tuple[int, ...] | None = None
    background: Literal["random", "green"] = "random"
    batch_size: int = 8
    jpeg_quality: int = 90
    device: str = "cpu"

    def checked(self) -> SynthConfig:
        """Validated copy with the split filled in; ValueError naming the bad option."""
        if self.kind not in SYNTH_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SYNTH_KINDS)}, got {self.kind!r}")
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 px, got {self.image_size}")
        if not self.kp_noise_px >= 0.0:
            raise ValueError(f"kp_noise_px must be >= 0, got {self.kp_noise_px}")
        if not 0.0 <= self.occlusion_frac < 1.0:
            raise ValueError(f"occlusion_frac must be in [0, 1), got {self.occlusion_frac}")
        if self.background not in ("random", "green"):
            raise ValueError(f"background must be 'random' or 'green', got {self.background!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        split = self.split if self.split is not None else _SPLITS[self.kind][0]
        if split not in _SPLITS[self.kind]:
            raise ValueError(f"split for {self.kind} must be one of {_SPLITS[self.kind]}, got {split!r}")
        subjects = self.subjects
        if self.kind == "h36m" and subjects is None:
            subjects = (1, 5, 6, 7, 8) if split == "train" else (9, 11)
        if self.kind == "mpi3dhp" and subjects is None:
            subjects = tuple(range(1, 9))
        if subjects is not None and (not subjects or any(int(s) < 1 for s in subjects)):
            raise ValueError(f"subjects must be positive integers, got {subjects}")
        return replace(self, split=split, subjects=None if subjects is None else tuple(int(s) for s in subjects),
                       out_dir=Path(self.out_dir))


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote."""

    kind: str
    split: str
    out_dir: Path
    num_images: int
    annotation_files: tuple[Path, ...]
    hidden_gt_file: Path
    model_file: Path
    model_is_standin: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def hidden_gt_path(out_dir: str | Path, split: str) -> Path:
    """``{out_dir}/annotations/synth_hidden_gt_{split}.json``."""
    return Path(out_dir) / "annotations" / f"synth_hidden_gt_{split}.json"


# ----------------------------------------------------------------------------------------------
# images


def make_background(rng: np.random.Generator, image_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB: a random two-colour gradient, low-frequency blotches, a few random
    rectangles / circles / lines, and pixel noise."""
    import cv2

    h, w = image_hw
    c0, c1 = rng.uniform(20, 235, size=(2, 3))
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    blot = rng.normal(0, 1, size=(6, 6, 3)).astype(np.float32)
    img += 25.0 * cv2.resize(blot, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 9))):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shape = int(rng.integers(0, 3))
        p = rng.uniform(0, 1, size=4) * (w, h, w, h)
        if shape == 0:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, -1)
        elif shape == 1:
            cv2.circle(img, (int(p[0]), int(p[1])), int(rng.uniform(0.03, 0.2) * min(h, w)), color, -1)
        else:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, int(rng.integers(1, 6)))
    noise = rng.normal(0, rng.uniform(2, 8), size=img.shape)
    return np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)


_GREEN = np.array([0, 255, 0], dtype=np.uint8)

_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.76, 0.57, 0.42], [0.55, 0.38, 0.26],
                        [0.36, 0.24, 0.16]])


def _part_groups(model) -> dict[str, list[int]]:
    """Kinematic joint indices per colour group, by joint *name* (works for any SMPL-X/MANO file)."""
    from neuralannot_cli.body.joint_sets import SMPLX_OUTPUT_JOINT_NAMES

    names = SMPLX_OUTPUT_JOINT_NAMES[: model.num_kinematic_joints]
    groups = {"skin": [], "shirt": [], "sleeve": [], "pants": [], "shin": [], "shoes": []}
    for i, n in enumerate(names):
        if n in ("spine1", "spine2", "spine3", "left_collar", "right_collar", "pelvis"):
            groups["shirt" if n != "pelvis" else "pants"].append(i)
        elif n.endswith("shoulder"):
            groups["shirt"].append(i)
        elif n.endswith("elbow"):
            groups["sleeve"].append(i)
        elif n.endswith("hip"):
            groups["pants"].append(i)
        elif n.endswith("knee"):
            groups["shin"].append(i)
        elif n.endswith("ankle") or n.endswith("_foot"):
            groups["shoes"].append(i)
        else:
            groups["skin"].append(i)
    return groups


def _person_colors(rng: np.random.Generator, part_of_vertex: np.ndarray, groups: dict[str, list[int]] | None,
                   num_vertices: int) -> np.ndarray:
    """``(V, 3)`` float albedo in [0, 0.9]: skin tone, shirt, trousers, shoes, plus vertex noise."""
    skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))] * rng.uniform(0.9, 1.05)
    colors = np.tile(skin, (num_vertices, 1))
    if groups is not None:
        shirt = rng.uniform(0.05, 0.9, size=3)
        pants = rng.uniform(0.05, 0.7, size=3)
        shoes = rng.uniform(0.02, 0.4, size=3)
        table = {"shirt": shirt, "pants": pants, "shoes": shoes,
                 "sleeve": shirt if rng.uniform() < 0.6 else skin, "shin": pants if rng.uniform() < 0.8 else skin}
        for name, joints in groups.items():
            if name in table:
                colors[np.isin(part_of_vertex, joints)] = table[name]
    colors = colors * (1.0 + rng.normal(0.0, 0.04, size=(num_vertices, 1))) + rng.normal(0, 0.015, colors.shape)
    return np.clip(colors, 0.0, 0.9)


def _random_light(rng: np.random.Generator) -> np.ndarray:
    """Direction towards the light (camera frame): in front of the subject, mostly from above."""
    d = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.2, 0.3), -rng.uniform(0.4, 1.5)])
    return d / np.linalg.norm(d)


# ----------------------------------------------------------------------------------------------
# geometry helpers


def _look_at(center: np.ndarray, target: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV world->camera ``(R, t)`` of a camera at ``center`` looking at ``target`` (same unit)."""
    z = target - center
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ center


def _project(points_cam: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    return points_cam[..., :2] / points_cam[..., 2:3] * focal + princpt


def _bbox_of(points_px: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    h, w = image_hw
    x0, y0 = np.clip(points_px.min(0), 0, (w - 1, h - 1))
    x1, y1 = np.clip(points_px.max(0), 0, (w - 1, h - 1))
    return np.array([x0, y0, x1 - x0, y1 - y0])


def _fit_transl(verts_rel: np.ndarray, focal: np.ndarray, princpt: np.ndarray, image_hw: tuple[int, int],
                frac: float, offset_px: np.ndarray) -> np.ndarray:
    """Camera-frame translation putting ``verts_rel`` ``(V, 3)`` so its projected box spans ``frac`` of
    the image (larger side) and is centred at ``princpt + offset_px``."""
    size = frac * min(image_hw)
    lo, hi = verts_rel.min(0), verts_rel.max(0)
    centre = (lo + hi) / 2
    extent = max(hi[0] - lo[0], hi[1] - lo[1])
    d = float(focal.mean()) * extent / size + (hi[2] - lo[2]) / 2
    t = np.array([-centre[0], -centre[1], d - centre[2]])
    for _ in range(3):
        px = _project(verts_rel + t, focal, princpt)
        t[2] *= max(px.max(0) - px.min(0)) / size
        px = _project(verts_rel + t, focal, princpt)
        mid = (px.max(0) + px.min(0)) / 2
        t[:2] += (princpt + offset_px - mid) * t[2] / focal
    return t


def _to_torch(params: dict[str, np.ndarray], model) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v), dtype=model.dtype, device=model.device) for k, v in params.items()}


def _root_transl_cam(R: np.ndarray, t_m: np.ndarray, root_world: np.ndarray, transl_world: np.ndarray,
                     pelvis_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame ``(root_rotvec, transl_m)`` reproducing a world-frame body seen through ``X_c = R X_w + t``.

    The model rotates about its rest root joint ``J0`` (``pelvis_rest``), so
    ``transl_cam = R (J0 + transl_world) + t - J0``.
    """
    root_cam = sp.rotmat_to_rotvec_np(R @ sp.rotvec_to_rotmat_np(root_world))
    transl_cam = R @ (pelvis_rest + transl_world) + t_m - pelvis_rest
    return root_cam, transl_cam


# ----------------------------------------------------------------------------------------------
# generation


@dataclass
class _Person:
    """Per-subject constants: shape and colours (one H36M subject / InterHand capture = one person)."""

    betas: np.ndarray
    colors: np.ndarray


def _load_models(cfg: SynthConfig):
    from neuralannot_cli.body import load_body_model

    kw = dict(model_dir=cfg.model_dir, device=cfg.device, dtype=torch.float64)
    if cfg.kind in ("freihand", "interhand"):
        right = load_body_model("mano", is_rhand=True, **kw)
        left = load_body_model("mano", is_rhand=False, **kw) if cfg.kind == "interhand" else None
        return {"right": right, "left": left}
    if cfg.kind == "3dpw":  # 3DPW's GT uses the gendered SMPL models
        male = load_body_model("smpl", gender="male", **kw)
        return {"body": male, "male": male, "female": load_body_model("smpl", gender="female", **kw)}
    return {"body": load_body_model("smplx", gender="neutral", **kw)}


def _render(model, verts_cam_m: np.ndarray, colors: np.ndarray, focal, princpt, image_hw, light, background,
            device: str):
    from neuralannot_cli.render import render_mesh

    return render_mesh(verts_cam_m.astype(np.float32), model.faces, np.asarray(focal), np.asarray(princpt), image_hw,
                       vertex_colors=colors.astype(np.float32), light_dir_cam=tuple(light), background=background,
                       device=device)


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.jpg")
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
        raise OSError(f"could not write image {path}")
    tmp.replace(path)


class _Generator:
    def __init__(self, cfg: SynthConfig, on_progress: Callable[[int, int], None] | None):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.on_progress = on_progress
        self.models = _load_models(cfg)
        self.model = self.models.get("body") or self.models["right"]
        self.notes: list[str] = []
        self.views: list[SynthView] = []
        self.done = 0
        self.jset = _JOINT_SET[cfg.kind]
        self.image_hw = (_FREIHAND_SIZE, _FREIHAND_SIZE) if cfg.kind == "freihand" else (cfg.image_size,) * 2
        if cfg.kind == "freihand" and cfg.image_size != _FREIHAND_SIZE:
            self.notes.append(f"freihand images are always {_FREIHAND_SIZE}x{_FREIHAND_SIZE} (the format fixes it)")
        if cfg.kp_noise_px > 0 and cfg.kind != "coco-wholebody":
            self.notes.append(f"--kp-noise-px ignored: {cfg.kind} stores no 2D labels (2D = projected 3D)")
        if cfg.occlusion_frac > 0 and cfg.kind in ("mpi3dhp", "freihand", "3dpw"):
            self.notes.append(f"--occlusion-frac ignored: {cfg.kind} has no visibility field")
        if cfg.kind in ("freihand", "interhand", "3dpw") and (not cfg.hands or not cfg.face):
            self.notes.append("--no-hands / --no-face only affect SMPL-X body sets")
        self.part_of_vertex = None
        self.groups = None
        if "body" in self.models:
            weights = self.model.layer.lbs_weights.detach().cpu().numpy()
            self.part_of_vertex = weights.argmax(1)
            self.groups = _part_groups(self.model)

    # --- helpers --------------------------------------------------------------------------------

    def _progress(self) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, self.cfg.count)

    def _background(self) -> np.ndarray:
        if self.cfg.background == "green":
            return np.broadcast_to(_GREEN, (*self.image_hw, 3)).copy()
        return make_background(self.rng, self.image_hw)

    def _intrinsics(self, focal_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        s = float(min(self.image_hw))
        fx = self.rng.uniform(*focal_range) * s
        focal = np.array([fx, fx * (1.0 + self.rng.uniform(-0.002, 0.002))])
        princpt = np.array(self.image_hw[::-1], dtype=np.float64) / 2.0 + self.rng.uniform(-0.02, 0.02, 2) * s
        return focal, princpt

    def _visibility(self, kp_px: np.ndarray, protect: tuple[int, ...] = ()) -> np.ndarray:
        h, w = self.image_hw
        inside = (kp_px[:, 0] >= 0) & (kp_px[:, 0] <= w - 1) & (kp_px[:, 1] >= 0) & (kp_px[:, 1] <= h - 1)
        occluded = self.rng.uniform(size=len(kp_px)) < self.cfg.occlusion_frac
        occluded[list(protect)] = False
        vis = ~occluded
        if self.cfg.kind == "coco-wholebody":
            vis &= inside
        return vis

    def _forward(self, model, params: dict[str, np.ndarray]):
        with torch.no_grad():
            out = model(**_to_torch(params, model))
            joints = model.joints_in(out, self.jset).cpu().numpy()
        return out.vertices.cpu().numpy(), joints, out.kinematic_joints.cpu().numpy()

    def _pelvis_rest(self, model, params: dict[str, np.ndarray]) -> np.ndarray:
        keep = {k: params[k] for k in ("betas", "expression") if k in params}
        with torch.no_grad():
            return model(**_to_torch(keep, model)).kinematic_joints[:, 0].cpu().numpy()

    def _emit(self, model, verts_cam_m, joints_cam_m, focal, princpt, colors, background, *, image_rel, image_file,
              ann_id, image_id, R, t_mm, joints_world_mm, params_cam, params_world, ids, extras,
              protect=()) -> SynthView:
        light = _random_light(self.rng)
        res = _render(model, verts_cam_m, colors, focal, princpt, self.image_hw, light, background, self.cfg.device)
        _write_jpeg(self.cfg.out_dir / image_file, res.rgb, self.cfg.jpeg_quality)
        joints_cam_mm = joints_cam_m * 1000.0
        kp = _project(joints_cam_mm, focal, princpt)
        vis = self._visibility(kp, protect)
        noisy = kp + (self.rng.normal(0.0, self.cfg.kp_noise_px, kp.shape) if self.cfg.kp_noise_px > 0 else 0.0)
        verts_px = _project(verts_cam_m, focal, princpt)
        extras = dict(extras)
        extras["mask"] = res.mask
        view = SynthView(
            ann_id=ann_id, image_id=image_id, image_file=image_file, image_rel=image_rel, image_hw=self.image_hw,
            focal_px=focal, princpt_px=princpt, cam_rotmat=R, cam_trans_mm=t_mm, joints_world_mm=joints_world_mm,
            joints_cam_mm=joints_cam_mm, keypoints_2d_px=kp, keypoints_2d_noisy_px=noisy, keypoints_visible=vis,
            bbox_xywh_px=_bbox_of(verts_px, self.image_hw), params_cam=params_cam, params_world=params_world,
            light_dir_cam=light, ids=ids, extras=extras,
        )
        self.views.append(view)
        self._progress()
        return view

    # --- body, multi-camera rigs (Human3.6M, MPI-INF-3DHP) --------------------------------------

    def _body_rig(self, n_cams: int) -> dict[int, dict]:
        """Cameras around a capture volume centred at the world origin (z up, metres)."""
        rig = {}
        base = self.rng.uniform(0, 2 * np.pi)
        for k in range(n_cams):
            focal, princpt = self._intrinsics((1.0, 1.5))
            frac = self.rng.uniform(0.65, 0.85)
            dist = float(focal.mean()) * 2.1 / (frac * min(self.image_hw))
            az = base + k * 2 * np.pi / n_cams + np.deg2rad(self.rng.uniform(-12, 12))
            center = np.array([dist * np.cos(az), dist * np.sin(az), self.rng.uniform(1.2, 1.8)])
            target = np.array([0.0, 0.0, 0.95]) + self.rng.uniform(-0.1, 0.1, 3)
            R, t = _look_at(center, target, np.array([0.0, 0.0, 1.0]))
            rig[k] = {"R": R, "t_m": t, "focal": focal, "princpt": princpt}
        return rig

    def _new_body_person(self) -> _Person:
        m = self.model
        betas = sp.sample_betas(self.rng, 1, m.num_betas)[0]
        colors = _person_colors(self.rng, self.part_of_vertex, self.groups, m.num_vertices)
        return _Person(betas, colors)

    def _smplx_batch(self, betas: np.ndarray, root_rotmats: np.ndarray) -> dict[str, np.ndarray]:
        m = self.model
        b = len(root_rotmats)
        p = sp.sample_smplx_params(
            self.rng, b, num_betas=m.num_betas, num_expression_coeffs=m.num_expression_coeffs,
            left_hand_mean=m.layer.left_hand_mean.detach().cpu().numpy().reshape(15, 3),
            right_hand_mean=m.layer.right_hand_mean.detach().cpu().numpy().reshape(15, 3),
            hands=self.cfg.hands, face=self.cfg.face,
        )
        return {
            "root_rotvec": sp.rotmat_to_rotvec_np(root_rotmats), "body_pose_rotvecs": p.body_pose_rotvecs,
            "betas": betas, "left_hand_pose_rotvecs": p.left_hand_pose_rotvecs,
            "right_hand_pose_rotvecs": p.right_hand_pose_rotvecs, "jaw_rotvec": p.jaw_rotvec,
            "expression": p.expression,
        }

    def run_body_rig(self) -> list[Path]:
        cfg = self.cfg
        is_h36m = cfg.kind == "h36m"
        groups = list(cfg.subjects) if is_h36m else [(s, 1) for s in cfg.subjects]
        n_poses = math.ceil(cfg.count / _CAMERAS_PER_RIG)
        rigs, persons, frame_counter = {}, {}, {}
        up = sp._rotx(np.pi / 2)  # model y up -> world z up; model faces +z -> world -y
        for key in groups:  # every subject gets its cameras and files, even with few images
            rigs[key] = self._body_rig(_CAMERAS_PER_RIG)
            persons[key] = self._new_body_person()
        ann_id = image_id = 0
        for start in range(0, n_poses, cfg.batch_size):
            b = min(cfg.batch_size, n_poses - start)
            keys = [groups[(start + i) % len(groups)] for i in range(b)]
            roots = sp.sample_upright_root_rotmat(self.rng, b, up)
            betas = np.stack([persons[k].betas for k in keys])
            params = self._smplx_batch(betas, roots)
            verts, joints, _ = self._forward(self.model, params)
            pelvis_rest = self._pelvis_rest(self.model, params)
            for i, key in enumerate(keys):
                shift = np.array([*self.rng.uniform(-0.3, 0.3, 2), -verts[i][:, 2].min()])
                transl_w = shift
                verts_w, joints_w = verts[i] + shift, joints[i] + shift
                pw = {k: v[i] for k, v in params.items()} | {"transl_m": transl_w}
                count_key = frame_counter.get(key, 0)
                frame_counter[key] = count_key + 1
                for cam_idx, cam in rigs[key].items():
                    if self.done >= cfg.count:
                        break
                    R, t_m = cam["R"], cam["t_m"]
                    root_c, transl_c = _root_transl_cam(R, t_m, pw["root_rotvec"], transl_w, pelvis_rest[i])
                    pc = dict(pw) | {"root_rotvec": root_c, "transl_m": transl_c}
                    verts_c = verts_w @ R.T + t_m
                    joints_c = joints_w @ R.T + t_m
                    if is_h36m:
                        subject = key
                        action, subaction, frame = 2 + count_key % 15, 1, count_key // 15
                        cam_no = cam_idx + 1
                        folder = f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{cam_no:02d}"
                        rel = f"{folder}/{folder}_{frame + 1:06d}.jpg"
                        image_file = f"images/{rel}"
                        ids = {"subject": subject, "action": action, "subaction": subaction, "camera": cam_no,
                               "frame": frame}
                    else:
                        subject, seq = key
                        frame, cam_no = count_key, cam_idx
                        rel = f"video_{cam_no}/img_{frame:06d}.jpg"
                        image_file = f"images_1k/S{subject}/Seq{seq}/imageSequence/{rel}"
                        ids = {"subject": subject, "sequence": seq, "camera": cam_no, "frame": frame}
                    bg_key = ("bg", key, cam_idx)
                    if bg_key not in rigs:
                        rigs[bg_key] = self._background()
                    self._emit(self.model, verts_c, joints_c, cam["focal"], cam["princpt"], persons[key].colors,
                               rigs[bg_key], image_rel=rel, image_file=image_file, ann_id=ann_id, image_id=image_id,
                               R=R, t_mm=t_m * 1000.0, joints_world_mm=joints_w * 1000.0, params_cam=pc,
                               params_world=pw, ids=ids, extras={"model_type": "smplx"})
                    ann_id += 1
                    image_id += 1
        root = cfg.out_dir
        cams: dict = {}
        for key, rig in rigs.items():
            if isinstance(key, tuple) and key and key[0] == "bg":
                continue
            if is_h36m:
                cams[key] = {c + 1: {"R": r["R"], "t": r["t_m"] * 1000.0, "f": r["focal"], "c": r["princpt"]}
                             for c, r in rig.items()}
            else:
                cams[key] = {c: {"R": r["R"], "t": r["t_m"] * 1000.0, "focal": r["focal"], "princpt": r["princpt"]}
                             for c, r in rig.items()}
        if is_h36m:
            return write_h36m_files(root, self.views, cams)
        return write_mpi3dhp_files(root, self.views, cams)

    # --- body, monocular (COCO-WholeBody) ------------------------------------------------------

    def run_coco(self) -> list[Path]:
        cfg = self.cfg
        up = np.diag([1.0, -1.0, -1.0])  # model y up -> image up; model faces +z -> towards the camera
        for start in range(0, cfg.count, cfg.batch_size):
            b = min(cfg.batch_size, cfg.count - start)
            people = [self._new_body_person() for _ in range(b)]
            roots = sp.sample_upright_root_rotmat(self.rng, b, up, yaw_range_deg=(-70.0, 70.0))
            params = self._smplx_batch(np.stack([p.betas for p in people]), roots)
            verts, joints, _ = self._forward(self.model, params)
            for i in range(b):
                focal, princpt = self._intrinsics((1.0, 1.6))
                frac = self.rng.uniform(0.55, 0.85)
                offset = self.rng.uniform(-0.06, 0.06, 2) * min(self.image_hw)
                transl = _fit_transl(verts[i], focal, princpt, self.image_hw, frac, offset)
                pc = {k: v[i] for k, v in params.items()} | {"transl_m": transl}
                verts_c, joints_c = verts[i] + transl, joints[i] + transl
                idx = start + i
                image_id = 1 + idx
                rel = f"{image_id:012d}.jpg"
                background = self._background()
                view = self._emit(self.model, verts_c, joints_c, focal, princpt, people[i].colors, background,
                                  image_rel=rel, image_file=f"images/{cfg.split}2017/{rel}", ann_id=1 + idx,
                                  image_id=image_id, R=np.eye(3), t_mm=np.zeros(3),
                                  joints_world_mm=joints_c * 1000.0, params_cam=pc, params_world=None,
                                  ids={"image_id": image_id, "ann_id": 1 + idx}, extras={"model_type": "smplx"})
                self._coco_extras(view)
        for v in self.views:
            v.extras.pop("mask", None)
        return write_coco_wholebody_files(cfg.out_dir, self.views, cfg.split)

    def _coco_extras(self, view: SynthView) -> None:
        from pycocotools import mask as mask_utils

        mask = view.extras.pop("mask")
        vis = view.keypoints_visible
        if not self.cfg.face:
            vis[23:91] = False
        if not self.cfg.hands:
            vis[91:133] = False
        for name, sl, enabled in (("face", slice(23, 91), self.cfg.face), ("lefthand", slice(91, 112), self.cfg.hands),
                                  ("righthand", slice(112, 133), self.cfg.hands)):
            part_vis = vis[sl]
            valid = bool(enabled and part_vis.mean() >= 0.5)
            box = np.zeros(4)
            if valid:
                pts = view.keypoints_2d_px[sl]
                lo, hi = pts.min(0), pts.max(0)
                c, half = (lo + hi) / 2, (hi - lo) / 2 * 1.2 + 1.0
                box = _bbox_of(np.stack([c - half, c + half]), self.image_hw)
            view.extras[f"{name}_box"] = box
            view.extras[f"{name}_valid"] = valid
        view.extras["foot_valid"] = bool(vis[17:23].mean() >= 0.5)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        view.extras["segmentation"] = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
        view.extras["area"] = float(mask.sum())

    # --- body, monocular SMPL (3DPW) -------------------------------------------------------------

    def run_3dpw(self) -> list[Path]:
        """One camera per sequence of :data:`_FRAMES_PER_SEQUENCE` frames; every image one person of random
        gender (its SMPL), shape and pose; placed as in :meth:`run_coco`."""
        cfg = self.cfg
        up = np.diag([1.0, -1.0, -1.0])  # model y up -> image up; model faces +z -> towards the camera
        cams: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for start in range(0, cfg.count, cfg.batch_size):
            b = min(cfg.batch_size, cfg.count - start)
            genders = ["male" if self.rng.uniform() < 0.5 else "female" for _ in range(b)]
            people = [self._new_body_person() for _ in range(b)]
            roots = sp.sample_upright_root_rotmat(self.rng, b, up, yaw_range_deg=(-70.0, 70.0))
            body21 = sp.sample_body_pose_rotvecs(self.rng, b)  # SMPL-X's 21 body joints = SMPL's first 21
            params = {"root_rotvec": sp.rotmat_to_rotvec_np(roots),
                      "body_pose_rotvecs": np.concatenate([body21, np.zeros((b, 2, 3))], axis=1),  # + SMPL hands
                      "betas": np.stack([p.betas for p in people])}
            for i in range(b):
                idx = start + i
                seq, frame = divmod(idx, _FRAMES_PER_SEQUENCE)
                if seq not in cams:
                    cams[seq] = self._intrinsics((1.0, 1.6))
                focal, princpt = cams[seq]
                model = self.models[genders[i]]
                one = {k: v[i:i + 1] for k, v in params.items()}
                verts, joints, _ = self._forward(model, one)
                frac = self.rng.uniform(0.55, 0.85)
                offset = self.rng.uniform(-0.06, 0.06, 2) * min(self.image_hw)
                transl = _fit_transl(verts[0], focal, princpt, self.image_hw, frac, offset)
                pc = {k: v[0] for k, v in one.items()} | {"transl_m": transl}
                verts_c, joints_c = verts[0] + transl, joints[0] + transl
                sequence = f"synth_{seq:02d}"
                rel = f"image_{frame:05d}.jpg"
                self._emit(model, verts_c, joints_c, focal, princpt, people[i].colors, self._background(),
                           image_rel=rel, image_file=f"imageFiles/{sequence}/{rel}", ann_id=idx, image_id=idx,
                           R=np.eye(3), t_mm=np.zeros(3), joints_world_mm=joints_c * 1000.0, params_cam=pc,
                           params_world=None,
                           ids={"image_id": idx, "ann_id": idx, "sequence": sequence, "person_id": 0},
                           extras={"model_type": "smpl", "gender": genders[i]})
        for v in self.views:
            v.extras.pop("mask", None)
        return write_3dpw_files(cfg.out_dir, self.views, cfg.split)

    # --- hands ----------------------------------------------------------------------------------

    def _hand_colors(self, model) -> np.ndarray:
        return _person_colors(self.rng, np.zeros(model.num_vertices, dtype=np.int64), None, model.num_vertices)

    def _mano_batch(self, model, b: int, betas: np.ndarray, is_right: bool) -> dict[str, np.ndarray]:
        mean = model.layer.hand_mean.detach().cpu().numpy().reshape(15, 3)
        p = sp.sample_mano_params(self.rng, b, num_betas=model.num_betas, hand_mean=mean, is_right=is_right)
        return {"root_rotvec": sp.rotmat_to_rotvec_np(sp.sample_random_rotmat(self.rng, b)),
                "hand_pose_rotvecs": p.hand_pose_rotvecs, "betas": betas}

    def run_freihand(self) -> list[Path]:
        cfg = self.cfg
        model = self.models["right"]
        for start in range(0, cfg.count, cfg.batch_size):
            b = min(cfg.batch_size, cfg.count - start)
            betas = sp.sample_betas(self.rng, b, model.num_betas)
            params = self._mano_batch(model, b, betas, True)
            verts, joints, _ = self._forward(model, params)
            for i in range(b):
                idx = start + i
                focal, princpt = self._intrinsics((2.2, 3.5))
                frac = self.rng.uniform(0.45, 0.75)
                offset = self.rng.uniform(-0.05, 0.05, 2) * _FREIHAND_SIZE
                transl = _fit_transl(verts[i], focal, princpt, self.image_hw, frac, offset)
                pc = {k: v[i] for k, v in params.items()} | {"transl_m": transl}
                verts_c, joints_c = verts[i] + transl, joints[i] + transl
                rel = f"{idx:08d}.jpg"
                self._emit(model, verts_c, joints_c, focal, princpt, self._hand_colors(model), self._background(),
                           image_rel=rel, image_file=f"{cfg.split}/rgb/{rel}", ann_id=idx, image_id=idx,
                           R=np.eye(3), t_mm=np.zeros(3), joints_world_mm=joints_c * 1000.0, params_cam=pc,
                           params_world=None, ids={"index": idx},
                           extras={"model_type": "mano", "hand_side": "right", "vertices_cam_m": verts_c})
        for v in self.views:
            v.extras.pop("mask", None)
        files = write_freihand_files(cfg.out_dir, self.views, cfg.split)
        for v in self.views:
            v.extras.pop("vertices_cam_m", None)
        return files

    def _hand_rig(self) -> dict[str, dict]:
        rig = {}
        for name in _INTERHAND_CAMERAS:
            focal, princpt = self._intrinsics((2.0, 3.0))
            frac = self.rng.uniform(0.45, 0.7)
            dist = float(focal.mean()) * 0.24 / (frac * min(self.image_hw))
            az = self.rng.uniform(0, 2 * np.pi)
            el = np.deg2rad(self.rng.uniform(-30, 60))
            center = dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
            R, t = _look_at(center, np.zeros(3), np.array([0.0, 0.0, 1.0]))
            rig[name] = {"camrot": R, "campos_m": center, "t_m": t, "focal": focal, "princpt": princpt}
        return rig

    def run_interhand(self) -> list[Path]:
        cfg = self.cfg
        n_poses = math.ceil(cfg.count / len(_INTERHAND_CAMERAS))
        rigs, persons, backgrounds = {}, {}, {}
        ann_id = image_id = 0
        for p_idx in range(n_poses):
            capture = p_idx // _FRAMES_PER_CAPTURE
            frame = p_idx % _FRAMES_PER_CAPTURE
            if capture not in rigs:
                rigs[capture] = self._hand_rig()
                persons[capture] = _Person(sp.sample_betas(self.rng, 1, self.models["right"].num_betas)[0],
                                           self._hand_colors(self.models["right"]))
            side = "right" if self.rng.uniform() < 0.5 else "left"
            model = self.models[side]
            params = self._mano_batch(model, 1, persons[capture].betas[None], side == "right")
            verts, joints, _ = self._forward(model, params)
            lo, hi = verts[0].min(0), verts[0].max(0)
            transl_w = -(lo + hi) / 2 + self.rng.uniform(-0.03, 0.03, 3)
            verts_w, joints_w = verts[0] + transl_w, joints[0] + transl_w
            pw = {k: v[0] for k, v in params.items()} | {"transl_m": transl_w}
            pelvis_rest = self._pelvis_rest(model, params)[0]
            seq = f"ROM03_{'RT' if side == 'right' else 'LT'}_No_Occlusion"
            for name, cam in rigs[capture].items():
                if self.done >= cfg.count:
                    break
                R, t_m = cam["camrot"], cam["t_m"]
                root_c, transl_c = _root_transl_cam(R, t_m, pw["root_rotvec"], transl_w, pelvis_rest)
                pc = dict(pw) | {"root_rotvec": root_c, "transl_m": transl_c}
                rel = f"Capture{capture}/{seq}/cam{name}/image{frame:05d}.jpg"
                if (capture, name) not in backgrounds:
                    backgrounds[(capture, name)] = self._background()
                self._emit(model, verts_w @ R.T + t_m, joints_w @ R.T + t_m, cam["focal"], cam["princpt"],
                           persons[capture].colors, backgrounds[(capture, name)], image_rel=rel,
                           image_file=f"images/{cfg.split}/{rel}", ann_id=ann_id, image_id=image_id, R=R,
                           t_mm=t_m * 1000.0, joints_world_mm=joints_w * 1000.0, params_cam=pc, params_world=pw,
                           ids={"capture": capture, "camera": name, "frame": frame, "hand_side": side,
                                "seq_name": seq},
                           extras={"model_type": "mano", "hand_side": side}, protect=(0,))
                ann_id += 1
                image_id += 1
        for v in self.views:
            v.extras.pop("mask", None)
        cams = {cap: {n: {"campos": c["campos_m"] * 1000.0, "camrot": c["camrot"], "focal": c["focal"],
                          "princpt": c["princpt"]} for n, c in rig.items()} for cap, rig in rigs.items()}
        return write_interhand_files(cfg.out_dir, self.views, cfg.split, cams)


def generate(config: SynthConfig, on_progress: Callable[[int, int], None] | None = None) -> SynthSummary:
    """Generate ``config.count`` images with annotations in ``config.kind``'s format under ``config.out_dir``.

    Args:
        config: see :class:`SynthConfig`.
        on_progress: called as ``on_progress(done, total)`` after each image.

    Returns:
        :class:`SynthSummary` (written files, the model used, notes on ignored options).

    Raises:
        ValueError: a bad option (one line naming it).
        FileNotFoundError: an explicit ``model_dir`` without the needed model file.
    """
    cfg = config.checked()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    gen = _Generator(cfg, on_progress)
    if cfg.kind in ("h36m", "mpi3dhp"):
        files = gen.run_body_rig()
    elif cfg.kind == "coco-wholebody":
        files = gen.run_coco()
    elif cfg.kind == "freihand":
        files = gen.run_freihand()
    elif cfg.kind == "3dpw":
        files = gen.run_3dpw()
    else:
        files = gen.run_interhand()
    for v in gen.views:
        v.extras.pop("mask", None)
    model = gen.model
    meta = {
        "generator": "neuralannot synth", "kind": cfg.kind, "split": cfg.split, "seed": cfg.seed,
        "count": cfg.count, "image_size": list(gen.image_hw), "kp_noise_px": cfg.kp_noise_px,
        "occlusion_frac": cfg.occlusion_frac, "hands": cfg.hands, "face": cfg.face, "background": cfg.background,
        "model_type": model.model_type, "model_file": str(model.model_file), "model_is_standin": model.is_standin,
        "flat_hand_mean": model.flat_hand_mean, "num_betas": model.num_betas,
        "num_expression_coeffs": model.num_expression_coeffs, "joint_set": gen.jset,
        "units": "params_*: radians (axis-angle) and metres; *_mm: millimetres; *_px: pixels",
        "notes": gen.notes,
    }
    hidden = write_hidden_gt(hidden_gt_path(cfg.out_dir, cfg.split), gen.views, meta, gen.jset)
    return SynthSummary(kind=cfg.kind, split=cfg.split, out_dir=cfg.out_dir, num_images=len(gen.views),
                        annotation_files=tuple(files), hidden_gt_file=hidden, model_file=model.model_file,
                        model_is_standin=model.is_standin, notes=tuple(gen.notes))
