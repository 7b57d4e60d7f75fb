"""Helpers shared by the dataset loaders: strict JSON reading, field getters and small camera math.

Every error raised here is a one-line :class:`~neuralannot_cli.data.record.DatasetFormatError` (or a
``FileNotFoundError``) that names the file and the field, e.g.
``Human36M_subject1_data.json: annotations[3].bbox: expected 4 numbers, got 3``.

Field names in messages follow JSON access paths: ``annotations[3].bbox`` for list items and object
keys, ``["9"]["2"]["1"]["0"]`` for the nested string-keyed dictionaries the mks0601 re-packagings use
(subject → action → subaction → frame).

The camera helpers use the OpenCV pinhole model with no distortion, as all the re-packagings do:
``u = fx * x / z + cx``, ``v = fy * y / z + cy`` with ``(x, y, z)`` in the camera frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralannot_cli.data.record import DatasetFormatError

_TYPE_WORDS = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "a boolean", type(None): "null"}


def _type_word(value: Any) -> str:
    return _TYPE_WORDS.get(type(value), type(value).__name__)


def key_path(*keys: object) -> str:
    """Format nested string-keyed dictionary access as ``["9"]["2"]["1"]``."""
    return "".join(f'["{k}"]' for k in keys)


def join_field(where: str, key: str | int) -> str:
    """``join_field("annotations[3]", "bbox") == "annotations[3].bbox"``; ints give ``[i]``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def read_json(path: str | Path, expected_type: type | tuple[type, ...] = dict) -> Any:
    """Read a JSON file and check its top-level type.

    Raises:
        FileNotFoundError: the file does not exist (message names the file).
        DatasetFormatError: the file is not valid JSON (e.g. truncated) or its top level is not
            ``expected_type`` (field ``<top level>``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset file not found")
    try:
        with path.open("r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(
            path, "<json>",
            f"not valid JSON (truncated or corrupt?): {err.msg} at line {err.lineno} column {err.colno}",
        ) from None
    except UnicodeDecodeError as err:
        raise DatasetFormatError(path, "<json>", f"not UTF-8 text: {err.reason}") from None
    if not isinstance(data, expected_type):
        want = (" or ".join(_TYPE_WORDS.get(t, t.__name__) for t in expected_type)
                if isinstance(expected_type, tuple) else _TYPE_WORDS.get(expected_type, expected_type.__name__))
        raise DatasetFormatError(path, "<top level>", f"expected {want}, got {_type_word(data)}")
    return data


def get_field(obj: Any, key: str, *, path: Path, where: str) -> Any:
    """``obj[key]`` for a JSON object ``obj`` found at field ``where`` of file ``path``."""
    if not isinstance(obj, Mapping):
        raise DatasetFormatError(path, where or "<top level>", f"expected an object, got {_type_word(obj)}")
    if key not in obj:
        raise DatasetFormatError(path, join_field(where, key), "missing")
    return obj[key]


def get_nested(obj: Any, keys: Sequence[object], *, path: Path, context: str = "") -> Any:
    """``obj[str(k0)][str(k1)]...`` for nested string-keyed dictionaries.

    ``context`` is appended to the 'missing' message, e.g. ``"(needed by image id 7)"``.
    """
    cur = obj
    for depth, k in enumerate(keys):
        sk = str(k)
        if not isinstance(cur, Mapping):
            raise DatasetFormatError(path, key_path(*keys[:depth]) or "<top level>",
                                     f"expected an object, got {_type_word(cur)}")
        if sk not in cur:
            msg = "missing" + (f" {context}" if context else "")
            raise DatasetFormatError(path, key_path(*keys[: depth + 1]), msg)
        cur = cur[sk]
    return cur


def get_int(obj: Any, key: str, *, path: Path, where: str) -> int:
    value = get_field(obj, key, path=path, where=where)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise DatasetFormatError(path, join_field(where, key), f"expected an integer, got {value!r:.40}")
    return int(value)


def get_str(obj: Any, key: str, *, path: Path, where: str) -> str:
    value = get_field(obj, key, path=path, where=where)
    if not isinstance(value, str):
        raise DatasetFormatError(path, join_field(where, key), f"expected a string, got {_type_word(value)}")
    return value


def get_list(obj: Any, key: str, *, path: Path, where: str) -> list:
    value = get_field(obj, key, path=path, where=where)
    if not isinstance(value, list):
        raise DatasetFormatError(path, join_field(where, key), f"expected a list, got {_type_word(value)}")
    return value


def as_array(
    value: Any, shape: tuple[int, ...], *, path: Path, field_name: str, flatten: bool = False
) -> np.ndarray:
    """Convert a JSON (nested) list of numbers to a float64 array of ``shape``.

    ``shape`` entries of ``-1`` accept any size. A 1-D shape reports ``expected 4 numbers, got 3``;
    other shapes report ``expected shape (17, 3), got (16, 3)``. The total size must also match
    when the values are given flat (e.g. 51 numbers for ``(17, 3)`` COCO keypoints): a flat list whose
    size equals the product of ``shape`` is reshaped. ``flatten=True`` flattens nested input first
    (for fields stored either flat or nested, e.g. SMPL ``pose`` as 72 or 24x3 numbers).
    """
    if isinstance(value, (str, bytes, Mapping)) or value is None or isinstance(value, bool):
        raise DatasetFormatError(path, field_name, f"expected numbers, got {_type_word(value)}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise DatasetFormatError(path, field_name, "expected a (nested) list of numbers, got a ragged or "
                                 "non-numeric list") from None
    if flatten:
        arr = arr.reshape(-1)
    if arr.shape == shape:  # fast path
        if not np.isfinite(arr).all():
            raise DatasetFormatError(path, field_name, "contains NaN or infinite values")
        return arr
    want_size = math.prod(shape) if all(s >= 0 for s in shape) else None
    if arr.ndim == 1 and len(shape) > 1 and want_size is not None and arr.size == want_size:
        arr = arr.reshape(shape)
    ok = arr.ndim == len(shape) and all(s < 0 or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        if len(shape) == 1:
            got = f"{arr.size}" if arr.ndim == 1 else f"shape {tuple(arr.shape)}"
            raise DatasetFormatError(path, field_name, f"expected {shape[0]} numbers, got {got}")
        pretty = "(" + ", ".join("*" if s < 0 else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise DatasetFormatError(path, field_name, f"expected shape {pretty}, got {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise DatasetFormatError(path, field_name, "contains NaN or infinite values")
    return arr


def get_array(
    obj: Any, key: str, shape: tuple[int, ...], *, path: Path, where: str, flatten: bool = False
) -> np.ndarray:
    """``as_array(obj[key], shape)`` with the field named ``where.key``."""
    value = get_field(obj, key, path=path, where=where)
    return as_array(value, shape, path=path, field_name=join_field(where, key), flatten=flatten)


MM_MIN_SPREAD = 20.0
"""A skeleton (body or hand) stored in millimetres spans more than this; one in metres spans less (< 2.5)."""
M_MAX_SPREAD = 2.0
"""A hand or body stored in metres spans less than this; one in millimetres spans more (> 50)."""


def check_joint_units(joints: np.ndarray, unit: str, *, path: Path, field_name: str) -> None:
    """Detect joints stored in the wrong unit from the skeleton's spread (largest extent along x, y or z).

    ``unit="mm"``: a spread in ``(0, 20)`` means metres; ``unit="m"``: a spread above 2 means millimetres.
    A spread of exactly 0 (all joints equal, a placeholder) is not judged here.

    Raises:
        DatasetFormatError: naming the file, the field, the spread and the likely unit.
    """
    finite = joints[np.all(np.isfinite(joints), axis=-1)]
    if len(finite) < 2:
        return
    spread = float(np.max(finite.max(axis=0) - finite.min(axis=0)))
    if unit == "mm" and 0.0 < spread < MM_MIN_SPREAD:
        raise DatasetFormatError(path, field_name, f"the joints span only {spread:.3g} (expected millimetres): "
                                 "the values look like metres; convert them to millimetres (x 1000)")
    if unit == "m" and spread > M_MAX_SPREAD:
        raise DatasetFormatError(path, field_name, f"the joints span {spread:.4g} (expected metres): the values "
                                 "look like millimetres; convert them to metres (/ 1000)")


def index_coco(data: Mapping, *, path: Path) -> tuple[dict[int, dict], list[dict]]:
    """Validate the ``images`` / ``annotations`` lists of a COCO-style file and index images by id.

    Returns ``(images_by_id, annotations)``; each annotation's ``image_id`` must name an image and annotation
    ids must be unique (results are keyed by them).
    """
    images = get_list(data, "images", path=path, where="")
    anns = get_list(data, "annotations", path=path, where="")
    images_by_id: dict[int, dict] = {}
    for i, img in enumerate(images):
        where = f"images[{i}]"
        images_by_id[get_int(img, "id", path=path, where=where)] = img
    first_index: dict[int, int] = {}
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        image_id = get_int(ann, "image_id", path=path, where=where)
        ann_id = get_int(ann, "id", path=path, where=where)
        if ann_id in first_index:
            raise DatasetFormatError(path, f"{where}.id", f"duplicate annotation id {ann_id} "
                                     f"(also annotations[{first_index[ann_id]}].id)")
        first_index[ann_id] = i
        if image_id not in images_by_id:
            raise DatasetFormatError(path, f"{where}.image_id", f"no image with id {image_id}")
    return images_by_id, anns


# ---------------------------------------------------------------------------------------------------
# Small camera / box math shared by the loaders (float64 in, caller casts to float32).
# ---------------------------------------------------------------------------------------------------


def project_cam_to_px(points_cam: np.ndarray, focal: Iterable[float], princpt: Iterable[float]) -> np.ndarray:
    """Pinhole projection ``(joints, 3)`` camera-frame points → ``(joints, 2)`` pixels.

    Points with ``z <= 0`` (behind the camera) project to NaN; callers mark them missing.
    """
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    z = points_cam[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = points_cam[:, :2] / z * (fx, fy) + (cx, cy)
    uv[(z <= 0)[:, 0]] = np.nan
    return uv


def bbox_from_keypoints(keypoints_px: np.ndarray, conf: np.ndarray, scale: float = 1.5) -> np.ndarray:
    """Box ``(x, y, w, h)`` around the keypoints with ``conf > 0``, enlarged ``scale`` times about its centre.

    Returns zeros when no keypoint is valid.
    """
    valid = (conf > 0) & np.all(np.isfinite(keypoints_px), axis=-1)
    if not np.any(valid):
        return np.zeros(4, dtype=np.float64)
    pts = keypoints_px[valid]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    w, h = (x1 - x0) * scale, (y1 - y0) * scale
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return np.array([cx - w / 2.0, cy - h / 2.0, w, h], dtype=np.float64)


def f32(a: np.ndarray) -> np.ndarray:
    """Contiguous float32 copy."""
    return np.ascontiguousarray(a, dtype=np.float32)
