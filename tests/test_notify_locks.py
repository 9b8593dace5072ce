"""feeder.notify against a real AF_UNIX datagram socket, and feeder.locks against a second holder."""

from __future__ import annotations

import os
import platform
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.errors import BusyError, FeederError
from feeder.locks import held
from feeder.memory import release_free_memory
from feeder.notify import notify, watchdog_period

TIMEOUT = 3.0


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in tmp_path standing in for systemd's, named by NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(TIMEOUT)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def test_notify_sends_the_exact_datagram(listener: socket.socket) -> None:
    assert notify("READY=1", "STATUS=serving public/ on http://127.0.0.1:8080/", "MAINPID=42") is True
    assert listener.recv(4096) == b"READY=1\nSTATUS=serving public/ on http://127.0.0.1:8080/\nMAINPID=42"


def test_notify_sends_one_datagram_per_call_in_utf8(listener: socket.socket) -> None:
    assert notify("WATCHDOG=1") is True
    assert notify("STATUS=正在刷新 rfi-cn") is True
    assert listener.recv(4096) == b"WATCHDOG=1"
    assert listener.recv(4096) == "STATUS=正在刷新 rfi-cn".encode()


def test_notify_without_fields_sends_nothing(listener: socket.socket) -> None:
    assert notify() is False
    listener.settimeout(0.05)
    with pytest.raises(TimeoutError):
        listener.recv(4096)


def test_notify_without_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert notify("READY=1") is False


def test_notify_to_a_missing_socket_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert notify("READY=1") is False


def test_notify_to_the_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"feeder-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(TIMEOUT)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1", "STATUS=abstract") is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=abstract"
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)  # closed now: nobody bound to it
    assert notify("READY=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("20000000", None, 10.0),
        ("20000000", "self", 10.0),
        ("3000000", "", 1.5),
        ("1", None, 0.0000005),
        ("20000000", "1", None),  # meant for another process
        ("0", None, None),
        ("", None, None),
        (None, None, None),
        ("abc", None, None),
        ("-5", None, None),
        ("1.5", None, None),
    ],
)
def test_watchdog_period(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert watchdog_period() == expected


# --- locks -----------------------------------------------------------------------------------------------------------

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_holder_in_this_process_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "state" / "daemon.lock"
    refused = pytest.raises(BusyError, match=r"daemon\.lock: a feeder daemon is already running for this config")
    with held(lock, wait=False, what="a feeder daemon"), refused, held(lock, wait=False, what="a feeder daemon"):
        pytest.fail("two holders of one lock")
    with held(lock, wait=False, what="a feeder daemon"):
        pass  # free again after release


def test_the_lock_file_is_created_private_with_its_folder(tmp_path: Path) -> None:
    lock = tmp_path / "new" / "state" / "refresh.lock"
    with held(lock, wait=False, what="a refresh"):
        assert stat.S_IMODE(lock.stat().st_mode) & 0o077 == 0
    assert lock.exists()  # the file stays; only the lock goes


def test_busy_error_is_a_feeder_error_with_its_exit_code(tmp_path: Path) -> None:
    lock = tmp_path / "daemon.lock"
    with held(lock, wait=False, what="x"), pytest.raises(FeederError) as caught, held(lock, wait=False, what="x"):
        pass
    assert isinstance(caught.value, BusyError)
    assert caught.value.exit_code == 7


def test_an_exception_inside_releases_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "refresh.lock"
    with pytest.raises(RuntimeError), held(lock, wait=False, what="a refresh"):
        raise RuntimeError("the refresh failed")
    with held(lock, wait=False, what="a refresh"):
        pass


def test_another_process_holding_the_lock_makes_it_busy(tmp_path: Path) -> None:
    lock = tmp_path / "daemon.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(BusyError), held(lock, wait=False, what="a feeder daemon"):
            pass
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits, and the kernel drops its lock
        holder.wait(TIMEOUT)
        assert holder.stdout is not None
        holder.stdout.close()
    with held(lock, wait=False, what="a feeder daemon"):
        pass


def test_wait_true_blocks_until_the_holder_releases(tmp_path: Path) -> None:
    lock = tmp_path / "refresh.lock"
    released_at: list[float] = []
    acquired = threading.Event()

    def first_holder() -> None:
        with held(lock, wait=False, what="a refresh"):
            acquired.set()
            time.sleep(0.3)
            released_at.append(time.monotonic())

    thread = threading.Thread(target=first_holder)
    thread.start()
    try:
        assert acquired.wait(TIMEOUT)
        with held(lock, wait=True, what="a refresh"):
            got_at = time.monotonic()
    finally:
        thread.join(TIMEOUT)
    assert released_at
    assert got_at >= released_at[0]


def test_freed_memory_can_be_returned_to_the_system_on_glibc() -> None:
    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")
