"""feeder.api: the control app served for real by uvicorn (tests/apiserver.py) over a fake backend: the token, the
errors as JSON, the body cap, the page and its static files under a strict Content-Security-Policy, the refresh
routes, /healthz and /metrics; and that serving leaves the process's signal handlers alone.

The real daemon behind the same routes is driven in tests/test_api_daemon.py.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

from feeder.api import CSP, MAX_BODY_BYTES, ApiServer, create_app
from feeder.errors import ListenError
from tests.apiserver import TOKEN, FakeBackend, Served, request, serving

API_GETS = ["/api/status", "/api/sources", "/api/feeds", "/api/refresh/abc"]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving() as running:
        yield running


# The token ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", API_GETS)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer \xe9t\xe9"],
)
def test_the_api_refuses_a_missing_or_wrong_token(served: Served, target: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = served.request("GET", target, token=None, headers=headers)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json() == {"error": "this needs the control token: Authorization: Bearer TOKEN"}


def test_the_token_is_checked_before_the_route_and_the_method(served: Served) -> None:
    for method, target in [("GET", "/api/nothing"), ("DELETE", "/api/status"), ("POST", "/api/refresh/nope")]:
        assert served.request(method, target, token=None).status == 401, (method, target)
    assert served.backend.asked == {} or all(a["sources"] != ["nope"] for a in served.backend.asked.values())


def test_the_right_token_in_any_case_of_the_scheme(served: Served) -> None:
    assert served.request("GET", "/api/status", token=None, headers={"Authorization": f"bearer  {TOKEN}"}).status == 200
    reply = served.request("GET", "/api/status")
    assert (reply.status, reply.json()) == (200, {"sources": {"seeds": {"polls": 2, "note": "中文"}}, "entries": 3})
    assert reply.headers["content-type"] == "application/json"
    assert served.request("GET", "/api/sources").json() == {"sources": [{"name": "seeds", "kind": "seeds"}]}
    assert served.request("GET", "/api/feeds").json() == {"feeds": [{"name": "rfi-cn", "entries": 3}]}


@pytest.mark.parametrize("target", ["/", "/healthz", "/metrics", "/static/status.js", "/static/status.css"])
def test_the_page_health_and_metrics_need_no_token(served: Served, target: str) -> None:
    assert served.request("GET", target, token=None).status == 200


# Errors ---------------------------------------------------------------------------------------------------------------


def test_unknown_paths_and_sources_are_404_json(served: Served) -> None:
    for method, target, message in [
        ("GET", "/api/nothing", "Not Found"),
        ("GET", "/nothing", "Not Found"),
        ("GET", "/static/missing.js", "Not Found"),
        ("POST", "/api/refresh/nope", "unknown source(s): nope"),
        ("GET", "/api/refresh/0123456789abcdef", "no such refresh request (unknown, or long finished)"),
    ]:
        reply = served.request(method, target)
        assert (reply.status, reply.json()) == (404, {"error": message}), target
        assert reply.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "target", "allowed"),
    [
        ("DELETE", "/api/status", "GET"),
        ("POST", "/api/sources", "GET"),
        ("PUT", "/api/feeds", "GET"),
        ("GET", "/api/refresh", "POST"),
        ("POST", "/healthz", "GET"),
        ("POST", "/", "GET"),
    ],
)
def test_a_wrong_method_is_405_json_with_allow(served: Served, method: str, target: str, allowed: str) -> None:
    reply = served.request(method, target)
    assert (reply.status, reply.json()) == (405, {"error": "Method Not Allowed"})
    assert allowed in reply.headers["allow"]


def test_a_body_over_the_limit_is_413(served: Served) -> None:
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    reply = served.request("POST", "/api/refresh", body=big, headers={"Content-Type": "application/json"})
    assert (reply.status, reply.json()) == (413, {"error": f"the request body is over {MAX_BODY_BYTES} bytes"})
    assert served.request("GET", "/api/status", body=big).status == 413  # whatever the route


def test_a_chunked_body_over_the_limit_is_413(served: Served) -> None:
    chunk = b" " * 8192
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as connection:
        connection.sendall(
            f"POST /api/refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(10))
            + b"0\r\n\r\n"
        )
        answer = b""
        while data := connection.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert answer.endswith(f'{{"error":"the request body is over {MAX_BODY_BYTES} bytes"}}'.encode())


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"sources": "seeds"}', b'{"sources": [1]}', b"\xff"])
def test_a_refresh_body_that_is_not_a_list_of_names_is_400(served: Served, body: bytes) -> None:
    reply = served.request("POST", "/api/refresh", body=body)
    assert reply.status == 400
    assert reply.json() == {"error": 'the body must be empty or JSON: {"sources": ["NAME", ...]}'}


def test_a_failing_backend_is_a_500_json_and_the_app_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    with serving(FakeBackend(broken=True)) as running:
        reply = running.request("GET", "/api/sources")
        assert (reply.status, reply.json()) == (500, {"error": "internal error (see the daemon's log)"})
        deadline = time.monotonic() + 5  # uvicorn logs the traceback through logging, once the answer is sent
        while "RuntimeError: the backend broke" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "RuntimeError: the backend broke" in caplog.text
        assert running.request("GET", "/api/status").status == 200


# Security headers and the page ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/", "/api/status", "/api/nothing", "/healthz", "/static/status.js"])
def test_every_answer_carries_the_security_headers(served: Served, target: str) -> None:
    for token in (TOKEN, None):
        headers = served.request("GET", target, token=token).headers
        assert headers["content-security-policy"] == CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "server" not in headers


def test_the_csp_allows_only_the_pages_own_files() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe" not in CSP


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.styles: list[str | None] = []
        self.inline: list[str] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.inline += [name for name in names if name == "style" or name.startswith("on")]
        if tag == "script":
            self.scripts.append(names)
            self._in_script = True
        if tag == "link" and names.get("rel") == "stylesheet":
            self.styles.append(names.get("href"))
        if tag == "style":
            self.inline.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_the_page_has_no_inline_script_or_style_and_no_data(served: Served) -> None:
    reply = served.request("GET", "/", token=None)
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    page = _PageParser()
    page.feed(reply.body.decode())
    assert page.inline == []
    assert page.script_text == ""
    assert [script.get("src") for script in page.scripts] == [page.scripts[0]["src"]]
    assert re.fullmatch(r"static/status\.js\?v=[0-9a-f]{12}", page.scripts[0]["src"] or "")
    assert len(page.styles) == 1
    assert re.fullmatch(r"static/status\.css\?v=[0-9a-f]{12}", page.styles[0] or "")
    for forbidden in (TOKEN, "seeds", "rfi-cn", "中文"):
        assert forbidden not in reply.body.decode()
    script = served.request("GET", "/" + (page.scripts[0]["src"] or ""), token=None)
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert b"sessionStorage" in script.body
    assert b"innerHTML" not in script.body  # text goes in as text
    style = served.request("GET", "/" + (page.styles[0] or ""), token=None)
    assert style.headers["content-type"] == "text/css; charset=utf-8"


# Refreshes, health, metrics -------------------------------------------------------------------------------------------


def test_a_refresh_is_accepted_with_its_id_and_followed(served: Served) -> None:
    reply = served.request("POST", "/api/refresh/seeds")
    assert reply.status == 202
    asked = reply.json()
    assert (asked["state"], asked["sources"]) == ("queued", ["seeds"])
    assert reply.headers["location"] == f"/api/refresh/{asked['id']}"
    assert served.request("GET", reply.headers["location"]).json()["state"] == "queued"
    every = served.request("POST", "/api/refresh").json()
    assert every["sources"] == ["seeds"]  # the backend's default: all
    chosen = served.request("POST", "/api/refresh", body=b'{"sources": ["a", "b"]}').json()
    assert chosen["sources"] == ["a", "b"]
    assert served.request("POST", "/api/refresh", body=b'{"sources": []}').json()["sources"] == ["seeds"]
    assert served.request("POST", "/api/refresh", body=b'{"sources": ["nope"]}').status == 404


def test_waiting_for_a_refresh_answers_as_soon_as_it_is_done(served: Served) -> None:
    asked = served.request("POST", "/api/refresh/seeds").json()
    record = served.backend.asked[asked["id"]]
    threading.Timer(0.3, lambda: record.update(state="done", report={"sources": []})).start()
    started = time.monotonic()
    reply = served.request("GET", f"/api/refresh/{asked['id']}?wait=5")
    assert 0.25 < time.monotonic() - started < 2
    assert reply.json()["state"] == "done"
    still = served.request("POST", "/api/refresh/seeds").json()
    started = time.monotonic()
    assert served.request("GET", f"/api/refresh/{still['id']}?wait=0.2").json()["state"] == "queued"
    assert 0.15 < time.monotonic() - started < 2
    assert served.request("GET", f"/api/refresh/{still['id']}?wait=soon").status == 400


def test_healthz_is_200_while_healthy_and_503_with_the_reason() -> None:
    with serving() as running:
        assert (running.request("GET", "/healthz").json(), running.request("GET", "/healthz").status) == (
            {"status": "ok"},
            200,
        )
        running.backend.problem = "refresh of seeds failed: cannot write public/rfi-cn.atom"
        reply = running.request("GET", "/healthz", token=None)
        assert (reply.status, reply.json()) == (503, {"error": running.backend.problem})


def test_metrics_are_what_the_metrics_function_gives(served: Served) -> None:
    reply = served.request("GET", "/metrics", token=None)
    assert reply.status == 200
    assert reply.body == served.backend.metrics_body
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_head_of_the_page_has_no_body(served: Served) -> None:
    reply = served.request("HEAD", "/", token=None)
    assert (reply.status, reply.body) == (200, b"")


# Serving --------------------------------------------------------------------------------------------------------------


def test_serving_leaves_the_signal_handlers_alone() -> None:
    """uvicorn's own handlers would take SIGTERM and SIGINT from the daemon's loop (and re-raise them on exit).

    (asyncio.run itself handles SIGINT while it runs: that one is compared inside the loop.)
    """
    watched = (signal.SIGTERM, signal.SIGHUP)
    before = {signum: signal.getsignal(signum) for signum in watched}

    async def main() -> tuple[int, dict[signal.Signals, object]]:
        backend = FakeBackend()
        server = ApiServer(create_app(backend, token=TOKEN, metrics=backend.metrics), "127.0.0.1", 0)
        sigint = signal.getsignal(signal.SIGINT)
        _, port = await server.start()
        assert signal.getsignal(signal.SIGINT) == sigint
        during: dict[signal.Signals, object] = {signum: signal.getsignal(signum) for signum in watched}
        reply = await asyncio.to_thread(request, port, "GET", "/healthz")
        await server.stop()
        await server.stop()  # a second stop is harmless
        return reply.status, during

    status_code, during = asyncio.run(main())  # in the main thread, where uvicorn would install them
    assert status_code == 200
    assert during == before
    assert {signum: signal.getsignal(signum) for signum in watched} == before


def test_a_port_in_use_is_a_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        backend = FakeBackend()
        server = ApiServer(create_app(backend, token=TOKEN, metrics=backend.metrics), "127.0.0.1", port)
        with pytest.raises(ListenError, match=rf"control API: cannot listen on 127\.0\.0\.1:{port}: "):
            asyncio.run(server.start())
        asyncio.run(server.stop())  # never started: nothing to do
