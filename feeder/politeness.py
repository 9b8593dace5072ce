"""What makes a fetch polite, apart from the HTTP client: the settings, conditional requests, Retry-After; and
the tally of the requests sent, by host and answer.

Pure: no I/O and no third-party import; feeder/http.py applies it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from feeder.models import HostState, Requests, Validators


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Which hosts may be asked, where their requests go, and how hard to push them. Times are in seconds."""

    user_agent: str
    hosts: frozenset[str]
    routes: tuple[tuple[str, str], ...] = ()
    """(host, origin): requests for https://host/… go to origin/… (scheme://host[:port] only)."""
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 60.0
    max_redirects: int = 5
    per_host: int = 2
    backoff_base: float = 60.0
    backoff_cap: float = 6 * 3600.0
    retry_after_cap: float = 6 * 3600.0

    def __post_init__(self) -> None:
        for _, written in self.routes:
            try:
                origin = urlsplit(written)
                origin.port  # noqa: B018  (urlsplit checks the port only when asked for it)
            except ValueError as e:
                raise ValueError(f"origin is not a URL: {written!r}") from e
            if origin.scheme not in ("http", "https") or not origin.hostname or origin.path not in ("/", ""):
                raise ValueError(f"origin must be scheme://host[:port] only, got {written!r}")
            if origin.query or origin.fragment:
                raise ValueError(f"origin must be scheme://host[:port] only, got {written!r}")
        if self.per_host < 1 or self.max_redirects < 0 or self.deadline <= 0:
            raise ValueError("per_host must be ≥ 1, max_redirects ≥ 0 and deadline > 0")


def conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if validators is not None and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators is not None and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def retry_after(value: str | None, now: datetime) -> float | None:
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


def asked_to_wait(settings: FetchSettings, state: HostState, header: str | None, now: datetime) -> datetime | None:
    """A 429 or 503's Retry-After kept as the host's next allowed time (capped; a wait already kept is never
    shortened) and returned; None when the header names no wait."""
    delay = retry_after(header, now)
    if delay is None:
        return None
    state.next_allowed = later(state.next_allowed, now + timedelta(seconds=min(delay, settings.retry_after_cap)))
    return state.next_allowed


def backed_off(settings: FetchSettings, state: HostState, now: datetime) -> datetime:
    """One more failure of the host: its wait doubles from ``backoff_base`` up to ``backoff_cap`` (a longer wait
    already kept stays); returns the host's next allowed time."""
    state.failures += 1
    delay = min(settings.backoff_cap, settings.backoff_base * 2 ** min(state.failures - 1, 64))
    state.next_allowed = later(state.next_allowed, now + timedelta(seconds=delay))
    return state.next_allowed


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def later(kept: datetime | None, new: datetime) -> datetime:
    """A host's next allowed time after another answer: a wait already asked for (a Retry-After of an hour) is
    never shortened by a shorter one of a request that was in flight meanwhile."""
    return new if kept is None or new > kept else kept


class RequestTally:
    """The requests a Fetcher sent, by host and answer; each redirect is one request."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def asking(self) -> InFlight:
        """What one exchange has in flight, to be counted once: at its status line or when it fails without one."""
        return InFlight(self._counts)

    def counted(self) -> Requests:
        return tuple((host, answer, count) for (host, answer), count in sorted(self._counts.items()))


class InFlight:
    """The request of one exchange in flight (a redirect sends the next one): counted once."""

    def __init__(self, counts: Counter[tuple[str, str]]) -> None:
        self._counts = counts
        self._host: str | None = None

    def send(self, host: str) -> None:
        self._host = host

    def answered(self, answer: str) -> None:
        """Count the request in flight, if any, with its answer ("200"; "error" or "timeout" when none came)."""
        if self._host is not None:
            self._counts[self._host, answer] += 1
            self._host = None
