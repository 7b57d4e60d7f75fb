"""Shared pytest fixtures.

``standin_dir``: the deterministic stand-in body models (random arrays in the official SMPL-X / MANO /
FLAME file formats), generated once per test session into a temporary directory. Tests never need the
licensed model files.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        from neuralannot_cli.body.standin import make_standin
    except ImportError as exc:  # the generator is written in parallel; skip rather than fail
        pytest.skip(f"neuralannot_cli.body.standin is not available yet ({exc})")
    out = tmp_path_factory.mktemp("models")
    make_standin(out)
    return out
