"""``neuralannot annotate`` end to end on a synthetic COCO-WholeBody set with a fake annotator (same interface as
``train.checkpoint.load_annotator``): keys, field-loader compatibility, resume after interruption / SIGKILL,
one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.cli import annotate as annotate_cli
from neuralannot_cli.cli.main import app

runner = CliRunner()


@dataclass(frozen=True)
class FakePrediction:
    root_rotvec: torch.Tensor
    pose_rotvecs: torch.Tensor
    betas: torch.Tensor
    transl_cam_m: torch.Tensor
    focal_px: torch.Tensor
    princpt_px: torch.Tensor
    keypoints_2d_px: torch.Tensor
    joints_3d_cam_mm: torch.Tensor


class FakeAnnotator:
    """Deterministic per-item output (a function of the crop box), so runs are comparable."""

    def __init__(self, part: str = "body", delay_s: float = 0.0) -> None:
        self.part = part
        self.input_size = 32
        self.delay_s = delay_s

    def predict(self, batch):
        if self.delay_s:
            time.sleep(self.delay_s)
        box = batch["bbox_xywh_px"].double()
        b = box.shape[0]
        k = 21 if self.part == "body" else 15
        j = 23 if self.part == "body" else 21
        code = box[:, :1] / 100.0
        return FakePrediction(
            root_rotvec=torch.cat([code, -code, code * 0.5], 1), pose_rotvecs=code[:, :, None].expand(b, k, 3) * 0.01,
            betas=code.expand(b, 10) * 0.1, transl_cam_m=torch.cat([code, code, code + 5], 1),
            focal_px=batch["focal_px"], princpt_px=batch["princpt_px"],
            keypoints_2d_px=box[:, None, :2].expand(b, j, 2), joints_3d_cam_mm=torch.zeros(b, j, 3))


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory, standin_dir) -> Path:
    from neuralannot_cli.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("coco")
    generate(SynthConfig(kind="coco-wholebody", out_dir=out, count=10, image_size=64, model_dir=standin_dir))
    return out / "annotations" / "coco_wholebody_train_v1.0.json"


@pytest.fixture()
def ckpt(tmp_path) -> Path:
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def _use(monkeypatch, annotator):
    monkeypatch.setattr(annotate_cli, "_load_annotator", lambda checkpoint, device: annotator)


def _expected_ids(coco_json: Path, part: str) -> set[str]:
    data = json.loads(coco_json.read_text())
    if part == "body":
        return {str(a["id"]) for a in data["annotations"] if any(v > 0 for v in a["keypoints"][2::3] + a["foot_kpts"][2::3])}
    return {str(a["id"]) for a in data["annotations"] if a["lefthand_valid"] or a["righthand_valid"]}


def test_annotate_body_writes_field_layout(coco_set, ckpt, tmp_path, monkeypatch):
    _use(monkeypatch, FakeAnnotator("body"))
    out = tmp_path / "pg.json"
    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(ckpt), "--out", str(out),
                              "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    with open(out) as f:  # as Hand4Whole reads it
        smplx_params = json.load(f)
    assert set(smplx_params) == _expected_ids(coco_set, "body") and len(smplx_params) == 10
    for aid, entry in smplx_params.items():
        p = entry["smplx_param"]
        assert len(p["root_pose"]) == 3 and len(p["body_pose"]) == 63 and len(p["shape"]) == 10
        assert len(entry["cam_param"]["focal"]) == 2 and entry["neuralannot"]["ids"]["ann_id"] == int(aid)
    meta = json.loads((tmp_path / "pg.meta.json").read_text())
    assert meta["num_records"] == 10 and meta["dataset_kind"] == "coco_wholebody" and meta["part"] == "body"
    assert not (tmp_path / "pg.json.progress.jsonl").exists()

    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(ckpt), "--out",
                              str(tmp_path / "pg.npz"), "--format", "npz"])
    assert res.exit_code == 0, res.output
    from neuralannot_cli.io.pseudo_gt import read_pseudo_gt, record_to_dict

    a, b = read_pseudo_gt(out), read_pseudo_gt(tmp_path / "pg.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert record_to_dict(a[k]) == record_to_dict(b[k])


def test_annotate_hands_left_and_right(coco_set, ckpt, tmp_path, monkeypatch):
    _use(monkeypatch, FakeAnnotator("hand"))
    out = tmp_path / "hands.json"
    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(ckpt), "--out", str(out)])
    assert res.exit_code == 0, res.output
    mano_params = json.loads(out.read_text())
    assert set(mano_params) == _expected_ids(coco_set, "hand")
    data = {str(a["id"]): a for a in json.loads(coco_set.read_text())["annotations"]}
    n_left = 0
    for aid, entry in mano_params.items():
        for side in ("left", "right"):
            assert (entry[side] is not None) == bool(data[aid][f"{side}hand_valid"])
            if entry[side] is not None:
                assert len(entry[side]["mano_param"]["pose"]) == 48
                n_left += side == "left"
    assert n_left > 0


def test_resume_after_interruption_gives_same_result(coco_set, ckpt, tmp_path):
    from neuralannot_cli.io.annotate_run import AnnotateConfig, progress_path_for, run_annotate

    full = tmp_path / "full.json"
    run_annotate(AnnotateConfig(coco_set, ckpt, full, batch_size=3), FakeAnnotator())
    part = tmp_path / "part.json"
    cfg = AnnotateConfig(coco_set, ckpt, part, batch_size=3)
    run_annotate(cfg, FakeAnnotator(), stop_after_batches=2)  # "crash" after 2 batches
    assert not part.exists() and progress_path_for(part).exists()
    with open(progress_path_for(part), "ab") as f:
        f.write(b'{"type": "chunk", "keys": ["')  # torn last line
    s = run_annotate(AnnotateConfig(coco_set, ckpt, part, batch_size=3, resume=True), FakeAnnotator())
    assert s.num_resumed == 6 and s.num_new == 4
    a, b = json.loads(full.read_text()), json.loads(part.read_text())
    assert a == b


def test_sigkill_then_resume(coco_set, ckpt, tmp_path, monkeypatch):
    out = tmp_path / "k.json"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_annotate_cli import FakeAnnotator
        from neuralannot_cli.io.annotate_run import AnnotateConfig, run_annotate
        run_annotate(AnnotateConfig({str(coco_set)!r}, {str(ckpt)!r}, {str(out)!r}, batch_size=2),
                     FakeAnnotator(delay_s=0.4))
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    log = tmp_path / "k.json.progress.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if log.exists() and log.read_bytes().count(b"\n") >= 3:  # header + 2 chunks
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    _use(monkeypatch, FakeAnnotator())
    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(ckpt), "--out", str(out),
                              "--batch-size", "2", "--resume"])
    assert res.exit_code == 0, res.output
    assert "resumed" in res.output
    got = json.loads(out.read_text())
    ref = tmp_path / "ref.json"
    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(ckpt), "--out", str(ref)])
    assert json.loads(ref.read_text()) == got


def test_one_line_errors(coco_set, ckpt, tmp_path, monkeypatch):
    _use(monkeypatch, FakeAnnotator())
    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(tmp_path / "nope"), "--out", "x.json"])
    assert res.exit_code == 1 and "nope: checkpoint folder not found" in res.output
    assert "Traceback" not in res.output

    def missing(checkpoint, device):
        raise FileNotFoundError(f"{checkpoint}/model.safetensors: file not found")

    monkeypatch.setattr(annotate_cli, "_load_annotator", missing)
    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(ckpt), "--out", "x.json"])
    assert res.exit_code == 1 and "model.safetensors" in res.output and "Traceback" not in res.output

    _use(monkeypatch, FakeAnnotator())
    bad = tmp_path / "annotations" / "coco_wholebody_train_v1.0.json"
    bad.parent.mkdir()
    bad.write_text("{oops")
    res = runner.invoke(app, ["annotate", str(bad), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o.json")])
    assert res.exit_code == 1 and "coco_wholebody_train_v1.0.json" in res.output and "Traceback" not in res.output

    odd = tmp_path / "mystery.json"
    odd.write_text("{}")
    res = runner.invoke(app, ["annotate", str(odd), "--checkpoint", str(ckpt), "--out", "x.json"])
    assert res.exit_code == 1 and "--kind" in res.output

    blocker = tmp_path / "file"
    blocker.write_text("")
    res = runner.invoke(app, ["annotate", str(coco_set), "--checkpoint", str(ckpt), "--out",
                              str(blocker / "sub" / "o.json")])
    assert res.exit_code == 1 and "Traceback" not in res.output and str(blocker) in res.output
    assert len(res.output.strip().splitlines()) <= 3


def test_h36m_subjects_into_one_folder_keep_their_own_metadata(standin_dir, ckpt, tmp_path, monkeypatch):
    """Two Human3.6M subject files annotated into one folder: each subject file gets its own sidecar (the
    folder-level one only describes the last run)."""
    from neuralannot_cli.data.synth import SynthConfig, generate

    root = tmp_path / "h36m"
    generate(SynthConfig(kind="h36m", out_dir=root, count=12, image_size=64, subjects=(1, 5), model_dir=standin_dir))
    _use(monkeypatch, FakeAnnotator("body"))
    out_dir = tmp_path / "pgt"
    for subject in (1, 5):
        data = root / "annotations" / f"Human36M_subject{subject}_data.json"
        if not json.loads(data.read_text())["annotations"]:
            continue
        res = runner.invoke(app, ["annotate", str(data), "--checkpoint", str(ckpt), "--out", str(out_dir),
                                  "--model-dir", str(standin_dir)])
        assert res.exit_code == 0, res.output
    written = sorted(p.name for p in out_dir.glob("Human36M_subject*_SMPLX_NeuralAnnot.json"))
    assert len(written) == 2, list(out_dir.iterdir())
    for name in written:
        meta = json.loads((out_dir / name.replace(".json", ".meta.json")).read_text())
        subject = name.split("_")[1]  # 'subject1'
        assert meta["dataset_json"].endswith(f"Human36M_{subject}_data.json")
        assert meta["num_records"] >= 1 and str(out_dir / name) in meta["files"]
