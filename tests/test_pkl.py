"""Chumpy-free, scipy-free, allow-listed loading of official model pickles."""

from __future__ import annotations

import contextlib
import copyreg
import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuralannot_cli.body.pkl import (
    convert_pkl_to_npz,
    load_restricted_npy,
    load_restricted_pickle,
)


@contextlib.contextmanager
def fake_modules(**modules: types.ModuleType):
    """Temporarily register fake modules in sys.modules (removed again on exit)."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _official_layout_pickle(protocol: int) -> tuple[bytes, dict[str, np.ndarray]]:
    """Pickle a dict in the official SMPL/MANO layout with fake chumpy + scipy.sparse classes.

    Returns the bytes and the dense arrays the loader must reproduce.
    """
    rng = np.random.default_rng(0)
    ch_mod = types.ModuleType("chumpy.ch")
    reo_mod = types.ModuleType("chumpy.reordering")
    csc_mod = types.ModuleType("scipy.sparse._csc")
    csr_old_mod = types.ModuleType("scipy.sparse.csr")

    class Ch:  # chumpy.ch.Ch keeps its value in 'x' (plus bookkeeping attributes)
        pass

    class Select:  # chumpy.reordering.Select: a.ravel()[idxs].reshape(preferred_shape)
        pass

    class csc_matrix:  # scipy >= 1.8 module path
        pass

    class csr_matrix:  # scipy < 1.8 module path
        pass

    class ReconstructedCh:  # pickled through copyreg._reconstructor, as Python 2 object reduce does
        def __reduce__(self):
            return (copyreg._reconstructor, (Ch, object, None), dict(self.__dict__))

    for cls, mod in ((Ch, ch_mod), (Select, reo_mod), (csc_matrix, csc_mod), (csr_matrix, csr_old_mod)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)

    v_template = rng.normal(size=(7, 3))
    shapedirs = rng.normal(size=(7, 3, 4))
    regressor = np.zeros((3, 7))
    regressor[0, [0, 2]] = [0.25, 0.75]
    regressor[1, 5] = 1.0
    regressor[2, [1, 3, 6]] = [0.2, 0.3, 0.5]
    posedirs_base = rng.normal(size=(7 * 3 * 9,))
    sel_idx = np.arange(7 * 3 * 9)[::-1].copy()

    ch_v = Ch()
    ch_v.__dict__.update(x=v_template, _dirty_vars=set(), label=None)
    ch_s = ReconstructedCh()
    ch_s.__dict__.update(x=shapedirs)
    ch_base = Ch()
    ch_base.__dict__.update(x=posedirs_base)
    sel = Select()
    sel.__dict__.update(a=ch_base, idxs=sel_idx, preferred_shape=(7, 3, 9))

    csc = csc_matrix()
    cols = regressor.T  # column-major storage
    indptr = np.concatenate([[0], np.cumsum((cols != 0).sum(1))])
    csc.__dict__.update(
        _shape=regressor.shape,
        data=regressor.T[regressor.T != 0],
        indices=np.nonzero(cols)[1].astype(np.int32),
        indptr=indptr.astype(np.int32),
        maxprint=50,
    )
    csr = csr_matrix()
    indptr_r = np.concatenate([[0], np.cumsum((regressor != 0).sum(1))])
    csr.__dict__.update(
        _shape=regressor.shape,
        data=regressor[regressor != 0],
        indices=np.nonzero(regressor)[1].astype(np.int32),
        indptr=indptr_r.astype(np.int32),
    )
    data = {
        "v_template": ch_v,
        "shapedirs": ch_s,
        "posedirs": sel,
        "J_regressor": csc,
        "J_regressor_prior": csr,
        "f": np.array([[0, 1, 2], [2, 3, 4]], dtype=np.uint32),
        "kintree_table": np.array([[4294967295, 0, 1], [0, 1, 2]], dtype=np.int64),
        "bs_style": "lbs",
        "joint2num": {"a": 1},
    }
    with fake_modules(
        chumpy=types.ModuleType("chumpy"),
        scipy=types.ModuleType("scipy"),
        **{"chumpy.ch": ch_mod, "chumpy.reordering": reo_mod, "scipy.sparse": types.ModuleType("scipy.sparse"),
           "scipy.sparse._csc": csc_mod, "scipy.sparse.csr": csr_old_mod},
    ):  # fmt: skip
        blob = pickle.dumps(data, protocol=protocol)
    expected = {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs_base[sel_idx].reshape(7, 3, 9),
        "J_regressor": regressor,
        "J_regressor_prior": regressor,
    }
    return blob, expected


@pytest.mark.parametrize("protocol", [2, 4])
def test_chumpy_free_round_trip(tmp_path: Path, protocol: int) -> None:
    blob, expected = _official_layout_pickle(protocol)
    assert "chumpy.ch" not in sys.modules and "scipy.sparse._csc" not in sys.modules
    assert b"chumpy.ch" in blob and b"scipy.sparse._csc" in blob
    path = tmp_path / "MODEL.pkl"
    path.write_bytes(blob)
    data = load_restricted_pickle(path)
    for key, value in expected.items():
        assert isinstance(data[key], np.ndarray), key
        np.testing.assert_array_equal(data[key], value, err_msg=key)
    assert data["f"].dtype == np.uint32 and data["f"].tolist() == [[0, 1, 2], [2, 3, 4]]
    assert data["bs_style"] == "lbs"
    assert "scipy.sparse._csc" not in sys.modules  # scipy was never imported for this


def test_convert_to_npz_cached_and_pickle_free(tmp_path: Path) -> None:
    blob, expected = _official_layout_pickle(2)
    src = tmp_path / "MANO_RIGHT.pkl"
    src.write_bytes(blob)
    out = convert_pkl_to_npz(src, tmp_path / "cache", name="MANO_RIGHT")
    assert out.name == "MANO_RIGHT.npz"
    mtime = out.stat().st_mtime_ns
    assert convert_pkl_to_npz(src, tmp_path / "cache", name="MANO_RIGHT") == out
    assert out.stat().st_mtime_ns == mtime  # reused, not rewritten
    with np.load(out, allow_pickle=False) as npz:  # no object arrays inside
        for key, value in expected.items():
            np.testing.assert_array_equal(npz[key], value)
        assert "joint2num" not in npz.files  # dict entries are dropped
    # A different source file gets a different cache entry.
    src2 = tmp_path / "other.pkl"
    src2.write_bytes(pickle.dumps({"v_template": np.zeros((2, 3))}, protocol=2))
    out2 = convert_pkl_to_npz(src2, tmp_path / "cache")
    assert out2.parent != out.parent and out2.name == "other.npz"
    assert not list((tmp_path / "cache").rglob(".*"))  # no temporary files left behind


MALICIOUS = [
    (b"cos\nsystem\n(S'touch {marker}'\ntR.", "os.system"),
    (b"cposix\nsystem\n(S'touch {marker}'\ntR.", "posix.system"),
    (b"cbuiltins\neval\n(S'open(\"{marker}\", \"w\")'\ntR.", "builtins.eval"),
    (b"cnumpy\nload\n(S'{marker}'\ntR.", "numpy.load"),
]


@pytest.mark.parametrize(("payload", "global_name"), MALICIOUS)
def test_malicious_global_refused(tmp_path: Path, payload: bytes, global_name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload.replace(b"{marker}", str(marker).encode()))
    with pytest.raises(pickle.UnpicklingError) as info:
        load_restricted_pickle(path)
    message = str(info.value)
    assert global_name in message and str(path) in message
    assert not marker.exists()


def test_unsupported_chumpy_node_refused(tmp_path: Path) -> None:
    ops = types.ModuleType("chumpy.linalg")

    class Inv:
        pass

    Inv.__module__, Inv.__qualname__ = "chumpy.linalg", "Inv"
    ops.Inv = Inv
    node = Inv()
    node.__dict__["a"] = np.eye(2)
    with fake_modules(chumpy=types.ModuleType("chumpy"), **{"chumpy.linalg": ops}):
        blob = pickle.dumps({"x": node}, protocol=2)
    path = tmp_path / "op.pkl"
    path.write_bytes(blob)
    with pytest.raises(pickle.UnpicklingError, match="chumpy.linalg.Inv"):
        load_restricted_pickle(path)


def test_restricted_npy_object_array(tmp_path: Path) -> None:
    holder = np.empty((), dtype=object)
    holder[()] = {"lmk_face_idx": np.arange(6).reshape(2, 3), "lmk_b_coords": np.full((2, 3, 3), 1 / 3)}
    path = tmp_path / "dyn.npy"
    np.save(path, holder, allow_pickle=True)
    loaded = load_restricted_npy(path)[()]
    np.testing.assert_array_equal(loaded["lmk_face_idx"], np.arange(6).reshape(2, 3))
    np.testing.assert_allclose(loaded["lmk_b_coords"], 1 / 3)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(5.0))
    np.testing.assert_array_equal(load_restricted_npy(plain), np.arange(5.0))


def test_restricted_npy_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    assert header.getvalue().startswith(np.lib.format.magic(1, 0))
    evil = tmp_path / "evil.npy"
    evil.write_bytes(
        header.getvalue() + f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    )
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        load_restricted_npy(evil)
    assert not marker.exists()


def test_npz_written_atomically_is_a_valid_zip(tmp_path: Path) -> None:
    src = tmp_path / "m.pkl"
    src.write_bytes(pickle.dumps({"a": np.arange(3)}, protocol=2))
    out = convert_pkl_to_npz(src, tmp_path)
    assert zipfile.is_zipfile(out)
