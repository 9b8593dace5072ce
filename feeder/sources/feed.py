"""The ``feed`` source: any RSS, Atom or JSON feed on the web, its articles' full text when asked.

``fulltext: none`` keeps what the feed says; ``site`` fetches each article page with the rules of the site whose
hosts hold the article's host (articles on other hosts stay lead-only); ``auto`` extracts the main text of any
page. Articles may be on the feed's own host and on the hosts the source lists. A URL on a described site is
made canonical by that site's rules, so the same article from a site source and a feed source is one entry.
Canonical URLs say https; when the feed itself is served over plain http, its host's pages are fetched over
http as well.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from feeder.config import Config, FeedSource
from feeder.errors import ParseError
from feeder.models import ParsedArticle, Progress, SourceReport
from feeder.parse import FieldsFound, read_page
from feeder.rules import SiteRules, UrlRules
from feeder.sites import site_for_host
from feeder.sources.web import WebPlan, fetch_settings, poll_web
from feeder.store import Store


class FeedPoller:
    """Polls one feed URL."""

    def __init__(self, spec: FeedSource, config: Config) -> None:
        self.name = spec.name
        self.config = config
        self.fulltext = spec.fulltext
        feed_url = urlsplit(spec.url)
        own = (feed_url.hostname or "").lower()
        self.hosts = frozenset({own, *spec.hosts, *config.allowed_hosts})
        # canonical URLs say https; a feed served over plain http has its own host's pages fetched that way too
        routes = ((own, f"http://{feed_url.netloc}"),) if feed_url.scheme == "http" else ()
        reader = {"none": None, "site": self._read_by_site, "auto": self._read_any}[spec.fulltext]
        self.plan = WebPlan(
            name=spec.name,
            feeds=(spec.url,),
            settings=fetch_settings(config, self.hosts, routes),
            urls_for=self._urls,
            read_page=reader,
            max_pages=spec.max_pages,
            fetches=self._has_site if spec.fulltext == "site" else lambda url: True,
        )

    def poll(self, store: Store, now: datetime, progress: Progress | None = None) -> SourceReport:
        if self.fulltext == "site":
            rules = ",".join(sorted(site.digest for site in self.config.sites.values()))
            store.refetch_pages_if_rules_changed(self.name, rules)
        return poll_web(self.plan, self.config, store, now, progress)

    def _site(self, url: str) -> SiteRules | None:
        return site_for_host(self.config.sites, (urlsplit(url).hostname or "").lower())

    def _urls(self, url: str) -> UrlRules:
        site = self._site(url)
        return site.urls.with_hosts(self.hosts) if site else UrlRules(self.hosts)

    def _has_site(self, url: str) -> bool:
        site = self._site(url)
        return site is not None and site.article.is_article(url)

    def _read_by_site(self, html: str, url: str) -> tuple[ParsedArticle, FieldsFound | None]:
        site = self._site(url)
        if site is None:
            raise ParseError("no site rules cover this page's host")
        return read_page(html, url, url, site)

    def _read_any(self, html: str, url: str) -> tuple[ParsedArticle, FieldsFound | None]:
        from feeder.parse.extract import extract_page  # noqa: PLC0415  (trafilatura: ~6 MB, only for fulltext: auto)

        return extract_page(html, url, url), None
