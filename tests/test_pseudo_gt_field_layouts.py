"""Pseudo-GT files against the layouts of the released NeuralAnnot files that other loaders read.

- 3DPW SMPL-X (``3DPW_{split}_SMPLX_NeuralAnnot.json``): keyed by ``str(ann_id)``, each entry the FLAT
  ``{"root_pose", "body_pose", "shape", "trans"}`` (no ``smplx_param`` / ``cam_param`` wrapper; intrinsics come
  from ``3DPW_{split}.json`` ``images[].cam_param``), as read by mks0601/NeuralAnnot_RELEASE ``3DPW/demo_smplx.py``.
- COCO SMPL-X files without the ``lhand_valid`` / ``rhand_valid`` / ``face_valid`` flags inside ``smplx_param``
  (IDEA-Research/OSX ``data/MSCOCO/MSCOCO.py`` fills them from COCO-WholeBody when absent): the hand / face
  parameters the file holds must not be dropped on reading.
- FreiHAND MANO (in place of mks0601's ``freihand_train_data.json``): keyed by ``str(db_idx)``, FreiHAND's annotation
  index, which Hand4Whole / I2L-MeshNet / Pose2Mesh look up as ``data[str(img['db_idx'])]`` for every version of an
  image (``image_number = index + 32560 * version``, lmb-freiburg/freihand ``utils/fh_utils.py``).
"""

from __future__ import annotations

import json

import numpy as np

from neuralannot_cli.io.pseudo_gt import SmplxRecord, read_pseudo_gt, write_pseudo_gt_json

FOCAL = (1961.9, 1969.2)
PRINCPT = (540.0, 960.0)


def _record(aid: int, rng: np.random.Generator, *, hands: bool = True) -> SmplxRecord:
    return SmplxRecord(
        key=str(aid), ids={"ann_id": aid, "image_id": 0, "sequence": "downtown_walking_00"},
        root_rotvec=rng.normal(0, 0.5, 3), body_pose_rotvecs=rng.normal(0, 0.2, (21, 3)),
        betas=rng.normal(0, 1, 10), transl_m=np.array([0.1 * aid, 0.2, 4.0]), focal_px=FOCAL, princpt_px=PRINCPT,
        lhand_pose_rotvecs=rng.normal(0, 0.2, (15, 3)) if hands else None,
        rhand_pose_rotvecs=rng.normal(0, 0.2, (15, 3)) if hands else None,
        jaw_rotvec=rng.normal(0, 0.1, 3) if hands else None, expression=rng.normal(0, 0.5, 10) if hands else None,
        keypoints_2d_px=rng.uniform(0, 1000, (23, 2)), joint_set="coco_wholebody_23", score=1.5,
    )


def test_3dpw_file_has_the_flat_neuralannot_layout(tmp_path):
    rng = np.random.default_rng(0)
    recs = [_record(0, rng), _record(1, rng, hands=False)]
    path = tmp_path / "3DPW_train_SMPLX_NeuralAnnot.json"
    write_pseudo_gt_json(recs, path, dataset_kind="3dpw")

    # --- as NeuralAnnot_RELEASE 3DPW/demo_smplx.py reads it ---
    with open(path) as f:
        smplx_params = json.load(f)
    for rec in recs:
        smplx_param = smplx_params[str(rec.ids["ann_id"])]
        root_pose, body_pose = smplx_param["root_pose"], smplx_param["body_pose"]
        shape, trans = smplx_param["shape"], smplx_param["trans"]
        # --- end of the field's code ---
        np.testing.assert_array_equal(np.array(root_pose), rec.root_rotvec)
        np.testing.assert_array_equal(np.array(body_pose).reshape(21, 3), rec.body_pose_rotvecs)
        np.testing.assert_array_equal(np.array(shape), rec.betas)
        np.testing.assert_array_equal(np.array(trans), rec.transl_m)

    back = read_pseudo_gt(path)  # our own file: exact round trip, intrinsics kept under "neuralannot"
    assert sorted(back) == ["0", "1"]
    for rec in recs:
        got = back[rec.key]
        for name in ("root_rotvec", "body_pose_rotvecs", "betas", "transl_m", "focal_px", "princpt_px",
                     "keypoints_2d_px"):
            np.testing.assert_array_equal(getattr(got, name), getattr(rec, name))
        for name in ("lhand_pose_rotvecs", "rhand_pose_rotvecs", "jaw_rotvec", "expression"):
            want = getattr(rec, name)
            assert (getattr(got, name) is None) == (want is None)
            if want is not None:
                np.testing.assert_array_equal(getattr(got, name), want)
        assert got.ids == rec.ids and got.score == rec.score


def test_released_3dpw_file_is_read(tmp_path):
    rng = np.random.default_rng(1)
    released = {str(aid): {"root_pose": rng.normal(0, 0.5, 3).tolist(), "body_pose": rng.normal(0, 0.2, 63).tolist(),
                           "shape": rng.normal(0, 1, 10).tolist(), "trans": [0.1, 0.2, 4.0 + aid]}
                for aid in (0, 5)}
    path = tmp_path / "3DPW_validation_SMPLX_NeuralAnnot.json"
    path.write_text(json.dumps(released))
    back = read_pseudo_gt(path)
    assert sorted(back) == ["0", "5"]
    rec = back["5"]
    assert rec.ids == {"ann_id": 5} and rec.frame == "camera"
    np.testing.assert_array_equal(rec.body_pose_rotvecs.reshape(-1), released["5"]["body_pose"])
    np.testing.assert_array_equal(rec.transl_m, released["5"]["trans"])
    assert rec.lhand_pose_rotvecs is None and rec.jaw_rotvec is None
    assert read_pseudo_gt(path, dataset_kind="3dpw").keys() == back.keys()


def test_coco_file_without_valid_flags_keeps_hands_and_face(tmp_path):
    rng = np.random.default_rng(2)
    p = {"root_pose": rng.normal(0, 0.5, 3).tolist(), "body_pose": rng.normal(0, 0.2, 63).tolist(),
         "lhand_pose": rng.normal(0, 0.2, 45).tolist(), "rhand_pose": rng.normal(0, 0.2, 45).tolist(),
         "jaw_pose": rng.normal(0, 0.1, 3).tolist(), "shape": rng.normal(0, 1, 10).tolist(),
         "expr": rng.normal(0, 0.5, 10).tolist(), "trans": [0.0, 0.1, 5.0]}
    path = tmp_path / "MSCOCO_train_SMPLX.json"
    path.write_text(json.dumps({"476384": {"smplx_param": p, "cam_param": {"focal": [5000.0, 5000.0],
                                                                           "princpt": [320.0, 240.0]}}}))
    rec = read_pseudo_gt(path)["476384"]
    np.testing.assert_array_equal(rec.lhand_pose_rotvecs.reshape(-1), p["lhand_pose"])
    np.testing.assert_array_equal(rec.rhand_pose_rotvecs.reshape(-1), p["rhand_pose"])
    np.testing.assert_array_equal(rec.jaw_rotvec, p["jaw_pose"])
    np.testing.assert_array_equal(rec.expression, p["expr"])

    # explicit false flags still mean "not estimated" (our writer's zeros)
    p_false = dict(p, lhand_valid=False, rhand_valid=True, face_valid=False)
    path.write_text(json.dumps({"1": {"smplx_param": p_false, "cam_param": {"focal": [1.0, 1.0],
                                                                            "princpt": [0.0, 0.0]}}}))
    rec = read_pseudo_gt(path)["1"]
    assert rec.lhand_pose_rotvecs is None and rec.jaw_rotvec is None and rec.expression is None
    assert rec.rhand_pose_rotvecs is not None


def test_annotate_3dpw_writes_the_released_layout(tmp_path, standin_dir):
    """`neuralannot annotate 3DPW_test.json` (kind inferred from the name, as evaluate does) writes the flat
    3DPW_test_SMPLX_NeuralAnnot.json that NeuralAnnot_RELEASE's 3DPW demo reads, keyed by annotation id."""
    from neuralannot_cli.io.annotate_run import AnnotateConfig, infer_dataset, run_annotate
    from tests import fixtures_formats as fx
    from tests.test_pseudo_gt_interhand import FakePredictor

    fx.write_3dpw(tmp_path / "pw3d", "test")
    dataset_json = tmp_path / "pw3d" / "3DPW_test.json"
    assert infer_dataset(dataset_json)[0] == "3dpw"
    predictor = FakePredictor("body", transl_m=(0.1, -0.2, 4.0))
    out = tmp_path / "3DPW_test_SMPLX_NeuralAnnot.json"
    run_annotate(AnnotateConfig(dataset_json=dataset_json, checkpoint=None, out=out, model_dir=standin_dir),
                 predictor)
    smplx_params = json.loads(out.read_text())
    assert sorted(smplx_params) == ["0", "1", "2"]
    for aid, smplx_param in smplx_params.items():  # as NeuralAnnot_RELEASE 3DPW/demo_smplx.py reads it
        want = predictor.params[aid]
        np.testing.assert_allclose(np.array(smplx_param["root_pose"]), want["root"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.array(smplx_param["body_pose"]).reshape(21, 3), want["pose"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.array(smplx_param["shape"]), want["betas"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.array(smplx_param["trans"]), want["transl"], rtol=0, atol=1e-12)
    back = read_pseudo_gt(out)
    assert sorted(back) == ["0", "1", "2"] and back["2"].frame == "camera"
    np.testing.assert_allclose(back["0"].focal_px, [1961.9, 1969.2])


def test_freihand_file_is_keyed_by_db_idx_one_entry_per_sample(tmp_path):
    from neuralannot_cli.io.pseudo_gt import ManoRecord, record_key

    n = 32560
    rng = np.random.default_rng(3)

    def rec(index: int, version: int, score: float) -> ManoRecord:
        ids = {"index": index, "version": ("gs", "hom", "sample", "auto")[version], "image_number": index + n * version}
        return ManoRecord(key=record_key("freihand", ids), ids=ids, hand_type="right", root_rotvec=rng.normal(0, 1, 3),
                          hand_pose_rotvecs=rng.normal(0, 0.3, (15, 3)), betas=rng.normal(0, 1, 10),
                          transl_m=[0.0, 0.0, 0.5], focal_px=FOCAL, princpt_px=PRINCPT, score=score)

    # index 3: gs and hom (gs kept although hom scores better); index 5: hom and auto only (lowest score kept)
    recs = [rec(3, 1, 0.5), rec(3, 0, 2.0), rec(5, 3, 1.0), rec(5, 1, 4.0)]
    path = tmp_path / "freihand_train_data.json"
    write_pseudo_gt_json(recs, path, dataset_kind="freihand")
    data = json.loads(path.read_text())
    assert sorted(data, key=int) == ["3", "5"]  # what data[str(img['db_idx'])] asks for, for every version
    np.testing.assert_allclose(data["3"]["mano_param"]["pose"][:3], recs[1].root_rotvec)
    np.testing.assert_allclose(data["5"]["mano_param"]["pose"][:3], recs[2].root_rotvec)
    back = read_pseudo_gt(path, dataset_kind="freihand")  # ours: the kept records under their own keys
    assert sorted(back) == sorted([recs[1].key, recs[2].key]) == ["3", str(5 + 3 * n)]
    for entry in data.values():
        entry.pop("neuralannot")
    path.write_text(json.dumps(data))
    foreign = read_pseudo_gt(path, dataset_kind="freihand")  # a released-style file: keys are gs images
    assert sorted(foreign) == ["3", "5"] and foreign["5"].ids == {"image_number": 5, "index": 5}
