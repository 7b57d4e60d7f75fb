"""Tests for ``neuralannot_cli.integrate`` (Algorithm 2) and ``neuralannot integrate``.

References are independent of the code under test: the true pose a corrupted body was made from, joint
positions from the stand-in SMPL-X / MANO forward passes, the geometric x-mirror of the left MANO mesh.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.integrate import (
    SMPLX_BODY_PARENTS,
    IntegrationInputs,
    WristThresholds,
    forearm_bone_frames,
    forward_kinematics_rotmats,
    hand_means_from_models,
    integrate_records,
    integrate_smplx,
    integrate_wrist_rotmats,
    mano_to_smplx_hand_pose,
    mirror_mano_pose,
    rest_forearm_dirs,
)
from neuralannot_cli.rotation import (
    euler_to_rotmat,
    rotmat_geodesic_distance,
    rotmat_to_euler,
    rotmat_to_rotvec,
    rotvec_to_rotmat,
)

F64 = torch.float64
SIDE_INDEX = {"left": 0, "right": 1}
ELBOW = {"left": 18, "right": 19}
WRIST = {"left": 20, "right": 21}
SHOULDER = {"left": 16, "right": 17}
HAND_JOINTS = {"left": list(range(25, 40)), "right": list(range(40, 55))}


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _deg(x: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(x)


@pytest.fixture(scope="module")
def models(standin_dir):
    from neuralannot_cli.body import load_body_model

    smplx = load_body_model("smplx", model_dir=standin_dir, dtype=F64)
    mano = {
        "left": load_body_model("mano", is_rhand=False, model_dir=standin_dir, dtype=F64),
        "right": load_body_model("mano", is_rhand=True, model_dir=standin_dir, dtype=F64),
    }
    return smplx, mano


def _euler_in_frame(frame: torch.Tensor, angles_deg: list[float]) -> torch.Tensor:
    """Rotation whose intrinsic-XYZ Euler angles in the bone frame are ``angles_deg``."""
    r = euler_to_rotmat(torch.tensor(angles_deg, dtype=F64), "XYZ", degrees=True)
    return frame @ r @ frame.T


def _true_body(side: str, frame: torch.Tensor, wrist_deg: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """A posed body (root, body pose rotvecs) with a flexed elbow and a wrist of known bone-frame Euler angles."""
    gen = torch.Generator().manual_seed(3 + SIDE_INDEX[side])
    root = torch.tensor([[0.3, -0.4, 0.1]], dtype=F64)
    body = 0.15 * torch.randn((1, 21, 3), generator=gen, dtype=F64)
    sign = 1.0 if side == "left" else -1.0
    body[0, SHOULDER[side] - 1] = torch.tensor([0.2, sign * -0.5, sign * 0.6], dtype=F64)
    body[0, ELBOW[side] - 1] = torch.tensor([0.0, sign * math.radians(70.0), 0.0], dtype=F64)  # flexion
    body[0, WRIST[side] - 1] = rotmat_to_rotvec(_euler_in_frame(frame, wrist_deg))
    return root, body


def _glob(root: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    local = rotvec_to_rotmat(torch.cat([root[:, None], body], dim=1))
    return forward_kinematics_rotmats(local, SMPLX_BODY_PARENTS)


def _inputs(root, body, hand_glob_side, side, hand_pose=None) -> IntegrationInputs:
    s = SIDE_INDEX[side]
    hand_glob = torch.eye(3, dtype=F64).repeat(1, 2, 1, 1)
    hand_glob[0, s] = hand_glob_side
    valid = torch.zeros((1, 2), dtype=torch.bool)
    valid[0, s] = True
    return IntegrationInputs(
        root_rotvec=root, body_pose_rotvecs=body, shape_betas=torch.zeros((1, 10), dtype=F64),
        transl_m=torch.zeros((1, 3), dtype=F64), hand_glob_rotmats=hand_glob,
        hand_pose_rotvecs=torch.zeros((1, 2, 15, 3), dtype=F64) if hand_pose is None else hand_pose,
        hand_valid=valid, jaw_rotvec=torch.zeros((1, 3), dtype=F64), expression=torch.zeros((1, 10), dtype=F64),
        face_valid=torch.zeros(1, dtype=torch.bool),
    )


# ------------------------------------------------------------------------------------- pure math


def test_forward_kinematics_matches_chain_product():
    gen = torch.Generator().manual_seed(0)
    local = rotvec_to_rotmat(torch.randn((2, 22, 3), generator=gen, dtype=F64))
    glob = forward_kinematics_rotmats(local, SMPLX_BODY_PARENTS)
    chain = [0, 3, 6, 9, 13, 16, 18, 20]  # pelvis .. left wrist
    expected = torch.eye(3, dtype=F64).expand(2, 3, 3)
    for j in chain:
        expected = expected @ local[:, j]
    assert torch.allclose(glob[:, 20], expected, atol=1e-12)


def test_bone_frame_maps_x_to_forearm():
    dirs = torch.tensor([[1.0, 0.1, -0.05], [1.0, 0.0, 0.0], [0.7, -0.6, 0.3]], dtype=F64)
    frames = forearm_bone_frames(dirs)
    unit = dirs / dirs.norm(dim=-1, keepdim=True)
    assert torch.allclose(frames[..., :, 0], unit, atol=1e-12)
    assert torch.allclose(frames @ frames.transpose(-1, -2), torch.eye(3, dtype=F64).expand(3, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(frames), torch.ones(3, dtype=F64))
    assert torch.allclose(frames[1], torch.eye(3, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_wrist_integration_pure_slanted_forearm(dtype):
    """Forearm 8 deg off the x axis: wrist global = hand, forearm direction kept, twist halved (known values)."""
    gen = torch.Generator().manual_seed(1)
    batch = 6
    forearm = torch.nn.functional.normalize(torch.tensor([1.0, 0.12, -0.06], dtype=F64), dim=0)
    frame = forearm_bone_frames(forearm)
    shoulder = rotvec_to_rotmat(torch.randn((batch, 3), generator=gen, dtype=F64))
    elbow = rotvec_to_rotmat(0.6 * torch.randn((batch, 3), generator=gen, dtype=F64))
    true_wrist = _euler_in_frame(frame, [30.0, 20.0, -40.0]).expand(batch, 3, 3)
    hand = shoulder @ elbow @ true_wrist
    bad_wrist = _euler_in_frame(frame, [40.0, 0.0, 0.0]) @ true_wrist  # roll 40 deg about the forearm
    cast = [t.to(dtype) for t in (shoulder, elbow, bad_wrist, hand, frame)]
    res = integrate_wrist_rotmats(*cast)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert res.accepted.all()
    new_glob = cast[0] @ res.elbow_local_rotmats @ res.wrist_local_rotmats
    assert _deg(rotmat_geodesic_distance(new_glob, cast[3])).max() < 1e-3
    assert _deg(rotmat_geodesic_distance(cast[0] @ cast[1] @ cast[2], cast[3])).min() > 39.0  # was wrong
    d_before = shoulder @ elbow @ forearm
    d_after = (cast[0] @ res.elbow_local_rotmats).double() @ forearm
    assert (d_after - d_before).abs().max() < tol
    expected_elbow = elbow @ _euler_in_frame(frame, [15.0, 0.0, 0.0])  # half of the 30 deg twist
    assert (res.elbow_local_rotmats.double() - expected_elbow).abs().max() < tol
    assert torch.allclose(_deg(res.candidate_euler_rad.double()), torch.tensor([15.0, 20.0, -40.0], dtype=F64)
                          .expand(batch, 3), atol=1e-3)


def test_wrist_integration_input_checks():
    eye = torch.eye(3, dtype=F64).expand(2, 3, 3)
    with pytest.raises(ValueError, match=r"hand_glob_rotmats.*\(2, 3\)"):
        integrate_wrist_rotmats(eye, eye, eye, torch.zeros(2, 3), torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"batch 3"):
        integrate_wrist_rotmats(eye, eye, eye, torch.eye(3, dtype=F64).expand(3, 3, 3), torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"\+x"):
        forearm_bone_frames(torch.tensor([-1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"mano_hand_pose_rotvecs.*\(2, 45\)"):
        mano_to_smplx_hand_pose(torch.zeros(2, 45), torch.zeros(15, 3), torch.zeros(15, 3))


# ------------------------------------------------------------------------- stand-in SMPL-X / MANO


@pytest.mark.parametrize("side", ["left", "right"])
def test_wrong_wrist_roll_fixed_by_hand(models, side):
    smplx, _ = models
    s = SIDE_INDEX[side]
    dirs = rest_forearm_dirs(smplx, torch.zeros((1, 10), dtype=F64))
    frame = forearm_bone_frames(dirs[0, s])
    root, body_true = _true_body(side, frame, [20.0, 15.0, -30.0])
    hand_glob = _glob(root, body_true)[0, WRIST[side]]  # the hand network got it right
    body_bad = body_true.clone()
    bad_local = _euler_in_frame(frame, [40.0, 0.0, 0.0]) @ rotvec_to_rotmat(body_true[0, WRIST[side] - 1])
    body_bad[0, WRIST[side] - 1] = rotmat_to_rotvec(bad_local)
    before_deg = float(_deg(rotmat_geodesic_distance(_glob(root, body_bad)[0, WRIST[side]], hand_glob)))
    assert before_deg > 39.0

    res = integrate_smplx(_inputs(root, body_bad, hand_glob, side), dirs)
    assert bool(res.wrist_replaced[0, s]) and not bool(res.wrist_rejected[0, s])
    glob_after = _glob(root, res.body_pose_rotvecs)
    err_deg = float(_deg(rotmat_geodesic_distance(glob_after[0, WRIST[side]], hand_glob)))
    assert err_deg < 1.0
    # the other arm and everything else is untouched
    other = [j - 1 for j in (ELBOW[side], WRIST[side])]
    keep = [j for j in range(21) if j not in other]
    assert torch.equal(res.body_pose_rotvecs[0, keep], body_bad[0, keep])
    # half of the true 20 deg twist went into the elbow; the wrist keeps (10, 15, -30)
    new_wrist = rotvec_to_rotmat(res.body_pose_rotvecs[0, WRIST[side] - 1])
    euler = _deg(rotmat_to_euler(frame.T @ new_wrist @ frame, "XYZ"))
    assert torch.allclose(euler, torch.tensor([10.0, 15.0, -30.0], dtype=F64), atol=1e-6)

    def arm(pose):
        j = smplx(root_rotvec=root, body_pose_rotvecs=pose).kinematic_joints[0]
        return j[SHOULDER[side]], j[ELBOW[side]], j[WRIST[side]]

    sh0, el0, wr0 = arm(body_bad)
    sh1, el1, wr1 = arm(res.body_pose_rotvecs)

    def flexion(sh, el, wr):
        u, v = el - sh, wr - el
        return math.degrees(math.acos(float(torch.dot(u, v) / (u.norm() * v.norm()))))

    assert abs(flexion(sh1, el1, wr1) - flexion(sh0, el0, wr0)) < 1.0
    assert abs(flexion(sh0, el0, wr0) - 70.0) < 5.0  # the elbow really is flexed
    cos = torch.dot(wr1 - el1, wr0 - el0) / ((wr1 - el1).norm() * (wr0 - el0).norm())
    assert math.degrees(math.acos(min(1.0, float(cos)))) < 0.05  # forearm direction unchanged
    assert float((wr1 - wr0).norm()) < 1e-6  # so the wrist joint does not move


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "wrist_deg, accepted",
    [([10.0, 60.0, 10.0], False), ([10.0, -50.0, 0.0], False), ([0.0, 10.0, 100.0], False),
     ([-25.0, 40.0, -80.0], True)],
)
def test_thresholds(models, side, wrist_deg, accepted):
    smplx, _ = models
    s = SIDE_INDEX[side]
    dirs = rest_forearm_dirs(smplx, torch.zeros((1, 10), dtype=F64))
    frame = forearm_bone_frames(dirs[0, s])
    root, body = _true_body(side, frame, [5.0, 0.0, 0.0])
    glob = _glob(root, body)
    hand_glob = glob[0, ELBOW[side]] @ _euler_in_frame(frame, wrist_deg)  # implies this local wrist
    res = integrate_smplx(_inputs(root, body, hand_glob, side), dirs)
    assert bool(res.wrist_replaced[0, s]) is accepted
    assert bool(res.wrist_rejected[0, s]) is (not accepted)
    assert torch.allclose(_deg(res.wrist_candidate_euler_rad[0, s, 1:]), torch.tensor(wrist_deg[1:], dtype=F64),
                          atol=1e-6)
    if accepted:
        err = _deg(rotmat_geodesic_distance(_glob(root, res.body_pose_rotvecs)[0, WRIST[side]], hand_glob))
        assert float(err) < 1.0
    else:
        assert torch.equal(res.body_pose_rotvecs, body)  # left unchanged, bit for bit


def test_thresholds_configurable(models):
    smplx, _ = models
    dirs = rest_forearm_dirs(smplx, torch.zeros((1, 10), dtype=F64))
    frame = forearm_bone_frames(dirs[0, 0])
    root, body = _true_body("left", frame, [0.0, 0.0, 0.0])
    hand_glob = _glob(root, body)[0, ELBOW["left"]] @ _euler_in_frame(frame, [0.0, 60.0, 0.0])
    loose = WristThresholds(max_abs_y_rad=math.radians(70.0))
    assert bool(integrate_smplx(_inputs(root, body, hand_glob, "left"), dirs, thresholds=loose).wrist_replaced[0, 0])


def _hand_error_mm(smplx, mano_model, side, res, root, mano_root, mano_pose, mano_betas=None):
    """Mean distance (mm) of the 15 finger joints relative to the wrist: SMPL-X vs MANO."""
    out = smplx(root_rotvec=root, body_pose_rotvecs=res.body_pose_rotvecs,
                left_hand_pose_rotvecs=res.left_hand_pose_rotvecs, right_hand_pose_rotvecs=res.right_hand_pose_rotvecs)
    j = out.kinematic_joints[0]
    sx = j[HAND_JOINTS[side]] - j[WRIST[side]]
    m = mano_model(root_rotvec=mano_root, hand_pose_rotvecs=mano_pose, betas=mano_betas).kinematic_joints[0]
    mj = m[1:16] - m[0]
    return float((sx - mj).norm(dim=-1).mean() * 1000.0)


def _finger_pose(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    pose = 0.25 * torch.randn((1, 15, 3), generator=gen, dtype=F64)
    pose[..., 2] += 0.4  # some curl
    return pose


@pytest.mark.parametrize("side", ["left", "right"])
def test_integrated_hand_lands_on_mano_hand(models, side, record_property):
    smplx, mano = models
    s = SIDE_INDEX[side]
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    dirs = rest_forearm_dirs(smplx, torch.zeros((1, 10), dtype=F64))
    frame = forearm_bone_frames(dirs[0, s])
    root, body_true = _true_body(side, frame, [20.0, 15.0, -30.0])
    hand_glob = _glob(root, body_true)[0, WRIST[side]]
    body_bad = body_true.clone()
    body_bad[0, WRIST[side] - 1] = rotmat_to_rotvec(
        _euler_in_frame(frame, [40.0, 0.0, 0.0]) @ rotvec_to_rotmat(body_true[0, WRIST[side] - 1]))
    mano_pose = _finger_pose(10 + s)
    hand_pose = torch.zeros((1, 2, 15, 3), dtype=F64)
    hand_pose[:, s] = mano_to_smplx_hand_pose(mano_pose, means.mano(side), means.smplx(side))
    res = integrate_smplx(_inputs(root, body_bad, hand_glob, side, hand_pose), dirs)
    mano_root = rotmat_to_rotvec(hand_glob)[None]
    err = _hand_error_mm(smplx, mano[side], side, res, root, mano_root, mano_pose)
    record_property("hand_joint_error_mm", err)
    print(f"{side}: SMPL-X vs MANO finger joints (wrist-aligned) {err:.4f} mm")
    assert err < 1.0
    # without integration (body wrist roll 40 deg off) the fingers are far away: the test can fail
    no_int = integrate_smplx(_inputs(root, body_bad, hand_glob, side, hand_pose), dirs,
                             thresholds=WristThresholds(0.0, 0.0))
    assert _hand_error_mm(smplx, mano[side], side, no_int, root, mano_root, mano_pose) > 10.0
    # a MANO hand of a different shape: the residual is the shape difference only (reported)
    betas = torch.tensor([[1.0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=F64)
    shape_err = _hand_error_mm(smplx, mano[side], side, res, root, mano_root, mano_pose, betas)
    print(f"{side}: with MANO betas (1, 0.5, 0...) vs SMPL-X betas 0: {shape_err:.2f} mm")


def test_flipped_right_hand_mirrors_to_left(models):
    """Right-MANO parameters of the flipped image reproduce the left hand (geometric mirror check)."""
    smplx, mano = models
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    left_root = torch.tensor([[0.4, -0.9, 0.3]], dtype=F64)
    left_pose = _finger_pose(21)
    right_root, right_pose = mirror_mano_pose(left_root, left_pose, means.mano("left"), means.mano("right"))
    jl = mano["left"](root_rotvec=left_root, hand_pose_rotvecs=left_pose).joints[0]
    jr = mano["right"](root_rotvec=right_root, hand_pose_rotvecs=right_pose).joints[0]
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=F64)
    assert float((jr - jl * mirror).norm(dim=-1).max()) < 1e-6  # the flipped image's right hand
    back_root, back_pose = mirror_mano_pose(right_root, right_pose, means.mano("right"), means.mano("left"))
    assert torch.allclose(back_root, left_root, atol=1e-12) and torch.allclose(back_pose, left_pose, atol=1e-12)


# --------------------------------------------------------------------------------- records and CLI


def _flat(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.reshape(-1)]


def _write_case(tmp_path, models):
    """Three persons in the released layout; returns paths and the true hand rotations."""
    smplx, mano = models
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    dirs = rest_forearm_dirs(smplx, torch.zeros((1, 10), dtype=F64))
    frames = [forearm_bone_frames(dirs[0, s]) for s in range(2)]
    root, body_true = _true_body("left", frames[0], [20.0, 15.0, -30.0])
    body_true[0, WRIST["right"] - 1] = rotmat_to_rotvec(_euler_in_frame(frames[1], [-10.0, 5.0, 25.0]))
    glob = _glob(root, body_true)[0]
    body_bad = body_true.clone()
    for side in ("left", "right"):
        w = WRIST[side] - 1
        body_bad[0, w] = rotmat_to_rotvec(
            _euler_in_frame(frames[SIDE_INDEX[side]], [40.0, 0.0, 0.0]) @ rotvec_to_rotmat(body_true[0, w]))
    cam = {"focal": [1500.0, 1500.0], "princpt": [320.0, 240.0]}
    shape = [0.0] * 10
    body = {
        "1": {"smplx_param": {"root_pose": _flat(root), "body_pose": _flat(body_bad), "shape": shape,
                              "trans": [0.0, 0.2, 3.0]}, "cam_param": cam},
        "2": {"smplx_param": {"root_pose": _flat(root), "body_pose": _flat(body_true), "shape": shape,
                              "trans": [0.1, 0.2, 4.0]}, "cam_param": cam},
        "3": {"smplx_param": {"root_pose": _flat(root), "body_pose": _flat(body_true), "shape": shape,
                              "trans": [0.0, 0.0, 5.0]}, "cam_param": cam},
    }
    lpose, rpose = _finger_pose(31), _finger_pose(32)
    lroot = rotmat_to_rotvec(glob[WRIST["left"]])[None]
    # person 1: the left hand was annotated by a right-hand network on the flipped image
    froot, fpose = mirror_mano_pose(lroot, lpose, means.mano("left"), means.mano("right"))
    rroot = rotmat_to_rotvec(glob[WRIST["right"]])[None]
    # person 2: the right hand implies a wrist deviation of 60 deg -> rejected
    bad_rroot = rotmat_to_rotvec(glob[ELBOW["right"]] @ _euler_in_frame(frames[1], [0.0, 60.0, 0.0]))[None]
    hand = {
        "1": {"left": {"mano_param": {"pose": _flat(torch.cat([froot, fpose[0]])), "shape": [0.0] * 10,
                                      "trans": [0, 0, 0]}, "cam_param": cam, "flipped": True},
              "right": {"mano_param": {"pose": _flat(torch.cat([rroot, rpose[0]])), "shape": [0.0] * 10,
                                       "trans": [0, 0, 0]}, "cam_param": cam}},
        "2": {"left": None,
              "right": {"mano_param": {"pose": _flat(torch.cat([bad_rroot, rpose[0]])), "shape": [0.0] * 10,
                                       "trans": [0, 0, 0]}, "cam_param": cam}},
        "99": {"left": None, "right": None},
    }
    face = {
        "1": {"flame_param": {"root_pose": [0, 0, 0], "jaw_pose": [0.2, 0.0, 0.0], "shape": [0.0] * 10,
                              "expr": [0.5] * 50, "trans": [0, 0, 0]}, "cam_param": cam},
        "2": None,
        "3": {"flame_param": {"jaw_pose": [0.1, 0, 0], "expr": [1.0] * 10}, "valid": False},
    }
    paths = {}
    for name, obj in (("body", body), ("hand", hand), ("face", face)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(obj))
    truth = {"glob": glob, "root": root, "lpose": lpose, "rpose": rpose, "lroot": lroot, "rroot": rroot,
             "body_true": body_true}
    return paths, truth


def test_cli_round_trip(tmp_path, models, standin_dir):
    from neuralannot_cli.cli.main import app

    smplx, mano = models
    paths, truth = _write_case(tmp_path, models)
    out = tmp_path / "out" / "smplx.json"
    result = CliRunner().invoke(app, [
        "integrate", "--body", str(paths["body"]), "--hand", str(paths["hand"]), "--face", str(paths["face"]),
        "--out", str(out), "--model-dir", str(standin_dir)])
    text = _plain(result.output)
    assert result.exit_code == 0, text
    assert "3 persons" in text
    assert re.search(r"left hand: valid 1/3 \(flipped 1\); wrist replaced 1, rejected by thresholds 0", text), text
    assert re.search(r"right hand: valid 2/3 \(flipped 0\); wrist replaced 1, rejected by thresholds 1", text), text
    assert "face: valid 1/3" in text and "1 hand entries" in text

    data = json.loads(out.read_text())
    assert sorted(data) == ["1", "2", "3"]
    p1, p2, p3 = (data[k]["smplx_param"] for k in ("1", "2", "3"))
    assert len(p1["body_pose"]) == 63 and len(p1["lhand_pose"]) == 45 and len(p1["rhand_pose"]) == 45
    assert (p1["lhand_valid"], p1["rhand_valid"], p1["face_valid"]) == (True, True, True)
    assert (p2["lhand_valid"], p2["rhand_valid"], p2["face_valid"]) == (False, True, False)
    assert (p3["lhand_valid"], p3["rhand_valid"], p3["face_valid"]) == (False, False, False)
    assert data["1"]["cam_param"]["focal"] == [1500.0, 1500.0]
    assert data["1"]["integration"]["lwrist"] == "replaced" and data["1"]["integration"]["lhand_flipped"]
    assert data["2"]["integration"]["rwrist"] == "rejected"
    assert p1["jaw_pose"] == pytest.approx([0.2, 0.0, 0.0]) and p1["expr"] == pytest.approx([0.5] * 10)
    assert p3["jaw_pose"] == [0.0, 0.0, 0.0] and p3["expr"] == [0.0] * 10
    assert p2["lhand_pose"] == [0.0] * 45

    # person 1: both wrists now carry the hands' global rotations; fingers land where MANO put them
    root = torch.tensor([p1["root_pose"]], dtype=F64)
    body = torch.tensor(p1["body_pose"], dtype=F64).reshape(1, 21, 3)
    glob = _glob(root, body)[0]
    for side in ("left", "right"):
        err = float(_deg(rotmat_geodesic_distance(glob[WRIST[side]], truth["glob"][WRIST[side]])))
        assert err < 1.0, (side, err)
    out_sx = smplx(root_rotvec=root, body_pose_rotvecs=body,
                   left_hand_pose_rotvecs=torch.tensor(p1["lhand_pose"], dtype=F64).reshape(1, 15, 3),
                   right_hand_pose_rotvecs=torch.tensor(p1["rhand_pose"], dtype=F64).reshape(1, 15, 3))
    j = out_sx.kinematic_joints[0]
    for side, mroot, mpose in (("left", truth["lroot"], truth["lpose"]), ("right", truth["rroot"], truth["rpose"])):
        m = mano[side](root_rotvec=mroot, hand_pose_rotvecs=mpose).kinematic_joints[0]
        err_mm = float(((j[HAND_JOINTS[side]] - j[WRIST[side]]) - (m[1:16] - m[0])).norm(dim=-1).mean()) * 1000
        assert err_mm < 1.0, (side, err_mm)
    # person 2: the rejected right arm is the body's, bit for bit (through JSON floats)
    assert p2["body_pose"] == pytest.approx(_flat(truth["body_true"]), abs=1e-12)


def test_records_flag_mismatch_and_bad_fields(tmp_path, models):
    smplx, mano = models
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    paths, _ = _write_case(tmp_path, models)
    body = json.loads(paths["body"].read_text())
    hand = json.loads(paths["hand"].read_text())
    # the same flipped entry WITHOUT the flag is read as a left-MANO hand: the wrist ends up elsewhere
    del hand["1"]["left"]["flipped"]
    recs, _ = integrate_records(body, hand, {}, smplx_model=smplx, hand_means=means)
    flagged, _ = integrate_records(body, json.loads(paths["hand"].read_text()), {}, smplx_model=smplx,
                                   hand_means=means)
    assert recs["1"]["smplx_param"]["lhand_pose"] != pytest.approx(flagged["1"]["smplx_param"]["lhand_pose"])
    hand["1"]["left"]["mano_param"]["hand_type"] = "left"
    hand["1"]["left"]["flipped"] = True
    with pytest.raises(ValueError, match=r'hand\.json: \["1"\]\.left\.mano_param\.hand_type'):
        integrate_records(body, hand, {}, smplx_model=smplx, hand_means=means)
    hand = json.loads(paths["hand"].read_text())
    hand["2"]["right"]["mano_param"]["pose"] = [0.0] * 47
    with pytest.raises(ValueError, match=r'hand\.json: \["2"\]\.right\.mano_param\.pose: expected 48 numbers'):
        integrate_records(body, hand, {}, smplx_model=smplx, hand_means=means)


def test_cli_errors_name_file_and_field(tmp_path, models, standin_dir):
    from neuralannot_cli.cli.main import app

    paths, _ = _write_case(tmp_path, models)
    runner = CliRunner()
    out = str(tmp_path / "o.json")
    missing = tmp_path / "nope.json"
    r = runner.invoke(app, ["integrate", "--body", str(missing), "--out", out, "--model-dir", str(standin_dir)])
    assert r.exit_code != 0 and "nope.json" in _plain(r.output) and "not found" in _plain(r.output)
    assert len(_plain(r.output).strip().splitlines()) == 1

    body = json.loads(paths["body"].read_text())
    del body["2"]["smplx_param"]["body_pose"]
    bad = tmp_path / "bad_body.json"
    bad.write_text(json.dumps(body))
    r = runner.invoke(app, ["integrate", "--body", str(bad), "--hand", str(paths["hand"]), "--out", out,
                            "--model-dir", str(standin_dir)])
    text = _plain(r.output)
    assert r.exit_code != 0
    assert "bad_body.json" in text and '["2"].smplx_param.body_pose' in text and "missing" in text, text
    face = json.loads(paths["face"].read_text())
    del face["1"]["flame_param"]["expr"]
    badf = tmp_path / "bad_face.json"
    badf.write_text(json.dumps(face))
    r = runner.invoke(app, ["integrate", "--body", str(paths["body"]), "--face", str(badf), "--out", out,
                            "--model-dir", str(standin_dir)])
    assert r.exit_code != 0 and '["1"].flame_param.expr' in _plain(r.output)
    assert not (tmp_path / "o.json").exists()


def test_degenerate_shape_falls_back_to_mean_forearm_axis(tmp_path, models, standin_dir):
    """An absurd shape (as an untrained annotator writes) must not abort the file: the twist axis of that
    person comes from the mean shape, and its wrist result equals the same person with the mean shape."""
    from neuralannot_cli.cli.main import app

    paths, _ = _write_case(tmp_path, models)
    body = json.loads(paths["body"].read_text())
    body["1"]["smplx_param"]["shape"] = [-2.5, 8.0, -22.2, -13.9, -16.6, -24.4, -11.4, 0.0, 0.1, -24.0]
    bad = tmp_path / "absurd_body.json"
    bad.write_text(json.dumps(body))
    outs = {}
    for name, src in (("absurd", bad), ("mean", paths["body"])):
        outs[name] = tmp_path / f"{name}.json"
        r = CliRunner().invoke(app, ["integrate", "--body", str(src), "--hand", str(paths["hand"]),
                                     "--face", str(paths["face"]), "--out", str(outs[name]),
                                     "--model-dir", str(standin_dir)])
        assert r.exit_code == 0, _plain(r.output)
    absurd, mean = (json.loads(outs[k].read_text())["1"] for k in ("absurd", "mean"))
    assert absurd["integration"]["lwrist"] == mean["integration"]["lwrist"] == "replaced"
    assert absurd["smplx_param"]["body_pose"] == pytest.approx(mean["smplx_param"]["body_pose"], abs=1e-9)


def test_skipped_face_record_from_fit_face_is_an_invalid_face(models):
    """``neuralannot fit-face`` writes skipped faces as ``{"face_valid": false, "skip_reason": ...}`` (no
    ``flame_param``) unless ``--omit-skipped``; integrate must read that as "no face", not fail on the file."""
    from neuralannot_cli.fit.face import FaceFitRecord, face_records_to_json

    smplx, mano = models
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    fitted = FaceFitRecord("1", True, None, 68, root_rotvec=torch.zeros(3).numpy(),
                           jaw_rotvec=torch.tensor([0.25, 0.0, 0.0]).double().numpy(),
                           betas=torch.zeros(10).numpy(), expression=torch.full((10,), 0.5).double().numpy(),
                           transl_m=torch.zeros(3).numpy(), focal_px=torch.ones(2).numpy(),
                           princpt_px=torch.ones(2).numpy(), reproj_err_px=1.0)
    face = face_records_to_json([fitted, FaceFitRecord("2", False, "3 visible face keypoints (< 10)", 3)])
    assert "flame_param" not in face["2"] and face["2"]["face_valid"] is False  # the layout this test is about
    body_param = {"root_pose": [0.0] * 3, "body_pose": [0.0] * 63, "shape": [0.0] * 10, "trans": [0.0, 0.0, 3.0]}
    body = {k: {"smplx_param": dict(body_param)} for k in ("1", "2")}
    records, summary = integrate_records(body, {}, face, smplx_model=smplx, hand_means=means)
    p1, p2 = records["1"]["smplx_param"], records["2"]["smplx_param"]
    assert p1["face_valid"] is True and p1["jaw_pose"] == pytest.approx([0.25, 0.0, 0.0])
    assert p1["expr"] == pytest.approx([0.5] * 10)
    assert p2["face_valid"] is False and p2["jaw_pose"] == [0.0] * 3 and p2["expr"] == [0.0] * 10
    assert summary.face_valid == 1


# ------------------------------------------------------------------ degenerate inputs (audit s9, item 5)


def _invoke_integrate(standin_dir, body, out, hand=None, face=None):
    from neuralannot_cli.cli.main import app

    args = ["integrate", "--body", str(body), "--out", str(out), "--model-dir", str(standin_dir)]
    if hand is not None:
        args += ["--hand", str(hand)]
    if face is not None:
        args += ["--face", str(face)]
    r = CliRunner().invoke(app, args)
    return r, _plain(r.output)


def _assert_one_line_error(r, text, *needles):
    assert r.exit_code != 0, text
    assert len(text.strip().splitlines()) == 1, text
    for needle in needles:
        assert needle in text, (needle, text)


def test_empty_body_file_is_an_error(tmp_path, models, standin_dir):
    """``{}`` as --body used to write ``{}`` with exit 0."""
    paths, _ = _write_case(tmp_path, models)
    empty = tmp_path / "empty_body.json"
    empty.write_text("{}")
    out = tmp_path / "o.json"
    r, text = _invoke_integrate(standin_dir, empty, out, hand=paths["hand"])
    _assert_one_line_error(r, text, "empty_body.json", "<top level>", "no body records")
    assert not out.exists()
    smplx, mano = models
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    with pytest.raises(ValueError, match=r"body\.json: <top level>: no body records"):
        integrate_records({}, {}, {}, smplx_model=smplx, hand_means=means)


def test_hand_file_of_another_layout_is_an_error(tmp_path, models, standin_dir):
    """A body file (or a FreiHAND ``{idx: {mano_param}}`` file) passed as --hand has entries with neither 'left'
    nor 'right'; it used to count as "no hand" for every person, exit 0."""
    paths, _ = _write_case(tmp_path, models)
    out = tmp_path / "o.json"
    r, text = _invoke_integrate(standin_dir, paths["body"], out, hand=paths["body"])
    _assert_one_line_error(r, text, "body.json", '["1"]', "'left' / 'right'", "'smplx_param'")
    assert not out.exists()
    frei = tmp_path / "frei_like.json"  # keys match the body, entries are bare MANO records
    frei.write_text(json.dumps({"1": {"mano_param": {"pose": [0.0] * 48, "shape": [0.0] * 10, "trans": [0] * 3}}}))
    r, text = _invoke_integrate(standin_dir, paths["body"], out, hand=frei)
    _assert_one_line_error(r, text, "frei_like.json", '["1"]', "'left' / 'right'", "'mano_param'")
    assert not out.exists()
    # the face counterpart (a body file as --face) names the missing FLAME field
    r, text = _invoke_integrate(standin_dir, paths["body"], out, face=paths["body"])
    _assert_one_line_error(r, text, "body.json", '["1"].flame_param', "missing")
    assert not out.exists()
    # a null entry and an entry with only one side stay valid
    smplx, mano = models
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    body = json.loads(paths["body"].read_text())
    hand = json.loads(paths["hand"].read_text())
    hand["3"] = None
    del hand["2"]["left"]
    _, summary = integrate_records(body, hand, {}, smplx_model=smplx, hand_means=means)
    assert summary.hand_valid == {"left": 1, "right": 2}


@pytest.mark.parametrize("part", ["hand", "face"])
def test_part_file_matching_no_body_record_is_an_error(tmp_path, models, standin_dir, part):
    """A --hand / --face file whose keys are all other annotation ids (another split or dataset) used to write the
    body back without any hand / face, exit 0. Some unmatched entries stay allowed (counted, as before)."""
    paths, _ = _write_case(tmp_path, models)
    data = json.loads(paths[part].read_text())
    other = tmp_path / f"{part}_other.json"
    other.write_text(json.dumps({str(int(k) + 1000): v for k, v in data.items()}))
    out = tmp_path / "o.json"
    r, text = _invoke_integrate(standin_dir, paths["body"], out, **{part: other})
    _assert_one_line_error(r, text, f"{part}_other.json", "<top level>", f"{part} entries",
                           "matches a body record", "body.json")
    assert not out.exists()
    empty = tmp_path / f"{part}_empty.json"
    empty.write_text("{}")
    r, text = _invoke_integrate(standin_dir, paths["body"], out, **{part: empty})
    _assert_one_line_error(r, text, f"{part}_empty.json", "<top level>", f"no {part} entries")
    assert not out.exists()

    smplx, mano = models
    means = hand_means_from_models(smplx, mano["left"], mano["right"])
    body = json.loads(paths["body"].read_text())
    shifted = json.loads(other.read_text())
    kw = {"hand": {}, "face": {}, part: shifted}
    with pytest.raises(ValueError, match=rf"{part}_other\.json: <top level>: none of its 3 {part} entries"):
        integrate_records(body, kw["hand"], kw["face"], smplx_model=smplx, hand_means=means,
                          **{f"{part}_path": other})
    # a partial match is fine: one matching entry among the unmatched ones
    shifted["1"] = data["1"]
    kw[part] = shifted
    _, summary = integrate_records(body, kw["hand"], kw["face"], smplx_model=smplx, hand_means=means)
    assert (summary.hands_without_body if part == "hand" else summary.faces_without_body) == 3
    assert (summary.hand_valid["right"] if part == "hand" else summary.face_valid) == 1
