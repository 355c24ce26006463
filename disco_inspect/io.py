"""Atomic file writes: write to a temporary file in the same folder, fsync it, then ``os.replace``.

A crash never leaves a half-written file under the final name, and a power loss after the replace does not
leave an empty one.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _fsync_path(path: str | Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories cannot be opened on Windows; nothing more to do there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically (parents are created).

    The temporary file is created with mode 0666 minus the process umask (as ``open`` would create the
    target), fsynced before it replaces ``path``, and removed if ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, untouched
    try:
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""

    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, _w)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON (indented) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2))


def shareable_source(source: Any) -> Any:
    """A model/pipeline description without local folders: ``torchscript:/home/me/x.pt`` -> ``torchscript:x.pt``.

    Each ``:``-separated part that is an absolute path or an existing file/folder keeps only its name; hub ids
    (``owner/name`` that do not exist locally) and plain words are kept. Non-strings pass through.
    """
    if not isinstance(source, str):
        return source
    parts = source.split(":")
    out = []
    for part in parts:
        is_path = bool(part) and (os.path.isabs(part) or part.startswith("~") or os.path.exists(part))
        out.append(Path(part).name if is_path else part)
    return ":".join(out)
