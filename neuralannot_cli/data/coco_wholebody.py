"""COCO-WholeBody v1.0 (133 keypoints: body, feet, face, hands), read through pycocotools.

Files as released by jin-s13/COCO-WholeBody and as read by ``data/MSCOCO/MSCOCO.py`` in
mks0601/Hand4Whole_RELEASE::

    {root}/annotations/coco_wholebody_{split}_v1.0.json          # split: train, val
        images[]:      id, file_name, width, height
        annotations[]: id, image_id, iscrowd, num_keypoints, bbox [x, y, w, h] (px),
                       keypoints (17x3), foot_kpts (6x3), face_kpts (68x3),
                       lefthand_kpts (21x3), righthand_kpts (21x3)     # flat lists of x, y, v
                       face_box, lefthand_box, righthand_box [x, y, w, h] (px)
                       face_valid, lefthand_valid, righthand_valid, foot_valid (bool)
    {root}/images/{split}2017/{file_name}     # Hand4Whole layout; override with ``image_dir``

The 133 keypoints (joint set ``"coco_wholebody_133"``) are, in order, ``keypoints`` (COCO body 17)
+ ``foot_kpts`` (6: left big toe, left small toe, left heel, right big toe, right small toe, right
heel) + ``face_kpts`` (68, iBUG-300W order) + ``lefthand_kpts`` (21) + ``righthand_kpts`` (21; hand
order wrist, thumb 1-4, index 1-4, middle, ring, pinky, as in Hand4Whole's ``joint_set['hand']``).
This is the order of the official COCO-WholeBody evaluation (``xtcocotools`` sigmas) and of mmpose.

Confidence is ``0`` where the visibility ``v == 0`` and ``1`` otherwise; the raw ``v`` values are
kept in ``extras["keypoints_v"]``. The JSON is read and validated first (so errors name the file and
field), then indexed with ``pycocotools.coco.COCO`` (its prints silenced) and iterated with
``getImgIds`` / ``getAnnIds`` / ``loadAnns``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from neuralannot_cli.data._json import (
    f32,
    get_array,
    get_field,
    get_int,
    get_str,
    index_coco,
    read_json,
)
from neuralannot_cli.data.record import DatasetFormatError, Sample

PART_FIELDS: tuple[tuple[str, int], ...] = (
    ("keypoints", 17),
    ("foot_kpts", 6),
    ("face_kpts", 68),
    ("lefthand_kpts", 21),
    ("righthand_kpts", 21),
)
"""``(annotation field, joint count)`` in the order they are concatenated into the 133 keypoints."""

PART_SLICES: dict[str, slice] = {}
_start = 0
for _name, _n in PART_FIELDS:
    PART_SLICES[_name] = slice(_start, _start + _n)
    _start += _n
del _start, _name, _n

BOX_FIELDS: tuple[str, ...] = ("face_box", "lefthand_box", "righthand_box")
VALID_FIELDS: tuple[str, ...] = ("face_valid", "lefthand_valid", "righthand_valid", "foot_valid")


def _get_bool(obj: dict, key: str, *, path: Path, where: str) -> bool:
    value = get_field(obj, key, path=path, where=where)
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise DatasetFormatError(path, f"{where}.{key}", f"expected true/false, got {value!r:.40}")


def _far_outside(keypoints_px: np.ndarray, v: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(J,)`` bool: labelled keypoints more than one image size outside the image (x not in [-W, 2W] or
    y not in [-H, 2H]). Truncated people legitimately have keypoints a little outside; these are glitches."""
    x, y = keypoints_px[:, 0], keypoints_px[:, 1]
    inside = (x >= -width) & (x <= 2 * width) & (y >= -height) & (y <= 2 * height)
    return (v > 0) & ~inside


def _parse_annotation(ann: dict, *, path: Path, where: str, skip_crowd: bool) -> dict | None:
    """Validated arrays of one annotation, or ``None`` for a crowd annotation that will be skipped."""
    iscrowd = _get_bool(ann, "iscrowd", path=path, where=where) if "iscrowd" in ann else False
    if iscrowd and skip_crowd:
        return None
    parts = [get_array(ann, name, (n, 3), path=path, where=where) for name, n in PART_FIELDS]
    for (name, _), part in zip(PART_FIELDS, parts):
        if np.any(part[:, 2] < 0):
            j = int(np.argmax(part[:, 2] < 0))
            raise DatasetFormatError(path, f"{where}.{name}", f"joint {j}: visibility {part[j, 2]:g} is negative "
                                     "(expected 0 = unlabelled, 1 = occluded, 2 = visible)")
    out = {
        "where": where,
        "kpts": np.concatenate(parts, axis=0),
        "bbox": get_array(ann, "bbox", (4,), path=path, where=where),
        "iscrowd": iscrowd,
    }
    for name in BOX_FIELDS:
        out[name] = get_array(ann, name, (4,), path=path, where=where)
    for name in VALID_FIELDS:
        out[name] = _get_bool(ann, name, path=path, where=where)
    return out


def load_coco_wholebody(
    root: str | Path,
    split: Literal["train", "val"] = "train",
    *,
    annotation_path: str | Path | None = None,
    image_dir: str | Path | None = None,
    skip_crowd: bool = True,
    skip_without_keypoints: bool = True,
) -> list[Sample]:
    """Load COCO-WholeBody person annotations.

    Args:
        root: dataset root (``annotations/`` and ``images/``).
        split: ``"train"`` or ``"val"``.
        annotation_path: overrides ``{root}/annotations/coco_wholebody_{split}_v1.0.json``.
        image_dir: overrides ``{root}/images/{split}2017`` (e.g. ``{coco}/train2017`` in the COCO layout).
        skip_crowd: drop ``iscrowd`` annotations.
        skip_without_keypoints: drop people whose 133 keypoints all have ``v == 0``.

    Returns:
        Samples in image order, ``joint_set="coco_wholebody_133"``, ``(133, 2)`` keypoints, no 3D and no
        intrinsics, ``ids`` ``{image_id, ann_id}``, ``extras`` with ``keypoints_v`` ``(133,)``,
        ``face_box_xywh_px`` / ``lefthand_box_xywh_px`` / ``righthand_box_xywh_px`` ``(4,)``, the four
        ``*_valid`` flags and ``iscrowd``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    root = Path(root).resolve()
    path = (Path(annotation_path).resolve() if annotation_path is not None
            else root / "annotations" / f"coco_wholebody_{split}_v1.0.json")
    img_dir = Path(image_dir).resolve() if image_dir is not None else root / "images" / f"{split}2017"

    data = read_json(path, dict)
    images_by_id, anns = index_coco(data, path=path)
    # Validate everything before pycocotools sees it: its own errors are bare KeyErrors.
    parsed: dict[int, dict | None] = {}
    for i, ann in enumerate(anns):
        parsed[int(ann["id"])] = _parse_annotation(ann, path=path, where=f"annotations[{i}]",
                                                   skip_crowd=skip_crowd)
    for i, img in enumerate(data["images"]):
        for key in ("width", "height"):
            get_int(img, key, path=path, where=f"images[{i}]")
        get_str(img, "file_name", path=path, where=f"images[{i}]")
    if len(parsed) != len(anns):
        raise DatasetFormatError(path, "annotations", "annotation ids are not unique")

    from pycocotools.coco import COCO  # deferred: keep imports light

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()

    samples: list[Sample] = []
    bad_boxes: list[str] = []
    far_keypoints: list[tuple[str, int]] = []
    for image_id in coco.getImgIds():
        img = images_by_id[image_id]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            p = parsed[int(ann["id"])]
            if p is None:  # crowd, skipped
                continue
            v = p["kpts"][:, 2]
            if skip_without_keypoints and not np.any(v > 0):
                continue
            if not (p["bbox"][2] > 0 and p["bbox"][3] > 0):  # Hand4Whole's process_bbox drops these too
                bad_boxes.append(f"{p['where']}.bbox: width/height <= 0 ({p['bbox'].tolist()})")
                continue
            conf = (v > 0).astype(np.float64)
            far = _far_outside(p["kpts"][:, :2], v, int(img["width"]), int(img["height"]))
            if far.any():  # a labelling glitch: drop those keypoints, keep the person
                conf[far] = 0.0
                far_keypoints.append((f"{p['where']}.keypoints", int(far.sum())))
            extras = {
                "keypoints_v": f32(v),
                "face_box_xywh_px": f32(p["face_box"]),
                "lefthand_box_xywh_px": f32(p["lefthand_box"]),
                "righthand_box_xywh_px": f32(p["righthand_box"]),
                "iscrowd": p["iscrowd"],
            }
            extras.update({name: p[name] for name in VALID_FIELDS})
            samples.append(
                Sample(
                    dataset="coco_wholebody",
                    image_path=img_dir / img["file_name"],
                    image_hw=(int(img["height"]), int(img["width"])),
                    bbox_xywh_px=f32(p["bbox"]),
                    keypoints_2d_px=f32(p["kpts"][:, :2]),
                    keypoints_conf=f32(conf),
                    joint_set="coco_wholebody_133",
                    ids={"image_id": int(image_id), "ann_id": int(ann["id"])},
                    extras=extras,
                )
            )
    if far_keypoints:
        field, _ = far_keypoints[0]
        total = sum(n for _, n in far_keypoints)
        warnings.warn(f"{path}: {field}: labelled keypoints lie far outside the image (more than one image size); "
                      f"skipped {total} keypoint(s) in {len(far_keypoints)} annotation(s) (confidence set to 0)",
                      stacklevel=2)
    if bad_boxes:
        warnings.warn(f"{path}: {bad_boxes[0]}; skipped {len(bad_boxes)} annotation(s) with an empty person box",
                      stacklevel=2)
    return samples
