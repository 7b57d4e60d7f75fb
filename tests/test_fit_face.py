"""FLAME face fitting: recovery on synthetic faces with known parameters, skip reasons, JSON layout, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralannot_cli.camera import project_perspective
from neuralannot_cli.data.record import Sample
from neuralannot_cli.rotation import rotmat_geodesic_distance, rotvec_to_rotmat


@pytest.fixture(scope="module")
def flame(standin_dir: Path):
    from neuralannot_cli.body import load_body_model

    return load_body_model("flame", model_dir=standin_dir)


def _euler_xyz_deg_to_rotvec(angles_deg: np.ndarray) -> torch.Tensor:
    from neuralannot_cli.data.synth_pose import euler_deg_to_rotvec

    return torch.tensor(euler_deg_to_rotvec(angles_deg), dtype=torch.float32)


def synthetic_faces(model, n: int, seed: int, noise_px: float = 0.5):
    """Random FLAME faces (rotation, jaw, shape, expression, translation) seen by a known camera."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    gt = {
        "root_rotvec": _euler_xyz_deg_to_rotvec(np.stack(
            [180 + rng.uniform(-20, 20, n), rng.uniform(-30, 30, n), rng.uniform(-10, 10, n)], -1)),
        "jaw_rotvec": _euler_xyz_deg_to_rotvec(np.stack(
            [rng.uniform(5, 20, n), rng.uniform(-3, 3, n), rng.uniform(-3, 3, n)], -1)),
        "expression": f32(np.clip(rng.normal(0, 0.7, (n, 10)), -2, 2)),
        "betas": f32(np.clip(rng.normal(0, 0.7, (n, 10)), -2, 2)),
        "transl_m": f32(np.stack([rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n), rng.uniform(0.6, 1.2, n)], -1)),
    }
    focal = torch.full((n, 2), 1000.0)
    princpt = torch.full((n, 2), 255.5)
    with torch.no_grad():
        clean = project_perspective(model.joints_in(model(**gt), "face_68"), focal, princpt)
        neutral = project_perspective(
            model.joints_in(model(root_rotvec=gt["root_rotvec"], transl_m=gt["transl_m"]), "face_68"), focal, princpt)
    noisy = clean + noise_px * torch.randn(n, 68, 2, generator=torch.Generator().manual_seed(seed))
    return gt, clean, neutral, noisy, focal, princpt


def _face_sample(kp68: np.ndarray, conf: np.ndarray, ann_id: int, **extras) -> Sample:
    kp = np.zeros((133, 2), np.float32)
    c = np.zeros(133, np.float32)
    kp[23:91], c[23:91] = kp68, conf
    return Sample(dataset="coco_wholebody", image_path=Path("x.jpg"), image_hw=(512, 512),
                  bbox_xywh_px=np.array([0, 0, 512, 512], np.float32), keypoints_2d_px=kp, keypoints_conf=c,
                  joint_set="coco_wholebody_133", focal_px=(1000.0, 1000.0), princpt_px=(255.5, 255.5),
                  ids={"image_id": 1, "ann_id": ann_id}, extras=extras)


def test_face_fit_recovers_synthetic_faces(flame):
    from neuralannot_cli.fit.engine import default_fit_config
    from neuralannot_cli.fit.face import face_records_to_json, fit_faces

    n = 6
    gt, clean, neutral, noisy, _, _ = synthetic_faces(flame, n, seed=3)
    samples = [_face_sample(noisy[i].numpy(), np.ones(68), 100 + i, face_valid=True,
                            face_box_xywh_px=np.array([200, 200, 100, 100])) for i in range(n)]
    records = fit_faces(samples, model=flame, config=default_fit_config("face", iterations_scale=0.5), batch_size=4)
    assert [r.key for r in records] == [str(100 + i) for i in range(n)] and all(r.face_valid for r in records)

    # reprojection of the fitted landmarks vs the noise-free ones, vs the neutral face at the true pose
    fitted = {k: torch.tensor(np.stack([getattr(r, a) for r in records]), dtype=torch.float32)
              for k, a in [("root_rotvec", "root_rotvec"), ("jaw_rotvec", "jaw_rotvec"), ("betas", "betas"),
                           ("expression", "expression"), ("transl_m", "transl_m")]}
    with torch.no_grad():
        proj = project_perspective(flame.joints_in(flame(**fitted), "face_68"), torch.full((n, 2), 1000.0),
                                   torch.full((n, 2), 255.5))
    err_fit = (proj - clean).norm(dim=-1).mean().item()
    err_neutral = (neutral - clean).norm(dim=-1).mean().item()
    assert err_fit < 0.3 * err_neutral, (err_fit, err_neutral)
    assert err_fit < 2.0

    # jaw: clearly better than leaving it closed; expression: better than the zero expression
    jaw_err = torch.rad2deg(rotmat_geodesic_distance(rotvec_to_rotmat(fitted["jaw_rotvec"]),
                                                      rotvec_to_rotmat(gt["jaw_rotvec"]))).mean().item()
    jaw_closed = torch.rad2deg(gt["jaw_rotvec"].norm(dim=-1)).mean().item()
    assert jaw_err < 0.6 * jaw_closed, (jaw_err, jaw_closed)
    expr_rmse = (fitted["expression"] - gt["expression"]).pow(2).mean().sqrt().item()
    expr_zero = gt["expression"].pow(2).mean().sqrt().item()
    assert expr_rmse < 0.85 * expr_zero, (expr_rmse, expr_zero)

    out = face_records_to_json(records)
    e = out["100"]
    assert set(e["flame_param"]) == {"root_pose", "jaw_pose", "shape", "expr", "trans"}
    assert len(e["flame_param"]["shape"]) == 10 and len(e["flame_param"]["expr"]) == 10
    assert e["cam_param"] == {"focal": [1000.0, 1000.0], "princpt": [255.5, 255.5]} and e["face_valid"] is True
    np.testing.assert_allclose(e["flame_param"]["jaw_pose"], records[0].jaw_rotvec, rtol=1e-6)


def _skip_cases(flame, seed: int, last_face_valid: bool) -> list:
    """Four face samples: face_valid false, 8 labelled keypoints, a zero face box, and a fourth that is fittable
    when ``last_face_valid``."""
    _, _, _, noisy, _, _ = synthetic_faces(flame, 1, seed=seed)
    kp = noisy[0].numpy()
    few = np.zeros(68)
    few[27:35] = 1  # 8 visible
    return [
        _face_sample(kp, np.ones(68), 1, face_valid=False),
        _face_sample(kp, few, 2, face_valid=True),
        _face_sample(kp, np.ones(68), 3, face_valid=True, face_box_xywh_px=np.zeros(4)),
        _face_sample(kp, np.ones(68), 4, face_valid=last_face_valid),
    ]


def test_face_skip_reasons_and_json(flame):
    from neuralannot_cli.fit.engine import default_fit_config
    from neuralannot_cli.fit.face import face_records_to_json, fit_faces

    samples = _skip_cases(flame, seed=5, last_face_valid=True)
    cfg = default_fit_config("face", iterations_scale=0.05)
    records = fit_faces(samples, model=flame, config=cfg, min_visible=10)
    reasons = {r.key: r.skip_reason for r in records}
    assert reasons["1"] == "face_valid is false in the annotation"
    assert reasons["2"] == "8 visible face keypoints (< 10)"
    assert reasons["3"] == "no face box"
    assert reasons["4"] is None
    out = face_records_to_json(records)
    assert out["2"] == {"face_valid": False, "skip_reason": "8 visible face keypoints (< 10)", "num_visible": 8}
    assert "flame_param" not in out["1"] and "flame_param" in out["4"]
    assert set(face_records_to_json(records, omit_skipped=True)) == {"4"}


def test_default_camera_and_bad_input(flame):
    from neuralannot_cli.fit.face import default_camera, fit_faces

    (fx, fy), (cx, cy) = default_camera((480, 640))
    assert fx == fy == pytest.approx(800.0) and (cx, cy) == (319.5, 239.5)
    with pytest.raises(ValueError, match="image_hw"):
        default_camera((0, 10))
    bad = Sample(dataset="coco_wholebody", image_path=Path("x"), image_hw=(10, 10), bbox_xywh_px=np.zeros(4),
                 keypoints_2d_px=np.zeros((17, 2)), keypoints_conf=np.zeros(17), joint_set="coco_17")
    with pytest.raises(ValueError, match="coco_17"):
        fit_faces([bad], model=flame)


def _coco_json(path: Path, kp68: np.ndarray) -> None:
    def ann(aid: int, face: np.ndarray, valid: bool) -> dict:
        z = lambda n: [0.0] * (3 * n)  # noqa: E731
        return {"id": aid, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 1, "bbox": [0, 0, 512, 512],
                "keypoints": [256.0, 256.0, 2] + z(16), "foot_kpts": z(6),
                "face_kpts": np.concatenate([face, np.full((68, 1), 2.0)], 1).reshape(-1).tolist(),
                "lefthand_kpts": z(21), "righthand_kpts": z(21), "face_box": [200, 200, 100, 100],
                "lefthand_box": [0, 0, 0, 0], "righthand_box": [0, 0, 0, 0], "face_valid": valid,
                "lefthand_valid": False, "righthand_valid": False, "foot_valid": False}

    data = {"images": [{"id": 1, "file_name": "000000000001.jpg", "width": 512, "height": 512}],
            "annotations": [ann(7, kp68, True), ann(8, kp68, False)],
            "categories": [{"id": 1, "name": "person"}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_fit_face_cli(flame, standin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from typer.testing import CliRunner

    from neuralannot_cli.cli.main import app

    _, _, _, noisy, _, _ = synthetic_faces(flame, 1, seed=9)
    src = tmp_path / "annotations" / "coco_wholebody_val_v1.0.json"
    _coco_json(src, noisy[0].numpy())
    out = tmp_path / "face.json"
    res = CliRunner().invoke(app, ["fit-face", str(src), "--out", str(out), "--model-dir", str(standin_dir),
                                   "--iterations-scale", "0.1"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data) == {"7", "8"}
    assert data["7"]["face_valid"] is True and len(data["7"]["flame_param"]["expr"]) == 10
    # default camera of a 512 x 512 image
    assert data["7"]["cam_param"]["princpt"] == [255.5, 255.5]
    assert data["7"]["cam_param"]["focal"][0] == pytest.approx(512 * 2 ** 0.5)
    assert data["8"] == {"face_valid": False, "skip_reason": "face_valid is false in the annotation", "num_visible": 68}
    assert not (tmp_path / "face.json.progress.jsonl").exists()  # removed once the output is written
    # a run that dies in its second batch (the fit of face 7; face 8's skip record was the first) keeps its
    # progress file and writes no output; --resume takes the finished batch over and completes the file
    import neuralannot_cli.fit.face as face_module

    real_fit_faces = face_module.fit_faces

    def dying_fit_faces(chunk, **kw):
        if any(s.ids["ann_id"] == 7 for s in chunk):
            raise RuntimeError("killed")
        return real_fit_faces(chunk, **kw)

    again = tmp_path / "again.json"
    argv = ["fit-face", str(src), "--out", str(again), "--model-dir", str(standin_dir), "--iterations-scale", "0.1"]
    with monkeypatch.context() as patch:
        patch.setattr(face_module, "fit_faces", dying_fit_faces)
        res = CliRunner().invoke(app, argv)
    assert res.exit_code == 1 and "killed" in res.output and not again.exists()
    assert (tmp_path / "again.json.progress.jsonl").is_file()
    res = CliRunner().invoke(app, [*argv, "--resume"])
    assert res.exit_code == 0, res.output
    assert "(1 from the interrupted run)" in " ".join(res.output.split())
    assert json.loads(again.read_text()) == data

    bad = tmp_path / "annotations" / "broken.json"
    bad.write_text("{\"images\": []")
    res = CliRunner().invoke(app, ["fit-face", str(bad), "--out", str(tmp_path / "x.json"), "--model-dir",
                                   str(standin_dir)])
    assert res.exit_code == 1 and "broken.json" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.json").exists()


def test_no_fittable_face_is_an_error_and_writes_nothing(flame, standin_dir: Path, tmp_path: Path):
    """Samples but no face to fit (audit s9, item 9): it used to exit 0 with a file of skip records, or ``{}``
    with --omit-skipped. Now a one-line error naming the output, the dataset and the reasons, before any write."""
    from typer.testing import CliRunner

    from neuralannot_cli.cli.main import app
    from neuralannot_cli.fit.engine import default_fit_config
    from neuralannot_cli.fit.face import run_fit_face

    samples = _skip_cases(flame, seed=11, last_face_valid=False)  # every one skipped
    _, _, _, noisy, _, _ = synthetic_faces(flame, 1, seed=11)
    kp = noisy[0].numpy()
    out = tmp_path / "lib" / "face.json"
    out.parent.mkdir()
    cfg = default_fit_config("face", iterations_scale=0.05)
    with pytest.raises(ValueError) as info:
        run_fit_face(samples, out, model=flame, config=cfg, min_visible=10, omit_skipped=True,
                     fingerprint={"dataset_json": "/data/coco_wholebody_x.json"})
    msg = str(info.value)
    assert "\n" not in msg and str(out) in msg and "/data/coco_wholebody_x.json" in msg, msg
    assert "no face to fit" in msg and "of 4 annotations" in msg, msg
    assert "2 face_valid false" in msg and "1 no face box" in msg, msg
    assert "1 fewer than 10 labelled face keypoints" in msg, msg
    assert list(out.parent.iterdir()) == []  # neither the output nor its progress log
    # one fittable face is enough: the run goes on (skip records for the others, as before)
    samples.append(_face_sample(kp, np.ones(68), 5, face_valid=True))
    summary = run_fit_face(samples, out, model=flame, config=cfg, min_visible=10)
    assert (summary.num_records, summary.num_fitted) == (5, 1) and out.is_file()

    src = tmp_path / "annotations" / "coco_wholebody_val_v1.0.json"
    _coco_json(src, noisy[0].numpy())
    data = json.loads(src.read_text())
    for a in data["annotations"]:
        a["face_valid"] = False
    src.write_text(json.dumps(data))
    for extra in ([], ["--omit-skipped"]):
        cli_out = tmp_path / f"cli{len(extra)}.json"
        res = CliRunner().invoke(app, ["fit-face", str(src), "--out", str(cli_out), "--model-dir", str(standin_dir),
                                       "--iterations-scale", "0.1", *extra])
        text = " ".join(res.output.split())
        assert res.exit_code == 1, res.output
        assert str(cli_out) in text and str(src.resolve()) in text and "2 face_valid false" in text, res.output
        assert "Traceback" not in res.output and [ln for ln in res.output.splitlines() if "error:" in ln]
        assert not cli_out.exists() and not (tmp_path / f"cli{len(extra)}.json.progress.jsonl").exists()


# ------------------------------------------------------- the 68-point correspondence, seen in the image
# Independent reference: the documented iBUG-68 / 300-W layout that COCO-WholeBody ``face_kpts`` use
# (jin-s13/COCO-WholeBody; 0..16 jaw line from the subject's right to left, 17..21 right brow, 22..26 left
# brow, 27..30 nose bridge, 31..35 nostrils, 36..41 right eye, 42..47 left eye, 48..59 outer lips, 60..67
# inner lips). A frontal, upright face seen by an OpenCV camera shows the subject's right on the image left.


def _frontal_face_uv(model, yaw_deg: float = 0.0) -> tuple[torch.Tensor, object]:
    """face_68 projected for a FLAME head facing the camera (root ``R_x(pi) R_y(yaw)``), float64."""
    import math

    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    root = flip @ rotvec_to_rotmat(torch.tensor([0.0, math.radians(yaw_deg), 0.0], dtype=torch.float64))
    from neuralannot_cli.rotation import rotmat_to_rotvec

    root_rotvec = rotmat_to_rotvec(root)[None].to(model.dtype)
    nose_tip = model.joints_in(model(root_rotvec=root_rotvec), "face_68")[0, 30]
    transl = torch.tensor([0.0, 0.0, 0.6], dtype=model.dtype) - nose_tip  # nose tip on the optical axis, 0.6 m
    out = model(root_rotvec=root_rotvec, transl_m=transl[None])
    face = model.joints_in(out, "face_68").double()
    uv = project_perspective(face, torch.full((1, 2), 1000.0, dtype=torch.float64),
                             torch.full((1, 2), 255.5, dtype=torch.float64))[0]
    return uv, (face[0], out.vertices[0].double())


def test_face_68_projects_in_ibug_layout(flame):
    uv, _ = _frontal_face_uv(flame)
    u, v = uv[:, 0], uv[:, 1]
    inc = lambda idx, a: bool((a[idx[1:]] - a[idx[:-1]] > 0).all())  # noqa: E731  strictly increasing
    assert inc(list(range(17)), u)  # jaw line: subject's right (image left) -> left
    assert int(v[:17].argmax()) == 8  # chin
    assert inc(list(range(17, 22)), u) and inc(list(range(22, 27)), u) and float(u[17:22].max()) < float(u[22:27].min())
    assert inc([27, 28, 29, 30], v)  # nose bridge, top to tip
    assert inc([31, 32, 33, 34, 35], u)
    assert inc([36, 39, 42, 45], u)  # right eye outer, right inner, left inner, left outer corner
    assert float(v[[37, 38]].max()) < float(v[[41, 40]].min()) and float(v[[43, 44]].max()) < float(v[[47, 46]].min())
    assert float(u[48]) < float(u[51]) < float(u[54]) and float(u[60]) < float(u[64])
    assert float(v[51]) < float(v[57]) and float(v[62]) <= float(v[66]) + 1e-9
    upper = list(range(17, 27)) + list(range(36, 48))  # brows and eyes
    assert float(v[upper].max()) < float(v[30]) < float(v[48:68].min()) < float(v[8])  # nose tip, mouth, chin


def _contour_facing(model, yaw_deg: float) -> np.ndarray:
    """Cosine between the outward surface normal at each contour landmark and the camera ray (> 0: the
    point faces away from the camera, i.e. lies behind the silhouette; a jaw-line landmark should not)."""
    _, (face, verts) = _frontal_face_uv(model, yaw_deg)
    v, f = verts.numpy(), model.faces
    face_normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vertex_normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(vertex_normals, f[:, k], face_normals)
    vertex_normals /= np.linalg.norm(vertex_normals, axis=1, keepdims=True) + 1e-30
    pts = face.numpy()
    nearest = np.argmin(((pts[:, None] - v[None]) ** 2).sum(-1), axis=1)
    cos = (vertex_normals[nearest] * pts / np.linalg.norm(pts, axis=1, keepdims=True)).sum(-1)
    return cos[:17] * -np.sign(cos[30])  # orient by the nose tip, which faces the camera


def test_face_contour_landmarks_face_the_camera_frontal(flame):
    assert (_contour_facing(flame, 0.0) < -0.1).all()


@pytest.mark.parametrize("yaw_deg", [-30.0, 30.0])
def test_face_contour_landmarks_not_behind_silhouette_turned(flame, yaw_deg):
    """Head turned 30 deg in the camera frame: the far side's jaw-line landmarks must sit on the silhouette
    (the stand-in's look-up table before session 8 followed the y-up (DECA) yaw sign and left them ~12 deg
    behind it, cos 0.21; smplx negates the yaw for the OpenCV camera frame; now they are at 0.06, grazing)."""
    assert (_contour_facing(flame, yaw_deg) < 0.1).all()


# ------------------------------------------------------------------------------------ a killed job resumes
class _Killed(Exception):
    pass


def test_run_fit_face_resumes_after_a_kill_with_the_uninterrupted_output(flame, tmp_path: Path):
    """fit-face over a dataset writes each finished batch to OUT.progress.jsonl: killed after two batches and
    resumed, it writes byte for byte the file of an uninterrupted run (same batches, LBFGS couples a batch's
    samples), refits nothing that was done, and refuses to resume a job with other options."""
    from neuralannot_cli.fit.engine import default_fit_config
    from neuralannot_cli.fit.face import face_records_to_json, fit_faces, run_fit_face

    _, _, _, noisy, _, _ = synthetic_faces(flame, 7, seed=11)
    samples = [_face_sample(noisy[i].numpy(), np.ones(68), 100 + i, face_valid=True) for i in range(7)]
    samples.insert(3, _face_sample(noisy[0].numpy(), np.ones(68), 99, face_valid=False))  # a skipped face
    cfg = default_fit_config("face", optimizer="lbfgs", iterations_scale=0.05)
    kw = dict(model=flame, config=cfg, batch_size=3, fingerprint={"dataset_json": "faces.json"})

    full = run_fit_face(samples, tmp_path / "full.json", **kw)
    assert (full.num_records, full.num_fitted, full.num_resumed) == (8, 7, 0)
    assert not (tmp_path / "full.json.progress.jsonl").exists()
    # the file is what fit_faces + face_records_to_json give for the whole list at once (same batches)
    expected = face_records_to_json(fit_faces(samples, model=flame, config=cfg, batch_size=3))
    assert json.loads((tmp_path / "full.json").read_text()) == expected

    calls = []

    def kill_after_two_batches(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:  # the start, the skipped faces, one batch of 3: then the "kill"
            raise _Killed

    out = tmp_path / "part.json"
    with pytest.raises(_Killed):
        run_fit_face(samples, out, progress=kill_after_two_batches, **kw)
    progress_file = tmp_path / "part.json.progress.jsonl"
    assert progress_file.is_file() and not out.exists()
    with pytest.raises(ValueError, match=r"fingerprint\.batch_size"):
        run_fit_face(samples, out, resume=True, **{**kw, "batch_size": 2})
    seen = []
    resumed = run_fit_face(samples, out, resume=True, progress=lambda d, t: seen.append(d), **kw)
    assert resumed.num_resumed == 4 and seen[0] == 4 and seen[-1] == 8  # 1 skipped + 3 fitted were kept
    assert out.read_bytes() == (tmp_path / "full.json").read_bytes()
    assert not progress_file.exists()
