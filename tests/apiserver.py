"""The control app (feeder.api) served for real by ApiServer on 127.0.0.1, in an asyncio loop on a background
thread, over a fake backend whose answers the tests set; and a small HTTP client for it."""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from feeder.api import ApiServer, create_app
from feeder.errors import UnknownSourceError

TIMEOUT = 10.0
TOKEN = "t" * 64


@dataclass
class FakeBackend:
    """Answers set by the test; ``asked`` holds every refresh asked for, by id, which the test moves along."""

    problem: str | None = None
    broken: bool = False
    asked: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics_body: bytes = b"# HELP feeder_entries Entries.\nfeeder_entries 3\n"

    def status(self) -> dict[str, Any]:
        return {"sources": {"seeds": {"polls": 2, "note": "中文"}}, "entries": 3}

    def sources(self) -> list[dict[str, Any]]:
        if self.broken:
            raise RuntimeError("the backend broke")
        return [{"name": "seeds", "kind": "seeds"}]

    def feeds(self) -> list[dict[str, Any]]:
        return [{"name": "rfi-cn", "entries": 3}]

    def health(self) -> str | None:
        return self.problem

    def refresh(self, names: Sequence[str] | None) -> dict[str, Any]:
        if names and "nope" in names:
            raise UnknownSourceError("unknown source(s): nope")
        ident = secrets.token_hex(4)
        self.asked[ident] = {"id": ident, "sources": list(names or ["seeds"]), "state": "queued", "report": None}
        return dict(self.asked[ident])

    def progress(self, ident: str) -> dict[str, Any] | None:
        asked = self.asked.get(ident)
        return dict(asked) if asked else None

    def metrics(self) -> tuple[bytes, str]:
        return self.metrics_body, "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Served:
    backend: FakeBackend
    port: int
    loop: asyncio.AbstractEventLoop

    def request(
        self,
        method: str,
        target: str,
        *,
        token: str | None = TOKEN,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return request(self.port, method, target, token=token, body=body, headers=headers)


def request(
    port: int,
    method: str,
    target: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request on a fresh connection; ``token`` goes in ``Authorization: Bearer``."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request(method, target, body=body, headers=sent)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


@contextmanager
def serving(backend: FakeBackend | None = None) -> Iterator[Served]:
    """The app over ``backend`` on a free port until the block ends."""
    backend = backend or FakeBackend()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-api-loop", daemon=True)
    thread.start()
    server = ApiServer(create_app(backend, token=TOKEN, metrics=backend.metrics), "127.0.0.1", 0)
    try:
        _, port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(TIMEOUT)
        yield Served(backend, port, loop)
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()
