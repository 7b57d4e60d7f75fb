"""Tests of the six dataset readers against tiny files written in the real formats.

Expected values are worked out by hand (literal numbers) or recomputed here in float64 from the raw
values the fixture wrote, never by calling the loaders' own helpers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from neuralannot_cli.data.coco_wholebody import load_coco_wholebody
from neuralannot_cli.data.freihand import HAND_21_JOINT_NAMES, load_freihand
from neuralannot_cli.data.h36m import H36M_17_JOINT_NAMES, load_h36m
from neuralannot_cli.data.interhand import INTERHAND_HAND_JOINT_NAMES, load_interhand
from neuralannot_cli.data.loaders import load_dataset
from neuralannot_cli.data.mpi3dhp import MPI3DHP_17_JOINT_NAMES, load_mpi3dhp
from neuralannot_cli.data.pw3d import load_3dpw
from neuralannot_cli.data.record import DATASET_NAMES, DatasetFormatError, Sample
from tests import fixtures_formats as fx


def _edit_json(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


def _world_to_cam_ref(world: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Explicit float64 loops: cam_i = sum_j R_ij X_j + t_i."""
    out = np.zeros_like(world, dtype=np.float64)
    for n in range(world.shape[0]):
        for i in range(3):
            out[n, i] = sum(R[i][j] * world[n, j] for j in range(3)) + t[i]
    return out


def _project_ref(cam: np.ndarray, f, c) -> np.ndarray:
    return np.stack([f[0] * cam[:, 0] / cam[:, 2] + c[0], f[1] * cam[:, 1] / cam[:, 2] + c[1]], axis=1)


def _check_common(s: Sample, n_joints: int) -> None:
    assert s.dataset in DATASET_NAMES
    assert s.image_path.is_absolute()
    assert s.bbox_xywh_px.shape == (4,) and s.bbox_xywh_px.dtype == np.float32
    assert s.keypoints_2d_px.shape == (n_joints, 2) and s.keypoints_2d_px.dtype == np.float32
    assert s.keypoints_conf.shape == (n_joints,) and s.keypoints_conf.dtype == np.float32
    assert np.all((s.keypoints_conf >= 0) & (s.keypoints_conf <= 1))
    if s.joints_3d_cam_mm is not None:
        assert s.joints_3d_cam_mm.shape == (n_joints, 3) and s.joints_3d_cam_mm.dtype == np.float32


# ------------------------------------------------------------------------------------------ H36M


def test_h36m_hand_checked_point(tmp_path):
    fx.write_h36m(tmp_path)
    samples = load_h36m(tmp_path, subjects=[1])
    s = next(s for s in samples if s.ids["camera"] == 1 and s.ids["frame"] == 0)
    # world (10, 3000, 20); R_X90 gives (10, -20, 3000); + t (100, 200, 5000) = (110, 180, 8000).
    # (R (X - t) would give (-90, 4980, 2800).)
    np.testing.assert_allclose(s.joints_3d_cam_mm[0], [110.0, 180.0, 8000.0], atol=1e-3)
    # u = 1000 * 110 / 8000 + 500 = 513.75, v = 1000 * 180 / 8000 + 500 = 522.5
    np.testing.assert_allclose(s.keypoints_2d_px[0], [513.75, 522.5], atol=1e-3)
    assert s.focal_px == (1000.0, 1000.0) and s.princpt_px == (500.0, 500.0)


def test_h36m_all_samples_match_float64_reference(tmp_path):
    truth = fx.write_h36m(tmp_path)
    samples = load_h36m(tmp_path, subjects=[1])
    assert len(samples) == 6
    for s in samples:
        _check_common(s, 17)
        assert s.joint_set == "h36m_17" and s.dataset == "h36m"
        cam = truth["cameras"][str(s.ids["camera"])]
        ref_cam = _world_to_cam_ref(truth["world"][s.ids["frame"]], cam["R"], cam["t"])
        np.testing.assert_allclose(s.joints_3d_cam_mm, ref_cam, rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(s.keypoints_2d_px, _project_ref(ref_cam, cam["f"], cam["c"]), atol=1e-3)
        np.testing.assert_array_equal(s.keypoints_conf, np.ones(17))
        img = truth["images"][s.ids["image_id"]]
        assert s.image_path == tmp_path.resolve() / "images" / img["file_name"]
        assert s.image_hw == (1002, 1000)
        assert s.ids == {"subject": 1, "action": 2, "subaction": 1, "camera": img["cam_idx"],
                         "frame": img["frame_idx"], "image_id": img["id"], "ann_id": 100 + img["id"]}
        np.testing.assert_array_equal(s.bbox_xywh_px, [300.0, 200.0, 250.0, 600.0])
        np.testing.assert_allclose(s.extras["cam_rotmat"], cam["R"], atol=1e-7)


def test_h36m_frame_step_and_cameras(tmp_path):
    fx.write_h36m(tmp_path)
    assert sorted({s.ids["frame"] for s in load_h36m(tmp_path, [1], frame_step=10)}) == [0, 10]
    assert len(load_h36m(tmp_path, [1], frame_step=10)) == 4
    only4 = load_h36m(tmp_path, [1], cameras=[4])
    assert len(only4) == 3 and {s.ids["camera"] for s in only4} == {4}
    with pytest.raises(ValueError, match="frame_step"):
        load_h36m(tmp_path, [1], frame_step=0)


def test_h36m_joint_order_is_hand4whole():
    assert H36M_17_JOINT_NAMES[0] == "Pelvis" and H36M_17_JOINT_NAMES[10] == "Head_top"
    assert H36M_17_JOINT_NAMES[11:14] == ("L_Shoulder", "L_Elbow", "L_Wrist")
    assert H36M_17_JOINT_NAMES[14:] == ("R_Shoulder", "R_Elbow", "R_Wrist")
    assert len(set(H36M_17_JOINT_NAMES)) == 17


def test_h36m_errors(tmp_path):
    truth = fx.write_h36m(tmp_path)
    with pytest.raises(FileNotFoundError, match="Human36M_subject9_data.json"):
        load_h36m(tmp_path, subjects=[9])
    _edit_json(truth["paths"]["data"], lambda d: d["annotations"][1].update(bbox=[1.0, 2.0, 3.0]))
    with pytest.raises(DatasetFormatError) as err:
        load_h36m(tmp_path, subjects=[1])
    assert str(err.value) == f"{truth['paths']['data']}: annotations[1].bbox: expected 4 numbers, got 3"


def test_h36m_missing_frame_names_joint_file(tmp_path):
    truth = fx.write_h36m(tmp_path)
    _edit_json(truth["paths"]["joint_3d"], lambda d: d["2"]["1"].pop("5"))
    with pytest.raises(DatasetFormatError, match=re.escape('Human36M_subject1_joint_3d.json: ["2"]["1"]["5"]: missing')):
        load_h36m(tmp_path, subjects=[1])


# ---------------------------------------------------------------------------------------- MPI-3DHP


def test_mpi3dhp_matches_reference(tmp_path):
    truth = fx.write_mpi3dhp(tmp_path)
    samples = load_mpi3dhp(tmp_path)
    assert len(samples) == 4
    for s in samples:
        _check_common(s, 17)
        assert s.joint_set == "mpi3dhp_17" and s.dataset == "mpi3dhp"
        cam = truth["cameras"][str(s.ids["camera"])]
        ref_cam = _world_to_cam_ref(truth["world"][s.ids["frame"]], cam["R"], cam["t"])
        np.testing.assert_allclose(s.joints_3d_cam_mm, ref_cam, rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(s.keypoints_2d_px, _project_ref(ref_cam, cam["focal"], cam["princpt"]), atol=2e-3)
        img = truth["images"][s.ids["image_id"]]
        assert s.image_path == (tmp_path.resolve() / "images_1k" / "S1" / "Seq2" / "imageSequence" / img["file_name"])
    assert len(load_mpi3dhp(tmp_path, frame_step=3)) == 4
    assert len(load_mpi3dhp(tmp_path, frame_step=2)) == 2


def test_mpi3dhp_joint_order():
    assert MPI3DHP_17_JOINT_NAMES == (
        "Head_top", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
        "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Torso", "Head",
    )


def test_mpi3dhp_missing_camera_field(tmp_path):
    truth = fx.write_mpi3dhp(tmp_path)
    _edit_json(truth["paths"]["camera"], lambda d: d["1"]["2"]["8"].pop("focal"))
    with pytest.raises(DatasetFormatError) as err:
        load_mpi3dhp(tmp_path)
    assert str(err.value) == f'{truth["paths"]["camera"]}: ["1"]["2"]["8"].focal: missing'


# -------------------------------------------------------------------------------------------- 3DPW


def test_3dpw_smpl_and_keypoints(tmp_path):
    truth = fx.write_3dpw(tmp_path)
    samples = load_3dpw(tmp_path, "test")
    assert len(samples) == 3
    for s, ann in zip(samples, truth["annotations"]):
        _check_common(s, 17)
        assert s.joint_set == "coco_17" and s.joints_3d_cam_mm is None
        smpl = s.extras["smpl_param"]
        np.testing.assert_allclose(smpl["pose_rotvecs"], np.reshape(ann["smpl_param"]["pose"], (24, 3)), atol=1e-6)
        np.testing.assert_allclose(smpl["shape_betas"], ann["smpl_param"]["shape"], atol=1e-6)
        np.testing.assert_allclose(smpl["trans_cam_m"], ann["smpl_param"]["trans"], atol=1e-6)
        assert smpl["gender"] == ann["smpl_param"]["gender"]
        assert s.focal_px == pytest.approx((1961.9, 1969.2)) and s.princpt_px == (540.0, 960.0)
        assert s.image_path == tmp_path.resolve() / "imageFiles" / "downtown_walking_00" / f"image_0000{ann['image_id']}.jpg"
        assert s.ids["ann_id"] == ann["id"] and s.ids["person_id"] == ann["person_id"]
    # COCO order from OpenPose-18: nose 0, l_eye 15, r_eye 14, l_ear 17, r_ear 16, l_sho 5, r_sho 2,
    # l_elb 6, r_elb 3, l_wri 7, r_wri 4, l_hip 11, r_hip 8, l_knee 12, r_knee 9, l_ank 13, r_ank 10.
    op_index = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]
    s0 = samples[0]
    np.testing.assert_allclose(s0.keypoints_2d_px[:, 0], op_index)
    np.testing.assert_allclose(s0.keypoints_2d_px[:, 1], np.array(op_index) + 100.0)
    expected_conf = np.minimum(1.0, [truth["openpose"][k][2] for k in op_index])
    np.testing.assert_allclose(s0.keypoints_conf, expected_conf, atol=1e-6)
    assert s0.keypoints_conf[8] == 1.0  # r_elbow = OpenPose 3, score 1.7 clipped
    assert s0.extras["keypoints_source"] == "openpose"
    assert samples[1].extras["keypoints_source"] is None
    np.testing.assert_array_equal(samples[1].keypoints_conf, np.zeros(17))


def test_3dpw_errors(tmp_path):
    truth = fx.write_3dpw(tmp_path)
    path = truth["paths"]["data"]
    _edit_json(path, lambda d: d["annotations"][2]["smpl_param"].update(shape=[0.0] * 9))
    with pytest.raises(DatasetFormatError) as err:
        load_3dpw(tmp_path, "test")
    assert str(err.value) == f"{path}: annotations[2].smpl_param.shape: expected 10 numbers, got 9"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(DatasetFormatError) as err:
        load_3dpw(tmp_path, "test")
    assert str(err.value) == f"{path}: <top level>: expected an object, got a list"
    with pytest.raises(FileNotFoundError, match="3DPW_train.json"):
        load_3dpw(tmp_path, "train")


# ---------------------------------------------------------------------------------- COCO-WholeBody


def test_coco_wholebody_133_order_and_filters(tmp_path, capsys):
    truth = fx.write_coco_wholebody(tmp_path, "val")
    samples = load_coco_wholebody(tmp_path, "val")
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced
    assert [s.ids["ann_id"] for s in samples] == [1, 4]  # crowd (2) and keypoint-less (3) skipped
    counts = [17, 6, 68, 21, 21]
    part_of = np.repeat(np.arange(5), counts)
    j_in_part = np.concatenate([np.arange(n) for n in counts])
    v = j_in_part % 3
    for s in samples:
        _check_common(s, 133)
        assert s.joint_set == "coco_wholebody_133" and s.joints_3d_cam_mm is None and s.focal_px is None
        expected_x = np.where(v > 0, 100.0 * (part_of + 1) + j_in_part, 0.0)
        np.testing.assert_array_equal(s.keypoints_2d_px[:, 0], expected_x)
        np.testing.assert_array_equal(s.keypoints_conf, (v > 0).astype(np.float32))
        np.testing.assert_array_equal(s.extras["keypoints_v"], v)
        np.testing.assert_array_equal(s.extras["righthand_box_xywh_px"], [90.0, 100.0, 16.0, 14.0])
        assert s.extras["face_valid"] is True and s.extras["lefthand_valid"] is False
        assert s.extras["righthand_valid"] is True and s.extras["foot_valid"] is True
    assert samples[0].image_path == tmp_path.resolve() / "images" / "val2017" / "000000397133.jpg"
    assert samples[0].image_hw == (427, 640)
    np.testing.assert_array_equal(samples[1].bbox_xywh_px, [14.0, 20.0, 100.0, 200.0])
    everything = load_coco_wholebody(tmp_path, "val", skip_crowd=False, skip_without_keypoints=False,
                                     image_dir=tmp_path / "val2017")
    assert sorted(s.ids["ann_id"] for s in everything) == [1, 2, 3, 4]
    assert everything[0].image_path.parent == (tmp_path / "val2017").resolve()


def test_coco_wholebody_errors(tmp_path):
    truth = fx.write_coco_wholebody(tmp_path, "val")
    path = truth["paths"]["data"]
    _edit_json(path, lambda d: d["annotations"][0].update(lefthand_kpts=[0.0] * 60))
    with pytest.raises(DatasetFormatError) as err:
        load_coco_wholebody(tmp_path, "val")
    assert str(err.value) == f"{path}: annotations[0].lefthand_kpts: expected shape (21, 3), got (60,)"
    _edit_json(path, lambda d: d["annotations"][3].pop("face_box"))
    _edit_json(path, lambda d: d["annotations"][0].update(lefthand_kpts=[0.0] * 63))
    with pytest.raises(DatasetFormatError, match=re.escape("annotations[3].face_box: missing")):
        load_coco_wholebody(tmp_path, "val")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # truncated download
    with pytest.raises(DatasetFormatError) as err:
        load_coco_wholebody(tmp_path, "val")
    msg = str(err.value)
    assert msg.startswith(f"{path}: <json>: not valid JSON (truncated or corrupt?)") and "\n" not in msg


# ---------------------------------------------------------------------------------------- FreiHAND


def test_freihand_hand_checked_point_and_reference(tmp_path):
    truth = fx.write_freihand(tmp_path)
    samples = load_freihand(tmp_path, "training", load_mano=True)
    assert len(samples) == 3
    s = samples[0]
    # (0.01, -0.02, 0.5) m -> (10, -20, 500) mm; u = 500 * 10 / 500 + 112 = 122, v = 501 * -20 / 500 + 112 = 91.96
    np.testing.assert_allclose(s.joints_3d_cam_mm[0], [10.0, -20.0, 500.0], atol=1e-4)
    np.testing.assert_allclose(s.keypoints_2d_px[0], [122.0, 91.96], atol=1e-4)
    for i, s in enumerate(samples):
        _check_common(s, 21)
        assert s.joint_set == "hand_21" and s.extras["hand_side"] == "right"
        K = truth["K"][i]
        ref_cam = truth["xyz_m"][i] * 1000.0
        np.testing.assert_allclose(s.joints_3d_cam_mm, ref_cam, rtol=1e-6)
        np.testing.assert_allclose(s.keypoints_2d_px, _project_ref(ref_cam, (K[0, 0], K[1, 1]), (K[0, 2], K[1, 2])),
                                   atol=1e-3)
        np.testing.assert_allclose(s.extras["mano_theta_61"], truth["mano"][i, 0], atol=1e-6)
        assert s.focal_px == (K[0, 0], K[1, 1]) and s.image_hw == (224, 224)
        # box: 1.5x the keypoint extent about its centre
        kp = s.keypoints_2d_px.astype(np.float64)
        lo, hi = kp.min(0), kp.max(0)
        np.testing.assert_allclose(s.bbox_xywh_px[2:], 1.5 * (hi - lo), rtol=1e-5)
        np.testing.assert_allclose(s.bbox_xywh_px[:2] + s.bbox_xywh_px[2:] / 2, (lo + hi) / 2, atol=1e-3)
    assert samples[2].image_path == tmp_path.resolve() / "training" / "rgb" / "00000002.jpg"


def test_freihand_versions_and_evaluation(tmp_path):
    fx.write_freihand(tmp_path, n=3)
    samples = load_freihand(tmp_path, versions=("gs", "auto"))
    assert len(samples) == 6
    auto1 = next(s for s in samples if s.ids == {"index": 1, "version": "auto", "image_number": 10})
    assert auto1.image_path.name == "00000010.jpg"  # 1 + 3 * index('auto' = 3)
    gs1 = next(s for s in samples if s.ids["index"] == 1 and s.ids["version"] == "gs")
    np.testing.assert_array_equal(auto1.keypoints_2d_px, gs1.keypoints_2d_px)
    with pytest.raises(ValueError, match="versions"):
        load_freihand(tmp_path, versions=("colour",))
    eval_dir = tmp_path / "eval"
    fx.write_freihand(eval_dir, split="evaluation", n=2, with_mano=False)
    with pytest.raises(ValueError, match="only the 'gs' version"):
        load_freihand(eval_dir, "evaluation", versions=("hom",))
    assert len(load_freihand(eval_dir, "evaluation")) == 2
    (eval_dir / "evaluation_xyz.json").unlink()  # first release: no evaluation GT
    no_gt = load_freihand(eval_dir, "evaluation")
    assert no_gt[0].joints_3d_cam_mm is None and not no_gt[0].keypoints_conf.any()
    np.testing.assert_array_equal(no_gt[0].bbox_xywh_px, [0, 0, 224, 224])


def test_freihand_errors(tmp_path):
    truth = fx.write_freihand(tmp_path)
    xyz_path, k_path = truth["paths"]["xyz"], truth["paths"]["K"]
    _edit_json(xyz_path, lambda d: d[1].pop())
    with pytest.raises(DatasetFormatError) as err:
        load_freihand(tmp_path)
    assert str(err.value) == f"{xyz_path}: [1]: expected shape (21, 3), got (20, 3)"
    _edit_json(xyz_path, lambda d: d.pop())
    with pytest.raises(DatasetFormatError, match="has 2 entries but training_K.json has 3"):
        load_freihand(tmp_path)
    k_path.write_text(json.dumps({"K": []}))
    with pytest.raises(DatasetFormatError) as err:
        load_freihand(tmp_path)
    assert str(err.value) == f"{k_path}: <top level>: expected a list, got an object"


# ------------------------------------------------------------------------------------- InterHand2.6M


def _skeleton_index() -> dict[str, int]:
    lines = [ln.split() for ln in fx.INTERHAND_SKELETON_TXT.splitlines() if ln and not ln.startswith("#")]
    return {name: int(idx) for name, idx, _parent in lines}


HAND21_SKELETON_NAMES = ["wrist"] + [f"{finger}{k}" for finger in ("thumb", "index", "middle", "ring", "pinky")
                                     for k in (1, 2, 3, 4)]


@pytest.mark.parametrize("world_coord_dict", [True, False])
def test_interhand_reorder_and_camera(tmp_path, world_coord_dict):
    truth = fx.write_interhand(tmp_path, "val", world_coord_dict=world_coord_dict)
    samples = load_interhand(tmp_path, "val")
    # ann 10 right; ann 11 left with invalid wrist -> dropped; ann 12 interacting -> right + left
    assert [(s.ids["ann_id"], s.extras["hand_side"]) for s in samples] == [(10, "right"), (12, "right"), (12, "left")]
    skel = _skeleton_index()
    s = samples[0]
    _check_common(s, 21)
    assert s.joint_set == "hand_21" and s.ids["hand_side"] == "right" and s.extras["hand_type"] == "right"
    for m, name in enumerate(HAND21_SKELETON_NAMES):
        k = skel["r_" + name]
        # camrot = R_Z90, campos = (0, 0, -1000): world (k, 2k, 0) -> camera (-2k, k, 1000)
        np.testing.assert_allclose(s.joints_3d_cam_mm[m], [-2.0 * k, k, 1000.0], atol=1e-4)
        np.testing.assert_allclose(s.keypoints_2d_px[m], [500 * -2.0 * k / 1000 + 320, 600 * k / 1000 + 240], atol=1e-4)
    np.testing.assert_array_equal(s.keypoints_conf, np.ones(21))
    assert s.image_path == tmp_path.resolve() / "images" / "val" / truth["images"][0]["file_name"]
    np.testing.assert_array_equal(s.extras["ann_bbox_xywh_px"], [100.0, 100.0, 80.0, 90.0])
    # the box holds every valid keypoint
    lo, hi = s.bbox_xywh_px[:2], s.bbox_xywh_px[:2] + s.bbox_xywh_px[2:]
    assert np.all(s.keypoints_2d_px >= lo - 1e-3) and np.all(s.keypoints_2d_px <= hi + 1e-3)

    right, left = samples[1], samples[2]
    # right thumb4 (index 0) and index3 (index 5) are invalid in annotation 12
    expected = np.ones(21)
    expected[HAND21_SKELETON_NAMES.index("thumb4")] = 0
    expected[HAND21_SKELETON_NAMES.index("index3")] = 0
    np.testing.assert_array_equal(right.keypoints_conf, expected)
    np.testing.assert_array_equal(right.keypoints_2d_px[expected == 0], 0.0)
    world = truth["world"][1]
    cam = truth["cameras"]["0"]
    R, campos = np.array(cam["camrot"]["400262"]), np.array(cam["campos"]["400262"])
    for m, name in enumerate(HAND21_SKELETON_NAMES):
        k = skel["l_" + name]
        ref = _world_to_cam_ref(world[k:k + 1], R, -(R @ campos))[0]
        np.testing.assert_allclose(left.joints_3d_cam_mm[m], ref, atol=1e-3)


def test_interhand_joint_names_follow_skeleton_txt():
    skel = _skeleton_index()
    from_txt = [n[2:] for n, i in sorted(skel.items(), key=lambda kv: kv[1]) if n.startswith("r_")]
    assert [n.lower().replace("_", "") for n in INTERHAND_HAND_JOINT_NAMES] == from_txt
    assert [n.lower().replace("_", "") for n in HAND_21_JOINT_NAMES] == HAND21_SKELETON_NAMES


def test_interhand_errors(tmp_path):
    truth = fx.write_interhand(tmp_path, "val")
    data_path, cam_path = truth["paths"]["data"], truth["paths"]["camera"]
    _edit_json(cam_path, lambda d: d["0"]["campos"].pop("400263"))
    with pytest.raises(DatasetFormatError) as err:
        load_interhand(tmp_path, "val")
    assert str(err.value) == f'{cam_path}: ["0"].campos["400263"]: missing (needed by image id 1)'
    truth = fx.write_interhand(tmp_path, "val")  # fresh files
    _edit_json(data_path, lambda d: d["annotations"][2].update(joint_valid=[1] * 41))
    with pytest.raises(DatasetFormatError) as err:
        load_interhand(tmp_path, "val")
    assert str(err.value) == f"{data_path}: annotations[2].joint_valid: expected 42 numbers, got 41"
    with pytest.raises(FileNotFoundError, match="InterHand2.6M_train_data.json"):
        load_interhand(tmp_path, "train")


# ------------------------------------------------------------------------------------------ factory


def test_load_dataset_factory(tmp_path):
    fx.write_freihand(tmp_path)
    direct = load_freihand(tmp_path, versions=("gs", "hom"))
    via = load_dataset("freihand", tmp_path, versions=("gs", "hom"))
    assert [s.ids for s in via] == [s.ids for s in direct]
    np.testing.assert_array_equal(via[3].keypoints_2d_px, direct[3].keypoints_2d_px)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        load_dataset("mpii", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['subjects'\]"):
        load_dataset("freihand", tmp_path, subjects=[1])


def test_load_dataset_every_kind(tmp_path):
    fx.write_h36m(tmp_path / "h36m")
    fx.write_mpi3dhp(tmp_path / "mpi")
    fx.write_3dpw(tmp_path / "pw3d")
    fx.write_coco_wholebody(tmp_path / "coco")
    fx.write_interhand(tmp_path / "ih", "val")
    got = {
        "h36m": load_dataset("h36m", tmp_path / "h36m", subjects=[1]),
        "mpi3dhp": load_dataset("mpi3dhp", tmp_path / "mpi"),
        "3dpw": load_dataset("3dpw", tmp_path / "pw3d", split="test"),
        "coco_wholebody": load_dataset("coco_wholebody", tmp_path / "coco", split="val"),
        "interhand": load_dataset("interhand", tmp_path / "ih", split="val"),
    }
    for kind, samples in got.items():
        assert samples and all(s.dataset == kind for s in samples)


# ------------------------------------------------------------------ agreement with body.joint_sets


def _normalise(name: str) -> str:
    name = name.replace("R_", "right_").replace("L_", "left_").lower()
    return name.replace("_", "") if name.split("_")[0] in ("thumb", "index", "middle", "ring", "pinky") else name


@pytest.mark.parametrize(
    ("joint_set", "loader_names"),
    [("h36m_17", H36M_17_JOINT_NAMES), ("mpi3dhp_17", MPI3DHP_17_JOINT_NAMES), ("hand_21", HAND_21_JOINT_NAMES)],
)
def test_loader_joint_orders_match_body_joint_sets(joint_set, loader_names):
    joint_sets = pytest.importorskip("neuralannot_cli.body.joint_sets")
    assert tuple(_normalise(n) for n in loader_names) == joint_sets.JOINT_SETS[joint_set].joint_names


def test_coco_orders_match_body_joint_sets():
    joint_sets = pytest.importorskip("neuralannot_cli.body.joint_sets")
    from neuralannot_cli.data.pw3d import COCO_17_JOINT_NAMES

    assert tuple(_normalise(n) for n in COCO_17_JOINT_NAMES) == joint_sets.JOINT_SETS["coco_17"].joint_names
    assert len(joint_sets.JOINT_SETS["coco_wholebody_133"].joint_names) == 133
