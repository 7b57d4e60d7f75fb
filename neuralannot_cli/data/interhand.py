"""InterHand2.6M (5 fps or 30 fps release) in its official COCO-style format.

Files and fields, as documented in facebookresearch/InterHand2.6M ``DATASET.md`` and read by
``data/InterHand2.6M/dataset.py`` there and ``data/InterHand26M/InterHand26M.py`` in
mks0601/Hand4Whole_RELEASE::

    {annot_dir}/InterHand2.6M_{split}_data.json          # split: train, val, test
        images[]:      id, file_name, width, height, capture, camera (str), frame_idx, seq_name, subject
        annotations[]: id, image_id, bbox [x, y, w, h] (px), joint_valid (42),
                       hand_type ("right" | "left" | "interacting"), hand_type_valid
    {annot_dir}/InterHand2.6M_{split}_camera.json
        {"<capture>": {"campos": {"<camera>": [3] (mm)}, "camrot": {"<camera>": 3x3},
                       "focal": {"<camera>": [fx, fy]}, "princpt": {"<camera>": [cx, cy]}}}
    {annot_dir}/InterHand2.6M_{split}_joint_3d.json
        {"<capture>": {"<frame_idx>": {"world_coord": 42x3 (mm), "joint_valid": 42, "hand_type": ...}}}
        (the first release stored the 42x3 list directly under the frame key; both are accepted)
    {root}/images/{split}/{file_name}

``annot_dir`` is ``{root}/annotations/{split}`` (Hand4Whole, v1.0 release) or
``{root}/annotations/{annot_subset}`` (``all`` / ``human_annot`` / ``machine_annot`` of the first
release, facebookresearch layout).

Camera convention: ``campos`` is the camera centre and ``camrot`` the world→camera rotation,
``joints_cam = camrot @ (joints_world - campos)`` (``world2cam`` in the InterHand2.6M repo; Hand4Whole
writes the same as ``R X + t`` with ``t = -R campos``). 2D keypoints are projections with
``focal``/``princpt``.

Joint order: 42 joints = right hand 0-20 then left hand 21-41, each hand ordered as in the repo's
``annotations/skeleton.txt``: thumb4 (tip), thumb3, thumb2, thumb1, index4..1, middle4..1, ring4..1,
pinky4..1, wrist (20 / 41; ``root_joint_idx = {'right': 20, 'left': 41}``). Samples are re-ordered to
``hand_21`` (wrist, thumb 1-4, index 1-4, ..., 4 = tip) with :data:`INTERHAND_TO_HAND21`. As in both
repos, a hand's joints count as invalid when its wrist is invalid. One sample per hand: a
``"right"``/``"left"`` annotation gives that hand, ``"interacting"`` gives both, and hands with no
valid joint are dropped; ``extras["hand_side"]`` says which. The box is the box of the valid projected
joints enlarged ``bbox_scale`` times (Hand4Whole: ``get_bbox(..., extend_ratio=1.5)``); the file's
box (around both hands) is kept in ``extras["ann_bbox_xywh_px"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from neuralannot_cli.data._json import (
    as_array,
    bbox_from_keypoints,
    f32,
    get_array,
    get_field,
    get_nested,
    get_str,
    key_path,
    project_cam_to_px,
)
from neuralannot_cli.data._walk import as_joints_mm, needed_by, read_camera_dataset
from neuralannot_cli.data.record import DatasetFormatError, Sample

INTERHAND_HAND_JOINT_NAMES: tuple[str, ...] = (
    "Thumb_4", "Thumb_3", "Thumb_2", "Thumb_1", "Index_4", "Index_3", "Index_2", "Index_1",
    "Middle_4", "Middle_3", "Middle_2", "Middle_1", "Ring_4", "Ring_3", "Ring_2", "Ring_1",
    "Pinky_4", "Pinky_3", "Pinky_2", "Pinky_1", "Wrist",
)
"""One hand in InterHand2.6M order (``skeleton.txt`` without the ``r_``/``l_`` prefix)."""

INTERHAND_TO_HAND21: tuple[int, ...] = (20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16)
"""``hand21[k] = interhand_hand[INTERHAND_TO_HAND21[k]]``."""

HAND_OFFSETS: dict[str, int] = {"right": 0, "left": 21}
_HAND_TYPES = ("right", "left", "interacting")


def _camera(cams_json: dict, capture: int, camera: str, *, path: Path, image_id: int) -> dict[str, np.ndarray]:
    """``campos`` (3,), ``camrot`` (3, 3), ``focal`` (2,), ``princpt`` (2,) of one camera: each is a table
    ``{"<camera>": value}`` under the capture; errors name ``["<capture>"].focal["<camera>"]``."""
    cap = get_nested(cams_json, [capture], path=path, context=needed_by(image_id))
    entry = {}
    for name, shape in (("campos", (3,)), ("camrot", (3, 3)), ("focal", (2,)), ("princpt", (2,))):
        table = get_field(cap, name, path=path, where=key_path(capture))
        field_name = f"{key_path(capture)}.{name}{key_path(camera)}"
        if not isinstance(table, dict) or camera not in table:
            raise DatasetFormatError(path, field_name, f"missing {needed_by(image_id)}")
        entry[name] = as_array(table[camera], shape, path=path, field_name=field_name)
    return entry


def load_interhand(
    root: str | Path,
    split: Literal["train", "val", "test"] = "train",
    *,
    annot_subset: str | None = None,
    bbox_scale: float = 1.5,
) -> list[Sample]:
    """Load InterHand2.6M hands (one sample per valid hand per annotation).

    Args:
        root: dataset root with ``annotations/`` and ``images/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        annot_subset: ``None`` for ``annotations/{split}/``; else ``annotations/{annot_subset}/``.
        bbox_scale: enlargement of the per-hand keypoint box.

    Returns:
        Samples with ``joint_set="hand_21"``, ``joints_3d_cam_mm`` ``(21, 3)``, ``ids`` ``{image_id, ann_id,
        capture, camera, frame, hand_side}``, ``extras`` ``{hand_side, hand_type, hand_type_valid,
        ann_bbox_xywh_px, cam_rotmat, campos_mm}``.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if bbox_scale <= 0:
        raise ValueError(f"bbox_scale must be > 0, got {bbox_scale}")
    root = Path(root).resolve()
    annot_dir = root / "annotations" / (annot_subset if annot_subset is not None else split)
    data_path = annot_dir / f"InterHand2.6M_{split}_data.json"
    cam_path = annot_dir / f"InterHand2.6M_{split}_camera.json"
    joint_path = annot_dir / f"InterHand2.6M_{split}_joint_3d.json"
    annotations, cams_json, joints_json = read_camera_dataset(data_path, cam_path, joint_path)

    cam_cache: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    samples: list[Sample] = []
    for ref in annotations:
        capture = ref.image_int("capture")
        camera = str(get_field(ref.img, "camera", path=data_path, where=ref.img_where))
        frame = ref.image_int("frame_idx")
        image_hw, file_name, ann_bbox = ref.image_file_and_box()
        joint_valid = get_array(ref.ann, "joint_valid", (42,), path=data_path, where=ref.ann_where, flatten=True)
        hand_type = get_str(ref.ann, "hand_type", path=data_path, where=ref.ann_where)
        if hand_type not in _HAND_TYPES:
            raise DatasetFormatError(data_path, f"{ref.ann_where}.hand_type", f"expected one of {_HAND_TYPES}, "
                                     f"got {hand_type!r}")
        hand_type_valid = bool(ref.ann.get("hand_type_valid", 1))

        if (capture, camera) not in cam_cache:
            cam_cache[capture, camera] = _camera(cams_json, capture, camera, path=cam_path, image_id=ref.image_id)
        cam = cam_cache[capture, camera]

        keys = [capture, frame]
        frame_entry = get_nested(joints_json, keys, path=joint_path, context=needed_by(ref.image_id))
        if isinstance(frame_entry, dict):
            world = get_field(frame_entry, "world_coord", path=joint_path, where=key_path(*keys))
            w_field = f"{key_path(*keys)}.world_coord"
        else:
            world, w_field = frame_entry, key_path(*keys)
        joints_world_mm = as_joints_mm(world, 42, path=joint_path, field_name=w_field)
        joints_cam_mm = (joints_world_mm - cam["campos"]) @ cam["camrot"].T
        kp_px = project_cam_to_px(joints_cam_mm, cam["focal"], cam["princpt"])

        sides = ("right", "left") if hand_type == "interacting" else (hand_type,)
        for side in sides:
            idx = HAND_OFFSETS[side] + np.asarray(INTERHAND_TO_HAND21)
            valid = (joint_valid[idx] > 0) & (joint_valid[HAND_OFFSETS[side] + 20] > 0)
            hand_px = kp_px[idx]
            valid &= np.isfinite(hand_px).all(axis=-1)
            if not valid.any():
                continue
            conf = valid.astype(np.float64)
            hand_px = np.where(valid[:, None], hand_px, 0.0)
            samples.append(
                Sample(
                    dataset="interhand",
                    image_path=root / "images" / split / file_name,
                    image_hw=image_hw,
                    bbox_xywh_px=f32(bbox_from_keypoints(hand_px, conf, bbox_scale)),
                    keypoints_2d_px=f32(hand_px),
                    keypoints_conf=f32(conf),
                    joint_set="hand_21",
                    joints_3d_cam_mm=f32(joints_cam_mm[idx]),
                    focal_px=(float(cam["focal"][0]), float(cam["focal"][1])),
                    princpt_px=(float(cam["princpt"][0]), float(cam["princpt"][1])),
                    ids={"image_id": ref.image_id, "ann_id": int(ref.ann["id"]), "capture": capture,
                         "camera": camera, "frame": frame, "hand_side": side},
                    extras={
                        "hand_side": side,
                        "hand_type": hand_type,
                        "hand_type_valid": hand_type_valid,
                        "ann_bbox_xywh_px": f32(ann_bbox),
                        "cam_rotmat": f32(cam["camrot"]),
                        "campos_mm": f32(cam["campos"]),
                    },
                )
            )
    return samples
