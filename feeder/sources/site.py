"""The ``site`` source: a site described by a rules file (feeder/sites/*.yaml): its feeds, then its article
pages read by its rules. ``kind: rfi`` in older configs is this kind with ``site: rfi-cn``."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from feeder.config import Config, SiteSource
from feeder.models import ParsedArticle, Progress, SourceReport
from feeder.parse import FieldsFound, read_page
from feeder.rules import UrlRules
from feeder.sources.web import WebPlan, fetch_settings, poll_web
from feeder.store import Store


class SitePoller:
    """Polls one site's feeds and article pages."""

    def __init__(self, spec: SiteSource, config: Config) -> None:
        self.name = spec.name
        self.config = config
        site = self.site = config.site(spec.site).allowing(config.allowed_hosts)
        routes = tuple((host, spec.origin) for host in sorted(config.site(spec.site).hosts)) if spec.origin else ()
        self.plan = WebPlan(
            name=spec.name,
            feeds=spec.feeds or site.feeds,
            settings=fetch_settings(config, site.hosts, routes),
            urls_for=self._urls,
            read_page=self._read if spec.fulltext else None,
            max_pages=spec.max_pages,
            fetches=self.is_article,
            adopt=self.is_article,
        )

    def poll(self, store: Store, now: datetime, progress: Progress | None = None) -> SourceReport:
        if self.plan.read_page is not None:
            store.refetch_pages_if_rules_changed(self.name, self.site.digest)
        return poll_web(self.plan, self.config, store, now, progress)

    def is_article(self, url: str) -> bool:
        """Whether a URL is one of the site's article pages, worth fetching."""
        return urlsplit(url).hostname in self.site.hosts and self.site.article.is_article(url)

    def _urls(self, url: str) -> UrlRules:
        return self.site.urls

    def _read(self, html: str, url: str) -> tuple[ParsedArticle, FieldsFound | None]:
        return read_page(html, url, url, self.site)
