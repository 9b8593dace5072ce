"""Serve the output folder over HTTP/1.1: GET and HEAD of published files, nothing else.

A small asyncio protocol rather than a framework: every response is a file
that is already on disk (and usually unchanged), so the work per request is a
header parse, one ``stat`` and a cached answer. Measured against nginx in
bench/serve.py. Here: the connections, their limits and timeouts, and the
answers; served_files.py finds and caches the files (never one outside the
output folder), request_head.py reads a request head (with llhttp) and what
it asks for. This module only cuts the byte stream at the blank line that
ends each head, so a head's size and time are limited before it is parsed
and a pipelined request waits, unparsed, while the client does not read.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from pathlib import Path

from feeder.request_head import HeadReader, accepts_gzip, not_modified
from feeder.served_files import FileTable, MaxAge

MAX_HEAD_BYTES = 16 * 1024
IDLE_TIMEOUT = 15.0
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024

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
        self._heads = HeadReader()
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
            head, self._buffer = self._buffer[: end + 4], self._buffer[end + 4 :]
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
        request = self._heads.read(head)
        if isinstance(request, int):
            self._error(request)
            return
        method, target, version, headers, keep_alive = request
        # HTTP/1.0 clients reuse a connection only when told it stays open
        connection = b"Connection: keep-alive\r\n" if keep_alive and version == "1.0" else b""
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
        allow = b"Allow: GET, HEAD\r\n" if status == 405 else b""
        self._send(status, allow, f"{status} {REASONS[status]}\n".encode(), head_only=False, close=True)

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
