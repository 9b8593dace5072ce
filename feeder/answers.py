"""What the control API answers, as JSON-ready data (feeder/api.py carries it over HTTP; nothing here knows HTTP).

The status as ``feeder status --json`` prints it, the configured sources with their last poll, the published
feeds and editions, the daemon's health, and refreshes asked for by id through the Refresher
(so they follow its queueing rule: one at a time, a request during a poll runs once right after it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feeder import status
from feeder.config import VARIANT_LANGUAGES, Config, FeedConfig
from feeder.errors import FeederError, UnknownSourceError
from feeder.scheduler import Asked, Refreshes, Schedule

log = logging.getLogger("feeder")

FORMATS = ("atom", "rss", "json")
JsonObject = dict[str, Any]
Queued = Callable[[], JsonObject]
"""The job queue as the status shows it (PostgreSQL only)."""


def current_status(config: Config, schedule: Schedule, queue: Queued | None = None) -> status.Status:
    """The status last recorded, with when each source is polled next (and on PostgreSQL, the job queue)."""
    current = status.load(config.state_dir)
    status.set_next_polls(current["sources"], schedule.next_polls())
    if queue is not None:
        try:
            current["queue"] = queue()
        except FeederError as e:
            current["queue"] = {"error": str(e)}
    return current


class Answers:
    """The daemon's answers; ``config`` is a function because a reload (SIGHUP) replaces the config."""

    def __init__(
        self,
        config: Callable[[], Config],
        refresher: Refreshes,
        schedule: Schedule,
        *,
        queue: Queued | None = None,
        trouble: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._config = config
        self._refresher = refresher
        self._schedule = schedule
        self._queue = queue
        self._trouble = trouble

    def status(self) -> JsonObject:
        return current_status(self._config(), self._schedule, self._queue)

    def sources(self) -> list[JsonObject]:
        """Each configured source: its kind and interval, and what its last poll did (status.json's figures)."""
        config = self._config()
        recorded = self.status()["sources"]
        return [
            {
                "name": s.name,
                "kind": s.kind,
                "interval": duration_text(s.interval),
                "interval_seconds": int(s.interval.total_seconds()),
                "last_poll": None,
                "next_poll": None,
                "degraded": None,
                "failure": None,
                "waiting": None,
                **recorded.get(s.name, {}),
            }
            for s in config.sources
        ]

    def feeds(self) -> list[JsonObject]:
        """Each feed and each of its editions as published now: entries, last change, sizes and URLs."""
        config = self._config()
        return [_published(config, feed, edition) for feed in config.feeds for edition in (None, *feed.variants)]

    def health(self) -> str | None:
        """None while the schedule and the refresh worker run and the last refresh published; else why not."""
        if not self._schedule.running or not self._refresher.working:
            return "the scheduler is not running"
        return self._trouble() or self._refresher.last_failure

    def refresh(self, names: Sequence[str] | None) -> JsonObject:
        """Queue a refresh of these sources (all when None) with the Refresher; where it stands, with its id."""
        known = [s.name for s in self._config().sources]
        unknown = sorted(set(names or ()) - set(known))
        if unknown:
            raise UnknownSourceError(f"unknown source(s): {', '.join(unknown)}")
        chosen = list(names) if names else known
        ident = self._refresher.ask(chosen)
        log.info("refresh of %s requested over the control API (%s)", ", ".join(sorted(set(chosen))), ident)
        asked = self._refresher.progress(ident)
        assert asked is not None  # just asked for
        return progress_data(asked)

    def progress(self, ident: str) -> JsonObject | None:
        asked = self._refresher.progress(ident)
        return progress_data(asked) if asked else None


def progress_data(asked: Asked) -> JsonObject:
    return {
        "id": asked.id,
        "sources": list(asked.sources),
        "state": asked.state,
        "report": asked.report.to_dict() if asked.report else None,
        "error": asked.error,
    }


def _published(config: Config, feed: FeedConfig, edition: str | None) -> JsonObject:
    name = feed.variant_name(edition) if edition else feed.name
    paths = {kind: config.output_dir / f"{name}.{kind}" for kind in FORMATS}
    sizes = {kind: _size(path) for kind, path in paths.items()}
    title = f"{feed.title} ({VARIANT_LANGUAGES[edition]})" if edition else feed.title
    return {
        "name": name,
        "feed": feed.name,
        "title": title,
        "edition": edition,
        "entries": _entries(paths["json"]),
        "last_change": _changed(paths["atom"]),
        "bytes": sizes,
        "urls": {kind: f"{config.base_url}{name}.{kind}" for kind in FORMATS},
    }


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _changed(path: Path) -> str | None:
    """When the file was last written: feeder writes a feed only when its bytes change."""
    try:
        return status.iso(datetime.fromtimestamp(path.stat().st_mtime, UTC))
    except OSError:
        return None


def _entries(json_feed: Path) -> int | None:
    """The entries in the published JSON Feed (the subscription feed's, archive pages aside)."""
    try:
        items = json.loads(json_feed.read_bytes()).get("items")
    except (OSError, ValueError, AttributeError):
        return None
    return len(items) if isinstance(items, list) else None


def duration_text(interval: timedelta) -> str:
    """A duration as config.yaml writes it: 90 seconds is '90s', 900 is '15m', 86400 is '1d'."""
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
