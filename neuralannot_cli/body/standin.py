"""Procedural stand-in SMPL-X / SMPL / MANO / FLAME model files.

The licensed model files can never be shipped or downloaded in tests, so this module writes
deterministic *stand-ins* in the identical file formats; the real `smplx` package loads and runs
them unchanged (nothing downstream special-cases them). Each file carries the extra key
``STANDIN_MARKER_KEY`` (smplx ignores unknown keys) so tools can tell a stand-in from the real thing.

Layout written by :func:`make_standin` (the layout users keep the real files in, and what
``smplx.create(out_dir, model_type=...)`` expects)::

    smplx/SMPLX_{NEUTRAL,MALE,FEMALE}.npz      10,475 vertices, 20,908 faces, 55 joints
    smplx/J_regressor_h36m_smplx.npy           (17, 10475) Human3.6M regressor (Hand4Whole / SMPLer-X name)
    smplx/MANO_SMPLX_vertex_ids.pkl            MANO vertex -> SMPL-X vertex (nearest; many-to-one)
    smplx/SMPL-X__FLAME_vertex_ids.npy         FLAME vertex -> SMPL-X vertex (nearest; many-to-one)
    smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl        6,890 vertices, 13,776 faces, 24 joints (plain numpy pickles)
    smpl/J_regressor_h36m_correct.npy          (17, 6890) Human3.6M regressor (SPIN / I2L-MeshNet name)
    mano/MANO_{RIGHT,LEFT}.pkl                 778 vertices, 1,538 faces, 16 joints (plain numpy pickles)
    flame/FLAME_{NEUTRAL,MALE,FEMALE}.pkl      5,023 vertices, 9,976 faces, 5 joints
    flame/flame_static_embedding.pkl           51 iBUG landmarks (points 17..67)
    flame/flame_dynamic_embedding.npy          17 contour landmarks x 79 yaw bins

Conventions (as the real models): metres, y up, the body faces +z, T-pose with the arms along
+-x and the left side of the body at +x; SMPL-X feet at y ~ -1.28, head top at y ~ +0.42, pelvis
joint at (0, -0.35, 0). The geometry is a "mannequin": closed tubes per body part (torso, head with
neck, eyeballs, arms, legs, feet, palms, fingers) whose hidden ends are joined by small internal
bands so vertex *and* face counts are exactly the real ones (no degenerate faces). Joints are
convex combinations of ring vertices (so they follow the shape), skinning weights blend smoothly
between neighbouring bones along each tube, and smplx's fixed vertex ids (``vertex_ids['smplx']``,
``vertex_ids['mano']``, and the FreiHAND fingertip ids 745/317/445/556/673 (and 444) used by I2L-MeshNet and
Hand4Whole) are permuted onto the matching anatomical points.

Shape spaces use the SMPL-X v1.0 / FLAME-2019 "10 shape + 10 expression" layout (``shapedirs`` has
20 columns) to keep files small. smplx supports that layout and prints, on every model load::

    WARNING: You are using a SMPL-X model, with only 10 shape coefficients.
    WARNING: You are using a SMPL-X model, with only 10 shape and 10 expression coefficients.

(likewise for FLAME; MANO prints the first line, as it does for the real MANO files).
Shape component 0 changes height by ~7 cm per unit; the others change girth, shoulder width, leg
and arm length, head size, hip width, chest depth, hand size and neck length. Expression components
move face vertices only. Pose correctives (``posedirs``) are all zero.

SMPL is the SMPL-X stand-in's body without eyeballs at SMPL's resolution, every part a closed tube and
all 20 parts joined by connected sums into one closed, oriented genus-0 surface like SMPL's mesh
(F = 2 V - 4). Its 24 joints are SMPL's: the 22 body joints of SMPL-X, then the left / right hand joint
at the knuckles, which skins the fingers (the palm follows the wrist); the template is shifted up 11 cm
(pelvis joint at y ~ -0.24, as SMPL's). ``kintree_table`` stores the root's parent as 4294967295 like
the released files; ``posedirs`` is (6890, 3, 207) zeros; smplx's SMPL vertex joints
(``vertex_ids['smplh']``) sit on the matching anatomical points.

Hand PCA (``hands_components*``, 45 x 45, rows are components) and ``hands_mean*`` come from hand
poses sampled with curl / spread / thumb opposition within joint limits (``seed`` picks the sample);
the left-hand arrays are the x-mirror of the right-hand ones (axis-angle * (1, -1, -1)).
``MANO_LEFT.pkl`` is the exact mirror of ``MANO_RIGHT.pkl`` (x flipped, faces flipped); unlike the
official file its ``shapedirs[:, 0, :]`` already has the mirrored sign (smplx issue #48), so the
usual "negate when left and right are equal" fix leaves it alone.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import tempfile
from pathlib import Path
from types import MappingProxyType

import numpy as np

__all__ = [
    "STANDIN_MARKER_KEY",
    "SMPLX_PARENTS",
    "MANO_PARENTS",
    "FLAME_PARENTS",
    "H36M_JOINT_NAMES",
    "FREIHAND_FINGERTIP_VERTEX_IDS",
    "make_standin",
]

STANDIN_MARKER_KEY = "neuralannot_standin"
_MARKER_VALUE = "neuralannot stand-in v1"

# Parents of the 55 SMPL-X joints: SMPL's 22 body joints, jaw and eyes under the head, then
# 15 joints per hand (index, middle, pinky, ring, thumb; 3 each) under the wrists 20 / 21.
SMPLX_PARENTS: tuple[int, ...] = (
    (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
    + (15, 15, 15)
    + tuple(p for b in range(25, 40, 3) for p in (20, b, b + 1))
    + tuple(p for b in range(40, 55, 3) for p in (21, b, b + 1))
)
MANO_PARENTS: tuple[int, ...] = (-1,) + tuple(p for b in range(1, 16, 3) for p in (0, b, b + 1))
FLAME_PARENTS: tuple[int, ...] = (-1, 0, 1, 1, 1)  # global, neck, jaw, left eye, right eye
# Parents of the 24 SMPL joints: SMPL-X's 22 body joints, then the left / right hand under the wrists.
SMPL_PARENTS: tuple[int, ...] = SMPLX_PARENTS[:22] + (20, 21)

H36M_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
    "Nose", "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)
# Right-hand MANO fingertip vertices of the 21-joint FreiHAND / InterHand order (thumb, index,
# middle, ring, little), as used by I2L-MeshNet / Hand4Whole / InterHand2.6M.
FREIHAND_FINGERTIP_VERTEX_IDS: tuple[int, ...] = (745, 317, 445, 556, 673)
# I2L-MeshNet's ``fingertip_vertex_idx`` list gives 444 for the middle tip (its regressor, Hand4Whole and
# InterHand2.6M use 445) and older forks use 728/353/576/694: also placed on the fingertips.
_ALT_FINGERTIP_VERTEX_IDS: tuple[int, ...] = (728, 353, 444, 576, 694)
# smplx.vertex_ids['mano'] (thumb, index, middle, ring, pinky).
_SMPLX_MANO_TIP_IDS: tuple[int, ...] = (744, 320, 443, 554, 671)
# smplx.vertex_ids['smplx'] (copied, so the library does not need smplx at import time).
_SMPLX_VERTEX_IDS = {
    "nose": 9120, "reye": 9929, "leye": 9448, "rear": 616, "lear": 6,
    "rthumb": 8079, "rindex": 7669, "rmiddle": 7794, "rring": 7905, "rpinky": 8022,
    "lthumb": 5361, "lindex": 4933, "lmiddle": 5058, "lring": 5169, "lpinky": 5286,
    "LBigToe": 5770, "LSmallToe": 5780, "LHeel": 8846,
    "RBigToe": 8463, "RSmallToe": 8474, "RHeel": 8635,
}

_N_SMPLX_V, _N_SMPLX_F = 10475, 20908
_N_MANO_V, _N_MANO_F = 778, 1538
_N_FLAME_V, _N_FLAME_F = 5023, 9976
_N_SMPL_V, _N_SMPL_F = 6890, 13776
# smplx.vertex_ids['smplh'], the vertex joints smplx's SMPL layer appends (SMPL and SMPL+H share the topology).
_SMPLH_VERTEX_IDS = {
    "nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583,
    "rthumb": 6191, "rindex": 5782, "rmiddle": 5905, "rring": 6016, "rpinky": 6133,
    "lthumb": 2746, "lindex": 2319, "lmiddle": 2445, "lring": 2556, "lpinky": 2673,
    "LBigToe": 3216, "LSmallToe": 3226, "LHeel": 3387,
    "RBigToe": 6617, "RSmallToe": 6624, "RHeel": 6787,
}
# The real SMPL files store the root's parent as uint32 -1 in an int64 kintree_table.
_SMPL_ROOT_PARENT = 4294967295

# Left-side SMPL-X joint -> right-side joint.
_LEFT_TO_RIGHT = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 23: 24}
_LEFT_TO_RIGHT.update({j: j + 15 for j in range(25, 40)})
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # MANO / SMPL-X joint order


# ----------------------------------------------------------------------------------------------
# small math helpers


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _gauss(x, mu, sigma):
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _grid_faces(n_rings: int, n_around: int, start_apex: bool, end_apex: bool):
    """Faces of a ring tube: vertices ring-major (ring r, slot k -> r*N+k), then the apexes.

    Outward orientation when slots run counter-clockwise about the direction of increasing r."""
    r = np.arange(n_rings - 1)[:, None]
    k = np.arange(n_around)[None, :]
    k1 = (k + 1) % n_around
    a, b = r * n_around + k, r * n_around + k1
    c, d = (r + 1) * n_around + k1, (r + 1) * n_around + k
    faces = [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
    nxt = n_rings * n_around
    start_faces = end_faces = None
    kk = np.arange(n_around)
    if start_apex:
        start_faces = np.stack([np.full(n_around, nxt), (kk + 1) % n_around, kk], -1)
        nxt += 1
    if end_apex:
        last = (n_rings - 1) * n_around
        end_faces = np.stack([np.full(n_around, nxt), last + kk, last + (kk + 1) % n_around], -1)
    return np.concatenate(faces), start_faces, end_faces


def _transport_frames(centers, ref):
    """Tangents and parallel-transported normal frames (u, v) with u x v = t along a polyline."""
    t = np.gradient(centers, axis=0)
    t = _unit(t)
    u = np.empty_like(t)
    v = np.empty_like(t)
    prev = np.asarray(ref, dtype=np.float64)
    for i in range(len(t)):
        ui = prev - t[i] * (prev @ t[i])
        ui /= np.linalg.norm(ui)
        u[i] = ui
        v[i] = np.cross(t[i], ui)
        prev = ui
    return t, u, v


# ----------------------------------------------------------------------------------------------
# mesh assembly


class _Part:
    """One tube-shaped part: rings of vertices (+ apex caps) and how they are skinned."""

    def __init__(self, name, rings, s, start_apex=None, end_apex=None, ring_weights=None):
        self.name = name
        self.rings = np.asarray(rings, dtype=np.float64)  # (R, N, 3)
        self.s = np.asarray(s, dtype=np.float64)  # (R,) arc parameter of each ring
        self.start_apex = None if start_apex is None else np.asarray(start_apex, np.float64)
        self.end_apex = None if end_apex is None else np.asarray(end_apex, np.float64)
        self.ring_weights = ring_weights  # (R, J) or None
        self.offset = 0
        self.extra = {}

    @property
    def n_rings(self):
        return self.rings.shape[0]

    @property
    def n_around(self):
        return self.rings.shape[1]

    @property
    def n_verts(self):
        return self.rings.shape[0] * self.rings.shape[1] + (self.start_apex is not None) + (
            self.end_apex is not None)

    def positions(self):
        pts = [self.rings.reshape(-1, 3)]
        if self.start_apex is not None:
            pts.append(self.start_apex[None])
        if self.end_apex is not None:
            pts.append(self.end_apex[None])
        return np.concatenate(pts)

    def ring_ids(self, r):
        return self.offset + r * self.n_around + np.arange(self.n_around)

    def start_apex_id(self):
        return self.offset + self.n_rings * self.n_around

    def end_apex_id(self):
        return self.offset + self.n_rings * self.n_around + (self.start_apex is not None)

    def row_at(self, s_query, n_total):
        """Regressor row (n_total,) placing a joint at arc parameter s_query (ring interpolation)."""
        row = np.zeros(n_total)
        s = self.s
        r = int(np.clip(np.searchsorted(s, s_query) - 1, 0, len(s) - 2))
        t = float(np.clip((s_query - s[r]) / (s[r + 1] - s[r]), 0.0, 1.0))
        row[self.ring_ids(r)] += (1.0 - t) / self.n_around
        row[self.ring_ids(r + 1)] += t / self.n_around
        return row


def _chain_weights(s, breaks, joints, blend, n_joints):
    """Weights (len(s), n_joints): segment i (between breaks i-1 and i) belongs to joints[i]."""
    w = np.zeros((len(s), n_joints))
    # fraction assigned to each segment via cumulative smooth steps
    prev = np.ones(len(s))
    for i, b in enumerate(breaks):
        nxt = _smoothstep((s - (b - blend)) / (2.0 * blend))
        w[:, joints[i]] += prev - nxt
        prev = nxt
    w[:, joints[len(breaks)]] += prev
    return w


def _limb_part(name, keys, radii, seg_rings, n_around, ref, joints, blend, n_joints,
               cap_start=0.6, cap_end=0.6):
    """Tube through key points; joints[i] skins the segment keys[i] -> keys[i+1]."""
    keys = np.asarray(keys, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    centers, rads, key_ring = [keys[0]], [radii[0]], [0]
    for k, n in enumerate(seg_rings):
        f = np.arange(1, n + 1)[:, None] / n
        centers.extend(keys[k] + f * (keys[k + 1] - keys[k]))
        rads.extend(radii[k] + f * (radii[k + 1] - radii[k]))
        key_ring.append(len(centers) - 1)
    centers, rads = np.asarray(centers), np.asarray(rads)
    t, u, v = _transport_frames(centers, ref)
    th = 2.0 * np.pi * np.arange(n_around) / n_around
    rings = (centers[:, None] + rads[:, 0, None, None] * np.cos(th)[None, :, None] * u[:, None]
             + rads[:, 1, None, None] * np.sin(th)[None, :, None] * v[:, None])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centers, axis=0), axis=1))])
    start = centers[0] - t[0] * cap_start * rads[0].min()
    end = centers[-1] + t[-1] * cap_end * rads[-1].min()
    key_s = s[key_ring]
    # segment joints -> breaks where the joint changes
    brk, jts = [], [joints[0]]
    for i in range(1, len(joints)):
        if joints[i] != jts[-1]:
            brk.append(key_s[i])
            jts.append(joints[i])
    part = _Part(name, rings, s, start, end, _chain_weights(s, brk, jts, blend, n_joints))
    part.extra["key_s"] = key_s
    part.extra["key_ring"] = key_ring
    return part


def _sphere_part(name, center, radius, n_rings, n_around, joint, n_joints):
    """UV sphere around +z: back apex first, front apex (the 'pupil') last."""
    a = np.pi * np.arange(1, n_rings + 1) / (n_rings + 1)
    centers = np.asarray(center)[None] + np.outer(-np.cos(a) * radius, [0.0, 0.0, 1.0])
    th = 2.0 * np.pi * np.arange(n_around) / n_around
    u, v = np.array([0.0, 1.0, 0.0]), np.array([-1.0, 0.0, 0.0])  # u x v = +z
    rr = radius * np.sin(a)
    rings = centers[:, None] + rr[:, None, None] * (np.cos(th)[None, :, None] * u
                                                    + np.sin(th)[None, :, None] * v)
    w = np.zeros((n_rings, n_joints))
    w[:, joint] = 1.0
    return _Part(name, rings, centers[:, 2], np.asarray(center) - [0, 0, radius],
                 np.asarray(center) + [0, 0, radius], w)


def _mirror_part(part, name, joint_map):
    """x -> -x copy (vertex i of the copy mirrors vertex i of the original); faces get flipped."""
    m = np.array([-1.0, 1.0, 1.0])
    w = part.ring_weights
    w2 = np.zeros_like(w)
    for j in range(w.shape[1]):
        w2[:, joint_map.get(j, j)] += w[:, j]
    out = _Part(name, part.rings * m, part.s,
                None if part.start_apex is None else part.start_apex * m,
                None if part.end_apex is None else part.end_apex * m, w2)
    out.extra = dict(part.extra)
    out.extra["mirrored"] = True
    return out


class _Mesh:
    def __init__(self, parts, n_joints):
        self.parts = {}
        off = 0
        faces, weights, pos = [], [], []
        self.face_range = {}
        for p in parts:
            p.offset = off
            self.parts[p.name] = p
            f, fs, fe = _grid_faces(p.n_rings, p.n_around, p.start_apex is not None,
                                    p.end_apex is not None)
            local = [f] + [x for x in (fs, fe) if x is not None]
            lf = np.concatenate(local) + off
            if p.extra.get("mirrored"):
                lf = lf[:, [0, 2, 1]]
            nf0 = sum(len(x) for x in faces)
            self.face_range[p.name] = (nf0, nf0 + len(lf))
            n_side = len(f)
            p.extra["start_faces"] = (nf0 + n_side + np.arange(p.n_around)
                                      if fs is not None else None)
            p.extra["end_faces"] = (nf0 + n_side + (p.n_around if fs is not None else 0)
                                    + np.arange(p.n_around) if fe is not None else None)
            faces.append(lf)
            rw = p.ring_weights
            wv = np.repeat(rw, p.n_around, axis=0)
            extra_w = [rw[:1]] * (p.start_apex is not None) + [rw[-1:]] * (p.end_apex is not None)
            weights.append(np.concatenate([wv] + extra_w))
            pos.append(p.positions())
            off += p.n_verts
        self.n_verts = off
        self.faces = np.concatenate(faces).astype(np.int64)
        self.weights = np.concatenate(weights)
        self.verts = np.concatenate(pos)
        self.removed = np.zeros(len(self.faces), dtype=bool)
        self.added = []

    def part_vertex_ids(self, name):
        p = self.parts[name]
        return p.offset + np.arange(p.n_verts)

    def connect(self, face_a, face_b):
        """Connected sum: remove two faces of two components and join the holes by a 6-face band."""
        a, b = self.faces[face_a], self.faces[face_b]
        if self.removed[face_a] or self.removed[face_b]:
            raise RuntimeError("face used twice in stand-in connected sums")
        self.removed[[face_a, face_b]] = True
        beta = b[[0, 2, 1]]
        for i in range(3):
            j = (i + 1) % 3
            self.added.append((a[i], a[j], beta[j]))
            self.added.append((a[i], beta[j], beta[i]))

    def nearest_face(self, part_name, point, exclude=()):
        lo, hi = self.face_range[part_name]
        idx = np.arange(lo, hi)
        idx = idx[~self.removed[idx]]
        idx = np.setdiff1d(idx, np.asarray(exclude, dtype=np.int64))
        cent = self.verts[self.faces[idx]].mean(axis=1)
        return int(idx[np.argmin(np.linalg.norm(cent - point, axis=1))])

    def final_faces(self):
        f = self.faces[~self.removed]
        if self.added:
            f = np.concatenate([f, np.asarray(self.added, dtype=np.int64)])
        return f


# ----------------------------------------------------------------------------------------------
# head (shared by SMPL-X and FLAME); coordinates of the SMPL-X template


_HEAD = MappingProxyType(dict(yc=0.305, ry=0.117, rx=0.074, rz=0.097, zc=0.012, neck_rx=0.05, neck_rz=0.055,
             neck_zc=-0.008, y_mouth=0.2555, y_eye=0.313, phi_eye=0.45))


def _head_profile(y):
    h = _HEAD
    t = np.clip((y - h["yc"]) / h["ry"], -1.0, 1.0)
    sh = np.sqrt(np.clip(1.0 - t * t, 0.0, None))
    jaw = 1.0 - 0.22 * np.clip(-t, 0.0, None) ** 2  # narrower jaw
    hx, hz = h["rx"] * sh * jaw, h["rz"] * sh
    fade = 1.0 - _smoothstep((y - 0.24) / 0.08)
    nx, nz = h["neck_rx"] * fade, h["neck_rz"] * fade
    p = 6.0
    rx = (hx ** p + nx ** p) ** (1.0 / p)
    rz = (hz ** p + nz ** p) ** (1.0 / p)
    wh = hz ** p / np.maximum(hz ** p + nz ** p, 1e-30)
    zc = wh * h["zc"] + (1.0 - wh) * h["neck_zc"]
    return rx, rz, zc


def _face_features(phi, y):
    """Radial offset (m) of the face relief at azimuth phi (0 = +z, + towards +x) and height y."""
    h = _HEAD
    front = _smoothstep((np.cos(phi) - 0.1) / 0.5)
    nose = (0.018 * _gauss(y, 0.288, 0.009) * _gauss(phi, 0.0, 0.11)
            + 0.009 * _gauss(y, 0.31, 0.016) * _gauss(phi, 0.0, 0.07))
    brow = 0.005 * _gauss(y, 0.336, 0.008) * _gauss(phi, 0.0, 0.55)
    sock = -0.006 * (_gauss(phi, h["phi_eye"], 0.12) + _gauss(phi, -h["phi_eye"], 0.12)) * _gauss(
        y, h["y_eye"], 0.009)
    lips = (0.006 * _gauss(y, 0.262, 0.0045) + 0.006 * _gauss(y, 0.248, 0.0045)
            - 0.003 * _gauss(y, h["y_mouth"], 0.002)) * _gauss(phi, 0.0, 0.28)
    chin = 0.008 * _gauss(y, 0.215, 0.012) * _gauss(phi, 0.0, 0.3)
    ears = 0.015 * (_gauss(phi, np.pi / 2, 0.12) + _gauss(phi, -np.pi / 2, 0.12)) * _gauss(
        y, 0.30, 0.018)
    return front * (nose + brow + sock + lips + chin) + ears


def _head_point(phi, y):
    phi, y = np.broadcast_arrays(np.asarray(phi, np.float64), np.asarray(y, np.float64))
    rx, rz, zc = _head_profile(y)
    rad = _face_features(phi, y)
    x = (rx + rad) * np.sin(phi)
    z = zc + (rz + rad) * np.cos(phi)
    return np.stack([x, y, z], -1)


def _head_levels(n_rings, y_bot, y_top, open_bottom):
    ys = np.linspace(y_bot, y_top, 2001)
    rx, rz, _ = _head_profile(ys)
    r = np.maximum(rx, rz)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(ys), np.diff(r)))])
    if open_bottom:
        tgt = np.linspace(0.0, arc[-1], n_rings + 1)[:-1]
    else:
        tgt = np.linspace(0.0, arc[-1], n_rings + 2)[1:-1]
    return np.interp(tgt, arc, ys)


_Y_TOP = _HEAD["yc"] + _HEAD["ry"]


def _head_part(name, n_rings, n_around, y_bot, open_bottom, weight_fn, n_joints):
    ys = _head_levels(n_rings, y_bot, _Y_TOP, open_bottom)
    phi = 2.0 * np.pi * np.arange(n_around) / n_around
    phi = np.where(phi > np.pi, phi - 2.0 * np.pi, phi)
    rings = _head_point(phi[None, :], ys[:, None])
    _, _, zc_top = _head_profile(np.array([_Y_TOP]))
    start = None if open_bottom else np.array([0.0, y_bot - 0.01, _head_profile(np.array([y_bot]))[2][0]])
    part = _Part(name, rings, ys, start, np.array([0.0, _Y_TOP, zc_top[0]]), np.zeros((n_rings, n_joints)))
    part.extra["phi"] = phi
    part.extra["ys"] = ys
    part.extra["base_rings"] = rings.copy()
    # per-vertex (phi, y) and weights
    pv = np.concatenate([np.broadcast_to(phi, (n_rings, n_around)).reshape(-1)]
                        + [[0.0]] * (start is not None) + [[0.0]])
    yv = np.concatenate([np.repeat(ys, n_around)] + [[y_bot - 0.01]] * (start is not None) + [[_Y_TOP]])
    part.extra["phi_v"], part.extra["y_v"] = pv, yv
    part.extra["vertex_weights"] = weight_fn(pv, yv)
    return part


def _jaw_mask(phi, y):
    below = _smoothstep((_HEAD["y_mouth"] - y) / 0.003)
    above_neck = _smoothstep((y - 0.165) / 0.03)
    front = _smoothstep((np.cos(phi) + 0.05) / 0.45)
    return below * above_neck * front


def _expression_dirs(phi, y):
    """(V, 3, 10) expression displacement fields on head vertices given their (phi, y)."""
    sgn = np.sign(np.sin(phi))
    face = _smoothstep((np.cos(phi) - 0.05) / 0.3) * (y > 0.18) * (y < 0.37)
    jm = _jaw_mask(phi, y)
    g = _gauss
    d = np.zeros((len(phi), 3, 10))
    d[:, 1, 0], d[:, 2, 0] = -0.010 * jm, -0.003 * jm  # open mouth
    w = (g(phi, 0.33, 0.12) + g(phi, -0.33, 0.12)) * g(y, 0.255, 0.012)  # smile
    d[:, 0, 1], d[:, 1, 1], d[:, 2, 1] = 0.004 * sgn * w, 0.005 * w, -0.002 * w
    d[:, 1, 2] = 0.006 * g(y, 0.338, 0.012) * g(phi, 0.0, 0.6)  # brows up
    w = g(y, 0.335, 0.01) * g(phi, 0.0, 0.25)  # frown
    d[:, 0, 3], d[:, 1, 3] = -0.003 * np.sin(phi) / 0.25 * w, -0.004 * w
    w = g(y, 0.255, 0.01) * g(phi, 0.0, 0.3)  # pucker
    d[:, 0, 4], d[:, 2, 4] = -0.01 * np.sin(phi) * w, 0.008 * w
    w = (g(phi, 0.55, 0.2) + g(phi, -0.55, 0.2)) * g(y, 0.265, 0.02)  # cheek puff
    d[:, 0, 5], d[:, 2, 5] = 0.006 * np.sin(phi) * w, 0.006 * np.cos(phi) * w
    w = (g(phi, 0.45, 0.15) + g(phi, -0.45, 0.15)) * g(y, 0.313, 0.012)  # squint
    d[:, 1, 6] = -0.5 * (y - 0.313) * w
    d[:, 0, 7] = 0.005 * jm  # jaw shift
    w = g(phi, 0.0, 0.2) * g(y, 0.30, 0.012)  # nose wrinkle
    d[:, 1, 8], d[:, 2, 8] = 0.003 * w, 0.001 * w
    w = (g(phi, 0.3, 0.15) + g(phi, -0.3, 0.15)) * g(y, 0.255, 0.012)  # stretch
    d[:, 0, 9], d[:, 1, 9] = 0.006 * sgn * w, -0.002 * w
    d *= face[:, None, None]
    d[np.abs(d) < 1e-7] = 0.0
    return d


# iBUG-68 points 17..67 as (azimuth, height) on the head surface; subject's right is -x.
def _static_landmark_targets():
    pts = []
    br = [(-0.75, 0.330), (-0.58, 0.338), (-0.42, 0.341), (-0.27, 0.339), (-0.13, 0.334)]
    pts += br + [(-a, b) for a, b in br[::-1]]  # 17..26
    pts += [(0.0, 0.322), (0.0, 0.310), (0.0, 0.298), (0.0, 0.288)]  # 27..30
    pts += [(-0.17, 0.274), (-0.09, 0.271), (0.0, 0.270), (0.09, 0.271), (0.17, 0.274)]  # 31..35
    eye = [(-0.60, 0.313), (-0.51, 0.319), (-0.39, 0.319), (-0.30, 0.313), (-0.39, 0.308),
           (-0.51, 0.308)]
    pts += eye  # 36..41
    pts += [(-a, b) for a, b in (eye[3], eye[2], eye[1], eye[0], eye[5], eye[4])]  # 42..47
    pts += [(-0.33, 0.2555), (-0.22, 0.262), (-0.09, 0.266), (0.0, 0.264), (0.09, 0.266),
            (0.22, 0.262), (0.33, 0.2555), (0.22, 0.247), (0.09, 0.243), (0.0, 0.241),
            (-0.09, 0.243), (-0.22, 0.247)]  # 48..59
    pts += [(-0.28, 0.2555), (-0.09, 0.2585), (0.0, 0.2585), (0.09, 0.2585), (0.28, 0.2555),
            (0.09, 0.252), (0.0, 0.252), (-0.09, 0.252)]  # 60..67
    a = np.asarray(pts)
    return _head_point(a[:, 0], a[:, 1])


def _dynamic_landmark_targets():
    """(79, 17, 3): jaw-line contour (iBUG 0..16) per yaw bin as smplx indexes them."""
    phi0 = np.linspace(-1.35, 1.35, 17)
    y = 0.207 + (0.292 - 0.207) * (np.abs(phi0) / 1.35) ** 1.6
    out = np.zeros((79, 17, 3))
    for b in range(79):
        # smplx picks bin b = round(-yaw) of the neck chain's rotation in the OpenCV camera frame (root ~ R_x(pi)),
        # i.e. b = +yaw of the head in the model's own frame for b <= 39 and 39 - yaw (yaw < 0) above
        theta = np.deg2rad(b) if b <= 39 else -np.deg2rad(b - 39)
        phi = np.clip(phi0, -np.pi / 2 - theta + 0.15, np.pi / 2 - theta - 0.15)
        out[b] = _head_point(phi, y)
    return out


def _sq_dists(a, b):
    """(len(a), len(b)) squared distances without a (len(a), len(b), 3) temporary."""
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * (a @ b.T), 0.0)


def _embed(verts, faces, cand_faces, targets):
    """Face index and barycentric coordinates of the surface point nearest each target.

    Candidates are the faces around the 3 vertices nearest to the target; the target is projected
    onto each candidate's plane, its barycentric coordinates clipped to the triangle, and the face
    with the smallest reconstruction error wins."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 3)
    cand_faces = np.asarray(cand_faces, dtype=np.int64)
    cf = faces[cand_faces]
    cand_v = np.unique(cf)
    # vertex -> incident candidate faces, padded with -1
    inc = [[] for _ in range(len(cand_v))]
    pos = np.searchsorted(cand_v, cf)
    for fi, row in zip(cand_faces.tolist(), pos.tolist()):
        for r in row:
            inc[r].append(fi)
    width = max(len(x) for x in inc)
    table = np.full((len(cand_v), width), -1, dtype=np.int64)
    for r, x in enumerate(inc):
        table[r, :len(x)] = x
    near = np.argsort(_sq_dists(targets, verts[cand_v]), axis=1, kind="stable")[:, :3]
    cands = table[near].reshape(len(targets), -1)  # (T, 3 * width)
    valid = cands >= 0
    tri = verts[faces[np.where(valid, cands, cand_faces[0])]]  # (T, C, 3, 3)
    a, b, c = tri[:, :, 0], tri[:, :, 1], tri[:, :, 2]
    v0, v1, v2 = b - a, c - a, targets[:, None] - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    wv = (d11 * d20 - d01 * d21) / den
    ww = (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.stack([1.0 - wv - ww, wv, ww], -1), 0.0, None)
    bary /= bary.sum(-1, keepdims=True)
    err = np.linalg.norm((bary[..., None] * tri).sum(-2) - targets[:, None], axis=-1)
    err = np.where(valid, err, np.inf)
    best = np.argmin(err, axis=1)
    rows = np.arange(len(targets))
    return cands[rows, best], bary[rows, best]


# ----------------------------------------------------------------------------------------------
# hands


_HAND_FINGERS = {  # MCP (rel. wrist; fingers +x, dorsal +y, thumb side +z), direction, lengths, radius
    "index": ((0.088, 0.002, 0.027), (1.0, 0.0, 0.06), (0.040, 0.024, 0.021), 0.0092),
    "middle": ((0.092, 0.003, 0.008), (1.0, 0.0, 0.0), (0.044, 0.028, 0.023), 0.0095),
    "pinky": ((0.080, 0.000, -0.031), (1.0, 0.0, -0.10), (0.032, 0.020, 0.019), 0.0080),
    "ring": ((0.088, 0.002, -0.012), (1.0, 0.0, -0.04), (0.041, 0.027, 0.022), 0.0088),
    "thumb": ((0.024, -0.012, 0.026), (0.55, -0.25, 0.80), (0.038, 0.033, 0.027), 0.0115),
}


def _hand_parts(prefix, wrist, scale, rings, n_palm, n_finger, wrist_joint, finger_joints,
                n_joints, palm_start_open, n_thumb=None):
    """Left hand (fingers +x, palm down, thumb to +z). rings: dict part -> ring counts."""
    wrist = np.asarray(wrist, np.float64)
    parts = []
    keys = [wrist + scale * np.array(p) for p in ((-0.012, 0, 0), (0.0, 0, 0), (0.045, 0.001, 0),
                                                  (0.082, 0.001, 0))]
    radii = scale * np.array([[0.017, 0.033], [0.017, 0.035], [0.016, 0.043], [0.013, 0.042]])
    rp = rings["palm"]
    palm = _limb_part(prefix + "palm", keys, radii, [1, rp // 2 - 1, rp - rp // 2 - 1],
                      n_palm, (0, 1, 0), [wrist_joint] * 3, 0.01, n_joints, cap_end=0.8)
    if palm_start_open:
        palm.start_apex = None
    parts.append(palm)
    for f, (mcp, d, lens, rad) in _HAND_FINGERS.items():
        d = _unit(d)
        mcp = wrist + scale * np.asarray(mcp)
        pip = mcp + scale * lens[0] * d
        dip = pip + scale * lens[1] * d
        tip = dip + scale * (lens[2] - rad * 0.6) * d
        base = mcp - scale * 0.018 * d
        ks = [base, mcp, pip, dip, tip]
        r = scale * np.array([[rad * 0.95, rad * 1.05], [rad, rad * 1.08], [rad * 0.9, rad * 0.97],
                              [rad * 0.82, rad * 0.88], [rad * 0.72, rad * 0.78]])
        n = rings[f]
        seg = [2, (n - 3) * 2 // 5, (n - 3) * 3 // 10]
        seg.append(n - 1 - sum(seg))
        ref = (0, 1, 0) if f != "thumb" else _unit(np.cross(d, (1.0, 0.0, 0.0)))
        jt = finger_joints[f]
        slots = n_thumb if (f == "thumb" and n_thumb) else n_finger
        parts.append(_limb_part(prefix + f, ks, r, seg, slots, ref,
                                [wrist_joint, jt[0], jt[1], jt[2]], 0.004 * scale, n_joints,
                                cap_start=0.5, cap_end=0.9))
    return parts


def _hand_plan(mesh, prefix, palm_face):
    """Connected sums for a hand: the fingers' hidden base caps (inside the palm) are chained
    thumb-index-middle-ring-pinky, and the middle finger joins the palm at ``palm_face`` (a face
    hidden inside the forearm for SMPL-X, next to the open wrist for MANO)."""
    P = mesh.parts
    half = P[prefix + "index"].n_around // 2
    quarter = P[prefix + "middle"].n_around // 4

    def cap(f, k):
        return int(P[prefix + f].extra["start_faces"][k])

    pairs = [(cap("thumb", 0), cap("index", 0)), (cap("index", half), cap("middle", 0)),
             (cap("middle", half), cap("ring", 0)), (cap("ring", half), cap("pinky", 0)),
             (cap("middle", quarter), int(palm_face))]
    for fa, fb in pairs:
        mesh.connect(fa, fb)
    return pairs


def _apply_plan(mesh, plan):
    pairs, removed = plan
    for fa, fb in pairs:
        mesh.connect(fa, fb)
    mesh.removed[np.asarray(removed, dtype=np.int64)] = True


def _tip_targets(mesh, prefix):
    """(apex id, [ids of the 2 tip-ring vertices nearest the pad]) per finger in _FINGERS order."""
    out = {}
    for f in _FINGERS:
        p = mesh.parts[prefix + f]
        apex = p.end_apex_id()
        last = p.ring_ids(p.n_rings - 1)
        # prefer ring vertices on the palmar side (lowest y) for the extra tip ids
        order = last[np.argsort(mesh.verts[last, 1] + 1e-9 * np.arange(len(last)))]
        out[f] = (apex, list(order[:2]))
    return out


def _hand_pose_samples(rng, n):
    """(n, 45) right-hand MANO poses (axis-angle per joint, index/middle/pinky/ring/thumb)."""
    out = np.zeros((n, 15, 3))
    grasp = rng.uniform(-0.2, 0.8, size=n)
    spread = rng.uniform(-0.15, 0.3, size=n)
    spread_sign = {"index": 1.0, "middle": 0.2, "pinky": -1.2, "ring": -0.6}
    for i, f in enumerate(_FINGERS):
        d = _unit(_HAND_FINGERS[f][1]) * np.array([-1.0, 1.0, 1.0])  # right hand: mirror x
        n_palm = np.array([0.0, -1.0, 0.0])
        flex_axis = _unit(np.cross(d, n_palm))
        curl = np.clip(grasp + 0.25 * rng.standard_normal(n), -0.15, 1.05)
        if f == "thumb":
            flex = np.stack([0.5 * curl, 0.7 * curl, 0.8 * curl], 1)
            abd = 0.4 * rng.uniform(-0.5, 1.0, size=n)
            ab_axis = _unit(np.cross(flex_axis, d))
            out[:, 12, :] += abd[:, None] * ab_axis
        else:
            flex = np.stack([1.3 * curl, 1.6 * curl, 1.0 * curl], 1)
            out[:, 3 * i, :] += (spread * spread_sign[f])[:, None] * np.array([0.0, -1.0, 0.0])
        for k in range(3):
            out[:, 3 * i + k, :] += flex[:, k, None] * flex_axis
    out += 0.03 * rng.standard_normal(out.shape)
    return out.reshape(n, 45)


def _hand_pca(seed):
    rng = np.random.default_rng(np.random.SeedSequence([seed, 45]))
    x = _hand_pose_samples(rng, 1500)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=True)
    sign = np.sign(vt[np.arange(45), np.argmax(np.abs(vt), axis=1)])
    vt = vt * sign[:, None]
    coeffs = (x[:200] - mean) @ vt.T
    return vt, mean, coeffs


def _mirror_pose(p):
    """Axis-angle (..., 45) of a right hand -> the mirrored left hand (x-reflection)."""
    return (np.asarray(p).reshape(*np.shape(p)[:-1], 15, 3) * np.array([1.0, -1.0, -1.0])).reshape(
        np.shape(p))


# ----------------------------------------------------------------------------------------------
# count solving


def _solve_body_rings(fixed, r, n_vertices, target, head_rings, what):
    """Complete a body ring layout (``fixed``: slots around each part, ``r``: rings along it) so the closed parts
    hold exactly ``n_vertices``: the torso's slots and rings and the head's rings are searched, nearest to
    ``target`` = (head rings, torso rings, torso slots) with the head's rings in ``head_rings``."""
    eyes = 2 * (fixed["n_eye"] * fixed["r_eye"] + 2) if "n_eye" in fixed else 0
    sym = (eyes + 2 * (fixed["n_arm"] * r["arm"] + 2)
           + 2 * (fixed["n_leg"] * r["leg"] + 2) + 2 * (fixed["n_foot"] * r["foot"] + 2)
           + 2 * (fixed["n_palm"] * r["palm"] + 2)
           + 2 * sum(fixed["n_finger"] * r[f] + 2 for f in _FINGERS))
    rest = n_vertices - sym - 4  # torso and head apexes
    best = None
    for nt in range(41, 64, 2):
        for rt in range(22, 40):
            left = rest - nt * rt
            if left % fixed["n_head"] == 0:
                rh = left // fixed["n_head"]
                cost = abs(rh - target[0]) + abs(rt - target[1]) + abs(nt - target[2])
                if head_rings[0] <= rh <= head_rings[1] and (best is None or cost < best[0]):
                    best = (cost, nt, rt, rh)
    if best is None:
        raise RuntimeError(f"no {what} stand-in ring layout hits the vertex count")
    fixed["n_torso"] = best[1]
    r["torso"], r["head"] = best[2], best[3]
    return fixed, r


@functools.lru_cache(maxsize=None)
def _smplx_counts():
    fixed = dict(n_torso=None, n_head=56, n_eye=10, r_eye=8, n_arm=20, n_leg=24, n_foot=16,
                 n_palm=16, n_finger=8)
    r = dict(arm=36, leg=40, foot=20, palm=8, index=15, middle=16, pinky=13, ring=15, thumb=14)
    return _solve_body_rings(fixed, r, _N_SMPLX_V, (62, 30, 49), (45, 80), "SMPL-X")


@functools.lru_cache(maxsize=None)
def _smpl_counts():
    """Ring layout of the SMPL stand-in: the SMPL-X parts without eyeballs, at a lower resolution. Every part is a
    closed tube and the parts are joined into one genus-0 surface (as SMPL's mesh), so F = 2 V - 4 holds by
    construction and only the vertex count is solved for (torso and head rings)."""
    fixed = dict(n_torso=None, n_head=48, n_arm=16, n_leg=20, n_foot=12, n_palm=12, n_finger=6)
    r = dict(arm=30, leg=34, foot=16, palm=6, index=10, middle=11, pinky=9, ring=10, thumb=10)
    return _solve_body_rings(fixed, r, _N_SMPL_V, (44, 30, 45), (30, 70), "SMPL")


@functools.lru_cache(maxsize=None)
def _mano_counts():
    # palm open at the wrist with a 16-vertex hole (as real MANO), fingers closed tubes.
    best = None
    for rp in range(8, 14):
        for base in range(14, 22):
            rr = dict(palm=rp, index=base, middle=base + 1, pinky=base - 2, ring=base)
            for thumb in range(base - 3, base + 3):
                rr["thumb"] = thumb
                n = 16 * rp + 1 + sum(8 * rr[f] + 2 for f in _FINGERS[:4]) + 9 * thumb + 2
                if n == _N_MANO_V:
                    cost = abs(rp - 10) + abs(base - 17)
                    if best is None or cost < best[0]:
                        best = (cost, dict(rr))
    if best is None:
        raise RuntimeError("no MANO stand-in ring layout hits the vertex count")
    return best[1]


@functools.lru_cache(maxsize=None)
def _flame_counts():
    best = None
    for ne in range(8, 20):
        for re_ in range(6, 20):
            left = _N_FLAME_V - 2 * (ne * re_ + 2) - 1
            if left % 60 == 0:
                cost = abs(ne - 14) + abs(re_ - 12)
                if best is None or cost < best[0]:
                    best = (cost, ne, re_, left // 60)
    if best is None:
        raise RuntimeError("no FLAME stand-in ring layout hits the vertex count")
    return best[1:]


# ----------------------------------------------------------------------------------------------
# SMPL-X


_SMPLX_FINGER_JOINTS = {f: (25 + 3 * i, 26 + 3 * i, 27 + 3 * i) for i, f in enumerate(_FINGERS)}
_MANO_FINGER_JOINTS = {f: (1 + 3 * i, 2 + 3 * i, 3 + 3 * i) for i, f in enumerate(_FINGERS)}
_Y_NECK, _Y_HEAD_J, _Y_JAW = 0.14, 0.235, 0.262
_Y_PELVIS = -0.35
_TORSO_BREAKS = {"spine1": -0.24, "spine2": -0.11, "spine3": -0.05}


def _smplx_parts(beta, counts=None, eyes=True):
    """Parts of the SMPL-X stand-in for shape coefficients beta (10,), before global scaling.

    ``counts`` (``(fixed, rings)`` as :func:`_smplx_counts` returns them, the default) sets the resolution;
    ``eyes=False`` leaves the eyeballs out (the SMPL stand-in). Weights index the 55 SMPL-X joints."""
    b = np.asarray(beta, dtype=np.float64)
    cnt, r = _smplx_counts() if counts is None else counts
    J = 55
    girth = 1.0 + 0.12 * b[1]
    parts = []
    # torso
    ty = np.array([-0.47, -0.45, -0.40, -0.35, -0.25, -0.15, -0.05, 0.05, 0.10, 0.14, 0.17])
    trx = np.array([0.06, 0.13, 0.165, 0.165, 0.145, 0.14, 0.155, 0.165, 0.15, 0.10, 0.05])
    trz = np.array([0.05, 0.09, 0.105, 0.105, 0.095, 0.095, 0.105, 0.105, 0.09, 0.07, 0.045])
    tzc = np.array([0.0, 0.0, -0.005, -0.005, -0.01, 0.0, 0.01, 0.0, -0.01, -0.01, -0.01])
    trx = trx + 0.02 * b[6] * ((ty >= -0.45) & (ty <= -0.35)) + 0.02 * b[2] * ((ty >= 0.05) & (ty <= 0.10))
    trz = trz * (1.0 + 0.10 * b[7] * ((ty >= -0.1) & (ty <= 0.1)))
    ys = np.linspace(-0.465, 0.165, r["torso"])
    rx, rz, zc = (np.interp(ys, ty, a) for a in (trx * girth, trz * girth, tzc))
    th = 2.0 * np.pi * np.arange(cnt["n_torso"]) / cnt["n_torso"]
    rings = np.stack([rx[:, None] * np.sin(th), np.broadcast_to(ys[:, None], (len(ys), len(th))),
                      zc[:, None] + rz[:, None] * np.cos(th)], -1)
    tw = _chain_weights(ys, sorted(_TORSO_BREAKS.values()), [0, 3, 6, 9], 0.03, J)
    parts.append(_Part("torso", rings, ys, [0.0, -0.48, 0.0], [0.0, 0.175, -0.01], tw))

    # head + neck (closed; its bottom hides inside the torso)
    def head_w(phi, y):
        w = _chain_weights(y, [_Y_NECK, _Y_HEAD_J], [9, 12, 15], 0.02, J)
        m = _jaw_mask(phi, y)
        w *= (1.0 - m)[:, None]
        w[:, 22] += m
        return w

    head = _head_part("head", r["head"], cnt["n_head"], 0.10, False, head_w, J)
    parts.append(head)
    leye = None
    if eyes:
        eye_c = _head_point(_HEAD["phi_eye"], _HEAD["y_eye"]) - np.array([0.0, 0.0, 0.0105])
        leye = _sphere_part("leye", eye_c, 0.0125, cnt["r_eye"], cnt["n_eye"], 23, J)
        parts.append(leye)
    # left arm
    C = np.array([0.075 + 0.005 * b[2], 0.075, -0.01])
    S = np.array([0.178 + 0.02 * b[2], 0.095, -0.015])
    E = S + np.array([0.262 + 0.012 * b[4], 0.0, -0.005])
    W = E + np.array([0.255 + 0.018 * b[4], 0.0, 0.0])
    keys = [C - [0.005, 0, 0], C, S, E, W, W + [0.012, 0, 0]]
    rad = girth * np.array([[0.045, 0.045], [0.05, 0.05], [0.052, 0.055], [0.036, 0.038],
                            [0.022, 0.03], [0.02, 0.028]])
    ra = r["arm"] - 1
    seg = [1, 4, (ra - 7) // 2, ra - 7 - (ra - 7) // 2, 2]
    arm = _limb_part("larm", keys, rad, seg, cnt["n_arm"], (0, 1, 0), [13, 13, 16, 18, 20], 0.025, J)
    parts.append(arm)
    # left leg
    hx = 0.085 + 0.015 * b[6]
    Hp = np.array([hx, -0.44, 0.0])
    K = np.array([hx + 0.015, -0.82 - 0.02 * b[3], 0.01])
    A = np.array([hx + 0.005, -1.20 - 0.04 * b[3], -0.035])
    keys = [np.array([hx, -0.34, 0.0]), Hp, K, A, A + [0, -0.02, 0]]
    rad = girth * np.array([[0.085, 0.085], [0.09, 0.088], [0.05, 0.05], [0.032, 0.035],
                            [0.03, 0.032]])
    rl = r["leg"] - 1
    seg = [4, (rl - 6) // 2, rl - 6 - (rl - 6) // 2, 2]
    leg = _limb_part("lleg", keys, rad, seg, cnt["n_leg"], (0, 0, 1), [0, 1, 4, 7], 0.03, J)
    parts.append(leg)
    # left foot
    keys = [A + [0, -0.045, -0.05], A + [0, -0.045, 0.0], A + [0.02, -0.055, 0.125],
            A + [0.028, -0.062, 0.2]]
    rad = np.array([[0.03, 0.03], [0.035, 0.036], [0.022, 0.045], [0.012, 0.032]]) * np.array(
        [1.0, girth])
    rf = r["foot"] - 1
    seg = [4, rf - 4 - rf // 4, rf // 4]
    foot = _limb_part("lfoot", keys, rad, seg, cnt["n_foot"], (0, 1, 0), [7, 7, 10], 0.02, J,
                      cap_start=0.9, cap_end=0.9)
    parts.append(foot)
    # left hand
    hs = 1.0 + 0.06 * b[8]
    hand = _hand_parts("l", W, hs, r, cnt["n_palm"], cnt["n_finger"], 20, _SMPLX_FINGER_JOINTS,
                       J, False)
    parts += hand
    # right side by mirroring
    mirrored = [_mirror_part(p, "r" + p.name[1:], _LEFT_TO_RIGHT)
                for p in [leye, arm, leg, foot] + hand if p is not None]
    parts += mirrored
    # neck / head length and head size: move head part vertices
    shift = 0.015 * b[9]
    hsz = 1.0 + 0.05 * b[5]
    piv = np.array([0.0, _Y_NECK, 0.0])
    for p in parts:
        if p.name in ("head", "leye", "reye"):
            wgt = 1.0 if p.name != "head" else _smoothstep((p.rings[..., 1:2] - 0.12) / 0.08)
            p.rings = p.rings + wgt * ((p.rings - piv) * (hsz - 1.0) + [0, shift, 0])
            for attr in ("start_apex", "end_apex"):
                a = getattr(p, attr)
                if a is not None:
                    wa = 1.0 if p.name != "head" else _smoothstep((a[1] - 0.12) / 0.08)
                    setattr(p, attr, a + wa * ((a - piv) * (hsz - 1.0) + [0, shift, 0]))
    return parts


def _smplx_mesh(beta, plan=None):
    """Mesh for shape coefficients beta; plan (connected sums, removed faces) fixes the topology."""
    parts = _smplx_parts(beta)
    mesh = _Mesh(parts, 55)
    if plan is None:
        pairs, removed = [], []
        for s in "lr":
            arm, palm = mesh.parts[s + "arm"], mesh.parts[s + "palm"]
            pairs += _hand_plan(mesh, s, palm.extra["start_faces"][palm.n_around // 2])
            pairs.append((int(arm.extra["end_faces"][0]), int(palm.extra["start_faces"][0])))
            mesh.connect(*pairs[-1])
            leg = mesh.parts[s + "leg"]
            ankle = leg.rings[leg.extra["key_ring"][3]].mean(0)
            pairs.append((int(leg.extra["end_faces"][0]), mesh.nearest_face(s + "foot", ankle)))
            mesh.connect(*pairs[-1])
            # open the hidden proximal cap of the arm (inside the torso) to hit the face count
            removed += [int(x) for x in arm.extra["start_faces"][:5]]
        mesh.removed[removed] = True
        plan = (pairs, removed)
    else:
        _apply_plan(mesh, plan)
    mesh.plan = plan
    return _scale_height(mesh, beta)


def _scale_height(mesh, beta):
    """Shape component 0: the whole body scaled about the pelvis (height)."""
    scale = 1.0 + 0.041 * float(np.asarray(beta)[0])
    piv = np.array([0.0, _Y_PELVIS, 0.0])
    mesh.verts = piv + (mesh.verts - piv) * scale
    return mesh


def _shape_dirs(mesh_fn, base, plan, v0):
    """(V, 3, 10) shape directions of ``mesh_fn(beta, plan).verts`` at ``base`` by forward differences."""
    eps = 1e-3
    shapedirs = np.zeros((len(v0), 3, 10))
    for k in range(10):
        bk = base.copy()
        bk[k] += eps
        shapedirs[:, :, k] = (mesh_fn(bk, plan).verts - v0) / eps
    return shapedirs


def _body_joint_rows(mesh, n_joints):
    """(n_joints, V) regressor with rows 0..21 filled: the body joints SMPL-X and SMPL share (same indices)."""
    n = mesh.n_verts
    P = mesh.parts
    rows = np.zeros((n_joints, n))
    torso, head = P["torso"], P["head"]
    rows[0] = torso.row_at(_Y_PELVIS, n)
    rows[3] = torso.row_at(_TORSO_BREAKS["spine1"], n)
    rows[6] = torso.row_at(_TORSO_BREAKS["spine2"], n)
    rows[9] = torso.row_at(_TORSO_BREAKS["spine3"], n)
    rows[12] = head.row_at(_Y_NECK, n)
    rows[15] = head.row_at(_Y_HEAD_J, n)
    for side, js in (("l", dict(hip=1, knee=4, ankle=7, foot=10, collar=13, shoulder=16, elbow=18, wrist=20)),
                     ("r", dict(hip=2, knee=5, ankle=8, foot=11, collar=14, shoulder=17, elbow=19, wrist=21))):
        leg, arm, foot = P[side + "leg"], P[side + "arm"], P[side + "foot"]
        for name, k in (("hip", 1), ("knee", 2), ("ankle", 3)):
            rows[js[name]] = leg.row_at(leg.extra["key_s"][k], n)
        rows[js["foot"]] = foot.row_at(foot.extra["key_s"][2], n)
        for name, k in (("collar", 1), ("shoulder", 2), ("elbow", 3), ("wrist", 4)):
            rows[js[name]] = arm.row_at(arm.extra["key_s"][k], n)
    return rows


def _smplx_regressors(mesh):
    n = mesh.n_verts
    P = mesh.parts
    rows = _body_joint_rows(mesh, 55)
    rows[22] = P["head"].row_at(_Y_JAW, n)
    for side, eye, off in (("l", 23, 0), ("r", 24, 15)):
        rows[eye, mesh.part_vertex_ids(side + "eye")] = 1.0 / P[side + "eye"].n_verts
        for i, f in enumerate(_FINGERS):
            fp = P[side + f]
            for k in range(3):
                rows[25 + off + 3 * i + k] = fp.row_at(fp.extra["key_s"][k + 1], n)
    return rows, _h36m_rows(mesh)


def _h36m_rows(mesh):
    """(17, V) Human3.6M regressor rows on the stand-in body (SMPL-X and SMPL share the parts)."""
    n = mesh.n_verts
    P = mesh.parts
    torso, head = P["torso"], P["head"]
    h36m = np.zeros((17, n))
    for side, o in (("r", 1), ("l", 4)):
        leg = P[side + "leg"]
        for k in range(3):
            h36m[o + k] = leg.row_at(leg.extra["key_s"][k + 1], n)
    for side, o in (("l", 11), ("r", 14)):
        arm = P[side + "arm"]
        for k in range(3):
            h36m[o + k] = arm.row_at(arm.extra["key_s"][k + 2], n)
    h36m[0] = 0.5 * (h36m[1] + h36m[4])
    h36m[7] = torso.row_at(-0.12, n)
    h36m[8] = torso.row_at(0.09, n)
    h36m[9] = head.row_at(0.29, n)
    h36m[10, head.end_apex_id()] = 1.0
    return h36m


def _permutation(n, pairs):
    """order[new] = old such that order[target] = chosen for each (target, chosen)."""
    order = np.arange(n)
    pos = np.arange(n)  # pos[old] = where old currently sits
    for tgt, old in pairs:
        p = pos[old]
        other = order[tgt]
        order[tgt], order[p] = old, other
        pos[old], pos[other] = tgt, p
    return order


def _nearest(verts, ids, point):
    ids = np.asarray(ids)
    return int(ids[np.argmin(np.linalg.norm(verts[ids] - point, axis=1))])


def _base_head_verts(mesh):
    """mesh.verts with the head's rings put back at their base (untransformed) coordinates."""
    vb = mesh.verts.copy()
    head = mesh.parts["head"]
    nr = head.n_rings * head.n_around
    vb[head.offset:head.offset + nr] = head.extra["base_rings"].reshape(-1, 3)
    return vb


def _smplx_fixed_vertices(mesh):
    """Current vertex index for each name of smplx.vertex_ids['smplx'] (the same names as
    vertex_ids['smplh'], which SMPL uses); without eyeballs the eyes are the head vertices at the pupils."""
    v, P = mesh.verts, mesh.parts
    vb = _base_head_verts(mesh)
    head = P["head"]
    head_ids = head.offset + np.arange(head.n_rings * head.n_around)
    if "leye" in P:
        eyes = {"leye": P["leye"].end_apex_id(), "reye": P["reye"].end_apex_id()}
    else:
        eyes = {k: _nearest(vb, head_ids, _head_point(sign * _HEAD["phi_eye"], _HEAD["y_eye"]) + [0, 0, 0.01])
                for k, sign in (("leye", 1.0), ("reye", -1.0))}
    sel = {
        "nose": _nearest(vb, head_ids, _head_point(0.0, 0.288) + [0, 0, 0.01]),
        **eyes,
        "lear": _nearest(vb, head_ids, _head_point(np.pi / 2, 0.30) + [0.01, 0, 0]),
        "rear": _nearest(vb, head_ids, _head_point(-np.pi / 2, 0.30) - [0.01, 0, 0]),
    }
    for s, S in (("l", "L"), ("r", "R")):
        tips = _tip_targets(mesh, s)
        for f in _FINGERS:
            sel[s + f] = tips[f][0]
        fp = P[s + "foot"]
        ids = mesh.part_vertex_ids(s + "foot")
        sx = 1.0 if s == "l" else -1.0
        toe = v[fp.ring_ids(fp.n_rings - 1)].mean(0)
        sel[S + "BigToe"] = _nearest(v, ids, toe + [-sx * 0.02, 0.008, 0.0])
        sel[S + "SmallToe"] = _nearest(v, ids, toe + [sx * 0.03, 0.0, -0.03])
        sel[S + "Heel"] = _nearest(v, ids, v[fp.start_apex_id()] + [0, -0.01, 0])
    return sel


_GENDER_BETAS = {
    "neutral": np.zeros(10),
    "male": np.array([0.8, 0.1, 1.0, 0.3, 0.3, 0.2, -0.6, 0.2, 0.5, 0.2]),
    "female": np.array([-0.9, -0.2, -0.9, 0.0, -0.2, -0.2, 1.0, -0.2, -0.6, -0.1]),
}


def _smplx_layout(seed):
    """Everything shared by the three genders: topology, vertex order, regressors, landmarks."""
    mesh = _smplx_mesh(np.zeros(10))
    n = mesh.n_verts
    head = mesh.parts["head"]
    hid = mesh.part_vertex_ids("head")
    weights = mesh.weights.copy()
    weights[hid] = head.extra["vertex_weights"]
    weights /= weights.sum(1, keepdims=True)
    jreg, h36m = _smplx_regressors(mesh)
    hf = np.arange(*mesh.face_range["head"])
    hf = hf[~mesh.removed[hf]]
    vb = _base_head_verts(mesh)
    lmk_idx, lmk_bary = _embed(vb, mesh.faces, hf, _static_landmark_targets())
    dyn_idx, dyn_bary = _embed(vb, mesh.faces, hf, _dynamic_landmark_targets().reshape(-1, 3))
    sel = _smplx_fixed_vertices(mesh)
    order = _permutation(n, [(_SMPLX_VERTEX_IDS[k], sel[k]) for k in _SMPLX_VERTEX_IDS])
    inv = np.empty_like(order)
    inv[order] = np.arange(n)
    kept = np.flatnonzero(~mesh.removed)
    face_map = -np.ones(len(mesh.faces), dtype=np.int64)
    face_map[kept] = np.arange(len(kept))
    if (face_map[lmk_idx] < 0).any() or (face_map[dyn_idx] < 0).any():
        raise RuntimeError("stand-in landmark on a removed face")
    comps_r, mean_r, coeffs = _hand_pca(seed)
    expr = _expression_dirs(head.extra["phi_v"], head.extra["y_v"])
    part_of = np.empty(n, dtype=object)
    for name in mesh.parts:
        part_of[mesh.part_vertex_ids(name)] = name
    return dict(
        plan=mesh.plan, order=order, hid=hid, expr=expr, part_of=part_of[order],
        shared={
            "f": inv[mesh.final_faces()].astype(np.uint32),
            "posedirs": np.zeros((n, 3, 486), dtype=np.float32),
            "J_regressor": jreg[:, order].astype(np.float32),
            "weights": weights[order].astype(np.float32),
            "kintree_table": np.stack([np.array(SMPLX_PARENTS), np.arange(55)]).astype(np.int64),
            "hands_componentsl": _mirror_pose(comps_r).astype(np.float32),
            "hands_componentsr": comps_r.astype(np.float32),
            "hands_meanl": _mirror_pose(mean_r).astype(np.float32),
            "hands_meanr": mean_r.astype(np.float32),
            "hands_coeffsl": coeffs.astype(np.float32),
            "hands_coeffsr": coeffs.astype(np.float32),
            "lmk_faces_idx": face_map[lmk_idx].astype(np.int64),
            "lmk_bary_coords": lmk_bary.astype(np.float32),
            "dynamic_lmk_faces_idx": face_map[dyn_idx].reshape(79, 17).astype(np.int64),
            "dynamic_lmk_bary_coords": dyn_bary.reshape(79, 17, 3).astype(np.float32),
            STANDIN_MARKER_KEY: np.array(_MARKER_VALUE),
        },
        h36m=h36m[:, order].astype(np.float32),
    )


def _build_smplx(gender, layout):
    base = _GENDER_BETAS[gender]
    plan, order = layout["plan"], layout["order"]
    v0 = _smplx_mesh(base, plan).verts
    shapedirs = np.zeros((len(v0), 3, 20))
    shapedirs[:, :, :10] = _shape_dirs(_smplx_mesh, base, plan, v0)
    shapedirs[layout["hid"], :, 10:] = layout["expr"]
    data = {"v_template": v0[order].astype(np.float32),
            "shapedirs": shapedirs[order].astype(np.float32)}
    data.update(layout["shared"])
    _check_counts("SMPL-X", data, _N_SMPLX_V, _N_SMPLX_F)
    return data


def _check_counts(what, data, nv, nf):
    if data["v_template"].shape != (nv, 3) or data["f"].shape != (nf, 3):
        raise RuntimeError(f"{what} stand-in counts wrong: {data['v_template'].shape} "
                           f"{data['f'].shape}")


# ----------------------------------------------------------------------------------------------
# SMPL: the SMPL-X stand-in's body without eyeballs, at SMPL's resolution, joined into one closed surface


_SMPL_OFFSET = np.array([0.0, 0.11, 0.0])  # SMPL's template sits higher than SMPL-X's: pelvis joint y ~ -0.24


def _smpl_joint_map():
    """(55, 24) 0/1 matrix taking SMPL-X skinning weights to SMPL's joints: the 22 body joints stay, jaw and eyes go
    to the head, each hand's 15 finger joints to SMPL's hand joint (22 left, 23 right)."""
    m = np.zeros((55, 24))
    m[np.arange(22), np.arange(22)] = 1.0
    m[22:25, 15] = 1.0
    m[25:40, 22] = 1.0
    m[40:55, 23] = 1.0
    return m


def _smpl_mesh(beta, plan=None):
    """SMPL stand-in mesh for shape coefficients beta; plan (connected sums) fixes the topology.

    Beyond the SMPL-X plan (hands, arm-palm, leg-foot) the hidden proximal caps of the arms and legs join
    torso faces inside the shoulders and hips and the head's hidden bottom cap joins the torso's top cap:
    20 closed parts, 19 connected sums, one closed genus-0 surface."""
    mesh = _Mesh(_smplx_parts(beta, counts=_smpl_counts(), eyes=False), 55)
    if plan is None:
        pairs = []
        for s, sx in (("l", 1.0), ("r", -1.0)):
            arm, palm, leg = mesh.parts[s + "arm"], mesh.parts[s + "palm"], mesh.parts[s + "leg"]
            pairs += _hand_plan(mesh, s, palm.extra["start_faces"][palm.n_around // 2])
            pairs.append((int(arm.extra["end_faces"][0]), int(palm.extra["start_faces"][0])))
            mesh.connect(*pairs[-1])
            ankle = leg.rings[leg.extra["key_ring"][3]].mean(0)
            pairs.append((int(leg.extra["end_faces"][0]), mesh.nearest_face(s + "foot", ankle)))
            mesh.connect(*pairs[-1])
            pairs.append((int(arm.extra["start_faces"][0]), mesh.nearest_face("torso", [sx * 0.15, 0.08, 0.0])))
            mesh.connect(*pairs[-1])
            pairs.append((int(leg.extra["start_faces"][0]), mesh.nearest_face("torso", [sx * 0.08, -0.46, 0.0])))
            mesh.connect(*pairs[-1])
        head, torso = mesh.parts["head"], mesh.parts["torso"]
        pairs.append((int(head.extra["start_faces"][0]), int(torso.extra["end_faces"][0])))
        mesh.connect(*pairs[-1])
        plan = (pairs, [])
    else:
        _apply_plan(mesh, plan)
    mesh.plan = plan
    return _scale_height(mesh, beta)


def _smpl_layout():
    """Everything shared by the three SMPL genders: topology, vertex order, skinning, regressors."""
    mesh = _smpl_mesh(np.zeros(10))
    n = mesh.n_verts
    head = mesh.parts["head"]
    weights = mesh.weights.copy()
    weights[mesh.part_vertex_ids("head")] = head.extra["vertex_weights"]
    weights = weights @ _smpl_joint_map()
    weights /= weights.sum(1, keepdims=True)
    rows = _body_joint_rows(mesh, 24)
    for side, hand in (("l", 22), ("r", 23)):
        palm = mesh.parts[side + "palm"]
        rows[hand] = palm.row_at(palm.extra["key_s"][3], n)  # SMPL's hand joint: at the knuckles
    sel = _smplx_fixed_vertices(mesh)
    order = _permutation(n, [(_SMPLH_VERTEX_IDS[k], sel[k]) for k in _SMPLH_VERTEX_IDS])
    inv = np.empty_like(order)
    inv[order] = np.arange(n)
    return dict(
        plan=mesh.plan, order=order,
        shared={
            "f": inv[mesh.final_faces()].astype(np.uint32),
            "posedirs": np.zeros((n, 3, 207), dtype=np.float32),
            "J_regressor": rows[:, order].astype(np.float32),
            "weights": weights[order].astype(np.float32),
            "kintree_table": np.stack([np.array((_SMPL_ROOT_PARENT,) + SMPL_PARENTS[1:]), np.arange(24)]).astype(
                np.int64),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
            STANDIN_MARKER_KEY: np.array(_MARKER_VALUE),
        },
        h36m=_h36m_rows(mesh)[:, order].astype(np.float32),
    )


def _build_smpl(gender, layout):
    base = _GENDER_BETAS[gender]
    plan, order = layout["plan"], layout["order"]
    v0 = _smpl_mesh(base, plan).verts
    shapedirs = _shape_dirs(_smpl_mesh, base, plan, v0)
    v = (v0 + _SMPL_OFFSET)[order]
    data = {"v_template": v.astype(np.float32), "shapedirs": shapedirs[order].astype(np.float32)}
    data.update(layout["shared"])
    data["J"] = (data["J_regressor"].astype(np.float64) @ v).astype(np.float32)
    _check_counts("SMPL", data, _N_SMPL_V, _N_SMPL_F)
    return data


# ----------------------------------------------------------------------------------------------
# MANO


_MANO_WRIST_LEFT = np.array([-0.095, 0.006, 0.006])


def _build_mano_left(seed):
    rr = _mano_counts()

    def parts_for(beta, plan=None):
        # shape space: 0 hand size, 1 finger length, 2 finger thickness, 3 palm thickness/width,
        # 4..8 index/middle/pinky/ring/thumb length, 9 palm length
        b = np.asarray(beta, np.float64)
        scale = 1.0 + 0.05 * b[0]
        wrist = _MANO_WRIST_LEFT
        ps = _hand_parts("", wrist, scale, rr, 16, 8, 0, _MANO_FINGER_JOINTS, 16, True, n_thumb=9)
        palm, fingers = ps[0], ps[1:]
        palm_len = 0.06 * b[9]
        palm.rings = palm.rings + (palm.rings - wrist) * np.array([palm_len, 0.0, 0.0])
        palm.end_apex = palm.end_apex + (palm.end_apex - wrist) * np.array([palm_len, 0.0, 0.0])
        palm.rings = palm.rings + (palm.rings - palm.rings.mean(1, keepdims=True)) * (
            0.06 * b[3])
        for k, p in enumerate(fingers):
            piv = p.rings[0].mean(0)
            shift = (piv - wrist) * np.array([palm_len, 0.0, 0.0])
            ln = 0.05 * b[1] + 0.05 * b[4 + k]
            thick = 0.08 * b[2]
            p.rings = (p.rings + shift + (p.rings.mean(1, keepdims=True) - piv) * ln
                       + (p.rings - p.rings.mean(1, keepdims=True)) * thick)
            p.start_apex = p.start_apex + shift
            p.end_apex = p.end_apex + shift + (p.end_apex - piv) * ln
        mesh = _Mesh(ps, 16)
        if plan is None:
            palm = mesh.parts["palm"]
            # a palm face on the open wrist ring, on the palmar side (hidden in the wrist hole)
            k = int(np.argmin(palm.rings[0, :, 1]))
            lo = mesh.face_range["palm"][0]
            plan = (_hand_plan(mesh, "", lo + k), [])
        else:
            _apply_plan(mesh, plan)
        mesh.plan = plan
        return mesh

    mesh = parts_for(np.zeros(10))
    v0 = mesh.verts
    eps = 1e-3
    shapedirs = np.zeros((mesh.n_verts, 3, 10))
    for k in range(10):
        bk = np.zeros(10)
        bk[k] = eps
        shapedirs[:, :, k] = (parts_for(bk, mesh.plan).verts - v0) / eps
    faces = mesh.final_faces()
    n = mesh.n_verts
    jreg = np.zeros((16, n))
    palm = mesh.parts["palm"]
    jreg[0] = palm.row_at(palm.extra["key_s"][1], n)
    for i, f in enumerate(_FINGERS):
        fp = mesh.parts[f]
        for k in range(3):
            jreg[1 + 3 * i + k] = fp.row_at(fp.extra["key_s"][k + 1], n)
    tips = _tip_targets(mesh, "")
    pairs = []
    for k, f in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        apex, extra = tips[f]
        pairs.append((_SMPLX_MANO_TIP_IDS[k], apex))
        pairs.append((FREIHAND_FINGERTIP_VERTEX_IDS[k], extra[0]))
        pairs.append((_ALT_FINGERTIP_VERTEX_IDS[k], extra[1]))
    order = _permutation(n, pairs)
    inv = np.empty_like(order)
    inv[order] = np.arange(n)
    comps, mean, coeffs = _hand_pca(seed)
    data = {
        "v_template": v0[order].astype(np.float32),
        "f": inv[faces].astype(np.uint32),
        "shapedirs": shapedirs[order].astype(np.float32),
        "posedirs": np.zeros((n, 3, 135), dtype=np.float32),
        "J_regressor": jreg[:, order].astype(np.float32),
        "weights": (mesh.weights / mesh.weights.sum(1, keepdims=True))[order].astype(np.float32),
        "kintree_table": np.stack([np.array(MANO_PARENTS), np.arange(16)]).astype(np.int64),
        "hands_components": _mirror_pose(comps),
        "hands_mean": _mirror_pose(mean),
        "hands_coeffs": coeffs.astype(np.float32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        STANDIN_MARKER_KEY: np.array(_MARKER_VALUE),
    }
    data["J"] = (jreg[:, order] @ v0[order]).astype(np.float32)
    _check_counts("MANO", data, _N_MANO_V, _N_MANO_F)
    return data, (comps, mean, coeffs)


def _mirror_mano(data):
    """Left MANO data -> right MANO data (x flipped, faces flipped, poses mirrored)."""
    out = dict(data)
    m = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    out["v_template"] = data["v_template"] * m
    out["shapedirs"] = data["shapedirs"] * m[None, :, None]
    out["f"] = data["f"][:, [0, 2, 1]]
    out["hands_components"] = _mirror_pose(data["hands_components"])
    out["hands_mean"] = _mirror_pose(data["hands_mean"])
    out["J"] = data["J"] * m
    return out


# ----------------------------------------------------------------------------------------------
# FLAME


_FLAME_OFFSET = np.array([0.0, -0.26, -0.01])  # SMPL-X head coordinates -> FLAME template
_FLAME_Y_BOT, _FLAME_Y_ROOT, _FLAME_Y_NECK = 0.10, 0.13, 0.20


def _flame_shape_dirs(p):
    """(V, 3, 10) identity displacement fields evaluated at SMPL-X-head coordinates p (V, 3)."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    c = np.array([0.0, _HEAD["yc"], _HEAD["zc"]])
    upper = _smoothstep((y - 0.17) / 0.06)
    d = np.zeros((len(p), 3, 10))
    d[:, :, 0] = 0.05 * (p - c) * upper[:, None]  # head size
    d[:, 0, 1] = 0.06 * x * upper  # width
    d[:, 2, 2] = 0.06 * (z - c[2]) * upper  # depth
    low = _smoothstep((0.28 - y) / 0.05) * upper
    d[:, 1, 3] = 0.08 * (y - 0.28) * low  # face length
    phi = np.arctan2(x, z - c[2])
    nose = _gauss(y, 0.295, 0.02) * _gauss(phi, 0.0, 0.12)
    d[:, 2, 4] = 0.008 * nose  # nose
    d[:, 0, 5] = 0.08 * x * low  # jaw width
    d[:, 1, 6] = 0.01 * _smoothstep((y - 0.33) / 0.06)  # forehead
    ch = (_gauss(phi, 0.6, 0.25) + _gauss(phi, -0.6, 0.25)) * _gauss(y, 0.27, 0.025)
    d[:, 0, 7], d[:, 2, 7] = 0.005 * np.sin(phi) * ch, 0.005 * np.cos(phi) * ch  # cheeks
    d[:, 2, 8] = 0.008 * _gauss(y, 0.215, 0.02) * _gauss(phi, 0.0, 0.35)  # chin
    neck = 1.0 - upper
    d[:, 0, 9], d[:, 2, 9] = 0.1 * x * neck, 0.1 * (z + 0.008) * neck  # neck thickness
    return d


def _build_flame(seed):
    ne, re_, rh = _flame_counts()

    def head_w(phi, y):
        w = _chain_weights(y, [_FLAME_Y_NECK], [0, 1], 0.02, 5)
        m = _jaw_mask(phi, y)
        w *= (1.0 - m)[:, None]
        w[:, 2] += m
        return w

    head = _head_part("head", rh, 60, _FLAME_Y_BOT, True, head_w, 5)
    eye_c = _head_point(_HEAD["phi_eye"], _HEAD["y_eye"]) - np.array([0.0, 0.0, 0.0105])
    leye = _sphere_part("leye", eye_c, 0.0125, re_, ne, 3, 5)
    reye = _mirror_part(leye, "reye", {3: 4})
    mesh = _Mesh([head, leye, reye], 5)
    v_head = mesh.verts  # SMPL-X head coordinates
    n = mesh.n_verts
    weights = mesh.weights.copy()
    hid = mesh.part_vertex_ids("head")
    weights[hid] = head.extra["vertex_weights"]
    shapedirs = np.zeros((n, 3, 20))
    sd = _flame_shape_dirs(v_head)
    for e in ("leye", "reye"):  # eyeballs move rigidly with the field at their centre
        ids = mesh.part_vertex_ids(e)
        sd[ids] = _flame_shape_dirs(v_head[ids].mean(0, keepdims=True))
    shapedirs[:, :, :10] = sd
    shapedirs[hid, :, 10:] = _expression_dirs(head.extra["phi_v"], head.extra["y_v"])
    jreg = np.zeros((5, n))
    jreg[0] = head.row_at(_FLAME_Y_ROOT, n)
    jreg[1] = head.row_at(_FLAME_Y_NECK, n)
    jreg[2] = head.row_at(_Y_JAW, n)
    jreg[3, mesh.part_vertex_ids("leye")] = 1.0 / leye.n_verts
    jreg[4, mesh.part_vertex_ids("reye")] = 1.0 / reye.n_verts
    faces = mesh.final_faces()
    hf = np.arange(*mesh.face_range["head"])
    lmk_idx, lmk_bary = _embed(v_head, faces, hf, _static_landmark_targets())
    dyn_idx, dyn_bary = _embed(v_head, faces, hf, _dynamic_landmark_targets().reshape(-1, 3))
    v = v_head + _FLAME_OFFSET
    data = {
        "v_template": v.astype(np.float32),
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((n, 3, 36), dtype=np.float32),
        "J_regressor": jreg.astype(np.float32),
        "weights": (weights / weights.sum(1, keepdims=True)).astype(np.float32),
        "kintree_table": np.stack([np.array(FLAME_PARENTS), np.arange(5)]).astype(np.int64),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        STANDIN_MARKER_KEY: np.array(_MARKER_VALUE),
    }
    data["J"] = (jreg @ v).astype(np.float32)
    _check_counts("FLAME", data, _N_FLAME_V, _N_FLAME_F)
    static = {"lmk_face_idx": lmk_idx.astype(np.uint32), "lmk_b_coords": lmk_bary,
              STANDIN_MARKER_KEY: _MARKER_VALUE}
    dynamic = {"lmk_face_idx": dyn_idx.reshape(79, 17).astype(np.uint32),
               "lmk_b_coords": dyn_bary.reshape(79, 17, 3),
               STANDIN_MARKER_KEY: _MARKER_VALUE}
    return data, static, dynamic


# ----------------------------------------------------------------------------------------------
# SMPL-X <-> MANO / FLAME vertex correspondences (Hand4Whole's MANO_SMPLX_vertex_ids.pkl and
# SMPL-X__FLAME_vertex_ids.npy). The stand-in SMPL-X hand and head have their own resolution, so
# each MANO / FLAME vertex maps to the *nearest* stand-in SMPL-X vertex of the same part (the map is
# many-to-one, unlike the real files, but every index lies on the right body part).


def _nearest_ids(src_pts, dst_pts, dst_ids):
    return dst_ids[_sq_dists(src_pts, dst_pts).argmin(axis=1)]


def _correspondences(layout, smplx_neutral, mano_left, flame):
    v = smplx_neutral["v_template"].astype(np.float64)
    jreg = smplx_neutral["J_regressor"].astype(np.float64)
    part_of = layout["part_of"]
    hand_parts = ("palm",) + _FINGERS
    mano_v = mano_left["v_template"].astype(np.float64)
    mano_wrist = mano_left["J_regressor"][0].astype(np.float64) @ mano_v
    hands = {}
    for s, name, wrist_joint, m in (("l", "left_hand", 20, 1.0), ("r", "right_hand", 21, -1.0)):
        ids = np.flatnonzero(np.isin(part_of, [s + p for p in hand_parts]))
        src = (mano_v - mano_wrist) * [m, 1.0, 1.0] + jreg[wrist_joint] @ v
        hands[name] = _nearest_ids(src, v[ids], ids).astype(np.int64)
    fv = flame["v_template"].astype(np.float64) - _FLAME_OFFSET
    n_head = _N_FLAME_V - 2 * _flame_counts()[0] * _flame_counts()[1] - 4  # head part first
    face = np.empty(_N_FLAME_V, dtype=np.int64)
    head_ids = np.flatnonzero(part_of == "head")
    face[:n_head] = _nearest_ids(fv[:n_head], v[head_ids], head_ids)
    eye_ids = np.flatnonzero(np.isin(part_of, ["leye", "reye"]))
    face[n_head:] = _nearest_ids(fv[n_head:], v[eye_ids], eye_ids)
    hands[STANDIN_MARKER_KEY] = _MARKER_VALUE
    return hands, face


# ----------------------------------------------------------------------------------------------
# writing


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npz_bytes(arrays: dict) -> bytes:
    # np.savez_compressed stamps zip entries with a fixed date, so the bytes are reproducible
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _pkl_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def make_standin(out_dir: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Write all stand-in model files under ``out_dir`` and return ``{logical name: path}``.

    Files are written atomically (temporary file, then ``os.replace``) and are byte-identical for
    the same ``seed`` on the same platform. ``seed`` drives the sampled hand poses behind the hand
    PCA. Logical names: ``smplx_neutral``, ``smplx_male``, ``smplx_female``, ``smplx_h36m_regressor``,
    ``smpl_neutral``, ``smpl_male``, ``smpl_female``, ``smpl_h36m_regressor``,
    ``mano_right``, ``mano_left``, ``flame_neutral``, ``flame_male``, ``flame_female``,
    ``flame_static_embedding``, ``flame_dynamic_embedding``, ``smplx_mano_vertex_ids``
    (``smplx/MANO_SMPLX_vertex_ids.pkl``: ``{"left_hand", "right_hand"}`` -> (778,) SMPL-X vertex ids)
    and ``smplx_flame_vertex_ids`` (``smplx/SMPL-X__FLAME_vertex_ids.npy``: (5023,) SMPL-X vertex ids).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"make_standin: seed must be a non-negative int, got {seed!r}")
    root = Path(out_dir)
    out: dict[str, Path] = {}
    layout = _smplx_layout(seed)
    h36m = layout["h36m"]
    smplx_neutral = None
    for gender in ("neutral", "male", "female"):
        data = _build_smplx(gender, layout)
        smplx_neutral = data if smplx_neutral is None else smplx_neutral
        p = root / "smplx" / f"SMPLX_{gender.upper()}.npz"
        _atomic_write(p, _npz_bytes(data))
        out[f"smplx_{gender}"] = p
    p = root / "smplx" / "J_regressor_h36m_smplx.npy"
    _atomic_write(p, _npy_bytes(h36m))
    out["smplx_h36m_regressor"] = p

    smpl_layout = _smpl_layout()
    for gender in ("neutral", "male", "female"):
        p = root / "smpl" / f"SMPL_{gender.upper()}.pkl"
        _atomic_write(p, _pkl_bytes(_build_smpl(gender, smpl_layout)))
        out[f"smpl_{gender}"] = p
    p = root / "smpl" / "J_regressor_h36m_correct.npy"
    _atomic_write(p, _npy_bytes(smpl_layout["h36m"]))
    out["smpl_h36m_regressor"] = p

    left, _ = _build_mano_left(seed)
    right = _mirror_mano(left)
    for name, d in (("right", right), ("left", left)):
        p = root / "mano" / f"MANO_{name.upper()}.pkl"
        _atomic_write(p, _pkl_bytes(d))
        out[f"mano_{name}"] = p

    flame, static, dynamic = _build_flame(seed)
    blob = _pkl_bytes(flame)
    for gender in ("neutral", "male", "female"):
        p = root / "flame" / f"FLAME_{gender.upper()}.pkl"
        _atomic_write(p, blob)
        out[f"flame_{gender}"] = p
    p = root / "flame" / "flame_static_embedding.pkl"
    _atomic_write(p, _pkl_bytes(static))
    out["flame_static_embedding"] = p
    dyn = np.empty((), dtype=object)
    dyn[()] = dynamic
    p = root / "flame" / "flame_dynamic_embedding.npy"
    _atomic_write(p, _npy_bytes(dyn))
    out["flame_dynamic_embedding"] = p

    hands, face = _correspondences(layout, smplx_neutral, left, flame)
    p = root / "smplx" / "MANO_SMPLX_vertex_ids.pkl"
    _atomic_write(p, _pkl_bytes(hands))
    out["smplx_mano_vertex_ids"] = p
    p = root / "smplx" / "SMPL-X__FLAME_vertex_ids.npy"
    _atomic_write(p, _npy_bytes(face))
    out["smplx_flame_vertex_ids"] = p
    return out
