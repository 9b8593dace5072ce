"""feeder.control: a real ControlServer on a Unix socket in tmp_path, in an asyncio loop on a background thread."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from feeder.control import SOCKET_FILE, TOKEN_FILE, ControlError, ControlServer, call

T = TypeVar("T")

TIMEOUT = 3.0


@dataclass
class Daemon:
    state: Path
    loop: asyncio.AbstractEventLoop
    server: ControlServer
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    @property
    def socket_path(self) -> Path:
        return self.state / SOCKET_FILE

    @property
    def token(self) -> str:
        return (self.state / TOKEN_FILE).read_text(encoding="utf-8").strip()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        command = request.get("command")
        if command == "fail":
            raise RuntimeError("the handler broke")
        if command == "refuse":
            return {"error": "unknown source(s): nope"}
        if command == "slow":
            await self.release.wait()
            self.finished.set()
            return {"late": True}
        return {"pong": command, "echo": request.get("payload")}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    state = tmp_path / "state"
    state.mkdir()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-control-loop", daemon=True)
    thread.start()
    try:
        holder: list[Daemon] = []

        async def handler(request: dict[str, Any]) -> dict[str, Any]:
            return await holder[0].handle(request)

        server = ControlServer(state, handler)
        running = Daemon(state, loop, server)
        holder.append(running)
        running.run(server.start())
        yield running

        async def stop() -> None:
            running.release.set()
            await server.stop()
            for _ in range(3):
                await asyncio.sleep(0)

        running.run(stop())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def exchange(path: Path, data: bytes) -> bytes:
    """Send raw bytes on the control socket; everything the server answers until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(str(path))
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_call_returns_the_handlers_reply(daemon: Daemon) -> None:
    reply = call(daemon.state, {"command": "ping", "payload": {"sources": ["rfi-cn"], "note": "中文"}}, TIMEOUT)
    assert reply == {"pong": "ping", "echo": {"sources": ["rfi-cn"], "note": "中文"}}
    assert len(daemon.requests) == 1
    assert daemon.requests[0]["token"] == daemon.token  # call() adds the token from the token file


def test_several_calls_in_a_row(daemon: Daemon) -> None:
    for n in range(5):
        assert call(daemon.state, {"command": "ping", "payload": n}, TIMEOUT) == {"pong": "ping", "echo": n}
    assert [r["payload"] for r in daemon.requests] == [0, 1, 2, 3, 4]


def test_token_file_and_socket_are_private(daemon: Daemon) -> None:
    token_mode = (daemon.state / TOKEN_FILE).stat().st_mode
    socket_mode = daemon.socket_path.stat().st_mode
    assert stat.S_ISREG(token_mode)
    assert stat.S_IMODE(token_mode) == 0o600
    assert stat.S_ISSOCK(socket_mode)
    assert stat.S_IMODE(socket_mode) == 0o600
    assert len(daemon.token) == 64
    int(daemon.token, 16)


def test_start_restores_the_umask_and_makes_a_new_token(daemon: Daemon, tmp_path: Path) -> None:
    other_state = tmp_path / "other"
    other_state.mkdir()
    previous = os.umask(0o022)
    try:
        server = ControlServer(other_state, daemon.handle)
        daemon.run(server.start())
        try:
            assert os.umask(0o022) == 0o022
            assert (other_state / TOKEN_FILE).read_text(encoding="utf-8").strip() != daemon.token
            assert call(other_state, {"command": "ping"}, TIMEOUT) == {"pong": "ping", "echo": None}
        finally:
            daemon.run(server.stop())
    finally:
        os.umask(previous)


@pytest.mark.parametrize(
    "request_line",
    [
        {"token": "0" * 64, "command": "ping"},
        {"token": "", "command": "ping"},
        {"command": "ping"},
        {"token": 12345, "command": "ping"},
        {"token": None, "command": "ping"},
        ["not", "an", "object"],
        "a string",
    ],
)
def test_a_wrong_token_is_unauthorized(daemon: Daemon, request_line: object) -> None:
    answer = exchange(daemon.socket_path, json.dumps(request_line).encode() + b"\n")
    assert json.loads(answer) == {"error": "unauthorized"}
    assert answer.endswith(b"\n")
    assert daemon.requests == []  # the handler never saw it


def test_the_right_token_sent_raw_reaches_the_handler(daemon: Daemon) -> None:
    answer = exchange(daemon.socket_path, json.dumps({"token": daemon.token, "command": "raw"}).encode() + b"\n")
    assert json.loads(answer) == {"pong": "raw", "echo": None}


def test_call_with_a_wrong_token_raises_control_error(daemon: Daemon) -> None:
    (daemon.state / TOKEN_FILE).write_text("f" * 64 + "\n", encoding="utf-8")
    with pytest.raises(ControlError, match="unauthorized"):
        call(daemon.state, {"command": "ping"}, TIMEOUT)
    assert daemon.requests == []


@pytest.mark.parametrize(
    "data",
    [b"not json\n", b"{\n", b"\n", b"\xff\xfe\n", b"{" + b" " * (70 * 1024) + b"}\n"],
    ids=["text", "truncated", "empty", "not-utf8", "over-64KiB"],
)
def test_malformed_requests_get_an_error_and_the_server_keeps_serving(daemon: Daemon, data: bytes) -> None:
    answer = exchange(daemon.socket_path, data)
    assert json.loads(answer) == {"error": "malformed request"}
    assert call(daemon.state, {"command": "after"}, TIMEOUT) == {"pong": "after", "echo": None}


def test_a_client_that_hangs_up_without_a_request_does_not_stop_the_server(daemon: Daemon) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(daemon.socket_path))
    assert call(daemon.state, {"command": "after"}, TIMEOUT) == {"pong": "after", "echo": None}


def test_an_error_reply_becomes_control_error(daemon: Daemon) -> None:
    with pytest.raises(ControlError, match=r"refused the request: unknown source\(s\): nope"):
        call(daemon.state, {"command": "refuse"}, TIMEOUT)


def test_a_failing_handler_gives_a_prompt_control_error_and_the_server_keeps_serving(daemon: Daemon) -> None:
    started = time.monotonic()
    with pytest.raises(ControlError, match="internal error: RuntimeError: the handler broke"):
        call(daemon.state, {"command": "fail"}, TIMEOUT)
    assert time.monotonic() - started < TIMEOUT / 2  # not a client-side timeout
    assert call(daemon.state, {"command": "after"}, TIMEOUT) == {"pong": "after", "echo": None}


def test_a_daemon_that_does_not_answer_in_time(daemon: Daemon) -> None:
    with pytest.raises(ControlError, match="did not answer in time"):
        call(daemon.state, {"command": "slow"}, 0.2)
    daemon.loop.call_soon_threadsafe(daemon.release.set)
    assert daemon.finished.wait(TIMEOUT)
    assert call(daemon.state, {"command": "after"}, TIMEOUT) == {"pong": "after", "echo": None}


def test_stop_removes_the_socket_and_call_then_finds_no_daemon(daemon: Daemon) -> None:
    assert daemon.socket_path.exists()
    daemon.run(daemon.server.stop())
    assert not daemon.socket_path.exists()
    assert call(daemon.state, {"command": "ping"}, TIMEOUT) is None


def test_no_daemon_without_a_token_file(tmp_path: Path) -> None:
    assert call(tmp_path, {"command": "ping"}, TIMEOUT) is None


def test_no_daemon_with_a_token_but_no_socket(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).write_text("a" * 64 + "\n", encoding="utf-8")
    assert call(tmp_path, {"command": "ping"}, TIMEOUT) is None


def test_no_daemon_behind_a_stale_socket_file(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).write_text("a" * 64 + "\n", encoding="utf-8")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(tmp_path / SOCKET_FILE))  # bound, never listening, then closed: the file stays
    assert stat.S_ISSOCK((tmp_path / SOCKET_FILE).stat().st_mode)
    assert call(tmp_path, {"command": "ping"}, TIMEOUT) is None


def test_a_live_socket_without_its_token_file_counts_as_no_daemon(daemon: Daemon) -> None:
    (daemon.state / TOKEN_FILE).unlink()
    assert call(daemon.state, {"command": "ping"}, TIMEOUT) is None
    assert daemon.requests == []


def test_an_unreadable_token_raises_control_error(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).mkdir()
    with pytest.raises(ControlError, match="cannot read the control token"):
        call(tmp_path, {"command": "ping"}, TIMEOUT)


def test_a_restarted_server_replaces_a_stale_socket(daemon: Daemon) -> None:
    daemon.run(daemon.server.stop())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(daemon.socket_path))
    daemon.run(daemon.server.start())
    assert call(daemon.state, {"command": "again"}, TIMEOUT) == {"pong": "again", "echo": None}
