"""The control API and the status page over HTTP: a Starlette app, served by uvicorn in the daemon's own loop.

The only module that imports starlette and uvicorn (the page's template and files are status_page.py's, the
only jinja2 user). It routes, guards and encodes; what it answers comes from a Backend (feeder/answers.py in the
daemon) and from the ``metrics`` function it is given, so the metrics' producer can change without touching the
routes. Everything under /api/ needs ``Authorization: Bearer TOKEN`` (compared in constant time); /healthz,
/metrics, the page and its static files do not (the page carries no data: its script asks for the token and
fetches the API). Errors are ``{"error": "..."}``. uvicorn's own signal handling is off (the daemon's loop keeps
SIGTERM, SIGINT and SIGHUP) and its access log too; its other lines go through feeder's logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feeder.errors import ListenError, UnknownSourceError
from feeder.status_page import StaticFiles, render_page, static_files

log = logging.getLogger("feeder")

MAX_BODY_BYTES = 64 * 1024
MAX_HEAD_BYTES = 16 * 1024
MAX_CONNECTIONS = 64
KEEP_ALIVE_SECONDS = 5
MAX_WAIT = 30.0
"""The longest GET /api/refresh/ID?wait= holds its answer."""
WAIT_STEP = 0.02
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="feeder"'}

JsonObject = dict[str, Any]
Metrics = Callable[[], tuple[bytes, str]]
"""The /metrics body and its content type."""


class Backend(Protocol):
    """What the routes answer with (feeder.answers.Answers)."""

    def status(self) -> JsonObject: ...
    def sources(self) -> list[JsonObject]: ...
    def feeds(self) -> list[JsonObject]: ...
    def health(self) -> str | None: ...
    def refresh(self, names: Sequence[str] | None) -> JsonObject:
        """Queue a refresh; UnknownSourceError for a source the config lacks."""

    def progress(self, ident: str) -> JsonObject | None: ...


def create_app(backend: Backend, *, token: str, metrics: Metrics) -> ASGIApp:
    """The control app: the API (``backend``'s answers), /metrics (``metrics()``), the status page."""
    static = static_files()
    page = render_page(static)
    routes = _Routes(backend, metrics)
    app = Starlette(
        routes=[
            Route("/", lambda _: HTMLResponse(page), methods=["GET"]),
            Route("/static/{name}", lambda request: _static(static, request.path_params["name"]), methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
            Route("/api/status", lambda _: JSONResponse(backend.status()), methods=["GET"]),
            Route("/api/sources", lambda _: JSONResponse({"sources": backend.sources()}), methods=["GET"]),
            Route("/api/feeds", lambda _: JSONResponse({"feeds": backend.feeds()}), methods=["GET"]),
            Route("/api/refresh", routes.refresh_all, methods=["POST"]),
            Route("/api/refresh/{source}", routes.refresh_one, methods=["POST"]),
            Route("/api/refresh/{ident}", routes.progress, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    return _Guard(app, token)


class _Routes:
    def __init__(self, backend: Backend, metrics: Metrics) -> None:
        self._backend = backend
        self._metrics = metrics

    def healthz(self, _: Request) -> Response:
        problem = self._backend.health()
        return JSONResponse({"status": "ok"}) if problem is None else error(503, problem)

    def metrics(self, _: Request) -> Response:
        body, content_type = self._metrics()
        return Response(body, media_type=content_type)

    async def refresh_all(self, request: Request) -> Response:
        return self._asked(await _sources_in_body(request))

    async def refresh_one(self, request: Request) -> Response:
        return self._asked([request.path_params["source"]])

    def _asked(self, names: Sequence[str] | None) -> Response:
        try:
            asked = self._backend.refresh(names)
        except UnknownSourceError as e:
            return error(404, str(e))
        return JSONResponse(asked, status_code=202, headers={"Location": f"/api/refresh/{asked['id']}"})

    async def progress(self, request: Request) -> Response:
        """Where a refresh stands; with ``?wait=SECONDS`` (at most MAX_WAIT), once it has finished if that is sooner."""
        ident = request.path_params["ident"]
        try:
            wait = min(float(request.query_params.get("wait", "0")), MAX_WAIT)
        except ValueError:
            return error(400, "wait must be a number of seconds")
        deadline = asyncio.get_running_loop().time() + wait
        asked = self._backend.progress(ident)
        while asked and asked["state"] in ("queued", "running") and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(WAIT_STEP)
            asked = self._backend.progress(ident)
        return JSONResponse(asked) if asked else error(404, "no such refresh request (unknown, or long finished)")


async def _sources_in_body(request: Request) -> list[str] | None:
    """The sources a POST /api/refresh names in its optional JSON body ``{"sources": [...]}``; None for all."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    names = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise HTTPException(400, 'the body must be empty or JSON: {"sources": ["NAME", ...]}')
    return names or None


def error(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, dict(exc.headers or {}))


async def _internal_error(_: Request, exc: Exception) -> Response:
    return error(500, "internal error (see the daemon's log)")


class _Guard:
    """Around the app: security headers on every answer, the token for /api/, request bodies capped."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        send = _secured(send)
        refusal = self._refusal(scope["path"], Headers(scope=scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._app(scope, _capped(receive), send)

    def _refusal(self, path: str, headers: Headers) -> Response | None:
        if (path == "/api" or path.startswith("/api/")) and not self._authorized(headers.get("authorization", "")):
            return error(401, "this needs the control token: Authorization: Bearer TOKEN", _AUTHENTICATE)
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return error(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        return None

    def _authorized(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)


def _secured(send: Send) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {bytes(name).lower() for name, _ in headers}
            message["headers"] = headers + [(n, v) for n, v in _SECURITY_HEADERS if n not in present]
        await send(message)

    return secured


def _capped(receive: Receive) -> Receive:
    """Count a chunked body as it comes: over MAX_BODY_BYTES is a 413 (Content-Length is checked before)."""
    total = 0

    async def capped() -> Message:
        nonlocal total
        message = await receive()
        total += len(message.get("body", b""))
        if total > MAX_BODY_BYTES:
            raise HTTPException(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        return message

    return capped


def _static(files: StaticFiles, name: str) -> Response:
    if name not in files:
        return error(404, "Not Found")
    body, content_type = files[name]
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-cache"})


# Serving -----------------------------------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon's loop keeps SIGTERM, SIGINT and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """An ASGI app on host:port, served by uvicorn as a task of the running loop."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.host, self.port = host, port
        config = uvicorn.Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        """Listen (ListenError if it cannot) and serve in the background; the address listened on."""
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            listener = socket.create_server((self.host, self.port), family=family)
        except OSError as e:
            raise ListenError(f"control API: cannot listen on {self.host}:{self.port}: {e.strerror or e}") from e
        address = listener.getsockname()
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]), name="control API")
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # raises what stopped it
            raise ListenError(f"control API: uvicorn stopped at start on {self.host}:{self.port}")
        return address[0], address[1]

    async def stop(self) -> None:
        """Stop taking connections, let the current answers finish (at most a few seconds) and close."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
