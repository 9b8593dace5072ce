"""Frozen records passed between the stages.

Only data and invariants live here: no I/O, no third-party imports. Every
datetime is timezone-aware UTC; a naive or non-UTC value is refused at
construction so a local-time bug cannot travel down the pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

Progress = Callable[[str, int, int], None]
"""Called as progress(source name, items done, items to do) while a source is polled; may raise to stop.

Items to do are those known so far: a large seeds folder is listed as it is read, so the count grows."""


def _check_utc(record: object) -> None:
    for name in _field_names(type(record)):
        value = getattr(record, name)
        if isinstance(value, datetime) and value.utcoffset() != timedelta(0):
            raise ValueError(f"{type(record).__name__}.{name} must be aware UTC, got {value!r}")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(record_type: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(record_type)
    if names is None:
        names = _FIELD_NAMES[record_type] = tuple(f.name for f in dataclasses.fields(record_type))
    return names


@dataclass(frozen=True, slots=True)
class SeedFile:
    """One file found in a seeds folder, before it is read."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class KnownFile:
    """What the store remembers of a seed file it has processed."""

    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True, slots=True)
class RawDocument:
    """Bytes from a source, with where they came from and when."""

    source: str
    locator: str
    content: bytes
    retrieved_at: datetime

    def __post_init__(self) -> None:
        _check_utc(self)


@dataclass(frozen=True, slots=True)
class Enclosure:
    """An audio file that goes with an article (RSS <enclosure>, JSON-LD AudioObject)."""

    url: str
    type: str = "audio/mpeg"
    length: int | None = None
    duration: int | None = None  # seconds


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server said about a URL's version, sent back on the next request to get a 304."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """One HTTP answer worth acting on: a body (200) or "not modified" (304)."""

    url: str
    final_url: str
    status: int
    content: bytes
    content_type: str | None
    validators: Validators
    fetched_at: datetime

    def __post_init__(self) -> None:
        _check_utc(self)


@dataclass(slots=True)
class HostState:
    """Politeness bookkeeping for one host, kept across restarts: when it may be asked again."""

    next_allowed: datetime | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class ParsedArticle:
    """What one document says, as written: URL not yet canonical, HTML not yet cleaned."""

    locator: str
    url: str
    title: str
    scraped_at: datetime | None
    published_at: datetime | None
    lead: str
    image: str | None
    body_html: str
    modified_at: datetime | None = None
    author: str | None = None
    extra_categories: tuple[str, ...] = ()
    audio: Enclosure | None = None
    fulltext: bool = True
    """False for a feed item: a title and lead, without the article's body."""

    def __post_init__(self) -> None:
        _check_utc(self)


@dataclass(frozen=True, slots=True)
class Shown:
    """What a reader sees of an article: the fields an Article version and a stored Entry share."""

    url: str
    title: str
    section: str | None
    categories: tuple[str, ...]
    author: str | None
    lead: str
    image: str | None
    content_html: str
    published: datetime

    def __post_init__(self) -> None:
        _check_utc(self)


@dataclass(frozen=True, slots=True)
class Article(Shown):
    """A normalized article version, keyed by its canonical URL."""

    version_at: datetime
    content_hash: str
    fulltext: bool = True
    audio: Enclosure | None = None


@dataclass(frozen=True, slots=True)
class Entry(Shown):
    """A stored entry as the feeds show it."""

    updated: datetime
    audio: Enclosure | None = None


@dataclass(frozen=True, slots=True)
class FeedDocument:
    """One feed document to render as Atom, RSS and JSON Feed: a subscription feed or an archive page of one.

    Paths are where the files go under the output folder, without their extension (``rfi-cn``,
    ``rfi-cn/中国``, ``rfi-cn/archive/3``); the renderer turns them into URLs.
    """

    path: str
    feed_path: str
    """The subscription feed this document belongs to: itself, or the feed an archive page is part of."""
    title: str
    description: str
    author: str
    language: str
    updated: datetime
    ttl_minutes: int
    archive: bool = False
    """An RFC 5005 archive document: marked fh:archive, linked to its subscription feed as rel="current"."""
    prev_archive: str | None = None
    """The next older archive page, if any."""
    next_archive: str | None = None
    """The next newer archive page (archive pages only); the newest one links back to the subscription feed."""
    hubs: tuple[str, ...] = ()
    """WebSub hubs announced by the document (subscription feeds only)."""

    def __post_init__(self) -> None:
        _check_utc(self)


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """A published feed as the index page and the OPML list describe it."""

    name: str
    title: str
    description: str
    updated: datetime
    entry_count: int
    language: str = ""

    def __post_init__(self) -> None:
        _check_utc(self)


@dataclass(frozen=True, slots=True)
class FeedDigest:
    """A feed's selection in brief: enough to know whether it must be rendered again."""

    count: int
    newest_updated: datetime | None
    rows_sha256: str
    urls: tuple[str, ...] = ()
    """The entries' URLs, newest first."""


@dataclass(frozen=True, slots=True)
class Problem:
    """An input that could not be used, and why; reported, never published."""

    locator: str
    reason: str


Requests = tuple[tuple[str, str, int], ...]
"""HTTP requests sent, as (host, answer, count): the answer is the status ("200", "304", "404", …), "error" when
none came (refused, reset, not HTTP) or "timeout" when none came before the deadline. Sorted."""


@dataclass(frozen=True, slots=True)
class SourceReport:
    """What one poll of one source did."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: tuple[Problem, ...] = ()
    failure: str | None = None
    duration: float = 0.0
    recent: int = 0
    """Files modified within pipeline.RECENT_WRITE of the poll: their writer may not be done yet."""
    degraded: str | None = None
    """Why the source looks broken though it answered (no items any more, empty article bodies)."""
    waiting: str | None = None
    """Why the poll asked nothing: its hosts asked to be left alone (Retry-After) or back off until later."""
    requests: Requests = ()
    """The HTTP requests the poll sent (each redirect is one), by host and answer."""


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one refresh did, source by source, and which files it wrote."""

    sources: tuple[SourceReport, ...]
    written: tuple[Path, ...] = field(default=())
    unchanged_files: tuple[Path, ...] = field(default=())
    topics: tuple[str, ...] = field(default=())
    """The URLs of the subscription feeds' files that changed: what WebSub hubs are told of."""
    feeds: tuple[tuple[str, int], ...] = field(default=())
    """Every published feed document (sections and editions too, not archive pages) with its number of entries."""

    @property
    def failed(self) -> bool:
        return any(s.failure for s in self.sources)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data (what the control API answers for a finished refresh)."""
        return {
            "sources": [
                {
                    **dataclasses.asdict(s),
                    "problems": [dataclasses.asdict(p) for p in s.problems],
                    "requests": [list(r) for r in s.requests],
                }
                for s in self.sources
            ],
            "written": [str(p) for p in self.written],
            "unchanged_files": [str(p) for p in self.unchanged_files],
            "topics": list(self.topics),
            "feeds": dict(self.feeds),
        }
