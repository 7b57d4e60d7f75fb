"""``evaluate indirect`` resumes after a kill: for both estimators, a run stopped after an epoch (an exception
from ``on_progress``) and resumed from its ``work_dir`` ends with the weights and test metrics of the
uninterrupted run (same seed, CPU, one thread); a changed option or input is refused naming the field; the CLI
``--work-dir ... --resume`` path.

Reference: the uninterrupted run trains with no work folder (today's code path: nothing written), so the
comparison also pins that saving / restoring the state changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.evaluate.indirect import IndirectConfig, run_indirect
from neuralannot_cli.train.checkpoint import load_tensors
from tests.test_i2l import frei  # noqa: F401 (fixture: 3 synthetic FreiHAND samples + exact pseudo-GT)

runner = CliRunner(env={"COLUMNS": "250"})

METRICS = ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "pa_mpvpe_mm", "pck_auc_pa")


class _Killed(Exception):
    pass


def _kill_after(epoch: int):
    """``on_progress`` that stops the run after 1-based ``epoch`` (the state due then is already saved)."""

    def on_progress(e: int, total: int, loss: float) -> None:
        if e == epoch:
            raise _Killed(f"killed after epoch {e}")

    return on_progress


def _config(frei, standin_dir, estimator: str, **kw) -> IndirectConfig:  # noqa: F811
    base = dict(test_gt=frei["gt"], epochs=3, batch_size=2, input_size=32, lr=1e-3, model_dir=standin_dir, seed=3)
    return IndirectConfig(estimator, frei["pgt"], frei["ds"], frei["ds"], **{**base, **kw})  # type: ignore[arg-type]


def _uninterrupted(cfg: IndirectConfig) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Weights and test metrics of an uninterrupted run without a work folder."""
    if cfg.estimator == "i2l":
        from neuralannot_cli.evaluate.i2l import test_i2l, train_i2l

        est, info = train_i2l(cfg)
        res = test_i2l(est, cfg.test_dataset, hidden_gt=cfg.test_gt, model_dir=cfg.model_dir,
                       train_images=info["train_images"])
        net = est.net
    else:
        from neuralannot_cli.evaluate.indirect import test_estimator, train_regressor

        net, info = train_regressor(cfg)
        res = test_estimator(net, cfg.test_dataset, hidden_gt=cfg.test_gt, model_dir=cfg.model_dir,
                             input_size=cfg.input_size, train_images=info["train_images"])
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, res


def _saved_model(work_dir, estimator: str) -> tuple[int, dict[str, torch.Tensor]]:
    js = json.loads((work_dir / "state" / f"indirect_{estimator}.json").read_text())
    tensors = load_tensors(work_dir / "state" / js["tensors"])
    return js["epoch"], {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


@pytest.mark.parametrize(("estimator", "epochs", "every", "kill_after", "saved_epoch"), [
    ("regressor", 3, 1, 1, 0),  # state after every epoch: resume at epoch 1
    ("i2l", 4, 2, 3, 1),  # state every 2 epochs: killed after epoch 2 (0-based), epoch 2 is done again
])
def test_killed_and_resumed_run_matches_uninterrupted(frei, standin_dir, tmp_path, estimator, epochs,  # noqa: F811
                                                      every, kill_after, saved_epoch):
    torch.set_num_threads(1)
    cfg = _config(frei, standin_dir, estimator, epochs=epochs)
    ref_weights, ref_metrics = _uninterrupted(cfg)

    work = tmp_path / "work"
    cfg_w = dataclasses.replace(cfg, work_dir=work, checkpoint_every=every)
    with pytest.raises(_Killed):
        run_indirect(cfg_w, on_progress=_kill_after(kill_after))
    epoch, at_kill = _saved_model(work, estimator)
    assert epoch == saved_epoch
    assert any(not torch.equal(at_kill[k], ref_weights[k]) for k in ref_weights)  # not finished yet

    seen: list[int] = []
    result = run_indirect(dataclasses.replace(cfg_w, resume=True), on_progress=lambda e, t, loss: seen.append(e))
    assert seen == list(range(saved_epoch + 2, epochs + 1))  # only the epochs after the saved one ran
    epoch, final = _saved_model(work, estimator)
    assert epoch == epochs - 1 and final.keys() == ref_weights.keys()
    for k in ref_weights:
        torch.testing.assert_close(final[k], ref_weights[k], rtol=0, atol=1e-6, msg=k)
    s = result.summary()
    for key in METRICS:
        if math.isnan(ref_metrics[key]):
            assert s[key] is None, key
        else:
            assert s[key] == pytest.approx(ref_metrics[key], rel=0, abs=1e-6), key
    assert math.isfinite(result.final_train_loss) and result.num_train == 3
    # only the committed epoch's tensors are kept
    kept = [p.name for p in (work / "state").glob("*.safetensors")]
    assert kept == [f"indirect_{estimator}.e{epochs - 1}.safetensors"]

    # a job killed after its last epoch (while testing) resumes straight into the test, same numbers
    again = run_indirect(dataclasses.replace(cfg_w, resume=True), on_progress=lambda e, t, loss: seen.append(e))
    assert seen == list(range(saved_epoch + 2, epochs + 1))
    assert again.mpjpe_mm == result.mpjpe_mm and again.final_train_loss == result.final_train_loss


def test_resume_refuses_another_job(frei, standin_dir, tmp_path):  # noqa: F811
    from neuralannot_cli.evaluate.indirect import open_work_dir

    torch.set_num_threads(1)
    work = tmp_path / "work"
    cfg = _config(frei, standin_dir, "regressor", epochs=2, work_dir=work)
    with pytest.raises(_Killed):
        run_indirect(cfg, on_progress=_kill_after(1))
    for change, field in ((dict(lr=2e-3), "lr"), (dict(epochs=3), "epochs"), (dict(estimator="i2l"), "estimator"),
                          (dict(seed=4), "seed"), (dict(batch_size=3), "batch_size"),
                          (dict(input_size=64), "input_size")):
        with pytest.raises(ValueError, match=rf"job\.json: fingerprint\.{field}: the interrupted job had") as exc:
            open_work_dir(dataclasses.replace(cfg, resume=True, **change))
        assert "\n" not in str(exc.value)
    # another pseudo-GT file (same records, other bytes) is another input
    other = tmp_path / "pgt_copy.json"
    doc = json.loads(frei["pgt"].read_text())
    other.write_text(json.dumps(doc))
    moved = dataclasses.replace(cfg, train_pseudo_gt=other, resume=True)
    with pytest.raises(ValueError, match=r"fingerprint\.train_pseudo_gt"):
        open_work_dir(moved)
    # device / checkpoint_every may change; without --resume a folder that holds a job is never overwritten
    open_work_dir(dataclasses.replace(cfg, resume=True, checkpoint_every=5, device="cpu:0"))
    with pytest.raises(ValueError, match="holds an indirect-evaluation job already; pass --resume"):
        run_indirect(cfg)
    with pytest.raises(ValueError, match=r"resume: needs work_dir"):
        dataclasses.replace(cfg, work_dir=None, resume=True).checked()
    with pytest.raises(ValueError, match=r"checkpoint_every must be >= 1"):
        dataclasses.replace(cfg, checkpoint_every=0).checked()
    # no work folder: nothing written (today's behaviour)
    before = sorted(p.name for p in tmp_path.iterdir())
    run_indirect(dataclasses.replace(cfg, work_dir=None, epochs=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_resumes_a_killed_job(frei, standin_dir, tmp_path):  # noqa: F811
    from neuralannot_cli.cli.main import app

    torch.set_num_threads(1)
    cfg = _config(frei, standin_dir, "regressor", seed=0)
    _, ref = _uninterrupted(cfg)
    work = tmp_path / "work"
    with pytest.raises(_Killed):
        run_indirect(dataclasses.replace(cfg, work_dir=work), on_progress=_kill_after(2))
    args = ["evaluate", "indirect", "--estimator", "regressor", "--train", str(frei["pgt"]), "--train-dataset",
            str(frei["ds"]), "--test", str(frei["ds"]), "--test-gt", str(frei["gt"]), "--epochs", "3",
            "--batch-size", "2", "--input-size", "32", "--lr", "0.001", "--model-dir", str(standin_dir),
            "--work-dir", str(work), "--resume"]
    r = runner.invoke(app, ["0.002" if a == "0.001" else a for a in args])  # another lr: refused, one line
    text = re.sub(r"\x1b\[[0-9;]*m", "", r.output)
    assert r.exit_code == 1 and "fingerprint.lr: the interrupted job had 0.001, this one has 0.002" in text, text
    out = tmp_path / "res.json"
    r = runner.invoke(app, [*args, "--out", str(out)])
    text = re.sub(r"\x1b\[[0-9;]*m", "", r.output)
    assert r.exit_code == 0, text
    doc = json.loads(out.read_text())
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm"):
        assert doc[key] == pytest.approx(ref[key], rel=0, abs=1e-6), key
    assert json.loads((work / "state" / "indirect_regressor.json").read_text())["epoch"] == 2
