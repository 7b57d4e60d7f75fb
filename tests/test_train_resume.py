"""Resume: a run stopped after an epoch (in stage 1 and again in stage 2) and resumed ends with the same weights
as the uninterrupted run (same seed, CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from neuralannot_cli.train.algorithm import StopTraining, train
from neuralannot_cli.train.checkpoint import load_tensors
from tests.test_train import body_config, body_sets, one_thread  # noqa: F401 (fixtures)


def _stop_at(step: str, epoch: int):
    def hook(s: str, e: int) -> None:
        if (s, e) == (step, epoch):
            raise StopTraining(f"stop after {s} epoch {e}")

    return hook


def _uninterrupted_then_config(tmp_path, standin_dir, body_sets, **kw):
    """Train the uninterrupted run into ``tmp_path/full``; return it and the config of the run to interrupt."""
    full = tmp_path / "full"
    train(body_config(body_sets, standin_dir, full, **kw))
    part = tmp_path / "part"
    return full, part, body_config(body_sets, standin_dir, part, **kw)


def test_resume_matches_uninterrupted_run(tmp_path, standin_dir, body_sets):  # noqa: F811
    # tiny: 8 samples, batch 4 -> 2 steps per epoch; stop inside stage 1 and inside stage 2
    kw = dict(stage1_epochs=2, stage2_epochs=2, prior="learned", batch_size=4, max_samples=8, eval_samples=4)
    full, part, cfg = _uninterrupted_then_config(tmp_path, standin_dir, body_sets, **kw)
    with pytest.raises(StopTraining):
        train(cfg, hook=_stop_at("stage1_h36m", 0))
    state = json.loads((part / "state" / "stage1_h36m.json").read_text())
    assert state["epoch"] == 0 and not (part / "model.safetensors").exists()
    with pytest.raises(StopTraining):
        train(cfg, resume=True, hook=_stop_at("stage2", 0))
    progress = json.loads((part / "state" / "progress.json").read_text())
    assert progress["completed"] == ["stage1_h36m", "prior"]
    train(cfg, resume=True)

    for name in ("stage1_h36m.safetensors", "theta_star_h36m.safetensors", "model.safetensors",
                 "prior/prior.safetensors"):
        a, b = load_tensors(full / name), load_tensors(part / name)
        assert a.keys() == b.keys(), name
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=f"{name}: {k}")
    # the resumed run's metrics continue where the interrupted one stopped (one line per epoch overall)
    lines = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [(m["stage"], m.get("epoch")) for m in lines if m["stage"] == "stage2"] == [("stage2", 0), ("stage2", 1)]
    # and the weights did change during training (the comparison is not vacuous)
    init_stage2 = load_tensors(full / "model.safetensors")
    assert any(v.dtype.is_floating_point and v.abs().sum() > 0 for v in init_stage2.values())


def test_resume_with_checkpoint_every(tmp_path, standin_dir, body_sets):  # noqa: F811
    # state saved every 2 epochs: a stop after stage-2 epoch 2 (state of epoch 1 on disk) replays epoch 2 on resume
    # and still ends with the uninterrupted run's weights; metrics.jsonl keeps one line per epoch
    kw = dict(stage1_epochs=1, stage2_epochs=4, prior="none", batch_size=4, max_samples=8, eval_samples=4,
              checkpoint_every=2)
    full, part, cfg = _uninterrupted_then_config(tmp_path, standin_dir, body_sets, **kw)
    with pytest.raises(StopTraining):
        train(cfg, hook=_stop_at("stage2", 2))
    assert json.loads((part / "state" / "stage2.json").read_text())["epoch"] == 1
    lines = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines if m["stage"] == "stage2"] == [0, 1]
    train(body_config(body_sets, standin_dir, part, **{**kw, "checkpoint_every": 3}), resume=True)  # may change
    a, b = load_tensors(full / "model.safetensors"), load_tensors(part / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=k)
    lines = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines if m["stage"] == "stage2"] == [0, 1, 2, 3]
    assert all(m["seconds"] > 0 for m in lines if m["stage"] == "stage2")
    # where the time went: blocked on the loader, and stage 2's per-epoch eval, both parts of the epoch's time
    assert all(0 <= m["loader_seconds"] <= m["seconds"] for m in lines if "epoch" in m)
    assert all(0 < m["eval_seconds"] < m["seconds"] for m in lines if m["stage"] == "stage2")
    # and the state saves (epoch 1 before the stop, every 3rd epoch after the resume, the last): their time
    assert [m["epoch"] for m in lines if m["stage"] == "stage2" and m.get("save_seconds", -1) > 0] == [1, 2, 3]
    assert sorted(p.name for p in (full / "state").glob("*.safetensors")) == ["stage1_h36m.e0.safetensors",
                                                                              "stage2.e3.safetensors"]


def test_cached_crops_train_the_same_weights(tmp_path, standin_dir, body_sets):  # noqa: F811
    """--cache-images with augmentation off keeps the finished crops (CropStore): the run is bit-identical to one
    that recomputes every item every epoch, also with forked workers that share the preloaded store."""
    kw = dict(stage1_epochs=2, stage2_epochs=2, batch_size=4, max_samples=8, eval_samples=4)
    train(body_config(body_sets, standin_dir, tmp_path / "plain", **kw))
    train(body_config(body_sets, standin_dir, tmp_path / "cached", cache_images=True, workers=2, **kw))
    for name in ("theta_star_h36m.safetensors", "model.safetensors"):
        a, b = load_tensors(tmp_path / "plain" / name), load_tensors(tmp_path / "cached" / name)
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=f"{name}: {k}")
