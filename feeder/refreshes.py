"""A refresh as ``feeder refresh`` and the service both run it: one at a time per config (the refresh lock),
recorded in status.json and fed to the metrics (metrics.prom follows); and the lines that tell how it went, and
how its WebSub pings went."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from feeder import status, websub
from feeder.archive import by_archive_folder
from feeder.config import Config
from feeder.locks import held
from feeder.metrics import Metrics
from feeder.models import Progress, RefreshReport
from feeder.pipeline import refresh, state_database
from feeder.polling import record
from feeder.store import Store
from feeder.websub import PingOutcome

log = logging.getLogger("feeder")


def refresh_lock(config: Config) -> Path:
    return config.state_dir / "refresh.lock"


def refresh_once(
    config: Config,
    now: datetime,
    sources: frozenset[str] | None = None,
    *,
    progress: Progress | None = None,
    next_polls: Mapping[str, datetime | None] | None = None,
    metrics: Metrics | None = None,
) -> RefreshReport:
    """One refresh under the config's refresh lock, recorded in status.json and fed to ``metrics`` (the daemon's;
    without one, a Metrics for this run alone, which writes metrics.prom all the same)."""
    with held(refresh_lock(config), wait=True, what="a refresh"), Store.open(state_database(config)) as store:
        report = refresh(config, store, now, progress=progress, sources=sources)
        if config.database is not None:  # for the other nodes: their status, and feeds to publish
            for source in report.sources:
                record(config, store, source, now)
        entries = store.count_entries()
    recorded = status.record(
        status.load(config.state_dir),
        report,
        started=now,
        next_polls=next_polls or {},
        entries=entries,
        configured=[s.name for s in config.sources],
    )
    status.save(config.state_dir, recorded)
    (metrics or Metrics(config.state_dir)).observe_refresh(report)
    return report


def ping_lines(outcomes: Sequence[PingOutcome]) -> list[tuple[bool, str]]:
    """Per hub, whether every ping went through, and a line saying how it went."""
    lines = []
    for hub, (mine, failed) in websub.by_hub(outcomes).items():
        if failed:
            lines.append((False, f"websub {hub}: {len(failed)} of {len(mine)} pings failed: {failed[-1].detail}"))
        else:
            lines.append((True, f"websub {hub}: pinged about {len(mine)} feed URLs"))
    return lines


def log_report(report: RefreshReport) -> None:
    for s in report.sources:
        if s.failure:
            log.error("%s: poll failed: %s", s.source, s.failure)
            for problem in s.problems:
                log.error("%s: %s", problem.locator, problem.reason)
            continue
        log.info(
            "%s: %d new, %d updated, %d unchanged, %d skipped, %d errors (%.2fs)",
            s.source,
            s.new,
            s.updated,
            s.unchanged,
            s.skipped,
            len(s.problems),
            s.duration,
        )
        for problem in s.problems:
            log.warning("%s: %s", problem.locator, problem.reason)
        if s.degraded:
            log.warning("%s: degraded: %s", s.source, s.degraded)
        if s.waiting:
            log.info("%s: poll skipped, asked to wait: %s", s.source, s.waiting)
    written, archives = by_archive_folder(report.written)
    for path in written:
        log.info("wrote %s", path)
    for folder, count in archives.items():
        log.info("wrote %d archive files in %s", count, folder)
