"""Serve the output folder over HTTP/1.1: GET and HEAD of published files, nothing else.

A small asyncio protocol rather than a framework: every response is a file
that is already on disk (and usually unchanged), so the work per request is a
header parse, one ``stat`` and a cached answer. Measured against nginx in
bench/serve.py. Only files inside the output folder are ever read: the path
is decoded once, any ``..``, ``.``, empty or hidden segment, backslash or NUL
is refused, and the real path (symlinks resolved) must stay inside the folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

MAX_HEAD_BYTES = 16 * 1024
MAX_TARGET_BYTES = 4 * 1024
MAX_HEADERS = 100
IDLE_TIMEOUT = 15.0
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json",
    ".html": "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
REASONS = {
    200: "OK",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
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


class _Clock:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("latin-1")
        return self._value


class HttpProtocol(asyncio.Protocol):
    """One client connection: keep-alive, pipelining with back-pressure, timeouts, strict request heads.

    A request head must arrive whole within HEAD_TIMEOUT of its first byte (a
    trickling client gets 408); a connection with nothing pending is closed
    after IDLE_TIMEOUT. While the client does not read what it asked for, no
    further pipelined request is answered and the socket is not read.
    """

    def __init__(self, server: FileServer) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head_timer_running = True  # the first head is timed from the connection's start
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)
        if len(self._server.connections) > MAX_CONNECTIONS:
            self._error(503)
            return
        self._arm(HEAD_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._timer:
            self._timer.cancel()

    def pause_writing(self) -> None:
        self._paused = True
        if self._transport:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport and not self._transport.is_closing():
            self._transport.resume_reading()
            self._process()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._process()

    def _process(self) -> None:
        while not self._paused and self._open():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            if end > MAX_HEAD_BYTES:
                self._error(431)
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            self._head_timer_running = False
            self._handle(head)
        if not self._open():
            return
        if len(self._buffer) > MAX_HEAD_BYTES:
            self._error(431)
        elif not self._buffer:
            self._arm(IDLE_TIMEOUT)
        elif not self._head_timer_running:
            self._head_timer_running = True
            self._arm(HEAD_TIMEOUT)

    def _open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport:
            self._transport.close()

    def _arm(self, seconds: float) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _timed_out(self) -> None:
        if not self._open():
            return
        if self._paused:
            self._arm(IDLE_TIMEOUT)  # the client is slow to read: that is the send timeout's business
        elif self._buffer:
            self._error(408)
        else:
            self.close()

    def _handle(self, head: bytes) -> None:
        request = _parse_head(head)
        if isinstance(request, int):
            self._error(request)
            return
        method, target, version, headers = request
        if method not in ("GET", "HEAD"):
            self._send(405, b"Allow: GET, HEAD\r\n", b"405 Method Not Allowed\n", head_only=False, close=True)
            return
        if headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers:
            self._error(413)
            return
        if version == "HTTP/1.1" and "host" not in headers:
            self._error(400)
            return
        keep_alive = _keep_alive(version, headers)
        # HTTP/1.0 clients reuse a connection only when told it stays open
        connection = b"Connection: keep-alive\r\n" if keep_alive and version == "HTTP/1.0" else b""
        resource = self._server.files.lookup(target)
        if resource is None:
            self._send(404, connection, b"404 Not Found\n", head_only=method == "HEAD", close=not keep_alive)
            return
        chosen = resource.gzip if resource.gzip and accepts_gzip(headers.get("accept-encoding", "")) else None
        representation = chosen or resource.plain
        if not_modified(representation, headers):
            self._send(304, representation.validators + connection, b"", head_only=True, close=not keep_alive)
        else:
            headers_out = representation.headers + connection
            self._send(200, headers_out, representation.body, head_only=method == "HEAD", close=not keep_alive)

    def _error(self, status: int) -> None:
        self._send(status, b"", f"{status} {REASONS[status]}\n".encode(), head_only=False, close=True)

    def _send(self, status: int, headers: bytes, body: bytes, *, head_only: bool, close: bool) -> None:
        assert self._transport is not None
        length = b"" if status == 304 else b"Content-Length: %d\r\n" % len(body)
        if status >= 400:
            headers += b"Content-Type: text/plain; charset=utf-8\r\n"
        connection = b"Connection: close\r\n" if close else b""
        self._transport.write(
            b"HTTP/1.1 %d %s\r\nServer: feeder\r\n%s%s%s%s\r\n"
            % (status, REASONS[status].encode(), self._server.clock.header(), headers, length, connection)
        )
        if body and not head_only:
            self._transport.write(body)
        if close:
            self._transport.close()


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]] | int:
    """Request line and headers, or the status code that refuses them."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return 400
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        return 505 if version.startswith("HTTP/") else 400
    if len(target) > MAX_TARGET_BYTES:
        return 414
    if len(lines) - 1 > MAX_HEADERS:
        return 431
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            return 400
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return method, target, version, headers


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether gzip is acceptable: its own q-value if listed, else that of '*', else no."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        weights[coding.strip().lower()] = _q_value(params)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


def _q_value(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def not_modified(representation: Representation, headers: dict[str, str]) -> bool:
    """If-None-Match (weak comparison) wins; otherwise If-Modified-Since as 'not modified since'."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or representation.etag in tags
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # asctime and RFC 850 dates are GMT by definition
    return moment.timestamp() >= representation.last_modified


def _header_block(lines: list[str]) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("latin-1")


class FileServer:
    """The HTTP side of feeder: owns the file table and the open connections."""

    def __init__(self, root: Path, max_age: MaxAge) -> None:
        self.files = FileTable(root, max_age)
        self.clock = _Clock()
        self.connections: set[HttpProtocol] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; return the address actually bound (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpProtocol(self), host, port, backlog=1024)
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            for connection in list(self.connections):
                connection.close()
            await self._server.wait_closed()
