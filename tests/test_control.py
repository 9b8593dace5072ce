"""feeder.control: the control token file, and the client that `feeder refresh` and `feeder status` use, against
the real app (tests/apiserver.py) and against nothing at all; feeder.locks.taken, which tells a daemon runs."""

from __future__ import annotations

import logging
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.config import Config, parse_config
from feeder.control import Client, connect, load_token
from feeder.errors import ConfigError, ControlError
from feeder.locks import DAEMON_LOCK, held, taken
from tests.apiserver import TOKEN, FakeBackend, Served, serving
from tests.builders import config_text, free_port

# The token file -------------------------------------------------------------------------------------------------------


def test_a_missing_token_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "control.token"
    token = load_token(path)
    assert len(token) == 64
    int(token, 16)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == token + "\n"
    assert load_token(path) == token  # a restart keeps it: open browser tabs and scripts go on working
    assert [p.name for p in path.parent.iterdir()] == ["control.token"]  # no temporary file left


def test_an_empty_token_file_gets_a_token(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    path.write_text("\n", encoding="utf-8")
    path.chmod(0o600)
    assert len(load_token(path)) == 64


def test_a_token_file_others_can_read_is_used_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "control.token"
    path.write_text("my-own-token\n", encoding="utf-8")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert load_token(path) == "my-own-token"
    assert "readable by others than its owner" in caplog.text


def test_a_token_that_cannot_be_read_or_written_is_a_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "control.token"
    folder.mkdir()
    with pytest.raises(ConfigError, match="cannot read the control token"):
        load_token(folder)
    with pytest.raises(ConfigError, match="cannot write the control token"):
        load_token(Path("/proc/self/no-such-folder/control.token"))  # not there, and no folder can be made there


# Is a daemon running? -------------------------------------------------------------------------------------------------


def test_taken_tells_a_held_lock(tmp_path: Path) -> None:
    path = tmp_path / DAEMON_LOCK
    assert not taken(path)  # no file: nobody ever held it
    with held(path, wait=False, what="a test"):
        assert taken(path)
    assert not taken(path)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    port = free_port()
    text = config_text() + f"control: {{port: {port}}}\n"
    (tmp_path / "seeds").mkdir()
    return parse_config(text, tmp_path / "config.yaml")


def test_no_daemon_without_its_lock_held(config: Config) -> None:
    assert connect(config) is None
    config.state_dir.mkdir()
    (config.state_dir / DAEMON_LOCK).touch()
    assert connect(config) is None


def test_a_daemon_that_holds_its_lock_but_does_not_answer(config: Config) -> None:
    with held(config.state_dir / DAEMON_LOCK, wait=False, what="a test"):
        with pytest.raises(ControlError, match=r"no token yet|does not answer"):
            connect(config, wait=0.3)  # no token written yet
        load_token(config.token_file)
        with pytest.raises(ControlError, match=rf"control API on 127\.0\.0\.1:{config.control.port} does not answer"):
            connect(config, wait=0.3)


def test_a_daemon_that_stops_while_starting_means_no_daemon(config: Config) -> None:
    lock = config.state_dir / DAEMON_LOCK
    released = threading.Event()
    ready = threading.Event()

    def starting_then_gone() -> None:
        with held(lock, wait=False, what="a test"):
            ready.set()
            released.wait(5)

    thread = threading.Thread(target=starting_then_gone)
    thread.start()
    assert ready.wait(5)
    threading.Timer(0.3, released.set).start()
    assert connect(config, wait=5) is None
    thread.join(5)


def test_an_unreadable_token_is_a_control_error(config: Config) -> None:
    config.token_file.mkdir(parents=True)
    with held(config.state_dir / DAEMON_LOCK, wait=False, what="a test"), pytest.raises(ControlError, match="token"):
        connect(config, wait=0.3)


# The client against the app -------------------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[Served]:
    with serving() as running:
        yield running


def client_of(served: Served, token: str = TOKEN, timeout: float = 5.0) -> Client:
    return Client("127.0.0.1", served.port, token, Path("/state/control.token"), timeout)


def test_connect_finds_the_daemon_on_the_control_port(served: Served, tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    config = parse_config(config_text() + f"control: {{host: 0.0.0.0, port: {served.port}}}\n", tmp_path / "c.yaml")
    config.token_file.parent.mkdir()
    config.token_file.write_text(TOKEN + "\n", encoding="utf-8")
    with held(config.state_dir / DAEMON_LOCK, wait=False, what="a test"):
        client = connect(config)
    assert client is not None
    assert (client.host, client.port, client.url) == ("127.0.0.1", served.port, f"http://127.0.0.1:{served.port}/")
    assert client.status() == served.backend.status()


def test_refresh_follows_the_request_until_done(served: Served) -> None:
    client = client_of(served)

    def finish() -> None:
        for asked in served.backend.asked.values():
            asked.update(state="done", report={"sources": [], "written": []})

    threading.Timer(0.3, finish).start()
    assert client.refresh(["seeds"], timeout=10) == {"sources": [], "written": []}
    [asked] = served.backend.asked.values()
    assert asked["sources"] == ["seeds"]


def test_a_failed_refresh_is_a_control_error(served: Served) -> None:
    def fail() -> None:
        for asked in served.backend.asked.values():
            asked.update(state="failed", error="cannot write public/rfi-cn.atom")

    threading.Timer(0.2, fail).start()
    with pytest.raises(ControlError, match=r"the daemon's refresh failed: cannot write public/rfi-cn\.atom"):
        client_of(served).refresh([], timeout=10)


def test_a_refresh_that_does_not_finish_in_time(served: Served) -> None:
    with pytest.raises(ControlError, match=r"did not finish the refresh in 0s \(request [0-9a-f]+\)"):
        client_of(served).refresh([], timeout=0.1)


def test_a_wrong_token_and_a_refused_request_are_control_errors(served: Served) -> None:
    with pytest.raises(ControlError, match=r"the daemon refused the token in /state/control\.token"):
        client_of(served, token="x" * 64).status()
    with pytest.raises(ControlError, match=r"the daemon refused the request: unknown source\(s\): nope"):
        client_of(served).refresh(["nope"], timeout=5)
    with pytest.raises(ControlError, match=r"refused the request: Method Not Allowed"):
        client_of(served).call("DELETE", "/api/status")


def test_an_answer_that_is_not_json_is_a_control_error(served: Served) -> None:
    with pytest.raises(ControlError, match=r"/static/status\.css: the daemon's answer is not readable \(HTTP 200\)"):
        client_of(served).call("GET", "/static/status.css")


def test_a_daemon_gone_or_silent_is_a_control_error() -> None:
    with serving(FakeBackend()) as gone:
        client = client_of(gone)
    with pytest.raises(ControlError, match=r"cannot reach the daemon at http://127\.0\.0\.1:"):
        client.status()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        mute = Client("127.0.0.1", silent.getsockname()[1], TOKEN, Path("t"), timeout=0.2)
        assert mute.listening()
        with pytest.raises(ControlError, match="cannot reach the daemon"):
            mute.status()
    assert not mute.listening()
    assert Client("::1", 1, TOKEN, Path("t")).url == "http://[::1]:1/"
