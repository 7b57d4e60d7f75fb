"""Named joint sets: documented name orders and how to get each joint from a body-model output.

A :class:`JointSet` has a name, an ordered tuple of joint names (pinned by tests) and, per body model
(``'smplx'``, ``'smpl'``, ``'mano'``, ``'flame'``), a *recipe*: for each joint a tuple of :class:`JointSource` whose
positions are averaged (one source = the point itself, two = their midpoint). A source is

- ``joint``: an index into ``BodyOutput.joints``, i.e. smplx's output joint order. For SMPL-X that is
  (verified in ``smplx/body_models.py`` ``SMPLXLayer.forward`` and ``smplx/joint_names.py``, 144 joints):
  55 kinematic joints (``J_regressor``), 21 vertex joints from ``VertexJointSelector`` (nose, right/left
  eye, right/left ear = 5; left big toe, small toe, heel, right big toe, small toe, heel = 6; left then
  right thumb/index/middle/ring/pinky tips = 10), 51 static face landmarks (iBUG-68 points 17..67:
  brows, nose, eyes, mouth) and 17 dynamic contour landmarks (iBUG points 0..16, with
  ``use_face_contour=True``). MANO: the 16 kinematic joints only (wrist, index1-3, middle1-3,
  pinky1-3, ring1-3, thumb1-3; smplx adds no fingertips for MANO). FLAME: 5 kinematic joints
  (root, neck, jaw, left eye, right eye) + 51 static + 17 contour landmarks = 73. SMPL (``SMPLLayer.forward``):
  24 kinematic joints, then the same 21 vertex joints as SMPL-X (ids of ``vertex_ids['smplh']``) = 45.
- ``vertex``: a mesh vertex index.
- ``regressor``: a row of an extra joint regressor applied to the vertices (``'h36m'`` =
  ``J_regressor_h36m_smplx.npy`` (17, 10475), the file Hand4Whole ships for Human3.6M evaluation; on SMPL
  ``J_regressor_h36m_correct.npy`` (17, 6890) of I2L-MeshNet / Pose2Mesh, or SPIN's ``J_regressor_h36m.npy``).

Sets and sources of their orders:

- ``smplx_55``: ``smplx.joint_names.JOINT_NAMES[:55]`` (the kinematic joints).
- ``smpl_24``: SMPL's kinematic joints: ``JOINT_NAMES[:22]`` (the body joints SMPL and SMPL-X share), then
  ``left_hand``, ``right_hand`` (SMPL's names; smplx's ``JOINT_NAMES[22:24]`` are SMPL-X's jaw and eye).
- ``coco_17``: COCO keypoints order (nose, left/right eye, left/right ear, shoulders, elbows, wrists,
  hips, knees, ankles; left before right). SMPL-X recipe as in Hand4Whole/NeuralAnnot: face points from
  smplx's vertex joints, the rest from kinematic joints *with the same name* (SMPL-X hips are not COCO
  hips; the field accepts this).
- ``coco_wholebody_133``: COCO-WholeBody (Jin et al., ECCV 2020; jin-s13/COCO-WholeBody
  ``data_format.md`` and mmpose ``configs/_base_/datasets/coco_wholebody.py``): 17 body, 6 feet
  (left big toe, left small toe, left heel, right big toe, right small toe, right heel), 68 face
  (iBUG-68 order: 17 contour from the subject's right to left, then 51 = brows, nose, eyes, mouth), 21
  left hand, 21 right hand, each hand [root(wrist), thumb1-4, index1-4, middle1-4, ring1-4, pinky1-4]
  (mmpose calls index/middle/ring/pinky "forefinger/middle_finger/ring_finger/pinky_finger").
  Face names reuse smplx's landmark names (``right_eye_brow1``...), whose left/right labels give the
  same mirror pairs as mmpose's ``swap`` table (pinned by a test). Hand joints k=1..3 are smplx's
  kinematic finger joints, k=4 the fingertip vertex joints (as Hand4Whole's SMPL-X keypoints).
- ``face_68``: the 68 face points alone (same order as inside ``coco_wholebody_133``), SMPL-X and FLAME.
- ``h36m_17``: Human3.6M order used by I2L-MeshNet / Hand4Whole (``data/Human36M/Human36M.py``):
  pelvis, right hip/knee/ankle, left hip/knee/ankle, torso, neck, head, head_top, left
  shoulder/elbow/wrist, right shoulder/elbow/wrist; from the ``h36m`` regressor rows 0..16 (SMPL-X and SMPL).
- ``mpi3dhp_17``: the MPI-INF-3DHP 17-joint test order used by Hand4Whole
  (``data/MPI_INF_3DHP/MPI_INF_3DHP.py``): head_top, neck, right shoulder/elbow/wrist, left
  shoulder/elbow/wrist, right hip/knee/ankle, left hip/knee/ankle, pelvis, torso, head. Hand4Whole
  matches MPI-INF-3DHP joints to its model joints *by name*; every name here exists in the H36M set, so
  the recipe takes the H36M-regressor row of the same name (H36M "neck" is the thorax point).
- ``hand_21``: FreiHAND / InterHand2.6M order [wrist, thumb1-4, index1-4, middle1-4, ring1-4,
  pinky1-4], MANO only: the 16 MANO joints reordered plus the fingertip vertices the field uses
  (I2L-MeshNet ``common/utils/mano.py``, Hand4Whole ``common/utils/human_models.py``,
  Hand4Whole++ ``common/utils/mano.py``): thumb 745, index 317, middle 445, ring 556, pinky 673.
  (I2L-MeshNet's ``fingertip_vertex_idx`` list says 444 for the middle tip but its regressor, like the
  other two repositories, uses 445; smplx's own ``vertex_ids['mano']`` tips differ: 744/320/443/554/671.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np
import torch
from torch import Tensor

from smplx.joint_names import JOINT_NAMES as _SMPLX_OUTPUT_JOINT_NAMES

__all__ = [
    "JointSource",
    "JointSet",
    "JOINT_SETS",
    "get_joint_set",
    "flip_pairs",
    "mirror_joint_name",
    "gather_joints",
    "SMPLX_OUTPUT_JOINT_NAMES",
    "MANO_FINGERTIP_VERTEX_IDS",
    "MANO_KINEMATIC_JOINT_NAMES",
    "SMPL_JOINT_NAMES",
]

SourceKind = Literal["joint", "vertex", "regressor"]

SMPLX_OUTPUT_JOINT_NAMES: tuple[str, ...] = tuple(_SMPLX_OUTPUT_JOINT_NAMES)
MANO_KINEMATIC_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip
MANO_FINGERTIP_VERTEX_IDS: Mapping[str, int] = MappingProxyType(
    {"thumb": 745, "index": 317, "middle": 445, "ring": 556, "pinky": 673}
)
SMPL_JOINT_NAMES: tuple[str, ...] = SMPLX_OUTPUT_JOINT_NAMES[:22] + ("left_hand", "right_hand")
FLAME_NUM_KINEMATIC_JOINTS = 5
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")


@dataclass(frozen=True)
class JointSource:
    """Where one point comes from: an output joint, a vertex, or a row of a named extra regressor."""

    kind: SourceKind
    index: int
    regressor: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("joint", "vertex", "regressor"):
            raise ValueError(f"unknown joint source kind {self.kind!r}; valid: joint, vertex, regressor")
        if (self.kind == "regressor") != (self.regressor is not None):
            raise ValueError("a 'regressor' source needs a regressor name, other kinds must not have one")


Recipe = tuple[tuple[JointSource, ...], ...]


@dataclass(frozen=True)
class JointSet:
    """A named, ordered joint set and its per-model recipes.

    Attributes:
        name: registry name, e.g. ``'coco_wholebody_133'``.
        joint_names: ordered joint names (unique).
        recipes: model type -> one tuple of sources per joint (averaged).
        description: where the order comes from.
    """

    name: str
    joint_names: tuple[str, ...]
    recipes: Mapping[str, Recipe] = field(hash=False, compare=False)
    description: str = ""

    def __post_init__(self) -> None:
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint set {self.name}: duplicate joint names")
        for model_type, recipe in self.recipes.items():
            if len(recipe) != len(self.joint_names):
                raise ValueError(
                    f"joint set {self.name}: {model_type} recipe has {len(recipe)} entries, "
                    f"expected {len(self.joint_names)}"
                )

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def model_types(self) -> tuple[str, ...]:
        return tuple(self.recipes)

    def index(self, joint_name: str) -> int:
        """Position of ``joint_name``; ValueError if absent."""
        try:
            return self.joint_names.index(joint_name)
        except ValueError:
            raise ValueError(f"joint set {self.name} has no joint {joint_name!r}") from None

    def recipe(self, model_type: str) -> Recipe:
        if model_type not in self.recipes:
            raise ValueError(
                f"joint set {self.name} is not defined for model type {model_type!r}; "
                f"it is defined for: {', '.join(self.recipes)}"
            )
        return self.recipes[model_type]

    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """Index pairs ``(i, j)``, ``i < j``, of joints that swap under left/right mirroring."""
        pairs = []
        for i, name in enumerate(self.joint_names):
            mirrored = mirror_joint_name(name)
            if mirrored != name and mirrored in self.joint_names:
                j = self.joint_names.index(mirrored)
                if i < j:
                    pairs.append((i, j))
        return tuple(pairs)

    def flip_permutation(self) -> tuple[int, ...]:
        """``perm`` such that ``joints[..., perm, :]`` relabels a mirrored skeleton."""
        perm = list(range(self.num_joints))
        for i, j in self.flip_pairs():
            perm[i], perm[j] = j, i
        return tuple(perm)


def mirror_joint_name(name: str) -> str:
    """``'left_x'`` <-> ``'right_x'``; names without a side prefix map to themselves."""
    if name.startswith("left_"):
        return "right_" + name[len("left_") :]
    if name.startswith("right_"):
        return "left_" + name[len("right_") :]
    return name


# ---------------------------------------------------------------------------------------------------
# Recipe helpers


def _joint(i: int) -> tuple[JointSource, ...]:
    return (JointSource("joint", i),)


def _vertex(i: int) -> tuple[JointSource, ...]:
    return (JointSource("vertex", i),)


def _regressor(name: str, row: int) -> tuple[JointSource, ...]:
    return (JointSource("regressor", row, name),)


def _smplx(name: str) -> tuple[JointSource, ...]:
    return _joint(SMPLX_OUTPUT_JOINT_NAMES.index(name))


def _frozen(recipes: dict[str, list[tuple[JointSource, ...]]]) -> Mapping[str, Recipe]:
    return MappingProxyType({k: tuple(v) for k, v in recipes.items()})


# ---------------------------------------------------------------------------------------------------
# Name orders

COCO_17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_WHOLEBODY_FEET_NAMES: tuple[str, ...] = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
# iBUG-68 order with smplx's landmark names: contour (iBUG 0..16) then the 51 static points (17..67).
FACE_68_NAMES: tuple[str, ...] = SMPLX_OUTPUT_JOINT_NAMES[127:144] + SMPLX_OUTPUT_JOINT_NAMES[76:127]
HAND_21_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{f}{k}" for f in _FINGERS for k in range(1, 5))
H36M_17_NAMES: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "torso", "neck", "head", "head_top",
    "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)  # fmt: skip
MPI3DHP_17_NAMES: tuple[str, ...] = (
    "head_top", "neck",
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "pelvis", "torso", "head",
)  # fmt: skip


def _wholebody_hand_names(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root",) + tuple(f"{side}_{f}{k}" for f in _FINGERS for k in range(1, 5))


def _smplx_hand_recipe(side: str) -> list[tuple[JointSource, ...]]:
    recipe = [_smplx(f"{side}_wrist")]
    for finger in _FINGERS:
        recipe += [_smplx(f"{side}_{finger}{k}") for k in range(1, 4)]
        recipe.append(_smplx(f"{side}_{finger}"))  # fingertip vertex joint
    return recipe


def _flame_face_recipe() -> list[tuple[JointSource, ...]]:
    static0 = FLAME_NUM_KINEMATIC_JOINTS
    contour0 = static0 + 51
    return [_joint(contour0 + i) for i in range(17)] + [_joint(static0 + i) for i in range(51)]


def _mano_hand_recipe() -> list[tuple[JointSource, ...]]:
    recipe = [_joint(MANO_KINEMATIC_JOINT_NAMES.index("wrist"))]
    for finger in _FINGERS:
        recipe += [_joint(MANO_KINEMATIC_JOINT_NAMES.index(f"{finger}{k}")) for k in range(1, 4)]
        recipe.append(_vertex(MANO_FINGERTIP_VERTEX_IDS[finger]))
    return recipe


def _build_sets() -> dict[str, JointSet]:
    sets: list[JointSet] = []
    smplx_55 = SMPLX_OUTPUT_JOINT_NAMES[:55]
    sets.append(
        JointSet(
            "smplx_55",
            smplx_55,
            _frozen({"smplx": [_joint(i) for i in range(55)]}),
            "smplx.joint_names.JOINT_NAMES[:55] (SMPL-X kinematic joints)",
        )
    )
    sets.append(
        JointSet("coco_17", COCO_17_NAMES, _frozen({"smplx": [_smplx(n) for n in COCO_17_NAMES]}), "COCO keypoints")
    )
    wb_names = (
        COCO_17_NAMES
        + COCO_WHOLEBODY_FEET_NAMES
        + FACE_68_NAMES
        + _wholebody_hand_names("left")
        + _wholebody_hand_names("right")
    )
    wb_recipe = (
        [_smplx(n) for n in COCO_17_NAMES + COCO_WHOLEBODY_FEET_NAMES + FACE_68_NAMES]
        + _smplx_hand_recipe("left")
        + _smplx_hand_recipe("right")
    )
    sets.append(
        JointSet(
            "coco_wholebody_133",
            wb_names,
            _frozen({"smplx": wb_recipe}),
            "COCO-WholeBody: body 17, feet 6, face 68 (iBUG), left hand 21, right hand 21",
        )
    )
    sets.append(
        JointSet(
            "face_68",
            FACE_68_NAMES,
            _frozen({"smplx": [_smplx(n) for n in FACE_68_NAMES], "flame": _flame_face_recipe()}),
            "iBUG-68 face landmarks (17 contour + 51)",
        )
    )
    sets.append(
        JointSet(
            "h36m_17",
            H36M_17_NAMES,
            _frozen({model: [_regressor("h36m", i) for i in range(17)] for model in ("smplx", "smpl")}),
            "Human3.6M 17 joints via J_regressor_h36m_smplx.npy (SMPL-X) / J_regressor_h36m_correct.npy (SMPL)",
        )
    )
    sets.append(
        JointSet(
            "mpi3dhp_17",
            MPI3DHP_17_NAMES,
            _frozen({model: [_regressor("h36m", H36M_17_NAMES.index(n)) for n in MPI3DHP_17_NAMES]
                     for model in ("smplx", "smpl")}),
            "MPI-INF-3DHP 17 test joints (Hand4Whole order) via the H36M regressor rows of the same name",
        )
    )
    sets.append(
        JointSet(
            "hand_21",
            HAND_21_NAMES,
            _frozen({"mano": _mano_hand_recipe()}),
            "FreiHAND / InterHand2.6M 21 hand joints (MANO joints + fingertip vertices)",
        )
    )
    sets.append(
        JointSet(
            "smpl_24",
            SMPL_JOINT_NAMES,
            _frozen({"smpl": [_joint(i) for i in range(24)]}),
            "SMPL kinematic joints: JOINT_NAMES[:22], left_hand, right_hand",
        )
    )
    return {s.name: s for s in sets}


JOINT_SETS: Mapping[str, JointSet] = MappingProxyType(_build_sets())


def get_joint_set(name: str) -> JointSet:
    """The joint set called ``name``; ValueError listing the valid names otherwise."""
    try:
        return JOINT_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown joint set {name!r}; valid names: {', '.join(JOINT_SETS)}") from None


def flip_pairs(name: str) -> tuple[tuple[int, int], ...]:
    """Left/right mirror pairs ``(i, j)`` of the joint set ``name``."""
    return get_joint_set(name).flip_pairs()


# ---------------------------------------------------------------------------------------------------
# Pure tensor math: evaluate a recipe.


@dataclass(frozen=True)
class _GatherPlan:
    vertex_ids: tuple[int, ...]  # (Nv,)
    regressor_rows: tuple[tuple[str, tuple[int, ...]], ...]  # per regressor name, its rows
    pool_index: tuple[tuple[int, ...], ...]  # (N, S) indices into the pool
    pool_weight: tuple[tuple[float, ...], ...]  # (N, S) averaging weights (0 for padding)


@functools.lru_cache(maxsize=64)
def _plan(recipe: Recipe, num_output_joints: int) -> _GatherPlan:
    vertex_ids: list[int] = []
    reg_rows: dict[str, list[int]] = {}
    for entry in recipe:
        for src in entry:
            if src.kind == "vertex" and src.index not in vertex_ids:
                vertex_ids.append(src.index)
            elif src.kind == "regressor":
                rows = reg_rows.setdefault(src.regressor or "", [])
                if src.index not in rows:
                    rows.append(src.index)
    reg_offsets: dict[str, int] = {}
    offset = num_output_joints + len(vertex_ids)
    for reg_name, rows in reg_rows.items():
        reg_offsets[reg_name] = offset
        offset += len(rows)
    width = max(len(entry) for entry in recipe)
    index = np.zeros((len(recipe), width), dtype=np.int64)
    weight = np.zeros((len(recipe), width), dtype=np.float64)
    for n, entry in enumerate(recipe):
        for k, src in enumerate(entry):
            if src.kind == "joint":
                if not 0 <= src.index < num_output_joints:
                    raise ValueError(
                        f"recipe needs output joint {src.index} but the model outputs {num_output_joints} joints"
                    )
                pos = src.index
            elif src.kind == "vertex":
                pos = num_output_joints + vertex_ids.index(src.index)
            else:
                pos = reg_offsets[src.regressor or ""] + reg_rows[src.regressor or ""].index(src.index)
            index[n, k] = pos
            weight[n, k] = 1.0 / len(entry)
    return _GatherPlan(
        tuple(vertex_ids),
        tuple((name, tuple(rows)) for name, rows in reg_rows.items()),
        tuple(map(tuple, index.tolist())),
        tuple(map(tuple, weight.tolist())),
    )


@functools.lru_cache(maxsize=256)
def _plan_tensors(plan: _GatherPlan, device: torch.device, dtype: torch.dtype
                  ) -> tuple[Tensor, tuple[Tensor, ...], Tensor, Tensor]:
    """The plan's index / weight tensors on ``device``, built once: ``gather_joints`` runs in every step of
    the fitting and training loops, and a fresh ``torch.tensor(..., device=cuda)`` there is a synchronising
    host-to-device copy each time.

    Built outside inference mode even when first asked for inside it (annotation runs under
    ``torch.inference_mode``): a cached inference tensor would break every later autograd use (fitting after
    annotating in one process)."""
    with torch.inference_mode(False):
        vertex_index = torch.tensor(plan.vertex_ids, dtype=torch.long, device=device)
        rows = tuple(torch.tensor(r, dtype=torch.long, device=device) for _, r in plan.regressor_rows)
        index = torch.tensor(plan.pool_index, dtype=torch.long, device=device)
        weight = torch.tensor(plan.pool_weight, device=device, dtype=dtype)
    return vertex_index, rows, index, weight


def gather_joints(
    joints: Tensor,
    vertices: Tensor,
    recipe: Recipe,
    regressors: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Evaluate a recipe.

    Args:
        joints: ``(batch, J, 3)`` smplx output joints.
        vertices: ``(batch, V, 3)`` mesh vertices.
        recipe: one tuple of :class:`JointSource` per target joint.
        regressors: name -> ``(R, V)`` regressor matrices needed by ``regressor`` sources.

    Returns:
        ``(batch, N, 3)`` joints, same dtype/device as ``joints``.
    """
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints must have shape (batch, J, 3), got {tuple(joints.shape)}")
    if vertices.ndim != 3 or vertices.shape[-1] != 3 or vertices.shape[0] != joints.shape[0]:
        raise ValueError(
            f"vertices must have shape (batch, V, 3) with batch {joints.shape[0]}, got {tuple(vertices.shape)}"
        )
    plan = _plan(tuple(recipe), int(joints.shape[1]))
    pool = [joints]
    device = joints.device
    if plan.vertex_ids and max(plan.vertex_ids) >= vertices.shape[1]:
        raise ValueError(f"recipe needs vertex {max(plan.vertex_ids)} but the mesh has {vertices.shape[1]} vertices")
    vertex_index, row_index, index, weight = _plan_tensors(plan, device, joints.dtype)
    if plan.vertex_ids:
        pool.append(vertices[:, vertex_index])
    for (reg_name, _rows), rows_t in zip(plan.regressor_rows, row_index):
        if regressors is None or reg_name not in regressors:
            raise ValueError(f"recipe needs the {reg_name!r} regressor, which this model does not have")
        matrix = regressors[reg_name].to(device=device, dtype=vertices.dtype)
        pool.append(torch.einsum("rv,bvc->brc", matrix[rows_t], vertices))
    stacked = torch.cat(pool, dim=1)  # (B, P, 3)
    picked = stacked[:, index]  # (B, N, S, 3)
    return (picked * weight[None, :, :, None]).sum(dim=2)
