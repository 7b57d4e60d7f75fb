"""Inputs that are well-formed but do not belong together: each gives a one-line error (or, where part of the input
still serves, a warning with the count), never a silently empty or degenerate result.

- ``evaluate direct`` with a pseudo-GT that matches no sample of the dataset (another subject / split / dataset);
- a hidden-GT side file of another split (same keys, other images);
- ``evaluate indirect`` with fewer than two matching training records;
- ``annotate --method smplifyx`` with an ``--init`` file that starts no sample, ``--use-3d`` on a set without 3D
  joints, or samples without any labelled 2D keypoint;
- ``annotate`` of a Human3.6M world-frame file whose body model lacks the set's joints (the view choice needs them);
- ``evaluate direct --out`` into a folder holding an earlier evaluation's plots.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.cli.main import app
from neuralannot_cli.io.pseudo_gt import SmplxRecord, record_key, write_meta, write_pseudo_gt_json

runner = CliRunner(env={"COLUMNS": "250"})


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code != 0, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    err = [ln for ln in lines if ln.startswith("error:")]
    assert len(err) == 1, res.output
    for n in needles:
        assert n in err[0], (n, err[0])


@pytest.fixture(scope="module")
def sets(standin_dir, tmp_path_factory):
    from neuralannot_cli.data.synth import SynthConfig, generate

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mismatch")
    generate(SynthConfig(kind="coco-wholebody", out_dir=root / "coco", count=4, image_size=64, seed=1,
                         model_dir=standin_dir))
    generate(SynthConfig(kind="coco-wholebody", out_dir=root / "coco_val", count=4, image_size=64, seed=2,
                         split="val", model_dir=standin_dir))
    generate(SynthConfig(kind="h36m", out_dir=root / "h36m", count=8, image_size=64, subjects=(1, 5), seed=3,
                         model_dir=standin_dir))
    return root


def _coco_pgt(root: Path, out: Path, offset: int = 0) -> Path:
    """Records of the COCO set's hidden GT (``offset`` shifts the ann ids: a file of another set)."""
    hidden = json.loads((root / "annotations" / "synth_hidden_gt_train.json").read_text())
    recs = []
    for e in hidden["annotations"].values():
        p, ids = e["params_cam"], {**e["ids"], "ann_id": int(e["ids"]["ann_id"]) + offset}
        recs.append(SmplxRecord(key=record_key("coco_wholebody", ids), ids=ids, root_rotvec=p["root_rotvec"],
                                body_pose_rotvecs=p["body_pose_rotvecs"], betas=p["betas"], transl_m=p["transl_m"],
                                focal_px=e["focal_px"], princpt_px=e["princpt_px"]))
    write_pseudo_gt_json(recs, out, dataset_kind="coco_wholebody")
    write_meta(out, {"dataset_kind": "coco_wholebody", "seconds": 1.0, "method": "test"})
    return out


def test_evaluate_direct_without_any_matching_record_fails(sets, standin_dir, tmp_path):
    coco_json = sets / "coco" / "annotations" / "coco_wholebody_train_v1.0.json"
    other = _coco_pgt(sets / "coco", tmp_path / "other.json", offset=1000)
    res = runner.invoke(app, ["evaluate", "direct", str(other), "--dataset", str(coco_json), "--model-dir",
                              str(standin_dir), "--out", str(tmp_path / "rep")])
    _one_line_error(res, "other.json", "none of its 4 records matches a sample of", "coco_wholebody_train_v1.0.json")
    assert not (tmp_path / "rep" / "report.json").exists()
    h36m_json = sets / "h36m" / "annotations" / "Human36M_subject5_data.json"  # a COCO file against Human3.6M
    res = runner.invoke(app, ["evaluate", "direct", str(_coco_pgt(sets / "coco", tmp_path / "ok.json")), "--dataset",
                              str(h36m_json), "--model-dir", str(standin_dir), "--out", str(tmp_path / "rep")])
    assert res.exit_code != 0 and "error:" in res.output


def test_hidden_gt_of_another_split_is_refused(sets, standin_dir, tmp_path):
    """Synthetic sets number their annotations alike in every split: the image of each entry tells them apart."""
    coco_json = sets / "coco" / "annotations" / "coco_wholebody_train_v1.0.json"
    pgt = _coco_pgt(sets / "coco", tmp_path / "pgt.json")
    wrong = sets / "coco_val" / "annotations" / "synth_hidden_gt_val.json"
    res = runner.invoke(app, ["evaluate", "direct", str(pgt), "--dataset", str(coco_json), "--gt", str(wrong),
                              "--model-dir", str(standin_dir), "--out", str(tmp_path / "rep")])
    _one_line_error(res, "synth_hidden_gt_val.json", ".image_file", "is not the dataset's image")
    right = sets / "coco" / "annotations" / "synth_hidden_gt_train.json"
    res = runner.invoke(app, ["evaluate", "direct", str(pgt), "--dataset", str(coco_json), "--gt", str(right),
                              "--model-dir", str(standin_dir), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output


def test_stale_plots_are_removed_from_a_reused_report_folder(sets, standin_dir, tmp_path):
    from neuralannot_cli.evaluate.direct import DirectReport, write_report

    out = tmp_path / "rep"
    out.mkdir()
    (out / "error_hist.png").write_bytes(b"an earlier evaluation")
    (out / "per_joint.png").write_bytes(b"an earlier evaluation")
    paths = write_report(DirectReport("d.json", "coco_wholebody", "body", None, ()), out)
    assert not (out / "error_hist.png").exists() and not (out / "per_joint.png").exists()
    assert json.loads(paths["report"].read_text())["plots"] == {}


def test_indirect_needs_two_matching_training_records(sets, standin_dir, tmp_path):
    from neuralannot_cli.evaluate.indirect import training_records

    coco_json = sets / "coco" / "annotations" / "coco_wholebody_train_v1.0.json"
    pgt = _coco_pgt(sets / "coco", tmp_path / "pgt.json")
    data = json.loads(pgt.read_text())
    keep = sorted(data, key=int)[:1]
    few = tmp_path / "few.json"
    few.write_text(json.dumps({k: data[k] for k in keep}))
    cfg = SimpleNamespace(train_pseudo_gt=few, train_kind="coco_wholebody", train_dataset=coco_json,
                          model_dir=standin_dir, device="cpu")
    with pytest.raises(ValueError, match=r"few.json: 1 camera-frame record\(s\) match .* needs at least 2"):
        training_records(cfg)
    cfg.train_pseudo_gt = pgt
    _, _, _, keys, skipped = training_records(cfg)
    assert len(keys) == 4 and skipped == 0


def _smplifyx(dataset: Path, out: Path, standin_dir: Path, *extra: str):
    return runner.invoke(app, ["annotate", str(dataset), "--method", "smplifyx", "--fit-iterations-scale", "0.01",
                               "--out", str(out), "--model-dir", str(standin_dir), *extra])


def test_smplifyx_init_that_starts_no_sample_fails(sets, standin_dir, tmp_path):
    coco_json = sets / "coco" / "annotations" / "coco_wholebody_train_v1.0.json"
    other = _coco_pgt(sets / "coco", tmp_path / "other.json", offset=1000)
    res = _smplifyx(coco_json, tmp_path / "refit.json", standin_dir, "--init", str(other))
    _one_line_error(res, "other.json", "none of its 4 records matches a sample of")
    assert not (tmp_path / "refit.json").exists()


def test_smplifyx_use_3d_without_3d_joints_fails(sets, standin_dir, tmp_path):
    coco_json = sets / "coco" / "annotations" / "coco_wholebody_train_v1.0.json"
    res = _smplifyx(coco_json, tmp_path / "fit.json", standin_dir, "--use-3d")
    _one_line_error(res, "coco_wholebody_train_v1.0.json", "--use-3d", "no sample has 3D joints")


def test_smplifyx_on_samples_without_labels_fails_or_warns(standin_dir, tmp_path):
    """FreiHAND's evaluation split without ``evaluation_xyz.json`` has no 2D labels: nothing to fit."""
    from neuralannot_cli.data.synth import SynthConfig, generate
    from neuralannot_cli.io.annotate_run import _check_fit_inputs

    root = tmp_path / "frei"
    generate(SynthConfig(kind="freihand", out_dir=root, count=2, split="evaluation", seed=4, model_dir=standin_dir))
    (root / "evaluation_xyz.json").unlink()
    res = _smplifyx(root / "evaluation_K.json", tmp_path / "fit.json", standin_dir)
    _one_line_error(res, "evaluation_K.json", "no sample has a labelled 2D keypoint")
    labelled = SimpleNamespace(keypoints_conf=np.ones(21), joints_3d_cam_mm=None)
    unlabelled = SimpleNamespace(keypoints_conf=np.zeros(21), joints_3d_cam_mm=None)
    with pytest.warns(UserWarning, match="1 of 2 samples have no labelled 2D keypoint"):
        _check_fit_inputs(SimpleNamespace(use_3d=False, init={}), [labelled, unlabelled], ["a", "b"],
                          SimpleNamespace(dataset_json="d.json"))


def test_world_frame_annotation_needs_the_sets_joints(sets, standin_dir, tmp_path):
    """The view a Human3.6M file keeps is chosen in h36m_17: a model folder without its regressor fails up front
    (it used to keep camera 1 for every frame, silently); npz output keeps every view and does not need it."""
    from neuralannot_cli.io.annotate_run import AnnotateConfig, run_annotate
    from tests.test_pseudo_gt_interhand import FakePredictor

    models = tmp_path / "models"
    shutil.copytree(standin_dir, models)
    regressors = list(models.rglob("J_regressor_h36m_smplx.npy"))
    assert regressors
    for f in regressors:
        f.unlink()
    data_json = sets / "h36m" / "annotations" / "Human36M_subject1_data.json"
    cfg = AnnotateConfig(dataset_json=data_json, checkpoint=None, out=tmp_path / "pgt" / "x.json", model_dir=models)
    with pytest.raises(ValueError, match=r"Human36M_subject1_data.json: the h36m file keeps one view per frame.*"
                                         r"J_regressor_h36m_smplx\.npy"):
        run_annotate(cfg, FakePredictor("body", transl_m=(0.0, 0.0, 4.0)))
    assert not (tmp_path / "pgt").exists() or not list((tmp_path / "pgt").iterdir())  # nothing written
    npz = AnnotateConfig(dataset_json=data_json, checkpoint=None, out=tmp_path / "all.npz", fmt="npz",
                         model_dir=models)
    assert run_annotate(npz, FakePredictor("body", transl_m=(0.0, 0.0, 4.0))).num_records >= 1


def test_a_rekeyed_file_is_refused_not_scored_as_intact(sets, tmp_path):
    """The field's loaders look entries up by their key; ours also keeps its record key inside: if the two disagree
    (a re-keyed or merged file), reading fails naming the entry, instead of matching by the inner key."""
    from neuralannot_cli.io.pseudo_gt import read_pseudo_gt

    pgt = _coco_pgt(sets / "coco", tmp_path / "pgt.json")
    data = json.loads(pgt.read_text())
    first = sorted(data, key=int)[0]
    moved = dict(data)
    moved[str(int(first) + 1000)] = moved.pop(first)
    bad = tmp_path / "moved.json"
    bad.write_text(json.dumps(moved))
    with pytest.raises(ValueError, match=rf"moved.json: \['{int(first) + 1000}'\].neuralannot.key: '{first}' "
                                         "disagrees with the entry's key"):
        read_pseudo_gt(bad, dataset_kind="coco_wholebody")
    assert len(read_pseudo_gt(pgt, dataset_kind="coco_wholebody")) == 4
