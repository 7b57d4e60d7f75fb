"""Synthetic generator: round trips through the dataset loaders against an independent body-model
recomputation, determinism, noise/occlusion statistics, image/annotation alignment, pose-limit signs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from neuralannot_cli.data.loaders import load_dataset
from neuralannot_cli.data.synth import LOADER_KIND, SYNTH_KINDS, SynthConfig, generate, hidden_gt_path
from neuralannot_cli.data import synth_pose as sp

SIZE = 128
COUNT = 8


def _generate(standin_dir: Path, out: Path, kind: str, **kw):
    cfg = SynthConfig(kind=kind, out_dir=out, count=kw.pop("count", COUNT), image_size=SIZE,
                      model_dir=standin_dir, **kw)
    return generate(cfg)


def _load(summary) -> list:
    opts: dict = {}
    if summary.kind == "h36m":
        opts["subjects"] = (1, 5, 6, 7, 8)
    elif summary.kind != "mpi3dhp":
        opts["split"] = summary.split
    samples = load_dataset(LOADER_KIND[summary.kind], summary.out_dir, **opts)
    if summary.kind == "3dpw":  # GT 3D joints (and their projections) from the GT SMPL parameters
        from neuralannot_cli.data.pw3d_joints import with_gt_joints

        samples = with_gt_joints(samples, model_dir=summary.model_file.parent.parent)
    return samples


def _hidden(summary) -> dict:
    return json.loads(hidden_gt_path(summary.out_dir, summary.split).read_text())


def _key(sample) -> str:
    return str(sample.ids["index"] if sample.dataset == "freihand" else sample.ids["ann_id"])


@pytest.fixture(scope="module")
def models64(standin_dir):
    from neuralannot_cli.body import load_body_model

    kw = dict(model_dir=standin_dir, dtype=torch.float64)
    return {"smplx": load_body_model("smplx", **kw), "right": load_body_model("mano", is_rhand=True, **kw),
            "left": load_body_model("mano", is_rhand=False, **kw),
            "smpl_male": load_body_model("smpl", gender="male", **kw),
            "smpl_female": load_body_model("smpl", gender="female", **kw)}


@pytest.fixture(scope="module")
def generated(standin_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {kind: _generate(standin_dir, root / kind, kind) for kind in SYNTH_KINDS}


def _recompute_mm(models64, entry: dict, which: str = "params_cam") -> np.ndarray:
    """Joints (mm) of the entry's joint set from its saved parameters, through the body model (float64)."""
    if entry["model_type"] == "smplx":
        model = models64["smplx"]
    elif entry["model_type"] == "smpl":
        model = models64[f"smpl_{entry['gender']}"]
    else:
        model = models64[entry["hand_side"]]
    params = {k: torch.tensor(v, dtype=torch.float64)[None] for k, v in entry[which].items()}
    with torch.no_grad():
        out = model(**params)
        return model.joints_in(out, entry["joint_set"])[0].numpy() * 1000.0


@pytest.mark.parametrize("kind", SYNTH_KINDS)
def test_round_trip_through_loader(generated, models64, kind):
    summary = generated[kind]
    samples = _load(summary)
    hidden = _hidden(summary)["annotations"]
    assert len(samples) == COUNT == len(hidden)
    for s in samples:
        e = hidden[_key(s)]
        assert s.image_path.is_file()
        assert s.image_hw == tuple(e["image_hw"])
        img = cv2.imread(str(s.image_path))
        assert img.shape[:2] == s.image_hw
        # Independent path: the saved camera-frame parameters through the body model.
        recomputed = _recompute_mm(models64, e)
        gt_3d = np.asarray(e["joints_3d_cam_mm"])
        np.testing.assert_allclose(recomputed, gt_3d, atol=1e-3)
        if "params_world" in e:
            world = _recompute_mm(models64, e, "params_world")
            R, t = np.asarray(e["cam_rotmat"]), np.asarray(e["cam_trans_mm"])
            np.testing.assert_allclose(world @ R.T + t, gt_3d, atol=1e-3)
            np.testing.assert_allclose(world, np.asarray(e["joints_3d_world_mm"]), atol=1e-3)
        if s.joints_3d_cam_mm is not None:
            # float32 Sample storage: ~3e-4 mm at 3 m
            np.testing.assert_allclose(s.joints_3d_cam_mm, recomputed, atol=1e-3, rtol=0)
            joints_3d, focal, princpt = s.joints_3d_cam_mm.astype(np.float64), s.focal_px, s.princpt_px
        else:  # COCO-WholeBody: 3D and intrinsics only in the hidden file
            joints_3d, focal, princpt = recomputed, e["focal_px"], e["princpt_px"]
        proj = joints_3d[:, :2] / joints_3d[:, 2:] * np.asarray(focal) + np.asarray(princpt)
        vis = s.keypoints_conf > 0
        assert vis.mean() > 0.5
        assert np.abs(proj[vis] - s.keypoints_2d_px[vis]).max() < 0.5
        # the box (projected mesh, clipped to the image) covers the in-image keypoints
        x, y, w, h = s.bbox_xywh_px if s.dataset not in ("freihand", "interhand") else e["bbox_xywh_px"]
        in_img = vis & ((proj >= 0) & (proj <= np.array(s.image_hw[::-1]) - 1)).all(1)
        assert w > 5 and h > 5 and in_img.mean() > 0.5
        pts = proj[in_img]
        assert np.all((pts >= (x - 1, y - 1)) & (pts <= (x + w + 1, y + h + 1)))


def test_h36m_cameras_and_subjects(generated):
    samples = _load(generated["h36m"])
    by_frame: dict = {}
    for s in samples:
        by_frame.setdefault((s.ids["subject"], s.ids["action"], s.ids["frame"]), []).append(s)
    # each pose is seen by several cameras with different extrinsics; the world joints are shared
    for views in by_frame.values():
        assert len({v.ids["camera"] for v in views}) == len(views) >= 2
        worlds = [(v.joints_3d_cam_mm.astype(np.float64) - v.extras["cam_trans_mm"]) @ v.extras["cam_rotmat"]
                  for v in views]
        for w in worlds[1:]:
            np.testing.assert_allclose(w, worlds[0], atol=2e-2)
    # people stand on the floor (world z up, mm): lowest joint (ankle) a few cm above z = 0
    ankles = [np.min(w[[3, 6], 2]) for w in worlds]
    assert all(-50 < a < 300 for a in ankles)


def test_same_seed_same_bytes_different_seed_differs(standin_dir, tmp_path):
    def digest(root: Path) -> dict:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    a = digest(_generate(standin_dir, tmp_path / "a", "coco-wholebody", count=4, seed=3).out_dir)
    b = digest(_generate(standin_dir, tmp_path / "b", "coco-wholebody", count=4, seed=3).out_dir)
    c = digest(_generate(standin_dir, tmp_path / "c", "coco-wholebody", count=4, seed=4).out_dir)
    assert a == b
    assert len(a) == 4 + 2  # 4 JPEGs, the dataset JSON, the hidden-GT JSON
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)
    assert not any(".tmp" in k for k in a)


def test_keypoint_noise_and_occlusion(standin_dir, tmp_path):
    sigma, frac = 2.0, 0.3
    summary = _generate(standin_dir, tmp_path / "noisy", "coco-wholebody", count=8, kp_noise_px=sigma,
                        occlusion_frac=frac, seed=11)
    samples = _load(summary)
    hidden = _hidden(summary)["annotations"]
    dev, occluded, inside_total = [], 0, 0
    for s in samples:
        exact = np.asarray(hidden[_key(s)]["keypoints_2d_px"])
        inside = ((exact >= 0) & (exact <= SIZE - 1)).all(1)
        v = s.extras["keypoints_v"]
        labelled = v > 0
        assert not np.any(labelled & ~inside)  # off-image points are never labelled
        dev.append(np.linalg.norm(s.keypoints_2d_px[labelled] - exact[labelled], axis=1))
        occluded += int((~labelled & inside).sum())
        inside_total += int(inside.sum())
    dev = np.concatenate(dev)
    expected = sigma * np.sqrt(np.pi / 2)  # mean of a 2D isotropic Gaussian's norm (Rayleigh)
    assert len(dev) > 400
    assert abs(dev.mean() - expected) < 0.15 * expected
    assert abs(occluded / inside_total - frac) < 0.06


def test_h36m_and_interhand_occlusion_fields(standin_dir, tmp_path):
    h = _load(_generate(standin_dir, tmp_path / "h", "h36m", count=8, occlusion_frac=0.5, seed=2))
    vis = np.concatenate([s.extras["keypoints_vis"] for s in h])
    assert 0.3 < vis.mean() < 0.7
    ih = _load(_generate(standin_dir, tmp_path / "i", "interhand", count=8, occlusion_frac=0.5, seed=2))
    assert len(ih) == 8  # the wrist is never occluded, so no hand is dropped
    conf = np.stack([s.keypoints_conf for s in ih])
    assert np.all(conf[:, 0] == 1) and 0.3 < conf[:, 1:].mean() < 0.7


def test_rendered_person_matches_annotations(standin_dir, models64, tmp_path):
    """Green-screen images: the foreground in the JPEG equals an independent re-render of the saved
    parameters, and the torso keypoints land on it."""
    from neuralannot_cli.render import render_mesh

    summary = _generate(standin_dir, tmp_path / "g", "coco-wholebody", count=4, background="green", seed=5)
    hidden = _hidden(summary)["annotations"]
    model = models64["smplx"]
    for s in _load(summary):
        e = hidden[_key(s)]
        rgb = cv2.imread(str(s.image_path))[..., ::-1].astype(np.int32)
        fg = np.abs(rgb - np.array([0, 255, 0])).sum(-1) > 90
        params = {k: torch.tensor(v, dtype=torch.float64)[None] for k, v in e["params_cam"].items()}
        with torch.no_grad():
            verts = model(**params).vertices[0].numpy()
        mask = render_mesh(verts, model.faces, e["focal_px"], e["princpt_px"], s.image_hw).mask
        # JPEG (4:2:0 chroma) bleeds about one pixel across the silhouette: compare up to 1 px
        kernel = np.ones((3, 3), np.uint8)
        grown = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        shrunk = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
        assert mask.sum() > 300
        assert (fg & ~grown).sum() <= 0.02 * mask.sum()
        assert (~fg & shrunk).sum() <= 0.05 * shrunk.sum()
        # shoulders and hips (COCO 5, 6, 11, 12) are on the body in the image
        for j in (5, 6, 11, 12):
            u, v = np.rint(s.keypoints_2d_px[j]).astype(int)
            patch = fg[max(v - 2, 0): v + 3, max(u - 2, 0): u + 3]
            assert patch.any(), j


def test_cli_runs(standin_dir, tmp_path):
    from typer.testing import CliRunner

    from neuralannot_cli.cli.main import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["synth", "--kind", "freihand", "--count", "3", "--out", str(out),
                                      "--model-dir", str(standin_dir), "--seed", "1", "--kp-noise-px", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "training_xyz.json").is_file() and (out / "training" / "rgb" / "00000002.jpg").is_file()
    assert len(load_dataset("freihand", out)) == 3
    bad = CliRunner().invoke(app, ["synth", "--kind", "h36m", "--count", "2", "--out", str(tmp_path / "x"),
                                   "--split", "val", "--model-dir", str(standin_dir)])
    assert bad.exit_code == 1 and "split" in bad.output


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="count"):
        SynthConfig(kind="h36m", out_dir=tmp_path, count=0).checked()
    with pytest.raises(ValueError, match="kind"):
        SynthConfig(kind="coco", out_dir=tmp_path).checked()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="occlusion_frac"):
        SynthConfig(kind="h36m", out_dir=tmp_path, occlusion_frac=1.5).checked()


# ------------------------------------------------------------------------------------ pose sampling


def test_sampled_body_angles_within_limits():
    from neuralannot_cli.rotation import rotmat_to_euler

    rng = np.random.default_rng(0)
    rotvecs = sp.sample_body_pose_rotvecs(rng, 200)
    rotmats = sp.rotvec_to_rotmat_np(rotvecs)
    angles = rotmat_to_euler(torch.as_tensor(rotmats), "XYZ", degrees=True).numpy()
    lim = np.array([sp.BODY_LIMITS_DEG[n] for n in sp.BODY_JOINT_NAMES])

    def within(a):
        return np.all((a >= lim[..., 0] - 1e-6) & (a <= lim[..., 1] + 1e-6), axis=-1)

    # XYZ angles are unique only up to (a, b, c) ~ (a + 180, 180 - b, c + 180) (elbows pass |b| = 90)
    alt = np.stack([angles[..., 0] + 180, 180 - angles[..., 1], angles[..., 2] + 180], -1)
    alt = (alt + 180) % 360 - 180
    assert np.all(within(angles) | within(alt))
    assert np.any(np.abs(angles[:, sp.BODY_JOINT_NAMES.index("left_elbow"), 1]) > 1)
    # determinism: same seed, same numbers
    again = sp.sample_body_pose_rotvecs(np.random.default_rng(0), 200)
    assert np.array_equal(rotvecs, again)


def test_pose_limit_signs_on_the_model(models64):
    """The documented signs move the limbs the anatomical way (knees back, elbows forward, fingers
    to the palm), pinned on the body model."""
    from neuralannot_cli.body.joint_sets import SMPLX_OUTPUT_JOINT_NAMES as N

    m = models64["smplx"]

    def joints(**angles_deg):
        pose = np.zeros((21, 3))
        for name, ang in angles_deg.items():
            pose[sp.BODY_JOINT_NAMES.index(name)] = sp.euler_deg_to_rotvec(np.asarray(ang, dtype=float))
        with torch.no_grad():
            return m(body_pose_rotvecs=torch.tensor(pose)[None]).kinematic_joints[0].numpy()

    rest = joints()
    knee = joints(left_knee=(60, 0, 0))
    assert knee[N.index("left_ankle"), 2] < rest[N.index("left_ankle"), 2] - 0.1  # shin folds backwards
    hip = joints(left_hip=(-60, 0, 0))
    assert hip[N.index("left_knee"), 2] > rest[N.index("left_knee"), 2] + 0.1  # thigh swings forward
    for side, sign in (("left", -1), ("right", 1)):
        elbow = joints(**{f"{side}_elbow": (0, sign * 60, 0)})
        assert elbow[N.index(f"{side}_wrist"), 2] > rest[N.index(f"{side}_wrist"), 2] + 0.1  # forearm forward
        lowered = joints(**{f"{side}_shoulder": (0, 0, sign * 60)})
        assert lowered[N.index(f"{side}_wrist"), 1] < rest[N.index(f"{side}_wrist"), 1] - 0.2  # arm down
    # fingers: z > 0 curls the right index towards the palm (-y); the mirrored pose curls the left one
    for side in ("right", "left"):
        hand = models64[side]
        pose_abs = np.zeros((15, 3))
        pose_abs[0:3] = sp.euler_deg_to_rotvec(np.array([[0, 0, 60.0]] * 3))
        if side == "left":
            pose_abs = sp.rotmat_to_rotvec_np(np.diag([-1.0, 1, 1]) @ sp.rotvec_to_rotmat_np(pose_abs)
                                              @ np.diag([-1.0, 1, 1]))
        mean = hand.layer.hand_mean.numpy().reshape(15, 3)
        with torch.no_grad():
            tips_flat = hand.joints_in(hand(hand_pose_rotvecs=torch.tensor(-mean)[None]), "hand_21")[0].numpy()
            tips = hand.joints_in(hand(hand_pose_rotvecs=torch.tensor(pose_abs - mean)[None]), "hand_21")[0].numpy()
        assert tips[8, 1] < tips_flat[8, 1] - 0.02, side  # index tip


def test_upright_root_faces_camera():
    rng = np.random.default_rng(1)
    R = sp.sample_upright_root_rotmat(rng, 50, np.diag([1.0, -1.0, -1.0]), yaw_range_deg=(-30, 30), max_tilt_deg=5)
    up_cam = R @ np.array([0.0, 1.0, 0.0])
    facing_cam = R @ np.array([0.0, 0.0, 1.0])
    assert np.all(up_cam[:, 1] < -0.99)  # body up = image up (-y in OpenCV)
    assert np.all(facing_cam[:, 2] < -0.8)  # facing the camera (-z)
