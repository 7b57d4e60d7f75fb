"""A resumable, append-only progress record (JSON Lines) for long batched jobs such as ``annotate``.

File layout (one JSON object per line, UTF-8)::

    {"type": "header", "version": 1, "fingerprint": {...}}        # first line: what the job is
    {"type": "chunk", "keys": ["12", "13"], "records": [{...}, {...}]}   # one line per completed batch
    ...

Each chunk is written with a single ``write`` of one line, then ``flush`` + ``fsync`` before the job moves
on, so after a crash (even SIGKILL or power loss) every chunk that was reported done is on disk. A crash in
the middle of a write leaves at most one *trailing* partial line (no final newline, or not valid JSON);
:meth:`ProgressLog.open` drops it (truncating the file back to the last complete line) so its batch is
simply done again. A damaged line that is *not* the last one is real corruption and raises ``ValueError``.

Keys are the unit of "done": :attr:`ProgressLog.done_keys` holds every key of every complete chunk; a
resumed job skips them, so the union of all chunks holds each key exactly once (a key written twice, which
a correct caller never does, keeps the last record in :meth:`ProgressLog.records`).

The ``fingerprint`` (input file, checkpoint, options...) is compared on resume; a mismatch raises
``ValueError`` naming the first differing field, so a resume never mixes outputs of two different jobs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ProgressLog", "PROGRESS_VERSION", "first_difference"]

PROGRESS_VERSION = 1


def _read_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Parse complete lines; return them and the byte length of the valid prefix."""
    data = path.read_bytes()
    entries: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:  # trailing partial line (crash mid-write): dropped
            break
        line = data[pos:end]
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or "type" not in obj:
                raise ValueError("not a progress entry")
        except ValueError as exc:
            if end == len(data) - 1:  # the last line is damaged: treat as unfinished
                break
            raise ValueError(f"{path}: line {len(entries) + 1}: corrupt progress entry ({exc})") from None
        entries.append(obj)
        pos = end + 1
    return entries, pos


def first_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first key (sorted) whose value differs between two job fingerprints, or ``None`` when they match."""
    return next((k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)), None)


class ProgressLog:
    """Append-only record of completed chunks. Use :meth:`open`; then :meth:`append` per batch.

    Attributes:
        path: the ``.jsonl`` file.
        fingerprint: the job description stored in the header.
        done_keys: keys of all complete chunks (grows with :meth:`append`).
    """

    def __init__(self, path: Path, fingerprint: Mapping[str, Any], entries: list[dict[str, Any]]) -> None:
        self.path = path
        self.fingerprint = dict(fingerprint)
        self._chunks = [e for e in entries if e.get("type") == "chunk"]
        self.done_keys: set[str] = set()
        for chunk in self._chunks:
            self.done_keys.update(str(k) for k in chunk.get("keys", ()))
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    @classmethod
    def open(cls, path: str | os.PathLike, fingerprint: Mapping[str, Any], *, resume: bool) -> ProgressLog:
        """Open ``path`` for appending.

        Args:
            path: progress file (its folder is created).
            fingerprint: JSON-serialisable description of the job.
            resume: keep the chunks of an existing file with the same fingerprint; ``False`` starts afresh
                (an existing file is replaced).

        Raises:
            ValueError: ``resume`` and the file's fingerprint differs (names the field) or it is corrupt.
            OSError: the folder is not writable.
        """
        path = Path(path)
        fingerprint = json.loads(json.dumps(dict(fingerprint)))  # normalise (tuples -> lists, keys -> str)
        if resume and path.exists():
            entries, valid_len = _read_lines(path)
            if not entries or entries[0].get("type") != "header":
                raise ValueError(f"{path}: header: missing; not a progress file (delete it to start afresh)")
            old = entries[0].get("fingerprint", {})
            key = first_difference(old, fingerprint)
            if key is not None:
                raise ValueError(
                    f"{path}: fingerprint.{key}: the interrupted job had {old.get(key)!r}, this one has "
                    f"{fingerprint.get(key)!r}; rerun with the same options or without --resume"
                )
            if valid_len != path.stat().st_size:
                with open(path, "r+b") as fh:
                    fh.truncate(valid_len)
                    fh.flush()
                    os.fsync(fh.fileno())
            return cls(path, fingerprint, entries[1:])
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {"type": "header", "version": PROGRESS_VERSION, "fingerprint": fingerprint}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write((json.dumps(header, allow_nan=False) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return cls(path, fingerprint, [])

    def append(self, keys: Sequence[str], records: Sequence[Mapping[str, Any]]) -> None:
        """Durably record one completed chunk (``keys[i]`` names ``records[i]``)."""
        if len(keys) != len(records):
            raise ValueError(f"append: {len(keys)} keys but {len(records)} records")
        if not keys:
            return
        chunk = {"type": "chunk", "keys": [str(k) for k in keys], "records": list(records)}
        line = (json.dumps(chunk, allow_nan=False) + "\n").encode("utf-8")
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._chunks.append(chunk)
        self.done_keys.update(chunk["keys"])

    def records(self) -> dict[str, Any]:
        """``{key: record}`` over all chunks, in first-seen key order (a repeated key keeps its last record)."""
        out: dict[str, Any] = {}
        for chunk in self._chunks:
            for key, rec in zip(chunk["keys"], chunk["records"]):
                out[str(key)] = rec
        return out

    def iter_chunks(self) -> Iterator[dict[str, Any]]:
        yield from self._chunks

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def discard(self) -> None:
        """Close and delete the file (after the final output was written)."""
        self.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
