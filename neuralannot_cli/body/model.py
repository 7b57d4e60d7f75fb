"""Body models (SMPL-X, SMPL, MANO, FLAME) as ``nn.Module``s with explicit, shape-checked inputs.

:func:`load_body_model` finds the model file (:mod:`neuralannot_cli.body.paths`), converts official
``.pkl`` files to cached ``.npz`` without chumpy (:mod:`neuralannot_cli.body.pkl`) and wraps the
corresponding ``smplx`` *Layer* class (``SMPLXLayer``, ``SMPLLayer``, ``MANOLayer``, ``FLAMELayer``): the Layer classes
hold no per-batch parameters, so any batch size works. Poses are axis-angle vectors (``*_rotvec(s)``),
converted to rotation matrices with ``roma`` before calling the layer.

Conventions:

- Units: metres (as the model files). ``transl_m`` is added to vertices and joints.
- ``flat_hand_mean`` defaults to **False** for SMPL-X and MANO: the given hand pose is *relative to the
  model's mean hand pose* (``hands_mean`` / ``hands_meanl``, ``hands_meanr`` of the file), which is
  ``smplx.create``'s default and what the released NeuralAnnot parameters assume (NeuralAnnot_RELEASE
  demos call ``smplx.create(..., use_pca=False)``; Hand4Whole creates MANO with
  ``flat_hand_mean=False``). smplx's Layer classes silently ignore the mean, so this wrapper adds it to
  the axis-angle hand pose exactly like ``smplx.SMPLX.forward`` does (``full_pose += pose_mean``).
- ``use_face_contour=True`` for SMPL-X and FLAME, so the 17 contour landmarks exist.
- Left MANO: the official ``MANO_LEFT.pkl`` has the sign of ``shapedirs[:, 0, :]`` wrong
  (smplx issue #48). As Hand4Whole does, when the x-components of the left and right ``shapedirs``
  are (almost) equal the left ones are negated; this needs ``MANO_RIGHT`` next to ``MANO_LEFT`` (a
  ``UserWarning`` says when it is not there).
- smplx opens ``.npz`` files with ``allow_pickle=True``; an npz with object (pickled) members is handed to it as a
  cached numeric-only copy (:func:`_numeric_npz`), so no model file -- ``.pkl`` or ``.npz`` -- runs a pickle.
- ``smplx.SMPL`` reads its file with a plain ``pickle.load`` (no ``ext`` option): the SMPL layer gets the arrays of the
  checked, numeric-only ``.npz`` as ``data_struct`` instead, so an SMPL file is never unpickled by smplx either.
- Before smplx reads a file, the fields it needs are checked (:func:`_check_model_fields`): a file of another model
  type or variant fails with one line naming the file and the missing fields, not smplx's ``AttributeError``.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import roma
import torch
from torch import Tensor, nn

from neuralannot_cli.body import paths as _paths
from neuralannot_cli.body import joint_sets as _joint_sets
from neuralannot_cli.body.kinematics import kinematic_levels, rigid_transforms
from neuralannot_cli.body.joint_sets import get_joint_set, gather_joints
from neuralannot_cli.body.paths import (
    FLAME_DYNAMIC_EMBEDDING_FILENAME,
    FLAME_STATIC_EMBEDDING_FILENAME,
    GENDERS,
    H36M_REGRESSOR_FILENAME,
    MODEL_TYPES,
    SMPL_H36M_REGRESSOR_FILENAMES,
    REGISTRATION_URLS,
    ModelSearchConfig,
    ResolvedModelFile,
)
from neuralannot_cli.body.pkl import (
    atomic_write_bytes,
    convert_pkl_to_npz,
    file_sha256,
    load_restricted_npy,
    load_restricted_pickle,
    numeric_arrays,
)

__all__ = ["BodyOutput", "BodyModel", "load_body_model"]

# Parameter name -> trailing shape, per model type. "betas"/"expression" sizes are filled per model.
_PARAMS: dict[str, tuple[str, ...]] = {
    "smplx": (
        "root_rotvec", "body_pose_rotvecs", "betas", "left_hand_pose_rotvecs", "right_hand_pose_rotvecs",
        "jaw_rotvec", "leye_rotvec", "reye_rotvec", "expression", "transl_m", "root_rotmat", "body_pose_rotmats",
    ),
    "smpl": ("root_rotvec", "body_pose_rotvecs", "betas", "transl_m", "root_rotmat", "body_pose_rotmats"),
    "mano": ("root_rotvec", "hand_pose_rotvecs", "betas", "transl_m", "root_rotmat"),
    "flame": (
        "root_rotvec", "neck_rotvec", "jaw_rotvec", "leye_rotvec", "reye_rotvec", "betas", "expression",
        "transl_m", "root_rotmat",
    ),
}  # fmt: skip
_FIXED_SHAPES: dict[str, tuple[int, ...]] = {
    "root_rotvec": (3,),
    "body_pose_rotvecs": (21, 3),
    "left_hand_pose_rotvecs": (15, 3),
    "right_hand_pose_rotvecs": (15, 3),
    "hand_pose_rotvecs": (15, 3),
    "jaw_rotvec": (3,),
    "leye_rotvec": (3,),
    "reye_rotvec": (3,),
    "neck_rotvec": (3,),
    "transl_m": (3,),
    "root_rotmat": (3, 3),
    "body_pose_rotmats": (21, 3, 3),
}
# SMPL poses 23 body joints (SMPL-X's 21 and the two hand joints)
_SMPL_SHAPES: dict[str, tuple[int, ...]] = {"body_pose_rotvecs": (23, 3), "body_pose_rotmats": (23, 3, 3)}
# (axis-angle name, rotation-matrix name) of the inputs that may be given either way (not both)
_ROTMAT_ALTERNATIVES = (("root_rotvec", "root_rotmat"), ("body_pose_rotvecs", "body_pose_rotmats"))
# SMPL-X inputs after the body pose in the layer's joint order (jaw, eyes, hands): 34 joints
_SMPLX_TAIL = ("jaw_rotvec", "leye_rotvec", "reye_rotvec", "left_hand_pose_rotvecs", "right_hand_pose_rotvecs")


@dataclass(frozen=True)
class BodyOutput:
    """Result of a body-model forward pass (metres, model frame plus ``transl_m``).

    Attributes:
        vertices: ``(batch, V, 3)``.
        joints: ``(batch, J, 3)`` smplx's output joints (kinematic joints, then extra vertex joints and
            face landmarks; see :mod:`neuralannot_cli.body.joint_sets`).
        kinematic_joints: ``(batch, K, 3)`` the joints of the kinematic tree (first ``K`` of ``joints``).
        faces: ``(F, 3)`` int64 triangle vertex indices.
        vertex_ids: ``None`` when every vertex was posed; after ``forward(..., full_mesh=False)`` the
            ``(S,)`` int64 ids of the vertices that were posed -- ``vertices`` is zero everywhere else.
    """

    vertices: Tensor
    joints: Tensor
    kinematic_joints: Tensor
    faces: Tensor
    vertex_ids: Tensor | None = None


class BodyModel(nn.Module):
    """An ``smplx`` Layer with named, shape-checked axis-angle inputs. Build with :func:`load_body_model`.

    Forward keyword arguments (all optional, ``batch`` inferred from whatever is given, missing ones are
    zeros; rotations are axis-angle vectors in radians):

    - SMPL-X: ``root_rotvec (batch, 3)``, ``body_pose_rotvecs (batch, 21, 3)``,
      ``betas (batch, num_betas)``, ``left_hand_pose_rotvecs (batch, 15, 3)``,
      ``right_hand_pose_rotvecs (batch, 15, 3)``, ``jaw_rotvec``, ``leye_rotvec``, ``reye_rotvec``
      ``(batch, 3)``, ``expression (batch, num_expression_coeffs)``, ``transl_m (batch, 3)``.
    - SMPL: ``root_rotvec (batch, 3)``, ``body_pose_rotvecs (batch, 23, 3)`` (SMPL's joints 1..23, hands
      included), ``betas (batch, num_betas)``, ``transl_m (batch, 3)``.
    - MANO: ``root_rotvec``, ``hand_pose_rotvecs (batch, 15, 3)``, ``betas``, ``transl_m``.
    - FLAME: ``root_rotvec``, ``neck_rotvec``, ``jaw_rotvec``, ``leye_rotvec``, ``reye_rotvec``,
      ``betas``, ``expression``, ``transl_m``.

    Rotation matrices instead of axis-angle (one or the other, not both): ``root_rotmat (batch, 3, 3)`` (all
    model types) and, for SMPL-X, ``body_pose_rotmats (batch, 21, 3, 3)`` (SMPL: ``(batch, 23, 3, 3)``). The layers pose with matrices, so a
    regressor that decodes 6D to matrices (:mod:`neuralannot_cli.nets.heads`) skips a matrix -> axis-angle ->
    matrix round trip (~0.5k kernels per training step with its backward). Hand poses stay axis-angle: smplx adds
    the hand mean pose to them in axis-angle space.
    """

    def __init__(
        self,
        layer: nn.Module,
        *,
        model_type: str,
        gender: str,
        is_rhand: bool,
        flat_hand_mean: bool,
        model_file: Path,
        layer_path: Path,
        source: str,
        is_standin: bool,
        regressors: dict[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.model_type = model_type
        self.gender = gender
        self.is_rhand = is_rhand
        self.flat_hand_mean = flat_hand_mean
        self.model_file = Path(model_file)
        self.layer_path = Path(layer_path)  # what smplx loaded: the (converted) .npz, or FLAME's directory
        self.source = source
        self._is_standin = bool(is_standin)
        dtype = layer.shapedirs.dtype
        self._regressor_names: list[str] = []
        for name, matrix in (regressors or {}).items():
            self.register_buffer(f"regressor_{name}", torch.as_tensor(matrix, dtype=dtype), persistent=False)
            self._regressor_names.append(name)
        self._num_kinematic = int(layer.J_regressor.shape[0])
        self._rest_tail_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        self._has_joint_support = model_type == "smplx" and self._register_joint_support()

    def _register_joint_support(self) -> bool:
        """Pick the vertices whose posed positions the joints read (for ``full_mesh=False``); True if usable.

        The posed positions of only these vertices enter ``BodyOutput.joints`` and every joint set:
        smplx's vertex joints (``VertexJointSelector``), the faces of the static and all dynamic face
        landmarks, the support (non-zero columns) of each extra regressor, and the vertex sources of the
        joint-set recipes. The kinematic joints need the *shaped* mesh only, which is linear in the shape
        coefficients: ``J_regressor @ (v_template + shapedirs @ c)`` is precomputed as
        ``J_template + J_shapedirs @ c``. Returns False (full forward only) for layers without the
        expected buffers.
        """
        layer = self.layer
        need = ("vertex_joint_selector", "lmk_faces_idx", "dynamic_lmk_faces_idx", "expr_dirs", "posedirs")
        if (any(not hasattr(layer, n) for n in need) or getattr(layer, "joint_mapper", None) is not None
                or not getattr(layer, "use_face_contour", False)):
            return False
        faces = layer.faces_tensor
        ids = [
            layer.vertex_joint_selector.extra_joints_idxs.reshape(-1),
            faces[layer.lmk_faces_idx.reshape(-1)].reshape(-1),
            faces[layer.dynamic_lmk_faces_idx.reshape(-1)].reshape(-1),
        ]
        for name in self._regressor_names:
            ids.append(torch.nonzero(getattr(self, f"regressor_{name}").abs().sum(0)).reshape(-1))
        recipe_ids = {
            src.index
            for jset in _joint_sets.JOINT_SETS.values() if "smplx" in jset.recipes
            for entry in jset.recipe("smplx") for src in entry if src.kind == "vertex"
        }
        ids.append(torch.tensor(sorted(recipe_ids), dtype=torch.long, device=faces.device))
        self._sub_ids_cpu = torch.unique(torch.cat([i.to(torch.long).cpu() for i in ids]))
        self._sub_cache: dict[tuple[torch.device, torch.dtype], dict[str, Any]] = {}
        return True

    # ----------------------------------------------------------------------------------------------
    # Properties

    @property
    def dtype(self) -> torch.dtype:
        return self.layer.shapedirs.dtype

    @property
    def device(self) -> torch.device:
        return self.layer.shapedirs.device

    @property
    def num_vertices(self) -> int:
        return int(self.layer.v_template.shape[0])

    @property
    def num_kinematic_joints(self) -> int:
        return self._num_kinematic

    @property
    def num_betas(self) -> int:
        return int(self.layer.num_betas)

    @property
    def num_expression_coeffs(self) -> int:
        return int(self.layer.num_expression_coeffs) if self.model_type in ("smplx", "flame") else 0

    @property
    def is_standin(self) -> bool:
        """True when the loaded file is the random stand-in, not a licensed model."""
        return self._is_standin

    @property
    def faces(self) -> np.ndarray:
        """``(F, 3)`` int64 triangle vertex indices."""
        return self.layer.faces_tensor.detach().cpu().numpy().astype(np.int64)

    @property
    def parents(self) -> np.ndarray:
        """``(K,)`` int64 parent index of each kinematic joint, ``-1`` for the root."""
        return self.layer.parents.detach().cpu().numpy().astype(np.int64)

    @property
    def regressors(self) -> dict[str, Tensor]:
        """Extra joint regressors by name (``'h36m'``: ``(17, V)``), when their files were found."""
        return {name: getattr(self, f"regressor_{name}") for name in self._regressor_names}

    def extra_repr(self) -> str:
        return (
            f"model_type={self.model_type}, gender={self.gender}, is_rhand={self.is_rhand}, "
            f"flat_hand_mean={self.flat_hand_mean}, standin={self.is_standin}, file={self.model_file}"
        )

    # ----------------------------------------------------------------------------------------------
    # Forward

    def _expected_shape(self, name: str) -> tuple[int, ...]:
        if name == "betas":
            return (self.num_betas,)
        if name == "expression":
            return (self.num_expression_coeffs,)
        if self.model_type == "smpl" and name in _SMPL_SHAPES:
            return _SMPL_SHAPES[name]
        return _FIXED_SHAPES[name]

    def _check_params(self, params: dict[str, Tensor | None]) -> tuple[dict[str, Tensor], int]:
        allowed = _PARAMS[self.model_type]
        for vec_name, mat_name in _ROTMAT_ALTERNATIVES:
            if params.get(vec_name) is not None and params.get(mat_name) is not None:
                raise ValueError(f"got both '{vec_name}' and '{mat_name}': give the rotation one way")
        given: dict[str, Tensor] = {}
        for name, value in params.items():
            if value is None:
                continue
            if name not in allowed:
                raise ValueError(
                    f"{self.model_type} model got '{name}', which it does not use; valid: {', '.join(allowed)}"
                )
            if not isinstance(value, Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
            expected = self._expected_shape(name)
            if value.ndim != 1 + len(expected) or tuple(value.shape[1:]) != expected:
                dims = ", ".join(["batch", *map(str, expected)])
                raise ValueError(f"{name} must have shape ({dims}), got {tuple(value.shape)}")
            if value.device != self.device:
                raise ValueError(f"{name} is on {value.device} but the body model is on {self.device}")
            if not value.dtype.is_floating_point:
                raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
            given[name] = value.to(self.dtype)
        batch_sizes = {name: int(v.shape[0]) for name, v in given.items()}
        if len(set(batch_sizes.values())) > 1:
            raise ValueError(f"inconsistent batch sizes: {batch_sizes}")
        batch = next(iter(batch_sizes.values())) if batch_sizes else 1
        return given, batch

    def _param(self, given: dict[str, Tensor], name: str, batch: int) -> Tensor:
        if name in given:
            return given[name]
        return torch.zeros((batch, *self._expected_shape(name)), dtype=self.dtype, device=self.device)

    def forward(
        self,
        *,
        root_rotvec: Tensor | None = None,
        body_pose_rotvecs: Tensor | None = None,
        betas: Tensor | None = None,
        left_hand_pose_rotvecs: Tensor | None = None,
        right_hand_pose_rotvecs: Tensor | None = None,
        hand_pose_rotvecs: Tensor | None = None,
        jaw_rotvec: Tensor | None = None,
        leye_rotvec: Tensor | None = None,
        reye_rotvec: Tensor | None = None,
        neck_rotvec: Tensor | None = None,
        expression: Tensor | None = None,
        transl_m: Tensor | None = None,
        root_rotmat: Tensor | None = None,
        body_pose_rotmats: Tensor | None = None,
        full_mesh: bool = True,
    ) -> BodyOutput:
        """Posed mesh and joints; see the class docstring for the arguments of each model type.

        ``full_mesh=False`` (SMPL-X; other model types ignore it) poses only the vertices that the joints
        and joint sets read (see :meth:`_register_joint_support`); ``joints`` and :meth:`joints_in` are
        the same as with the full mesh, ``vertices`` is zero outside ``BodyOutput.vertex_ids``. Losses on
        joints use it: the pose blend shapes and skinning of all vertices cost most of the forward pass.
        """
        given, batch = self._check_params(
            {
                "root_rotvec": root_rotvec,
                "body_pose_rotvecs": body_pose_rotvecs,
                "betas": betas,
                "left_hand_pose_rotvecs": left_hand_pose_rotvecs,
                "right_hand_pose_rotvecs": right_hand_pose_rotvecs,
                "hand_pose_rotvecs": hand_pose_rotvecs,
                "jaw_rotvec": jaw_rotvec,
                "leye_rotvec": leye_rotvec,
                "reye_rotvec": reye_rotvec,
                "neck_rotvec": neck_rotvec,
                "expression": expression,
                "transl_m": transl_m,
                "root_rotmat": root_rotmat,
                "body_pose_rotmats": body_pose_rotmats,
            }
        )

        def p(name: str) -> Tensor:
            return self._param(given, name, batch)

        def rotmats(rotvecs: Tensor) -> Tensor:  # (B, N, 3) -> (B, N, 3, 3)
            return roma.rotvec_to_rotmat(rotvecs)

        def root_rotmats() -> Tensor:  # (B, 1, 3, 3)
            return given["root_rotmat"][:, None] if "root_rotmat" in given else rotmats(p("root_rotvec")[:, None])

        if self.model_type == "smplx":
            full_pose = self._smplx_full_pose(given, batch)  # (B, 55, 3, 3), SMPLXLayer.forward's order
            if not full_mesh and self._has_joint_support:
                return self._smplx_joint_support_forward(full_pose, p("betas"), p("expression"), p("transl_m"))
            out = self.layer(
                betas=p("betas"),
                global_orient=full_pose[:, 0:1],
                body_pose=full_pose[:, 1:22],
                jaw_pose=full_pose[:, 22:23],
                leye_pose=full_pose[:, 23:24],
                reye_pose=full_pose[:, 24:25],
                left_hand_pose=full_pose[:, 25:40],
                right_hand_pose=full_pose[:, 40:55],
                expression=p("expression"),
                transl=p("transl_m"),
            )
        elif self.model_type == "smpl":
            vecs = [] if "root_rotmat" in given else [p("root_rotvec")[:, None]]
            if "body_pose_rotmats" not in given:
                vecs.append(p("body_pose_rotvecs"))
            converted = roma.rotvec_to_rotmat(torch.cat(vecs, dim=1)) if vecs else None  # one call for both
            root = given["root_rotmat"][:, None] if "root_rotmat" in given else converted[:, :1]
            body = given["body_pose_rotmats"] if "body_pose_rotmats" in given else converted[:, -23:]
            out = self.layer(betas=p("betas"), global_orient=root, body_pose=body, transl=p("transl_m"))
        elif self.model_type == "mano":
            hand = p("hand_pose_rotvecs") + self.layer.hand_mean.view(1, 15, 3)
            mano_pose = torch.cat([root_rotmats(), rotmats(hand)], dim=1)  # (B, 16, 3, 3)
            out = self.layer(
                betas=p("betas"),
                global_orient=mano_pose[:, :1],
                hand_pose=mano_pose[:, 1:],
                transl=p("transl_m"),
            )
        else:
            out = self.layer(
                betas=p("betas"),
                global_orient=root_rotmats(),
                neck_pose=rotmats(p("neck_rotvec")[:, None]),
                jaw_pose=rotmats(p("jaw_rotvec")[:, None]),
                leye_pose=rotmats(p("leye_rotvec")[:, None]),
                reye_pose=rotmats(p("reye_rotvec")[:, None]),
                expression=p("expression"),
                transl=p("transl_m"),
            )
        joints = out.joints
        return BodyOutput(
            vertices=out.vertices,
            joints=joints,
            kinematic_joints=joints[:, : self._num_kinematic],
            faces=self.layer.faces_tensor,
        )

    def _smplx_full_pose(self, given: dict[str, Tensor], batch: int) -> Tensor:
        """``(B, 55, 3, 3)`` rotation matrices of SMPL-X's joints in ``SMPLXLayer.forward``'s order.

        The axis-angle inputs are converted in one call (roma's conversion costs ~50 kernels a call). When no jaw,
        eye or hand pose is given (training and fitting of the body), their 34 matrices are the rest pose (hands
        at the layer's mean pose), computed once per device and dtype.
        """
        def p(name: str) -> Tensor:
            return self._param(given, name, batch)

        layer = self.layer
        tail_given = any(n in given for n in _SMPLX_TAIL)
        vecs = [] if "root_rotmat" in given else [p("root_rotvec")[:, None]]
        if "body_pose_rotmats" not in given:
            vecs.append(p("body_pose_rotvecs"))
        if tail_given:
            vecs += [p("jaw_rotvec")[:, None], p("leye_rotvec")[:, None], p("reye_rotvec")[:, None],
                     p("left_hand_pose_rotvecs") + layer.left_hand_mean.view(1, 15, 3),
                     p("right_hand_pose_rotvecs") + layer.right_hand_mean.view(1, 15, 3)]
        converted = roma.rotvec_to_rotmat(torch.cat(vecs, dim=1)) if vecs else None
        parts, start = [], 0
        for name, n in (("root_rotmat", 1), ("body_pose_rotmats", 21)):
            if name in given:
                parts.append(given[name].reshape(batch, n, 3, 3))
            else:
                parts.append(converted[:, start : start + n])
                start += n
        if tail_given:
            parts.append(converted[:, start:])
        else:
            key = (layer.v_template.device, self.dtype)
            tail = self._rest_tail_cache.get(key)
            if tail is None:
                # built outside inference mode: an inference tensor cached here would break a later backward
                with torch.inference_mode(False), torch.no_grad():
                    zeros = torch.zeros(1, 3, 3, dtype=self.dtype, device=key[0])
                    tail = self._rest_tail_cache[key] = roma.rotvec_to_rotmat(torch.cat([
                        zeros, layer.left_hand_mean.view(1, 15, 3), layer.right_hand_mean.view(1, 15, 3)], dim=1))[0]
            parts.append(tail.expand(batch, -1, -1, -1))
        return torch.cat(parts, dim=1)

    def _joint_support_buffers(self, device: torch.device) -> dict[str, Any]:
        """The layer's buffers restricted to the joint-support vertices, in the layer's current dtype, and the
        kinematic tree grouped by depth (:func:`~neuralannot_cli.body.kinematics.kinematic_levels`)."""
        layer = self.layer
        # built outside inference mode: an inference tensor cached here would break a later backward
        with torch.inference_mode(False), torch.no_grad():
            ids = self._sub_ids_cpu.to(device)
            dirs = torch.cat([layer.shapedirs, layer.expr_dirs], dim=-1)  # (V, 3, C)
            num_pose = layer.posedirs.shape[0]
            return {
                "ids": ids, "v_template": layer.v_template[ids], "shapedirs": dirs[ids],
                "posedirs": layer.posedirs.reshape(num_pose, -1, 3)[:, ids].reshape(num_pose, -1),
                "lbs_weights": layer.lbs_weights[ids], "j_template": layer.J_regressor @ layer.v_template,
                "j_shapedirs": torch.einsum("jv,vck->jck", layer.J_regressor, dirs),
                "tree": kinematic_levels(layer.parents.cpu(), device=device),
            }

    def _smplx_joint_support_forward(self, full_pose: Tensor, betas: Tensor, expression: Tensor,
                                     transl: Tensor) -> BodyOutput:
        """``SMPLXLayer.forward`` (smplx ``lbs`` + landmarks + vertex joints) on the joint-support vertices.

        The steps are smplx's own (``blend_shapes``, ``find_dynamic_lmk_idx_and_bcoords``,
        ``vertices2landmarks``, ``VertexJointSelector``) applied to the buffers of
        :meth:`_joint_support_buffers`, except the kinematic chain: :func:`~neuralannot_cli.body.kinematics.
        rigid_transforms` computes ``batch_rigid_transform``'s result one tree depth at a time (11 batched
        products instead of 54, and no per-joint host sync on a GPU); ``full_pose`` is ``(B, 55, 3, 3)``.
        """
        from smplx.lbs import blend_shapes, find_dynamic_lmk_idx_and_bcoords, vertices2landmarks

        layer, batch = self.layer, full_pose.shape[0]
        key = (layer.v_template.device, layer.v_template.dtype)
        sub = self._sub_cache.get(key)
        if sub is None:
            sub = self._sub_cache[key] = self._joint_support_buffers(key[0])
        coeffs = torch.cat([betas, expression], dim=-1)
        v_shaped = sub["v_template"] + blend_shapes(coeffs, sub["shapedirs"])  # (B, S, 3)
        j_shaped = sub["j_template"] + blend_shapes(coeffs, sub["j_shapedirs"])  # (B, 55, 3)
        ident = torch.eye(3, dtype=full_pose.dtype, device=full_pose.device)
        pose_feature = (full_pose[:, 1:] - ident).reshape(batch, -1)
        v_posed = v_shaped + (pose_feature @ sub["posedirs"]).reshape(batch, -1, 3)
        j_posed, transforms = rigid_transforms(full_pose, j_shaped, sub["tree"])
        skin = (sub["lbs_weights"] @ transforms.reshape(batch, -1, 16)).reshape(batch, -1, 4, 4)  # (B, S, 4, 4)
        v_sub = (skin[..., :3, :3] @ v_posed[..., None])[..., 0] + skin[..., :3, 3]
        vertices = v_sub.new_zeros(batch, self.num_vertices, 3).index_copy(1, sub["ids"], v_sub)
        dyn_faces, dyn_bary = find_dynamic_lmk_idx_and_bcoords(
            vertices, full_pose, layer.dynamic_lmk_faces_idx, layer.dynamic_lmk_bary_coords, layer.neck_kin_chain,
            pose2rot=False)
        lmk_faces = torch.cat([layer.lmk_faces_idx.unsqueeze(0).expand(batch, -1), dyn_faces], dim=1)
        lmk_bary = torch.cat([layer.lmk_bary_coords.unsqueeze(0).expand(batch, -1, -1), dyn_bary], dim=1)
        landmarks = vertices2landmarks(vertices, layer.faces_tensor, lmk_faces, lmk_bary)
        joints = torch.cat([layer.vertex_joint_selector(vertices, j_posed), landmarks], dim=1)
        joints = joints + transl[:, None]
        vertices = vertices.index_add(1, sub["ids"], transl[:, None].expand(-1, v_sub.shape[1], -1))
        return BodyOutput(vertices=vertices, joints=joints, kinematic_joints=joints[:, : self._num_kinematic],
                          faces=layer.faces_tensor, vertex_ids=sub["ids"])

    def joints_in(self, output: BodyOutput, joint_set: str) -> Tensor:
        """``(batch, N, 3)`` joints of the named joint set (see :mod:`neuralannot_cli.body.joint_sets`).

        Raises:
            ValueError: unknown joint set, one not defined for this model type, or one needing a
                regressor file that was not found (e.g. ``J_regressor_h36m_smplx.npy`` for ``h36m_17`` on
                SMPL-X, ``J_regressor_h36m_correct.npy`` on SMPL).
        """
        jset = get_joint_set(joint_set)
        recipe = jset.recipe(self.model_type)
        needed = {src.regressor for entry in recipe for src in entry if src.kind == "regressor"}
        missing = sorted(n for n in needed if n not in self._regressor_names)
        if missing:
            names = _H36M_REGRESSOR_FILENAMES.get(self.model_type, (H36M_REGRESSOR_FILENAME,))
            raise ValueError(
                f"joint set {joint_set} needs {' or '.join(names)} next to the model file "
                f"{self.model_file}, which was not found"
            )
        return gather_joints(output.joints, output.vertices, recipe, self.regressors)


# --------------------------------------------------------------------------------------------------
# Loading


@contextlib.contextmanager
def _quiet_stdout():
    """smplx prints 'WARNING: You are using a SMPL-X model, with only 10 shape coefficients.' to stdout;
    the wrapper checks ``num_betas`` itself and raises on a real mismatch."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# Fields smplx reads from each model file (``body_models.py``: ``SMPL.__init__`` for all three, then ``SMPLH``
# and ``SMPLX`` (hand PCA, face landmarks; we always use the face contour) or ``MANO`` (hand PCA)). A file lacking
# one fails inside smplx with a bare ``AttributeError: 'Struct' object has no attribute ...``.
_BASE_FIELDS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "smplx": _BASE_FIELDS + ("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr", "lmk_faces_idx",
                             "lmk_bary_coords", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"),
    "mano": _BASE_FIELDS + ("hands_components", "hands_mean"),
    "flame": _BASE_FIELDS,
    "smpl": _BASE_FIELDS,
}
_MODEL_LABELS = {"smplx": "SMPL-X", "mano": "MANO", "flame": "FLAME", "smpl": "SMPL"}
# Human3.6M regressor files looked for next to the model file, in order (model types without one: absent)
_H36M_REGRESSOR_FILENAMES: dict[str, tuple[str, ...]] = {
    "smplx": (H36M_REGRESSOR_FILENAME,),
    "smpl": SMPL_H36M_REGRESSOR_FILENAMES,
}
_FLAME_EMBEDDING_FIELDS = ("lmk_face_idx", "lmk_b_coords")


def _check_model_fields(npz: Path, model_type: str, shown: Path) -> None:
    """Raise a one-line ``ValueError`` naming ``shown`` (the user's file) and the fields smplx needs but ``npz``
    (that file, or its converted copy) lacks. Reads the zip directory only."""
    with zipfile.ZipFile(npz) as zf:
        present = {n[:-4] if n.endswith(".npy") else n for n in zf.namelist()}
    missing = [k for k in _REQUIRED_FIELDS[model_type] if k not in present]
    if missing:
        label = _MODEL_LABELS[model_type]
        raise ValueError(
            f"{shown}: not a usable {label} model file: missing field(s) {', '.join(map(repr, missing))} that smplx "
            f"reads (another model type, or a variant made for other code such as the SOMA/MoSh/AMASS SMPL-X; "
            f"use the smplx-compatible download from {REGISTRATION_URLS[model_type]})"
        )


def _npz_object_members(path: Path) -> list[str]:
    """Members of an ``.npz`` stored as object arrays (pickles), read from the ``.npy`` headers only."""
    found = []
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            with zf.open(member) as f:
                version = np.lib.format.read_magic(f)  # then the header only: nothing is unpickled
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)  # 2.0 and 3.0 share the header layout
                _, _, dtype = read_header(f)
            if dtype.hasobject:
                found.append(member[:-4] if member.endswith(".npy") else member)
    return found


def _numeric_npz(path: Path, cache_dir: Path, name: str) -> Path:
    """``path`` itself when every member is numeric, else a cached copy with the numeric members only.

    smplx opens ``.npz`` files with ``allow_pickle=True`` and reads every member, so an object member (the
    released SMPL-X v1.1 / 2020 files carry ``joint2num`` / ``part2num``, which smplx does not use) would be
    unpickled -- and a pickle can run code. Model ``.pkl`` files go through a restricted unpickler
    (:mod:`.pkl`); this gives ``.npz`` files the same guarantee.
    """
    try:
        objects = _npz_object_members(path)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npz model file ({type(exc).__name__}: {exc})") from None
    if not objects:
        return path
    out = cache_dir / "converted" / file_sha256(path)[:20] / f"{name}.npz"
    if out.is_file():
        return out
    with np.load(path, allow_pickle=False) as data:
        numeric = {k: data[k] for k in data.files if k not in objects}
    buffer = io.BytesIO()
    np.savez(buffer, **numeric)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def _h36m_regressor(model_file: Path, model_type: str, num_vertices: int) -> np.ndarray | None:
    """The ``(17, num_vertices)`` Human3.6M regressor next to ``model_file`` (first name found of
    ``_H36M_REGRESSOR_FILENAMES[model_type]``), or ``None`` when there is none."""
    for name in _H36M_REGRESSOR_FILENAMES.get(model_type, ()):
        reg_file = _paths.companion_file(model_file, name)
        if reg_file is None:
            continue
        matrix = np.load(reg_file, allow_pickle=False)
        if matrix.ndim != 2 or matrix.shape[1] != num_vertices:
            raise ValueError(f"{reg_file}: regressor has shape {matrix.shape}, expected (17, {num_vertices})")
        return matrix
    return None


def _as_npz(path: Path, cache_dir: Path, name: str) -> Path:
    if path.suffix.lower() == ".npz":
        return _numeric_npz(path, cache_dir, name)
    return convert_pkl_to_npz(path, cache_dir, name=name)


def _flame_dir(resolved: ResolvedModelFile, cache_dir: Path) -> Path:
    """A cached directory in the layout ``smplx.FLAME`` expects, built from the found files."""
    src_dir = resolved.path.parent
    static = src_dir / FLAME_STATIC_EMBEDDING_FILENAME
    dynamic = src_dir / FLAME_DYNAMIC_EMBEDDING_FILENAME
    for needed in (static, dynamic):
        if not needed.is_file():
            raise FileNotFoundError(
                f"FLAME landmark file {needed.name} not found next to {resolved.path} (expected {needed}); "
                f"it comes with the FLAME download / smplx's model folder, see {REGISTRATION_URLS['flame']}"
            )
    key = file_sha256(resolved.path) + file_sha256(static) + file_sha256(dynamic) + resolved.gender
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    out_dir = cache_dir / "converted" / f"flame-{digest}"
    model_name = f"FLAME_{resolved.gender.upper()}.npz"
    if (out_dir / model_name).is_file():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".flame-", dir=out_dir.parent))
    try:
        if resolved.path.suffix.lower() == ".npz":
            shutil.copyfile(_numeric_npz(resolved.path, cache_dir, f"FLAME_{resolved.gender.upper()}"),
                            tmp / model_name)
        else:
            data = numeric_arrays(load_restricted_pickle(resolved.path), source=str(resolved.path))
            buffer = io.BytesIO()
            np.savez(buffer, **data)
            atomic_write_bytes(tmp / model_name, buffer.getvalue())
        static_data = numeric_arrays(load_restricted_pickle(static), source=str(static))
        atomic_write_bytes(tmp / FLAME_STATIC_EMBEDDING_FILENAME, pickle.dumps(static_data, protocol=4))
        dynamic_array = load_restricted_npy(dynamic)
        dynamic_data = dynamic_array[()] if dynamic_array.dtype == object else dynamic_array
        if not isinstance(dynamic_data, dict):
            raise ValueError(f"{dynamic}: expected a dict with lmk_face_idx / lmk_b_coords")
        dynamic_clean = {k: np.asarray(v) for k, v in dynamic_data.items() if k in _FLAME_EMBEDDING_FIELDS}
        for source, fields in ((static, static_data), (dynamic, dynamic_clean)):
            missing = [k for k in _FLAME_EMBEDDING_FIELDS if k not in fields]
            if missing:
                raise ValueError(f"{source}: FLAME landmark embedding lacks field(s) {', '.join(map(repr, missing))}")
        holder = np.empty((), dtype=object)
        holder[()] = dynamic_clean
        buffer = io.BytesIO()
        np.save(buffer, holder, allow_pickle=True)
        atomic_write_bytes(tmp / FLAME_DYNAMIC_EMBEDDING_FILENAME, buffer.getvalue())
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / model_name).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _mano_left_shapedirs_fix(layer: nn.Module, right_file: Path | None, cache_dir: Path, left_file: Path,
                             left_npz: Path) -> None:
    if right_file is None:
        if not _paths.is_standin(left_npz):  # the stand-in's left file has the mirrored sign already
            warnings.warn(
                f"{left_file}: no MANO_RIGHT.pkl next to this left-hand MANO file, so the official MANO_LEFT's "
                f"shapedirs sign bug (smplx issue #48) can be neither checked nor fixed; keep both files in one folder",
                stacklevel=3,
            )
        return
    right_npz = _as_npz(right_file, cache_dir, "MANO_RIGHT")
    with np.load(right_npz, allow_pickle=False) as data:
        right_x = torch.as_tensor(np.asarray(data["shapedirs"], dtype=np.float64)[:, 0, : layer.num_betas])
    left_x = layer.shapedirs[:, 0, :].detach().cpu().double()
    if right_x.shape == left_x.shape and float((left_x - right_x).abs().sum()) < 1.0:
        with torch.no_grad():
            layer.shapedirs[:, 0, :] *= -1


def load_body_model(
    model_type: Literal["smplx", "mano", "flame", "smpl"],
    *,
    gender: Literal["neutral", "male", "female"] = "neutral",
    is_rhand: bool = True,
    model_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    num_betas: int = 10,
    num_expression_coeffs: int = 10,
    flat_hand_mean: bool = False,
    config: ModelSearchConfig | None = None,
) -> BodyModel:
    """Load SMPL-X, SMPL, MANO or FLAME as a :class:`BodyModel`.

    Args:
        model_type: ``'smplx'``, ``'mano'``, ``'flame'`` or ``'smpl'``.
        gender: ``'neutral'``, ``'male'`` or ``'female'`` (ignored by MANO).
        is_rhand: MANO right (True) or left hand.
        model_dir: directory or file; overrides ``config.model_dir`` (see :mod:`.paths` for the lookup).
        device: where the buffers live.
        dtype: ``torch.float32`` or ``torch.float64``.
        num_betas: shape coefficients (<= what the file has: 10 for SMPL-X v1.0 / MANO / SMPL, 300 for v1.1).
        num_expression_coeffs: expression coefficients (SMPL-X, FLAME; ignored by SMPL and MANO).
        flat_hand_mean: False (default) = hand poses are relative to the file's mean hand pose, as
            ``smplx.create`` and the released NeuralAnnot parameters; True = relative to a flat hand.
        config: lookup and cache settings.

    Raises:
        ValueError: unknown model type / gender (lists the choices), more betas/expression
            coefficients requested than the file has, a file lacking fields smplx reads (file and fields
            named), or a MANO file named for the other hand.
        FileNotFoundError: see :func:`neuralannot_cli.body.paths.find_model_file`.
    """
    if not isinstance(model_type, str) or model_type.lower() not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; valid choices: {', '.join(MODEL_TYPES)}")
    if not isinstance(gender, str) or gender.lower() not in GENDERS:
        raise ValueError(f"unknown gender {gender!r}; valid choices: {', '.join(GENDERS)}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    model_type, gender = model_type.lower(), gender.lower()
    config = config or ModelSearchConfig()
    if model_dir is not None:
        config = replace(config, model_dir=Path(model_dir))
    cache_dir = config.resolved_cache_dir()
    resolved = _paths.find_model_file(model_type, gender=gender, is_rhand=is_rhand, config=config)

    regressors: dict[str, np.ndarray] = {}
    try:
        with _quiet_stdout():
            import smplx

            if model_type == "smplx":
                npz = _as_npz(resolved.path, cache_dir, f"SMPLX_{gender.upper()}")
                _check_model_fields(npz, model_type, resolved.path)
                layer = smplx.SMPLXLayer(
                    model_path=str(npz),
                    ext="npz",
                    gender=gender,
                    num_betas=num_betas,
                    num_expression_coeffs=num_expression_coeffs,
                    use_pca=False,
                    flat_hand_mean=flat_hand_mean,
                    use_face_contour=True,
                    dtype=dtype,
                )
                layer_path = standin_probe = npz
            elif model_type == "smpl":
                from smplx.utils import Struct

                npz = _as_npz(resolved.path, cache_dir, f"SMPL_{gender.upper()}")
                _check_model_fields(npz, model_type, resolved.path)
                with np.load(npz, allow_pickle=False) as arrays:
                    fields = {k: arrays[k] for k in _REQUIRED_FIELDS["smpl"]}
                layer = smplx.SMPLLayer(model_path=str(npz), data_struct=Struct(**fields), gender=gender,
                                        num_betas=num_betas, dtype=dtype)
                if fields["J_regressor"].shape[0] != 24:  # an SMPL+H / SMPL-X file would fail later, in lbs
                    raise ValueError(f"{resolved.path}: not a usable SMPL model file: J_regressor has "
                                     f"{fields['J_regressor'].shape[0]} joints, SMPL has 24 (an SMPL+H or SMPL-X file?)")
                layer_path = standin_probe = npz
            elif model_type == "mano":
                side = "RIGHT" if is_rhand else "LEFT"
                npz = _as_npz(resolved.path, cache_dir, f"MANO_{side}")
                _check_model_fields(npz, model_type, resolved.path)
                layer = smplx.MANOLayer(
                    model_path=str(npz),
                    ext="npz",
                    is_rhand=is_rhand,
                    num_betas=num_betas,
                    use_pca=False,
                    flat_hand_mean=flat_hand_mean,
                    dtype=dtype,
                )
                if not is_rhand:
                    right = None
                    for name in ("MANO_RIGHT.pkl", "MANO_RIGHT.npz"):
                        right = right or _paths.companion_file(resolved.path, name)
                    _mano_left_shapedirs_fix(layer, right, cache_dir, resolved.path, npz)
                layer_path = standin_probe = npz
            else:
                flame_dir = _flame_dir(resolved, cache_dir)
                _check_model_fields(flame_dir / f"FLAME_{gender.upper()}.npz", model_type, resolved.path)
                layer = smplx.FLAMELayer(
                    model_path=str(flame_dir),
                    ext="npz",
                    gender=gender,
                    num_betas=num_betas,
                    num_expression_coeffs=num_expression_coeffs,
                    use_face_contour=True,
                    dtype=dtype,
                )
                layer_path = flame_dir
                standin_probe = flame_dir / f"FLAME_{gender.upper()}.npz"
        if model_type in _H36M_REGRESSOR_FILENAMES:
            matrix = _h36m_regressor(resolved.path, model_type, int(layer.v_template.shape[0]))
            if matrix is not None:
                regressors["h36m"] = matrix
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, IsADirectoryError, PermissionError) as exc:
        # a corrupt / truncated / foreign model file (np.load and smplx raise these bare): one line naming it
        raise ValueError(f"{resolved.path}: cannot load the {model_type.upper()} model file: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'empty or truncated'}") from None

    if layer.num_betas != num_betas:
        raise ValueError(
            f"{resolved.path}: the model has {layer.num_betas} shape coefficients, num_betas={num_betas} requested"
        )
    if model_type in ("smplx", "flame") and layer.num_expression_coeffs != num_expression_coeffs:
        raise ValueError(
            f"{resolved.path}: the model has {layer.num_expression_coeffs} expression coefficients, "
            f"num_expression_coeffs={num_expression_coeffs} requested"
        )
    model = BodyModel(
        layer,
        model_type=model_type,
        gender=gender,
        is_rhand=bool(is_rhand),
        flat_hand_mean=flat_hand_mean,
        model_file=resolved.path,
        layer_path=layer_path,
        source=resolved.source,
        is_standin=resolved.source == "standin" or _paths.is_standin(standin_probe),
        regressors=regressors,
    )
    return model.to(device=torch.device(device))
