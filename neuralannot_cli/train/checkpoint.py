"""Files of a training run: atomic safetensors/JSON writes, the resume state machine, the annotator checkpoint.

Output directory layout (``<out>``)::

    config.json                  annotator config: rebuilds the stage-2 network, prior and body model
                                 (written with model.safetensors at the end of stage 2) + the TrainConfig
    model.safetensors            stage-2 network weights (the annotator)
    prior/                       pose prior (prior.safetensors + prior.json, nets.prior.save_prior) or absent
    stage1_<aux>.safetensors     stage-1 network of each aux set
    theta_star_<aux>.safetensors stage-1 pseudo-GT on all images of that set: root_rotvec (N,3),
                                 pose_rotvecs (N,K,3), betas (N,10), transl_cam_m (N,3), index (N,) int64
    metrics.jsonl                one JSON line per epoch: {"stage", "epoch", "loss", ..., "target_2d_err_px"}
    state/progress.json          {"completed": [step names], "config": TrainConfig dict}
    state/<step>.safetensors     after every completed epoch of the current step: model + optimizer tensors
    state/<step>.json            epoch, lr-scheduler state, optimizer param groups, RNG states

Steps, in order: ``stage1_<aux>`` for each aux set (training, then Θ*), ``prior``, ``stage2``. A step is added
to ``completed`` only once its outputs are on disk; ``--resume`` skips completed steps and restarts the
current one from its last completed epoch. Every file is written to ``<name>.tmp`` then ``os.replace``d.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "atomic_save_tensors",
    "atomic_write_json",
    "read_json",
    "Progress",
    "save_train_state",
    "load_train_state",
    "capture_rng",
    "restore_rng",
]


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Save ``tensors`` as safetensors at ``path`` atomically (tmp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def atomic_write_json(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def load_tensors(path: str | Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return load_file(str(path), device=str(device))
    except (OSError, MemoryError):
        raise
    except Exception as exc:  # safetensors' SafetensorError (truncated / foreign file) is not a ValueError
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc


class Progress:
    """``state/progress.json``: which steps are complete, and the config of the run."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / "state" / "progress.json"
        self.data: dict[str, Any] = {"completed": [], "config": None}
        if self.path.is_file():
            self.data = read_json(self.path)

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def is_done(self, step: str) -> bool:
        return step in self.data["completed"]

    def mark_done(self, step: str) -> None:
        if step not in self.data["completed"]:
            self.data["completed"].append(step)
        atomic_write_json(self.data, self.path)

    def set_config(self, config_dict: dict[str, Any]) -> None:
        self.data["config"] = config_dict
        atomic_write_json(self.data, self.path)


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) of the torch / numpy / python RNG states."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    js = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    return tensors, js


def restore_rng(tensors: dict[str, torch.Tensor], js: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"].cpu().to(torch.uint8))
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"].cpu().to(torch.uint8))
    n = js["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = js["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def _flatten_optimizer(opt_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], js: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, sc in js.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    return {"state": state, "param_groups": js["param_groups"]}


def save_train_state(
    out_dir: str | Path,
    step: str,
    *,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically save the state after completed ``epoch`` (0-based) of ``step`` (tensors first, then JSON;
    the JSON is the commit point, so a crash in between leaves the previous epoch's pair loadable)."""
    state_dir = Path(out_dir) / "state"
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_t, opt_js = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_t)
    rng_t, rng_js = capture_rng()
    tensors.update(rng_t)
    tag = f"{step}.e{epoch}"
    atomic_save_tensors(tensors, state_dir / f"{tag}.safetensors")
    atomic_write_json(
        {"step": step, "epoch": int(epoch), "tensors": f"{tag}.safetensors", "optimizer": opt_js,
         "scheduler": scheduler.state_dict() if scheduler is not None else None, "rng": rng_js,
         "extra": extra or {}},
        state_dir / f"{step}.json",
    )
    for old in state_dir.glob(f"{step}.e*.safetensors"):  # keep only the committed epoch's tensors
        if old.name != f"{tag}.safetensors":
            old.unlink(missing_ok=True)


def load_train_state(
    out_dir: str | Path,
    step: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device | str = "cpu",
) -> dict[str, Any] | None:
    """Restore the state saved by :func:`save_train_state`; returns its JSON (``epoch`` = last completed
    epoch, ``extra``) or ``None`` when ``step`` has no saved state."""
    state_dir = Path(out_dir) / "state"
    js_path = state_dir / f"{step}.json"
    if not js_path.is_file():
        return None
    js = read_json(js_path)
    tensors = load_tensors(state_dir / js["tensors"], device="cpu")
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(model_sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{state_dir / js['tensors']}: model state does not match (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); was the run started with another config?")
    optimizer.load_state_dict(_unflatten_optimizer({k: v.to(device) for k, v in tensors.items()}, js["optimizer"]))
    if scheduler is not None and js.get("scheduler") is not None:
        scheduler.load_state_dict(js["scheduler"])
    restore_rng(tensors, js["rng"])
    return js
