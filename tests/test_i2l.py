"""I2L-MeshNet-style lixel estimator: soft-argmax, lixel encoding, mesh sampling / joint regressor, overfitting,
metric 3D recovery from GT lixels, and ``neuralannot evaluate indirect --estimator i2l``.

References: float64 formulas (softmax expectation, pinhole projection), the hidden GT of a tiny synthetic
FreiHAND set (stand-in MANO), the body model's own output joints.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.evaluate.i2l import decode_lixels, encode_lixels, soft_argmax_1d, subsample_mesh
from neuralannot_cli.io.pseudo_gt import ManoRecord, record_key, write_meta, write_pseudo_gt_json

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def frei(standin_dir, tmp_path_factory):
    """3 synthetic FreiHAND samples + exact pseudo-GT from their hidden GT."""
    from neuralannot_cli.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("frei_i2l")
    torch.set_num_threads(1)
    generate(SynthConfig(kind="freihand", out_dir=out, count=3, seed=4, model_dir=standin_dir))
    hidden = json.loads((out / "annotations" / "synth_hidden_gt_training.json").read_text())
    recs = []
    for e in hidden["annotations"].values():
        p = e["params_cam"]
        ids = {"image_number": e["ids"]["index"]}
        recs.append(ManoRecord(key=record_key("freihand", ids), ids=ids, hand_type="right", root_rotvec=p["root_rotvec"],
                               hand_pose_rotvecs=p["hand_pose_rotvecs"], betas=p["betas"], transl_m=p["transl_m"],
                               focal_px=e["focal_px"], princpt_px=e["princpt_px"]))
    pgt = out / "pgt.json"
    write_pseudo_gt_json(recs, pgt, dataset_kind="freihand")
    write_meta(pgt, {"dataset_kind": "freihand", "seconds": 1.0, "images_per_s": 3.0, "method": "test"})
    return {"root": out, "pgt": pgt, "ds": out / "training_xyz.json",
            "gt": out / "annotations" / "synth_hidden_gt_training.json", "records": recs}


def test_soft_argmax_recovers_peak_and_matches_float64_reference():
    length = 16
    i = torch.arange(length, dtype=torch.float64)
    centres = torch.tensor([4.0, 7.0, 11.0], dtype=torch.float64)
    logits = -((i[None] - centres[:, None]) ** 2) / (2 * 0.5**2)  # symmetric Gaussian; missing tail bins weigh < 1e-13
    got = soft_argmax_1d(logits[None])[0]
    assert torch.allclose(got, centres, atol=1e-12, rtol=0)
    hard = torch.full((1, 1, length), -1e4, dtype=torch.float64)
    hard[0, 0, 13] = 0.0
    assert soft_argmax_1d(hard).item() == pytest.approx(13.0, abs=1e-12)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (2, 5, length))
    p = np.exp(x - x.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True) * np.arange(length)).sum(-1)
    np.testing.assert_allclose(soft_argmax_1d(torch.tensor(x)).numpy(), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(batch, N, L\).*\(4, 16\)"):
        soft_argmax_1d(torch.zeros(4, 16))


def test_lixel_encode_decode_round_trip_and_known_values():
    torch.manual_seed(0)
    b, n, size, hm, rng_m = 3, 50, 64, 16, 2.0
    root_z = torch.tensor([3.0, 4.5, 6.0], dtype=torch.float64)
    pts = torch.randn(b, n, 3, dtype=torch.float64) * 0.4
    pts[..., 2] = pts[..., 2].clamp(-0.9, 0.9) + root_z[:, None]
    focal = torch.tensor([[1000.0, 1010.0], [800.0, 800.0], [1500.0, 1400.0]], dtype=torch.float64)
    princpt = torch.tensor([[320.0, 240.0], [250.0, 260.0], [500.0, 400.0]], dtype=torch.float64)
    scale = torch.tensor([0.2, 0.15, 0.1], dtype=torch.float64)
    shift = torch.tensor([[-30.0, -10.0], [-5.0, -12.0], [-18.0, -7.0]], dtype=torch.float64)
    affine = torch.zeros(b, 2, 3, dtype=torch.float64)
    affine[:, 0, 0] = affine[:, 1, 1] = scale
    affine[:, :, 2] = shift
    lix = encode_lixels(pts, root_z, focal, princpt, affine, size, hm, rng_m)
    # known values, float64 pinhole + affine + pixel-centre mapping written out independently
    uv = pts[..., :2] / pts[..., 2:] * focal[:, None] + princpt[:, None]
    crop = uv * scale[:, None, None] + shift[:, None]
    assert torch.allclose(lix[..., :2], (crop + 0.5) / 4.0 - 0.5, atol=1e-10)
    assert torch.allclose(lix[..., 2], ((pts[..., 2] - root_z[:, None]) / rng_m + 0.5) * hm - 0.5, atol=1e-12)
    # the root's depth is the centre of the depth bins
    assert encode_lixels(torch.tensor([[[0.0, 0.0, 3.0]]], dtype=torch.float64), root_z[:1], focal[:1], princpt[:1],
                         affine[:1], size, hm, rng_m)[0, 0, 2].item() == pytest.approx((hm - 1) / 2)
    back = decode_lixels(lix, root_z, focal * scale[:, None], princpt * scale[:, None] + shift, size, hm, rng_m)
    assert torch.allclose(back, pts, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match=r"crop_affine.*\(3, 2, 3\).*\(3, 3, 3\)"):
        encode_lixels(pts, root_z, focal, princpt, torch.zeros(3, 3, 3, dtype=torch.float64), size, hm, rng_m)


def test_mesh_sampling_and_joint_regressor(standin_dir):
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.evaluate.i2l import mesh_joint_regressor

    torch.set_num_threads(1)
    mano = load_body_model("mano", model_dir=standin_dir, dtype=torch.float64)
    s = subsample_mesh(mano.layer.v_template, 200)
    assert s.num_sampled == 200 and len(set(s.indices.tolist())) == 200
    up = s.upsampling_matrix(mano.num_vertices)
    assert torch.allclose(up.sum(1), torch.ones(mano.num_vertices, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(up[s.indices], torch.eye(200, dtype=torch.float64), atol=0)  # sampled map to themselves
    # farthest-point sampling covers the hand: every vertex within the largest gap of 3 nearest samples
    d = torch.cdist(mano.layer.v_template.double(), mano.layer.v_template.double()[s.indices]).min(1).values
    assert d.max() < 0.02
    assert subsample_mesh(mano.layer.v_template, 10_000).num_sampled == mano.num_vertices
    torch.manual_seed(1)
    out = mano(root_rotvec=torch.randn(2, 3, dtype=torch.float64), hand_pose_rotvecs=0.3 * torch.randn(2, 15, 3, dtype=torch.float64),
               betas=torch.randn(2, 10, dtype=torch.float64))
    reg = mesh_joint_regressor(mano).double()
    assert reg.shape == (16, mano.num_vertices)
    assert torch.allclose(torch.einsum("jv,bvc->bjc", reg, out.vertices), out.joints, atol=1e-6)
    smplx = load_body_model("smplx", model_dir=standin_dir)
    out = smplx(body_pose_rotvecs=0.2 * torch.randn(1, 21, 3), root_rotvec=torch.tensor([[0.0, 0.3, 0.0]]))
    reg = mesh_joint_regressor(smplx)
    j = torch.einsum("jv,bvc->bjc", reg, out.vertices)
    assert reg.shape[0] == out.joints.shape[1]
    k = smplx.num_kinematic_joints
    # vertex joints (nose, eyes, ears, feet, finger tips) and static landmarks: exact; contour: not checked
    n_exact = out.joints.shape[1] - k - 17
    assert torch.allclose(j[:, k:k + n_exact], out.joints[:, k:k + n_exact], atol=1e-5)
    assert (j[:, :k] - out.joints[:, :k]).norm(dim=-1).mean() < 0.01  # posed-mesh regression, < 1 cm


def test_gt_lixels_decode_to_gt_metric_3d(frei, standin_dir):
    """The hidden GT, encoded to lixels with the crop of each test item and decoded by the test path (GT root
    depth, crop camera, mesh joint regressor, joint set), gives the GT joints: MPJPE ~ 0."""
    from neuralannot_cli.evaluate.direct import load_samples, root_joint_indices
    from neuralannot_cli.evaluate.i2l import I2LEstimator, LixelNet, _make_targets, lixels_to_camera, \
        mesh_joint_regressor
    from neuralannot_cli.evaluate.indirect import _with_index

    from neuralannot_cli.body import load_body_model

    torch.set_num_threads(1)
    body = load_body_model("mano", model_dir=standin_dir)
    sampling = subsample_mesh(body.layer.v_template, body.num_vertices)
    reg = mesh_joint_regressor(body)
    _, samples = load_samples(frei["ds"], part="hand")
    keys = [r.key for r in frei["records"]]
    targets = _make_targets(frei["records"], body, sampling, reg, 16)
    ds = _with_index([samples[k] for k in keys], 64)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    net = LixelNet("hand", 16, sampling.num_sampled, 64)
    est = I2LEstimator(net, sampling, reg, 16, 0.3)
    idx = torch.arange(3)
    lix = encode_lixels(targets.mesh_points.double(), targets.root_depth.double(), targets.focal_px.double(),
                        targets.princpt_px.double(), batch["crop_affine"].double(), 64, 16, 0.3)
    gt = torch.tensor(np.stack([samples[k].joints_3d_cam_mm for k in keys]), dtype=torch.float64)
    roots = root_joint_indices("hand_21", 21)
    verts, joints, root = lixels_to_camera(est, lix, body, "hand_21", 21, roots, gt[idx][:, list(roots), 2].mean(1) / 1000,
                                           batch["focal_crop_px"].double(), batch["princpt_crop_px"].double())
    err_mm = ((joints * 1000 - joints[:, :1] * 1000) - (gt - gt[:, :1])).norm(dim=-1)
    assert err_mm.max() < 0.5, err_mm.max()  # float32 crop camera / targets
    assert torch.allclose(root[:, 2], targets.root_depth.double(), atol=1e-3)


def test_few_adam_steps_overfit_and_cli_prints_metrics(frei, standin_dir, tmp_path):
    from neuralannot_cli.cli.main import app
    from neuralannot_cli.evaluate.i2l import test_i2l, train_i2l
    from neuralannot_cli.evaluate.indirect import IndirectConfig

    torch.set_num_threads(1)
    losses: list[float] = []
    cfg = IndirectConfig("i2l", frei["pgt"], frei["ds"], frei["ds"], test_gt=frei["gt"], epochs=25, batch_size=4,
                         input_size=64, lr=1e-3, model_dir=standin_dir)
    est, info = train_i2l(cfg, on_progress=lambda e, t, loss: losses.append(loss))
    assert info["num_train"] == 3 and len(losses) == 25
    print("i2l overfit losses", losses[0], losses[-1])
    assert losses[-1] < 0.4 * losses[0], losses
    res = test_i2l(est, frei["ds"], hidden_gt=frei["gt"], model_dir=standin_dir)
    assert res["num_test"] == 3 and np.isfinite(res["mpjpe_mm"]) and res["pa_mpjpe_mm"] <= res["mpjpe_mm"] + 1e-9
    print("i2l after 25 steps", res)
    assert np.isfinite(res["mpvpe_mm"]) and 0.0 <= res["pck_auc_pa"] <= 1.0

    out = tmp_path / "res.json"
    r = runner.invoke(app, ["evaluate", "indirect", "--estimator", "i2l", "--train", str(frei["pgt"]),
                            "--train-dataset", str(frei["ds"]), "--test", str(frei["ds"]), "--test-gt", str(frei["gt"]),
                            "--epochs", "2", "--batch-size", "4", "--input-size", "64", "--model-dir", str(standin_dir),
                            "--out", str(out)])
    text = re.sub(r"\x1b\[[0-9;]*m", "", r.output)
    assert r.exit_code == 0, text
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "pa_mpvpe_mm"):
        assert key in text
    doc = json.loads(out.read_text())
    assert doc["estimator"] == "i2l" and doc["num_test"] == 3 and doc["mpvpe_mm"] > 0
    assert doc["num_test_in_train"] == 3 and "3 of the 3 test images were also training images" in text
    r = runner.invoke(app, ["evaluate", "indirect", "--estimator", "i2l", "--train", str(frei["pgt"]),
                            "--train-dataset", str(frei["ds"]), "--test", str(frei["ds"]), "--input-size", "80",
                            "--model-dir", str(standin_dir)])
    assert r.exit_code == 1 and "multiple of 32" in re.sub(r"\x1b\[[0-9;]*m", "", r.output)
