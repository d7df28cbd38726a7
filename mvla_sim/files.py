"""Atomic file writes: the one writer every package uses for results, configs, checkpoints, episodes.

A file is written to a hidden temporary file in the target's own folder (so the rename stays on
one file system), flushed and fsynced, then moved into place with ``os.replace`` and the folder
fsynced, so a reader sees either the old file or the complete new one, never half of it. On any
error (a crash mid-write, Ctrl-C) the temporary file is removed and the old file is untouched.
New files get the usual permissions (``0o666`` less the umask).

* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json` for content
  in memory;
* :func:`atomic_path`, a context manager yielding a temporary path, for writers that want a path
  (h5py's ``File(tmp, "x")``, ``torch.save(obj, tmp)``).

Standard library only: ``mvla_sim``, ``policies``, ``train``, ``eval`` and ``scripts`` all import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temp_path(path: Path) -> Path:
    """A hidden, unique name beside ``path``: ``.<name>.<pid>.<random>.tmp``."""
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path`` atomically.

    The temporary path does not exist yet (h5py's ``File(tmp, "x")`` may create it). The body must
    write it; a body that raises, or leaves no file, leaves ``path`` untouched and no temporary
    file behind. The parent folder is created if needed.

    Raises:
        FileNotFoundError: the body returned without writing the temporary file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(target)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{target}: nothing was written to the temporary file {tmp.name}")
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path."""
    target = Path(path)
    with atomic_path(target) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, allow_nan: bool = True) -> Path:
    """Write ``data`` as indented UTF-8 JSON with a final newline, atomically; returns the path.

    Raises:
        ValueError: ``allow_nan=False`` and ``data`` holds NaN or infinity.
        TypeError: ``data`` holds something JSON cannot encode.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=allow_nan) + "\n"
    return atomic_write_text(path, text)


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
