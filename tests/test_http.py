"""feeder.http: headers, validators, redirects and status logic over httpx2.MockTransport; streaming, deadline,
caps and concurrency against real servers on 127.0.0.1. No request ever leaves the machine."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import pickle
import socket
import ssl
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec

import httpx2
import pytest

from feeder.errors import FetchError, PutOffError, RetryLater
from feeder.http import Fetcher, tls_context
from feeder.models import HostState, Validators
from feeder.politeness import FetchSettings

P = ParamSpec("P")
TEST_TIMEOUT = 8.0
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CANONICAL_HOST = "www.rfi.fr"  # the site the tests fetch from, routed to an origin
MOCK_ORIGIN = "http://127.0.0.1:9"  # never connected: MockTransport answers instead
UA = "feeder/test (+https://example.org/contact)"
MB = 1_000_000


def bounded(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test in its own event loop, failing it if it takes longer than TEST_TIMEOUT."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), TEST_TIMEOUT))

    return run


class Clock:
    """A pinned clock the tests move by hand."""

    def __init__(self) -> None:
        self.value = START

    def __call__(self) -> datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += timedelta(seconds=seconds)


def settings(origin: str = MOCK_ORIGIN, **overrides: Any) -> FetchSettings:
    return FetchSettings(
        user_agent=UA, hosts=frozenset({CANONICAL_HOST}), routes=((CANONICAL_HOST, origin),), **overrides
    )


# -- MockTransport harness


@dataclass
class Mock:
    """Answers requests with a function of the request, and remembers every request."""

    answer: Callable[[httpx2.Request], httpx2.Response]
    requests: list[httpx2.Request] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answer(request)

    def fetcher(self, hosts: dict[str, HostState], clock: Clock, **overrides: Any) -> Fetcher:
        return Fetcher(settings(**overrides), hosts, now=clock, transport=httpx2.MockTransport(self.handle))


def always(status: int, content: bytes = b"", /, **headers: str) -> Mock:
    return Mock(lambda _: httpx2.Response(status, headers=_header_names(headers), content=content))


def _header_names(headers: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in headers.items()}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hosts() -> dict[str, HostState]:
    return {}


# -- requests, headers, validators


@bounded
async def test_sends_user_agent_and_gzip_only_and_no_validators_by_default(clock, hosts) -> None:
    mock = always(200, b"<rss/>", content_type="application/rss+xml")
    async with mock.fetcher(hosts, clock) as fetcher:
        got = await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    (request,) = mock.requests
    assert request.headers["user-agent"] == UA
    assert request.headers["accept-encoding"] == "gzip"
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers
    assert got.status == 200
    assert got.content == b"<rss/>"
    assert got.content_type == "application/rss+xml"
    assert got.validators == Validators(None, None)
    assert got.fetched_at == START
    assert hosts == {CANONICAL_HOST: HostState()}  # created for the caller to persist


@bounded
async def test_200_returns_the_new_validators(clock, hosts) -> None:
    mock = always(200, b"x", etag='W/"v2"', last_modified="Wed, 01 May 2024 10:00:00 GMT")
    async with mock.fetcher(hosts, clock) as fetcher:
        got = await fetcher.fetch("https://www.rfi.fr/cn/rss", validators=Validators('"v1"', None), max_bytes=MB)
    assert got.validators == Validators('W/"v2"', "Wed, 01 May 2024 10:00:00 GMT")


@bounded
async def test_304_sends_validators_and_keeps_them_updated_by_new_ones(clock, hosts) -> None:
    mock = always(304, etag='"v2"')
    sent = Validators('"v1"', "Tue, 30 Apr 2024 08:00:00 GMT")
    async with mock.fetcher(hosts, clock) as fetcher:
        got = await fetcher.fetch("https://www.rfi.fr/cn/rss", validators=sent, max_bytes=MB)
    (request,) = mock.requests
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == "Tue, 30 Apr 2024 08:00:00 GMT"
    assert (got.status, got.content) == (304, b"")
    assert got.validators == Validators('"v2"', "Tue, 30 Apr 2024 08:00:00 GMT")


@pytest.mark.parametrize(
    "url",
    [
        "https://www.rfi.fr.example.net/cn/rss",
        "https://rfi.fr/cn/rss",
        "https://cn.rfi.fr/cn/rss",
        "ftp://www.rfi.fr/cn/rss",
        "http://127.0.0.1:10/cn/rss",  # the origin's host on another port
        "/cn/rss",
    ],
)
@bounded
async def test_urls_outside_rfi_are_refused_without_a_request(clock, hosts, url: str) -> None:
    mock = always(200)
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="not one of this source's hosts") as caught:
            await fetcher.fetch(url, max_bytes=MB)
    assert caught.value.url == url
    assert url in str(caught.value)
    assert mock.requests == []


@bounded
async def test_invalid_url_is_a_fetch_error(clock, hosts) -> None:
    async with always(200).fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="invalid URL") as caught:
            await fetcher.fetch("http://[::1", max_bytes=MB)
    assert isinstance(caught.value.__cause__, httpx2.InvalidURL)


@pytest.mark.parametrize(
    ("url", "requested"),
    [
        ("https://www.rfi.fr/cn/rss", "http://127.0.0.1:9/cn/rss"),
        ("http://www.rfi.fr/cn/rss?xtor=RSS-1#frag", "http://127.0.0.1:9/cn/rss?xtor=RSS-1"),
        ("https://WWW.RFI.FR/cn/%E4%B8%AD%E5%9B%BD/rss", "http://127.0.0.1:9/cn/%E4%B8%AD%E5%9B%BD/rss"),
        ("http://127.0.0.1:9/cn/rss", "http://127.0.0.1:9/cn/rss"),
    ],
)
@bounded
async def test_rfi_and_origin_urls_go_to_the_origin(clock, hosts, url: str, requested: str) -> None:
    mock = always(200, b"ok")
    async with mock.fetcher(hosts, clock) as fetcher:
        got = await fetcher.fetch(url, max_bytes=MB)
    assert [str(r.url) for r in mock.requests] == [requested]
    assert got.url == url
    assert got.final_url == "https://www.rfi.fr" + requested.removeprefix(MOCK_ORIGIN)


@bounded
async def test_fetch_outside_async_with_is_a_programming_error(clock, hosts) -> None:
    fetcher = always(200).fetcher(hosts, clock)
    with pytest.raises(RuntimeError, match="async with"):
        await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)


@pytest.mark.parametrize("origin", ["www.rfi.fr", "ftp://www.rfi.fr", "https://www.rfi.fr/cn", "http://[::1"])
def test_settings_refuse_an_origin_with_more_than_scheme_and_host(origin: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        settings(origin)


@pytest.mark.parametrize("bad", [{"per_host": 0}, {"max_redirects": -1}, {"deadline": 0.0}])
def test_settings_refuse_impossible_limits(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="per_host"):
        settings(**bad)


# -- redirects


def redirects(table: dict[str, tuple[int, str]]) -> Mock:
    """Paths in ``table`` redirect (status, Location); any other path answers 200 with its own path."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path in table:
            status, location = table[request.url.path]
            return httpx2.Response(status, headers={"Location": location})
        return httpx2.Response(200, content=request.url.path.encode())

    return Mock(answer)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    ("location", "lands_on"),
    [
        ("https://www.rfi.fr/cn/new", "/cn/new"),
        ("http://www.rfi.fr/cn/new", "/cn/new"),
        ("http://127.0.0.1:9/cn/new", "/cn/new"),
        ("/cn/new?a=1", "/cn/new?a=1"),
        ("../../new", "/new"),
    ],
)
@bounded
async def test_redirects_within_rfi_are_followed_via_the_origin(
    clock, hosts, status: int, location: str, lands_on: str
) -> None:
    mock = redirects({"/cn/old/x": (status, location)})
    async with mock.fetcher(hosts, clock) as fetcher:
        got = await fetcher.fetch("https://www.rfi.fr/cn/old/x", max_bytes=MB)
    assert [str(r.url) for r in mock.requests] == [MOCK_ORIGIN + "/cn/old/x", MOCK_ORIGIN + lands_on]
    assert got.url == "https://www.rfi.fr/cn/old/x"
    assert got.final_url == "https://www.rfi.fr" + lands_on


@pytest.mark.parametrize(
    ("location", "named"),
    [
        ("https://www.rfi.fr.example.net/cn/x", "www.rfi.fr.example.net"),
        ("https://evil.example:8443/x", "evil.example:8443"),
        ("//evil.example/x", "evil.example"),
        ("http://127.0.0.1:10/x", "127.0.0.1:10"),
    ],
)
@bounded
async def test_redirect_to_a_foreign_host_is_refused_without_following(clock, hosts, location: str, named: str) -> None:
    mock = redirects({"/cn/rss": (302, location)})
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match=f"foreign host {named},"):
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert len(mock.requests) == 1
    assert hosts[CANONICAL_HOST] == HostState()  # the host answered; the URL is what is wrong


@bounded
async def test_more_redirects_than_allowed_is_an_error(clock, hosts) -> None:
    mock = redirects({f"/r/{i}": (302, f"/r/{i + 1}") for i in range(10)})
    async with mock.fetcher(hosts, clock, max_redirects=3) as fetcher:
        with pytest.raises(FetchError, match="more than 3 redirects"):
            await fetcher.fetch("https://www.rfi.fr/r/0", max_bytes=MB)
    assert [r.url.path for r in mock.requests] == ["/r/0", "/r/1", "/r/2", "/r/3"]


@bounded
async def test_exactly_max_redirects_is_fine(clock, hosts) -> None:
    mock = redirects({f"/r/{i}": (302, f"/r/{i + 1}") for i in range(3)})
    async with mock.fetcher(hosts, clock, max_redirects=3) as fetcher:
        got = await fetcher.fetch("https://www.rfi.fr/r/0", max_bytes=MB)
    assert got.final_url == "https://www.rfi.fr/r/3"


@bounded
async def test_redirect_loop_is_an_error(clock, hosts) -> None:
    mock = redirects({"/a": (301, "https://www.rfi.fr/b"), "/b": (301, "/a")})
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="redirect loop"):
            await fetcher.fetch("https://www.rfi.fr/a", max_bytes=MB)
    assert [r.url.path for r in mock.requests] == ["/a", "/b"]


@bounded
async def test_redirect_without_location_is_an_error(clock, hosts) -> None:
    async with always(302).fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="without a Location"):
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)


# -- statuses and the host's state


@bounded
async def test_429_with_retry_after_seconds_waits_that_long(clock, hosts) -> None:
    mock = always(429, retry_after="120")
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(RetryLater) as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
        assert caught.value.until == START + timedelta(seconds=120)
        assert hosts[CANONICAL_HOST] == HostState(next_allowed=START + timedelta(seconds=120), failures=0)
        clock.advance(119)
        with pytest.raises(RetryLater):
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert len(mock.requests) == 1


@bounded
async def test_a_failure_in_flight_never_shortens_a_retry_after(clock, hosts) -> None:
    """A request already sent when the host said Retry-After: 3600 fails afterwards: its 60 s backoff must not
    replace the hour the host asked for (it once did, leaving the host to be asked a minute later)."""
    sent, release = asyncio.Event(), asyncio.Event()

    async def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/cn/rss":
            return httpx2.Response(429, headers={"Retry-After": "3600"})
        sent.set()
        await release.wait()
        return httpx2.Response(500)

    async with Fetcher(settings(), hosts, now=clock, transport=httpx2.MockTransport(answer)) as fetcher:
        in_flight = asyncio.create_task(fetcher.fetch("https://www.rfi.fr/cn/page", max_bytes=MB))
        await sent.wait()
        with pytest.raises(RetryLater):
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
        release.set()
        with pytest.raises(FetchError, match="HTTP 500"):
            await in_flight
    assert hosts[CANONICAL_HOST] == HostState(next_allowed=START + timedelta(seconds=3600), failures=1)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("date", ["Wed, 01 May 2024 12:30:00 GMT", "Wed May  1 12:30:00 2024"])  # IMF, asctime
@bounded
async def test_retry_after_as_an_http_date(clock, hosts, status: int, date: str) -> None:
    later = START + timedelta(minutes=30)
    mock = always(status, retry_after=date)
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(RetryLater, match=f"HTTP {status}") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert caught.value.until == later
    assert hosts[CANONICAL_HOST].next_allowed == later


@pytest.mark.parametrize(("value", "wait"), [("999999999", 3600.0), ("Wed, 01 May 2024 11:00:00 GMT", 0.0)])
@bounded
async def test_retry_after_is_capped_and_never_negative(clock, hosts, value: str, wait: float) -> None:
    async with always(429, retry_after=value).fetcher(hosts, clock, retry_after_cap=3600.0) as fetcher:
        with pytest.raises(RetryLater) as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert caught.value.until == START + timedelta(seconds=wait)


@pytest.mark.parametrize("retry_after", [None, "soon"])
@bounded
async def test_429_without_usable_retry_after_is_a_failure(clock, hosts, retry_after: str | None) -> None:
    mock = always(429, **({"retry_after": retry_after} if retry_after else {}))
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="HTTP 429") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert not isinstance(caught.value, RetryLater)
    assert hosts[CANONICAL_HOST] == HostState(next_allowed=START + timedelta(seconds=60), failures=1)


class Scripted:
    """A mock whose answers are set one by one."""

    def __init__(self) -> None:
        self.status = 200
        self.mock = Mock(lambda _: httpx2.Response(self.status, content=b"body"))


@bounded
async def test_503_backoff_doubles_is_capped_and_resets_on_success(clock, hosts) -> None:
    server = Scripted()
    url = "https://www.rfi.fr/cn/rss"
    async with server.mock.fetcher(hosts, clock, backoff_base=60.0, backoff_cap=200.0) as fetcher:
        server.status = 503
        for failures, wait in [(1, 60), (2, 120), (3, 200), (4, 200)]:
            with pytest.raises(FetchError, match="HTTP 503") as caught:
                await fetcher.fetch(url, max_bytes=MB)
            assert not isinstance(caught.value, RetryLater)
            assert hosts[CANONICAL_HOST] == HostState(next_allowed=clock() + timedelta(seconds=wait), failures=failures)
            clock.advance(wait)
        server.status = 200
        got = await fetcher.fetch(url, max_bytes=MB)
    assert got.status == 200
    assert hosts[CANONICAL_HOST] == HostState()


@pytest.mark.parametrize("status", [500, 502, 504, 400, 451])
@bounded
async def test_other_error_statuses_are_host_failures(clock, hosts, status: int) -> None:
    async with always(status).fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match=f"HTTP {status}"):
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert hosts[CANONICAL_HOST].failures == 1


@pytest.mark.parametrize("status", [403, 404, 410])
@bounded
async def test_403_404_410_fail_the_url_but_leave_the_host_alone(clock, status: int) -> None:
    before = HostState(next_allowed=START - timedelta(seconds=1), failures=2)
    hosts = {CANONICAL_HOST: before}
    async with always(status).fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match=f"HTTP {status}") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/中国/20240501-x", max_bytes=MB)
    assert not isinstance(caught.value, RetryLater)
    assert hosts[CANONICAL_HOST] == HostState(next_allowed=START - timedelta(seconds=1), failures=2)


@pytest.mark.parametrize("status", [204, 206, 300])
@bounded
async def test_unexpected_statuses_are_errors_that_leave_the_host_alone(clock, hosts, status: int) -> None:
    async with always(status).fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match=f"HTTP {status}"):
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert hosts[CANONICAL_HOST] == HostState()


@bounded
async def test_backing_off_host_is_not_contacted(clock) -> None:
    until = START + timedelta(seconds=1)
    hosts = {CANONICAL_HOST: HostState(next_allowed=until, failures=3)}
    mock = always(200)
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(RetryLater, match=r"not to be asked before 2024-05-01T12:00:01\+00:00") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
        assert caught.value.until == until
        assert mock.requests == []
        clock.advance(1)
        await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert len(mock.requests) == 1
    assert hosts[CANONICAL_HOST] == HostState()


@bounded
async def test_requests_are_counted_by_host_and_answer(clock) -> None:
    """Each request that went out counts once, redirects included; one put off or refused before sending, never."""
    answers = {"/ok": 200, "/same": 304, "/gone": 404, "/busy": 503, "/moved": 301}
    mock = Mock(
        lambda request: (
            httpx2.Response(answers[request.url.path], headers={"Location": "/ok"})
            if request.url.path == "/moved"
            else httpx2.Response(answers[request.url.path])
        )
    )
    hosts: dict[str, HostState] = {}
    async with mock.fetcher(hosts, clock, backoff_base=1.0) as fetcher:
        assert fetcher.requests.counted() == ()
        for path in ("/ok", "/same", "/moved", "/gone", "/busy"):
            with contextlib.suppress(FetchError):
                await fetcher.fetch(f"https://www.rfi.fr{path}", validators=Validators(etag='"v1"'), max_bytes=MB)
        with pytest.raises(RetryLater):
            await fetcher.fetch("https://www.rfi.fr/ok", max_bytes=MB)  # the 503 put the host off for a second
        with pytest.raises(FetchError, match="not one of this source's hosts"):
            await fetcher.fetch("https://example.org/ok", max_bytes=MB)
    assert len(mock.requests) == 6
    assert fetcher.requests.counted() == (
        (CANONICAL_HOST, "200", 2),
        (CANONICAL_HOST, "301", 1),
        (CANONICAL_HOST, "304", 1),
        (CANONICAL_HOST, "404", 1),
        (CANONICAL_HOST, "503", 1),
    )


def test_retry_later_is_a_fetch_error_that_survives_pickling() -> None:
    error = RetryLater("https://www.rfi.fr/cn/rss", "wait", START)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301  (our own object)
    assert isinstance(copy, RetryLater)
    assert (copy.url, copy.reason, copy.until) == (error.url, error.reason, START)
    assert str(copy) == "cannot fetch https://www.rfi.fr/cn/rss: wait"


# -- httpx2 errors are translated


def raising(error: Exception) -> Mock:
    def answer(request: httpx2.Request) -> httpx2.Response:
        raise error

    return Mock(answer)


@pytest.mark.parametrize(
    "error",
    [
        httpx2.ConnectError("connection refused"),
        httpx2.ReadTimeout("timed out"),
        httpx2.RemoteProtocolError("peer closed connection"),
    ],
)
@bounded
async def test_transport_errors_become_host_failures(clock, hosts, error: Exception) -> None:
    async with raising(error).fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match=type(error).__name__) as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert caught.value.__cause__ is error
    assert hosts[CANONICAL_HOST].failures == 1
    assert fetcher.requests.counted() == ((CANONICAL_HOST, "error", 1),)  # no answer came


@bounded
async def test_undecodable_gzip_is_a_fetch_error_of_the_url(clock, hosts) -> None:
    mock = always(200, b"this is not gzip", content_encoding="gzip")
    async with mock.fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="DecodingError") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert isinstance(caught.value.__cause__, httpx2.DecodingError)
    assert hosts[CANONICAL_HOST] == HostState()


@bounded
async def test_declared_length_over_the_cap_is_refused(clock, hosts) -> None:
    async with always(200, b"x" * 101).fetcher(hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="the body exceeded 100 bytes"):
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=100)
        got = await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=101)
    assert len(got.content) == 101


# -- real servers on 127.0.0.1


@dataclass(frozen=True)
class Seen:
    target: str
    headers: dict[str, str]


Handler = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


class LocalServer:
    """A bare HTTP/1.1 server on 127.0.0.1:0: one request per connection, answered by ``routes`` (else 404)."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.requests: list[Seen] = []
        self.origin = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> LocalServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            target = head[0].split(" ")[1]
            fields = (line.partition(":") for line in head[1:] if line)
            seen = Seen(target, {name.lower(): value.strip() for name, _, value in fields})
            self.requests.append(seen)
            await self.routes.get(target.split("?")[0], not_found)(seen, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: that is what several tests do on purpose
        except asyncio.CancelledError:
            pass  # the server is stopping (Python 3.11's start_server would log a cancelled handler as an error)
        finally:
            writer.close()
            self._tasks.discard(task)


async def send(writer: asyncio.StreamWriter, status: int, body: bytes = b"", **headers: str) -> None:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in _header_names(headers).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def not_found(seen: Seen, writer: asyncio.StreamWriter) -> None:
    await send(writer, 404)


def ok(body: bytes, **headers: str) -> Handler:
    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await send(writer, 200, body, **headers)

    return handler


def redirect(location: str) -> Handler:
    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await send(writer, 302, Location=location)

    return handler


def real_fetcher(origin: str, hosts: dict[str, HostState], clock: Clock, **overrides: Any) -> Fetcher:
    return Fetcher(settings(origin, **overrides), hosts, now=clock)


@bounded
async def test_origin_mapping_reaches_the_local_server(clock, hosts) -> None:
    async with (
        LocalServer({"/cn/%E4%B8%AD%E5%9B%BD/rss": ok(b"<rss/>")}) as server,
        real_fetcher(server.origin, hosts, clock) as fetcher,
    ):
        got = await fetcher.fetch("https://www.rfi.fr/cn/中国/rss?xtor=RSS-1", max_bytes=MB)
    (seen,) = server.requests
    assert seen.target == "/cn/%E4%B8%AD%E5%9B%BD/rss?xtor=RSS-1"
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"
    assert seen.headers["user-agent"] == UA
    assert got.content == b"<rss/>"
    assert got.url == "https://www.rfi.fr/cn/中国/rss?xtor=RSS-1"
    assert got.final_url == "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/rss?xtor=RSS-1"


@bounded
async def test_redirect_to_canonical_host_comes_back_to_the_origin(clock, hosts) -> None:
    routes = {"/cn/rss": redirect("https://www.rfi.fr/cn/feed"), "/cn/feed": ok(b"feed")}
    async with LocalServer(routes) as server, real_fetcher(server.origin, hosts, clock) as fetcher:
        got = await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert [s.target for s in server.requests] == ["/cn/rss", "/cn/feed"]
    assert (got.content, got.final_url) == (b"feed", "https://www.rfi.fr/cn/feed")


@pytest.mark.parametrize("foreign_host", ["localhost", "127.0.0.1"])
@bounded
async def test_redirect_to_a_foreign_server_never_reaches_it(clock, hosts, foreign_host: str) -> None:
    async with LocalServer({"/steal": ok(b"gotcha")}) as foreign:
        location = f"http://{foreign_host}:{foreign.port}/steal"
        async with LocalServer({"/cn/rss": redirect(location)}) as server:
            async with real_fetcher(server.origin, hosts, clock) as fetcher:
                with pytest.raises(FetchError, match=f"foreign host {foreign_host}:{foreign.port}"):
                    await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
            await asyncio.sleep(0.05)  # a connection attempt, had there been one, would have landed by now
    assert [s.target for s in server.requests] == ["/cn/rss"]
    assert foreign.requests == []


@bounded
async def test_redirect_loop_against_a_real_server(clock, hosts) -> None:
    routes = {"/a": redirect("/b"), "/b": redirect("https://www.rfi.fr/a")}
    async with LocalServer(routes) as server, real_fetcher(server.origin, hosts, clock) as fetcher:
        with pytest.raises(FetchError, match=r"redirect loop back to https://www\.rfi\.fr/a"):
            await fetcher.fetch("https://www.rfi.fr/a", max_bytes=MB)
    assert [s.target for s in server.requests] == ["/a", "/b"]


@bounded
async def test_304_round_trip_with_etag_and_last_modified(clock, hosts) -> None:
    etag, modified = '"abc"', "Wed, 01 May 2024 09:00:00 GMT"

    async def conditional(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.headers.get("if-none-match") == etag and seen.headers.get("if-modified-since") == modified:
            await send(writer, 304, ETag=etag)
        else:
            await send(writer, 200, b"<rss>v1</rss>", ETag=etag, Last_Modified=modified)

    async with LocalServer({"/cn/rss": conditional}) as server, real_fetcher(server.origin, hosts, clock) as fetcher:
        first = await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
        second = await fetcher.fetch("https://www.rfi.fr/cn/rss", validators=first.validators, max_bytes=MB)
    assert (first.status, first.content, first.validators) == (200, b"<rss>v1</rss>", Validators(etag, modified))
    assert (second.status, second.content, second.validators) == (304, b"", Validators(etag, modified))
    assert "if-none-match" not in server.requests[0].headers


@bounded
async def test_gzip_body_is_decoded(clock, hosts) -> None:
    text = "法国国际广播电台".encode() * 1000
    handler = ok(gzip.compress(text), Content_Encoding="gzip", Content_Type="text/html; charset=utf-8")
    async with LocalServer({"/cn/": handler}) as server, real_fetcher(server.origin, hosts, clock) as fetcher:
        got = await fetcher.fetch("https://www.rfi.fr/cn/", max_bytes=len(text))
    assert got.content == text
    assert server.requests[0].headers["accept-encoding"] == "gzip"


async def drip_body(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
    for _ in range(100):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.2)


async def drip_head(seen: Seen, writer: asyncio.StreamWriter) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("handler", [drip_body, drip_head])
@bounded
async def test_a_server_that_drips_is_cut_off_at_the_deadline(clock, hosts, handler: Handler) -> None:
    async with (
        LocalServer({"/cn/rss": handler}) as server,
        real_fetcher(server.origin, hosts, clock, deadline=1.0) as fetcher,
    ):
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"took more than 1 s") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 1.5
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert hosts[CANONICAL_HOST].failures == 1
    counted = "200" if handler is drip_body else "timeout"  # a status line that came is what counts
    assert fetcher.requests.counted() == ((CANONICAL_HOST, counted, 1),)


@bounded
async def test_a_silent_server_hits_the_read_timeout(clock, hosts) -> None:
    async def silent(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with (
        LocalServer({"/cn/rss": silent}) as server,
        real_fetcher(server.origin, hosts, clock, read_timeout=0.3) as fetcher,
    ):
        with pytest.raises(FetchError, match="ReadTimeout") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)
    assert hosts[CANONICAL_HOST].failures == 1


@bounded
async def test_connection_refused_is_a_host_failure(clock, hosts) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    async with real_fetcher(f"http://127.0.0.1:{port}", hosts, clock) as fetcher:
        with pytest.raises(FetchError, match="ConnectError") as caught:
            await fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB)
    assert isinstance(caught.value.__cause__, httpx2.ConnectError)
    assert hosts[CANONICAL_HOST] == HostState(next_allowed=START + timedelta(seconds=60), failures=1)


@dataclass
class Measured:
    seconds: float
    peak_bytes: int


async def measure(action: Awaitable[object]) -> Measured:
    """Time an awaitable that must raise FetchError, and the peak of Python allocations while it runs."""
    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(FetchError, match="the body exceeded 1000000 bytes"):
            await action
        return Measured(time.monotonic() - started, tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


async def endless(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"z" * 64 * 1024)
    while True:
        writer.write(chunk)
        await writer.drain()


@bounded
async def test_an_endless_body_stops_at_the_cap(clock, hosts) -> None:
    async with LocalServer({"/cn/rss": endless}) as server, real_fetcher(server.origin, hosts, clock) as fetcher:
        measured = await measure(fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB))
    assert measured.seconds < 2.0
    assert measured.peak_bytes < 4 * MB
    assert hosts[CANONICAL_HOST] == HostState()  # the host answered; this URL's body is what is wrong


def gzip_of_zeros(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, made without ever holding them all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    parts = [compressor.compress(block) for _ in range(size // MB)]
    return b"".join([*parts, compressor.flush()])


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_of_zeros(50 * MB)


@bounded
async def test_a_gzip_bomb_stops_at_the_cap_without_inflating(clock, hosts, bomb: bytes) -> None:
    assert len(bomb) < 100_000
    handler = ok(bomb, Content_Encoding="gzip")
    async with LocalServer({"/cn/rss": handler}) as server, real_fetcher(server.origin, hosts, clock) as fetcher:
        measured = await measure(fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB))
    assert measured.seconds < 2.0
    assert measured.peak_bytes < 5 * MB  # against 50 MB inflated


class Counting:
    """Answers after a pause, remembering the most requests it ever had in flight at once."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.active = 0
        self.most = 0

    async def __call__(self, seen: Seen, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(0.1)
            await send(writer, self.status, b"ok")
        finally:
            self.active -= 1


@bounded
async def test_no_more_than_per_host_requests_at_a_time(clock, hosts) -> None:
    counting = Counting()
    async with (
        LocalServer({"/cn/rss": counting}) as server,
        real_fetcher(server.origin, hosts, clock, per_host=2) as fetcher,
    ):
        got = await asyncio.gather(
            *(fetcher.fetch(f"https://www.rfi.fr/cn/rss?n={n}", max_bytes=MB) for n in range(10))
        )
    assert [g.status for g in got] == [200] * 10
    assert len(server.requests) == 10
    assert counting.most == 2


@bounded
async def test_queued_fetches_respect_a_backoff_started_while_they_waited(clock, hosts) -> None:
    counting = Counting(status=503)
    async with (
        LocalServer({"/cn/rss": counting}) as server,
        real_fetcher(server.origin, hosts, clock, per_host=2) as fetcher,
    ):
        outcomes = await asyncio.gather(
            *(fetcher.fetch("https://www.rfi.fr/cn/rss", max_bytes=MB) for _ in range(10)), return_exceptions=True
        )
    assert len(server.requests) == 2
    assert sum(type(o) is FetchError for o in outcomes) == 2
    assert sum(type(o) is PutOffError for o in outcomes) == 8  # not asked: the backoff began
    assert hosts[CANONICAL_HOST].failures == 2


def test_every_fetcher_verifies_certificates_with_one_context() -> None:
    """Made once per process (loading the CA bundle is most of a small poll's CPU), and still strict."""
    context = tls_context()
    assert tls_context() is context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
