"""Joint-set name orders (pinned against the datasets' documented orders) and recipe math."""

from __future__ import annotations

import pytest
import torch

from neuralannot_cli.body.joint_sets import (
    JOINT_SETS,
    JointSource,
    flip_pairs,
    gather_joints,
    get_joint_set,
)

# COCO keypoint order (cocodataset.org person_keypoints categories).
COCO_17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
# mmpose configs/_base_/datasets/coco_wholebody.py: face-k keypoint id 23+k has swap partner below.
MMPOSE_FACE_SWAPS = (
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
)
# Hand4Whole data/Human36M/Human36M.py and data/MPI_INF_3DHP/MPI_INF_3DHP.py (names lower-cased).
H36M = [
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "torso",
    "neck", "head", "head_top", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
    "right_elbow", "right_wrist",
]  # fmt: skip
H36M_FLIP = {(1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)}
MPI3DHP = [
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "pelvis", "torso", "head",
]  # fmt: skip
MPI3DHP_FLIP = {(2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)}
HAND_21 = ["wrist"] + [f"{f}{k}" for f in ("thumb", "index", "middle", "ring", "pinky") for k in (1, 2, 3, 4)]


def test_registry_and_counts() -> None:
    counts = {name: s.num_joints for name, s in JOINT_SETS.items()}
    assert counts == {
        "smplx_55": 55,
        "coco_17": 17,
        "coco_wholebody_133": 17 + 6 + 68 + 21 + 21,
        "face_68": 68,
        "h36m_17": 17,
        "mpi3dhp_17": 17,
        "hand_21": 21,
        "smpl_24": 24,
    }
    with pytest.raises(ValueError, match="valid names: smplx_55, coco_17, coco_wholebody_133"):
        get_joint_set("coco_18")


def test_coco_and_wholebody_order() -> None:
    assert list(get_joint_set("coco_17").joint_names) == COCO_17
    wb = get_joint_set("coco_wholebody_133").joint_names
    assert list(wb[:17]) == COCO_17
    assert list(wb[17:23]) == [
        "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
    ]  # fmt: skip
    assert wb[23:91] == get_joint_set("face_68").joint_names
    assert list(wb[91:112]) == ["left_hand_root"] + [f"left_{n}" for n in HAND_21[1:]]
    assert list(wb[112:133]) == ["right_hand_root"] + [f"right_{n}" for n in HAND_21[1:]]
    # COCO flip pairs: (left_eye, right_eye), (left_ear, right_ear), then shoulders ... ankles.
    assert flip_pairs("coco_17") == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def test_face_68_is_ibug_order_with_mmpose_mirror_pairs() -> None:
    face = get_joint_set("face_68")
    assert face.joint_names[0] == "right_contour_1" and face.joint_names[8] == "contour_middle"
    assert face.joint_names[16] == "left_contour_1" and face.joint_names[17] == "right_eye_brow1"
    assert face.joint_names[30] == "nose4" and face.joint_names[36] == "right_eye1"
    assert face.joint_names[48] == "right_mouth_1" and face.joint_names[67] == "right_lip_3"
    assert set(face.flip_pairs()) == set(MMPOSE_FACE_SWAPS)
    wb_face_pairs = {(i - 23, j - 23) for i, j in flip_pairs("coco_wholebody_133") if 23 <= i < 91}
    assert wb_face_pairs == set(MMPOSE_FACE_SWAPS)
    wb_pairs = set(flip_pairs("coco_wholebody_133"))
    assert (91, 112) in wb_pairs and (111, 132) in wb_pairs and (17, 20) in wb_pairs


def test_h36m_mpi3dhp_hand_orders() -> None:
    assert list(get_joint_set("h36m_17").joint_names) == H36M
    assert set(flip_pairs("h36m_17")) == H36M_FLIP
    assert list(get_joint_set("mpi3dhp_17").joint_names) == MPI3DHP
    assert set(flip_pairs("mpi3dhp_17")) == MPI3DHP_FLIP
    assert list(get_joint_set("hand_21").joint_names) == HAND_21
    assert flip_pairs("hand_21") == ()
    # mpi3dhp takes the H36M regressor row of the same name
    mpi = get_joint_set("mpi3dhp_17").recipe("smplx")
    for name, entry in zip(MPI3DHP, mpi):
        assert entry == (JointSource("regressor", H36M.index(name), "h36m"),)


def test_smplx_and_mano_recipes_point_at_the_named_joints() -> None:
    smplx_55 = get_joint_set("smplx_55")
    assert smplx_55.joint_names[20] == "left_wrist" and smplx_55.joint_names[54] == "right_thumb3"
    assert set(flip_pairs("smplx_55")) >= {(20, 21), (23, 24), (25, 40), (39, 54)}
    wb = get_joint_set("coco_wholebody_133")
    recipe = wb.recipe("smplx")
    assert recipe[wb.index("left_wrist")] == (JointSource("joint", 20),)
    assert recipe[wb.index("left_hand_root")] == (JointSource("joint", 20),)
    assert recipe[wb.index("right_thumb1")] == (JointSource("joint", 52),)  # smplx right_thumb1
    assert recipe[wb.index("left_index4")] == (JointSource("joint", 67),)  # smplx left_index tip joint
    assert recipe[wb.index("nose")] == (JointSource("joint", 55),)
    assert recipe[wb.index("right_heel")] == (JointSource("joint", 65),)
    assert recipe[wb.index("right_contour_1")] == (JointSource("joint", 127),)
    assert recipe[wb.index("right_eye_brow1")] == (JointSource("joint", 76),)
    hand = get_joint_set("hand_21").recipe("mano")
    # MANO joint order: wrist, index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3
    assert [e[0].index for e in hand[1:4]] == [13, 14, 15] and hand[4] == (JointSource("vertex", 745),)
    assert [e[0].index for e in hand[17:20]] == [7, 8, 9] and hand[20] == (JointSource("vertex", 673),)
    assert [hand[i][0].index for i in (8, 12, 16)] == [317, 445, 556]
    with pytest.raises(ValueError, match="defined for: mano"):
        get_joint_set("hand_21").recipe("smplx")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gather_joints_math(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    joints = torch.randn(4, 6, 3, dtype=dtype)
    vertices = torch.randn(4, 10, 3, dtype=dtype, requires_grad=True)
    regressor = torch.rand(2, 10, dtype=torch.float64)
    recipe = (
        (JointSource("joint", 5),),
        (JointSource("vertex", 9),),
        (JointSource("regressor", 1, "r"),),
        (JointSource("joint", 0), JointSource("vertex", 3)),  # midpoint
    )
    out = gather_joints(joints, vertices, recipe, {"r": regressor})
    assert out.shape == (4, 4, 3) and out.dtype == dtype
    v64 = vertices.detach().double()
    expected = torch.stack(
        [
            joints[:, 5].double(),
            v64[:, 9],
            torch.einsum("v,bvc->bc", regressor[1], v64),
            0.5 * (joints[:, 0].double() + v64[:, 3]),
        ],
        dim=1,
    )
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.double(), expected, atol=tol, rtol=tol)
    out.sum().backward()
    assert torch.isfinite(vertices.grad).all() and vertices.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(4, 6\)"):
        gather_joints(joints[..., 0], vertices, recipe)
    with pytest.raises(ValueError, match="'r' regressor"):
        gather_joints(joints, vertices, recipe)
    with pytest.raises(ValueError, match="vertex 9"):
        gather_joints(joints, vertices[:, :5], recipe, {"r": regressor})


def test_joint_source_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        JointSource("landmark", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="regressor name"):
        JointSource("regressor", 3)


def test_gather_joints_first_called_in_inference_mode_still_backpropagates() -> None:
    """Annotating (inference mode) and then fitting in one process: the cached index tensors must not be
    inference tensors, or autograd refuses them (``Inference tensors cannot be saved for backward``)."""
    # a recipe no other test uses, so its plan tensors are built here, inside inference mode
    recipe = ((JointSource("joint", 2), JointSource("vertex", 7)), (JointSource("vertex", 8),))
    joints = torch.randn(3, 4, 3, dtype=torch.float64)
    vertices = torch.randn(3, 11, 3, dtype=torch.float64)
    with torch.inference_mode():
        first = gather_joints(joints, vertices, recipe)
    verts = vertices.clone().requires_grad_(True)
    out = gather_joints(joints, verts, recipe)
    torch.testing.assert_close(out.detach(), first.clone(), atol=0, rtol=0)
    out[:, 1].sum().backward()
    expected = torch.zeros_like(vertices)
    expected[:, 7] = 0.0
    expected[:, 8] = 1.0  # d(sum of vertex 8)/d vertex 8 = 1 per coordinate; vertex 7 only feeds joint 0
    torch.testing.assert_close(verts.grad, expected)
