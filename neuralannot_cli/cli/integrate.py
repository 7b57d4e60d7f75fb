"""``neuralannot integrate``: body + hands + face into one SMPL-X parameter set (Algorithm 2)."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from neuralannot_cli.cli._common import err_console, fail


class _Gender(str, Enum):
    neutral = "neutral"
    male = "male"
    female = "female"


def _read(path: Optional[Path], option: str) -> dict[str, Any]:
    """Parse a pseudo-GT JSON file; one-line error naming the file on a miss or bad JSON."""
    if path is None:
        return {}
    if not path.is_file():
        fail(f"{path}: {option} file not found")
    try:
        with path.open("r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        fail(f"{path}: <json>: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}")
    except (UnicodeDecodeError, OSError) as err:
        fail(f"{path}: cannot read: {err}")
    if not isinstance(data, dict):
        fail(f"{path}: <top level>: expected an object keyed by annotation id, got {type(data).__name__}")
    return data


def integrate(
    body: Annotated[Path, typer.Option("--body", help="Body pseudo-GT JSON ({ann_id: {smplx_param, cam_param}}).",
                                       dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="SMPL-X JSON to write (same layout; atomic write).",
                                      dir_okay=False)],
    hand: Annotated[Optional[Path], typer.Option(
        "--hand", help="MANO pseudo-GT JSON ({ann_id: {left|right: {mano_param, cam_param} | null}}); a hand "
                       "entry with \"flipped\": true holds right-hand parameters of the flipped left hand. "
                       "Omitted: no hands.", dir_okay=False)] = None,
    face: Annotated[Optional[Path], typer.Option(
        "--face", help="FLAME pseudo-GT JSON ({ann_id: {flame_param: {jaw_pose, expr, ...}} | null}). "
                       "Omitted: no faces.", dir_okay=False)] = None,
    model_dir: Annotated[Optional[Path], typer.Option(
        "--model-dir", help="Folder with SMPL-X / MANO files (else $NEURALANNOT_BODY_MODELS, the user folder, "
                            "then the stand-in).", envvar="NEURALANNOT_BODY_MODELS")] = None,
    gender: Annotated[_Gender, typer.Option(help="SMPL-X model whose rest forearms define the twist axis.")] = (
        _Gender.neutral),
    max_wrist_y_deg: Annotated[float, typer.Option(
        help="Keep the new wrist only if |y| (deviation) is below this (Euler XYZ in the forearm frame).",
        min=0.0, max=180.0)] = 45.0,
    max_wrist_z_deg: Annotated[float, typer.Option(
        help="Keep the new wrist only if |z| (flexion) is below this.", min=0.0, max=180.0)] = 90.0,
) -> None:
    """Integrate body, hand and face pseudo-GT into SMPL-X (NeuralAnnot Algorithm 2).

    Records are joined by annotation id. The wrist takes the hand's global rotation.

    Half of the forearm twist moves into the elbow; the new wrist is kept where |y| < 45 and |z| < 90 deg.

    Fingers, jaw and expression are copied; invalid parts get zero poses and a false *_valid flag.

    Example: neuralannot integrate --body body.json --hand hand.json --face face.json --out smplx.json
    """
    import torch

    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.body.pkl import atomic_write_bytes
    from neuralannot_cli.data.record import DatasetFormatError
    from neuralannot_cli.integrate import WristThresholds, hand_means_from_models, integrate_records

    if model_dir is not None and not model_dir.exists():
        fail(f"{model_dir}: --model-dir does not exist")
    body_data = _read(body, "--body")
    hand_data = _read(hand, "--hand")
    face_data = _read(face, "--face")
    for path, data, part in ((hand, hand_data, "hand"), (face, face_data, "face")):
        if path is not None and not data:  # given but empty: it would match no person (omit the option instead)
            fail(f"{path}: <top level>: no {part} entries (an empty file matches no body record)")

    try:
        smplx_model = load_body_model("smplx", gender=gender.value, model_dir=model_dir, dtype=torch.float64)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else repr(exc))
    manos: dict[str, Any] = {}
    for side, is_rhand in (("left", False), ("right", True)):
        try:
            manos[side] = load_body_model("mano", is_rhand=is_rhand, model_dir=model_dir, dtype=torch.float64)
        except (FileNotFoundError, ValueError):
            manos[side] = None
            if hand_data:
                err_console.print(f"[yellow]note:[/] MANO {side} model not found; using SMPL-X's mean {side} hand")
    means = hand_means_from_models(smplx_model, manos["left"], manos["right"])
    thresholds = WristThresholds(math.radians(max_wrist_y_deg), math.radians(max_wrist_z_deg))
    try:
        records, summary = integrate_records(
            body_data, hand_data, face_data, smplx_model=smplx_model, hand_means=means, thresholds=thresholds,
            body_path=body, hand_path=hand or "hand.json", face_path=face or "face.json",
        )
    except (DatasetFormatError, ValueError) as exc:
        fail(str(exc).splitlines()[0])

    try:
        atomic_write_bytes(out, json.dumps(records).encode("utf-8"))
    except OSError as exc:
        fail(f"{out}: cannot write: {exc}")

    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    n = summary.persons
    console.print(f"wrote {out}: {n} persons")
    for side in ("left", "right"):
        console.print(
            f"  {side} hand: valid {summary.hand_valid[side]}/{n} (flipped {summary.flipped_hands[side]}); "
            f"wrist replaced {summary.wrists_replaced[side]}, rejected by thresholds "
            f"{summary.wrists_rejected[side]}"
        )
    console.print(f"  face: valid {summary.face_valid}/{n}")
    if summary.hands_without_body or summary.faces_without_body:
        console.print(
            f"  ignored (no body record): {summary.hands_without_body} hand entries, "
            f"{summary.faces_without_body} face entries"
        )
    if smplx_model.is_standin:
        err_console.print("[yellow]note:[/] SMPL-X is the random stand-in model (no licensed files found)")
