"""Stand-in SMPL-X / MANO / FLAME files: loaded and run by the real `smplx` package."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

smplx = pytest.importorskip("smplx")
from smplx.joint_names import JOINT_NAMES  # noqa: E402
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS  # noqa: E402

from neuralannot_cli.body.standin import (  # noqa: E402
    FREIHAND_FINGERTIP_VERTEX_IDS,
    STANDIN_MARKER_KEY,
    make_standin,
)

# The real SMPL-X kinematic tree, written out independently of the module under test.
REAL_SMPLX_PARENTS = [
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,  # body
    15, 15, 15,  # jaw, left eye, right eye
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,  # left hand
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,  # right hand
]
REAL_MANO_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
REAL_FLAME_PARENTS = [-1, 0, 1, 1, 1]
J = {name: i for i, name in enumerate(JOINT_NAMES)}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    root = tmp_path_factory.mktemp("standin")
    return root, make_standin(root, seed=0)


def _smplx(root, gender="neutral", **kw):
    kw.setdefault("use_pca", False)
    return smplx.create(str(root), model_type="smplx", gender=gender, use_face_contour=True,
                        ext="npz", **kw)


@pytest.fixture(scope="module")
def smplx_neutral(standin):
    return _smplx(standin[0])


@pytest.fixture(scope="module")
def smplx_flat(standin):
    return _smplx(standin[0], flat_hand_mean=True)


def _run(model, **kw):
    with torch.no_grad():
        out = model(**kw)
    return out.vertices[0].numpy().astype(np.float64), out.joints[0].numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------
# files


def test_layout_and_markers(standin):
    root, paths = standin
    expected = {
        "smplx_neutral": "smplx/SMPLX_NEUTRAL.npz", "smplx_male": "smplx/SMPLX_MALE.npz",
        "smplx_female": "smplx/SMPLX_FEMALE.npz",
        "smplx_h36m_regressor": "smplx/J_regressor_h36m_smplx.npy",
        "smpl_neutral": "smpl/SMPL_NEUTRAL.pkl", "smpl_male": "smpl/SMPL_MALE.pkl",
        "smpl_female": "smpl/SMPL_FEMALE.pkl", "smpl_h36m_regressor": "smpl/J_regressor_h36m_correct.npy",
        "mano_right": "mano/MANO_RIGHT.pkl", "mano_left": "mano/MANO_LEFT.pkl",
        "flame_neutral": "flame/FLAME_NEUTRAL.pkl", "flame_male": "flame/FLAME_MALE.pkl",
        "flame_female": "flame/FLAME_FEMALE.pkl",
        "flame_static_embedding": "flame/flame_static_embedding.pkl",
        "flame_dynamic_embedding": "flame/flame_dynamic_embedding.npy",
        "smplx_mano_vertex_ids": "smplx/MANO_SMPLX_vertex_ids.pkl",
        "smplx_flame_vertex_ids": "smplx/SMPL-X__FLAME_vertex_ids.npy",
    }
    assert {k: p.relative_to(root).as_posix() for k, p in paths.items()} == expected
    assert not list(root.rglob("*.tmp"))
    for g in ("NEUTRAL", "MALE", "FEMALE"):
        with np.load(root / "smplx" / f"SMPLX_{g}.npz", allow_pickle=True) as z:
            assert str(z[STANDIN_MARKER_KEY]) == "neuralannot stand-in v1"
    for p in (paths["mano_right"], paths["mano_left"], paths["flame_neutral"], paths["smpl_neutral"]):
        with open(p, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        assert str(d[STANDIN_MARKER_KEY]) == "neuralannot stand-in v1"
        assert all(not type(v).__module__.startswith("chumpy") for v in d.values())


def test_deterministic_bytes(standin, tmp_path):
    root, paths = standin
    again = make_standin(tmp_path / "again", seed=0)
    for name, p in paths.items():
        assert p.read_bytes() == again[name].read_bytes(), name
    other = make_standin(tmp_path / "other", seed=1)
    assert other["mano_right"].read_bytes() != paths["mano_right"].read_bytes()


def test_bad_seed_rejected(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        make_standin(tmp_path, seed=-1)


# ---------------------------------------------------------------------------------------------
# SMPL-X


@pytest.mark.parametrize("gender", ["neutral", "male", "female"])
def test_smplx_counts_and_tree(standin, gender):
    model = _smplx(standin[0], gender)
    v, j = _run(model)
    assert v.shape == (10475, 3)
    assert model.faces.shape == (20908, 3)
    # 55 kinematic joints + 21 vertex keypoints + 51 static + 17 contour landmarks
    assert j.shape == (55 + 21 + 51 + 17, 3)
    assert model.parents.tolist() == REAL_SMPLX_PARENTS
    assert model.J_regressor.shape == (55, 10475)
    np.testing.assert_allclose(model.J_regressor.sum(1).numpy(), 1.0, atol=1e-5)
    assert (model.J_regressor >= 0).all()
    w = model.lbs_weights.numpy()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    assert (w >= 0).all()
    assert model.shapedirs.shape == (10475, 3, 10) and model.expr_dirs.shape == (10475, 3, 10)


def test_genders_differ_but_share_topology(standin):
    vs = {}
    for g in ("neutral", "male", "female"):
        with np.load(standin[0] / "smplx" / f"SMPLX_{g.upper()}.npz") as z:
            vs[g] = (z["v_template"], z["f"])
    assert (vs["male"][1] == vs["neutral"][1]).all() and (vs["female"][1] == vs["neutral"][1]).all()
    height = {g: np.ptp(v[:, 1]) for g, (v, _) in vs.items()}
    assert height["male"] > height["neutral"] > height["female"]


def test_mesh_is_oriented_and_closed_except_hidden_holes(smplx_neutral):
    v, j = _run(smplx_neutral)
    f = smplx_neutral.faces.astype(np.int64)
    he = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = he[:, 0] * 20000 + he[:, 1]
    assert len(np.unique(key)) == len(key), "a directed edge is used twice (bad orientation)"
    rev = he[:, 1] * 20000 + he[:, 0]
    boundary = he[~np.isin(key, rev)]
    assert len(boundary) == 14  # the hidden proximal caps of the arms
    # the holes are inside the torso, between the collar joints
    bv = v[np.unique(boundary)]
    assert np.abs(bv[:, 0]).max() < 0.1 and (np.abs(bv[:, 1] - j[J["left_collar"], 1]) < 0.06).all()
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    assert 0.045 < volume < 0.09  # m^3, outward-facing, human-sized


def test_tpose_proportions(smplx_flat):
    v, j = _run(smplx_flat)
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.5 < height < 1.9
    span = v[:, 0].max() - v[:, 0].min()
    assert abs(span / height - 1.0) < 0.05
    np.testing.assert_allclose(j[J["pelvis"]], [0.0, -0.35, 0.0], atol=0.02)
    assert abs(v[:, 1].min() - (-1.28)) < 0.03 and abs(v[:, 1].max() - 0.42) < 0.03
    # left side at +x, arms horizontal
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        sh, el, wr = (j[J[f"{side}_{n}"]] for n in ("shoulder", "elbow", "wrist"))
        assert sgn * sh[0] < sgn * el[0] < sgn * wr[0]
        assert abs(wr[1] - sh[1]) < 0.03
        hip, knee, ankle = (j[J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        assert hip[1] > knee[1] > ankle[1] and sgn * hip[0] > 0
        assert 0.3 < hip[1] - knee[1] < 0.5 and 0.3 < knee[1] - ankle[1] < 0.5
    # mirror symmetric about x = 0
    sym = np.sort(v[:, 0])
    np.testing.assert_allclose(sym, -sym[::-1], atol=1e-5)


def _winding_numbers(v, f, points):
    """Generalised winding number of a triangle mesh at each point (float64 solid angles)."""
    out = []
    for p in points:
        a, b, c = (v[f[:, k]] - p for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        num = np.einsum("ij,ij->i", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la
               + np.einsum("ij,ij->i", c, a) * lb)
        out.append(2.0 * np.arctan2(num, den).sum() / (4.0 * np.pi))
    return np.asarray(out)


def test_every_joint_is_inside_the_body(smplx_flat):
    v, j = _run(smplx_flat)
    f = smplx_flat.faces.astype(np.int64)
    w = _winding_numbers(v, f, j[:55])
    assert (w > 0.5).all(), [JOINT_NAMES[i] for i in np.flatnonzero(w <= 0.5)]
    # and points well outside are outside
    assert (np.abs(_winding_numbers(v, f, j[:55] + [0.0, 0.0, 0.4])) < 0.1).all()


def test_fingers_have_three_segments_and_an_opposed_thumb(smplx_flat):
    v, j = _run(smplx_flat)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        wrist = j[J[f"{side}_wrist"]]
        for f in ("index", "middle", "ring", "pinky"):
            xs = [sgn * (j[J[f"{side}_{f}{k}"]][0] - wrist[0]) for k in (1, 2, 3)]
            tip = sgn * (j[J[f"{side}_{f}"]][0] - wrist[0])  # fingertip vertex keypoint
            assert 0.05 < xs[0] < xs[1] < xs[2] < tip < 0.22, (side, f)
        # the thumb sits in front (+z) of the index finger, below the palm plane
        assert j[J[f"{side}_thumb3"]][2] > j[J[f"{side}_index1"]][2] + 0.02
        assert j[J[f"{side}_thumb3"]][1] < wrist[1]
        assert j[J[f"{side}_thumb"]][2] > j[J[f"{side}_thumb1"]][2]


def test_fixed_vertex_ids_are_at_landmarks(smplx_flat):
    v, j = _run(smplx_flat)
    ids = SMPLX_VERTEX_IDS["smplx"]
    head = j[J["head"]]
    nose = v[ids["nose"]]
    assert nose[2] > head[2] + 0.08 and np.linalg.norm(nose - head) < 0.15
    assert abs(nose[0]) < 1e-3 and nose[2] == v[np.abs(v[:, 1] - head[1]) < 0.12, 2].max()
    assert v[ids["leye"], 0] > 0.015 and v[ids["reye"], 0] < -0.015
    assert v[ids["leye"], 1] > nose[1] and v[ids["leye"], 2] > head[2] + 0.05
    assert v[ids["lear"], 0] > 0.07 and v[ids["rear"], 0] < -0.07
    assert abs(v[ids["lear"], 1] - nose[1]) < 0.04
    for s, side, sgn in (("l", "left", 1.0), ("r", "right", -1.0)):
        wrist = j[J[f"{side}_wrist"]]
        for f in ("thumb", "index", "middle", "ring", "pinky"):
            tip = v[ids[s + f]]
            assert sgn * (tip[0] - wrist[0]) > 0.06, (s, f)
            # closest to its own finger's distal joint
            dists = {g: np.linalg.norm(tip - j[J[f"{side}_{g}3"]])
                     for g in ("thumb", "index", "middle", "ring", "pinky")}
            assert min(dists, key=dists.get) == f and dists[f] < 0.035
        S = s.upper()
        heel, big, small = v[ids[S + "Heel"]], v[ids[S + "BigToe"]], v[ids[S + "SmallToe"]]
        ankle = j[J[f"{side}_ankle"]]
        assert big[2] > heel[2] + 0.2 and small[2] > heel[2] + 0.15
        assert max(big[1], small[1], heel[1]) < ankle[1] - 0.02
        assert sgn * big[0] < sgn * small[0]  # big toe is medial
        assert heel[2] < ankle[2] - 0.03


def test_beta0_changes_height(smplx_neutral):
    heights = []
    for b0 in (-1.0, 0.0, 1.0):
        betas = torch.zeros(1, 10)
        betas[0, 0] = b0
        v, _ = _run(smplx_neutral, betas=betas)
        heights.append(v[:, 1].max() - v[:, 1].min())
    assert 0.05 < heights[2] - heights[1] < 0.09 and 0.05 < heights[1] - heights[0] < 0.09


def test_every_shape_component_changes_the_body(smplx_neutral):
    sd = smplx_neutral.shapedirs.numpy()
    assert (np.abs(sd).max(axis=(0, 1)) > 0.005).all()
    # girth (beta 1) widens the waist without changing height
    v0, _ = _run(smplx_neutral)
    betas = torch.zeros(1, 10)
    betas[0, 1] = 1.0
    v1, _ = _run(smplx_neutral, betas=betas)
    waist = np.abs(v0[:, 1] + 0.2) < 0.01
    assert np.abs(v1[waist, 0]).max() > np.abs(v0[waist, 0]).max() + 0.01
    assert abs(np.ptp(v1[:, 1]) - np.ptp(v0[:, 1])) < 0.01


def test_joints_follow_shape(smplx_neutral):
    betas = torch.zeros(1, 10)
    betas[0, 3] = 2.0  # longer legs
    _, j0 = _run(smplx_neutral)
    _, j1 = _run(smplx_neutral, betas=betas)
    assert j1[J["left_ankle"], 1] < j0[J["left_ankle"], 1] - 0.05
    np.testing.assert_allclose(j1[J["pelvis"]], j0[J["pelvis"]], atol=1e-5)


def test_expression_moves_only_the_face(smplx_neutral):
    v0, j0 = _run(smplx_neutral)
    head = j0[J["head"]]
    for k in range(10):
        expr = torch.zeros(1, 10)
        expr[0, k] = 2.0
        v1, _ = _run(smplx_neutral, expression=expr)
        moved = np.linalg.norm(v1 - v0, axis=1) > 1e-6
        assert np.linalg.norm(v1 - v0, axis=1).max() > 0.002, k
        mv = v0[moved]
        # face only: near the head joint, its front half, above the neck; never the eyeballs
        assert (np.linalg.norm(mv - head, axis=1) < 0.17).all(), k
        assert (mv[:, 2] > head[2] - 0.02).all() and (mv[:, 1] > head[1] - 0.06).all(), k
        assert not moved[[SMPLX_VERTEX_IDS["smplx"]["leye"], SMPLX_VERTEX_IDS["smplx"]["reye"]]].any()


def test_jaw_opens_mouth(smplx_neutral):
    _, j0 = _run(smplx_neutral)
    _, j1 = _run(smplx_neutral, jaw_pose=torch.tensor([[0.3, 0.0, 0.0]]))
    low, up = J["mouth_bottom"], J["mouth_top"]
    assert j1[low, 1] < j0[low, 1] - 0.008
    assert abs(j1[up, 1] - j0[up, 1]) < 1e-3
    # open-mouth expression (component 0) also drops the lower lip
    _, j2 = _run(smplx_neutral, expression=torch.tensor([[1.0] + [0.0] * 9]))
    assert j2[low, 1] < j0[low, 1] - 0.003


def test_face_landmarks_on_the_front_of_the_head(smplx_neutral):
    _, j = _run(smplx_neutral)
    head = j[J["head"]]
    lm = j[76:]
    assert (lm[:, 2] > head[2] + 0.02).all()
    assert (np.abs(lm[:, 0]) < 0.09).all()
    # ordering sanity: brows above eyes above nose tip above mouth above chin contour
    assert lm[0:10, 1].min() > lm[19:31, 1].max() > lm[13, 1] > lm[31:43, 1].max()
    assert j[J["contour_middle"], 1] < lm[31:43, 1].min()
    # subject's right (-x) comes first in each left/right pair
    assert j[J["right_eye1"], 0] < 0 < j[J["left_eye1"], 0]
    # turning the head switches the contour table; turning left is the mirror of turning right
    c0 = J["right_contour_1"]
    _, j_left = _run(smplx_neutral, body_pose=_pose(neck=(0.0, 0.5, 0.0)))
    _, j_right = _run(smplx_neutral, body_pose=_pose(neck=(0.0, -0.5, 0.0)))
    cl, cr = j_left[c0:c0 + 17], j_right[c0:c0 + 17]
    np.testing.assert_allclose(cl, cr[::-1] * [-1.0, 1.0, 1.0], atol=2e-3)
    # on the far side the contour wraps towards the front of the (turned) face
    head_l = j_left[J["head"]]
    assert np.linalg.norm(cl[0] - head_l) < np.linalg.norm(j[c0] - head) + 0.01
    assert not np.allclose(cl, cr, atol=1e-3)


def _pose(**joints):
    p = torch.zeros(1, 63)
    for name, aa in joints.items():
        i = J[name] - 1
        p[0, 3 * i:3 * i + 3] = torch.tensor(aa)
    return p


def test_skinning_is_local(smplx_neutral):
    v0, j0 = _run(smplx_neutral)
    v1, j1 = _run(smplx_neutral, body_pose=_pose(left_elbow=(0.0, -1.2, 0.0)))
    moved = np.linalg.norm(v1 - v0, axis=1) > 1e-5
    assert (v0[moved, 0] > j0[J["left_shoulder"], 0]).all()
    assert (v0[v0[:, 0] > j0[J["left_wrist"], 0], 0] > 0).all()
    hand = v0[:, 0] > j0[J["left_wrist"], 0] + 0.02
    assert moved[hand].all()
    # the wrist joint moves rigidly with the forearm: |wrist - elbow| is preserved
    np.testing.assert_allclose(np.linalg.norm(j1[J["left_wrist"]] - j1[J["left_elbow"]]),
                               np.linalg.norm(j0[J["left_wrist"]] - j0[J["left_elbow"]]), atol=1e-5)


def test_smplx_hand_pca(standin):
    with np.load(standin[0] / "smplx" / "SMPLX_NEUTRAL.npz") as z:
        cl, cr = z["hands_componentsl"].astype(np.float64), z["hands_componentsr"].astype(np.float64)
        ml, mr = z["hands_meanl"], z["hands_meanr"]
    for c in (cl, cr):
        np.testing.assert_allclose(c @ c.T, np.eye(45), atol=1e-5)
    flip = np.tile([1.0, -1.0, -1.0], 15)
    np.testing.assert_allclose(cl, cr * flip, atol=1e-6)
    np.testing.assert_allclose(ml, mr * flip, atol=1e-6)
    # mean pose curls the fingers a little (positive flexion), within joint limits
    assert 0.05 < np.abs(mr).max() < 1.5


def test_h36m_regressor(standin, smplx_flat):
    reg = np.load(standin[0] / "smplx" / "J_regressor_h36m_smplx.npy")
    assert reg.shape == (17, 10475) and reg.dtype == np.float32
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-5)
    assert (reg >= 0).all()
    v, j = _run(smplx_flat)
    h = reg.astype(np.float64) @ v
    pairs = {"R_Hip": "right_hip", "R_Knee": "right_knee", "R_Ankle": "right_ankle",
             "L_Hip": "left_hip", "L_Knee": "left_knee", "L_Ankle": "left_ankle",
             "L_Shoulder": "left_shoulder", "L_Elbow": "left_elbow", "L_Wrist": "left_wrist",
             "R_Shoulder": "right_shoulder", "R_Elbow": "right_elbow", "R_Wrist": "right_wrist"}
    names = ["Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
             "Nose", "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow",
             "R_Wrist"]
    for a, b in pairs.items():
        np.testing.assert_allclose(h[names.index(a)], j[J[b]], atol=0.01)
    np.testing.assert_allclose(h[0], 0.5 * (j[J["left_hip"]] + j[J["right_hip"]]), atol=1e-5)
    assert h[10, 1] == pytest.approx(v[:, 1].max(), abs=1e-4)
    assert h[0, 1] < h[7, 1] < h[8, 1] < h[9, 1] < h[10, 1]


# ---------------------------------------------------------------------------------------------
# MANO


def _mano(root, right, **kw):
    return smplx.create(str(root), model_type="mano", is_rhand=right, use_pca=False, **kw)


def test_mano_counts_tree_and_tips(standin):
    for right in (True, False):
        m = _mano(standin[0], right, flat_hand_mean=True)
        v, j = _run(m)
        assert v.shape == (778, 3) and j.shape == (16, 3) and m.faces.shape == (1538, 3)
        assert m.parents.tolist() == REAL_MANO_PARENTS
        sgn = 1.0 if right else -1.0
        # fingers point away from the wrist towards -x for the right hand
        assert (sgn * (j[1:, 0] - j[0, 0]) < 0).all()
        names = ("thumb", "index", "middle", "ring", "pinky")
        dip = {"index": 3, "middle": 6, "pinky": 9, "ring": 12, "thumb": 15}
        freihand = dict(zip(names, FREIHAND_FINGERTIP_VERTEX_IDS))
        assert freihand == {"thumb": 745, "index": 317, "middle": 445, "ring": 556, "pinky": 673}
        older = dict(zip(names, (728, 353, 444, 576, 694)))  # I2L-MeshNet's list / older forks
        for ids in (SMPLX_VERTEX_IDS["mano"], freihand, older):
            for name, vid in ids.items():
                d = np.linalg.norm(j[[dip[n] for n in names]] - v[vid], axis=1)
                assert names[int(np.argmin(d))] == name and d.min() < 0.03, (right, name, vid)
                assert np.linalg.norm(v[vid] - j[0]) > np.linalg.norm(j[dip[name]] - j[0])
        # hole at the wrist only: 16 boundary edges around the wrist joint
        f = m.faces.astype(np.int64)
        he = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        key, rev = he[:, 0] * 1000 + he[:, 1], he[:, 1] * 1000 + he[:, 0]
        assert len(np.unique(key)) == len(key)
        bnd = np.unique(he[~np.isin(key, rev)])
        assert len(bnd) == 16 and np.linalg.norm(v[bnd] - j[0], axis=1).max() < 0.05


def test_mano_left_is_mirror_of_right(standin):
    r, l = _mano(standin[0], True), _mano(standin[0], False)
    rng = np.random.default_rng(0)
    pose_r = torch.tensor(rng.normal(0, 0.3, (1, 45)), dtype=torch.float32)
    orient_r = torch.tensor([[0.2, -0.4, 0.1]])
    betas = torch.tensor(rng.normal(0, 1, (1, 10)), dtype=torch.float32)
    flip = torch.tensor([1.0, -1.0, -1.0])
    vr, jr = _run(r, hand_pose=pose_r, global_orient=orient_r, betas=betas)
    vl, jl = _run(l, hand_pose=(pose_r.view(1, 15, 3) * flip).view(1, 45),
                  global_orient=orient_r * flip, betas=betas)
    np.testing.assert_allclose(vl, vr * [-1.0, 1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(jl, jr * [-1.0, 1.0, 1.0], atol=1e-5)
    assert not np.allclose(vl, vr, atol=1e-3)
    fr, fl = r.faces.astype(np.int64), l.faces.astype(np.int64)
    assert (fr == fl[:, [0, 2, 1]]).all()


def test_mano_pca_and_pose(standin):
    with open(standin[1]["mano_right"], "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    c = np.asarray(d["hands_components"], dtype=np.float64)
    assert c.shape == (45, 45) and d["hands_mean"].shape == (45,)
    np.testing.assert_allclose(c @ c.T, np.eye(45), atol=1e-8)
    assert d["bs_style"] == "lbs" and d["bs_type"] == "lrotmin"
    assert d["shapedirs"].shape == (778, 3, 10) and d["posedirs"].shape == (778, 3, 135)
    assert d["J_regressor"].shape == (16, 778) and d["weights"].shape == (778, 16)
    # with PCA: 45 components reproduce the axis-angle path exactly
    m_pca = smplx.create(str(standin[0]), model_type="mano", is_rhand=True, use_pca=True,
                         num_pca_comps=44)
    m_aa = _mano(standin[0], True)
    coeffs = torch.randn(1, 44, generator=torch.Generator().manual_seed(0))
    v_pca, _ = _run(m_pca, hand_pose=coeffs)
    v_aa, _ = _run(m_aa, hand_pose=coeffs @ torch.tensor(c[:44], dtype=torch.float32))
    np.testing.assert_allclose(v_pca, v_aa, atol=1e-5)
    # curling the index finger (flexion about +z for the right hand) moves its tip towards the palm
    m = _mano(standin[0], True, flat_hand_mean=True)
    v0, _ = _run(m)
    p = torch.zeros(1, 45)
    p[0, 2], p[0, 5], p[0, 8] = 1.0, 1.0, 1.0
    v1, _ = _run(m, hand_pose=p)
    tip = SMPLX_VERTEX_IDS["mano"]["index"]
    assert v1[tip, 1] < v0[tip, 1] - 0.03


# ---------------------------------------------------------------------------------------------
# FLAME


@pytest.fixture(scope="module")
def flame(standin):
    return smplx.create(str(standin[0]), model_type="flame", ext="pkl", use_face_contour=True)


def test_flame_counts_tree_and_joints(flame):
    v, j = _run(flame)
    assert v.shape == (5023, 3) and flame.faces.shape == (9976, 3)
    assert flame.parents.tolist() == REAL_FLAME_PARENTS
    assert j.shape == (5 + 51 + 17, 3)
    root, neck, jaw, leye, reye = j[:5]
    assert root[1] < neck[1] < jaw[1] < leye[1]
    assert leye[0] > 0.015 and reye[0] < -0.015 and leye[2] > neck[2] + 0.05
    lm = j[5:]
    assert (lm[:, 2] > neck[2] + 0.02).all()
    f = flame.faces.astype(np.int64)
    he = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key, rev = he[:, 0] * 10000 + he[:, 1], he[:, 1] * 10000 + he[:, 0]
    assert len(np.unique(key)) == len(key)
    bnd = np.unique(he[~np.isin(key, rev)])
    assert len(bnd) == 60 and (v[bnd, 1] < root[1] + 0.01).all()  # neck opening only


def test_flame_jaw_expression_and_shape(flame):
    v0, j0 = _run(flame)
    low, up = 5 + 57 - 17, 5 + 51 - 17
    _, j1 = _run(flame, jaw_pose=torch.tensor([[0.3, 0.0, 0.0]]))
    assert j1[low, 1] < j0[low, 1] - 0.008 and abs(j1[up, 1] - j0[up, 1]) < 1e-3
    for k in range(10):
        e = torch.zeros(1, 10)
        e[0, k] = 2.0
        v1, _ = _run(flame, expression=e)
        moved = np.linalg.norm(v1 - v0, axis=1) > 1e-6
        assert moved.any() and (v0[moved, 2] > j0[1, 2]).all(), k
        b = torch.zeros(1, 10)
        b[0, k] = 2.0
        v2, _ = _run(flame, betas=b)
        assert np.abs(v2 - v0).max() > 0.003, k
    # neck rotation turns the whole head
    v3, _ = _run(flame, neck_pose=torch.tensor([[0.0, 0.5, 0.0]]))
    top = np.argmax(v0[:, 2])
    assert v3[top, 0] > v0[top, 0] + 0.03


def test_flame_embedding_files(standin):
    with open(standin[1]["flame_static_embedding"], "rb") as fh:
        s = pickle.load(fh, encoding="latin1")
    assert s["lmk_face_idx"].shape == (51,) and s["lmk_b_coords"].shape == (51, 3)
    dyn = np.load(standin[1]["flame_dynamic_embedding"], allow_pickle=True)[()]
    assert dyn["lmk_face_idx"].shape == (79, 17) and dyn["lmk_b_coords"].shape == (79, 17, 3)
    for b in (s["lmk_b_coords"], dyn["lmk_b_coords"]):
        np.testing.assert_allclose(b.sum(-1), 1.0, atol=1e-6)
        assert (b >= 0).all()


# ---------------------------------------------------------------------------------------------
# SMPL-X <-> MANO / FLAME correspondences


def test_mano_and_flame_vertex_ids_land_on_the_smplx_hands_and_face(standin, smplx_flat, flame):
    root, paths = standin
    v, j = _run(smplx_flat)
    with open(paths["smplx_mano_vertex_ids"], "rb") as fh:
        hands = pickle.load(fh, encoding="latin1")
    mano_l = _mano(root, False, flat_hand_mean=True)
    vm, jm = _run(mano_l)
    for key, wrist, sgn in (("left_hand", "left_wrist", 1.0), ("right_hand", "right_wrist", -1.0)):
        ids = np.asarray(hands[key])
        assert ids.shape == (778,) and len(np.unique(ids)) > 300
        # MANO left moved to the SMPL-X wrist (mirrored for the right hand) matches the SMPL-X hand
        src = (vm - jm[0]) * [sgn, 1.0, 1.0] + j[J[wrist]]
        assert np.linalg.norm(v[ids] - src, axis=1).mean() < 0.006, key
        assert (sgn * (v[ids, 0] - j[J[wrist], 0]) > -0.02).all()
    face = np.load(paths["smplx_flame_vertex_ids"])
    assert face.shape == (5023,) and np.issubdtype(face.dtype, np.integer)
    vf, _ = _run(flame)
    # same head geometry up to a translation: align by the mean and compare
    mapped = v[face]
    off = (mapped - vf).mean(0)
    assert np.linalg.norm(mapped - vf - off, axis=1).mean() < 0.005
    assert np.linalg.norm(mapped - j[J["head"]], axis=1).max() < 0.25
