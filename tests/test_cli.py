"""The CLI skeleton: help lists the subcommands, unbuilt ones exit 2 naming their issue, models group works."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from neuralannot_cli.cli.main import app

runner = CliRunner(env={"COLUMNS": "250"})


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_help_lists_subcommands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    out = _plain(result.output)
    for name in ("train", "annotate", "fit-face", "integrate", "evaluate", "models", "synth"):
        assert re.search(rf"^\W*{re.escape(name)}\b", out, flags=re.M), f"{name} missing from --help:\n{out}"


def test_indirect_i2l_is_built_and_checks_its_files():
    argv = ["evaluate", "indirect", "--estimator", "i2l", "--train", "p.json", "--train-dataset", "d.json",
            "--test", "t.json"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert "p.json: file not found" in _plain(result.output)


def test_evaluate_is_a_group_with_direct_render_indirect():
    result = runner.invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0, result.output
    out = _plain(result.output)
    for name in ("direct", "render", "indirect"):
        assert re.search(rf"^\W*{name}\b", out, flags=re.M), f"{name} missing from evaluate --help:\n{out}"
    result = runner.invoke(app, ["evaluate", "direct", "missing.json", "--dataset", "missing_too.json"])
    assert result.exit_code == 1 and "missing.json" in _plain(result.output)


def test_models_make_standin_and_check(tmp_path):
    result = runner.invoke(app, ["models", "make-standin", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "smplx" / "SMPLX_NEUTRAL.npz").is_file()
    assert (tmp_path / "m" / "mano" / "MANO_RIGHT.pkl").is_file()
    result = runner.invoke(app, ["models", "check", "--model-dir", str(tmp_path / "m")])
    out = _plain(result.output)
    assert result.exit_code == 0, out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 8}
    assert "10475" in rows["smplx (neutral)"] and "│ 55 " in rows["smplx (neutral)"].replace("  ", " ")
    assert "778" in rows["mano (right)"] and "778" in rows["mano (left)"]
    assert "5023" in rows["flame"]
    for gender in ("neutral", "male", "female"):
        row = rows[f"smpl ({gender})"]
        assert "SMPLLayer" in row and "6890" in row and "│ 24 " in row.replace("  ", " "), row
    assert "STAND-IN" in out


def test_models_check_missing_dir_fails_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["models", "check", "--model-dir", str(empty)])
    assert result.exit_code == 1
    assert "SMPLX_NEUTRAL" in _plain(result.output)
    assert "Traceback" not in result.output


def test_console_script_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "neuralannot_cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "fit-face" in proc.stdout
