"""Direct evaluation, overlays and the ``neuralannot evaluate`` CLI on small synthetic sets (stand-in models).

References are independent of the code under test where it matters: the hidden GT file's own joints and
projections (numpy), the loader's 3D joints with a numpy root alignment, and the synthetic image's
non-green pixels for the overlay.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.io.pseudo_gt import ManoRecord, SmplxRecord, record_key, write_meta, write_pseudo_gt_json

runner = CliRunner(env={"COLUMNS": "250"})


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.fixture(scope="module")
def coco_set(standin_dir, tmp_path_factory):
    from neuralannot_cli.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("coco")
    torch.set_num_threads(1)
    generate(SynthConfig(kind="coco-wholebody", out_dir=out, count=4, image_size=128, seed=3,
                         model_dir=standin_dir, background="green", occlusion_frac=0.1))
    return out


@pytest.fixture(scope="module")
def frei_set(standin_dir, tmp_path_factory):
    from neuralannot_cli.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("frei")
    torch.set_num_threads(1)
    generate(SynthConfig(kind="freihand", out_dir=out, count=3, seed=4, model_dir=standin_dir))
    return out


def _hidden(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"synth_hidden_gt_{split}.json").read_text())


def _coco_records(hidden: dict, transl_offset_m=(0.0, 0.0, 0.0), pose_noise=0.0, seed=0) -> list[SmplxRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for e in hidden["annotations"].values():
        p = e["params_cam"]
        ids = dict(e["ids"])
        out.append(SmplxRecord(
            key=record_key("coco_wholebody", ids), ids=ids, root_rotvec=p["root_rotvec"],
            body_pose_rotvecs=np.asarray(p["body_pose_rotvecs"]) + rng.normal(0, pose_noise, (21, 3)),
            betas=p["betas"], transl_m=np.asarray(p["transl_m"]) + np.asarray(transl_offset_m),
            focal_px=e["focal_px"], princpt_px=e["princpt_px"], lhand_pose_rotvecs=p["left_hand_pose_rotvecs"],
            rhand_pose_rotvecs=p["right_hand_pose_rotvecs"], jaw_rotvec=p["jaw_rotvec"], expression=p["expression"]))
    return out


def _frei_records(hidden: dict, root_noise: float = 0.0, pose_noise: float = 0.0, seed: int = 0) -> list[ManoRecord]:
    """Right-hand records of the FreiHAND hidden GT, optionally perturbed (root noise drawn before pose noise)."""
    rng = np.random.default_rng(seed)
    recs = []
    for e in hidden["annotations"].values():
        p = e["params_cam"]
        ids = {"image_number": e["ids"]["index"]}
        root = np.asarray(p["root_rotvec"], np.float64).reshape(3)
        if root_noise:
            root = root + rng.normal(0, root_noise, 3)
        pose = np.asarray(p["hand_pose_rotvecs"], np.float64).reshape(15, 3) + rng.normal(0, pose_noise, (15, 3))
        recs.append(ManoRecord(key=record_key("freihand", ids), ids=ids, hand_type="right", root_rotvec=root,
                               hand_pose_rotvecs=pose, betas=np.asarray(p["betas"]).reshape(-1)[:10],
                               transl_m=np.asarray(p["transl_m"]).reshape(3), focal_px=e["focal_px"],
                               princpt_px=e["princpt_px"]))
    return recs


def _write(records, path: Path, kind: str, seconds: float = 2.0) -> Path:
    write_pseudo_gt_json(records, path, dataset_kind=kind)
    write_meta(path, {"dataset_kind": kind, "seconds": seconds, "images_per_s": len(records) / seconds,
                      "method": "test"})
    return path


def test_exact_pseudo_gt_has_zero_error_and_translation_only_moves_2d(coco_set, standin_dir, tmp_path):
    from neuralannot_cli.evaluate.direct import evaluate_direct

    hidden = _hidden(coco_set, "train")
    exact = _write(_coco_records(hidden), tmp_path / "exact.json", "coco_wholebody")
    offset = np.array([0.05, -0.03, 0.0])
    shifted = _write(_coco_records(hidden, offset), tmp_path / "shifted.json", "coco_wholebody", seconds=4.0)
    ds = coco_set / "annotations" / "coco_wholebody_train_v1.0.json"
    report = evaluate_direct({"exact": exact, "shifted": shifted}, ds,
                             hidden_gt=coco_set / "annotations" / "synth_hidden_gt_train.json")
    a, b = report.methods
    assert report.kind == "coco_wholebody" and report.part == "body"
    assert a.num_matched == a.num_3d == a.num_mesh == 4
    # hidden GT joints are stored rounded to 1e-3 mm or so: exact records give ~0
    for m in (a, b):
        assert m.mpjpe_mm < 0.01 and m.pa_mpjpe_mm < 0.01 and m.mpvpe_mm < 1e-3 and m.pa_mpvpe_mm < 1e-3
    assert a.error_2d_px < 0.01
    # independent 2D reference: the GT's 3D joints moved by the offset, projected with the GT camera
    errs = []
    for e in hidden["annotations"].values():
        j = np.asarray(e["joints_3d_cam_mm"])[:23] + offset * 1000.0
        f, c = np.asarray(e["focal_px"]), np.asarray(e["princpt_px"])
        proj = j[:, :2] / j[:, 2:] * f + c
        vis = np.asarray(e["keypoints_visible"], dtype=float)[:23]
        d = np.linalg.norm(proj - np.asarray(e["keypoints_2d_px"])[:23], axis=1)
        errs.append((d * vis).sum() / vis.sum())
    assert b.error_2d_px == pytest.approx(np.mean(errs), rel=1e-4)
    assert b.error_2d_px > 1.0
    assert (a.seconds, b.seconds) == (2.0, 4.0) and b.images_per_s == pytest.approx(1.0)
    assert a.joint_names[11:13] == ("left_hip", "right_hip") and a.per_joint_mpjpe_mm.shape == (23,)


def test_pose_noise_errors_ordered_and_report_written(coco_set, tmp_path):
    import cv2

    from neuralannot_cli.evaluate.direct import evaluate_direct, write_report

    hidden = _hidden(coco_set, "train")
    small = _write(_coco_records(hidden, pose_noise=0.05), tmp_path / "small.json", "coco_wholebody")
    large = _write(_coco_records(hidden, pose_noise=0.2), tmp_path / "large.json", "coco_wholebody")
    report = evaluate_direct({"small": small, "large": large}, coco_set / "annotations" / "coco_wholebody_train_v1.0.json",
                             hidden_gt=coco_set / "annotations" / "synth_hidden_gt_train.json")
    s, l = report.methods
    assert 0 < s.pa_mpjpe_mm < l.pa_mpjpe_mm and 0 < s.mpjpe_mm < l.mpjpe_mm and s.mpvpe_mm < l.mpvpe_mm
    assert s.pa_mpjpe_mm <= s.mpjpe_mm + 1e-9  # the similarity alignment can only reduce the error
    paths = write_report(report, tmp_path / "rep")
    doc = json.loads(paths["report"].read_text())
    assert [m["name"] for m in doc["methods"]] == ["small", "large"]
    assert doc["methods"][1]["pa_mpjpe_mm"] == pytest.approx(l.pa_mpjpe_mm, abs=1e-3)
    assert len(doc["methods"][0]["per_joint"]["mpjpe_mm"]) == 23
    for key in ("error_hist", "per_joint"):
        img = cv2.imread(str(paths[key]))
        assert img is not None and img.ndim == 3 and (img < 250).any()


def test_aux_hand_set_matches_numpy_reference(frei_set, standin_dir, tmp_path):
    """FreiHAND (aux, GT 3D from the loader): MPJPE vs a numpy root alignment of the forwarded joints."""
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.data.loaders import load_dataset
    from neuralannot_cli.evaluate.direct import evaluate_direct

    recs = _frei_records(_hidden(frei_set, "training"), root_noise=0.1, pose_noise=0.2, seed=1)
    path = _write(recs, tmp_path / "hands.json", "freihand")
    report = evaluate_direct({"h": path}, frei_set / "training_xyz.json", model_dir=standin_dir)
    m = report.methods[0]
    assert report.part == "hand" and m.num_3d == 3 and m.num_mesh == 0  # no --gt: no mesh GT
    model = load_body_model("mano", model_dir=standin_dir, dtype=torch.float64)
    samples = {s.ids["image_number"]: s for s in load_dataset("freihand", frei_set, split="training")}
    ref = []
    for r in recs:
        out = model(root_rotvec=torch.tensor(r.root_rotvec[None]), hand_pose_rotvecs=torch.tensor(r.hand_pose_rotvecs[None]),
                    betas=torch.tensor(r.betas[None]), transl_m=torch.tensor(r.transl_m[None]))
        pred = model.joints_in(out, "hand_21")[0].numpy() * 1000.0
        gt = np.asarray(samples[r.ids["image_number"]].joints_3d_cam_mm, dtype=np.float64)
        ref.append(np.linalg.norm((pred - pred[0]) - (gt - gt[0]), axis=1).mean())
    assert m.mpjpe_mm == pytest.approx(np.mean(ref), rel=1e-3)
    assert m.mpjpe_mm > 1.0 and 0.0 < m.pck_auc_pa <= 1.0 and m.pa_mpjpe_mm <= m.mpjpe_mm


def test_hand_mesh_f_scores_freihand_protocol(frei_set, standin_dir, tmp_path):
    """With mesh GT (--gt), hands get FreiHAND's F@5mm / F@15mm of the Procrustes-aligned mesh: 1 for exact
    parameters, and for perturbed ones the value of an independent numpy computation (float64 meshes, SVD
    similarity Procrustes, brute-force nearest neighbours)."""
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.evaluate.direct import evaluate_direct

    hidden = _hidden(frei_set, "training")
    model = load_body_model("mano", model_dir=standin_dir, dtype=torch.float64)

    def records(noise: float) -> list[ManoRecord]:
        return _frei_records(hidden, pose_noise=noise, seed=2)

    def verts_mm(r) -> np.ndarray:
        out = model(root_rotvec=torch.tensor(r.root_rotvec[None]), hand_pose_rotvecs=torch.tensor(r.hand_pose_rotvecs[None]),
                    betas=torch.tensor(r.betas[None]), transl_m=torch.tensor(r.transl_m[None]))
        return out.vertices[0].numpy() * 1000.0

    def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # x mapped onto y, with scale
        mx, my = x.mean(0), y.mean(0)
        xc, yc = x - mx, y - my
        u, sv, vt = np.linalg.svd(xc.T @ yc)
        d = np.sign(np.linalg.det(u @ vt))
        e = np.diag([1.0, 1.0, d])
        rot = (u @ e @ vt).T
        scale = (sv * np.diag(e)).sum() / (xc ** 2).sum()
        return scale * xc @ rot.T + my

    def f_ref(a: np.ndarray, b: np.ndarray, th: float) -> float:
        d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
        p, r = (d.min(1) < th).mean(), (d.min(0) < th).mean()
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    gt_file = frei_set / "annotations" / "synth_hidden_gt_training.json"
    exact = evaluate_direct({"h": _write(records(0.0), tmp_path / "exact.json", "freihand")},
                            frei_set / "training_xyz.json", hidden_gt=gt_file, model_dir=standin_dir).methods[0]
    assert exact.num_mesh == 3 and exact.f_score_5mm == pytest.approx(1.0) and exact.f_score_15mm == pytest.approx(1.0)
    noisy_recs = records(0.3)
    noisy = evaluate_direct({"h": _write(noisy_recs, tmp_path / "noisy.json", "freihand")},
                            frei_set / "training_xyz.json", hidden_gt=gt_file, model_dir=standin_dir).methods[0]
    exact_recs = records(0.0)
    ref5, ref15 = [], []
    for r, g in zip(noisy_recs, exact_recs):
        aligned, gv = procrustes(verts_mm(r), verts_mm(g)), verts_mm(g)
        ref5.append(f_ref(aligned, gv, 5.0))
        ref15.append(f_ref(aligned, gv, 15.0))
    print("F@5 / F@15 of the perturbed hands:", noisy.f_score_5mm, noisy.f_score_15mm)
    assert 0.0 < noisy.f_score_5mm < 1.0 and noisy.f_score_5mm <= noisy.f_score_15mm
    assert noisy.f_score_5mm == pytest.approx(np.mean(ref5), abs=1e-3)
    assert noisy.f_score_15mm == pytest.approx(np.mean(ref15), abs=1e-3)
    assert noisy.summary()["f_score_5mm"] == pytest.approx(noisy.f_score_5mm, abs=1e-4)


def test_overlay_mask_covers_the_person(coco_set, standin_dir, tmp_path):
    from neuralannot_cli.evaluate.direct import BodyModels
    from neuralannot_cli.evaluate.overlay import read_image_rgb, render_overlays, render_record

    hidden = _hidden(coco_set, "train")
    recs = _coco_records(hidden)
    models = BodyModels(standin_dir)
    torch.set_num_threads(1)
    for r, e in zip(recs, hidden["annotations"].values()):
        img = read_image_rgb(coco_set / e["image_file"]).astype(np.int32)
        person = ~((img[..., 1] > 180) & (img[..., 0] < 90) & (img[..., 2] < 90))  # not green-screen
        mask = render_record(r, models, img.shape[:2]).mask
        iou = (mask & person).sum() / (mask | person).sum()
        assert iou > 0.8, (r.key, iou)
    path = _write(recs, tmp_path / "exact.json", "coco_wholebody")
    other = _write(_coco_records(hidden, pose_noise=0.2), tmp_path / "noisy.json", "coco_wholebody")
    s = render_overlays(path, coco_set / "annotations" / "coco_wholebody_train_v1.0.json", tmp_path / "ov",
                        compare=other, max_images=3, model_dir=standin_dir, tile_px=96)
    assert len(s.files) == 3 and s.grid is not None and s.grid.is_file()
    import cv2

    grid = cv2.imread(str(s.grid))
    assert grid.shape[0] == 3 * (96 + 4) + 4 and grid.shape[1] > 3 * 96  # 3 rows of image | A | B


def test_cli_direct_render_and_errors(coco_set, standin_dir, tmp_path):
    from neuralannot_cli.cli.main import app

    hidden = _hidden(coco_set, "train")
    a = _write(_coco_records(hidden, pose_noise=0.05), tmp_path / "a.json", "coco_wholebody")
    b = _write(_coco_records(hidden, pose_noise=0.2), tmp_path / "b.json", "coco_wholebody")
    ds = str(coco_set / "annotations" / "coco_wholebody_train_v1.0.json")
    gt = str(coco_set / "annotations" / "synth_hidden_gt_train.json")
    res = runner.invoke(app, ["evaluate", "direct", str(a), "--dataset", ds, "--gt", gt, "--compare", f"base={b}",
                              "--out", str(tmp_path / "rep"), "--model-dir", str(standin_dir)])
    out = _plain(res.output)
    assert res.exit_code == 0, out
    assert "neuralannot" in out and "base" in out and "PA-MPJPE" in out
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["methods"][0]["pa_mpjpe_mm"] < doc["methods"][1]["pa_mpjpe_mm"]
    assert (tmp_path / "rep" / "per_joint.png").is_file()

    res = runner.invoke(app, ["evaluate", "render", str(a), "--dataset", ds, "--out", str(tmp_path / "ov"),
                              "--max-images", "2", "--model-dir", str(standin_dir)])
    assert res.exit_code == 0, _plain(res.output)
    assert (tmp_path / "ov" / "grid.png").is_file()

    res = runner.invoke(app, ["evaluate", "direct", str(a), "--dataset", ds, "--compare", "nameonly"])
    assert res.exit_code == 1 and "NAME=PATH" in _plain(res.output)
    bad = tmp_path / "bad_gt.json"
    bad.write_text(json.dumps({"annotations": {"1": {"keypoints_2d_px": [], "joint_set": "x"}}}))
    res = runner.invoke(app, ["evaluate", "direct", str(a), "--dataset", ds, "--gt", str(bad),
                              "--out", str(tmp_path / "rep2")])
    out = _plain(res.output)
    assert res.exit_code == 1 and "bad_gt.json" in out and "joints_3d_cam_mm" in out
    res = runner.invoke(app, ["evaluate", "direct", str(tmp_path / "missing.json"), "--dataset", ds])
    assert res.exit_code == 1 and "missing.json" in _plain(res.output)


def test_indirect_regressor_learns_from_pseudo_gt(frei_set, standin_dir, tmp_path):
    """Trained on exact pseudo-GT of a tiny hand set and tested on the same images, the errors must drop
    far below those of the untrained regressor (same seed and crops)."""
    from neuralannot_cli.evaluate.indirect import IndirectConfig, ParamRegressor, run_indirect, test_estimator

    hidden = _hidden(frei_set, "training")
    recs = []
    for e in hidden["annotations"].values():
        p = e["params_cam"]
        ids = {"image_number": e["ids"]["index"]}
        recs.append(ManoRecord(key=record_key("freihand", ids), ids=ids, hand_type="right", root_rotvec=p["root_rotvec"],
                               hand_pose_rotvecs=p["hand_pose_rotvecs"], betas=p["betas"], transl_m=p["transl_m"],
                               focal_px=e["focal_px"], princpt_px=e["princpt_px"]))
    pgt = _write(recs, tmp_path / "hands.json", "freihand")
    ds = frei_set / "training_xyz.json"
    gt = frei_set / "annotations" / "synth_hidden_gt_training.json"
    torch.set_num_threads(1)
    torch.manual_seed(0)
    before = test_estimator(ParamRegressor("hand"), ds, hidden_gt=gt, model_dir=standin_dir, input_size=32)
    cfg = IndirectConfig("regressor", pgt, ds, ds, test_gt=gt, epochs=15, batch_size=4, input_size=32, lr=1e-3,
                         model_dir=standin_dir)
    after = run_indirect(cfg)
    assert after.num_train == 3 and after.num_test == 3 and after.part == "hand"
    assert after.num_test_in_train == 3  # trained and tested on the same images: reported, not hidden
    assert after.mpjpe_mm < 0.5 * before["mpjpe_mm"] and after.pa_mpjpe_mm < 0.7 * before["pa_mpjpe_mm"]
    assert after.mpvpe_mm < 0.5 * before["mpvpe_mm"] and after.pck_auc_pa > before["pck_auc_pa"]
    with pytest.raises(ValueError, match="multiple of 32 for the i2l"):
        run_indirect(IndirectConfig("i2l", pgt, ds, ds, input_size=48, model_dir=standin_dir))
