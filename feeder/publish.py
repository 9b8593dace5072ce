"""Write files into the output folder atomically, and only when their bytes changed.

Each file goes to a temporary file in the same folder, is fsynced and then
renamed over the old one, so a reader (or a crash) never sees a partial file.
An unchanged file is not touched at all: same bytes, same mtime, same ETag.
Every file gets a ``.gz`` sibling for static gzip serving.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from feeder.errors import PublishError


def publish(output_dir: Path, files: Mapping[str, bytes]) -> tuple[list[Path], list[Path]]:
    """Write ``{relative name: bytes}`` under ``output_dir``; return (written, unchanged) paths."""
    remove_leftovers(output_dir)
    return write_files(output_dir, files)


def write_files(output_dir: Path, files: Mapping[str, bytes]) -> tuple[list[Path], list[Path]]:
    """``publish`` without looking for a killed publish's leftovers: for many calls in a row."""
    written: list[Path] = []
    unchanged: list[Path] = []
    for name, data in files.items():
        path = output_dir / name
        changed = write_if_changed(path, data)
        gz = path.with_name(path.name + ".gz")
        if changed or not _is_fresh(gz, path):
            write_if_changed(gz, gzip.compress(data, compresslevel=9, mtime=0))
        (written if changed else unchanged).append(path)
    return written, unchanged


LEFTOVER_AGE = 60.0  # seconds: a temporary file this old belongs to a publish that was killed


def remove_leftovers(output_dir: Path) -> None:
    """Delete temporary files left by a publish that was killed before its rename (never served: hidden)."""
    if not output_dir.is_dir():
        return
    cutoff = time.time() - LEFTOVER_AGE
    for leftover in output_dir.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _is_fresh(gz: Path, source: Path) -> bool:
    """A .gz sibling at least as new as its file (an interrupted publish can leave an older one)."""
    try:
        return gz.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that; True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as e:
        raise PublishError(f"{path}: cannot read the published file: {e.strerror or e}") from e
    try:
        _atomic_write(path, data)
    except OSError as e:
        raise PublishError(f"{path}: cannot write: {e.strerror or e}") from e
    return True


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(0o644)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
