"""``feeder site check SITE URL-or-FILE``: what a site's rules extract from one page, to write or fix a rules file.

Prints each field with the rule that found it, the lengths of the lead and the body, and what each ``remove``
selector took out of the body; the caller exits non-zero when a required field (title, body) found nothing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from feeder.config import Config
from feeder.errors import ConfigError, FetchError, ParseError, SourceError
from feeder.http import Fetcher
from feeder.normalize import canonical_url, sections_of
from feeder.parse import PageCheck, check_page, decode_html, plain_text
from feeder.rules import SiteRules
from feeder.sources.web import fetch_settings

LABEL = 10


def check_site_page(config: Config, name: str, target: str, now: datetime, url: str | None = None) -> PageCheck:
    """The rules of site ``name`` applied to a page file or URL; ConfigError for an unknown site, SourceError
    when the page cannot be read."""
    site = config.sites.get(name)
    if site is None:
        raise ConfigError(f"unknown site {name!r} (known: {', '.join(sorted(config.sites)) or 'none'})")
    if "://" in target:
        html, url = _fetched(config, target, now), url or target
    else:
        html, url = _read(Path(target)), url or f"https://{min(site.hosts)}/"
    try:
        return check_page(html, url, site)
    except ParseError as e:
        raise SourceError(f"{target}: {e}") from e


def report_lines(check: PageCheck, site: SiteRules, target: str) -> list[str]:
    """The check as lines for a terminal."""
    lines = [f"site {site.name} ({site.path}) on {target}"]
    for found in check.fields:
        value = f"{len(found.value)} characters" if found.name == "lead" and found.value else found.value
        lines.append(_line(found.name, value or "-", found.rule))
        if found.name == "modified":  # the section follows the dates: it comes from the URL, not a field
            section = _section(check.article.url, site) if check.article else None
            lines.append(_line("section", section or "-", "section rule"))
    body = len(plain_text(check.article.body_html)) if check.article else 0
    lines.append(_line("body", f"{body} characters" if body else "-", check.body_rule))
    for number, removal in enumerate(check.removals):
        label = "removed" if number == 0 else ""
        sample = f"  ({removal.sample})" if removal.sample else ""
        lines.append(_line(label, f"{removal.selector}: {removal.matched}{sample}", ""))
    if check.problem:
        lines.append(f"problem: {check.problem}")
    if check.missing:
        lines.append(f"missing: {', '.join(check.missing)}: no rule for it found anything on this page")
    return lines


def _line(label: str, value: str, rule: str) -> str:
    return f"  {label:<{LABEL}} {value}" + (f"   [{rule}]" if rule else "")


def _section(url: str, site: SiteRules) -> str | None:
    host = (urlsplit(url).hostname or "").lower()
    urls = site.urls.with_hosts(site.hosts | {host})
    try:
        return sections_of(canonical_url(url, urls), urls)[0]
    except ParseError:
        return None


def _read(path: Path) -> str:
    try:
        return decode_html(path.read_bytes(), None)
    except OSError as e:
        raise SourceError(f"{path}: cannot read the page: {e.strerror or e}") from e


def _fetched(config: Config, url: str, now: datetime) -> str:
    """One page, fetched from whatever host it is on: an admin asked for this one URL."""
    host = (urlsplit(url).hostname or "").lower()

    async def fetch() -> str:
        async with Fetcher(fetch_settings(config, frozenset({host})), {}, now=lambda: now) as fetcher:
            answer = await fetcher.fetch(url, max_bytes=config.http.max_page_bytes)
        return decode_html(answer.content, answer.content_type)

    try:
        return asyncio.run(fetch())
    except FetchError as e:
        raise SourceError(str(e)) from e
