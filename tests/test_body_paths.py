"""Model-file lookup order, error messages, the stand-in fallback and its one-time warning."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from neuralannot_cli.body import paths
from neuralannot_cli.body.paths import ENV_VAR, ModelSearchConfig, find_model_file, is_standin


def _touch_npz(path: Path, *, standin: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"v_template": np.zeros((2, 3))}
    if standin:
        arrays[paths.STANDIN_MARKER_KEY] = np.array(True)
    np.savez(path, **arrays)
    return path


def _touch_pkl(path: Path, *, standin: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"v_template": np.zeros((2, 3))}
    if standin:
        data[paths.STANDIN_MARKER_KEY] = True
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


@pytest.fixture
def fake_standin(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the stand-in generator by a tiny one (these tests only need file names) and reset the
    warn-once flag. Returns the list of directories it was asked to fill."""
    calls: list[Path] = []

    def make_standin(out_dir: Path, *, seed: int = 0) -> dict[str, Path]:
        out_dir = Path(out_dir)
        calls.append(out_dir)
        files = {}
        for g in ("NEUTRAL", "MALE", "FEMALE"):
            files[f"smplx_{g}"] = _touch_npz(out_dir / "smplx" / f"SMPLX_{g}.npz", standin=True)
            files[f"flame_{g}"] = _touch_pkl(out_dir / "flame" / f"FLAME_{g}.pkl", standin=True)
        for side in ("RIGHT", "LEFT"):
            files[f"mano_{side}"] = _touch_pkl(out_dir / "mano" / f"MANO_{side}.pkl", standin=True)
        return files

    module = types.ModuleType("neuralannot_cli.body.standin")
    module.make_standin = make_standin
    module.STANDIN_MARKER_KEY = paths.STANDIN_MARKER_KEY
    monkeypatch.setitem(sys.modules, "neuralannot_cli.body.standin", module)
    monkeypatch.setattr(paths, "_standin_warned", False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return calls


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    out = {name: tmp_path / name for name in ("arg", "env", "user", "cache")}
    for g in ("NEUTRAL",):
        _touch_npz(out["arg"] / "smplx" / f"SMPLX_{g}.npz")  # nested layout
        _touch_pkl(out["env"] / f"SMPLX_{g}.pkl")  # flat layout, pkl
        _touch_npz(out["user"] / "smplx" / f"SMPLX_{g}.npz")
    return out


def test_lookup_order(dirs: dict[str, Path], fake_standin: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ModelSearchConfig(model_dir=dirs["arg"], user_dir=dirs["user"], cache_dir=dirs["cache"])
    monkeypatch.setenv(ENV_VAR, str(dirs["env"]))
    # 1. explicit argument wins over everything
    found = find_model_file("smplx", config=cfg)
    assert (found.source, found.path) == ("argument", (dirs["arg"] / "smplx" / "SMPLX_NEUTRAL.npz").resolve())
    # 2. then the env var (flat layout, .pkl accepted)
    cfg = ModelSearchConfig(user_dir=dirs["user"], cache_dir=dirs["cache"])
    found = find_model_file("smplx", config=cfg)
    assert (found.source, found.path) == ("env", (dirs["env"] / "SMPLX_NEUTRAL.pkl").resolve())
    # 3. then the user data dir
    monkeypatch.delenv(ENV_VAR)
    found = find_model_file("smplx", config=cfg)
    assert (found.source, found.path) == ("user_dir", (dirs["user"] / "smplx" / "SMPLX_NEUTRAL.npz").resolve())
    assert fake_standin == []
    # 4. then the stand-in, generated on demand into the cache dir
    found = find_model_file("smplx", gender="male", config=cfg)
    assert found.source == "standin"
    assert found.path.is_relative_to((dirs["cache"] / "standin").resolve())
    assert found.path.parts[-2:] == ("smplx", "SMPLX_MALE.npz")
    assert len(fake_standin) == 1
    # generated once, then reused
    assert find_model_file("mano", is_rhand=False, config=cfg).path.name == "MANO_LEFT.pkl"
    assert len(fake_standin) == 1


def test_npz_preferred_over_pkl_and_file_argument(tmp_path: Path, fake_standin: list[Path]) -> None:
    _touch_pkl(tmp_path / "smplx" / "SMPLX_FEMALE.pkl")
    _touch_npz(tmp_path / "smplx" / "SMPLX_FEMALE.npz")
    cfg = ModelSearchConfig(model_dir=tmp_path, cache_dir=tmp_path / "c")
    assert find_model_file("smplx", gender="female", config=cfg).path.suffix == ".npz"
    single = _touch_pkl(tmp_path / "custom_name.pkl")
    cfg = ModelSearchConfig(model_dir=single, cache_dir=tmp_path / "c")
    assert find_model_file("mano", config=cfg).path == single.resolve()


def test_platformdirs_user_dir(tmp_path: Path, fake_standin: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", lambda appname: str(tmp_path / "data" / appname))
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda appname: str(tmp_path / "cache" / appname))
    _touch_pkl(tmp_path / "data" / "neuralannot" / "body_models" / "mano" / "MANO_RIGHT.pkl")
    found = find_model_file("mano")
    assert found.source == "user_dir"
    assert found.path == (tmp_path / "data/neuralannot/body_models/mano/MANO_RIGHT.pkl").resolve()
    found = find_model_file("flame")  # nothing in the user dir -> stand-in in the platformdirs cache
    assert found.source == "standin"
    assert found.path.is_relative_to((tmp_path / "cache" / "neuralannot" / "standin").resolve())


@pytest.mark.parametrize(
    ("model_type", "kwargs", "expected_name", "site"),
    [
        ("smplx", {}, "smplx/SMPLX_NEUTRAL.npz", "https://smpl-x.is.tue.mpg.de"),
        ("mano", {"is_rhand": False}, "mano/MANO_LEFT.pkl", "https://mano.is.tue.mpg.de"),
        ("flame", {"gender": "female"}, "flame/FLAME_FEMALE.pkl", "https://flame.is.tue.mpg.de"),
    ],
)
def test_explicit_dir_missing_file_message(
    tmp_path: Path, fake_standin: list[Path], model_type: str, kwargs: dict, expected_name: str, site: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        find_model_file(model_type, config=ModelSearchConfig(model_dir=empty, cache_dir=tmp_path), **kwargs)
    message = str(info.value)
    for needle in (expected_name, ENV_VAR, site, str(empty)):
        assert needle in message
    assert fake_standin == []  # no silent fallback


def test_env_dir_missing_file_message(tmp_path: Path, fake_standin: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "does_not_exist"))
    with pytest.raises(FileNotFoundError) as info:
        find_model_file("smplx", config=ModelSearchConfig(cache_dir=tmp_path))
    message = str(info.value)
    assert "smplx/SMPLX_NEUTRAL.npz" in message and ENV_VAR in message and "smpl-x.is.tue.mpg.de" in message
    assert "SMPLX_NEUTRAL.pkl" in message  # the .pkl alternative is named too
    assert fake_standin == []


def test_no_standin_when_disallowed(tmp_path: Path, fake_standin: list[Path]) -> None:
    cfg = ModelSearchConfig(user_dir=tmp_path / "u", cache_dir=tmp_path / "c", allow_standin=False)
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        find_model_file("mano", config=cfg)
    assert fake_standin == []


def test_standin_warning_once(tmp_path: Path, fake_standin: list[Path], capsys: pytest.CaptureFixture) -> None:
    cfg = ModelSearchConfig(user_dir=tmp_path / "u", cache_dir=tmp_path / "c")
    find_model_file("smplx", config=cfg)
    err = capsys.readouterr().err
    assert "NOT real SMPL-X" in err and "SMPLX_NEUTRAL.npz" in err and ENV_VAR in err and str(tmp_path / "u") in err
    find_model_file("flame", config=cfg)
    find_model_file("smplx", config=cfg)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bad", ["smplh", "SMPLH", "", "mano_left"])
def test_unknown_model_type(bad: str) -> None:
    with pytest.raises(ValueError, match="smplx, mano, flame, smpl"):
        find_model_file(bad)


def test_unknown_gender() -> None:
    with pytest.raises(ValueError, match="neutral, male, female"):
        find_model_file("smplx", gender="kid")


def test_is_standin(tmp_path: Path) -> None:
    assert is_standin(_touch_npz(tmp_path / "a" / "SMPLX_NEUTRAL.npz", standin=True))
    assert not is_standin(_touch_npz(tmp_path / "b" / "SMPLX_NEUTRAL.npz"))
    assert is_standin(_touch_pkl(tmp_path / "c" / "MANO_RIGHT.pkl", standin=True))
    assert not is_standin(_touch_pkl(tmp_path / "d" / "MANO_RIGHT.pkl"))
    assert is_standin(tmp_path / "a") and not is_standin(tmp_path / "b")
    holder = np.empty((), dtype=object)
    holder[()] = {"lmk_face_idx": np.zeros(3), paths.STANDIN_MARKER_KEY: True}
    np.save(tmp_path / "c" / "dyn.npy", holder, allow_pickle=True)
    assert is_standin(tmp_path / "c" / "dyn.npy")
    with pytest.raises(FileNotFoundError):
        is_standin(tmp_path / "missing.npz")


def test_smplx_2020_neutral_file_name(tmp_path: Path, fake_standin: list[Path]) -> None:
    """The "SMPL-X 2020" download (neutral only) is one file, SMPLX_NEUTRAL_2020.npz: found in a model
    directory after the v1.x names, never for another gender."""
    only_2020 = _touch_npz(tmp_path / "a" / "smplx" / "SMPLX_NEUTRAL_2020.npz")
    cfg = ModelSearchConfig(model_dir=tmp_path / "a", cache_dir=tmp_path / "c")
    assert find_model_file("smplx", config=cfg).path == only_2020.resolve()
    with pytest.raises(FileNotFoundError, match="SMPLX_MALE.npz") as info:
        find_model_file("smplx", gender="male", config=cfg)
    assert "SMPLX_NEUTRAL_2020" not in str(info.value).split("expected", 1)[1]
    v11 = _touch_npz(tmp_path / "a" / "smplx" / "SMPLX_NEUTRAL.npz")
    assert find_model_file("smplx", config=cfg).path == v11.resolve()  # the v1.x file wins when both are there
    flat = _touch_npz(tmp_path / "b" / "SMPLX_NEUTRAL_2020.npz")
    cfg = ModelSearchConfig(model_dir=tmp_path / "b", cache_dir=tmp_path / "c")
    assert find_model_file("smplx", config=cfg).path == flat.resolve()
    assert fake_standin == []


def test_mano_file_of_the_other_hand_is_refused(
    tmp_path: Path, fake_standin: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicitly named MANO_LEFT file asked for as a right hand (or the reverse) would load a mirrored
    hand silently: the file name decides the side, as in smplx."""
    left = _touch_pkl(tmp_path / "m" / "MANO_LEFT.pkl")
    right = _touch_pkl(tmp_path / "m" / "MANO_RIGHT.pkl")
    with pytest.raises(ValueError, match=r"MANO_LEFT\.pkl: .*left-hand .*is_rhand=True"):
        find_model_file("mano", is_rhand=True, config=ModelSearchConfig(model_dir=left, cache_dir=tmp_path))
    with pytest.raises(ValueError, match=r"MANO_RIGHT\.pkl: .*right-hand .*is_rhand=False"):
        find_model_file("mano", is_rhand=False, config=ModelSearchConfig(model_dir=right, cache_dir=tmp_path))
    monkeypatch.setenv(ENV_VAR, str(left))
    with pytest.raises(ValueError, match=r"MANO_LEFT\.pkl"):
        find_model_file("mano", config=ModelSearchConfig(cache_dir=tmp_path))
    assert find_model_file("mano", is_rhand=False, config=ModelSearchConfig(cache_dir=tmp_path)).path == left.resolve()
    monkeypatch.delenv(ENV_VAR)
    cfg = ModelSearchConfig(model_dir=right, cache_dir=tmp_path)
    assert find_model_file("mano", is_rhand=True, config=cfg).path == right.resolve()
    cfg = ModelSearchConfig(model_dir=tmp_path / "m", cache_dir=tmp_path)  # a directory: the name is chosen by side
    assert find_model_file("mano", is_rhand=False, config=cfg).path == left.resolve()
    assert fake_standin == []


def test_model_file_of_another_gender_is_refused(tmp_path: Path, fake_standin: list[Path]) -> None:
    """An explicitly given SMPL-X / FLAME file whose name states another gender than the one asked for would be
    labelled with the requested gender (in the model and the pseudo-GT metadata): refused, one line."""
    neutral = _touch_npz(tmp_path / "s" / "SMPLX_NEUTRAL.npz")
    female = _touch_npz(tmp_path / "s" / "SMPLX_FEMALE.npz")
    male_flame = _touch_pkl(tmp_path / "f" / "male_model.pkl")
    generic = _touch_pkl(tmp_path / "f" / "generic_model.pkl")
    own_name = _touch_npz(tmp_path / "o" / "my_body.npz")

    def find(model_type: str, path: Path, gender: str):
        return find_model_file(model_type, gender=gender, config=ModelSearchConfig(model_dir=path, cache_dir=tmp_path))

    with pytest.raises(ValueError, match=r"SMPLX_NEUTRAL\.npz: the file name says a neutral SMPLX model but "
                                         r"gender='male'") as info:  # fmt: skip
        find("smplx", neutral, "male")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"SMPLX_FEMALE\.npz: .* female .*gender='male'"):  # FEMALE contains MALE
        find("smplx", female, "male")
    with pytest.raises(ValueError, match=r"male_model\.pkl: .* male FLAME .*gender='neutral'"):
        find("flame", male_flame, "neutral")
    assert find("smplx", female, "female").path == female.resolve()
    assert find("flame", generic, "neutral").path == generic.resolve()
    assert find("smplx", own_name, "male").path == own_name.resolve()  # a name that says nothing: the user decides
    assert find("smplx", tmp_path / "s", "female").path == female.resolve()  # a directory: chosen by gender
    assert fake_standin == []


def test_unzipped_download_folders_are_searched(tmp_path: Path, fake_standin: list[Path]) -> None:
    """Pointing at the folder a download unpacks into finds the model file below it (searched last)."""
    smplx_file = _touch_npz(tmp_path / "models_smplx_v1_1" / "models" / "smplx" / "SMPLX_NEUTRAL.npz")
    mano_file = _touch_pkl(tmp_path / "mano_v1_2" / "models" / "MANO_RIGHT.pkl")
    flame_file = _touch_pkl(tmp_path / "flame_dl" / "FLAME2020" / "generic_model.pkl")

    def find(model_type: str, folder: Path) -> Path:
        return find_model_file(model_type, config=ModelSearchConfig(model_dir=folder, cache_dir=tmp_path)).path

    assert find("smplx", tmp_path / "models_smplx_v1_1") == smplx_file.resolve()
    assert find("mano", tmp_path / "mano_v1_2") == mano_file.resolve()
    assert find("flame", tmp_path / "flame_dl") == flame_file.resolve()
    top = _touch_npz(tmp_path / "models_smplx_v1_1" / "SMPLX_NEUTRAL.npz")  # the usual places still come first
    assert find("smplx", tmp_path / "models_smplx_v1_1") == top.resolve()
    assert fake_standin == []
