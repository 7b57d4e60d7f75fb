"""Pseudo-GT files: exact round trips, the field's loaders (written as Hand4Whole / NeuralAnnot_RELEASE read
them), the world-frame Human3.6M transform, body-model reprojection, progress log, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from neuralannot_cli.io import atomic as atomic_mod
from neuralannot_cli.io.annotate_run import mirror_right_to_left
from neuralannot_cli.io.progress import ProgressLog
from neuralannot_cli.io.pseudo_gt import (
    ManoRecord,
    SmplxRecord,
    camera_to_world_params,
    h36m_file_name,
    meta_path_for,
    read_pseudo_gt,
    record_from_dict,
    record_to_dict,
    world_to_camera_params,
    write_meta,
    write_pseudo_gt_json,
    write_pseudo_gt_npz,
)

FOCAL = (1100.0, 1080.0)
PRINCPT = (319.5, 241.0)


def _project(points_m: np.ndarray, focal, princpt) -> np.ndarray:
    """float64 pinhole projection (independent of the library's camera module)."""
    p = np.asarray(points_m, np.float64)
    return np.stack([p[..., 0] / p[..., 2] * focal[0] + princpt[0], p[..., 1] / p[..., 2] * focal[1] + princpt[1]], -1)


@pytest.fixture(scope="module")
def smplx_model(standin_dir):
    from neuralannot_cli.body import load_body_model

    return load_body_model("smplx", model_dir=standin_dir, dtype=torch.float64)


def _random_params(rng: np.random.Generator, n: int):
    root = rng.normal(0, 0.3, (n, 3)) + np.array([np.pi, 0, 0])  # upright in the OpenCV camera
    pose = rng.normal(0, 0.2, (n, 21, 3))
    betas = rng.normal(0, 1.0, (n, 10))
    transl = np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-0.3, 0.3, n), rng.uniform(3.0, 6.0, n)], -1)
    return root, pose, betas, transl


def _body_records(model, rng, ann_ids, **extra_per_record):
    n = len(ann_ids)
    root, pose, betas, transl = _random_params(rng, n)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    out = model(root_rotvec=t(root), body_pose_rotvecs=t(pose), betas=t(betas), transl_m=t(transl))
    joints = model.joints_in(out, "coco_wholebody_133")[:, :23].numpy()
    kp = _project(joints, FOCAL, PRINCPT)
    recs = []
    for i, aid in enumerate(ann_ids):
        recs.append(SmplxRecord(key=str(aid), ids={"image_id": 1000 + i, "ann_id": int(aid)}, root_rotvec=root[i],
                                body_pose_rotvecs=pose[i], betas=betas[i], transl_m=transl[i], focal_px=FOCAL,
                                princpt_px=PRINCPT, keypoints_2d_px=kp[i], joint_set="coco_wholebody_133[:23]",
                                score=float(i), **{k: v[i] for k, v in extra_per_record.items()}))
    return recs


def _assert_same(a, b, exact=True, atol=1e-9):
    da, db = record_to_dict(a), record_to_dict(b)
    assert da.keys() == db.keys()
    for k in da:
        if exact or not isinstance(da[k], list):
            assert da[k] == db[k], k
        else:
            np.testing.assert_allclose(np.array(da[k], float), np.array(db[k], float), atol=atol, err_msg=k)


# ------------------------------------------------------------------------------------------- round trips


def test_coco_smplx_json_and_npz_round_trip_exact(tmp_path, smplx_model):
    recs = _body_records(smplx_model, np.random.default_rng(0), [7, 12, 900001])
    files = write_pseudo_gt_json(recs, tmp_path / "pg.json", dataset_kind="coco_wholebody")
    assert files == [tmp_path / "pg.json"]
    back = read_pseudo_gt(tmp_path / "pg.json")
    assert list(back) == ["7", "12", "900001"]
    for r in recs:
        _assert_same(r, back[r.key])
    write_pseudo_gt_npz(recs, tmp_path / "pg.npz")
    back_npz = read_pseudo_gt(tmp_path / "pg.npz")
    for r in recs:
        _assert_same(r, back_npz[r.key])
    # record <-> dict is lossless too (what the progress log stores)
    for r in recs:
        _assert_same(r, record_from_dict(json.loads(json.dumps(record_to_dict(r)))))
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left


def test_float32_predictions_survive_exactly(tmp_path):
    root32 = np.array([0.1, -0.2, 3.0], np.float32)
    rec = SmplxRecord(key="1", ids={"ann_id": 1}, root_rotvec=root32, body_pose_rotvecs=np.zeros((21, 3), np.float32),
                      betas=np.full(10, 0.3, np.float32), transl_m=[0, 0, 5], focal_px=FOCAL, princpt_px=PRINCPT)
    write_pseudo_gt_json([rec], tmp_path / "a.json", dataset_kind="coco_wholebody")
    with open(tmp_path / "a.json") as f:
        raw = json.load(f)
    assert np.array_equal(np.array(raw["1"]["smplx_param"]["root_pose"], dtype=np.float32), root32)


# ----------------------------------------------------------------------------------------- field loaders


def test_coco_field_loader_reads_our_file_and_reprojects(tmp_path, smplx_model):
    recs = _body_records(smplx_model, np.random.default_rng(1), [3, 4])
    path = tmp_path / "MSCOCO_train_SMPLX_all_NeuralAnnot.json"
    write_pseudo_gt_json(recs, path, dataset_kind="coco_wholebody")

    # --- as Hand4Whole (common/utils/preprocessing.py) / NeuralAnnot_RELEASE MSCOCO/demo_smplx.py read it ---
    with open(path) as f:
        smplx_params = json.load(f)
    for rec in recs:
        aid = rec.ids["ann_id"]
        smplx_param = smplx_params[str(aid)]
        p = smplx_param["smplx_param"]
        root_pose = torch.FloatTensor(p["root_pose"]).view(1, 3)
        body_pose = torch.FloatTensor(p["body_pose"]).view(-1, 3)
        shape = torch.FloatTensor(p["shape"]).view(1, -1)
        trans = torch.FloatTensor(p["trans"]).view(1, -1)
        assert not p["lhand_valid"] and not p["rhand_valid"] and not p["face_valid"]  # -> zeros in Hand4Whole
        assert len(p["lhand_pose"]) == 45 and len(p["rhand_pose"]) == 45 and len(p["expr"]) == 10
        focal = smplx_param["cam_param"]["focal"]
        princpt = smplx_param["cam_param"]["princpt"]
        # --- end of the field's code ---
        np.testing.assert_array_equal(root_pose.numpy()[0], rec.root_rotvec.astype(np.float32))
        np.testing.assert_array_equal(body_pose.numpy(), rec.body_pose_rotvecs.astype(np.float32))
        np.testing.assert_array_equal(shape.numpy()[0], rec.betas.astype(np.float32))
        np.testing.assert_array_equal(trans.numpy()[0], rec.transl_m.astype(np.float32))
        # forwarding the loaded params through the body model and projecting reproduces the stored 2D keypoints
        out = smplx_model(root_rotvec=root_pose.double(), body_pose_rotvecs=body_pose.double()[None],
                          betas=shape.double(), transl_m=trans.double())
        joints = smplx_model.joints_in(out, "coco_wholebody_133")[0, :23].numpy()
        kp = _project(joints, focal, princpt)
        stored = np.array(smplx_param["neuralannot"]["keypoints_2d_px"])
        np.testing.assert_allclose(kp, stored, atol=1e-3)  # float32 params -> sub-millipixel
        assert np.abs(stored).max() > 10  # not trivially zero


def _rand_rotmat(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_h36m_world_frame_layout_and_hand4whole_transform(tmp_path, smplx_model):
    rng = np.random.default_rng(2)
    n = 4
    root, pose, betas, transl = _random_params(rng, n)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    pelvis = smplx_model(betas=t(betas)).kinematic_joints[:, 0].numpy()
    cam_R = np.stack([_rand_rotmat(rng) for _ in range(n)])
    cam_t_mm = rng.normal(0, 1000, (n, 3))
    ids = [dict(subject=9, action=2, subaction=1, frame=0, camera=1), dict(subject=9, action=2, subaction=1, frame=0, camera=3),
           dict(subject=9, action=3, subaction=2, frame=5, camera=2), dict(subject=11, action=2, subaction=1, frame=64, camera=4)]
    recs = [SmplxRecord(key=f"{d['subject']}/{d['action']}/{d['subaction']}/{d['frame']}/{d['camera']}", ids=d,
                        root_rotvec=root[i], body_pose_rotvecs=pose[i], betas=betas[i], transl_m=transl[i],
                        focal_px=FOCAL, princpt_px=PRINCPT, cam_rotmat=cam_R[i], cam_trans_mm=cam_t_mm[i],
                        rest_pelvis_m=pelvis[i], score=[5.0, 2.0, 1.0, 1.0][i]) for i, d in enumerate(ids)]
    files = write_pseudo_gt_json(recs, tmp_path / "out", dataset_kind="h36m")
    assert sorted(f.name for f in files) == [h36m_file_name(11), h36m_file_name(9)]

    # --- as Hand4Whole data/Human36M/Human36M.py + process_human_model_output('smplx') read it ---
    kept = {0: None, 1: recs[1], 2: recs[2], 3: recs[3]}  # frame (9,2,1,0): camera 3 has the lower score
    for rec in (kept[1], kept[2], kept[3]):
        subject, action_idx, subaction_idx, frame_idx = (rec.ids[k] for k in ("subject", "action", "subaction", "frame"))
        with open(tmp_path / "out" / f"Human36M_subject{subject}_SMPLX_NeuralAnnot.json") as f:
            smplx_params = {str(subject): json.load(f)}
        smplx_param = smplx_params[str(subject)][str(action_idx)][str(subaction_idx)][str(frame_idx)]
        R, tt = np.array(rec.cam_rotmat, dtype=np.float32), np.array(rec.cam_trans_mm, dtype=np.float32)
        cam_param = {"R": R, "t": tt / 1000}  # Hand4Whole: cam_param['t'] /= 1000
        root_pose = torch.FloatTensor(smplx_param["root_pose"]).view(1, 3)
        body_pose = torch.FloatTensor(smplx_param["body_pose"]).view(-1, 3)
        shape = torch.FloatTensor(smplx_param["shape"]).view(1, -1)
        trans = torch.FloatTensor(smplx_param["trans"]).view(1, -1)
        root_pose = root_pose.numpy()
        root_pose, _ = cv2.Rodrigues(root_pose)
        root_pose, _ = cv2.Rodrigues(np.dot(R, root_pose))
        root_pose = torch.from_numpy(root_pose).view(1, 3)
        out = smplx_model(root_rotvec=root_pose.double(), body_pose_rotvecs=body_pose.double()[None],
                          betas=shape.double(), transl_m=trans.double())
        joint_cam = out.joints[0].numpy()
        root_cam = joint_cam[0, None, :]
        joint_cam = joint_cam - root_cam + np.dot(cam_param["R"], root_cam.transpose(1, 0)).transpose(1, 0) + cam_param["t"]
        # --- end of the field's code ---
        ref = smplx_model(root_rotvec=t(rec.root_rotvec[None]), body_pose_rotvecs=t(rec.body_pose_rotvecs[None]),
                          betas=t(rec.betas[None]), transl_m=t(rec.transl_m[None])).joints[0].numpy()
        np.testing.assert_allclose(joint_cam, ref, atol=2e-5)  # metres; float32 loader math
        assert smplx_param["neuralannot"]["camera"] == rec.ids["camera"]

    back = read_pseudo_gt(tmp_path / "out")
    assert sorted(back) == sorted(r.key for r in (kept[1], kept[2], kept[3]))
    for rec in (kept[1], kept[2], kept[3]):
        _assert_same(rec, back[rec.key], exact=False, atol=1e-9)


def test_world_camera_conversions_are_inverse():
    rng = np.random.default_rng(3)
    for _ in range(20):
        R = _rand_rotmat(rng)
        root = rng.normal(size=3)
        root *= rng.uniform(0, np.pi) / np.linalg.norm(root)
        tr, p0, tmm = rng.normal(size=3), rng.normal(size=3) * 0.1, rng.normal(size=3) * 1000
        rw, tw = camera_to_world_params(root, tr, p0, R, tmm)
        rc, tc = world_to_camera_params(rw, tw, p0, R, tmm)
        np.testing.assert_allclose(cv2.Rodrigues(rc)[0], cv2.Rodrigues(root)[0], atol=1e-10)
        np.testing.assert_allclose(tc, tr, atol=1e-10)
        # against cv2 directly: R_world = R^T R_cam
        np.testing.assert_allclose(cv2.Rodrigues(rw)[0], R.T @ cv2.Rodrigues(root)[0], atol=1e-10)


def test_mano_coco_layout_field_loader_and_left_mirror(tmp_path, standin_dir):
    from neuralannot_cli.body import load_body_model

    right = load_body_model("mano", is_rhand=True, model_dir=standin_dir, dtype=torch.float64)
    left = load_body_model("mano", is_rhand=False, model_dir=standin_dir, dtype=torch.float64)
    rng = np.random.default_rng(4)
    root = rng.normal(0, 0.5, 3)
    pose = rng.normal(0, 0.3, (15, 3))
    betas = rng.normal(0, 1, 10)
    transl = np.array([0.05, -0.02, 0.6])
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)[None]  # noqa: E731
    # the network's right hand of the mirrored scene -> left hand of the original scene
    mirrored_right = right(root_rotvec=t(root), hand_pose_rotvecs=t(pose), betas=t(betas), transl_m=t(transl))
    lr, lp, lt = mirror_right_to_left(root, pose, transl)
    left_out = left(root_rotvec=t(lr), hand_pose_rotvecs=t(lp), betas=t(betas), transl_m=t(lt))
    np.testing.assert_allclose(left_out.vertices[0].numpy(), mirrored_right.vertices[0].numpy() * [-1, 1, 1], atol=1e-9)

    kp_left = _project(left_out.joints[0, :16].numpy(), FOCAL, PRINCPT)
    rec_l = ManoRecord(key="5/left", ids={"ann_id": 5, "hand_side": "left"}, hand_type="left", root_rotvec=lr,
                       hand_pose_rotvecs=lp, betas=betas, transl_m=lt, focal_px=FOCAL, princpt_px=PRINCPT,
                       keypoints_2d_px=kp_left)
    rec_r = ManoRecord(key="6/right", ids={"ann_id": 6, "hand_side": "right"}, hand_type="right", root_rotvec=root,
                       hand_pose_rotvecs=pose, betas=betas, transl_m=transl, focal_px=FOCAL, princpt_px=PRINCPT)
    path = tmp_path / "MSCOCO_train_MANO_NeuralAnnot.json"
    write_pseudo_gt_json([rec_l, rec_r], path, dataset_kind="coco_wholebody")
    back = read_pseudo_gt(path)
    _assert_same(rec_l, back["5/left"])
    _assert_same(rec_r, back["6/right"])

    # --- as Hand4Whole data/MSCOCO/MSCOCO.py (hand part) + NeuralAnnot_RELEASE MSCOCO/demo_mano.py ---
    with open(path) as f:
        mano_params = json.load(f)
    assert mano_params["5"]["right"] is None and mano_params["6"]["left"] is None
    mano_param = mano_params[str(5)]["left"]
    if mano_param is not None:
        mano_param["mano_param"]["hand_type"] = "left"
    p = mano_param["mano_param"]
    pose_t = torch.FloatTensor(p["pose"]).view(-1, 3)
    root_pose, hand_pose = pose_t[0, None, :], pose_t[1:, :]
    shape = torch.FloatTensor(p["shape"]).view(1, -1)
    trans = torch.FloatTensor(p["trans"]).view(1, -1)
    # --- end ---
    out = left(root_rotvec=root_pose.double(), hand_pose_rotvecs=hand_pose.double()[None], betas=shape.double(),
               transl_m=trans.double())
    kp = _project(out.joints[0, :16].numpy(), mano_param["cam_param"]["focal"], mano_param["cam_param"]["princpt"])
    np.testing.assert_allclose(kp, np.array(mano_param["neuralannot"]["keypoints_2d_px"]), atol=1e-3)


# -------------------------------------------------------------------------------------------- bad input


def test_reader_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"smplx_param": {"root_pose": [0, 0, 0]}, "cam_param": {"focal": [1, 1],
                                                                                          "princpt": [0, 0]}}}))
    with pytest.raises(ValueError, match=r"bad\.json: \['1'\]\.smplx_param\.body_pose: missing"):
        read_pseudo_gt(bad, dataset_kind="coco_wholebody")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(ValueError, match="garbage.json: not valid JSON"):
        read_pseudo_gt(garbage)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_pseudo_gt(tmp_path / "nope.json")
    with pytest.raises(ValueError, match=r"body_pose_rotvecs: expected shape \(21, 3\), got \(20, 3\)"):
        SmplxRecord(key="1", ids={}, root_rotvec=[0, 0, 0], body_pose_rotvecs=np.zeros((20, 3)), betas=np.zeros(10),
                    transl_m=[0, 0, 1], focal_px=FOCAL, princpt_px=PRINCPT)
    rec = SmplxRecord(key="1", ids={"ann_id": 1}, root_rotvec=[0, 0, 0], body_pose_rotvecs=np.zeros((21, 3)),
                      betas=np.zeros(10), transl_m=[0, 0, 1], focal_px=FOCAL, princpt_px=PRINCPT)
    with pytest.raises(ValueError, match="rest_pelvis_m are needed"):
        write_pseudo_gt_json([rec], tmp_path / "h", dataset_kind="h36m")
    with pytest.raises(ValueError, match="appears twice"):
        write_pseudo_gt_json([rec, rec], tmp_path / "d.json", dataset_kind="coco_wholebody")


def test_meta_sidecar_keeps_main_json_loader_compatible(tmp_path):
    write_pseudo_gt_json([], tmp_path / "pg.json", dataset_kind="coco_wholebody")
    meta = write_meta(tmp_path / "pg.json", {"tool": "neuralannot", "checkpoint": Path("/x"), "standin": True})
    assert meta == meta_path_for(tmp_path / "pg.json") == tmp_path / "pg.meta.json"
    assert json.loads((tmp_path / "pg.json").read_text()) == {}
    assert json.loads(meta.read_text())["checkpoint"] == "/x"


# ---------------------------------------------------------------------------------- progress + atomic


def test_progress_log_drops_partial_tail_and_checks_fingerprint(tmp_path):
    path = tmp_path / "p.jsonl"
    log = ProgressLog.open(path, {"a": 1}, resume=False)
    log.append(["k1", "k2"], [{"v": 1}, {"v": 2}])
    log.append(["k3"], [{"v": 3}])
    log.close()
    with open(path, "ab") as f:  # a crash in the middle of a write
        f.write(b'{"type": "chunk", "keys": ["k4"], "rec')
    log = ProgressLog.open(path, {"a": 1}, resume=True)
    assert log.done_keys == {"k1", "k2", "k3"}
    log.append(["k4"], [{"v": 4}])
    log.close()
    log = ProgressLog.open(path, {"a": 1}, resume=True)
    assert log.records() == {"k1": {"v": 1}, "k2": {"v": 2}, "k3": {"v": 3}, "k4": {"v": 4}}
    log.close()
    with pytest.raises(ValueError, match=r"fingerprint\.a: the interrupted job had 1, this one has 2"):
        ProgressLog.open(path, {"a": 2}, resume=True)
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match="line 2: corrupt"):
        ProgressLog.open(path, {"a": 1}, resume=True)
    fresh = ProgressLog.open(path, {"a": 1}, resume=False)  # not resuming: starts afresh
    assert fresh.done_keys == set()
    fresh.discard()
    assert not path.exists()


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic_mod.atomic_write_json(target, {"old": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_mod.atomic_write_json(target, {"new": 2})
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    with pytest.raises(ValueError):
        atomic_mod.atomic_write_json(tmp_path / "nan.json", {"v": float("nan")})
