"""3DPW ground-truth 3D joints: the GT SMPL parameters forwarded through SMPL and the Human3.6M regressor.

3DPW has no 3D joint labels; its GT is the SMPL fit (``extras["smpl_param"]`` of :func:`load_3dpw`). As
I2L-MeshNet / Hand4Whole ``data/PW3D/PW3D.py`` (``get_smpl_coord`` then ``evaluate``), the GT joints are::

    mesh_cam_m  = SMPL_{gender}(pose (24 axis-angle), shape (10 betas), trans (m, camera frame)).vertices
    joints_mm   = J_regressor_h36m_correct (17, 6890) @ mesh_cam_m * 1000          # camera frame, mm

i.e. the joint set ``h36m_17`` of the SMPL model of the person's gender (joint order
:data:`neuralannot_cli.data.h36m.H36M_17_JOINT_NAMES`); MPJPE / PA-MPJPE then use Human3.6M protocol 2's
14 joints (:func:`neuralannot_cli.evaluate.direct.eval_joint_indices`). SMPL is a licensed model, so the
loader stays free of it; this module is the step that needs the model files (usual lookup / ``model_dir``).

:func:`with_gt_joints` turns loader samples into samples of joint set ``h36m_17``: ``joints_3d_cam_mm`` the
GT joints (float32, mm), ``keypoints_2d_px`` their projection with the image's ``cam_param`` (confidence 1,
0 for a joint behind the camera, as the Human3.6M loader), and the loader's COCO-17 keypoints (OpenPose
detections or all-missing) kept in ``extras["coco_17"] = {"keypoints_2d_px", "keypoints_conf", "source"}``;
``extras["keypoints_source"]`` becomes ``"smpl_gt"``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from neuralannot_cli.data._json import f32, project_cam_to_px
from neuralannot_cli.data.record import Sample

__all__ = ["GT_JOINT_SET", "smpl_params_to_joints_cam_mm", "with_gt_joints"]

GT_JOINT_SET = "h36m_17"
"""Joint set of the 3DPW GT joints (SMPL Human3.6M regressor, I2L-MeshNet's evaluation)."""


def _smpl_model(gender: str, *, model_dir: str | os.PathLike | None, device: torch.device | str,
                dtype: torch.dtype) -> Any:
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.body.paths import SMPL_H36M_REGRESSOR_FILENAMES

    model = load_body_model("smpl", gender=gender, model_dir=model_dir,  # type: ignore[arg-type]
                            device=device, dtype=dtype)
    if "h36m" not in model.regressors:
        raise FileNotFoundError(
            f"3DPW GT joints need the SMPL Human3.6M regressor {' or '.join(SMPL_H36M_REGRESSOR_FILENAMES)} next "
            f"to {model.model_file} (not found; it ships with I2L-MeshNet's / SPIN's data files)")
    return model


def smpl_params_to_joints_cam_mm(
    smpl_params: Sequence[Mapping[str, Any]],
    *,
    model_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
    chunk: int = 256,
    load_model: Callable[[str], Any] | None = None,
) -> np.ndarray:
    """GT ``h36m_17`` joints of 3DPW persons, ``(N, 17, 3)`` float64, camera frame, millimetres.

    Args:
        smpl_params: per person ``{"pose_rotvecs": (24, 3), "shape_betas": (10,), "trans_cam_m": (3,),
            "gender": "male" | "female" | "neutral"}`` (``Sample.extras["smpl_param"]`` of the loader).
        model_dir: SMPL folder (else the usual lookup, :func:`neuralannot_cli.body.paths.find_model_file`).
        device, dtype: where and in which precision SMPL runs (float64 by default: a test-set reference).
        chunk: persons per forward pass.
        load_model: ``gender -> BodyModel`` (SMPL with its ``h36m`` regressor) instead of loading from
            ``model_dir``.

    Raises:
        ValueError: a parameter of the wrong shape (the person's index and the shape received).
        FileNotFoundError: the SMPL file of a gender, or the SMPL Human3.6M regressor, is missing.
    """
    if load_model is None:
        def load_model(g: str) -> Any:
            return _smpl_model(g, model_dir=model_dir, device=device, dtype=dtype)

    shapes = {"pose_rotvecs": (24, 3), "shape_betas": (10,), "trans_cam_m": (3,)}
    by_gender: dict[str, list[int]] = {}
    arrays: list[dict[str, np.ndarray]] = []
    for i, p in enumerate(smpl_params):
        a = {}
        for name, shape in shapes.items():
            v = np.asarray(p[name], dtype=np.float64)
            if v.size != int(np.prod(shape)):
                raise ValueError(f"3DPW person {i}: smpl_param.{name} must have shape {shape}, got {v.shape}")
            a[name] = v.reshape(shape)
        arrays.append(a)
        by_gender.setdefault(str(p["gender"]), []).append(i)
    out = np.zeros((len(arrays), 17, 3))
    with torch.no_grad():
        for gender, idx in by_gender.items():
            model = load_model(gender)
            for s in range(0, len(idx), chunk):
                part = idx[s:s + chunk]

                def t(name: str) -> torch.Tensor:
                    v = np.stack([arrays[i][name] for i in part])
                    return torch.as_tensor(v, dtype=model.dtype, device=model.device)

                pose = t("pose_rotvecs")  # (B, 24, 3): root, then SMPL's 23 body joints
                res = model(root_rotvec=pose[:, 0], body_pose_rotvecs=pose[:, 1:], betas=t("shape_betas"),
                            transl_m=t("trans_cam_m"))
                out[part] = model.joints_in(res, GT_JOINT_SET).to("cpu", torch.float64).numpy() * 1000.0
    return out


def with_gt_joints(
    samples: Sequence[Sample],
    *,
    model_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
    load_model: Callable[[str], Any] | None = None,
) -> list[Sample]:
    """3DPW samples with their GT 3D joints (module docstring): joint set ``h36m_17`` for 3D and 2D.

    Samples of other datasets are returned unchanged. See :func:`smpl_params_to_joints_cam_mm` for the
    arguments and errors; a 3DPW sample without ``extras["smpl_param"]`` or intrinsics raises ``ValueError``.
    """
    todo = [i for i, s in enumerate(samples) if s.dataset == "3dpw"]
    for i in todo:
        s = samples[i]
        if "smpl_param" not in s.extras or s.focal_px is None or s.princpt_px is None:
            raise ValueError(f"{s.image_path}: a 3DPW sample needs extras['smpl_param'] and intrinsics "
                             "for its GT joints")
    joints = smpl_params_to_joints_cam_mm([samples[i].extras["smpl_param"] for i in todo], model_dir=model_dir,
                                          device=device, dtype=dtype, load_model=load_model)
    out = list(samples)
    for i, j_mm in zip(todo, joints):
        s = samples[i]
        kp = project_cam_to_px(j_mm, np.asarray(s.focal_px), np.asarray(s.princpt_px))
        conf = np.isfinite(kp).all(axis=-1).astype(np.float64)
        coco = {"keypoints_2d_px": s.keypoints_2d_px, "keypoints_conf": s.keypoints_conf,
                "source": s.extras.get("keypoints_source")}
        out[i] = dataclasses.replace(
            s, joint_set=GT_JOINT_SET, joints_3d_cam_mm=f32(j_mm), keypoints_2d_px=f32(np.nan_to_num(kp, nan=0.0)),
            keypoints_conf=f32(conf), extras={**s.extras, "coco_17": coco, "keypoints_source": "smpl_gt"})
    return out
