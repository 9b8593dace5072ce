"""Fetch RFI URLs over HTTP, politely: the only module that imports httpx2.

What belongs here: one GET and everything that keeps it safe and polite —
requests for ``https://www.rfi.fr/…`` sent to a configurable origin,
conditional requests from stored validators, redirects followed by hand and
only within RFI, a body cap enforced while streaming, a deadline on the whole
exchange, at most ``per_host`` requests at a time, Retry-After and exponential
backoff recorded in the caller's ``HostState``. What does not: deciding which
URLs to fetch, parsing what comes back, persisting the host state (the caller
owns the ``hosts`` dict and saves it).

Every httpx2 exception is translated here into ``FetchError`` (``raise … from``);
``RetryLater`` says when the host may be asked again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx2

from feeder.errors import FetchError, RetryLater
from feeder.models import Fetched, HostState, Validators

CANONICAL_HOST = "www.rfi.fr"
_CANONICAL_ORIGIN = httpx2.URL(f"https://{CANONICAL_HOST}/")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_URL_FAULTS = frozenset({403, 404, 410})
"""Statuses that condemn one URL, not the host: RFI answers 403 to article pages while the host is fine."""
_ASK_TO_WAIT = frozenset({429, 503})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTPX_ERRORS = (httpx2.HTTPError, httpx2.InvalidURL, httpx2.StreamError, httpx2.CookieConflict)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How to reach RFI and how hard to push it. Times are in seconds."""

    user_agent: str
    origin: str
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 60.0
    max_redirects: int = 5
    per_host: int = 2
    backoff_base: float = 60.0
    backoff_cap: float = 6 * 3600.0
    retry_after_cap: float = 6 * 3600.0

    def __post_init__(self) -> None:
        try:
            origin = httpx2.URL(self.origin)
        except httpx2.InvalidURL as e:
            raise ValueError(f"origin is not a URL: {self.origin!r}") from e
        if origin.scheme not in _DEFAULT_PORTS or not origin.host or origin.raw_path != b"/":
            raise ValueError(f"origin must be scheme://host[:port] only, got {self.origin!r}")
        if self.per_host < 1 or self.max_redirects < 0 or self.deadline <= 0:
            raise ValueError("per_host must be ≥ 1, max_redirects ≥ 0 and deadline > 0")


@dataclass(frozen=True, slots=True)
class _Answer:
    """The last response of a redirect chain, body read (200) or not (anything else)."""

    status: int
    url: httpx2.URL
    content: bytes
    headers: httpx2.Headers


class Fetcher:
    """GETs RFI URLs through one ``httpx2.AsyncClient``; use it as ``async with Fetcher(…) as fetcher``."""

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
        self._origin = httpx2.URL(settings.origin)
        self._client: httpx2.AsyncClient | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        s = self._settings
        self._client = httpx2.AsyncClient(
            headers={"User-Agent": s.user_agent, "Accept-Encoding": "gzip"},
            timeout=httpx2.Timeout(s.read_timeout, connect=s.connect_timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc from the environment: requests go to the origin and nowhere else
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
        """GET ``url`` (a www.rfi.fr or origin URL): a 200 with its body, or a 304 with the validators to keep.

        Raises RetryLater when the host must not be asked yet, FetchError for anything else that went wrong.
        """
        if self._client is None:
            raise RuntimeError("Fetcher.fetch called outside 'async with Fetcher(...)'")
        target = self._map(self._parse(url))
        if target is None:
            raise FetchError(url, f"not an RFI URL: only {CANONICAL_HOST} and {self._settings.origin} are fetched")
        state = self._hosts.setdefault(CANONICAL_HOST, HostState())
        self._check_backoff(url, state)
        async with self._slot(CANONICAL_HOST):
            self._check_backoff(url, state)  # another fetch may have failed while this one waited for a slot
            headers = _conditional_headers(validators)
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
        try:
            async with asyncio.timeout(self._settings.deadline):
                return await self._follow(client, url, target, headers, max_bytes)
        except TimeoutError as e:
            raise self._host_failure(url, state, f"took more than {self._settings.deadline:g} s") from e
        except httpx2.TransportError as e:
            raise self._host_failure(url, state, _describe(e)) from e
        except _HTTPX_ERRORS as e:
            raise FetchError(url, _describe(e)) from e

    async def _follow(
        self, client: httpx2.AsyncClient, url: str, target: httpx2.URL, headers: dict[str, str], max_bytes: int
    ) -> _Answer:
        seen = {target}
        while True:
            answer = await _get(client, url, target, headers, max_bytes)
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
                raise FetchError(url, f"redirected to foreign host {_host_port(joined)}, not followed")
            if mapped in seen:
                raise FetchError(url, f"redirect loop back to {_canonical(mapped)}")
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
        if status in _ASK_TO_WAIT:
            now = self._now()
            delay = _retry_after(answer.headers.get("retry-after"), now)
            if delay is not None:
                until = now + timedelta(seconds=min(delay, self._settings.retry_after_cap))
                state.next_allowed = until
                raise RetryLater(url, f"HTTP {status}, {CANONICAL_HOST} asks us to wait until {_iso(until)}", until)
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
            final_url=_canonical(answer.url),
            status=answer.status,
            content=answer.content,
            content_type=answer.headers.get("content-type"),
            validators=Validators(etag=etag, last_modified=last_modified),
            fetched_at=self._now(),
        )

    def _host_failure(self, url: str, state: HostState, reason: str) -> FetchError:
        state.failures += 1
        delay = min(self._settings.backoff_cap, self._settings.backoff_base * 2 ** min(state.failures - 1, 64))
        state.next_allowed = self._now() + timedelta(seconds=delay)
        return FetchError(url, f"{reason} (failure {state.failures}; next try after {_iso(state.next_allowed)})")

    def _check_backoff(self, url: str, state: HostState) -> None:
        until = state.next_allowed
        if until is not None and until > self._now():
            raise RetryLater(url, f"{CANONICAL_HOST} is not to be asked before {_iso(until)}", until)

    def _slot(self, host: str) -> asyncio.Semaphore:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = asyncio.Semaphore(self._settings.per_host)
        return slot

    # -- URLs: www.rfi.fr ↔ origin

    @staticmethod
    def _parse(url: str) -> httpx2.URL:
        try:
            return httpx2.URL(url)
        except httpx2.InvalidURL as e:
            raise FetchError(url, f"invalid URL ({e})") from e

    def _map(self, candidate: httpx2.URL) -> httpx2.URL | None:
        """Where a www.rfi.fr or origin URL is actually requested; None for any other host."""
        if candidate.scheme in _DEFAULT_PORTS and candidate.host == CANONICAL_HOST:
            return self._origin.copy_with(raw_path=candidate.raw_path)
        if _authority(candidate) == _authority(self._origin):
            return candidate.copy_with(fragment=None)
        return None


async def _get(
    client: httpx2.AsyncClient, url: str, target: httpx2.URL, headers: dict[str, str], max_bytes: int
) -> _Answer:
    async with client.stream("GET", target, headers=headers) as response:
        content = await _read_capped(response, url, max_bytes) if response.status_code == 200 else b""
        return _Answer(response.status_code, target, content, response.headers)


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


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if validators is not None and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators is not None and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def _authority(url: httpx2.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _host_port(url: httpx2.URL) -> str:
    return f"{url.host}:{url.port}" if url.port else url.host


def _canonical(origin_url: httpx2.URL) -> str:
    return str(_CANONICAL_ORIGIN.copy_with(raw_path=origin_url.raw_path))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


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
