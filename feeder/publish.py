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
    renamed_in: set[Path] = set()
    for name, data in files.items():
        path = output_dir / name
        changed = write_if_changed(path, data, sync_folder=False)
        gz = path.with_name(path.name + ".gz")
        if (changed or not _is_fresh(gz, path)) and write_if_changed(
            gz,
            gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0),
            sync_folder=False,
            mtime_ns=path.stat().st_mtime_ns,  # the copy of a version carries that version's time
        ):
            renamed_in.add(gz.parent)
        (written if changed else unchanged).append(path)
    for folder in renamed_in | {path.parent for path in written}:  # the renames made durable, once per folder
        try:
            _sync_folder(folder)
        except OSError as e:
            raise PublishError(f"{folder}: cannot sync the folder: {e.strerror or e}") from e
    return written, unchanged


GZIP_LEVEL = 6
"""zlib's default: within 1% of level 9's size on feeds, in three quarters of its time."""


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


def write_if_changed(path: Path, data: bytes, *, sync_folder: bool = True, mtime_ns: int | None = None) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that; True if written.

    ``sync_folder=False`` leaves making the rename durable (an fsync of the folder) to the caller. ``mtime_ns``
    dates the new file; by default it is dated now, but never in the same second as the version it replaces:
    Last-Modified has whole seconds, and a reader asking If-Modified-Since with the old version's time must hear
    of the new one."""
    previous: int | None = None
    try:
        previous = path.stat().st_mtime_ns
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as e:
        raise PublishError(f"{path}: cannot read the published file: {e.strerror or e}") from e
    try:
        _atomic_write(path, data, mtime_ns if mtime_ns is not None else _after_second_of(previous))
        if sync_folder:
            _sync_folder(path.parent)
    except OSError as e:
        raise PublishError(f"{path}: cannot write: {e.strerror or e}") from e
    return True


def _after_second_of(previous_ns: int | None) -> int | None:
    """A time for a new version: None (now) unless now is still within the second the last version was written
    in, then the start of the next second."""
    if previous_ns is None:
        return None
    second = previous_ns // 1_000_000_000
    return None if time.time_ns() // 1_000_000_000 > second else (second + 1) * 1_000_000_000


def _atomic_write(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(0o644)
        if mtime_ns is not None:
            os.utime(temporary, ns=(mtime_ns, mtime_ns))
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
