"""Advisory file locks in the state folder: one daemon per config, one refresh at a time."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from feeder.errors import BusyError

DAEMON_LOCK = "daemon.lock"
"""In the state folder: held by ``feeder run`` while it runs."""


@contextmanager
def held(path: Path, *, wait: bool, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; if ``wait`` is false and it is taken, raise BusyError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as e:
            raise BusyError(f"{path}: {what} is already running for this config") from e
        yield
    finally:
        os.close(fd)


def taken(path: Path) -> bool:
    """Whether a process holds the lock on ``path`` now (a missing file is a lock nobody holds)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock this probe took
    return False
