"""Sources: one module per kind, behind one small interface.

A source is polled once per refresh, inside the refresh's transaction: it writes the articles it found to the
store and says what it did in a SourceReport. The pipeline and the scheduler know only ``Source`` and
``open_source``; what a kind needs (a folder, a site's rules, a feed URL) stays in its module:

- ``seeds``: a folder of scraped article files, read by a site's rules (seeds.py, folder.py, reading.py);
- ``site``: a site described by a rules file, its feeds and its article pages (site.py);
- ``feed``: any RSS, Atom or JSON feed, with its articles' full text when asked (feed.py).

site.py and feed.py share the polling of feeds and pages (web.py) and the HTTP client (feeder/http.py).
"""

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
