"""Evaluation protocol against the field's conventions, with independent float64 numpy references.

- Human3.6M protocol 2 (I2L-MeshNet / Hand4Whole ``data/Human36M/Human36M.py`` ``evaluate``): root-relative at the
  pelvis over all 17 joints, then the 14 ``eval_joint`` (1..6, 8, 10..16); PA = ``rigid_align`` (with scale) on
  those 14.
- Invalid GT joints (InterHand2.6M ``joint_valid``) enter neither the errors nor the Procrustes alignment.
- MPVPE translates each mesh by ``J_regressor[0] @ vertices`` (Hand4Whole ``data/EHF/EHF.py``).
- ``evaluate indirect`` counts test images that were training images.
"""

from __future__ import annotations

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
