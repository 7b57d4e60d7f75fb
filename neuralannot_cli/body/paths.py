"""Where the licensed body-model files are found.

SMPL-X, SMPL, MANO and FLAME files are licensed by the Max Planck Institute and are never shipped with
neuralannot. :func:`find_model_file` looks for them in this order (first hit wins):

1. the explicit argument (``ModelSearchConfig.model_dir``): a directory or a file;
2. the environment variable ``NEURALANNOT_BODY_MODELS`` (a directory or a file);
3. the user data directory ``platformdirs.user_data_dir("neuralannot")/body_models``;
4. the deterministic *stand-in* (random arrays in the official formats, see
   :mod:`neuralannot_cli.body.standin`), generated on demand into
   ``platformdirs.user_cache_dir("neuralannot")/standin/<generator hash>``. Its use is announced once per process on
   stderr: results computed with it are NOT real SMPL-X/SMPL/MANO/FLAME results.

An explicit argument or environment variable that points at a directory lacking the file is an error
(``FileNotFoundError`` naming the expected file, the environment variable and the registration site):
silently falling back to the stand-in there would hide a typo.

Accepted layouts inside a model directory ``DIR`` (``X`` = ``NEUTRAL``, ``MALE`` or ``FEMALE``)::

    DIR/smplx/SMPLX_X.npz  or .pkl      DIR/SMPLX_X.npz  or .pkl
        (neutral only, after those: SMPLX_NEUTRAL_2020.npz, the "SMPL-X 2020" download)
    DIR/smplx/J_regressor_h36m_smplx.npy (optional, next to the SMPL-X file; for the h36m_17 joint set)
    DIR/smpl/SMPL_X.pkl  or .npz      DIR/SMPL_X.pkl ...  (smplx's layout)
        (the released names also accepted: basicmodel_{neutral,m,f}_lbs_10_207_0_v1.1.0.pkl of SMPL 1.1.0,
        basicmodel_m_lbs_10_207_0_v1.0.0.pkl / basicModel_f_lbs_10_207_0_v1.0.0.pkl of SMPL 1.0.0 and the
        SMPLify neutral basicModel_neutral_lbs_10_207_0_v1.0.0.pkl; for 1.0.0 either case of "basicModel")
    DIR/smpl/J_regressor_h36m_correct.npy or J_regressor_h36m.npy (optional, next to the SMPL file; h36m_17)
    DIR/mano/MANO_RIGHT.pkl (LEFT)  or .npz      DIR/MANO_RIGHT.pkl ...
    DIR/flame/FLAME_X.pkl  or .npz      DIR/FLAME_X.pkl ...
        (FLAME 2020 names also accepted: generic_model.pkl = NEUTRAL, male_model.pkl, female_model.pkl)
    DIR/flame/flame_static_embedding.pkl, DIR/flame/flame_dynamic_embedding.npy (next to the FLAME file)

and, searched last, the folders the downloads unpack to: DIR/models/smplx/ (``models_smplx_v1_1``),
DIR/smpl/models/ and DIR/models/ (``SMPL_python_v.1.1.0``), DIR/models/ and DIR/mano/models/ (``mano_v1_2``),
DIR/FLAME2020/ and DIR/flame/FLAME2020/.

Registration sites: https://smpl-x.is.tue.mpg.de, https://smpl.is.tue.mpg.de, https://mano.is.tue.mpg.de,
https://flame.is.tue.mpg.de.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


ModelType = Literal["smplx", "mano", "flame", "smpl"]
Gender = Literal["neutral", "male", "female"]
Source = Literal["argument", "env", "user_dir", "standin"]

ENV_VAR = "NEURALANNOT_BODY_MODELS"
MODEL_TYPES: tuple[str, ...] = ("smplx", "mano", "flame", "smpl")
GENDERS: tuple[str, ...] = ("neutral", "male", "female")
REGISTRATION_URLS: dict[str, str] = {
    "smplx": "https://smpl-x.is.tue.mpg.de",
    "mano": "https://mano.is.tue.mpg.de",
    "flame": "https://flame.is.tue.mpg.de",
    "smpl": "https://smpl.is.tue.mpg.de",
}
H36M_REGRESSOR_FILENAME = "J_regressor_h36m_smplx.npy"
# Human3.6M regressors on SMPL meshes, in order of preference: I2L-MeshNet / Pose2Mesh's name, then SPIN's
SMPL_H36M_REGRESSOR_FILENAMES: tuple[str, ...] = ("J_regressor_h36m_correct.npy", "J_regressor_h36m.npy")
FLAME_STATIC_EMBEDDING_FILENAME = "flame_static_embedding.pkl"
FLAME_DYNAMIC_EMBEDDING_FILENAME = "flame_dynamic_embedding.npy"
# Key that every stand-in file carries (same value as standin.STANDIN_MARKER_KEY; duplicated here so
# that reading a file never needs to import the generator).
STANDIN_MARKER_KEY = "neuralannot_standin"

_FLAME_2020_NAMES = {"neutral": "generic_model", "male": "male_model", "female": "female_model"}
# Where the downloads unpack to, below the folder a user is likely to point at (searched last):
# models_smplx_v1_1/models/smplx/, mano_v1_2/models/, FLAME2020/
_UNZIPPED = {"smplx": ("models/smplx/",), "mano": ("models/", "mano/models/"),
             "flame": ("FLAME2020/", "flame/FLAME2020/"), "smpl": ("smpl/models/", "models/")}
# SMPL's released file names: SMPL 1.1.0 (SMPL_python_v.1.1.0.zip, all three genders), SMPL 1.0.0 (male, female)
# and the SMPLify neutral model (1.0.0). The 1.0.0 names mix "basicModel" and "basicmodel"; both are accepted.
_SMPL_RELEASE_NAMES = {
    "neutral": ("basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
                "basicmodel_neutral_lbs_10_207_0_v1.0.0.pkl"),
    "male": ("basicmodel_m_lbs_10_207_0_v1.1.0.pkl", "basicmodel_m_lbs_10_207_0_v1.0.0.pkl",
             "basicModel_m_lbs_10_207_0_v1.0.0.pkl"),
    "female": ("basicmodel_f_lbs_10_207_0_v1.1.0.pkl", "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
               "basicmodel_f_lbs_10_207_0_v1.0.0.pkl"),
}
_SMPL_RELEASE_GENDER = re.compile(r"basicmodel_(neutral|m|f)_lbs", re.IGNORECASE)
# "SMPL-X 2020" (neutral only, 300 shape + FLAME-2020's 100 expression components), a download of its own
_SMPLX_2020_NEUTRAL = "SMPLX_NEUTRAL_2020.npz"

# The only module-level mutable state: whether the stand-in warning was printed in this process.
_standin_warned = False


@dataclass(frozen=True)
class ModelSearchConfig:
    """Where to look for model files.

    Attributes:
        model_dir: explicit directory or file (highest priority); ``None`` to skip.
        use_env: read ``NEURALANNOT_BODY_MODELS``.
        user_dir: user data directory; ``None`` means ``platformdirs.user_data_dir("neuralannot")/body_models``.
        cache_dir: where converted files and the stand-in go; ``None`` means
            ``platformdirs.user_cache_dir("neuralannot")``.
        allow_standin: fall back to the stand-in when nothing else is found (else raise).
    """

    model_dir: Path | None = None
    use_env: bool = True
    user_dir: Path | None = None
    cache_dir: Path | None = None
    allow_standin: bool = True

    def resolved_user_dir(self) -> Path:
        if self.user_dir is not None:
            return Path(self.user_dir)
        import platformdirs

        return Path(platformdirs.user_data_dir("neuralannot")) / "body_models"

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        import platformdirs

        return Path(platformdirs.user_cache_dir("neuralannot"))


@dataclass(frozen=True)
class ResolvedModelFile:
    """A located model file.

    Attributes:
        path: the model file (``.npz`` or ``.pkl``).
        source: which rule of the lookup order found it.
        model_type, gender, is_rhand: what was asked for (``is_rhand`` only matters for MANO).
    """

    path: Path
    source: Source
    model_type: str
    gender: str
    is_rhand: bool

    @property
    def directory(self) -> Path:
        """Directory holding the model file (and its companion files)."""
        return self.path.parent


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(choices)}")
    return value.lower()


def expected_filenames(model_type: str, *, gender: str = "neutral", is_rhand: bool = True) -> tuple[str, ...]:
    """Relative paths accepted inside a model directory, in order of preference."""
    model_type = _check_choice(model_type, MODEL_TYPES, "model type")
    gender = _check_choice(gender, GENDERS, "gender")
    if model_type == "smplx":
        stem, sub, exts = f"SMPLX_{gender.upper()}", "smplx", ("npz", "pkl")
        stems = (stem,)
    elif model_type == "smpl":
        stems, sub, exts = (f"SMPL_{gender.upper()}",), "smpl", ("pkl", "npz")
    elif model_type == "mano":
        stems, sub, exts = (f"MANO_{'RIGHT' if is_rhand else 'LEFT'}",), "mano", ("pkl", "npz")
    else:
        stems, sub, exts = (f"FLAME_{gender.upper()}", _FLAME_2020_NAMES[gender]), "flame", ("pkl", "npz")
    names = []
    for prefix in (f"{sub}/", "", *_UNZIPPED[model_type]):
        for stem in stems:
            for ext in exts:
                names.append(f"{prefix}{stem}.{ext}")
        if model_type == "smplx" and gender == "neutral":
            names.append(f"{prefix}{_SMPLX_2020_NEUTRAL}")  # separate download, neutral only
        if model_type == "smpl":
            names += [f"{prefix}{name}" for name in _SMPL_RELEASE_NAMES[gender]]
    return tuple(names)


def _search_dir(directory: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _missing_message(model_type: str, names: tuple[str, ...], where: str) -> str:
    return (
        f"{model_type.upper()} model file not found in {where}: expected {names[0]} "
        f"(also accepted: {', '.join(names[1:])}). Register and download the model at "
        f"{REGISTRATION_URLS[model_type]}, then pass its directory explicitly, set the environment "
        f"variable {ENV_VAR}, or put it under the user data directory."
    )


def _check_explicit(path: Path, names: tuple[str, ...], model_type: str, where: str) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        found = _search_dir(path, names)
        if found is not None:
            return found
        raise FileNotFoundError(_missing_message(model_type, names, f"{where} directory {path}"))
    raise FileNotFoundError(
        _missing_message(model_type, names, f"{where} {path} (no such file or directory)")
    )


def _named_gender(name: str) -> str | None:
    """The gender a model file's name states (``SMPLX_FEMALE.npz``, ``male_model.pkl``, ``generic_model.pkl``,
    SMPL's ``basicmodel_f_lbs_10_207_0_v1.1.0.pkl``), or ``None`` when the name says none."""
    release = _SMPL_RELEASE_GENDER.match(name)
    if release is not None:
        return {"neutral": "neutral", "m": "male", "f": "female"}[release.group(1).lower()]
    upper = name.upper()
    if "FEMALE" in upper:
        return "female"
    if "MALE" in upper:
        return "male"
    if "NEUTRAL" in upper or "GENERIC" in upper:
        return "neutral"
    return None


def _check_file_name(path: Path, model_type: str, gender: str, is_rhand: bool) -> Path:
    """An explicitly given file must be what was asked for, as far as its name says: a MANO file of the requested
    hand (``smplx.MANO`` also reads the side from the file name; ``MANO_LEFT.pkl`` loaded as a right hand would
    silently give a mirrored hand), an SMPL-X / SMPL / FLAME file of the requested gender (``SMPLX_NEUTRAL.npz`` asked
    for as ``male`` would be labelled male in the written pseudo-GT)."""
    name = path.name
    if model_type == "mano":
        upper = name.upper()
        named_right, named_left = "RIGHT" in upper, "LEFT" in upper
        if named_right != named_left and named_right != bool(is_rhand):
            wanted = "RIGHT" if is_rhand else "LEFT"
            raise ValueError(
                f"{path}: the file name says a {'right' if named_right else 'left'}-hand MANO model but "
                f"is_rhand={bool(is_rhand)} asks for the {wanted.lower()} hand; pass MANO_{wanted}.pkl or its directory"
            )
        return path
    named = _named_gender(name)
    if named is not None and named != gender:
        raise ValueError(
            f"{path}: the file name says a {named} {model_type.upper()} model but gender={gender!r} was asked for; "
            f"ask for gender {named!r}, or pass the {gender} file or its directory"
        )
    return path


def find_model_file(
    model_type: str,
    *,
    gender: str = "neutral",
    is_rhand: bool = True,
    config: ModelSearchConfig = ModelSearchConfig(),
) -> ResolvedModelFile:
    """Locate a model file following the lookup order of this module.

    Raises:
        ValueError: unknown ``model_type`` or ``gender`` (lists the valid choices), or an explicitly given file
            whose name says another hand (``MANO_LEFT.pkl`` with ``is_rhand=True``) or another gender
            (``SMPLX_NEUTRAL.npz`` with ``gender='male'``).
        FileNotFoundError: the explicit argument or env var points at a place lacking the file, or
            nothing was found and ``config.allow_standin`` is False.
    """
    model_type = _check_choice(model_type, MODEL_TYPES, "model type")
    gender = _check_choice(gender, GENDERS, "gender")
    names = expected_filenames(model_type, gender=gender, is_rhand=is_rhand)

    def resolved(path: Path, source: Source) -> ResolvedModelFile:
        return ResolvedModelFile(path.resolve(), source, model_type, gender, bool(is_rhand))

    if config.model_dir is not None:
        found = _check_explicit(Path(config.model_dir), names, model_type, "the given")
        return resolved(_check_file_name(found, model_type, gender, is_rhand), "argument")

    env_value = os.environ.get(ENV_VAR, "") if config.use_env else ""
    if env_value:
        where = f"{ENV_VAR}={env_value!r}:"
        found = _check_explicit(Path(env_value), names, model_type, where)
        return resolved(_check_file_name(found, model_type, gender, is_rhand), "env")

    user_dir = config.resolved_user_dir()
    found = _search_dir(user_dir, names) if user_dir.is_dir() else None
    if found is not None:
        return resolved(found, "user_dir")

    if not config.allow_standin:
        raise FileNotFoundError(
            _missing_message(model_type, names, f"the user data directory {user_dir} ({ENV_VAR} unset)")
        )
    standin_dir = ensure_standin(config.resolved_cache_dir() / "standin" / _standin_generator_key())
    found = _search_dir(standin_dir, names)
    if found is None:  # pragma: no cover - the generator writes every file
        raise FileNotFoundError(_missing_message(model_type, names, f"the stand-in directory {standin_dir}"))
    _warn_standin_once(model_type, names[0], user_dir, found)
    return resolved(found, "standin")


def _warn_standin_once(model_type: str, name: str, user_dir: Path, used: Path) -> None:
    global _standin_warned
    if _standin_warned:
        return
    _standin_warned = True
    bar = "!" * 78
    print(
        f"{bar}\n"
        f"WARNING (neuralannot): no licensed {model_type.upper()} model found (looked for {name} and the "
        f"other accepted layouts: no explicit model directory, {ENV_VAR} unset, nothing in {user_dir}).\n"
        f"Using the RANDOM STAND-IN model {used}: results are NOT real SMPL-X / SMPL / MANO / FLAME results.\n"
        f"Register at {REGISTRATION_URLS['smplx']}, {REGISTRATION_URLS['smpl']}, {REGISTRATION_URLS['mano']}, "
        f"{REGISTRATION_URLS['flame']} and set {ENV_VAR} to the download directory.\n"
        f"(This warning is printed once per process.)\n{bar}",
        file=sys.stderr,
    )


def _standin_generator_key() -> str:
    """Short hash of the generator's source, so a changed generator never reuses stale files."""
    import hashlib

    from neuralannot_cli.body import standin

    source = getattr(standin, "__file__", None)
    if not source or not Path(source).is_file():
        return "unversioned"
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:12]


def ensure_standin(directory: Path, *, seed: int = 0) -> Path:
    """Generate the stand-in files into ``directory`` unless already complete; return ``directory``.

    Generation happens in a temporary sibling directory renamed into place, so concurrent processes
    never see a half-written stand-in.
    """
    directory = Path(directory)
    complete = directory / ".complete"
    if complete.is_file():
        return directory
    from neuralannot_cli.body.standin import make_standin

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".standin-", dir=directory.parent))
    try:
        make_standin(tmp, seed=seed)
        (tmp / ".complete").write_text("ok\n")
        try:
            os.replace(tmp, directory)
        except OSError:
            # Another process won the race (or a stale incomplete dir is there).
            if not complete.is_file():
                shutil.rmtree(directory, ignore_errors=True)
                os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def companion_file(model_file: Path, filename: str) -> Path | None:
    """A file that lives next to a model file (e.g. the H36M regressor), or ``None`` if absent."""
    candidate = Path(model_file).parent / filename
    return candidate if candidate.is_file() else None


def is_standin(path: str | os.PathLike) -> bool:
    """True when ``path`` (a model file, or a directory searched like a model dir) is a stand-in file.

    Reads the ``neuralannot_standin`` marker key: npz member, pickle dict key (read with the restricted
    unpickler), or a key of the dict inside an object ``.npy``. A plain numeric ``.npy`` cannot carry a
    key; it counts as stand-in when a sibling ``.complete`` stand-in marker or a stand-in model file
    sits in its directory.
    """
    path = Path(path)
    if path.is_dir():
        for model_type in MODEL_TYPES:
            found = _search_dir(path, expected_filenames(model_type))
            if found is not None:
                return is_standin(found)
        return False
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4] if n.endswith(".npy") else n for n in zf.namelist()}
        return STANDIN_MARKER_KEY in members
    if suffix == ".pkl":
        from neuralannot_cli.body.pkl import load_restricted_pickle

        data = load_restricted_pickle(path)
        return isinstance(data, dict) and STANDIN_MARKER_KEY in data
    if suffix == ".npy":
        from neuralannot_cli.body.pkl import load_restricted_npy

        array = load_restricted_npy(path)
        if array.dtype == object and array.shape == () and isinstance(array[()], dict):
            return STANDIN_MARKER_KEY in array[()]
        # A numeric array cannot carry the key: judge by the model file next to it (npz first: cheap).
        siblings = sorted(
            (p for p in path.parent.iterdir() if p.suffix.lower() in (".npz", ".pkl")),
            key=lambda p: (p.suffix.lower() != ".npz", p.name),
        )
        return bool(siblings) and is_standin(siblings[0])
    return False

