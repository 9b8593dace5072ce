"""A seeds folder: list its article files with their stat, and read one.

Filesystem only: no parsing here. Files are ``*.txt`` directly in the folder
(hidden files and sub-folders are ignored), in name order.
"""

from __future__ import annotations

import os
from pathlib import Path

from feeder.errors import ParseError, SourceError
from feeder.models import SeedFile

MAX_SEED_BYTES = 16 * 1024 * 1024


def scan(folder: Path) -> list[SeedFile]:
    """Every seed file in ``folder``, sorted by name; SourceError if the folder cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            found = [_seed_file(entry) for entry in entries if _is_seed(entry)]
    except FileNotFoundError as e:
        raise SourceError(f"{folder}: seeds folder does not exist") from e
    except NotADirectoryError as e:
        raise SourceError(f"{folder}: seeds path is not a folder") from e
    except OSError as e:
        raise SourceError(f"{folder}: cannot list the seeds folder: {e.strerror or e}") from e
    return sorted((f for f in found if f is not None), key=lambda f: f.path.name)


def size_problem(seed: SeedFile) -> str | None:
    """Why a file is too large to be a seed, or None."""
    if seed.size > MAX_SEED_BYTES:
        return f"file is {seed.size} bytes, more than the {MAX_SEED_BYTES} a seed may have"
    return None


def read(seed: SeedFile) -> bytes:
    """The file's bytes; ParseError if it cannot be read (worth trying again on the next poll)."""
    try:
        return seed.path.read_bytes()
    except OSError as e:
        raise ParseError(f"cannot read file: {e.strerror or e}") from e


def _is_seed(entry: os.DirEntry[str]) -> bool:
    return entry.name.endswith(".txt") and not entry.name.startswith(".")


def _seed_file(entry: os.DirEntry[str]) -> SeedFile | None:
    try:
        if not entry.is_file():
            return None
        stat = entry.stat()
    except OSError:
        return None  # vanished between listing and stat: the next poll sees the folder as it is then
    return SeedFile(path=Path(entry.path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)
