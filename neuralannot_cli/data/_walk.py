"""Walking the COCO-style files of the camera datasets (Human3.6M, MPI-INF-3DHP, InterHand2.6M).

The three share one shape: ``{name}_data.json`` (COCO ``images`` / ``annotations``), a camera file and a
world-frame 3D joint file keyed by nested string dictionaries. This module holds the parts they read the
same way; each loader keeps its own keys, file layout and sample assembly.

Error messages are those of :mod:`neuralannot_cli.data._json` (one line naming file and field); a loader
that moves a read here keeps the same field names and the same order of reads, so the same broken file
gives the same first error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuralannot_cli.data._json import (
    as_array,
    check_joint_units,
    f32,
    get_array,
    get_int,
    get_nested,
    get_str,
    index_coco,
    key_path,
    project_cam_to_px,
    read_json,
)
from neuralannot_cli.data.record import Sample


def needed_by(image_id: int) -> str:
    """The context appended to a 'missing' message: ``(needed by image id 7)``."""
    return f"(needed by image id {image_id})"


@dataclass(frozen=True)
class AnnotationRef:
    """One annotation of a COCO-style file with its image and the field prefixes its errors name.

    ``ann_where`` is ``annotations[3]``; ``img_where`` is ``images[id=7]`` (images are looked up by id).
    """

    path: Path
    index: int
    ann: dict
    image_id: int
    img: dict

    @property
    def ann_where(self) -> str:
        return f"annotations[{self.index}]"

    @property
    def img_where(self) -> str:
        return f"images[id={self.image_id}]"

    def image_int(self, key: str) -> int:
        """``images[id=..].key`` as an integer."""
        return get_int(self.img, key, path=self.path, where=self.img_where)

    def image_file_and_box(self) -> tuple[tuple[int, int], str, np.ndarray]:
        """``((height, width), file_name, bbox (4,) float64)``, read in that order (image, then annotation)."""
        height = self.image_int("height")
        width = self.image_int("width")
        file_name = get_str(self.img, "file_name", path=self.path, where=self.img_where)
        bbox = get_array(self.ann, "bbox", (4,), path=self.path, where=self.ann_where)
        return (height, width), file_name, bbox


def iter_annotations(data: Mapping, *, path: Path) -> Iterator[AnnotationRef]:
    """Validate ``images`` / ``annotations`` (:func:`index_coco`, now) and walk the annotations in file order."""
    images_by_id, anns = index_coco(data, path=path)

    def walk() -> Iterator[AnnotationRef]:
        for a_i, ann in enumerate(anns):
            image_id = int(ann["image_id"])
            yield AnnotationRef(path, a_i, ann, image_id, images_by_id[image_id])

    return walk()


def read_camera_dataset(
    data_path: Path, cam_path: Path, joint_path: Path
) -> tuple[Iterator[AnnotationRef], dict, dict]:
    """Read the data, camera and joint files (in that order, each a JSON object) and index the data file.

    Returns ``(annotations, cams_json, joints_json)`` with ``annotations`` from :func:`iter_annotations`.
    """
    data = read_json(data_path, dict)
    cams_json = read_json(cam_path, dict)
    joints_json = read_json(joint_path, dict)
    return iter_annotations(data, path=data_path), cams_json, joints_json


@dataclass(frozen=True)
class WorldCamera:
    """A pinhole camera with world→camera extrinsics ``joints_cam = rotmat @ joints_world + trans_mm``.

    Shapes: ``rotmat`` ``(3, 3)``, ``trans_mm`` ``(3,)``, ``focal_px`` ``(2,)`` (fx, fy), ``princpt_px``
    ``(2,)`` (cx, cy); float64.
    """

    rotmat: np.ndarray
    trans_mm: np.ndarray
    focal_px: np.ndarray
    princpt_px: np.ndarray

    def world_to_cam(self, joints_world_mm: np.ndarray) -> np.ndarray:
        """``(joints, 3)`` world → ``(joints, 3)`` camera frame, millimetres."""
        return joints_world_mm @ self.rotmat.T + self.trans_mm


def read_world_camera(
    cams_json: Any, keys: Sequence[object], *, path: Path, names: tuple[str, str, str, str], context: str = ""
) -> WorldCamera:
    """The camera record at ``cams_json[k0][k1]...``, its fields named ``names`` = (R, t, focal, princpt).

    ``context`` goes into the message when a key is missing (see :func:`needed_by`). Fields are read in the
    order of ``names``; errors name ``["k0"]["k1"].<name>``.
    """
    cam = get_nested(cams_json, list(keys), path=path, context=context)
    where = key_path(*keys)
    r_name, t_name, f_name, c_name = names
    return WorldCamera(
        rotmat=get_array(cam, r_name, (3, 3), path=path, where=where),
        trans_mm=get_array(cam, t_name, (3,), path=path, where=where),
        focal_px=get_array(cam, f_name, (2,), path=path, where=where),
        princpt_px=get_array(cam, c_name, (2,), path=path, where=where),
    )


def as_joints_mm(value: Any, n_joints: int, *, path: Path, field_name: str) -> np.ndarray:
    """A ``(n_joints, 3)`` float64 skeleton in millimetres (metres are refused, see ``check_joint_units``)."""
    joints_mm = as_array(value, (n_joints, 3), path=path, field_name=field_name)
    check_joint_units(joints_mm, "mm", path=path, field_name=field_name)
    return joints_mm


def read_world_joints_mm(
    joints_json: Any, keys: Sequence[object], n_joints: int, *, path: Path, image_id: int
) -> np.ndarray:
    """``joints_json[k0][k1]...`` as a ``(n_joints, 3)`` world-frame skeleton in millimetres."""
    world = get_nested(joints_json, keys, path=path, context=needed_by(image_id))
    return as_joints_mm(world, n_joints, path=path, field_name=key_path(*keys))


def projected_sample(
    *,
    dataset: str,
    image_path: Path,
    image_hw: tuple[int, int],
    bbox_xywh_px: np.ndarray,
    joint_set: str,
    joints_cam_mm: np.ndarray,
    cam: WorldCamera,
    ids: dict,
    extras: dict | None = None,
) -> Sample:
    """A :class:`Sample` whose 2D keypoints are the projection of ``joints_cam_mm`` ``(joints, 3)``.

    Joints behind the camera get confidence 0 and keypoint ``(0, 0)``; the others confidence 1.
    ``extras`` starts with ``cam_rotmat`` and ``cam_trans_mm`` (float32), then the given entries.
    """
    kp_px = project_cam_to_px(joints_cam_mm, cam.focal_px, cam.princpt_px)
    conf = np.isfinite(kp_px).all(axis=-1).astype(np.float64)
    kp_px = np.nan_to_num(kp_px, nan=0.0)
    return Sample(
        dataset=dataset,
        image_path=image_path,
        image_hw=image_hw,
        bbox_xywh_px=f32(bbox_xywh_px),
        keypoints_2d_px=f32(kp_px),
        keypoints_conf=f32(conf),
        joint_set=joint_set,
        joints_3d_cam_mm=f32(joints_cam_mm),
        focal_px=(float(cam.focal_px[0]), float(cam.focal_px[1])),
        princpt_px=(float(cam.princpt_px[0]), float(cam.princpt_px[1])),
        ids=ids,
        extras={"cam_rotmat": f32(cam.rotmat), "cam_trans_mm": f32(cam.trans_mm), **(extras or {})},
    )
