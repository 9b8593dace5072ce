"""A seeds folder: list its article files with their stat, and read one.

Filesystem only: no parsing here. Files are ``*.txt`` directly in the folder
(hidden files and sub-folders are ignored). A folder is listed in batches, in
the order the filesystem gives, so a folder of any size is polled without
holding its whole listing: only ``scan`` (for ``feeder check``) sorts it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from feeder.errors import ParseError, SourceError
from feeder.models import SeedFile

MAX_SEED_BYTES = 16 * 1024 * 1024
BATCH = 1000

Listed = tuple[str, int, int]
"""A seed file as listed: (file name, size, mtime in ns). Plain tuples: a large folder lists fast."""


def listing(folder: Path, batch: int = BATCH) -> Iterator[list[Listed]]:
    """The folder's seed files in batches of ``batch``; SourceError if the folder cannot be listed."""
    found: list[Listed] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".txt") and not name.startswith("."):  # is_seed_name, inlined: 100k calls
                    listed = _listed(entry)
                    if listed is not None:
                        found.append(listed)
                        if len(found) == batch:
                            yield found
                            found = []
    except FileNotFoundError as e:
        raise SourceError(f"{folder}: seeds folder does not exist") from e
    except NotADirectoryError as e:
        raise SourceError(f"{folder}: seeds path is not a folder") from e
    except OSError as e:
        raise SourceError(f"{folder}: cannot list the seeds folder: {e.strerror or e}") from e
    if found:
        yield found


def scan(folder: Path) -> list[SeedFile]:
    """Every seed file in ``folder``, sorted by name; SourceError if the folder cannot be listed."""
    files = [seed_file(folder, listed) for batch in listing(folder) for listed in batch]
    return sorted(files, key=lambda f: f.path.name)


def seed_file(folder: Path, listed: Listed) -> SeedFile:
    name, size, mtime_ns = listed
    return SeedFile(path=folder / name, size=size, mtime_ns=mtime_ns)


def is_seed_name(name: str) -> bool:
    return name.endswith(".txt") and not name.startswith(".")


def is_seed(folder: Path, name: str) -> bool:
    """Whether ``name`` is (still) a seed file in ``folder``."""
    return is_seed_name(name) and (folder / name).is_file()


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


def _listed(entry: os.DirEntry[str]) -> Listed | None:
    try:
        if not entry.is_file():
            return None
        stat = entry.stat()
    except OSError:
        return None  # vanished between listing and stat: the next poll sees the folder as it is then
    return entry.name, stat.st_size, stat.st_mtime_ns
