"""The control socket: how ``feeder refresh`` and ``feeder status`` reach a running daemon.

A Unix socket in the state folder (mode 0600), never a TCP port, plus a token
file only the service user can read; the token is compared in constant time.
One JSON line in, one JSON line out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from feeder.errors import FeederError

log = logging.getLogger(__name__)

SOCKET_FILE = "control.sock"
TOKEN_FILE = "control.token"  # noqa: S105 - a file name, not a secret
MAX_REQUEST_BYTES = 64 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(FeederError):
    """The daemon could not be reached properly, or refused or failed the request."""

    exit_code = 9


def create_token(state_dir: Path) -> str:
    """A new random token in state_dir/control.token, readable by this user only."""
    path = state_dir / TOKEN_FILE
    token = secrets.token_hex(32)
    temporary = path.with_name(f".{TOKEN_FILE}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    temporary.replace(path)
    return token


class ControlServer:
    """Accepts authenticated requests on the Unix socket and hands them to ``handler``."""

    def __init__(self, state_dir: Path, handler: Handler) -> None:
        self.state_dir = state_dir
        self.path = state_dir / SOCKET_FILE
        self._handler = handler
        self._token = ""
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._token = create_token(self.state_dir)
        self.path.unlink(missing_ok=True)  # a stale socket from a killed daemon; the daemon lock is ours
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES)
        finally:
            os.umask(old_umask)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            request = json.loads(line)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError):
            reply: dict[str, Any] = {"error": "malformed request"}
        else:
            reply = await self._answer(request)
        with contextlib.suppress(ConnectionError):
            writer.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
            writer.close()

    async def _answer(self, request: object) -> dict[str, Any]:
        if not isinstance(request, dict) or not hmac.compare_digest(
            str(request.get("token", "")).encode(), self._token.encode()
        ):
            return {"error": "unauthorized"}
        try:
            return await self._handler(request)
        except Exception as e:
            log.exception("control request %r failed", request.get("command"))
            return {"error": f"internal error: {type(e).__name__}: {e}"}


def call(state_dir: Path, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send a request to the daemon of this state folder; None when no daemon is listening."""
    path = state_dir / SOCKET_FILE
    try:
        token = (state_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ControlError(f"{state_dir / TOKEN_FILE}: cannot read the control token: {e.strerror}") from e
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError as e:
            raise ControlError(f"{path}: cannot reach the daemon: {e.strerror or e}") from e
        sock.sendall(json.dumps({**request, "token": token}).encode() + b"\n")
        reply = _read_line(sock, path)
    if "error" in reply:
        raise ControlError(f"the daemon refused the request: {reply['error']}")
    return reply


def _read_line(sock: socket.socket, path: Path) -> dict[str, Any]:
    chunks: list[bytes] = []
    try:
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError as e:
        raise ControlError(f"{path}: the daemon did not answer in time") from e
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError as e:
        raise ControlError(f"{path}: the daemon's answer is not readable") from e
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: the daemon's answer is not readable")
    return reply
