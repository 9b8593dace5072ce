"""What makes a fetch polite, apart from the HTTP client: the settings, conditional requests, Retry-After.

Pure: no I/O and no third-party import; feeder/http.py applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from feeder.models import Validators


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


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def later(kept: datetime | None, new: datetime) -> datetime:
    """A host's next allowed time after another answer: a wait already asked for (a Retry-After of an hour) is
    never shortened by a shorter one of a request that was in flight meanwhile."""
    return new if kept is None or new > kept else kept
