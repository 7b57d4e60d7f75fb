"""Read the official ``.pkl`` body-model files on numpy 2, without chumpy, scipy or arbitrary code.

The official SMPL-X / MANO / FLAME pickles were written by Python 2 with chumpy objects (``shapedirs``,
``v_template``, ... are ``chumpy.ch.Ch``, sometimes wrapped in ``chumpy.reordering.Select``) and a
``scipy.sparse.csc_matrix`` joint regressor. ``smplx`` reads them with plain ``pickle.load``, which needs
chumpy (unmaintained, broken on numpy >= 1.24) and would run any code a tampered file names.

:class:`RestrictedUnpickler` resolves globals through an allow-list only:

- numpy array reconstruction (``numpy.core.multiarray._reconstruct`` and its numpy-2 home
  ``numpy._core.multiarray``, ``numpy.ndarray``, ``numpy.dtype``, ``...multiarray.scalar``),
  ``copyreg._reconstructor`` (Python 2's ``copy_reg``), ``_codecs.encode`` (how protocol 2 stores
  bytes when written by Python 3) and a few inert builtins (``object``, ``set``,
  ``frozenset``, ``slice``, ``complex``...);
- chumpy classes (module ``chumpy`` or ``chumpy.*``) -> :class:`ChumpyStub`, which only stores the
  pickled state; :func:`to_numpy_tree` then evaluates the few node types the official files use
  (``Ch``: array in ``state['x']``; ``reordering.Select``: ``a.ravel()[idxs]`` reshaped to
  ``preferred_shape``; ``reordering.transpose``/``Reshape``; ``ch_ops`` add/subtract/multiply/divide/
  negative) and refuses any other chumpy node;
- ``scipy.sparse`` csc/csr/coo matrix classes under any of their historical module paths
  (``scipy.sparse.csc``, ``scipy.sparse._csc``, ``scipy.sparse.compressed``, ...) -> :class:`SparseStub`,
  rebuilt into a dense ``np.ndarray`` from ``data``/``indices``/``indptr``/``_shape`` (or
  ``row``/``col`` for coo) WITHOUT importing scipy.

Any other global raises ``pickle.UnpicklingError`` naming the file and the global.

Conversion for ``smplx``: :func:`convert_pkl_to_npz` writes the plain-numpy dict to a cached ``.npz``
(named by the source file's sha256, atomic write), which smplx then loads with ``ext='npz'``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RestrictedUnpickler",
    "ChumpyStub",
    "SparseStub",
    "load_restricted_pickle",
    "load_restricted_npy",
    "to_numpy_tree",
    "file_sha256",
    "convert_pkl_to_npz",
    "atomic_write_bytes",
]


class ChumpyStub:
    """Inert stand-in for any chumpy class: keeps the class name and the pickled state."""

    chumpy_class: str = "chumpy.ch.Ch"

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # never called by pickle with NEWOBJ
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if not isinstance(state, dict):
            state = {"x": state}
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<ChumpyStub {self.chumpy_class} keys={sorted(k for k in self.__dict__)}>"


class SparseStub:
    """Inert stand-in for a scipy.sparse csc/csr/coo matrix: keeps the pickled state."""

    sparse_format: str = "csc"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected scipy.sparse state of type {type(state).__name__}")
        self.__dict__.update(state)

    def to_dense(self) -> np.ndarray:
        state = self.__dict__
        shape = state.get("_shape", state.get("shape"))
        if shape is None:
            raise pickle.UnpicklingError("scipy.sparse matrix state has no '_shape'")
        n_rows, n_cols = (int(s) for s in shape)
        data = np.asarray(state["data"])
        dense = np.zeros((n_rows, n_cols), dtype=data.dtype if data.dtype != object else np.float64)
        if self.sparse_format == "coo":
            rows = np.asarray(state["row"], dtype=np.int64)
            cols = np.asarray(state["col"], dtype=np.int64)
            np.add.at(dense, (rows, cols), data)
            return dense
        indices = np.asarray(state["indices"], dtype=np.int64)
        indptr = np.asarray(state["indptr"], dtype=np.int64)
        n_major = n_cols if self.sparse_format == "csc" else n_rows
        if indptr.shape != (n_major + 1,):
            raise pickle.UnpicklingError(
                f"scipy.sparse {self.sparse_format} indptr has shape {indptr.shape}, expected ({n_major + 1},)"
            )
        major = np.repeat(np.arange(n_major), np.diff(indptr))
        if self.sparse_format == "csc":
            np.add.at(dense, (indices, major), data)
        else:
            np.add.at(dense, (major, indices), data)
        return dense


def _make_chumpy_class(module: str, name: str) -> type:
    return type(name, (ChumpyStub,), {"chumpy_class": f"{module}.{name}"})


def _make_sparse_class(name: str) -> type:
    return type(name, (SparseStub,), {"sparse_format": name[:3]})


def _numpy_core() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


_SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix")
_BUILTINS = {
    "object": object,
    "set": set,
    "frozenset": frozenset,
    "slice": slice,
    "complex": complex,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "bytearray": bytearray,
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that only resolves the allow-listed globals (see the module docstring).

    Args:
        file: binary file object.
        source: name used in error messages (usually the file path).
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str = "<pickle>") -> None:
        super().__init__(file, encoding="latin1")
        self._source = source
        self._chumpy_classes: dict[tuple[str, str], type] = {}
        self._sparse_classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        multiarray = _numpy_core()
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "_reconstruct":
                return multiarray._reconstruct
            if name == "scalar":
                return multiarray.scalar
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            from numpy._core import numeric

            return numeric._frombuffer
        if module in ("numpy.dtypes",) and name.endswith("DType"):
            # numpy >= 1.25 pickles dtype instances through their DType class.
            import numpy.dtypes as dtypes

            if hasattr(dtypes, name):
                return getattr(dtypes, name)
        if module == "_codecs" and name == "encode":
            # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1').
            import codecs

            return codecs.encode
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            import copyreg

            return copyreg._reconstructor
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "chumpy" or module.startswith("chumpy."):
            key = (module, name)
            if key not in self._chumpy_classes:
                self._chumpy_classes[key] = _make_chumpy_class(module, name)
            return self._chumpy_classes[key]
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_CLASSES:
            if name not in self._sparse_classes:
                self._sparse_classes[name] = _make_sparse_class(name)
            return self._sparse_classes[name]
        raise pickle.UnpicklingError(
            f"{self._source}: refusing to load global '{module}.{name}' (not a numpy array, chumpy or "
            f"scipy.sparse object; the file may be corrupted or malicious)"
        )


def _evaluate_chumpy(node: ChumpyStub, source: str, depth: int = 0) -> np.ndarray:
    if depth > 64:
        raise pickle.UnpicklingError(f"{source}: chumpy graph deeper than 64 nodes")
    state = node.__dict__
    cls = node.chumpy_class
    short = cls.rsplit(".", 1)[-1]

    def arg(key: str) -> np.ndarray:
        if key not in state:
            raise pickle.UnpicklingError(f"{source}: chumpy node {cls} lacks its '{key}' operand")
        return _to_array(state[key], source, depth + 1)

    if short == "Ch" or (short not in _CHUMPY_OPS and "x" in state and not any(k in state for k in ("a", "b"))):
        if "x" not in state:
            raise pickle.UnpicklingError(f"{source}: chumpy node {cls} has no 'x' array in its state")
        return np.asarray(_to_array(state["x"], source, depth + 1))
    if short == "Select":
        out = arg("a").ravel()[np.asarray(state["idxs"], dtype=np.int64).ravel()]
        shape = state.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    if short == "transpose":
        axes = state.get("axes")
        return np.transpose(arg("a"), axes)
    if short == "Reshape":
        return arg("a").reshape(state["newshape"])
    if short in ("add", "subtract", "multiply", "divide", "power"):
        return getattr(np, short)(arg("a"), arg("b"))
    if short == "negative":
        return -arg("a")
    raise pickle.UnpicklingError(
        f"{source}: unsupported chumpy node {cls} (supported: Ch, Select, transpose, Reshape, "
        f"add, subtract, multiply, divide, power, negative)"
    )


_CHUMPY_OPS = {"Select", "transpose", "Reshape", "add", "subtract", "multiply", "divide", "power", "negative"}


def _to_array(value: Any, source: str, depth: int = 0) -> Any:
    if isinstance(value, ChumpyStub):
        return _evaluate_chumpy(value, source, depth)
    if isinstance(value, SparseStub):
        return value.to_dense()
    return value


def to_numpy_tree(obj: Any, *, source: str = "<pickle>") -> Any:
    """Replace every chumpy / sparse stub in nested dicts/lists/tuples by a dense ``np.ndarray``."""
    if isinstance(obj, (ChumpyStub, SparseStub)):
        return _to_array(obj, source)
    if isinstance(obj, dict):
        return {k: to_numpy_tree(v, source=source) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_numpy_tree(v, source=source) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_numpy_tree(v, source=source) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        flat = [to_numpy_tree(v, source=source) for v in obj.ravel()]
        out = np.empty(obj.shape, dtype=object)
        for i, v in enumerate(flat):
            out.flat[i] = v
        return out
    return obj


def load_restricted_pickle(path: str | os.PathLike, *, convert: bool = True) -> Any:
    """Load a pickle with :class:`RestrictedUnpickler` (``encoding='latin1'``).

    Args:
        path: the ``.pkl`` file.
        convert: replace chumpy / sparse stubs by dense arrays (:func:`to_numpy_tree`).

    Raises:
        FileNotFoundError: no such file.
        pickle.UnpicklingError: a global outside the allow-list, or an unsupported chumpy node.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            obj = RestrictedUnpickler(f, source=str(path)).load()
        except pickle.UnpicklingError:
            raise
        except (EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise pickle.UnpicklingError(f"{path}: not a readable model pickle ({exc})") from exc
    return to_numpy_tree(obj, source=str(path)) if convert else obj


def load_restricted_npy(path: str | os.PathLike) -> np.ndarray:
    """Load a ``.npy`` file; object arrays are unpickled with :class:`RestrictedUnpickler`.

    (``np.load(allow_pickle=True)`` would run arbitrary code from an object array.)
    """
    path = Path(path)
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        if dtype.hasobject:
            try:
                array = RestrictedUnpickler(f, source=str(path)).load()
            except pickle.UnpicklingError:
                raise
            except (EOFError, ValueError, TypeError, AttributeError, KeyError) as exc:
                raise pickle.UnpicklingError(f"{path}: not a readable object array ({exc})") from exc
            return to_numpy_tree(array, source=str(path))
    return np.load(path, allow_pickle=False)


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def numeric_arrays(data: dict[str, Any], *, source: str = "<pickle>") -> dict[str, np.ndarray]:
    """Keep the entries of a model dict that convert to non-object numpy arrays.

    Entries such as SMPL-X's ``joint2num`` / ``part2num`` (dicts) are dropped: smplx does not use them
    and keeping them would put pickles back into the ``.npz``.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: model pickle holds a {type(data).__name__}, expected a dict")
    out: dict[str, np.ndarray] = {}
    for key, value in data.items():
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            continue
        if array.dtype == object:
            continue
        out[str(key)] = array
    return out


def convert_pkl_to_npz(pkl_path: str | os.PathLike, cache_dir: str | os.PathLike, *, name: str | None = None) -> Path:
    """Convert an official model ``.pkl`` into a plain ``.npz`` in ``cache_dir`` (cached by sha256).

    Args:
        pkl_path: the source pickle.
        cache_dir: root of the conversion cache; the file goes to
            ``cache_dir/converted/<sha256[:20]>/<name or source stem>.npz``.
        name: output stem (e.g. ``MANO_RIGHT``); defaults to the source file's stem.

    Returns:
        Path of the ``.npz`` (reused when already there).
    """
    pkl_path = Path(pkl_path)
    digest = file_sha256(pkl_path)
    out = Path(cache_dir) / "converted" / digest[:20] / f"{name or pkl_path.stem}.npz"
    if out.is_file():
        return out
    data = numeric_arrays(load_restricted_pickle(pkl_path), source=str(pkl_path))
    buffer = io.BytesIO()
    np.savez(buffer, **data)
    atomic_write_bytes(out, buffer.getvalue())
    return out
