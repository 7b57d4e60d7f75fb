"""InterHand2.6M MANO pseudo-GT in the layout of the released ``InterHand2.6M_{split}_MANO_NeuralAnnot.json``.

``{str(capture): {str(frame_idx): {"right"|"left": {"pose": [48], "shape": [10], "trans": [3]} | null}}}``: one
parameter set per (capture, frame, hand) in the WORLD frame (``trans`` in metres, world in mm), the left hand for
the LEFT MANO model. The field brings it into a view with the capture's ``campos`` / ``camrot``:
mks0601/Hand4Whole_RELEASE ``data/InterHand26M/InterHand26M.py`` + ``common/utils/preprocessing.py``
(``process_human_model_output(..., 'mano')``: root pose pre-multiplied by ``R``, forward with the world
``trans``, rotation about the wrist regressed from that mesh, ``+ t / 1000``, ``t = -R campos``) and
facebookresearch/InterHand2.6M ``tool/MANO_world_to_camera/convert.py`` (first method: ``R X + t`` on the world
mesh in mm, as ``tool/MANO_render/render.py``). The readers below follow those steps in float64.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from neuralannot_cli.io.annotate_run import AnnotateConfig, run_annotate
from neuralannot_cli.io.pseudo_gt import (
    ManoRecord,
    read_pseudo_gt,
    record_from_dict,
    record_key,
    record_to_dict,
    write_meta,
    write_pseudo_gt_json,
    write_pseudo_gt_npz,
)

FILE_NAME = "InterHand2.6M_train_MANO_NeuralAnnot.json"
FOCAL = (1241.9, 1242.3)
PRINCPT = (165.4, 257.9)


@pytest.fixture(scope="module")
def mano(standin_dir):
    from neuralannot_cli.body import load_body_model

    return {side: load_body_model("mano", is_rhand=side == "right", model_dir=standin_dir, dtype=torch.float64)
            for side in ("right", "left")}


def _t(a) -> torch.Tensor:
    return torch.tensor(np.array(a, np.float64))[None]


def _rand_rotmat(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _forward(model, root, hand_pose, betas, transl):
    return model(root_rotvec=_t(root), hand_pose_rotvecs=_t(hand_pose), betas=_t(betas), transl_m=_t(transl))


# views: (capture, frame, camera, side, score); (13, 38685, right) is seen by two cameras, the second one wins
VIEWS = [(13, 38685, "400030", "right", 3.0), (13, 38685, "400262", "right", 1.0), (13, 38685, "400030", "left", 2.0),
         (0, 5, "400262", "right", 0.5)]


def _records(mano, rng: np.random.Generator) -> list[ManoRecord]:
    cams = {c: (_rand_rotmat(rng), rng.normal(0, 800, 3)) for c in ("400030", "400262")}  # camrot, campos (mm)
    recs = []
    for ann_id, (capture, frame, camera, side, score) in enumerate(VIEWS):
        camrot, campos_mm = cams[camera]
        betas = rng.normal(0, 1, 10)
        rest_wrist = mano[side](betas=_t(betas)).kinematic_joints[0, 0].numpy()
        ids = {"image_id": 100 + ann_id, "ann_id": ann_id, "capture": capture, "camera": camera, "frame": frame,
               "hand_side": side}
        recs.append(ManoRecord(
            key=record_key("interhand", ids, side), ids=ids, hand_type=side, root_rotvec=rng.normal(0, 1.0, 3),
            hand_pose_rotvecs=rng.normal(0, 0.3, (15, 3)), betas=betas,
            transl_m=np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), rng.uniform(0.5, 1.5)]),
            focal_px=FOCAL, princpt_px=PRINCPT, keypoints_2d_px=rng.uniform(0, 300, (21, 2)), joint_set="hand_21",
            cam_rotmat=camrot, cam_trans_mm=-camrot @ campos_mm, rest_wrist_m=rest_wrist, score=score))
    return recs


def _campos_camrot(rec: ManoRecord) -> tuple[np.ndarray, np.ndarray]:
    """What ``InterHand2.6M_{split}_camera.json`` holds for the record's view."""
    camrot = rec.cam_rotmat
    return -camrot.T @ rec.cam_trans_mm, camrot


def _kept(recs: list[ManoRecord]) -> list[ManoRecord]:
    return [recs[1], recs[2], recs[3]]


# ------------------------------------------------------------------------------------------ field readers


def test_field_loaders_read_our_world_frame_file_into_each_camera(tmp_path, mano):
    recs = _records(mano, np.random.default_rng(0))
    path = tmp_path / FILE_NAME
    assert write_pseudo_gt_json(recs, path, dataset_kind="interhand") == [path]
    with open(path) as f:
        mano_params = json.load(f)
    assert sorted(mano_params) == ["0", "13"] and mano_params["0"]["5"]["left"] is None

    for rec in _kept(recs):
        capture, frame_idx, hand_type = rec.ids["capture"], rec.ids["frame"], rec.hand_type
        campos, camrot = _campos_camrot(rec)
        ref = _forward(mano[hand_type], rec.root_rotvec, rec.hand_pose_rotvecs, rec.betas, rec.transl_m)
        ref_mesh, ref_joints = ref.vertices[0].numpy(), ref.joints[0].numpy()
        # Hand4Whole's mano.joint_regressor (its 16 MANO rows); rows renormalised in float64: the stand-in's
        # float32 rows sum to 1 +- 1e-7, which alone would move a regressed joint by that times the ~1 m translation
        regressor = mano[hand_type].layer.J_regressor.numpy().astype(np.float64)
        regressor /= regressor.sum(1, keepdims=True)

        # --- as Hand4Whole InterHand26M.py + process_human_model_output('mano') read it (float64 here) ---
        try:
            mano_param = mano_params[str(capture)][str(frame_idx)][hand_type]
        except KeyError:
            mano_param = None
        assert mano_param is not None, (capture, frame_idx, hand_type)
        R = np.array(camrot, np.float64).reshape(3, 3)
        t = -R @ np.array(campos, np.float64).reshape(3) / 1000  # -R campos, mm -> m
        pose = np.array(mano_param["pose"], np.float64).reshape(-1, 3)
        root_pose = cv2.Rodrigues(R @ cv2.Rodrigues(pose[0])[0])[0].reshape(3)
        out = _forward(mano[hand_type], root_pose, pose[1:], mano_param["shape"], mano_param["trans"])
        mesh_cam = out.vertices[0].numpy()
        joint_cam = regressor @ mesh_cam
        root_cam = joint_cam[0, None]  # 'Wrist'
        joint_cam = joint_cam - root_cam + (R @ root_cam.T).T + t
        mesh_cam = mesh_cam - root_cam + (R @ root_cam.T).T + t
        # --- end ---
        np.testing.assert_allclose(mesh_cam, ref_mesh, rtol=0, atol=1e-10)
        np.testing.assert_allclose(joint_cam, regressor @ ref_mesh, rtol=0, atol=1e-10)

        # --- as convert.py's first method / render.py: the world mesh (mm) through the extrinsics ---
        out = _forward(mano[hand_type], pose[0], pose[1:], mano_param["shape"], mano_param["trans"])
        t_mm = -R @ np.array(campos, np.float64)
        mesh_mm = (R @ (out.vertices[0].numpy() * 1000).T).T + t_mm
        joints_mm = (R @ (out.joints[0].numpy() * 1000).T).T + t_mm
        # --- end ---
        # 1e-8 m: the stand-in's skinning weights sum to 1 +- 1.5e-8 (float32 values), so posing with the world
        # root instead of the camera root is rigid only to that times the ~0.2 m lever arm
        np.testing.assert_allclose(mesh_mm / 1000, ref_mesh, rtol=0, atol=1e-8)
        np.testing.assert_allclose(joints_mm / 1000, ref_joints, rtol=0, atol=1e-8)
        assert np.abs(ref_joints).max() > 0.05  # not trivially zero
        assert mano_param["neuralannot"]["camera"] == rec.ids["camera"]


def test_our_reader_round_trips_our_file(tmp_path, mano):
    recs = _records(mano, np.random.default_rng(1))
    path = tmp_path / FILE_NAME
    write_pseudo_gt_json(recs, path, dataset_kind="interhand")
    other = tmp_path / "hands.json"  # no telling file name: the nesting says InterHand2.6M
    other.write_bytes(path.read_bytes())
    for back in (read_pseudo_gt(path), read_pseudo_gt(other)):
        assert sorted(back) == sorted(r.key for r in _kept(recs))
        for rec in _kept(recs):
            got, want = record_to_dict(back[rec.key]), record_to_dict(rec)
            for name in ("root_rotvec", "transl_m"):  # through the world frame and back: float64 rounding
                np.testing.assert_allclose(got.pop(name), want.pop(name), rtol=0, atol=1e-12)
            assert got == want
    # the progress log (record dicts) and the npz keep the extrinsics too
    for rec in recs:
        assert record_to_dict(record_from_dict(json.loads(json.dumps(record_to_dict(rec))))) == record_to_dict(rec)
    write_pseudo_gt_npz(recs, tmp_path / "hands.npz")
    back = read_pseudo_gt(tmp_path / "hands.npz")
    assert all(record_to_dict(back[r.key]) == record_to_dict(r) for r in recs)


def test_annotate_writes_interhand_in_the_world_frame(tmp_path, mano, standin_dir):
    from tests import fixtures_formats as fx

    truth = fx.write_interhand(tmp_path / "ih", "val")
    dataset_json = truth["paths"]["data"]
    predictor = FakePredictor("hand")
    out = tmp_path / "InterHand2.6M_val_MANO_NeuralAnnot.json"
    run_annotate(AnnotateConfig(dataset_json=dataset_json, checkpoint=None, out=out, model_dir=standin_dir),
                 predictor)
    with open(out) as f:
        mano_params = json.load(f)
    assert {(c, fr, side) for c in mano_params for fr in mano_params[c] for side in ("right", "left")
            if mano_params[c][fr][side] is not None} == {("0", "0", "right"), ("0", "1", "right"), ("0", "1", "left")}
    cams = truth["cameras"]["0"]
    back = read_pseudo_gt(out)
    assert sorted(back) == ["10/right", "12/left", "12/right"]
    for key, rec in back.items():
        want = predictor.params[key]
        np.testing.assert_allclose(rec.root_rotvec, want["root"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(rec.transl_m, want["transl"], rtol=0, atol=1e-12)
        camera = rec.ids["camera"]
        np.testing.assert_allclose(rec.cam_trans_mm, -np.array(cams["camrot"][camera]) @ cams["campos"][camera],
                                   atol=1e-9)
        side = rec.hand_type
        np.testing.assert_allclose(rec.rest_wrist_m, mano[side](betas=_t(want["betas"])).kinematic_joints[0, 0],
                                   rtol=0, atol=1e-6)  # float32 stand-in on the annotate side
    assert json.loads(out.with_name(out.stem + ".meta.json").read_text())["frame"] == "world"


@dataclass(frozen=True)
class _Prediction:
    root_rotvec: np.ndarray
    pose_rotvecs: np.ndarray
    betas: np.ndarray
    transl_cam_m: np.ndarray
    focal_px: np.ndarray
    princpt_px: np.ndarray
    mirrored: np.ndarray


class FakePredictor:
    """A Predictor that needs no image: per-sample parameters drawn from the record key (LEFT-MANO parameters
    for left hands), kept in ``params`` for the test to compare against. ``part``: ``'hand'`` (MANO, 15 joints)
    or ``'body'`` (SMPL-X, 21 joints)."""

    method = "fake"
    needs_images = False
    input_size = 0
    is_standin = True

    def __init__(self, part: str = "hand", transl_m: tuple[float, float, float] = (0.01, -0.02, 1.0)) -> None:
        self.part = part
        self.joint_set = "hand_21" if part == "hand" else "coco_wholebody_23"
        self._joints = 15 if part == "hand" else 21
        self._transl = np.asarray(transl_m, np.float64)
        self.params: dict[str, dict[str, np.ndarray]] = {}

    def describe(self):
        return {}

    def predict_samples(self, samples, keys, mirrored, batch):
        for k in keys:
            rng = np.random.default_rng(list(k.encode()))
            self.params[k] = {"root": rng.normal(0, 1, 3), "pose": rng.normal(0, 0.2, (self._joints, 3)),
                              "betas": rng.normal(0, 1, 10), "transl": self._transl.copy()}
        p = [self.params[k] for k in keys]
        return _Prediction(root_rotvec=np.stack([x["root"] for x in p]), pose_rotvecs=np.stack([x["pose"] for x in p]),
                           betas=np.stack([x["betas"] for x in p]), transl_cam_m=np.stack([x["transl"] for x in p]),
                           focal_px=np.array([s.focal_px for s in samples]),
                           princpt_px=np.array([s.princpt_px for s in samples]), mirrored=np.array(mirrored))


# ------------------------------------------------------------------------------------ foreign / bad files


def _released(rng: np.random.Generator) -> dict:
    def hand():
        return {"pose": rng.normal(0, 0.3, 48).tolist(), "shape": rng.normal(0, 1, 10).tolist(),
                "trans": rng.normal(0, 0.3, 3).tolist()}

    return {"13": {"38685": {"right": hand(), "left": None}, "38686": {"right": hand(), "left": hand()}},
            "0": {"5": {"right": None, "left": hand()}}}


def test_released_file_is_read_in_the_world_frame(tmp_path, mano):
    released = _released(np.random.default_rng(2))
    path = tmp_path / "InterHand2.6M_val_MANO_NeuralAnnot.json"
    path.write_text(json.dumps(released))
    back = read_pseudo_gt(path)
    assert sorted(back) == ["0/5/left", "13/38685/right", "13/38686/left", "13/38686/right"]
    rec = back["13/38686/left"]
    assert rec.frame == "world" and rec.hand_type == "left"
    assert rec.ids == {"capture": 13, "frame": 38686, "hand_side": "left"}
    p = released["13"]["38686"]["left"]
    np.testing.assert_array_equal(np.concatenate([rec.root_rotvec, rec.hand_pose_rotvecs.reshape(-1)]), p["pose"])
    np.testing.assert_array_equal(rec.betas, p["shape"])
    np.testing.assert_array_equal(rec.transl_m, p["trans"])
    assert rec.cam_rotmat is None and rec.rest_wrist_m is None
    # the nesting alone (no telling name, no sidecar) says InterHand2.6M; dataset_kind too
    other = tmp_path / "hands.json"
    other.write_text(json.dumps(released))
    assert read_pseudo_gt(other).keys() == back.keys()
    assert read_pseudo_gt(other, dataset_kind="interhand").keys() == back.keys()


def test_interhand_file_of_the_ann_id_layout_still_reads(tmp_path, mano):
    recs = _records(mano, np.random.default_rng(3))
    path = tmp_path / "old.json"
    write_pseudo_gt_json(recs, path, dataset_kind="coco_wholebody")  # {ann_id: {right, left}}: the old layout
    write_meta(path, {"dataset_kind": "interhand"})
    back = read_pseudo_gt(path)
    assert sorted(back) == sorted(r.key for r in recs)
    for r in recs:  # camera frame as written; that layout has no extrinsics
        want = {**record_to_dict(r), "cam_rotmat": None, "cam_trans_mm": None, "rest_wrist_m": None}
        assert record_to_dict(back[r.key]) == want


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["13"]["38685"]["right"].update(pose=[0.0] * 47),
     r"bad\.json: \['13'\]\['38685'\]\.right\.pose: expected 48 numbers, got 47$"),
    (lambda d: d["13"]["38685"]["right"].pop("shape"), r"bad\.json: \['13'\]\['38685'\]\.right\.shape: missing$"),
    (lambda d: d["13"]["38685"]["right"].update(trans=[0.0, 1.0]),
     r"bad\.json: \['13'\]\['38685'\]\.right\.trans: expected shape \(3,\), got \(2,\)$"),
    (lambda d: d["13"]["38685"].update(both=None),
     r"bad\.json: \['13'\]\['38685'\]\.both: expected only 'right' and 'left' hands$"),
    (lambda d: d["0"]["5"].update(left=[1, 2]), r"bad\.json: \['0'\]\['5'\]\.left: expected an object or null, got list$"),
    (lambda d: d["0"].update({"5": 7}), r"bad\.json: \['0'\]\['5'\]: expected an object, got int$"),
])
def test_bad_file_gives_one_line_error_naming_file_and_field(tmp_path, edit, message):
    data = _released(np.random.default_rng(4))
    edit(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        read_pseudo_gt(bad, dataset_kind="interhand")
    assert "\n" not in str(info.value)


def test_writer_needs_extrinsics_and_ids(tmp_path, mano):
    rec = _records(mano, np.random.default_rng(5))[0]
    fields = {k: getattr(rec, k) for k in ("key", "ids", "hand_type", "root_rotvec", "hand_pose_rotvecs", "betas",
                                           "transl_m", "focal_px", "princpt_px")}
    with pytest.raises(ValueError, match=r"rest_wrist_m are needed for the world-frame layout of InterHand2\.6M"):
        write_pseudo_gt_json([ManoRecord(**fields)], tmp_path / "a.json", dataset_kind="interhand")
    no_ids = ManoRecord(**{**fields, "ids": {"ann_id": 0}}, cam_rotmat=rec.cam_rotmat, cam_trans_mm=rec.cam_trans_mm,
                        rest_wrist_m=rec.rest_wrist_m)
    with pytest.raises(ValueError, match=r"ids: missing \['capture', 'frame'\] needed by the interhand layout"):
        write_pseudo_gt_json([no_ids], tmp_path / "a.json", dataset_kind="interhand")
    assert not (tmp_path / "a.json").exists()
