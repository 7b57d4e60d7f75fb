"""3DPW ground truth: GT SMPL parameters -> SMPL of the person's gender -> Human3.6M regressor joints (mm, camera
frame), against an independent float64 numpy SMPL; the evaluation protocol on it; ``neuralannot evaluate direct``."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.data.pw3d import load_3dpw
from neuralannot_cli.data.pw3d_joints import smpl_params_to_joints_cam_mm, with_gt_joints
from neuralannot_cli.io.pseudo_gt import SmplxRecord, record_key, write_pseudo_gt_json
from tests import fixtures_formats as fx
from tests.test_body_smpl import _numpy_smpl

runner = CliRunner(env={"COLUMNS": "250"})


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _reference_joints_mm(standin_dir: Path, ann: dict) -> np.ndarray:
    """numpy float64: SMPL_{gender} mesh of the annotation's parameters, then J_regressor_h36m_correct, in mm."""
    p = ann["smpl_param"]
    with open(standin_dir / "smpl" / f"SMPL_{p['gender'].upper()}.pkl", "rb") as fh:
        data = pickle.load(fh, encoding="latin1")  # the stand-in: plain numpy
    pose = np.asarray(p["pose"], dtype=np.float64).reshape(24, 3)
    vertices, _ = _numpy_smpl(data, pose[0], pose[1:], np.asarray(p["shape"], np.float64),
                              np.asarray(p["trans"], np.float64))
    regressor = np.load(standin_dir / "smpl" / "J_regressor_h36m_correct.npy").astype(np.float64)
    return regressor @ vertices * 1000.0


@pytest.fixture()
def pw3d(tmp_path: Path) -> tuple[Path, dict]:
    truth = fx.write_3dpw(tmp_path)
    return tmp_path, truth


def test_gt_joints_match_numpy_smpl_for_both_genders(pw3d, standin_dir):
    root, truth = pw3d
    samples = with_gt_joints(load_3dpw(root, "test"), model_dir=standin_dir)
    assert {a["smpl_param"]["gender"] for a in truth["annotations"]} == {"male", "female"}
    for s, ann in zip(samples, truth["annotations"]):
        ref = _reference_joints_mm(standin_dir, ann)
        assert s.joint_set == "h36m_17" and s.joints_3d_cam_mm.shape == (17, 3)
        np.testing.assert_allclose(s.joints_3d_cam_mm, ref, atol=2e-3, rtol=0)  # float32 storage of ~4000 mm
        assert 3000 < ref[:, 2].min() and ref[:, 2].max() < 5000  # trans z = 4 m: millimetres, camera frame
        # 2D keypoints: the projection of the same joints with the image's cam_param
        cam = next(i for i in truth["images"] if i["id"] == ann["image_id"])["cam_param"]
        proj = ref[:, :2] / ref[:, 2:] * np.asarray(cam["focal"]) + np.asarray(cam["princpt"])
        np.testing.assert_allclose(s.keypoints_2d_px, proj, atol=1e-2, rtol=0)
        np.testing.assert_array_equal(s.keypoints_conf, np.ones(17, np.float32))
        assert s.extras["keypoints_source"] == "smpl_gt"
        assert s.extras["smpl_param"]["gender"] == ann["smpl_param"]["gender"]
    # the loader's COCO-17 OpenPose keypoints are kept beside, with their own source
    raw = load_3dpw(root, "test")
    np.testing.assert_array_equal(samples[0].extras["coco_17"]["keypoints_2d_px"], raw[0].keypoints_2d_px)
    assert samples[0].extras["coco_17"]["source"] == "openpose" and samples[1].extras["coco_17"]["source"] is None
    # the genders really differ: the same parameters through the other gender's SMPL move the joints
    swapped = [dict(s.extras["smpl_param"], gender="female") for s in samples[:1]]
    other = smpl_params_to_joints_cam_mm(swapped, model_dir=standin_dir)
    assert np.abs(other[0] - samples[0].joints_3d_cam_mm).max() > 5.0


def test_float32_and_batching_agree_with_float64(pw3d, standin_dir):
    root, _ = pw3d
    params = [s.extras["smpl_param"] for s in load_3dpw(root, "test")]
    ref = smpl_params_to_joints_cam_mm(params, model_dir=standin_dir)
    chunked = smpl_params_to_joints_cam_mm(params, model_dir=standin_dir, chunk=1)
    f32 = smpl_params_to_joints_cam_mm(params, model_dir=standin_dir, dtype=torch.float32)
    np.testing.assert_allclose(chunked, ref, atol=1e-9)
    np.testing.assert_allclose(f32, ref, atol=0.05)
    with pytest.raises(ValueError, match=r"3DPW person 0: smpl_param.shape_betas must have shape \(10,\), got \(9,\)"):
        smpl_params_to_joints_cam_mm([dict(params[0], shape_betas=np.zeros(9))], model_dir=standin_dir)


def test_missing_regressor_is_one_line(pw3d, standin_dir, tmp_path):
    root, _ = pw3d
    models = tmp_path / "models"
    (models / "smpl").mkdir(parents=True)
    for g in ("NEUTRAL", "MALE", "FEMALE"):
        shutil.copy(standin_dir / "smpl" / f"SMPL_{g}.pkl", models / "smpl")
    with pytest.raises(FileNotFoundError) as err:
        with_gt_joints(load_3dpw(root, "test"), model_dir=models)
    msg = str(err.value)
    assert "\n" not in msg and "J_regressor_h36m_correct.npy" in msg and "SMPL_MALE.pkl" in msg


def test_perfect_prediction_scores_zero_and_mesh_is_not_compared(pw3d, standin_dir):
    from neuralannot_cli.evaluate.direct import joint_errors_mm, load_ground_truth
    from neuralannot_cli.evaluate.indirect import score_predictions

    root, truth = pw3d
    kind, gts = load_ground_truth(root / "3DPW_test.json", model_dir=standin_dir)
    assert kind == "3dpw" and sorted(gts) == ["0", "1", "2"]
    keys = sorted(gts)
    gt = torch.tensor(np.stack([gts[k].joints_3d_cam_mm for k in keys]))
    assert all(gts[k].joint_set == "h36m_17" and gts[k].params_cam is None for k in keys)
    mp, pa, w, names = joint_errors_mm(gt.clone(), gt, "h36m_17")
    assert len(names) == 14 and "pelvis" not in names and float(mp.max()) == 0.0 and float(pa.max()) < 1e-9
    shifted = gt + torch.tensor([100.0, -50.0, 30.0], dtype=gt.dtype)  # a root offset is not an error
    mp, pa, _, _ = joint_errors_mm(shifted, gt, "h36m_17")
    assert float(mp.max()) < 1e-9 and float(pa.max()) < 1e-9
    n = len(keys)
    zeros = torch.zeros(n, 1, 3, dtype=torch.float64)
    res = score_predictions(gt.clone(), zeros, zeros[:, 0], gt, keys, gts, "body", None)
    assert res["mpjpe_mm"] == 0.0 and res["pa_mpjpe_mm"] < 1e-9
    assert np.isnan(res["mpvpe_mm"]) and np.isnan(res["pa_mpvpe_mm"])  # SMPL GT vs SMPL-X: not comparable


def test_cli_evaluate_direct_on_3dpw(pw3d, standin_dir, tmp_path):
    from neuralannot_cli.cli.main import app

    root, truth = pw3d
    rng = np.random.default_rng(0)
    recs = []
    for ann in truth["annotations"]:
        p = ann["smpl_param"]
        cam = next(i for i in truth["images"] if i["id"] == ann["image_id"])["cam_param"]
        ids = {"ann_id": ann["id"]}
        recs.append(SmplxRecord(key=record_key("3dpw", ids), ids=ids, root_rotvec=np.asarray(p["pose"][:3]),
                                body_pose_rotvecs=np.asarray(p["pose"][3:66]).reshape(21, 3),
                                betas=rng.normal(0, 0.5, 10), transl_m=np.asarray(p["trans"]),
                                focal_px=cam["focal"], princpt_px=cam["princpt"]))
    pgt = tmp_path / "3DPW_test_SMPLX_NeuralAnnot.json"
    write_pseudo_gt_json(recs, pgt, dataset_kind="3dpw")
    ds = str(root / "3DPW_test.json")
    res = runner.invoke(app, ["evaluate", "direct", str(pgt), "--dataset", ds, "--out", str(tmp_path / "rep"),
                              "--model-dir", str(standin_dir)])
    out = _plain(res.output)
    assert res.exit_code == 0, out
    m = json.loads((tmp_path / "rep" / "report.json").read_text())["methods"][0]
    assert m["num_matched"] == m["num_3d"] == 3 and m["num_mesh"] == 0 and m["mpvpe_mm"] is None
    assert 0 < m["pa_mpjpe_mm"] <= m["mpjpe_mm"] < 500 and len(m["per_joint"]["names"]) == 14
    assert m["error_2d_px"] is not None
    # without the SMPL Human3.6M regressor: one line naming it
    models = tmp_path / "models"
    shutil.copytree(standin_dir, models)
    (models / "smpl" / "J_regressor_h36m_correct.npy").unlink()
    res = runner.invoke(app, ["evaluate", "direct", str(pgt), "--dataset", ds, "--out", str(tmp_path / "rep2"),
                              "--model-dir", str(models)])
    out = _plain(res.output)
    assert res.exit_code == 1 and "J_regressor_h36m_correct.npy" in out and "Traceback" not in out


# ---------------------------------------------------------------------------------------------------
# neuralannot synth --kind 3dpw


def _digest(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth_pw3d(standin_dir, tmp_path_factory):
    from neuralannot_cli.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("pw3d_synth")
    return generate(SynthConfig(kind="3dpw", out_dir=out, count=20, image_size=128, seed=5, split="test",
                                model_dir=standin_dir, background="green"))


def test_synth_3dpw_round_trip_and_joints_on_the_rendered_person(synth_pw3d, standin_dir):
    import cv2

    out = synth_pw3d.out_dir
    assert synth_pw3d.annotation_files == (out / "3DPW_test.json",)
    hidden = json.loads(synth_pw3d.hidden_gt_file.read_text())
    assert hidden["meta"]["model_type"] == "smpl" and hidden["meta"]["joint_set"] == "h36m_17"
    raw = load_3dpw(out, "test")
    samples = with_gt_joints(raw, model_dir=standin_dir)
    assert len(samples) == 20 and {s.extras["smpl_param"]["gender"] for s in samples} == {"male", "female"}
    assert {s.ids["sequence"] for s in samples} == {"synth_00", "synth_01"}  # 16 frames per sequence
    on_person = []
    for s in samples:
        e = hidden["annotations"][str(s.ids["ann_id"])]
        assert s.image_path == out / "imageFiles" / s.ids["sequence"] / Path(e["image_file"]).name
        # SMPL parameters: the generator's -> 3DPW_test.json -> loader (float32)
        p, got = e["params_cam"], s.extras["smpl_param"]
        np.testing.assert_allclose(got["pose_rotvecs"][0], p["root_rotvec"], atol=1e-6)
        np.testing.assert_allclose(got["pose_rotvecs"][1:], p["body_pose_rotvecs"], atol=1e-6)
        np.testing.assert_allclose(got["shape_betas"], p["betas"], atol=1e-6)
        np.testing.assert_allclose(got["trans_cam_m"], p["transl_m"], atol=1e-6)
        assert got["gender"] == e["gender"]
        assert s.focal_px == pytest.approx(e["focal_px"]) and s.princpt_px == pytest.approx(e["princpt_px"])
        # GT joints of P1 = the joints the generator rendered with; their projections = its exact ones
        np.testing.assert_allclose(s.joints_3d_cam_mm, e["joints_3d_cam_mm"], atol=2e-3, rtol=0)
        assert np.abs(s.keypoints_2d_px - np.asarray(e["keypoints_2d_px"])).max() < 1e-2
        # ... and they fall on the person in the image (green screen: the person is the non-green pixels)
        img = cv2.imread(str(s.image_path))
        person = ~((img[..., 1] > 200) & (img[..., 0] < 80) & (img[..., 2] < 80))
        px = np.round(s.keypoints_2d_px).astype(int)
        inside = (px >= 0).all(1) & (px[:, 0] < img.shape[1]) & (px[:, 1] < img.shape[0])
        on_person.append(person[px[inside, 1], px[inside, 0]].mean())
    assert np.mean(on_person) > 0.95


def test_synth_3dpw_is_deterministic_and_cli_runs(standin_dir, tmp_path):
    from neuralannot_cli.cli.main import app

    args = ["synth", "--kind", "3dpw", "--count", "3", "--image-size", "64", "--seed", "2", "--model-dir",
            str(standin_dir), "--occlusion-frac", "0.2"]
    res = runner.invoke(app, args + ["--out", str(tmp_path / "a")])
    assert res.exit_code == 0, _plain(res.output)
    assert "3DPW_train.json" in _plain(res.output) and "--occlusion-frac ignored" in _plain(res.output)
    assert runner.invoke(app, args + ["--out", str(tmp_path / "b")]).exit_code == 0
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) == 3 + 2  # 3 JPEGs, 3DPW_train.json, the hidden-GT JSON
    assert all(k.startswith(("imageFiles/synth_00/", "3DPW_train.json", "annotations/")) for k in a)


def test_evaluate_direct_on_synthetic_3dpw_with_hidden_gt(synth_pw3d, standin_dir, tmp_path):
    """The hidden GT (SMPL params + joints) and the GT from the 3DPW file agree; SMPL-X records: no MPVPE."""
    from neuralannot_cli.evaluate.direct import evaluate_direct, load_ground_truth

    ds = synth_pw3d.annotation_files[0]
    _, from_file = load_ground_truth(ds, model_dir=standin_dir)
    _, with_hidden = load_ground_truth(ds, model_dir=standin_dir, hidden_gt=synth_pw3d.hidden_gt_file)
    assert sorted(from_file) == sorted(with_hidden)
    for k, g in from_file.items():
        h = with_hidden[k]
        assert h.joint_set == g.joint_set == "h36m_17" and h.model_type == "smpl"
        np.testing.assert_allclose(h.joints_3d_cam_mm, g.joints_3d_cam_mm, atol=2e-3)
    hidden = json.loads(synth_pw3d.hidden_gt_file.read_text())["annotations"]
    recs = []
    for k, e in hidden.items():
        p = e["params_cam"]
        recs.append(SmplxRecord(key=k, ids={"ann_id": int(k)}, root_rotvec=p["root_rotvec"],
                                body_pose_rotvecs=np.asarray(p["body_pose_rotvecs"])[:21], betas=p["betas"],
                                transl_m=p["transl_m"], focal_px=e["focal_px"], princpt_px=e["princpt_px"]))
    pgt = tmp_path / "3DPW_test_SMPLX_NeuralAnnot.json"
    write_pseudo_gt_json(recs, pgt, dataset_kind="3dpw")
    report = evaluate_direct({"smplx": pgt}, ds, hidden_gt=synth_pw3d.hidden_gt_file)  # models: the generator's
    m = report.methods[0]
    assert report.kind == "3dpw" and m.num_3d == 20 and m.num_mesh == 0 and np.isnan(m.mpvpe_mm)
    assert 0 < m.pa_mpjpe_mm <= m.mpjpe_mm and len(m.joint_names) == 14


def test_indirect_test_on_3dpw(synth_pw3d, standin_dir):
    """An estimator is tested on 3DPW's GT joints (14 protocol joints); no MPVPE against SMPL GT."""
    from neuralannot_cli.evaluate.indirect import ParamRegressor, test_estimator

    torch.manual_seed(0)
    res = test_estimator(ParamRegressor("body"), synth_pw3d.annotation_files[0], model_dir=standin_dir,
                         input_size=32)
    assert res["num_test"] == 20 and np.isfinite(res["mpjpe_mm"]) and 0 < res["pa_mpjpe_mm"] <= res["mpjpe_mm"]
    assert np.isnan(res["mpvpe_mm"])
