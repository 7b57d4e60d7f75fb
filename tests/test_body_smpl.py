"""SMPL in the body-model layer: the stand-in SMPL files read by the real smplx code, BodyModel("smpl") against an
independent float64 numpy LBS, the h36m_17 / smpl_24 joint sets, file-format checks and the release-name lookup."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import smplx
import torch

from neuralannot_cli.body import paths
from neuralannot_cli.body.joint_sets import get_joint_set
from neuralannot_cli.body.model import BodyModel, load_body_model
from neuralannot_cli.body.paths import ENV_VAR, ModelSearchConfig, find_model_file
from neuralannot_cli.body.standin import STANDIN_MARKER_KEY
from tests import fixtures_formats as fx
from tests.test_body_joint_support import cfg  # noqa: F401 (fixture: no env var, no stand-in fallback)

# Written out independently of the code under test: SMPL's kinematic tree and joint names (SMPL paper / smplx).
REAL_SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPL_24_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
]  # fmt: skip
GENDERS = ("neutral", "male", "female")


@pytest.fixture(scope="module")
def smpl64(standin_dir: Path, cfg: ModelSearchConfig) -> BodyModel:
    return load_body_model("smpl", model_dir=standin_dir, config=cfg, dtype=torch.float64)


def _read(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")  # our own stand-in file: plain numpy


def _random_params(batch: int, dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    return {"root_rotvec": r(batch, 3, scale=1.0), "body_pose_rotvecs": r(batch, 23, 3, scale=0.4),
            "betas": r(batch, 10, scale=1.0), "transl_m": r(batch, 3, scale=0.5)}  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# numpy reference (float64)


def _rotvec_to_rotmat(rotvecs: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, (..., 3) -> (..., 3, 3)."""
    angle = np.linalg.norm(rotvecs, axis=-1, keepdims=True)
    axis = rotvecs / np.where(angle > 0, angle, 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rotvecs.shape[:-1], 3, 3)
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def _numpy_smpl(data: dict, root_rotvec, body_pose_rotvecs, betas, transl_m):
    """SMPL (Loper et al. 2015, eqs. 1-10) for one body: shape and pose blend shapes, joint regression, forward
    kinematics over kintree_table, linear blend skinning. Returns (vertices (V, 3), joints (24, 3))."""
    f64 = {k: np.asarray(data[k], dtype=np.float64) for k in ("v_template", "shapedirs", "posedirs", "J_regressor",
                                                                "weights")}  # fmt: skip
    parents = np.asarray(data["kintree_table"])[0].astype(np.int64)
    v_shaped = f64["v_template"] + f64["shapedirs"][:, :, : len(betas)] @ betas
    joints_rest = f64["J_regressor"] @ v_shaped
    rotmats = _rotvec_to_rotmat(np.concatenate([root_rotvec[None], body_pose_rotvecs]))  # (24, 3, 3)
    pose_feature = (rotmats[1:] - np.eye(3)).reshape(-1)
    num_pose = f64["posedirs"].shape[-1]
    v_posed = v_shaped + (f64["posedirs"].reshape(-1, num_pose) @ pose_feature).reshape(-1, 3)
    world = np.zeros((24, 4, 4))
    for j in range(24):
        local = np.eye(4)
        local[:3, :3] = rotmats[j]
        local[:3, 3] = joints_rest[j] - (joints_rest[parents[j]] if j > 0 else 0.0)
        world[j] = local if j == 0 else world[parents[j]] @ local
    skinning = world.copy()
    skinning[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints_rest)
    per_vertex = np.einsum("vj,jab->vab", f64["weights"], skinning)
    vertices = np.einsum("vab,vb->va", per_vertex[:, :3, :3], v_posed) + per_vertex[:, :3, 3]
    return vertices + transl_m, world[:, :3, 3] + transl_m


# ---------------------------------------------------------------------------------------------------
# the stand-in files in smplx


@pytest.mark.parametrize("gender", GENDERS)
def test_standin_smpl_runs_in_smplx(standin_dir: Path, gender: str) -> None:
    path = standin_dir / "smpl" / f"SMPL_{gender.upper()}.pkl"
    data = _read(path)
    assert str(data[STANDIN_MARKER_KEY]) == "neuralannot stand-in v1"
    assert data["v_template"].shape == (6890, 3) and data["f"].shape == (13776, 3)
    assert data["shapedirs"].shape == (6890, 3, 10) and data["posedirs"].shape == (6890, 3, 207)
    assert data["weights"].shape == (6890, 24) and data["J_regressor"].shape == (24, 6890)
    assert data["kintree_table"].tolist() == [[4294967295] + REAL_SMPL_PARENTS[1:], list(range(24))]
    model = smplx.SMPL(model_path=str(path))  # smplx's own pickle.load
    assert model.parents.tolist() == REAL_SMPL_PARENTS
    with torch.no_grad():
        out = model(betas=torch.ones(1, 10))
    assert out.vertices.shape == (1, 6890, 3) and out.joints.shape == (1, 24 + 21, 3)
    np.testing.assert_allclose(model.lbs_weights.sum(1).numpy(), 1.0, atol=1e-5)
    assert (model.lbs_weights >= 0).all() and (model.J_regressor >= 0).all()
    np.testing.assert_allclose(model.J_regressor.sum(1).numpy(), 1.0, atol=1e-5)
    layout = smplx.create(str(standin_dir), model_type="smpl", gender=gender)  # smplx's folder layout
    torch.testing.assert_close(layout.v_template, model.v_template)


def test_standin_smpl_is_one_closed_oriented_genus0_surface(standin_dir: Path) -> None:
    faces = _read(standin_dir / "smpl" / "SMPL_NEUTRAL.pkl")["f"].astype(np.int64)
    n = 6890
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = half[:, 0] * n + half[:, 1]
    assert len(np.unique(keys)) == len(keys)  # every directed edge once: consistently oriented
    assert np.isin(half[:, 1] * n + half[:, 0], keys).all()  # and every edge has its twin: closed
    assert len(np.unique(faces)) == n
    label = np.arange(n)  # connected components by label propagation over the edges
    while True:
        low = np.minimum(label[half[:, 0]], label[half[:, 1]])
        new = label.copy()
        np.minimum.at(new, half[:, 0], low)
        np.minimum.at(new, half[:, 1], low)
        new = new[new]
        if (new == label).all():
            break
        label = new
    assert len(np.unique(label)) == 1
    assert n - len(keys) // 2 + len(faces) == 2  # Euler characteristic of a sphere


def test_standin_genders_share_topology_and_vertex_joints_sit_on_landmarks(standin_dir: Path) -> None:
    data = {g: _read(standin_dir / "smpl" / f"SMPL_{g.upper()}.pkl") for g in GENDERS}
    for g in ("male", "female"):
        assert (data[g]["f"] == data["neutral"]["f"]).all()
        assert (data[g]["weights"] == data["neutral"]["weights"]).all()
    height = {g: np.ptp(d["v_template"][:, 1]) for g, d in data.items()}
    assert height["male"] > height["neutral"] > height["female"]
    v = data["neutral"]["v_template"].astype(np.float64)
    joints = data["neutral"]["J_regressor"].astype(np.float64) @ v
    assert abs(joints[0, 1] + 0.24) < 0.02  # pelvis joint height as SMPL's
    ids = smplx.vertex_ids.vertex_ids["smplh"]  # what smplx's SMPL layer reads
    head = joints[15]
    assert v[ids["nose"], 2] > head[2] + 0.05 and abs(v[ids["nose"], 0]) < 0.01
    assert v[ids["leye"], 0] > 0.01 > -0.01 > v[ids["reye"], 0] and v[ids["leye"], 2] > head[2]
    assert v[ids["lear"], 0] > 0.06 and v[ids["rear"], 0] < -0.06
    for side, wrist in (("l", joints[20]), ("r", joints[21])):
        for tip in ("thumb", "index", "middle", "ring", "pinky"):
            assert abs(v[ids[side + tip], 0]) > abs(wrist[0]) + 0.05, (side, tip)
    for side in "LR":
        toe, heel = v[ids[side + "BigToe"]], v[ids[side + "Heel"]]
        assert toe[2] > heel[2] + 0.15 and heel[1] < joints[7][1]


# ---------------------------------------------------------------------------------------------------
# BodyModel("smpl")


def test_float64_forward_matches_numpy_lbs(standin_dir: Path, cfg: ModelSearchConfig, tmp_path: Path) -> None:
    """Random poses and shapes against the numpy formula, on a copy whose pose correctives are random (the
    stand-in's are zero) so that every term of SMPL is exercised."""
    data = _read(standin_dir / "smpl" / "SMPL_MALE.pkl")
    data["posedirs"] = (np.random.default_rng(0).standard_normal((6890, 3, 207)) * 1e-3).astype(np.float32)
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "SMPL_MALE.pkl").write_bytes(pickle.dumps(data, protocol=2))
    model = load_body_model("smpl", gender="male", model_dir=tmp_path, config=cfg, dtype=torch.float64)
    assert (model.model_type, model.gender, model.is_standin, model.num_betas) == ("smpl", "male", True, 10)
    assert model.num_kinematic_joints == 24 and model.parents.tolist() == REAL_SMPL_PARENTS
    assert model.num_expression_coeffs == 0 and type(model.layer).__name__ == "SMPLLayer"
    params = _random_params(4, torch.float64, seed=1)
    out = model(**params)
    assert out.vertices.shape == (4, 6890, 3) and out.joints.shape == (4, 45, 3) and out.faces.shape == (13776, 3)
    for b in range(4):
        vertices, joints = _numpy_smpl(data, *(params[k][b].numpy() for k in params))
        np.testing.assert_allclose(out.vertices[b].numpy(), vertices, atol=1e-9, rtol=0)
        np.testing.assert_allclose(out.kinematic_joints[b].numpy(), joints, atol=1e-9, rtol=0)
    np.testing.assert_allclose(model.joints_in(out, "smpl_24").numpy(), out.joints[:, :24].numpy(), atol=0)
    # rotation matrices give the same body as axis-angle
    import roma

    as_mats = dict(params, root_rotmat=roma.rotvec_to_rotmat(params["root_rotvec"]),
                   body_pose_rotmats=roma.rotvec_to_rotmat(params["body_pose_rotvecs"]))  # fmt: skip
    del as_mats["root_rotvec"], as_mats["body_pose_rotvecs"]
    torch.testing.assert_close(model(**as_mats).vertices, out.vertices, atol=1e-12, rtol=0)
    # float32 is the same model
    model32 = load_body_model("smpl", gender="male", model_dir=tmp_path, config=cfg)
    out32 = model32(**{k: v.float() for k, v in params.items()})
    assert out32.vertices.dtype == torch.float32
    torch.testing.assert_close(out32.vertices.double(), out.vertices, atol=2e-5, rtol=0)


def test_gradients_finite(smpl64: BodyModel) -> None:
    params = _random_params(2, torch.float64, seed=2)
    params["root_rotvec"] = torch.zeros(2, 3, dtype=torch.float64)
    for value in params.values():
        value.requires_grad_(True)
    out = smpl64(**params)
    (out.vertices.square().sum() + smpl64.joints_in(out, "h36m_17").square().sum()).backward()
    for name, value in params.items():
        assert value.grad is not None and torch.isfinite(value.grad).all() and value.grad.abs().sum() > 0, name


def test_input_checks(smpl64: BodyModel) -> None:
    with pytest.raises(ValueError, match=r"body_pose_rotvecs must have shape \(batch, 23, 3\), got \(1, 21, 3\)"):
        smpl64(body_pose_rotvecs=torch.zeros(1, 21, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not use"):
        smpl64(expression=torch.zeros(1, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="give the rotation one way"):
        smpl64(root_rotvec=torch.zeros(1, 3, dtype=torch.float64),
               root_rotmat=torch.eye(3, dtype=torch.float64)[None])  # fmt: skip


def test_h36m_17_is_the_regressor_applied_to_the_vertices(smpl64: BodyModel, standin_dir: Path) -> None:
    regressor = np.load(standin_dir / "smpl" / "J_regressor_h36m_correct.npy")
    assert regressor.shape == (17, 6890)
    params = _random_params(3, torch.float64, seed=3)
    out = smpl64(**params)
    h36m = smpl64.joints_in(out, "h36m_17").numpy()
    np.testing.assert_allclose(h36m, np.einsum("jv,bvc->bjc", regressor, out.vertices.numpy()), atol=1e-12)
    mpi = smpl64.joints_in(out, "mpi3dhp_17").numpy()  # the same rows, by name
    h36m_names = get_joint_set("h36m_17").joint_names
    for i, name in enumerate(get_joint_set("mpi3dhp_17").joint_names):
        np.testing.assert_allclose(mpi[:, i], h36m[:, h36m_names.index(name)], atol=1e-15)
    rest = smpl64.joints_in(smpl64(), "h36m_17")[0].numpy()
    assert rest[0, 1] < rest[8, 1] < rest[10, 1] and rest[3, 1] < rest[2, 1] < rest[1, 1]  # pelvis < neck < top
    assert rest[4, 0] > 0 > rest[1, 0] and rest[11, 0] > 0 > rest[14, 0]  # left at +x
    assert list(get_joint_set("smpl_24").joint_names) == SMPL_24_NAMES
    assert set(get_joint_set("smpl_24").flip_pairs()) >= {(1, 2), (13, 14), (20, 21), (22, 23)}


def test_regressor_file_names(standin_dir: Path, cfg: ModelSearchConfig, smpl64: BodyModel, tmp_path: Path) -> None:
    """SPIN's name is accepted too; without a regressor h36m_17 names the file; a wrong shape is refused."""
    shutil.copy(standin_dir / "smpl" / "SMPL_NEUTRAL.pkl", tmp_path / "SMPL_NEUTRAL.pkl")
    bare = load_body_model("smpl", model_dir=tmp_path, config=cfg, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"h36m_17 needs J_regressor_h36m_correct\.npy or J_regressor_h36m\.npy"):
        bare.joints_in(bare(), "h36m_17")
    shutil.copy(standin_dir / "smpl" / "J_regressor_h36m_correct.npy", tmp_path / "J_regressor_h36m.npy")
    spin = load_body_model("smpl", model_dir=tmp_path, config=cfg, dtype=torch.float64)
    torch.testing.assert_close(spin.regressors["h36m"], smpl64.regressors["h36m"])
    np.save(tmp_path / "J_regressor_h36m_correct.npy", np.zeros((17, 10475)))  # preferred name, wrong model
    with pytest.raises(ValueError, match=r"J_regressor_h36m_correct\.npy: regressor has shape \(17, 10475\), "
                                         r"expected \(17, 6890\)"):  # fmt: skip
        load_body_model("smpl", model_dir=tmp_path, config=cfg)


# ---------------------------------------------------------------------------------------------------
# file formats


def test_official_chumpy_pkl_under_its_release_name_loads(
    standin_dir: Path, cfg: ModelSearchConfig, tmp_path: Path
) -> None:
    """The SMPL 1.1.0 download layout with a chumpy / sparse pickle: found by its release name inside the unpacked
    folder, loaded without chumpy or scipy, the same body as the stand-in it was made from."""
    data = _read(standin_dir / "smpl" / "SMPL_FEMALE.pkl")
    del data[STANDIN_MARKER_KEY]  # as a licensed file
    folder = tmp_path / "SMPL_python_v.1.1.0" / "smpl" / "models"
    folder.mkdir(parents=True)
    (folder / "basicmodel_f_lbs_10_207_0_v1.1.0.pkl").write_bytes(fx.official_model_pickle(data))
    model = load_body_model("smpl", gender="female", model_dir=tmp_path / "SMPL_python_v.1.1.0", config=cfg)
    assert model.model_file.name == "basicmodel_f_lbs_10_207_0_v1.1.0.pkl" and not model.is_standin
    reference = load_body_model("smpl", gender="female", model_dir=standin_dir, config=cfg)
    params = _random_params(2, torch.float32, seed=4)
    torch.testing.assert_close(model(**params).vertices, reference(**params).vertices)


def test_missing_fields_and_foreign_files_are_named(standin_dir: Path, cfg: ModelSearchConfig, tmp_path: Path) -> None:
    data = _read(standin_dir / "smpl" / "SMPL_NEUTRAL.pkl")
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "SMPL_NEUTRAL.npz", **{k: v for k, v in data.items() if k not in ("weights", "f")})
    with pytest.raises(ValueError) as info:
        load_body_model("smpl", model_dir=tmp_path / "a", config=cfg)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str((tmp_path / "a" / "SMPL_NEUTRAL.npz").resolve()))
    assert "not a usable SMPL model file: missing field(s) 'f', 'weights'" in message
    assert "smpl.is.tue.mpg.de" in message
    with pytest.raises(ValueError, match=r"SMPLX_NEUTRAL\.npz: not a usable SMPL model file: J_regressor has 55 "
                                         r"joints, SMPL has 24"):  # fmt: skip
        load_body_model("smpl", model_dir=standin_dir / "smplx" / "SMPLX_NEUTRAL.npz", config=cfg)
    with pytest.raises(ValueError, match=r"MANO_RIGHT\.pkl: .*SMPL model file: J_regressor has 16 joints"):
        load_body_model("smpl", model_dir=standin_dir / "mano" / "MANO_RIGHT.pkl", config=cfg)


# ---------------------------------------------------------------------------------------------------
# lookup


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"v_template": np.zeros((2, 3))}, protocol=2))
    return path


def _find(model_dir: Path, gender: str = "neutral") -> Path:
    config = ModelSearchConfig(model_dir=model_dir, use_env=False, cache_dir=model_dir / ".cache",
                               allow_standin=False)  # fmt: skip
    return find_model_file("smpl", gender=gender, config=config).path


RELEASE_NAMES = {  # the names the SMPL downloads ship (1.1.0; 1.0.0 and the SMPLify neutral model)
    "neutral": ["basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"],
    "male": ["basicmodel_m_lbs_10_207_0_v1.1.0.pkl", "basicmodel_m_lbs_10_207_0_v1.0.0.pkl"],
    "female": ["basicmodel_f_lbs_10_207_0_v1.1.0.pkl", "basicModel_f_lbs_10_207_0_v1.0.0.pkl"],
}


@pytest.mark.parametrize("gender", GENDERS)
def test_release_names_are_found(tmp_path: Path, gender: str) -> None:
    for i, name in enumerate(RELEASE_NAMES[gender]):
        for layout in ("", "smpl/", "smpl/models/", "models/"):
            root = tmp_path / f"{i}-{layout.replace('/', '_')}"
            found = _touch(root / layout / name)
            assert _find(root, gender) == found.resolve(), (name, layout)
    both = tmp_path / "both"
    _touch(both / "smpl" / RELEASE_NAMES[gender][1])
    _touch(both / "smpl" / RELEASE_NAMES[gender][0])
    assert _find(both, gender).name == RELEASE_NAMES[gender][0]  # 1.1.0 before 1.0.0
    renamed = _touch(both / "smpl" / f"SMPL_{gender.upper()}.pkl")
    assert _find(both, gender) == renamed.resolve()  # smplx's name first
    with pytest.raises(FileNotFoundError, match=r"SMPL model file not found .*expected smpl/SMPL_.*smpl\.is\.tue"):
        _find(tmp_path / "empty", gender)


def test_gender_named_in_the_file_name_must_match(tmp_path: Path) -> None:
    neutral = _touch(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl")
    female = _touch(tmp_path / "basicModel_f_lbs_10_207_0_v1.0.0.pkl")
    male = _touch(tmp_path / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl")
    with pytest.raises(ValueError, match=r"SMPL_NEUTRAL\.pkl: the file name says a neutral SMPL model but "
                                         r"gender='male'") as info:  # fmt: skip
        _find(neutral, "male")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"basicModel_f_lbs_10_207_0_v1\.0\.0\.pkl: .* female SMPL .*gender='male'"):
        _find(female, "male")
    with pytest.raises(ValueError, match=r"basicmodel_m_lbs_10_207_0_v1\.1\.0\.pkl: .* male SMPL .*gender='neutral'"):
        _find(male, "neutral")
    assert _find(female, "female") == female.resolve() and _find(male, "male") == male.resolve()


def test_standin_fallback_warns(
    standin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "_standin_warned", False)
    monkeypatch.setattr(paths, "ensure_standin", lambda directory, seed=0: standin_dir)  # already generated
    config = ModelSearchConfig(user_dir=tmp_path / "user", cache_dir=tmp_path / "cache")
    model = load_body_model("smpl", gender="female", config=config)
    assert model.is_standin and model.model_file == (standin_dir / "smpl" / "SMPL_FEMALE.pkl").resolve()
    assert "h36m" in model.regressors
    err = capsys.readouterr().err
    assert "no licensed SMPL model found" in err and "smpl.is.tue.mpg.de" in err
