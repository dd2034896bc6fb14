"""Atomic file writes: write a temporary file beside the target, fsync, then rename.

A reader (or a re-run after ``kill -9``) therefore sees either the old file or the whole new
one, never half of one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: The process's umask, read once at import (reading it means setting it, which is not thread-safe later).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private (0600); the file gets what open() would give
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def readable_npz(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a whole ``.npz`` archive: every member's checksum holds (a truncated, emptied or
    overwritten file fails). Reads the file once."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None and bool(archive.namelist())
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def not_a_file(path: str | os.PathLike) -> str:
    """Why ``path`` (which is no regular file) cannot be read as one: for an error message."""
    path = Path(path)
    if path.is_dir():
        return "is a folder, not a file"
    return "is not a regular file" if path.exists() else "not found" + relative_hint(path)


def relative_hint(path: str | os.PathLike) -> str:
    """For a relative path that was not found: where it was looked for, and why there."""
    if Path(path).expanduser().is_absolute():
        return ""  # a newcomer puts the data beside the config and runs from the checkout
    return (f" (looked for {Path.cwd() / path}: a config's paths are read relative to the folder you run from, not "
            "the config file's)")


def json_default(obj):
    """``json.dumps``'s ``default``: NumPy numbers and arrays as Python ones, paths as text."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
