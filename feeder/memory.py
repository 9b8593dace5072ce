"""Giving freed memory back to the system after each refresh of the daemon.

A refresh allocates and frees megabytes (parsed articles, rendered feeds, gzip
buffers) on the refresher's thread. glibc keeps freed heap memory for reuse, and
over thousands of refreshes its fragments made the daemon's resident size creep
up in steps while the memory Python held stayed flat (bench/daemon.py).
``malloc_trim`` hands the free pages back. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
