"""Crash-safe file writes: a temporary file in the target's directory, ``fsync``, then ``os.replace``.

A reader never sees a half-written file: either the old content (or no file) or the complete new one.
``os.replace`` is atomic on POSIX and on Windows when source and target are on the same volume, which
is why the temporary file lives next to the target. The directory is ``fsync``-ed afterwards (POSIX) so
the rename itself survives a power loss.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_npz", "fsync_dir"]


def fsync_dir(directory: str | os.PathLike) -> None:
    """``fsync`` a directory so a rename inside it is durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(os.fspath(directory), os.O_RDONLY)
    except OSError:  # Windows, or no permission: the rename is still atomic, only durability is weaker
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created). Returns the path.

    Raises:
        OSError: the folder is not writable (the message names the path); no temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> Path:
    """Serialise ``obj`` with :func:`json.dumps` (``allow_nan=False``: NaN/inf raise ``ValueError`` rather
    than producing a file other JSON readers reject) and write it atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False, separators=(",", ": ") if indent else (",", ":"))
    return atomic_write_text(path, text + "\n")


def atomic_write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, compressed: bool = False) -> Path:
    """Write ``arrays`` as an ``.npz`` atomically. Object arrays are refused (they would need pickle to read).

    Note ``np.savez`` appends ``.npz`` to names without it; here ``path`` is used exactly as given.
    """
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"{path}: array {name!r} has dtype object; npz files here are pickle-free")
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue())
