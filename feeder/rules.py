"""What feeder knows about one site, as data: the records a site rules file (feeder/sites/*.yaml) becomes.

Only data here: no I/O, no third-party imports. feeder/sites.py reads and checks the files and builds these;
the parsers, normalize.py and the sources take them as they are. A CSS selector arrives already translated to
XPath (``Pick.xpath``), so nothing past loading needs a CSS library.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

BUILT_IN_TRACKING = ("utm_*", "fbclid", "gclid")
"""Query parameters dropped from every article URL, whatever the site."""


@dataclass(frozen=True, slots=True)
class Pick:
    """One way to find a value in a page: the first element a selector matches, read as its text (HTML fields:
    its inner HTML) or as one attribute; or one property of the page's schema.org article (JSON-LD)."""

    css: str = ""
    xpath: str = ""
    attr: str | None = None
    json_ld: str | None = None


Field = tuple[Pick, ...]
"""Picks tried in order: the first that gives a value wins."""


@dataclass(frozen=True, slots=True)
class ArticleRules:
    """Where each field of an article page is, and what to take out of its lead and body."""

    url: re.Pattern[str] | None = None
    json_ld: bool = False
    title: Field = ()
    published: Field = ()
    modified: Field = ()
    author: Field = ()
    image: Field = ()
    lead: Field = ()
    body: Field = ()
    sections: Field = ()
    keywords: Field = ()
    remove: str = ""
    """One XPath for every ``remove`` selector: furniture dropped from the lead and the body."""
    removals: Field = ()
    """The ``remove`` selectors one by one (what ``feeder site check`` reports)."""
    remove_attribute_prefixes: tuple[str, ...] = ()
    share_label: re.Pattern[str] | None = None
    """The text of a share bar's label ('分享 :'): the label goes, with its block unless that holds paragraphs."""
    date_formats: tuple[re.Pattern[str], ...] = ()
    """Dates written as text (a seed's date line, a page's date), as patterns with named groups d, m, Y, H, M."""

    def is_article(self, url: str) -> bool:
        """Whether a link is an article page worth fetching (every link, when the site says nothing)."""
        return self.url is None or self.url.search(url) is not None


@dataclass(frozen=True, slots=True)
class UrlRules:
    """How an article URL becomes its canonical key, and which section it names."""

    hosts: frozenset[str]
    host_aliases: tuple[tuple[str, str], ...] = ()
    tracking: re.Pattern[str] = field(default_factory=lambda: tracking_pattern(()))
    section_segment: int | None = None
    """The 1-based segment of the path that names the section (folders only, never the last segment)."""
    section_under: str = "/"
    """Only paths under this one name a section."""

    def with_hosts(self, hosts: frozenset[str]) -> UrlRules:
        return UrlRules(hosts, self.host_aliases, self.tracking, self.section_segment, self.section_under)


@dataclass(frozen=True, slots=True)
class SiteRules:
    """One site: its name and defaults, its feeds, its URL rules and where an article page keeps each field."""

    name: str
    title: str
    urls: UrlRules
    article: ArticleRules = ArticleRules()
    language: str = "en"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    publisher: str | None = None
    feeds: tuple[str, ...] = ()
    path: str = ""
    """The file the rules were read from (messages name it)."""
    digest: str = ""
    """A hash of the rules: seeds are read again when the rules they were read with change."""

    @property
    def hosts(self) -> frozenset[str]:
        return self.urls.hosts

    def allowing(self, hosts: Iterable[str]) -> SiteRules:
        """These rules with articles allowed on ``hosts`` too (the config's ``allowed_hosts``)."""
        return dataclasses.replace(self, urls=self.urls.with_hosts(self.hosts | frozenset(hosts)))


def tracking_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """A pattern matching the built-in tracking parameters and ``names`` (``*`` matches any characters)."""
    alternatives = (re.escape(name).replace(r"\*", ".*") for name in (*BUILT_IN_TRACKING, *names))
    return re.compile(f"^(?:{'|'.join(alternatives)})$", re.IGNORECASE)


def generic_site(hosts: frozenset[str]) -> SiteRules:
    """What is known of a site nobody described: its hosts, nothing else."""
    return SiteRules(name="", title="", urls=UrlRules(hosts))
