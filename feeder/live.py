"""Polling the live RFI source: its feeds, then the article pages worth fetching.

Feeds are fetched with conditional GETs (an unchanged feed costs a 304 and
no body); every item becomes a lead-only article version. An article page is
fetched once per article version (a new item, or an item whose feed date
moved), plus once for articles that only the seeds know, at most
``max_pages`` per poll; a failed page keeps the feed's title, lead, image and
date and is tried again later (5 minutes, doubling, capped at 6 hours) while
a feed still lists it. Runs inside the refresh's transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feeder import __version__
from feeder.config import Config, RfiSource
from feeder.errors import FetchError, ParseError, RetryLater
from feeder.http import Fetcher, FetchSettings
from feeder.models import Fetched, HostState, Problem, Progress, SourceReport
from feeder.normalize import normalize
from feeder.parse import decode_html, parse_feed, parse_page, plain_text
from feeder.store import Outcome, Store

SHORT_BODY = 0.3  # an article body under 30% of the usual length counts as short
DEGRADED_MIN_PAGES = 3  # pages a poll must read before their bodies can flag the source
PAGE_RETRY_FIRST = timedelta(minutes=5)
PAGE_RETRY_CAP = timedelta(hours=6)


@dataclass
class _Poll:
    source: RfiSource
    config: Config
    store: Store
    now: datetime
    counts: dict[str, int] = field(default_factory=lambda: {"new": 0, "updated": 0, "unchanged": 0})
    problems: list[Problem] = field(default_factory=list)
    host_waiting: bool = False
    degraded: list[str] = field(default_factory=list)
    body_lengths: list[int] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        self.counts[outcome] += 1


def user_agent(config: Config) -> str:
    contact = f"; +{config.http.contact}" if config.http.contact else ""
    return f"feeder/{__version__} (feed republisher{contact})"


def fetch_settings(config: Config, source: RfiSource) -> FetchSettings:
    http = config.http
    return FetchSettings(
        user_agent=user_agent(config),
        origin=source.origin,
        connect_timeout=http.connect_timeout.total_seconds(),
        read_timeout=http.read_timeout.total_seconds(),
        deadline=http.deadline.total_seconds(),
        per_host=http.per_host,
    )


def poll_rfi(
    source: RfiSource, config: Config, store: Store, now: datetime, progress: Progress | None = None
) -> SourceReport:
    """One poll of an RFI source; the failures of single feeds and pages are problems, not a failed source."""
    poll = _Poll(source, config, store, now)
    hosts = store.hosts()
    failure = asyncio.run(_run(poll, hosts, progress))
    store.save_hosts(hosts)
    return SourceReport(
        source.name,
        new=poll.counts["new"],
        updated=poll.counts["updated"],
        unchanged=poll.counts["unchanged"],
        problems=tuple(poll.problems),
        failure=failure,
        degraded="; ".join(poll.degraded) or None,
    )


async def _run(poll: _Poll, hosts: dict[str, HostState], progress: Progress | None) -> str | None:
    """The poll itself; returns why the source failed as a whole, or None."""
    async with Fetcher(fetch_settings(poll.config, poll.source), hosts, now=lambda: poll.now) as fetcher:
        answers = await asyncio.gather(
            *(_fetch(fetcher, poll, url, poll.config.http.max_feed_bytes) for url in poll.source.feeds)
        )
        if all(answer is None for answer in answers):
            return "no feed could be read (see the errors)"
        for url, answer in zip(poll.source.feeds, answers, strict=True):
            if answer is not None and answer.status == 200:
                _ingest_feed(poll, url, answer)
        if poll.source.fulltext:
            await _fetch_pages(fetcher, poll, progress)
    return None


async def _fetch(fetcher: Fetcher, poll: _Poll, url: str, max_bytes: int) -> Fetched | None:
    try:
        fetched = await fetcher.fetch(url, validators=poll.store.validators(url), max_bytes=max_bytes)
    except FetchError as e:
        poll.problems.append(Problem(url, str(e)))
        return None
    poll.store.save_validators(url, fetched.validators)
    return fetched


def _ingest_feed(poll: _Poll, url: str, answer: Fetched) -> None:
    """Ingest a feed that was read; its listing is replaced only when it parses (a 304, a failed or a broken
    feed leaves what it listed before)."""
    try:
        items = parse_feed(answer.content, url, answer.content_type)
    except ParseError as e:
        poll.problems.append(Problem(url, str(e)))
        return
    before = poll.store.emptied(f"items:{url}", len(items))
    if before:
        poll.degraded.append(f"{url} lists no items any more (it listed {before})")
    listed = set()
    for item in items:
        try:
            article = normalize(
                item,
                allowed_hosts=poll.config.allowed_hosts,
                retrieved_at=item.published_at or answer.fetched_at,
                now=poll.now,
            )
        except ParseError as e:
            poll.problems.append(Problem(f"{url}: {item.url}", str(e)))
            continue
        poll.count(poll.store.upsert(article, poll.source.name))
        poll.store.note_feed_item(article.url, poll.source.name, article.published)
        listed.add(article.url)
    poll.store.set_feed_listing(url, listed)


async def _fetch_pages(fetcher: Fetcher, poll: _Poll, progress: Progress | None) -> None:
    poll.store.adopt_articles_without_pages(poll.source.name)
    due = poll.store.pages_due(poll.source.name, poll.now, poll.source.max_pages)
    answers = await asyncio.gather(*(_fetch_page(fetcher, poll, url) for url in due))
    for done, (url, answer) in enumerate(zip(due, answers, strict=True), start=1):
        _ingest_page(poll, url, answer)
        if progress:
            progress(poll.source.name, done, len(due))
    _check_bodies(poll)


async def _fetch_page(fetcher: Fetcher, poll: _Poll, url: str) -> Fetched | FetchError:
    try:
        fetched = await fetcher.fetch(
            url, validators=poll.store.validators(url), max_bytes=poll.config.http.max_page_bytes
        )
    except FetchError as e:
        return e  # gathered with the others: one page's failure must not cancel the rest
    return fetched


def _ingest_page(poll: _Poll, url: str, answer: Fetched | FetchError) -> None:
    if isinstance(answer, RetryLater):
        _host_waits(poll, answer)  # not the page's fault: it is tried again once the host may be asked
        return
    if isinstance(answer, FetchError):
        _page_failed(poll, url, str(answer))
        return
    poll.store.save_validators(url, answer.validators)
    if answer.status == 304:
        poll.store.page_fetched(url)
        return
    try:
        page = parse_page(decode_html(answer.content, answer.content_type), url, url)
        # the entry keeps the URL readers know it by, even if the page now names another (a moved article)
        page = dataclasses.replace(page, url=url)
        article = normalize(
            page,
            allowed_hosts=poll.config.allowed_hosts,
            retrieved_at=page.published_at or answer.fetched_at,
            now=poll.now,
        )
    except ParseError as e:
        _page_failed(poll, url, str(e))
        return
    poll.count(poll.store.upsert(article, poll.source.name))
    poll.store.page_fetched(url)
    poll.body_lengths.append(len(plain_text(page.body_html)) if page.fulltext else 0)


def _check_bodies(poll: _Poll) -> None:
    """Flag the source when most article pages of a poll come without their body, or far shorter than usual."""
    key = f"usual_body_chars:{poll.source.name}"
    usual = float(poll.store.setting(key) or 0)
    short = [n for n in poll.body_lengths if n == 0 or n < SHORT_BODY * usual]
    if len(poll.body_lengths) >= DEGRADED_MIN_PAGES and 2 * len(short) >= len(poll.body_lengths):
        poll.degraded.append(
            f"{len(short)} of {len(poll.body_lengths)} article pages had an empty or unusually short body "
            f"(usually about {usual:.0f} characters): the site may have changed its markup or be blocking us"
        )
    normal = sorted(n for n in poll.body_lengths if n not in short)
    if normal:
        median = normal[len(normal) // 2]
        poll.store.set_setting(key, str(round(median if not usual else 0.8 * usual + 0.2 * median)))


def _host_waits(poll: _Poll, error: RetryLater) -> None:
    if not poll.host_waiting:  # one line for all the pages put off, not one per page
        poll.host_waiting = True
        poll.problems.append(Problem(error.url, f"{error.reason}; article pages are put off until then"))


def _page_failed(poll: _Poll, url: str, reason: str) -> None:
    failures = poll.store.page_failures(url)
    wait = min(PAGE_RETRY_CAP, PAGE_RETRY_FIRST * 2**failures)
    poll.store.page_failed(url, poll.now + wait)
    poll.problems.append(Problem(url, f"{reason} (the feed's title and lead stay; next try in {wait})"))
