"""Baseline annotator (fit_samples): hand samples incl. a LEFT hand fitted with the left MANO, init from
known parameters ("SMPLify-X on ours"), Prediction-compatible fields, input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neuralannot_cli.camera import project_perspective
from neuralannot_cli.data.record import Sample


def _hand_samples(standin_dir: Path, n: int, seed: int):
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.data import synth_pose as sp

    rng = np.random.default_rng(seed)
    out, gts = [], []
    for i in range(n):
        side = "left" if i % 2 else "right"
        model = load_body_model("mano", is_rhand=side == "right", model_dir=standin_dir)
        mean = model.layer.hand_mean.detach().numpy().reshape(15, 3)
        gt = {
            "root_rotvec": torch.tensor(sp.euler_deg_to_rotvec(np.array([[180 + rng.uniform(-20, 20), rng.uniform(-20, 20), 0]])), dtype=torch.float32),
            "hand_pose_rotvecs": torch.tensor(sp.sample_hand_pose_rotvecs_abs(rng, 1, is_right=side == "right") - mean[None], dtype=torch.float32),
            "betas": torch.zeros(1, 10),
            "transl_m": torch.tensor([[rng.uniform(-0.05, 0.05), 0.0, 0.5]], dtype=torch.float32),
        }
        with torch.no_grad():
            kp = project_perspective(model.joints_in(model(**gt), "hand_21"), (800.0, 800.0), (200.0, 200.0))[0]
        out.append(Sample(dataset="coco_wholebody", image_path=Path("x.jpg"), image_hw=(400, 400),
                          bbox_xywh_px=np.array([100, 100, 200, 200], np.float32), keypoints_2d_px=kp.numpy(),
                          keypoints_conf=np.ones(21, np.float32), joint_set="hand_21", focal_px=(800.0, 800.0),
                          princpt_px=(200.0, 200.0), ids={"ann_id": i, "hand_side": side}, extras={"hand_side": side}))
        gts.append(gt)
    return out, gts


def test_hand_baseline_left_and_right_and_init(standin_dir: Path):
    from neuralannot_cli.fit.baseline import fit_samples
    from neuralannot_cli.fit.engine import default_fit_config

    samples, gts = _hand_samples(standin_dir, 2, seed=0)
    cfg = default_fit_config("hand", iterations_scale=0.15)
    pred = fit_samples(samples, part="hand", config=cfg, model_dir=standin_dir, keys=["a", "b"])
    assert pred.keys == ("a", "b") and pred.mirrored.tolist() == [False, True]
    assert pred.pose_rotvecs.shape == (2, 15, 3) and pred.keypoints_2d_px.shape == (2, 21, 2)
    assert pred.joints_3d_cam_mm.shape == (2, 21, 3) and pred.cam_sxy.shape == (2, 3)
    kp = torch.tensor(np.stack([s.keypoints_2d_px for s in samples]))
    err = (pred.keypoints_2d_px - kp).norm(dim=-1).mean(-1)
    np.testing.assert_allclose(err.numpy(), pred.reproj_err_px.numpy(), atol=1e-3)
    assert (err < 10.0).all(), err
    # projection consistency: keypoints_2d_px are the projected joints_3d_cam_mm
    np.testing.assert_allclose(project_perspective(pred.joints_3d_cam_mm / 1000.0, pred.focal_px, pred.princpt_px),
                               pred.keypoints_2d_px, atol=1e-2)

    # "SMPLify-X on ours": started at the true parameters (LEFT hand given as left-MANO params), the fit stays
    init = {k: {"root_rotvec": g["root_rotvec"][0], "pose_rotvecs": g["hand_pose_rotvecs"][0], "betas": g["betas"][0],
                "transl_m": g["transl_m"][0]} for k, g in zip(["a", "b"], gts)}
    # (L-BFGS as SMPLify-X: Adam's first, normalised steps move every coordinate by ~lr and need more
    # iterations than this short schedule to come back)
    lbfgs = default_fit_config("hand", iterations_scale=0.15, optimizer="lbfgs")
    pred2 = fit_samples(samples, part="hand", config=lbfgs, model_dir=standin_dir, keys=["a", "b"], init=init)
    assert (pred2.reproj_err_px < 0.5).all(), pred2.reproj_err_px
    for i, g in enumerate(gts):
        np.testing.assert_allclose(pred2.transl_cam_m[i].numpy(), g["transl_m"][0].numpy(), atol=0.01)


def test_baseline_input_checks(standin_dir: Path):
    from neuralannot_cli.fit.baseline import fit_samples

    samples, _ = _hand_samples(standin_dir, 1, seed=1)
    with pytest.raises(ValueError, match="body baseline cannot fit hand_21"):
        fit_samples(samples, part="body", model_dir=standin_dir)
    with pytest.raises(ValueError, match="keys: expected 1 keys, got 2"):
        fit_samples(samples, part="hand", keys=["a", "b"], model_dir=standin_dir)
    with pytest.raises(ValueError, match=r"init\['0'\] lacks 'pose_rotvecs'"):
        fit_samples(samples, part="hand", model_dir=standin_dir, init={"0": {"root_rotvec": [0, 0, 0]}})
