"""Evaluation protocol against the field's conventions, with independent float64 numpy references.

- Human3.6M protocol 2 (I2L-MeshNet / Hand4Whole ``data/Human36M/Human36M.py`` ``evaluate``): root-relative at the
  pelvis over all 17 joints, then the 14 ``eval_joint`` (1..6, 8, 10..16); PA = ``rigid_align`` (with scale) on
  those 14.
- Invalid GT joints (InterHand2.6M ``joint_valid``) enter neither the errors nor the Procrustes alignment.
- MPVPE translates each mesh by ``J_regressor[0] @ vertices`` (Hand4Whole ``data/EHF/EHF.py``).
- ``evaluate indirect`` counts test images that were training images.
- MPI-INF-3DHP 3DPCK@150 mm / AUC 0-150 mm (``mpii_compute_3d_pck.m`` with ``mpii_get_pck_auc_joint_groups.m``):
  pelvis-aligned errors of all 17 joints, grouped and re-weighted as the script does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

H36M_EVAL_JOINT = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)  # I2L-MeshNet / Hand4Whole, verbatim


def _rigid_align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a (N, 3)`` aligned to ``b`` by the similarity transform (Umeyama, reflection excluded), float64."""
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, s, vt = np.linalg.svd(a0.T @ b0 / len(a))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    e = np.diag([1.0, 1.0, d])
    r = vt.T @ e @ u.T
    c = np.sum(s * np.diag(e)) / a0.var(0).sum()
    return c * a @ r.T + (mb - c * r @ ma)


def _h36m_reference(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Mean over samples of the I2L-MeshNet Human3.6M MPJPE / PA-MPJPE (mm)."""
    mp, pa = [], []
    for p, g in zip(pred, gt):
        g = (g - g[0])[list(H36M_EVAL_JOINT)]
        p = (p - p[0])[list(H36M_EVAL_JOINT)]
        mp.append(np.linalg.norm(p - g, axis=1).mean())
        pa.append(np.linalg.norm(_rigid_align(p, g) - g, axis=1).mean())
    return float(np.mean(mp)), float(np.mean(pa))


def _h36m_pair(n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(n, 17, 3)) * 300.0 + np.array([0.0, 0.0, 4000.0])
    pred = gt + rng.normal(size=gt.shape) * 40.0 + rng.normal(size=(n, 1, 3)) * 100.0
    return pred, gt


def test_h36m_eval_joints_are_the_protocol_14():
    from neuralannot_cli.body import get_joint_set
    from neuralannot_cli.evaluate.direct import eval_joint_indices, root_joint_indices

    assert eval_joint_indices("h36m_17") == H36M_EVAL_JOINT
    names = get_joint_set("h36m_17").joint_names
    assert {names[i] for i in set(range(17)) - set(H36M_EVAL_JOINT)} == {"pelvis", "torso", "head"}
    assert root_joint_indices("h36m_17") == (0,)
    assert eval_joint_indices("hand_21") == tuple(range(21))
    assert eval_joint_indices("mpi3dhp_17") == tuple(range(17))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_h36m_joint_errors_match_i2l_reference(dtype):
    from neuralannot_cli.evaluate import metrics as M
    from neuralannot_cli.evaluate.direct import joint_errors_mm

    pred, gt = _h36m_pair()
    mp, pa, w, names = joint_errors_mm(torch.tensor(pred, dtype=dtype), torch.tensor(gt, dtype=dtype), "h36m_17")
    assert mp.shape == pa.shape == w.shape == (5, 14) and len(names) == 14 and "pelvis" not in names
    ref_mp, ref_pa = _h36m_reference(pred, gt)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert float(M.masked_mean(mp, w).mean()) == pytest.approx(ref_mp, rel=tol)
    assert float(M.masked_mean(pa, w).mean()) == pytest.approx(ref_pa, rel=tol)
    # the 17-joint numbers (pelvis error 0 after root alignment) are not the protocol's
    all17 = float(M.mpjpe(torch.tensor(pred), torch.tensor(gt), 0).mean())
    assert abs(all17 - ref_mp) > 1.0


def test_invalid_joints_enter_neither_error_nor_alignment():
    """InterHand2.6M-style masking: a garbage invalid joint changes nothing; an invalid root drops the sample."""
    from neuralannot_cli.evaluate import metrics as M
    from neuralannot_cli.evaluate.direct import joint_errors_mm

    rng = np.random.default_rng(1)
    gt = rng.normal(size=(3, 21, 3)) * 40.0
    pred = gt + rng.normal(size=gt.shape) * 5.0
    valid = np.ones((3, 21))
    valid[0, [4, 9]] = 0
    valid[2, 0] = 0  # invalid wrist: no root-relative error for this sample
    gt_bad = gt.copy()
    gt_bad[0, [4, 9]] = 1.0e4
    mp, pa, w, _ = joint_errors_mm(torch.tensor(pred), torch.tensor(gt_bad), "hand_21", torch.tensor(valid))
    keep = valid[0] > 0
    p0, g0 = pred[0] - pred[0, 0], gt[0] - gt[0, 0]
    assert M.masked_mean(mp, w)[0].item() == pytest.approx(np.linalg.norm(p0 - g0, axis=1)[keep].mean(), rel=1e-10)
    ref_pa0 = np.linalg.norm(_rigid_align(pred[0][keep], gt[0][keep]) - gt[0][keep], axis=1).mean()
    assert M.masked_mean(pa, w)[0].item() == pytest.approx(ref_pa0, rel=1e-10)
    assert torch.isnan(M.masked_mean(mp, w)[2]) and torch.isnan(M.masked_mean(pa, w)[2])
    auc, _, _ = M.pck_auc(pa, valid=w)
    assert 0.0 < auc <= 1.0


def test_score_predictions_h36m_and_train_overlap():
    """The indirect test metrics use the protocol joints and count test images seen in training."""
    from neuralannot_cli.evaluate.direct import GroundTruth
    from neuralannot_cli.evaluate.indirect import score_predictions

    pred, gt = _h36m_pair(4, seed=2)
    keys = [f"k{i}" for i in range(4)]
    gts = {k: GroundTruth(key=k, joint_set="h36m_17", joints_3d_cam_mm=gt[i], image_path=Path(f"/img/{i}.jpg"))
           for i, k in enumerate(keys)}
    res = score_predictions(torch.tensor(pred), torch.zeros(4, 1, 3), torch.zeros(4, 3), torch.tensor(gt), keys, gts,
                            "body", None, train_images={"/img/1.jpg", "/img/3.jpg", "/other.jpg"})
    ref_mp, ref_pa = _h36m_reference(pred, gt)
    assert res["mpjpe_mm"] == pytest.approx(ref_mp, rel=1e-9)
    assert res["pa_mpjpe_mm"] == pytest.approx(ref_pa, rel=1e-9)
    assert res["num_test"] == 4 and res["num_test_in_train"] == 2
    assert np.isnan(res["mpvpe_mm"]) and np.isnan(res["pck_auc_pa"])


def test_direct_hand_metrics_mask_invalid_gt_joints(standin_dir, tmp_path):
    """End to end: a corrupted GT joint marked invalid (as InterHand2.6M ``joint_valid``) leaves MPJPE / PA-MPJPE
    at the numpy reference over the valid joints."""
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.data.synth import SynthConfig, generate
    from neuralannot_cli.evaluate.direct import BodyModels, GroundTruth, evaluate_records, load_ground_truth
    from neuralannot_cli.io.pseudo_gt import ManoRecord, record_key

    torch.set_num_threads(1)
    generate(SynthConfig(kind="freihand", out_dir=tmp_path, count=3, seed=4, model_dir=standin_dir))
    hidden = json.loads((tmp_path / "annotations" / "synth_hidden_gt_training.json").read_text())
    rng = np.random.default_rng(5)
    recs = {}
    for e in hidden["annotations"].values():
        p = e["params_cam"]
        ids = {"image_number": e["ids"]["index"]}
        r = ManoRecord(key=record_key("freihand", ids), ids=ids, hand_type="right",
                       root_rotvec=np.asarray(p["root_rotvec"]) + rng.normal(0, 0.1, 3),
                       hand_pose_rotvecs=np.asarray(p["hand_pose_rotvecs"]) + rng.normal(0, 0.2, (15, 3)),
                       betas=p["betas"], transl_m=p["transl_m"], focal_px=e["focal_px"], princpt_px=e["princpt_px"])
        recs[r.key] = r
    _, gts = load_ground_truth(tmp_path / "training_xyz.json", part="hand")
    bad = {}
    for k, g in gts.items():
        j = g.joints_3d_cam_mm.copy()
        j[[7, 18]] += 5000.0
        v = np.ones(21)
        v[[7, 18]] = 0
        bad[k] = GroundTruth(key=k, joint_set=g.joint_set, joints_3d_cam_mm=j, keypoints_2d_px=g.keypoints_2d_px,
                             keypoints_weight=g.keypoints_weight, joints_3d_valid=v)
    m = evaluate_records(recs, bad, BodyModels(standin_dir))
    model = load_body_model("mano", model_dir=standin_dir, dtype=torch.float64)
    keep = np.ones(21, bool)
    keep[[7, 18]] = False
    mp, pa = [], []
    for k, r in recs.items():
        out = model(root_rotvec=torch.tensor(r.root_rotvec[None]),
                    hand_pose_rotvecs=torch.tensor(r.hand_pose_rotvecs[None]),
                    betas=torch.tensor(r.betas[None]), transl_m=torch.tensor(r.transl_m[None]))
        pred = model.joints_in(out, "hand_21")[0].numpy() * 1000.0
        gt = gts[k].joints_3d_cam_mm
        mp.append(np.linalg.norm((pred - pred[0]) - (gt - gt[0]), axis=1)[keep].mean())
        pa.append(np.linalg.norm(_rigid_align(pred[keep], gt[keep]) - gt[keep], axis=1).mean())
    assert m.num_3d == 3
    assert m.mpjpe_mm == pytest.approx(np.mean(mp), rel=1e-3)
    assert m.pa_mpjpe_mm == pytest.approx(np.mean(pa), rel=1e-3)
    assert np.isnan(m.per_joint_mpjpe_mm[7]) and np.isfinite(m.per_joint_mpjpe_mm[keep]).all()


def _mpii_pck_auc(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(3DPCK, AUC) in percent of ``(N, 17, 3)`` mm joints as the MPI-INF-3DHP MATLAB script: errors after
    translating both skeletons to their pelvis (joint 15), then the script's joint groups
    (``tests.test_metrics._mpii_3d_pck_reference``)."""
    from tests.test_metrics import _mpii_3d_pck_reference

    err = np.linalg.norm((pred - pred[:, 14:15]) - (gt - gt[:, 14:15]), axis=-1)  # (N, 17)
    return _mpii_3d_pck_reference(err)


def test_score_predictions_mpi3dhp_pck_auc():
    from neuralannot_cli.evaluate.direct import GroundTruth
    from neuralannot_cli.evaluate.indirect import score_predictions

    rng = np.random.default_rng(7)
    gt = rng.normal(size=(6, 17, 3)) * 300.0 + np.array([0.0, 0.0, 4000.0])
    pred = gt + rng.normal(size=gt.shape) * 70.0 + rng.normal(size=(6, 1, 3)) * 100.0
    keys = [f"k{i}" for i in range(6)]
    gts = {k: GroundTruth(key=k, joint_set="mpi3dhp_17", joints_3d_cam_mm=gt[i], image_path=Path(f"/i/{i}.jpg"))
           for i, k in enumerate(keys)}
    res = score_predictions(torch.tensor(pred), torch.zeros(6, 1, 3), torch.zeros(6, 3), torch.tensor(gt), keys,
                            gts, "body", None)
    ref_pck, ref_auc = _mpii_pck_auc(pred, gt)
    assert 5.0 < ref_pck < 99.0
    assert res["pck3d_150mm"] == pytest.approx(ref_pck, abs=1e-9)
    assert res["auc3d_0_150mm"] == pytest.approx(ref_auc, abs=1e-9)
    h36m = {k: GroundTruth(key=k, joint_set="h36m_17", joints_3d_cam_mm=g.joints_3d_cam_mm) for k, g in gts.items()}
    res = score_predictions(torch.tensor(pred), torch.zeros(6, 1, 3), torch.zeros(6, 3), torch.tensor(gt), keys,
                            h36m, "body", None)
    assert np.isnan(res["pck3d_150mm"]) and np.isnan(res["auc3d_0_150mm"])  # a Human3.6M protocol has none


def _mpi_set(standin_dir, root: Path, noise: float = 0.35):
    """A 4-view MPI-INF-3DHP-format set (one frame) and camera-frame records of it with pose noise, each carrying
    its extrinsics and rest pelvis (what ``annotate`` writes into the field's world-frame layout)."""
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.data.synth import SynthConfig, generate
    from neuralannot_cli.io.pseudo_gt import SmplxRecord, record_key

    torch.set_num_threads(1)
    generate(SynthConfig(kind="mpi3dhp", out_dir=root, count=4, image_size=64, seed=1, model_dir=standin_dir))
    hidden = json.loads((root / "annotations" / "synth_hidden_gt_train.json").read_text())
    model = load_body_model("smplx", model_dir=standin_dir, dtype=torch.float64)
    rng = np.random.default_rng(2)
    recs = {}
    for e in hidden["annotations"].values():
        p = e["params_cam"]
        betas = np.asarray(p["betas"])
        with torch.no_grad():
            rest = model(betas=torch.tensor(betas[None])).kinematic_joints[0, 0].numpy()
        r = SmplxRecord(key=record_key("mpi3dhp", e["ids"]), ids=dict(e["ids"]), root_rotvec=p["root_rotvec"],
                        body_pose_rotvecs=np.asarray(p["body_pose_rotvecs"]) + rng.normal(0, noise, (21, 3)),
                        betas=betas, transl_m=p["transl_m"], focal_px=e["focal_px"], princpt_px=e["princpt_px"],
                        cam_rotmat=np.asarray(e["cam_rotmat"]), cam_trans_mm=np.asarray(e["cam_trans_mm"]),
                        rest_pelvis_m=rest)
        recs[r.key] = r
    return recs, model


def _write_ours_and_released(recs: dict, ours: Path, released: Path) -> None:
    """Write ``recs`` in the MPI-INF-3DHP world-frame layout to ``ours``, and the same file without this tool's
    ``neuralannot`` extras (the released layout: no extrinsics, no rest pelvis) to ``released``."""
    from neuralannot_cli.io.pseudo_gt import write_pseudo_gt_json

    write_pseudo_gt_json(list(recs.values()), ours, dataset_kind="mpi3dhp")
    data = json.loads(ours.read_text())
    for seqs in data.values():
        for frames in seqs.values():
            for entry in frames.values():
                entry.pop("neuralannot")
    released.write_text(json.dumps(data))


def _joints64(model, r, joint_set: str) -> np.ndarray:
    with torch.no_grad():
        out = model(root_rotvec=torch.tensor(np.asarray(r.root_rotvec)[None]),
                    body_pose_rotvecs=torch.tensor(np.asarray(r.body_pose_rotvecs)[None]),
                    betas=torch.tensor(np.asarray(r.betas)[None]), transl_m=torch.tensor(np.asarray(r.transl_m)[None]))
    return model.joints_in(out, joint_set)[0].numpy() * 1000.0


def test_direct_mpi3dhp_pck_auc_end_to_end(standin_dir, tmp_path):
    """``evaluate direct`` on an MPI-INF-3DHP-format set: 3DPCK / AUC of the records' forwarded joints against
    the loader's GT, as the MATLAB script (numpy, float64 body model); through the CLI the written file (one
    world-frame entry per frame, the field's layout) is scored in all four views and the table shows both columns."""
    from typer.testing import CliRunner

    from neuralannot_cli.cli.main import app
    from neuralannot_cli.evaluate.direct import BodyModels, evaluate_records, load_ground_truth
    from neuralannot_cli.io.pseudo_gt import write_pseudo_gt_json

    root = tmp_path / "mpi"
    recs, model = _mpi_set(standin_dir, root)
    _, gts = load_ground_truth(root / "MPI-INF-3DHP_1k.json", part="body")
    m = evaluate_records(recs, gts, BodyModels(standin_dir))
    pred = {k: _joints64(model, r, "mpi3dhp_17") for k, r in recs.items()}
    keys = sorted(recs)
    ref_pck, ref_auc = _mpii_pck_auc(np.stack([pred[k] for k in keys]), np.stack([gts[k].joints_3d_cam_mm for k in keys]))
    assert m.num_3d == 4 and 5.0 < ref_pck < 99.5
    assert m.pck3d_150mm == pytest.approx(ref_pck, abs=1e-6)
    assert m.auc3d_0_150mm == pytest.approx(ref_auc, abs=0.05)  # float32 forward: a threshold may flip one error
    assert m.summary()["pck3d_150mm"] == pytest.approx(ref_pck, abs=1e-3)

    pgt = tmp_path / "pgt.json"
    write_pseudo_gt_json(list(recs.values()), pgt, dataset_kind="mpi3dhp")  # keeps camera 0's record (no scores)
    kept = "1/1/0/0"
    res = CliRunner(env={"COLUMNS": "250"}).invoke(app, [
        "evaluate", "direct", str(pgt), "--dataset", str(root / "MPI-INF-3DHP_1k.json"), "--model-dir",
        str(standin_dir), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "3DPCK@150" in res.output and "AUC 0-150" in res.output and "3 views scored" in res.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())["methods"][0]
    # the kept entry in each view: root-relative errors are those of the kept view, four times
    ref_pck1, _ = _mpii_pck_auc(pred[kept][None], gts[kept].joints_3d_cam_mm[None])
    assert rep["num_3d"] == 4 and rep["num_records"] == 1 and rep["num_views_placed"] == 3
    assert rep["pck3d_150mm"] == pytest.approx(ref_pck1, abs=1e-3)


def test_world_frame_entries_are_scored_in_every_view(standin_dir, tmp_path):
    """A Human3.6M / MPI-INF-3DHP world-frame entry is placed in each view of its frame (as Hand4Whole's loader
    does): the placed joints are the kept view's joints moved through the world frame by the two extrinsics (numpy
    float64), and a foreign file (the released layout, without this tool's extras: rest pelvis from the body
    model) scores exactly as this tool's file."""
    from neuralannot_cli.evaluate.direct import BodyModels, evaluate_direct, load_ground_truth, records_in_every_view
    from neuralannot_cli.io.pseudo_gt import read_pseudo_gt

    root = tmp_path / "mpi"
    recs, model = _mpi_set(standin_dir, root, noise=0.2)
    _, gts = load_ground_truth(root / "MPI-INF-3DHP_1k.json", part="body")
    kept = recs["1/1/0/0"]
    placed, n, sources = records_in_every_view({kept.key: kept}, {k: g.view for k, g in gts.items()}, "mpi3dhp",
                                               BodyModels(standin_dir))
    assert n == 3 and sorted(placed) == sorted(gts) and sources == {kept.key}
    j0 = _joints64(model, kept, "mpi3dhp_17")
    world = (j0 - kept.cam_trans_mm) @ kept.cam_rotmat  # R^T (X - t), row vectors
    for k, r in placed.items():
        v = gts[k].view
        expected = world @ v.cam_rotmat.T + v.cam_trans_mm
        # 1 um: the loader keeps the extrinsics in float32 (Sample.extras), ~1e-7 relative at ~3 m
        np.testing.assert_allclose(_joints64(model, r, "mpi3dhp_17"), expected, atol=1e-3)
        np.testing.assert_allclose(r.focal_px, v.focal_px)
    # this tool's file vs the same file stripped of its extras (the released layout)
    ours, foreign = tmp_path / "ours.json", tmp_path / "MPI-INF-3DHP_SMPLX_NeuralAnnot.json"
    _write_ours_and_released(recs, ours, foreign)
    assert {r.frame for r in read_pseudo_gt(foreign).values()} == {"world"}
    rep = evaluate_direct({"ours": ours, "released": foreign}, root / "MPI-INF-3DHP_1k.json", model_dir=standin_dir)
    a, b = rep.methods
    assert a.num_3d == b.num_3d == 4 and b.num_placed == 4 and a.num_placed == 3
    assert b.mpjpe_mm == pytest.approx(a.mpjpe_mm, abs=1e-4) and b.pa_mpjpe_mm == pytest.approx(a.pa_mpjpe_mm, abs=1e-4)
    assert b.error_2d_px == pytest.approx(a.error_2d_px, abs=1e-4) and a.error_2d_px > 0.1
    # overlays: the released file is drawn in all four views
    from neuralannot_cli.evaluate.overlay import render_overlays

    drawn = render_overlays(foreign, root / "MPI-INF-3DHP_1k.json", tmp_path / "ov", model_dir=standin_dir, tile_px=64)
    assert sorted(drawn.keys) == sorted(gts) and drawn.grid is not None and drawn.grid.is_file()


def test_mesh_root_is_the_regressed_pelvis(standin_dir):
    """``forward_params``' root = ``J_regressor[0] @ posed vertices`` (float64 numpy), as Hand4Whole's MPVPE."""
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.evaluate.direct import forward_params

    model = load_body_model("smplx", model_dir=standin_dir, dtype=torch.float64)
    rng = np.random.default_rng(3)
    with torch.no_grad():  # pose-corrective blend shapes, as the real SMPL-X has (the stand-in's are zero)
        model.layer.posedirs.add_(torch.tensor(rng.normal(0, 2e-3, tuple(model.layer.posedirs.shape))))
    params = [{"root_rotvec": rng.normal(0, 0.5, 3), "body_pose_rotvecs": rng.normal(0, 0.4, (21, 3)),
               "betas": rng.normal(0, 1.0, model.num_betas), "transl_m": rng.normal(0, 0.5, 3)} for _ in range(2)]
    verts, _, roots = forward_params(model, params, None)
    reg = model.layer.J_regressor[0].detach().cpu().double().numpy()
    expected = np.einsum("v,nvc->nc", reg, verts)
    np.testing.assert_allclose(roots, expected, atol=1e-10)
    with torch.no_grad():
        kin0 = model(**{k: torch.tensor(np.stack([p[k] for p in params])) for k in params[0]}).kinematic_joints[:, 0]
    assert np.linalg.norm(kin0.numpy() - expected, axis=1).min() > 1e-4  # > 0.1 mm: the two roots differ


def test_interhand_world_frame_file_scored_in_every_camera(standin_dir, tmp_path):
    """InterHand2.6M: one world-frame hand per (capture, frame, side) in the field's file; ``evaluate direct``
    scores it in every camera of that frame. Root-relative errors do not depend on the view, so each view's error
    is the kept view's (numpy, float64 MANO); the released layout (extras stripped: rest wrist from MANO) scores
    the same."""
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.data.synth import SynthConfig, generate
    from neuralannot_cli.evaluate.direct import evaluate_direct, load_ground_truth
    from neuralannot_cli.io.pseudo_gt import ManoRecord, write_pseudo_gt_json

    torch.set_num_threads(1)
    root = tmp_path / "ih"
    generate(SynthConfig(kind="interhand", out_dir=root, count=4, image_size=64, seed=1, model_dir=standin_dir))
    data_json = root / "annotations" / "train" / "InterHand2.6M_train_data.json"
    hidden = json.loads((root / "annotations" / "synth_hidden_gt_train.json").read_text())
    _, gts = load_ground_truth(data_json, part="hand")
    by_view = {(g.view.ids["capture"], str(g.view.ids["camera"]), g.view.ids["frame"], g.hand_side): k
               for k, g in gts.items()}
    mano = load_body_model("mano", model_dir=standin_dir, dtype=torch.float64)
    rng = np.random.default_rng(4)
    recs = []
    for e in hidden["annotations"].values():
        ids, p = e["ids"], e["params_cam"]
        key = by_view[(ids["capture"], str(ids["camera"]), ids["frame"], ids["hand_side"])]
        v = gts[key].view
        betas = np.asarray(p["betas"], np.float64).reshape(-1)[:10]
        with torch.no_grad():
            rest = mano(betas=torch.tensor(betas[None])).kinematic_joints[0, 0].numpy()
        recs.append(ManoRecord(key=key, ids=dict(v.ids), hand_type=ids["hand_side"],
                               root_rotvec=np.asarray(p["root_rotvec"], np.float64).reshape(3),
                               hand_pose_rotvecs=np.asarray(p["hand_pose_rotvecs"]).reshape(15, 3)
                               + rng.normal(0, 0.3, (15, 3)),
                               betas=betas, transl_m=np.asarray(p["transl_m"]).reshape(3), focal_px=v.focal_px,
                               princpt_px=v.princpt_px, cam_rotmat=v.cam_rotmat, cam_trans_mm=v.cam_trans_mm,
                               rest_wrist_m=rest))
    ours = tmp_path / "InterHand2.6M_train_MANO_NeuralAnnot.json"
    write_pseudo_gt_json(recs, ours, dataset_kind="interhand")  # keeps the lowest camera of the frame
    kept = min(recs, key=lambda r: str(r.ids["camera"]).zfill(8))
    with torch.no_grad():
        out = mano(root_rotvec=torch.tensor(kept.root_rotvec[None]),
                   hand_pose_rotvecs=torch.tensor(kept.hand_pose_rotvecs[None]), betas=torch.tensor(kept.betas[None]),
                   transl_m=torch.tensor(kept.transl_m[None]))
    pred = mano.joints_in(out, "hand_21")[0].numpy() * 1000.0
    gt = gts[kept.key].joints_3d_cam_mm
    ref = np.linalg.norm((pred - pred[0]) - (gt - gt[0]), axis=1).mean()

    data = json.loads(ours.read_text())
    for frames in data.values():
        for hands in frames.values():
            for entry in hands.values():
                if entry is not None:
                    entry.pop("neuralannot")
    foreign = tmp_path / "released" / ours.name
    foreign.parent.mkdir()
    foreign.write_text(json.dumps(data))
    rep = evaluate_direct({"ours": ours, "released": foreign}, data_json, model_dir=standin_dir)
    a, b = rep.methods
    assert a.num_records == b.num_records == 1
    assert a.num_3d == b.num_3d == 4 and a.num_placed == 3 and b.num_placed == 4
    assert a.mpjpe_mm == pytest.approx(ref, rel=1e-4) and ref > 1.0
    assert b.mpjpe_mm == pytest.approx(a.mpjpe_mm, abs=1e-4) and b.error_2d_px == pytest.approx(a.error_2d_px, abs=1e-3)


def test_indirect_trains_on_every_view_of_a_world_frame_file(standin_dir, tmp_path):
    """``evaluate indirect --train`` a Human3.6M / MPI-INF-3DHP world-frame pseudo-GT: each view of a frame is a
    training sample (the field's loaders do the same); an entry of a frame the dataset lacks counts as skipped."""
    from types import SimpleNamespace

    from neuralannot_cli.evaluate.indirect import training_records
    from neuralannot_cli.io.pseudo_gt import read_pseudo_gt, write_pseudo_gt_json

    root = tmp_path / "mpi"
    recs, _ = _mpi_set(standin_dir, root, noise=0.1)
    extra = dataclasses.replace(recs["1/1/0/0"], key="1/1/99/0", ids={**recs["1/1/0/0"].ids, "frame": 99})
    pgt = tmp_path / "pgt.json"
    write_pseudo_gt_json([*recs.values(), extra], pgt, dataset_kind="mpi3dhp")
    assert len(read_pseudo_gt(pgt, dataset_kind="mpi3dhp")) == 2  # two frames, one entry each
    cfg = SimpleNamespace(train_pseudo_gt=pgt, train_kind="auto", train_dataset=root / "MPI-INF-3DHP_1k.json",
                          model_dir=standin_dir, device="cpu")
    part, records, samples, keys, skipped = training_records(cfg)
    assert part == "body" and keys == sorted(recs) and skipped == 1
    kept = recs["1/1/0/0"]
    np.testing.assert_allclose(records[kept.key].root_rotvec, kept.root_rotvec, atol=1e-9)
    for k in keys:  # every view carries the kept view's body pose and its own camera
        np.testing.assert_allclose(records[k].body_pose_rotvecs, kept.body_pose_rotvecs, atol=1e-12)
        np.testing.assert_allclose(records[k].focal_px, samples[k].focal_px, rtol=1e-6)


def test_init_from_a_world_frame_file_starts_every_view(standin_dir, tmp_path):
    """``annotate --method smplifyx --init`` of a world-frame file (the released layout: no extrinsics of ours)
    starts every view of its frames with that frame's entry in that camera; without the dataset it refuses."""
    from neuralannot_cli.io.annotate_run import init_from_pseudo_gt
    from neuralannot_cli.io.pseudo_gt import read_pseudo_gt

    root = tmp_path / "mpi"
    recs, model = _mpi_set(standin_dir, root, noise=0.1)
    ours = tmp_path / "ours" / "MPI-INF-3DHP_SMPLX_NeuralAnnot.json"
    ours.parent.mkdir()
    released = tmp_path / "MPI-INF-3DHP_SMPLX_NeuralAnnot.json"
    _write_ours_and_released(recs, ours, released)
    with pytest.raises(ValueError, match="world-frame record"):
        init_from_pseudo_gt(released, "body")
    starts = init_from_pseudo_gt(released, "body", dataset_json=root / "MPI-INF-3DHP_1k.json", model_dir=standin_dir)
    assert sorted(starts) == sorted(recs)
    kept = recs["1/1/0/0"]  # the file's entry came from camera 0: its start there is that record (to the
    # loader's float32 extrinsics)
    np.testing.assert_allclose(starts[kept.key]["root_rotvec"], kept.root_rotvec, atol=1e-5)
    np.testing.assert_allclose(starts[kept.key]["transl_m"], kept.transl_m, atol=1e-5)
    for k, st in starts.items():  # in every view: the kept body, moved by the cameras (joints, numpy)
        np.testing.assert_allclose(st["pose_rotvecs"], kept.body_pose_rotvecs, atol=1e-12)
        v = recs[k]
        start = dataclasses.replace(kept, root_rotvec=st["root_rotvec"], transl_m=st["transl_m"])
        world = (_joints64(model, kept, "mpi3dhp_17") - kept.cam_trans_mm) @ kept.cam_rotmat
        np.testing.assert_allclose(_joints64(model, start, "mpi3dhp_17"), world @ v.cam_rotmat.T + v.cam_trans_mm,
                                   atol=1e-3)
    assert read_pseudo_gt(ours)  # our own file still starts without the dataset (its kept view only)
    assert sorted(init_from_pseudo_gt(ours, "body")) == [kept.key]


def test_world_frame_file_keeps_the_view_of_lowest_2d_error_in_the_sets_joints(standin_dir, tmp_path):
    """An annotator whose keypoints are COCO-WholeBody joints (every body annotator here) on Human3.6M: the view
    a frame keeps is the one whose body, in Human3.6M's own h36m_17 joints projected with the predicted camera,
    is closest to the labelled 2D keypoints (numpy reference, float64 model). Before, no score could be computed
    and the lowest camera was always kept."""
    from types import SimpleNamespace

    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.data.synth import SynthConfig, generate
    from neuralannot_cli.evaluate.direct import load_samples
    from neuralannot_cli.io.annotate_run import AnnotateConfig, run_annotate
    from neuralannot_cli.io.pseudo_gt import record_key

    torch.set_num_threads(1)
    root = tmp_path / "h36m"
    generate(SynthConfig(kind="h36m", out_dir=root, count=4, image_size=64, subjects=(1,), seed=3,
                         model_dir=standin_dir))
    data_json = root / "annotations" / "Human36M_subject1_data.json"
    hidden = json.loads((root / "annotations" / "synth_hidden_gt_train.json").read_text())
    truth = {record_key("h36m", e["ids"]): e["params_cam"] for e in hidden["annotations"].values()}
    noise = {k: 0.05 + 0.1 * i for i, k in enumerate(sorted(truth, key=lambda k: -int(k.rsplit("/", 1)[1])))}

    class Noisy:  # the true body per view, its pose perturbed the more the lower the camera number
        method, needs_images, input_size, is_standin, joint_set, part = "noisy", False, 0, True, "coco_wholebody_23", "body"
        params: dict = {}

        def describe(self):
            return {}

        def predict_samples(self, samples, keys, mirrored, batch):
            for k in keys:
                p = truth[k]
                rng = np.random.default_rng(list(k.encode()))
                self.params[k] = dict(root=np.asarray(p["root_rotvec"], np.float64).reshape(3),
                                      pose=np.asarray(p["body_pose_rotvecs"]).reshape(21, 3)
                                      + rng.normal(0, noise[k], (21, 3)),
                                      betas=np.asarray(p["betas"]).reshape(-1)[:10],
                                      transl=np.asarray(p["transl_m"]).reshape(3))
            ps = [self.params[k] for k in keys]
            return SimpleNamespace(**{n: np.stack([x[m] for x in ps]) for n, m in (
                ("root_rotvec", "root"), ("pose_rotvecs", "pose"), ("betas", "betas"), ("transl_cam_m", "transl"))},
                focal_px=np.array([s.focal_px for s in samples]), princpt_px=np.array([s.princpt_px for s in samples]),
                keypoints_2d_px=None)

    pred = Noisy()
    out = tmp_path / "pgt"
    run_annotate(AnnotateConfig(dataset_json=data_json, checkpoint=None, out=out / "x.json", model_dir=standin_dir),
                 pred)
    written = json.loads((out / "Human36M_subject1_SMPLX_NeuralAnnot.json").read_text())
    _, samples = load_samples(data_json, "h36m", part="body", gt_3d=False)
    model = load_body_model("smplx", model_dir=standin_dir, dtype=torch.float64)
    frames: dict[str, list[str]] = {}
    for k in samples:
        frames.setdefault(k.rsplit("/", 1)[0], []).append(k)
    checked = 0
    for fk, ks in frames.items():
        errs = {}
        for k in ks:
            p, s = pred.params[k], samples[k]
            with torch.no_grad():
                o = model(root_rotvec=torch.tensor(p["root"][None]), body_pose_rotvecs=torch.tensor(p["pose"][None]),
                          betas=torch.tensor(p["betas"][None]), transl_m=torch.tensor(p["transl"][None]))
            j = model.joints_in(o, "h36m_17")[0].numpy()
            px = j[:, :2] / j[:, 2:] * np.asarray(s.focal_px) + np.asarray(s.princpt_px)
            w = np.asarray(s.keypoints_conf) > 0
            errs[k] = np.linalg.norm(px[w] - np.asarray(s.keypoints_2d_px)[w], axis=1).mean()
        subject, act, sub, frame = fk.split("/")
        entry = written[act][sub][frame]["neuralannot"]
        best = min(errs, key=errs.get)
        assert entry["key"] == best and entry["score"] == pytest.approx(errs[best], rel=1e-4), (errs, entry["key"])
        checked += len(ks) > 1 and best != min(ks, key=lambda k: int(k.rsplit("/", 1)[1]))
    assert checked >= 1  # at least one frame keeps a view other than the lowest camera
