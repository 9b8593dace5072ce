"""The one interface of every source kind, and the source a config entry describes."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from feeder.config import Config, FeedSource, SeedsSource, SiteSource
from feeder.models import Progress, SourceReport
from feeder.sources import feed, seeds, site
from feeder.store import Store


class Source(Protocol):
    name: str

    def poll(self, store: Store, now: datetime, progress: Progress | None = None) -> SourceReport:
        """One poll: the articles found go to the store; failures of single items are problems in the report."""
        ...


def open_source(spec: SeedsSource | SiteSource | FeedSource, config: Config) -> Source:
    """The source a config entry describes."""
    if isinstance(spec, SeedsSource):
        return seeds.SeedsPoller(spec, config)
    if isinstance(spec, SiteSource):
        return site.SitePoller(spec, config)
    return feed.FeedPoller(spec, config)
