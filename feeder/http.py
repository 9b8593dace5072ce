"""Fetch URLs over HTTP, politely: the only module that imports httpx2.

One GET and what keeps it safe and polite: only the hosts the caller allows (a
site's, a feed's own), a host's requests sent to another origin when asked (a
mirror, a test server), conditional requests, redirects followed by hand within
the allowed hosts, a body cap while streaming, a deadline on the whole exchange,
``per_host`` requests at a time, Retry-After and backoff kept in the caller's
``HostState`` (which the caller persists), and a tally of the requests sent by
host and answer. Which URLs to fetch and what the answers mean are decided elsewhere.

Every httpx2 exception is translated here into ``FetchError`` (``raise … from``);
``RetryLater`` says when the host may be asked again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import TracebackType

import httpx2

from feeder.errors import FetchError, PutOffError, RetryLater
from feeder.models import Fetched, HostState, Validators
from feeder.politeness import FetchSettings, InFlight, RequestTally, asked_to_wait, backed_off, conditional_headers, iso

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_URL_FAULTS = frozenset({403, 404, 410})
"""Statuses that condemn one URL, not the host: some sites answer 403 to article pages while the host is fine."""
_ASK_TO_WAIT = frozenset({429, 503})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTPX_ERRORS = (httpx2.HTTPError, httpx2.InvalidURL, httpx2.StreamError, httpx2.CookieConflict)


@dataclass(frozen=True, slots=True)
class _Answer:
    """The last response of a redirect chain, body read (200) or not (anything else)."""

    status: int
    url: httpx2.URL
    content: bytes
    headers: httpx2.Headers


class Fetcher:
    """GETs URLs on the allowed hosts through one ``httpx2.AsyncClient``; use it as ``async with Fetcher(…)``."""

    def __init__(
        self,
        settings: FetchSettings,
        hosts: dict[str, HostState],
        *,
        now: Callable[[], datetime],
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._hosts = hosts
        self._now = now
        self._transport = transport
        self._routes = {host: httpx2.URL(origin).copy_with(raw_path=b"/") for host, origin in settings.routes}
        self._routed = {_authority(origin): host for host, origin in self._routes.items()}
        self._client: httpx2.AsyncClient | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.requests = RequestTally()

    async def __aenter__(self) -> Fetcher:
        s = self._settings
        self._client = httpx2.AsyncClient(
            headers={"User-Agent": s.user_agent, "Accept-Encoding": "gzip"},
            timeout=httpx2.Timeout(s.read_timeout, connect=s.connect_timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc from the environment: requests go to the origin and nowhere else
            verify=tls_context(),
            transport=self._transport,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def fetch(self, url: str, *, validators: Validators | None = None, max_bytes: int) -> Fetched:
        """GET ``url`` (on an allowed host): a 200 with its body, or a 304 with the validators to keep.

        Raises RetryLater when the host must not be asked yet, FetchError for anything else that went wrong.
        """
        if self._client is None:
            raise RuntimeError("Fetcher.fetch called outside 'async with Fetcher(...)'")
        target = self._map(self._parse(url))
        if target is None:
            allowed = ", ".join(sorted(self._settings.hosts))
            raise FetchError(url, f"not fetched: its host is not one of this source's hosts ({allowed})")
        host = self._host_of(target)
        state = self._hosts.setdefault(host, HostState())
        self._check_backoff(url, host, state)
        async with self._slot(host):
            self._check_backoff(url, host, state)  # another fetch may have failed while this one waited for a slot
            headers = conditional_headers(validators)
            answer = await self._exchange(self._client, url, target, headers=headers, max_bytes=max_bytes, state=state)
            return self._conclude(url, answer, validators, state)  # inside the slot: waiters see the new state

    # -- one exchange: redirects, body, deadline, error translation

    async def _exchange(
        self,
        client: httpx2.AsyncClient,
        url: str,
        target: httpx2.URL,
        *,
        headers: dict[str, str],
        max_bytes: int,
        state: HostState,
    ) -> _Answer:
        asked = self.requests.asking()
        try:
            async with asyncio.timeout(self._settings.deadline):
                return await self._follow(client, url, target, headers, max_bytes, asked=asked)
        except TimeoutError as e:
            asked.answered("timeout")
            raise self._host_failure(url, state, f"took more than {self._settings.deadline:g} s") from e
        except _HTTPX_ERRORS as e:
            asked.answered("error")
            if isinstance(e, httpx2.TransportError):
                raise self._host_failure(url, state, _describe(e)) from e
            raise FetchError(url, _describe(e)) from e

    async def _follow(
        self,
        client: httpx2.AsyncClient,
        url: str,
        target: httpx2.URL,
        headers: dict[str, str],
        max_bytes: int,
        *,
        asked: InFlight,
    ) -> _Answer:
        seen = {target}
        while True:
            asked.send(self._host_of(target))
            async with client.stream("GET", target, headers=headers) as response:
                asked.answered(str(response.status_code))
                content = await _read_capped(response, url, max_bytes) if response.status_code == 200 else b""
                answer = _Answer(response.status_code, target, content, response.headers)
            if answer.status not in _REDIRECTS:
                return answer
            location = answer.headers.get("location")
            if not location:
                raise FetchError(url, f"HTTP {answer.status} redirect without a Location")
            if len(seen) > self._settings.max_redirects:
                raise FetchError(url, f"more than {self._settings.max_redirects} redirects")
            joined = target.join(location)
            mapped = self._map(joined)
            if mapped is None:
                where = f"{joined.host}:{joined.port}" if joined.port else joined.host
                raise FetchError(url, f"redirected to foreign host {where}, not followed")
            if mapped in seen:
                raise FetchError(url, f"redirect loop back to {self._canonical(mapped)}")
            seen.add(mapped)
            target = mapped

    # -- what the answer means for the caller and for the host

    def _conclude(self, url: str, answer: _Answer, sent: Validators | None, state: HostState) -> Fetched:
        status = answer.status
        if status in (200, 304):
            state.failures = 0
            if state.next_allowed is not None and state.next_allowed <= self._now():
                state.next_allowed = None  # a wait another request was just told to keep still holds
            return self._fetched(url, answer, sent)
        wait = answer.headers.get("retry-after")
        until = asked_to_wait(self._settings, state, wait, self._now()) if status in _ASK_TO_WAIT else None
        if until is not None:
            host = self._host_of(answer.url)
            raise RetryLater(url, f"HTTP {status}, {host} asks us to wait until {iso(until)}", until)
        if status in _URL_FAULTS or status < 400:
            raise FetchError(url, f"HTTP {status}")
        raise self._host_failure(url, state, f"HTTP {status}")

    def _fetched(self, url: str, answer: _Answer, sent: Validators | None) -> Fetched:
        etag = answer.headers.get("etag")
        last_modified = answer.headers.get("last-modified")
        if answer.status == 304 and sent is not None:
            etag, last_modified = etag or sent.etag, last_modified or sent.last_modified
        return Fetched(
            url=url,
            final_url=self._canonical(answer.url),
            status=answer.status,
            content=answer.content,
            content_type=answer.headers.get("content-type"),
            validators=Validators(etag=etag, last_modified=last_modified),
            fetched_at=self._now(),
        )

    def _host_failure(self, url: str, state: HostState, reason: str) -> FetchError:
        until = backed_off(self._settings, state, self._now())
        return FetchError(url, f"{reason} (failure {state.failures}; next try after {iso(until)})")

    def _check_backoff(self, url: str, host: str, state: HostState) -> None:
        until = state.next_allowed
        if until is not None and until > self._now():
            raise PutOffError(url, f"{host} is not to be asked before {iso(until)}", until)

    def _slot(self, host: str) -> asyncio.Semaphore:
        return self._slots.setdefault(host, asyncio.Semaphore(self._settings.per_host))

    # -- URLs: a routed host ↔ its origin

    @staticmethod
    def _parse(url: str) -> httpx2.URL:
        try:
            return httpx2.URL(url)
        except httpx2.InvalidURL as e:
            raise FetchError(url, f"invalid URL ({e})") from e

    def _map(self, candidate: httpx2.URL) -> httpx2.URL | None:
        """Where a URL is actually requested (its origin when its host is routed); None for a host not allowed."""
        if candidate.scheme not in _DEFAULT_PORTS:
            return None
        origin = self._routes.get(candidate.host)
        if origin is not None:
            return origin.copy_with(raw_path=candidate.raw_path)
        if candidate.host in self._settings.hosts or _authority(candidate) in self._routed:
            return candidate.copy_with(fragment=None)
        return None

    def _host_of(self, target: httpx2.URL) -> str:
        """The host a requested URL stands for (a routed origin stands for its host): what politeness counts."""
        return self._routed.get(_authority(target), target.host)

    def _canonical(self, target: httpx2.URL) -> str:
        """The URL as readers know it: a routed origin's URL spelled with its host."""
        host = self._routed.get(_authority(target))
        return str(target) if host is None else f"https://{host}{target.raw_path.decode('ascii')}"


async def _read_capped(response: httpx2.Response, url: str, max_bytes: int) -> bytes:
    """The decoded body, refused as soon as it passes ``max_bytes``: never more than the cap plus one chunk in memory.

    httpx2 inflates gzip in pieces of at most 1 MiB, so a small compressed body cannot burst past the cap.
    """
    declared = response.headers.get("content-length", "")
    if "content-encoding" not in response.headers and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(url, f"the body exceeded {max_bytes} bytes (Content-Length {declared})")
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(url, f"the body exceeded {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)


@cache
def tls_context() -> ssl.SSLContext:
    """What every Fetcher verifies certificates with, made once per process: making it reads the system's CA
    bundle, about 14 ms of CPU, which a worker would otherwise pay on every poll (one Fetcher each). An SSLContext
    may be shared by clients in any thread or event loop; a changed CA bundle is read at the next start."""
    return httpx2.create_ssl_context(trust_env=False)


def _authority(url: httpx2.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _describe(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class FormPoster:
    """POSTs small forms (WebSub publish pings) to URLs the config names; use it as ``async with FormPoster(…)``.

    No redirect is followed and no cookie kept; the answer's body is not read beyond what the connection needs.
    """

    def __init__(self, user_agent: str, *, timeout: float) -> None:
        self._client = httpx2.AsyncClient(
            headers={"User-Agent": user_agent},
            timeout=httpx2.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
        )
        self._timeout = timeout

    async def __aenter__(self) -> FormPoster:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.aclose()

    async def post(self, url: str, fields: list[tuple[str, str]]) -> int:
        """The HTTP status of a POST of ``fields`` as application/x-www-form-urlencoded; FetchError when no
        answer came (refused, reset, timed out, not a URL)."""
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(url, data=dict(fields))
        except TimeoutError as e:
            raise FetchError(url, f"no answer in {self._timeout:g} s") from e
        except _HTTPX_ERRORS as e:
            raise FetchError(url, _describe(e)) from e
        return response.status_code
