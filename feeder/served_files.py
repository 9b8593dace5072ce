"""The output folder's files as the server sends them: which file a request target names (never one outside
the folder), and each file's bytes and headers, read again only when the file changes.

The path is decoded once, any ``..``, ``.``, empty or hidden segment, backslash or NUL is refused, and the
real path (symlinks resolved) must stay inside the folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json",
    ".html": "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

MaxAge = Callable[[str], int]
"""Seconds a client may cache a file, given its path relative to the output folder."""


@dataclass(frozen=True, slots=True)
class Representation:
    """One file's bytes as sent, with the validators computed once per version of the file."""

    stamp: tuple[int, int, int, int]
    body: bytes
    etag: str
    last_modified: int
    headers: bytes
    validators: bytes = b""
    """The headers a 304 repeats: ETag, Last-Modified, Cache-Control, Vary."""


@dataclass(frozen=True, slots=True)
class Resource:
    plain: Representation
    gzip: Representation | None


class FileTable:
    """Maps request paths to files in the output folder, re-reading a file only when its stat changes."""

    def __init__(self, root: Path, max_age: MaxAge) -> None:
        self.root = root.resolve()
        self._max_age = max_age
        self._cache: dict[str, tuple[Path, Representation]] = {}

    def forget(self) -> None:
        """Drop every cached file, so the next request reads it and its headers again."""
        self._cache.clear()

    def lookup(self, target: str) -> Resource | None:
        relative = safe_relative_path(target)
        if relative is None:
            return None
        plain = self._representation(relative, relative, encoding=None)
        if plain is None:
            return None
        gzip = self._representation(relative + ".gz", relative, encoding="gzip")
        if gzip is not None and gzip.stamp[0] < plain.stamp[0]:
            gzip = None  # older than the file it should compress: a publish did not finish
        return Resource(plain, gzip)

    def _representation(self, relative: str, served_as: str, encoding: str | None) -> Representation | None:
        cached = self._cache.get(relative)
        path = cached[0] if cached else self.root / relative
        try:
            st = path.stat()
        except OSError:
            self._cache.pop(relative, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        if cached and cached[1].stamp == stamp:
            return cached[1]
        loaded = self._load(path, stamp, served_as, encoding)
        if loaded is None:
            self._cache.pop(relative, None)
        else:
            self._cache[relative] = (path, loaded)
        return loaded

    def _load(
        self, path: Path, stamp: tuple[int, int, int, int], served_as: str, encoding: str | None
    ) -> Representation | None:
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.root) or not real.is_file():
            return None
        try:
            body = real.read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(body).hexdigest()[:32]
        etag = f'"{digest}-gz"' if encoding else f'"{digest}"'
        last_modified = stamp[0] // 1_000_000_000
        validators = [
            f"ETag: {etag}",
            f"Last-Modified: {formatdate(last_modified, usegmt=True)}",
            f"Cache-Control: max-age={self._max_age(served_as)}",
            "Vary: Accept-Encoding",
        ]
        lines = [f"Content-Type: {content_type(served_as)}", *validators]
        if encoding:
            lines.append(f"Content-Encoding: {encoding}")
        return Representation(stamp, body, etag, last_modified, _header_block(lines), _header_block(validators))


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")


def safe_relative_path(target: str) -> str | None:
    """The file a request target names, relative to the output folder; None if it could leave it."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\\" in decoded or "\x00" in decoded:
        return None
    if decoded.endswith("/"):
        decoded += "index.html"
    segments = decoded[1:].split("/")
    if any(not s or s.startswith(".") for s in segments):
        return None
    return "/".join(segments)


def _header_block(lines: list[str]) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("latin-1")
