"""The control token, and how ``feeder refresh`` and ``feeder status`` reach a running daemon's control API.

The daemon serves the API (feeder/api.py) on ``control.host:control.port``, loopback by default. Every /api/
request carries the token kept in ``control.token_file`` (default state_dir/control.token): created with mode
0600 when missing, reused when present, so a browser tab or a script keeps working across restarts. The client
here speaks HTTP with the standard library's http.client, and only to a daemon that runs: one holds the
config's daemon lock.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feeder.config import Config
from feeder.errors import ConfigError, ControlError
from feeder.locks import DAEMON_LOCK, taken

log = logging.getLogger(__name__)

START_WAIT = 30.0
"""How long a daemon that holds its lock but does not answer yet (it is starting) is waited for."""
WAIT = 10
"""Seconds each GET /api/refresh/ID?wait= may hold its answer until the refresh has finished."""
UNSPECIFIED = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - an address to connect to, not to bind


def load_token(path: Path) -> str:
    """The token in ``path``; a new random one, written there with mode 0600, when the file is missing or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        token, mode = "", 0
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the control token: {e.strerror or e}") from e
    if not token:
        return _create_token(path)
    if stat.S_IMODE(mode) & 0o077:
        log.warning("%s: the control token is readable by others than its owner (chmod 600 it)", path)
    return token


def _create_token(path: Path) -> str:
    token = secrets.token_hex(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        temporary.replace(path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the control token: {e.strerror or e}") from e
    return token


def connect(config: Config, wait: float = START_WAIT) -> Client | None:
    """A client of the daemon that runs for this config, once its API answers; None when no daemon runs."""
    lock = config.state_dir / DAEMON_LOCK
    deadline = time.monotonic() + wait
    host = UNSPECIFIED.get(config.control.host, config.control.host)
    while taken(lock):
        token = _read_token(config.token_file)
        client = Client(host, config.control.port, token, config.token_file) if token else None
        if client is not None and client.listening():
            return client
        if time.monotonic() > deadline:
            raise ControlError(
                f"a daemon runs for this config ({lock}), but its control API on {host}:{config.control.port} "
                f"does not answer"
            )
        time.sleep(0.1)
    return None


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""  # the daemon has not written it yet
    except OSError as e:
        raise ControlError(f"{path}: cannot read the control token: {e.strerror or e}") from e


@dataclass(frozen=True)
class Client:
    """The control API of one running daemon."""

    host: str
    port: int
    token: str
    token_file: Path
    timeout: float = 30.0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def listening(self) -> bool:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.connect()
        except OSError:
            return False
        finally:
            connection.close()
        return True

    def status(self) -> dict[str, Any]:
        """What ``feeder status --json`` prints."""
        return self.call("GET", "/api/status")

    def refresh(self, sources: Sequence[str], timeout: float) -> dict[str, Any]:
        """Ask for a refresh of these sources (all when none), wait for it; its report (RefreshReport.to_dict)."""
        asked = self.call("POST", "/api/refresh", {"sources": list(sources)} if sources else None)
        deadline = time.monotonic() + timeout
        while asked.get("state") in ("queued", "running"):
            if time.monotonic() > deadline:
                raise ControlError(f"the daemon did not finish the refresh in {timeout:.0f}s (request {asked['id']})")
            wait = min(WAIT, deadline - time.monotonic(), self.timeout / 2)
            asked = self.call("GET", f"/api/refresh/{asked['id']}?wait={max(wait, 0):.2f}")
        if asked.get("state") != "done" or not isinstance(asked.get("report"), dict):
            raise ControlError(f"the daemon's refresh failed: {asked.get('error') or asked}")
        report: dict[str, Any] = asked["report"]
        return report

    def call(self, method: str, target: str, body: object = None) -> dict[str, Any]:
        """One request with the token; the JSON object answered. ControlError for anything else."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(method, target, body=data, headers=headers)
            response = connection.getresponse()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException) as e:
            raise ControlError(f"cannot reach the daemon at {self.url}: {e or type(e).__name__}") from e
        finally:
            connection.close()
        return self._reply(target, status, payload)

    def _reply(self, target: str, status: int, payload: bytes) -> dict[str, Any]:
        try:
            reply = json.loads(payload)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise ControlError(f"{self.url}{target.lstrip('/')}: the daemon's answer is not readable (HTTP {status})")
        if status == 401:
            raise ControlError(f"the daemon refused the token in {self.token_file}")
        if status >= 400:
            raise ControlError(f"the daemon refused the request: {reply.get('error', f'HTTP {status}')}")
        return reply
