"""Polling the web: feeds, then the article pages worth fetching. What ``site`` and ``feed`` sources share.

Feeds are fetched with conditional GETs (an unchanged feed costs a 304 and no body); every item becomes a
lead-only article version. When the source reads pages, an article page is fetched once per article version
(a new item, or an item whose feed date moved), at most ``max_pages`` per poll; a failed page keeps the feed's
title, lead, image and date and is tried again later (5 minutes, doubling, capped at 6 hours) while a feed
still lists it. A page the rules no longer fit (no title or body where the rules look) keeps the feed's lead and
is counted, so the report says when a site's rules went stale.

What a poll writes, it writes in a few short transactions, each after the fetching it follows, with the parsing
done before it: in a refresh they are all part of its one transaction; alone (a worker's job on PostgreSQL) they
let other workers write while this one waits on the network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feeder import __version__
from feeder.config import Config
from feeder.errors import FetchError, ParseError, PutOffError, RetryLater
from feeder.http import Fetcher
from feeder.models import Article, Fetched, HostState, ParsedArticle, Problem, Progress, SourceReport
from feeder.normalize import normalize
from feeder.parse import FieldsFound, RulesMissedError, decode_html, parse_feed, plain_text
from feeder.politeness import FetchSettings
from feeder.rules import UrlRules
from feeder.store import Outcome, Store

SHORT_BODY = 0.3  # an article body under 30% of the usual length counts as short
DEGRADED_MIN_PAGES = 3  # pages a poll must read before their bodies can flag the source
PAGE_RETRY_FIRST = timedelta(minutes=5)
PAGE_RETRY_CAP = timedelta(hours=6)

PageReader = Callable[[str, str], tuple[ParsedArticle, FieldsFound | None]]
"""(decoded page, its URL) → the article, and which of the rules' required fields matched (None: no rules)."""


@dataclass(frozen=True)
class WebPlan:
    """What one poll fetches and how it reads it."""

    name: str
    feeds: tuple[str, ...]
    settings: FetchSettings
    urls_for: Callable[[str], UrlRules]
    """The URL rules of an article URL (by its host)."""
    read_page: PageReader | None = None
    """None: lead-only entries from the feeds, no page fetched."""
    max_pages: int = 30
    fetches: Callable[[str], bool] = lambda url: True
    """Which listed articles' pages are worth fetching (a site's ``article.url``)."""
    adopt: Callable[[str], bool] | None = None
    """Articles other sources found whose pages this source fetches once too (a site's own articles)."""


@dataclass
class _Poll:
    plan: WebPlan
    config: Config
    store: Store
    now: datetime
    counts: dict[str, int] = field(default_factory=lambda: {"new": 0, "updated": 0, "unchanged": 0})
    problems: list[Problem] = field(default_factory=list)
    host_waiting: bool = False
    degraded: list[str] = field(default_factory=list)
    body_lengths: list[int] = field(default_factory=list)
    put_off: list[str] = field(default_factory=list)
    """Why feeds were not asked for: their host's wait (Retry-After, backoff) was not over."""
    ruled: dict[str, list[FieldsFound]] = field(default_factory=dict)
    """By site: what its rules found on each page read by them."""

    def count(self, outcome: Outcome) -> None:
        self.counts[outcome] += 1


@dataclass(frozen=True, slots=True)
class _Listed:
    """A feed as read: how many items it has, and the articles of those that normalize."""

    items: int
    articles: list[Article]


def user_agent(config: Config) -> str:
    contact = f"; +{config.http.contact}" if config.http.contact else ""
    return f"feeder/{__version__} (feed republisher{contact})"


def fetch_settings(config: Config, hosts: frozenset[str], routes: tuple[tuple[str, str], ...] = ()) -> FetchSettings:
    http = config.http
    return FetchSettings(
        user_agent=user_agent(config),
        hosts=hosts,
        routes=routes,
        connect_timeout=http.connect_timeout.total_seconds(),
        read_timeout=http.read_timeout.total_seconds(),
        deadline=http.deadline.total_seconds(),
        per_host=http.per_host,
    )


def poll_web(plan: WebPlan, config: Config, store: Store, now: datetime, progress: Progress | None) -> SourceReport:
    """One poll; the failures of single feeds and pages are problems, not a failed source."""
    started = time.perf_counter()
    poll = _Poll(plan, config, store, now)
    hosts = store.hosts()
    known = {host: dataclasses.replace(state) for host, state in hosts.items()}
    fetcher = Fetcher(plan.settings, hosts, now=lambda: now)
    failure = asyncio.run(_run(poll, fetcher, progress))
    changed = {host: state for host, state in hosts.items() if state != known.get(host, HostState())}
    if changed:  # only what this poll learnt: what another worker learnt of the other hosts meanwhile stays
        with store.transaction():
            store.save_hosts(changed)
    waiting = None
    if failure is not None and len(poll.put_off) == len(poll.problems):  # every feed was put off, none failed
        waiting = "; ".join(dict.fromkeys(poll.put_off))
        failure, poll.problems = None, []  # not a failure: the site asked to be left alone until then
    return SourceReport(
        plan.name,
        new=poll.counts["new"],
        updated=poll.counts["updated"],
        unchanged=poll.counts["unchanged"],
        problems=tuple(poll.problems),
        failure=failure,
        duration=time.perf_counter() - started,
        degraded="; ".join(poll.degraded) or None,
        waiting=waiting,
        requests=fetcher.requests.counted(),
    )


async def _run(poll: _Poll, fetcher: Fetcher, progress: Progress | None) -> str | None:
    """The poll itself; returns why the source failed as a whole, or None."""
    feeds = poll.plan.feeds
    async with fetcher:
        answers = await asyncio.gather(*(_fetch(fetcher, poll, url, poll.config.http.max_feed_bytes) for url in feeds))
        if all(answer is None for answer in answers):
            return "no feed could be read (see the errors)"
        read = [(url, answer, _read_feed(poll, url, answer)) for url, answer in zip(feeds, answers, strict=True)]
        with poll.store.transaction():
            for url, answer, listed in read:
                if answer is not None:
                    poll.store.save_validators(url, answer.validators)
                if listed is not None:
                    _store_feed(poll, url, listed)
        if poll.plan.read_page is not None:
            await _fetch_pages(fetcher, poll, progress)
    return None


async def _fetch(fetcher: Fetcher, poll: _Poll, url: str, max_bytes: int) -> Fetched | None:
    try:
        fetched = await fetcher.fetch(url, validators=poll.store.validators(url), max_bytes=max_bytes)
    except FetchError as e:
        poll.problems.append(Problem(url, str(e)))
        if isinstance(e, PutOffError):
            poll.put_off.append(e.reason)
        return None
    return fetched


def _read_feed(poll: _Poll, url: str, answer: Fetched | None) -> _Listed | None:
    """The items of a feed that was read (200) and parses; None leaves what it listed before (a 304, a failed
    or a broken feed)."""
    if answer is None or answer.status != 200:
        return None
    try:
        items = parse_feed(answer.content, url, answer.content_type)
    except ParseError as e:
        poll.problems.append(Problem(url, str(e)))
        return None
    articles = []
    for item in items:
        try:
            urls = poll.plan.urls_for(item.url)
            article = normalize(item, urls=urls, retrieved_at=item.published_at or answer.fetched_at, now=poll.now)
        except ParseError as e:
            poll.problems.append(Problem(f"{url}: {item.url}", str(e)))
            continue
        articles.append(article)
    return _Listed(len(items), articles)


def _store_feed(poll: _Poll, url: str, listed_items: _Listed) -> None:
    """Merge a feed's articles into the store and replace what it lists."""
    before = poll.store.emptied(f"items:{url}", listed_items.items)
    articles = listed_items.articles
    if before:
        poll.degraded.append(f"{url} lists no items any more (it listed {before})")
    for outcome in poll.store.upsert_many(articles, poll.plan.name):  # new articles inserted in one statement
        poll.count(outcome)
    if poll.plan.read_page is not None:
        for article in articles:
            if poll.plan.fetches(article.url):
                poll.store.note_feed_item(article.url, poll.plan.name, article.published)
    poll.store.set_feed_listing(url, {article.url for article in articles})


async def _fetch_pages(fetcher: Fetcher, poll: _Poll, progress: Progress | None) -> None:
    with poll.store.transaction():
        if poll.plan.adopt is not None:
            poll.store.adopt_articles_without_pages(poll.plan.name, poll.plan.adopt)
        due = poll.store.pages_due(poll.plan.name, poll.now, poll.plan.max_pages)
    answers = await asyncio.gather(*(_fetch_page(fetcher, poll, url) for url in due))
    with poll.store.transaction():
        for done, (url, answer) in enumerate(zip(due, answers, strict=True), start=1):
            _ingest_page(poll, url, answer)
            if progress:
                progress(poll.plan.name, done, len(due))
        _check_rules(poll)
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
    assert poll.plan.read_page is not None
    try:
        page, found = poll.plan.read_page(decode_html(answer.content, answer.content_type), url)
    except ParseError as e:
        if isinstance(e, RulesMissedError):
            _note_fields(poll, e.found)
        _page_failed(poll, url, str(e))
        return
    if found is not None:
        _note_fields(poll, found)
    # the entry keeps the URL readers know it by, even if the page now names another (a moved article)
    page = dataclasses.replace(page, url=url)
    try:
        urls = poll.plan.urls_for(url)
        article = normalize(page, urls=urls, retrieved_at=page.published_at or answer.fetched_at, now=poll.now)
    except ParseError as e:
        _page_failed(poll, url, str(e))
        return
    poll.count(poll.store.upsert(article, poll.plan.name))
    poll.store.page_fetched(url)
    poll.body_lengths.append(len(plain_text(page.body_html)) if page.fulltext else 0)


def _note_fields(poll: _Poll, found: FieldsFound) -> None:
    poll.ruled.setdefault(found.site, []).append(found)


def _check_rules(poll: _Poll) -> None:
    """Say which required fields a site's rules found nothing for on some pages: the rules may need an edit."""
    for site, pages in poll.ruled.items():
        for name in ("title", "body"):
            missed = sum(1 for page in pages if not getattr(page, name))
            if missed:
                poll.degraded.append(f"site {site}: {name} matched nothing on {missed} of {len(pages)} pages")


def _check_bodies(poll: _Poll) -> None:
    """Flag the source when most article pages of a poll come without their body, or far shorter than usual."""
    key = f"usual_body_chars:{poll.plan.name}"
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
