"""The corpus of malformed inputs (``tests/data/bad/``, described in its ``cases.json``) through the real CLI.

For every case: the command exits non-zero with a ONE-line ``error:`` message on stderr that names the file and
the field (the case's ``message`` substrings, all on that one line), or — where skipping is the right behaviour
(``expect: skip``) — exits 0 and reports the skipped sample on one line; never a Python traceback.

Most cases run in-process with ``typer.testing.CliRunner`` (``result.exception`` must be the ``SystemExit`` of
a clean exit, not an escaped exception); a handful also run as real ``python -m neuralannot_cli`` subprocesses
(``SUBPROCESS_CASES``). ``annotate`` cases on datasets use a fake annotator of the case's part (the dataset is
under test, not the checkpoint); the ``ckpt_*`` cases use the real checkpoint loader.

Regenerate the corpus with ``python tests/data/bad/make_corpus.py`` (``test_corpus_is_up_to_date`` checks it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from neuralannot_cli.cli import annotate as annotate_cli
from neuralannot_cli.cli.main import app

BAD = Path(__file__).parent / "data" / "bad"
CASES: list[dict[str, Any]] = json.loads((BAD / "cases.json").read_text())
REPO = Path(__file__).resolve().parents[1]

SUBPROCESS_CASES: dict[str, list[str] | None] = {
    "coco_truncated_json": None,
    # a subprocess cannot take the fake annotator: the same files through `train`, which loads them first
    "h36m_joints_in_metres": ["train", "--part", "body", "--aux", "h36m={case}", "--target",
                              f"coco_wholebody={BAD / 'coco_image_missing'}", "--out", "{out}", "--no-progress",
                              "--epochs", "1", "--batch-size", "2", "--backbone", "resnet18", "--input-size", "32",
                              "--model-dir", "{models}"],
    "coco_bbox_zero_area": ["fit-face", "{case}/annotations/coco_wholebody_train_v1.0.json", "--out", "{out}",
                            "--model-dir", "{models}", "--iterations-scale", "0.01"],
    "model_flame_pkl_forbidden_global": None,
    "ckpt_truncated_safetensors": None,
}
"""Also run as ``python -m neuralannot_cli`` subprocesses (real interpreter start-up, real stderr); a list
replaces the case's command."""

runner = CliRunner()


@dataclass(frozen=True)
class _Pred:
    root_rotvec: torch.Tensor
    pose_rotvecs: torch.Tensor
    betas: torch.Tensor
    transl_cam_m: torch.Tensor
    focal_px: torch.Tensor
    princpt_px: torch.Tensor


class _FakeAnnotator:
    """Constant output of the right shapes: the dataset path, not the network, is under test."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.input_size = 32

    def predict(self, batch: dict[str, Any]) -> _Pred:
        b = batch["bbox_xywh_px"].shape[0]
        k = 21 if self.part == "body" else 15
        z = torch.zeros(b, 3, dtype=torch.float64)
        return _Pred(z, torch.zeros(b, k, 3, dtype=torch.float64), torch.zeros(b, 10, dtype=torch.float64),
                     z + torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64), batch["focal_px"], batch["princpt_px"])


def _argv(case: dict[str, Any], tmp_path: Path, standin_dir: Path) -> list[str]:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text("{}")
    subs = {"{case}": str(BAD / case["id"]), "{out}": str(tmp_path / "out" / "result.json"), "{ckpt}": str(ckpt),
            "{models}": str(standin_dir)}
    (tmp_path / "out").mkdir(exist_ok=True)
    argv = []
    for arg in case["command"]:
        for k, v in subs.items():
            arg = arg.replace(k, v)
        argv.append(arg)
    return argv


def _check_message(case: dict[str, Any], stderr: str, exit_code: int) -> str:
    """The one line that reports the case; asserts the exit code, the line's content and no traceback."""
    assert "Traceback" not in stderr, f"{case['id']}: traceback in the output:\n{stderr}"
    if case["expect"] == "error":
        assert exit_code != 0, f"{case['id']}: exit code 0 for a bad input; output:\n{stderr}"
        lines = [ln for ln in stderr.splitlines() if ln.startswith("error:") or "Error" in ln]
    else:
        assert exit_code == 0, f"{case['id']}: exit code {exit_code} where the bad sample should be skipped:\n{stderr}"
        lines = [ln for ln in stderr.splitlines() if "skipped" in ln]
    if exit_code == 2 and "Usage:" in stderr:  # Typer's own parameter check (exists=True, dir_okay=False, ...):
        # a usage box whose text rich wraps at the terminal width; judge the box's text as one line
        box = " ".join(ln.strip(" │╭╮╰╯─") for ln in stderr.splitlines() if ln.startswith("│"))
        lines = [" ".join(box.split())]
    hits = [ln for ln in lines if all(s in ln for s in case["message"])]
    assert hits, f"{case['id']}: no single line contains {case['message']}; output:\n{stderr}"
    return hits[0]


CLI_CASES = [c for c in CASES if c["command"] is not None]


def _marks(c: dict[str, Any]) -> list:
    if c.get("known_gap"):
        return [pytest.mark.xfail(strict=True, reason=c["known_gap"])]
    return []


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=_marks(c)) for c in CLI_CASES])
def test_bad_input_cli(case, tmp_path, standin_dir, monkeypatch):
    if case["annotator"]:
        monkeypatch.setattr(annotate_cli, "_load_annotator", lambda checkpoint, device: _FakeAnnotator(case["annotator"]))
    monkeypatch.setenv("NEURALANNOT_BODY_MODELS", str(standin_dir))
    with warnings.catch_warnings(record=True) as caught:  # pytest would swallow them; Python prints them
        warnings.simplefilter("always")
        result = runner.invoke(app, _argv(case, tmp_path, standin_dir))
    shown = "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"{case['id']}: escaped exception (a traceback for the user):\n{tb}")
    line = _check_message(case, result.stderr + shown, result.exit_code)
    print(f"{case['id']}: exit {result.exit_code}: {line}")


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES if c["loader"] is not None])
def test_bad_input_loader(case):
    """Cases checked at the loader (3DPW): it raises a one-line DatasetFormatError / FileNotFoundError."""
    from neuralannot_cli.data.loaders import load_dataset
    from neuralannot_cli.data.record import DatasetFormatError

    kind, root, options = case["loader"]
    with pytest.raises((DatasetFormatError, FileNotFoundError)) as info:
        load_dataset(kind, root.replace("{case}", str(BAD / case["id"])), **options)
    message = str(info.value)
    assert "\n" not in message
    assert all(s in message for s in case["message"]), message


@pytest.mark.parametrize("case_id", list(SUBPROCESS_CASES))
def test_bad_input_subprocess(case_id, tmp_path, standin_dir):
    """The real interpreter: stderr has the one-line message (or the skip warning) and no traceback."""
    case = dict(next(c for c in CASES if c["id"] == case_id))
    if case.get("known_gap"):
        pytest.xfail(case["known_gap"])
    if SUBPROCESS_CASES[case_id] is not None:
        case["command"] = SUBPROCESS_CASES[case_id]
    argv = _argv(case, tmp_path, standin_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEURALANNOT_BODY_MODELS": str(standin_dir)}
    proc = subprocess.run([sys.executable, "-m", "neuralannot_cli", *argv], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    _check_message(case, proc.stderr, proc.returncode)


def test_corpus_covers_the_issue():
    """At least 30 cases, each folder present, every dataset format and command represented."""
    assert len(CASES) >= 30
    for c in CASES:
        assert (BAD / c["id"]).is_dir(), c["id"]
        assert c["expect"] in ("error", "skip") and c["message"]
        assert (c["command"] is None) != (c["loader"] is None)
    ids = " ".join(c["id"] for c in CASES)
    for word in ("coco", "h36m", "mpi3dhp", "freihand", "interhand", "pw3d", "ckpt", "model_", "out_",
                 "metres", "duplicate", "truncated", "nan", "inf", "negative", "image_missing", "image_is_text",
                 "zero_area", "far_outside", "forbidden_global", "foreign"):
        assert word in ids, word
    commands = {c["command"][0] for c in CASES if c["command"]}
    assert {"annotate", "fit-face", "integrate", "models", "synth", "train"} <= commands


def test_corpus_is_up_to_date(tmp_path):
    """``make_corpus.py`` and the committed files agree (cases.json is regenerated byte for byte)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_corpus", BAD / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    manifest = [{k: v for k, v in c.items() if k != "build"} for c in mod.CASES]
    assert json.dumps(manifest, indent=1) + "\n" == (BAD / "cases.json").read_text()


# ------------------------------------------------------------------------------------ untrusted-file audit

PACKAGE = REPO / "neuralannot_cli"

ALLOWED_UNPICKLERS = {
    ("body/pkl.py", "RestrictedUnpickler"): "model files (SMPL-X/MANO/FLAME .pkl): allow-listed numpy/chumpy/scipy "
                                            "globals only",
    ("nets/prior.py", "_TensorsOnlyUnpickler"): "VPoser/Lightning .ckpt: tensor rebuilders only, every other "
                                                "global an inert placeholder",
}
"""The only ``pickle.Unpickler`` subclasses allowed in the package (file relative to the package, class)."""

ALLOWED_TORCH_LOAD_WITHOUT_WEIGHTS_ONLY = {"nets/prior.py": "_TensorsOnlyPickleModule"}
"""``torch.load(weights_only=False)`` only with this restricted ``pickle_module``.

Outside our code: ``smplx`` itself calls ``np.load(..., allow_pickle=True)`` on the ``.npz`` files we pass it
(``body/model.py`` converts ``.pkl`` model files to pickle-free ``.npz`` with the restricted unpickler first)."""


def _audit_findings() -> list[str]:
    import ast

    findings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(), filename=rel)
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for bad in ("dill", "joblib", "cloudpickle", "shelve", "marshal", "jsonpickle"):
                    if any(n == bad or n.startswith(bad + ".") for n in names):
                        findings.append(f"{where}: imports {bad}")
                if isinstance(node, ast.ImportFrom) and node.module == "pickle" and any(
                        a.name in ("load", "loads", "Unpickler") for a in node.names):
                    findings.append(f"{where}: from pickle import load/loads/Unpickler")
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, ast.Attribute) and base.attr == "Unpickler" and (rel, node.name) not in ALLOWED_UNPICKLERS:
                        findings.append(f"{where}: class {node.name} subclasses pickle.Unpickler (not allow-listed)")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                mod, attr = node.value.id, node.attr
                if mod == "pickle" and attr in ("load", "loads"):
                    findings.append(f"{where}: pickle.{attr} (use body.pkl.load_restricted_pickle)")
                if mod == "yaml" and attr in ("load", "unsafe_load", "full_load", "Loader", "UnsafeLoader"):
                    findings.append(f"{where}: yaml.{attr} (use yaml.safe_load)")
                if mod == "pickle" and attr == "Unpickler":
                    if not any(f == rel for f, _ in ALLOWED_UNPICKLERS):
                        findings.append(f"{where}: pickle.Unpickler outside the allow-listed unpicklers")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
                mod, fn = node.func.value.id, node.func.attr
                kw = {k.arg: k.value for k in node.keywords}
                if mod in ("np", "numpy") and fn == "load":
                    ap = kw.get("allow_pickle")
                    if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                        findings.append(f"{where}: np.load with allow_pickle other than False")
                if mod == "torch" and fn == "load":
                    wo = kw.get("weights_only")
                    if isinstance(wo, ast.Constant) and wo.value is True:
                        continue
                    pm = kw.get("pickle_module")
                    allowed = ALLOWED_TORCH_LOAD_WITHOUT_WEIGHTS_ONLY.get(rel)
                    if not (allowed and isinstance(pm, ast.Name) and pm.id == allowed):
                        findings.append(f"{where}: torch.load without weights_only=True (or the restricted pickle_module)")
    return findings


def test_untrusted_files_audit():
    """No pickle of user files except the allow-listed restricted unpicklers; torch.load only weights_only=True
    (or the tensors-only pickle_module); np.load never allow_pickle=True; yaml only safe_load. A regression
    anywhere in the package fails here with file:line."""
    findings = _audit_findings()
    assert not findings, "unsafe loading of user files:\n" + "\n".join(findings)


def test_audit_catches_a_regression(tmp_path, monkeypatch):
    """The scanner is not vacuous: a planted unsafe call in a scanned tree is reported."""
    pkg = tmp_path / "neuralannot_cli"
    (pkg / "io").mkdir(parents=True)
    (pkg / "io" / "bad.py").write_text("import pickle, torch, numpy as np\n"
                                       "def f(p):\n    return pickle.load(open(p, 'rb'))\n"
                                       "def g(p):\n    return torch.load(p)\n"
                                       "def h(p):\n    return np.load(p, allow_pickle=True)\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    found = _audit_findings()
    assert any("pickle.load" in f for f in found) and any("torch.load" in f for f in found)
    assert any("allow_pickle" in f for f in found)


def test_crafted_legacy_checkpoint_runs_no_code(tmp_path):
    """A non-zip (legacy torch format) .ckpt whose header pickle calls os.system: refused, nothing runs."""
    import pickle

    from neuralannot_cli.nets.prior import _torch_load_tensors

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "vposer.ckpt"
    ckpt.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(ValueError, match="vposer.ckpt"):
        _torch_load_tensors(ckpt)
    assert not marker.exists()
