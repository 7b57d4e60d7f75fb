"""BodyModel over smplx Layers: agreement with smplx's own (non-Layer) classes and with float64 numpy
formulas, joint sets on real outputs, input checks, gradients. Uses the stand-in models."""

from __future__ import annotations

import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import smplx
import torch

from neuralannot_cli.body.joint_sets import get_joint_set
from neuralannot_cli.body.model import BodyModel, load_body_model
from neuralannot_cli.body.paths import ModelSearchConfig


@pytest.fixture(scope="session")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> ModelSearchConfig:
    return ModelSearchConfig(use_env=False, cache_dir=tmp_path_factory.mktemp("cache"), allow_standin=False)


@pytest.fixture(scope="module")
def smplx32(standin_dir: Path, cfg: ModelSearchConfig) -> BodyModel:
    return load_body_model("smplx", model_dir=standin_dir, config=cfg)


@pytest.fixture(scope="module")
def smplx64_flat(standin_dir: Path, cfg: ModelSearchConfig) -> BodyModel:
    return load_body_model("smplx", model_dir=standin_dir, config=cfg, dtype=torch.float64, flat_hand_mean=True)


@pytest.fixture(scope="module")
def mano_right(standin_dir: Path, cfg: ModelSearchConfig) -> BodyModel:
    return load_body_model("mano", model_dir=standin_dir, config=cfg)


@pytest.fixture(scope="module")
def flame(standin_dir: Path, cfg: ModelSearchConfig) -> BodyModel:
    return load_body_model("flame", model_dir=standin_dir, config=cfg)


def _smplx_params(batch: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    return {
        "root_rotvec": r(batch, 3),
        "body_pose_rotvecs": r(batch, 21, 3),
        "betas": r(batch, 10, scale=1.0),
        "left_hand_pose_rotvecs": r(batch, 15, 3),
        "right_hand_pose_rotvecs": r(batch, 15, 3),
        "jaw_rotvec": r(batch, 3, scale=0.1),
        "leye_rotvec": r(batch, 3, scale=0.1),
        "reye_rotvec": r(batch, 3, scale=0.1),
        "expression": r(batch, 10, scale=1.0),
        "transl_m": r(batch, 3),
    }


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("which", ["smplx32", "smplx64_flat"])
def test_smplx_matches_smplx_non_layer(request: pytest.FixtureRequest, batch: int, which: str) -> None:
    model: BodyModel = request.getfixturevalue(which)
    dtype = model.dtype
    params = _smplx_params(batch, dtype)
    out = model(**params)
    assert out.vertices.shape == (batch, 10475, 3) and out.joints.shape == (batch, 144, 3)
    assert out.kinematic_joints.shape == (batch, 55, 3) and out.vertices.dtype == dtype
    ref_layer = smplx.SMPLX(
        str(model.layer_path), ext="npz", batch_size=batch, use_pca=False, use_face_contour=True,
        flat_hand_mean=model.flat_hand_mean, dtype=dtype,
    )  # fmt: skip
    ref = ref_layer(
        betas=params["betas"],
        global_orient=params["root_rotvec"],
        body_pose=params["body_pose_rotvecs"].reshape(batch, 63),
        left_hand_pose=params["left_hand_pose_rotvecs"].reshape(batch, 45),
        right_hand_pose=params["right_hand_pose_rotvecs"].reshape(batch, 45),
        jaw_pose=params["jaw_rotvec"],
        leye_pose=params["leye_rotvec"],
        reye_pose=params["reye_rotvec"],
        expression=params["expression"],
        transl=params["transl_m"],
    )
    tol = 2e-5 if dtype == torch.float32 else 1e-7  # smplx's Rodrigues adds 1e-8 to the angle
    torch.testing.assert_close(out.vertices, ref.vertices, atol=tol, rtol=0)
    torch.testing.assert_close(out.joints, ref.joints, atol=tol, rtol=0)


def test_zero_pose_matches_float64_formula(smplx64_flat: BodyModel, standin_dir: Path) -> None:
    data = np.load(standin_dir / "smplx" / "SMPLX_NEUTRAL.npz")
    betas = np.array([[1.5, -0.7, 0.3, 0, 0, 0.2, 0, 0, -1.0, 0.5]])
    expression = np.array([[0.8, 0, 0, -0.4, 0, 0, 0, 0, 0, 0.3]])
    transl = np.array([[0.1, -0.2, 2.0]])
    out = smplx64_flat(
        betas=torch.from_numpy(betas), expression=torch.from_numpy(expression), transl_m=torch.from_numpy(transl)
    )
    shapedirs = data["shapedirs"].astype(np.float32).astype(np.float64)  # smplx stores float32 values
    v_template = data["v_template"].astype(np.float32).astype(np.float64)
    v_shaped = v_template + shapedirs[:, :, :10] @ betas[0] + shapedirs[:, :, 10:20] @ expression[0]
    regressor = data["J_regressor"].astype(np.float32).astype(np.float64)
    # (1e-7: the float32-stored skinning weights sum to 1 only up to ~1e-7)
    np.testing.assert_allclose(out.vertices[0].numpy(), v_shaped + transl, atol=1e-7)
    np.testing.assert_allclose(out.kinematic_joints[0].numpy(), regressor @ v_shaped + transl, atol=1e-7)
    # static face landmarks: barycentric interpolation on the listed faces (iBUG points 17..67)
    faces = data["f"].astype(np.int64)
    tri = (v_shaped + transl)[faces[data["lmk_faces_idx"]]]  # (51, 3 corners, 3)
    landmarks = np.einsum("lk,lkc->lc", data["lmk_bary_coords"], tri)
    face_68 = smplx64_flat.joints_in(out, "face_68")[0].numpy()
    np.testing.assert_allclose(face_68[17:], landmarks, atol=1e-7)
    # h36m_17 = the regressor file applied to the vertices
    h36m = np.load(standin_dir / "smplx" / "J_regressor_h36m_smplx.npy")
    np.testing.assert_allclose(
        smplx64_flat.joints_in(out, "h36m_17")[0].numpy(), h36m @ out.vertices[0].numpy(), atol=1e-9
    )


def test_beta_changes_height(smplx64_flat: BodyModel) -> None:
    betas = torch.zeros(2, 10, dtype=torch.float64)
    betas[1, 0] = 2.0
    y = smplx64_flat(betas=betas).vertices[..., 1]
    height = y.max(dim=1).values - y.min(dim=1).values
    assert abs(float(height[1] - height[0])) > 0.02, height


def test_flat_hand_mean_semantics(smplx32: BodyModel, smplx64_flat: BodyModel) -> None:
    """Default (flat_hand_mean=False): a zero hand pose means the file's mean hand pose."""
    assert not smplx32.flat_hand_mean
    left_mean = smplx32.layer.left_hand_mean.view(1, 15, 3).double()
    right_mean = smplx32.layer.right_hand_mean.view(1, 15, 3).double()
    assert left_mean.abs().max() > 0.05  # the stand-in has a non-trivial mean pose
    relative = smplx32()
    flat = smplx64_flat(left_hand_pose_rotvecs=left_mean, right_hand_pose_rotvecs=right_mean)
    torch.testing.assert_close(relative.vertices.double(), flat.vertices, atol=2e-5, rtol=0)


def test_joint_sets_on_outputs(smplx32: BodyModel) -> None:
    params = _smplx_params(3, torch.float32, seed=1)
    out = smplx32(**params)
    wb = smplx32.joints_in(out, "coco_wholebody_133")
    assert wb.shape == (3, 133, 3)
    names = get_joint_set("coco_wholebody_133").joint_names
    left_wrist = out.kinematic_joints[:, smplx.joint_names.JOINT_NAMES.index("left_wrist")]
    torch.testing.assert_close(wb[:, names.index("left_wrist")], left_wrist)
    torch.testing.assert_close(wb[:, names.index("left_hand_root")], left_wrist)
    tip = smplx.vertex_ids.vertex_ids["smplx"]["rpinky"]
    torch.testing.assert_close(wb[:, names.index("right_pinky4")], out.vertices[:, tip])
    coco = smplx32.joints_in(out, "coco_17")
    torch.testing.assert_close(coco, wb[:, :17])
    torch.testing.assert_close(smplx32.joints_in(out, "face_68"), wb[:, 23:91])
    torch.testing.assert_close(smplx32.joints_in(out, "smplx_55"), out.kinematic_joints)
    h36m = smplx32.joints_in(out, "h36m_17")
    mpi = smplx32.joints_in(out, "mpi3dhp_17")
    h36m_names = get_joint_set("h36m_17").joint_names
    for i, name in enumerate(get_joint_set("mpi3dhp_17").joint_names):
        torch.testing.assert_close(mpi[:, i], h36m[:, h36m_names.index(name)])
    with pytest.raises(ValueError, match="defined for: mano"):
        smplx32.joints_in(out, "hand_21")
    with pytest.raises(ValueError, match="valid names"):
        smplx32.joints_in(out, "openpose_25")


@pytest.mark.parametrize("batch", [1, 5])
def test_mano(mano_right: BodyModel, batch: int) -> None:
    g = torch.Generator().manual_seed(2)
    params = {
        "root_rotvec": torch.randn(batch, 3, generator=g) * 0.5,
        "hand_pose_rotvecs": torch.randn(batch, 15, 3, generator=g) * 0.3,
        "betas": torch.randn(batch, 10, generator=g),
        "transl_m": torch.randn(batch, 3, generator=g),
    }
    out = mano_right(**params)
    assert out.vertices.shape == (batch, 778, 3) and out.kinematic_joints.shape == (batch, 16, 3)
    ref = smplx.MANO(str(mano_right.layer_path), ext="npz", is_rhand=True, use_pca=False, flat_hand_mean=False, batch_size=batch)(
        betas=params["betas"],
        global_orient=params["root_rotvec"],
        hand_pose=params["hand_pose_rotvecs"].reshape(batch, 45),
        transl=params["transl_m"],
    )
    torch.testing.assert_close(out.vertices, ref.vertices, atol=2e-5, rtol=0)
    hand = mano_right.joints_in(out, "hand_21")
    names = get_joint_set("hand_21").joint_names
    for finger, vid in {"thumb": 745, "index": 317, "middle": 445, "ring": 556, "pinky": 673}.items():
        torch.testing.assert_close(hand[:, names.index(f"{finger}4")], out.vertices[:, vid])
    torch.testing.assert_close(hand[:, 0], out.kinematic_joints[:, 0])
    torch.testing.assert_close(hand[:, names.index("thumb1")], out.kinematic_joints[:, 13])
    torch.testing.assert_close(hand[:, names.index("pinky3")], out.kinematic_joints[:, 9])
    with pytest.raises(ValueError, match="does not use"):
        mano_right(body_pose_rotvecs=torch.zeros(1, 21, 3))


def test_flame(flame: BodyModel) -> None:
    g = torch.Generator().manual_seed(3)
    params = {
        "root_rotvec": torch.randn(4, 3, generator=g) * 0.3,
        "neck_rotvec": torch.randn(4, 3, generator=g) * 0.2,
        "jaw_rotvec": torch.randn(4, 3, generator=g) * 0.1,
        "betas": torch.randn(4, 10, generator=g),
        "expression": torch.randn(4, 10, generator=g),
        "transl_m": torch.randn(4, 3, generator=g),
    }
    out = flame(**params)
    assert out.vertices.shape == (4, 5023, 3) and out.joints.shape == (4, 73, 3)
    ref = smplx.FLAME(str(flame.layer_path), ext="npz", batch_size=4, use_face_contour=True)(
        betas=params["betas"],
        global_orient=params["root_rotvec"],
        neck_pose=params["neck_rotvec"],
        jaw_pose=params["jaw_rotvec"],
        expression=params["expression"],
        transl=params["transl_m"],
    )
    torch.testing.assert_close(out.vertices, ref.vertices, atol=2e-5, rtol=0)
    face = flame.joints_in(out, "face_68")
    torch.testing.assert_close(face[:, :17], out.joints[:, 56:73])
    torch.testing.assert_close(face[:, 17:], out.joints[:, 5:56])


def test_properties(smplx32: BodyModel, mano_right: BodyModel, flame: BodyModel) -> None:
    for model, nv, nk in ((smplx32, 10475, 55), (mano_right, 778, 16), (flame, 5023, 5)):
        assert model.is_standin and model.source == "argument"
        assert model.num_vertices == nv and model.num_kinematic_joints == nk
        assert model.faces.dtype == np.int64 and model.faces.shape[1] == 3 and model.faces.max() < nv
        assert model.parents.shape == (nk,) and model.parents[0] == -1 and (model.parents[1:] < np.arange(1, nk)).all()
        assert model.device == torch.device("cpu")
    assert smplx32.regressors["h36m"].shape == (17, 10475) and smplx32.regressors["h36m"].dtype == torch.float32


def test_input_checks(smplx32: BodyModel) -> None:
    with pytest.raises(ValueError, match=r"body_pose_rotvecs must have shape \(batch, 21, 3\), got \(5, 20, 3\)"):
        smplx32(body_pose_rotvecs=torch.zeros(5, 20, 3))
    with pytest.raises(ValueError, match=r"betas must have shape \(batch, 10\), got \(2, 11\)"):
        smplx32(betas=torch.zeros(2, 11))
    with pytest.raises(ValueError, match=r"root_rotvec must have shape \(batch, 3\), got \(3,\)"):
        smplx32(root_rotvec=torch.zeros(3))
    with pytest.raises(ValueError, match="inconsistent batch sizes"):
        smplx32(root_rotvec=torch.zeros(2, 3), betas=torch.zeros(3, 10))
    with pytest.raises(ValueError, match="does not use"):
        smplx32(hand_pose_rotvecs=torch.zeros(1, 15, 3))
    with pytest.raises(ValueError, match="is on meta"):
        smplx32(root_rotvec=torch.zeros(1, 3, device="meta"))
    with pytest.raises(ValueError, match="floating-point"):
        smplx32(root_rotvec=torch.zeros(1, 3, dtype=torch.long))


def test_load_errors(standin_dir: Path, cfg: ModelSearchConfig) -> None:
    with pytest.raises(ValueError, match="neutral, male, female"):
        load_body_model("smplx", gender="kid", model_dir=standin_dir, config=cfg)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="smplx, mano, flame, smpl"):
        load_body_model("smplh", model_dir=standin_dir, config=cfg)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="10 shape coefficients, num_betas=300"):
        load_body_model("smplx", model_dir=standin_dir, config=cfg, num_betas=300)


def test_gradients_finite(smplx32: BodyModel) -> None:
    params = _smplx_params(2, torch.float32, seed=4)
    params["root_rotvec"] = torch.zeros(2, 3)  # Rodrigues at exactly zero
    for value in params.values():
        value.requires_grad_(True)
    out = smplx32(**params)
    loss = out.vertices.square().sum() + smplx32.joints_in(out, "coco_wholebody_133").square().sum()
    loss.backward()
    for name, value in params.items():
        assert value.grad is not None and torch.isfinite(value.grad).all(), name
        assert value.grad.abs().sum() > 0, name


def test_pkl_model_file_equals_npz(standin_dir: Path, cfg: ModelSearchConfig, smplx32: BodyModel, tmp_path: Path) -> None:
    """An SMPL-X .pkl (flat layout) is converted and gives the same model as the .npz."""
    with np.load(standin_dir / "smplx" / "SMPLX_NEUTRAL.npz") as data:
        blob = pickle.dumps({k: data[k] for k in data.files}, protocol=2)
    (tmp_path / "SMPLX_NEUTRAL.pkl").write_bytes(blob)
    model = load_body_model("smplx", model_dir=tmp_path, config=cfg)
    assert model.model_file.suffix == ".pkl" and model.layer_path.suffix == ".npz" and model.is_standin
    params = _smplx_params(2, torch.float32, seed=5)
    torch.testing.assert_close(model(**params).vertices, smplx32(**params).vertices)
    assert "h36m" not in model.regressors  # no regressor file next to this one
    with pytest.raises(ValueError, match="J_regressor_h36m_smplx.npy"):
        model.joints_in(model(), "h36m_17")


def test_left_mano_shapedirs_fix(standin_dir: Path, cfg: ModelSearchConfig, mano_right: BodyModel, tmp_path: Path) -> None:
    """A MANO_LEFT whose shapedirs x-column equals the right one's (the official file's bug) is fixed."""
    shutil.copy(standin_dir / "mano" / "MANO_RIGHT.pkl", tmp_path / "MANO_RIGHT.pkl")
    shutil.copy(standin_dir / "mano" / "MANO_RIGHT.pkl", tmp_path / "MANO_LEFT.pkl")  # bugged: same shapedirs
    left = load_body_model("mano", is_rhand=False, model_dir=tmp_path, config=cfg)
    torch.testing.assert_close(left.layer.shapedirs[:, 0], -mano_right.layer.shapedirs[:, 0])
    torch.testing.assert_close(left.layer.shapedirs[:, 1:], mano_right.layer.shapedirs[:, 1:])
    proper = load_body_model("mano", is_rhand=False, model_dir=standin_dir, config=cfg)
    with np.load(proper.layer_path) as data:
        np.testing.assert_allclose(proper.layer.shapedirs.numpy(), data["shapedirs"][:, :, :10], atol=1e-7)


def test_official_chumpy_layout_mano_loads(
    standin_dir: Path, cfg: ModelSearchConfig, mano_right: BodyModel, tmp_path: Path
) -> None:
    """A MANO pickle in the official layout (chumpy arrays, scipy.sparse csc regressor under the old
    ``scipy.sparse.csc`` module) loads without chumpy/scipy and gives the same model."""
    from tests import fixtures_formats as fx

    blob = fx.official_model_pickle(pickle.loads((standin_dir / "mano" / "MANO_RIGHT.pkl").read_bytes()))
    (tmp_path / "mano").mkdir()
    (tmp_path / "mano" / "MANO_RIGHT.pkl").write_bytes(blob)
    model = load_body_model("mano", model_dir=tmp_path, config=cfg)
    pose = torch.randn(2, 15, 3, generator=torch.Generator().manual_seed(6)) * 0.3
    torch.testing.assert_close(
        model(hand_pose_rotvecs=pose).vertices, mano_right(hand_pose_rotvecs=pose).vertices
    )


def test_smplx_v1_1_layout_300_shape_100_expression(
    standin_dir: Path, cfg: ModelSearchConfig, smplx32: BodyModel, tmp_path: Path
) -> None:
    """SMPL-X v1.1 and SMPL-X 2020 files hold 400 shapedirs columns (300 shape, then 100 expression: smplx
    reads the expression from column 300 on) and pickled dict members (joint2num, part2num) we never read.
    The stand-in's v1.0 layout (10 + 10 columns) padded to that layout must give the same bodies."""
    with np.load(standin_dir / "smplx" / "SMPLX_NEUTRAL.npz") as src:
        data = {k: src[k] for k in src.files}
    narrow = data["shapedirs"]
    wide = np.zeros(narrow.shape[:2] + (400,), narrow.dtype)
    wide[..., :10], wide[..., 300:310] = narrow[..., :10], narrow[..., 10:20]
    data.update(shapedirs=wide, joint2num=np.array({"pelvis": 0}, dtype=object), part2num=np.array({}, dtype=object))
    (tmp_path / "smplx").mkdir()
    np.savez(tmp_path / "smplx" / "SMPLX_NEUTRAL_2020.npz", **data)
    params = _smplx_params(2, torch.float32, seed=7)
    reference = smplx32(**params)
    model = load_body_model("smplx", model_dir=tmp_path, config=cfg, num_betas=300, num_expression_coeffs=100)
    assert (model.num_betas, model.num_expression_coeffs) == (300, 100)
    wide_params = dict(params, betas=torch.nn.functional.pad(params["betas"], (0, 290)),
                       expression=torch.nn.functional.pad(params["expression"], (0, 90)))  # fmt: skip
    out = model(**wide_params)
    torch.testing.assert_close(out.vertices, reference.vertices)
    torch.testing.assert_close(model(**wide_params, full_mesh=False).joints, out.joints)
    default = load_body_model("smplx", model_dir=tmp_path, config=cfg)  # the first 10 + 10 of 300 + 100
    assert (default.num_betas, default.num_expression_coeffs) == (10, 10)
    torch.testing.assert_close(default(**params).vertices, reference.vertices)


def test_missing_model_fields_are_named(standin_dir: Path, cfg: ModelSearchConfig, tmp_path: Path) -> None:
    """A file lacking what smplx reads (another model type, or an SMPL-X made for SOMA/MoSh/AMASS without hand
    PCA: smplx issue #147) fails with one line naming the file and the fields, not smplx's bare AttributeError."""
    with np.load(standin_dir / "smplx" / "SMPLX_NEUTRAL.npz") as src:
        data = {k: src[k] for k in src.files if k not in ("hands_componentsl", "lmk_faces_idx")}
    (tmp_path / "x").mkdir()
    np.savez(tmp_path / "x" / "SMPLX_NEUTRAL.npz", **data)
    with pytest.raises(ValueError) as info:
        load_body_model("smplx", model_dir=tmp_path / "x", config=cfg)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str((tmp_path / "x" / "SMPLX_NEUTRAL.npz").resolve()))
    assert "'hands_componentsl', 'lmk_faces_idx'" in message and "smpl-x.is.tue.mpg.de" in message
    with pytest.raises(ValueError, match=r"MANO_RIGHT\.pkl: not a usable SMPL-X model file: missing field\(s\) "
                                         r"'hands_componentsl'"):  # fmt: skip
        load_body_model("smplx", model_dir=standin_dir / "mano" / "MANO_RIGHT.pkl", config=cfg)
    with pytest.raises(ValueError, match=r"SMPLX_NEUTRAL\.npz: not a usable MANO model file: missing field\(s\) "
                                         r"'hands_components', 'hands_mean'"):  # fmt: skip
        load_body_model("mano", model_dir=standin_dir / "smplx" / "SMPLX_NEUTRAL.npz", config=cfg)


def test_flame_embedding_missing_field_is_named(standin_dir: Path, cfg: ModelSearchConfig, tmp_path: Path) -> None:
    shutil.copytree(standin_dir / "flame", tmp_path / "flame")
    static_path = tmp_path / "flame" / "flame_static_embedding.pkl"
    static = pickle.loads(static_path.read_bytes())
    del static["lmk_b_coords"]
    static_path.write_bytes(pickle.dumps(static, protocol=2))
    with pytest.raises(ValueError, match=r"flame_static_embedding\.pkl: FLAME landmark embedding lacks field\(s\) "
                                         r"'lmk_b_coords'"):  # fmt: skip
        load_body_model("flame", model_dir=tmp_path, config=cfg)


def test_left_mano_without_right_file_warns(standin_dir: Path, cfg: ModelSearchConfig, tmp_path: Path) -> None:
    """Without MANO_RIGHT next to it, the official MANO_LEFT's shapedirs bug cannot be detected: say so."""
    data = pickle.loads((standin_dir / "mano" / "MANO_LEFT.pkl").read_bytes())
    data.pop("neuralannot_standin")  # a licensed file as far as the loader can tell
    (tmp_path / "MANO_LEFT.pkl").write_bytes(pickle.dumps(data, protocol=2))
    with pytest.warns(UserWarning, match=r"MANO_LEFT\.pkl: no MANO_RIGHT\.pkl .*issue #48"):
        load_body_model("mano", is_rhand=False, model_dir=tmp_path, config=cfg)
    shutil.copy(standin_dir / "mano" / "MANO_RIGHT.pkl", tmp_path / "MANO_RIGHT.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_body_model("mano", is_rhand=False, model_dir=tmp_path, config=cfg)


def test_flame_2020_layout_300_shape_100_expression(
    standin_dir: Path, cfg: ModelSearchConfig, flame: BodyModel, tmp_path: Path
) -> None:
    """FLAME's released ``generic_model.pkl`` holds 400 shapedirs columns, 300 shape then 100
    expression (FLAME_PyTorch concatenates 300 + 100 coefficients against them); the stand-in has 10 + 10."""
    data = pickle.loads((standin_dir / "flame" / "FLAME_NEUTRAL.pkl").read_bytes())
    narrow = data["shapedirs"]
    wide = np.zeros(narrow.shape[:2] + (400,), narrow.dtype)
    wide[..., :10], wide[..., 300:310] = narrow[..., :10], narrow[..., 10:20]
    data["shapedirs"] = wide
    (tmp_path / "flame").mkdir()
    (tmp_path / "flame" / "generic_model.pkl").write_bytes(pickle.dumps(data, protocol=2))
    for name in ("flame_static_embedding.pkl", "flame_dynamic_embedding.npy"):
        shutil.copy(standin_dir / "flame" / name, tmp_path / "flame" / name)
    model = load_body_model("flame", model_dir=tmp_path, config=cfg, num_betas=300, num_expression_coeffs=100)
    g = torch.Generator().manual_seed(8)
    betas, expression = torch.randn(2, 10, generator=g), torch.randn(2, 10, generator=g)
    jaw = 0.2 * torch.randn(2, 3, generator=g)
    out = model(betas=torch.nn.functional.pad(betas, (0, 290)), expression=torch.nn.functional.pad(expression, (0, 90)),
                jaw_rotvec=jaw)  # fmt: skip
    reference = flame(betas=betas, expression=expression, jaw_rotvec=jaw)
    torch.testing.assert_close(out.vertices, reference.vertices)
    torch.testing.assert_close(out.joints, reference.joints)


_UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> str:
    _UNPICKLED.append(tag)
    return tag


class _Tripwire:
    """Unpickling this calls ``_record_unpickling``: stands for a pickle that runs code."""

    def __reduce__(self):
        return (_record_unpickling, ("npz member",))


@pytest.mark.parametrize("model_type", ["smplx", "flame"])
def test_npz_object_members_are_never_unpickled(
    model_type: str, standin_dir: Path, cfg: ModelSearchConfig, smplx32: BodyModel, flame: BodyModel, tmp_path: Path
) -> None:
    """smplx opens .npz files with allow_pickle=True and reads every member; the released SMPL-X v1.1 / 2020 npz
    carry pickled members (joint2num, part2num) smplx never uses. A pickle can run code, so an npz with object
    members is loaded from a numeric-only copy: the model is the same and nothing is unpickled."""
    if model_type == "smplx":
        with np.load(standin_dir / "smplx" / "SMPLX_NEUTRAL.npz") as src:
            data = {k: src[k] for k in src.files}
        target = tmp_path / "smplx" / "SMPLX_NEUTRAL.npz"
    else:
        data = pickle.loads((standin_dir / "flame" / "FLAME_NEUTRAL.pkl").read_bytes())
        data = {k: np.asarray(v.toarray() if hasattr(v, "toarray") else v) for k, v in data.items()
                if k != "neuralannot_standin"}  # fmt: skip
        target = tmp_path / "flame" / "FLAME_NEUTRAL.npz"
        for name in ("flame_static_embedding.pkl", "flame_dynamic_embedding.npy"):
            (tmp_path / "flame").mkdir(exist_ok=True)
            shutil.copy(standin_dir / "flame" / name, tmp_path / "flame" / name)
    data["joint2num"] = np.array(_Tripwire(), dtype=object)
    target.parent.mkdir(exist_ok=True)
    np.savez(target, **data)
    _UNPICKLED.clear()
    model = load_body_model(model_type, model_dir=tmp_path, config=cfg)
    assert _UNPICKLED == []
    g = torch.Generator().manual_seed(3)
    if model_type == "smplx":
        params = _smplx_params(2, torch.float32, seed=3)
        torch.testing.assert_close(model(**params).vertices, smplx32(**params).vertices)
    else:
        kw = {"betas": torch.randn(2, 10, generator=g), "jaw_rotvec": 0.2 * torch.randn(2, 3, generator=g)}
        torch.testing.assert_close(model(**kw).vertices, flame(**kw).vertices)
    with np.load(target, allow_pickle=True) as raw:  # the tripwire works: a plain allow_pickle read fires it
        raw["joint2num"]
    assert _UNPICKLED == ["npz member"]
