"""refresh(): poll every source → ingest in one transaction → render → publish.

The stages meet here and nowhere else. One failing source, or one bad file,
never stops the others: it becomes a Problem or a failure in the report, and
what is already published stays. Publishing is idempotent and follows the
transaction, so a crash in between is repaired by the next refresh.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path

from feeder.build import build
from feeder.config import Config, SeedsSource
from feeder.models import Article, Problem, Progress, RefreshReport, SeedFile
from feeder.sources import seeds
from feeder.sources.interface import open_source
from feeder.store import Store

# Bump when parsing or normalizing changes what a seed file yields, so every file is read again.
PARSER_VERSION = "2"


def refresh(
    config: Config,
    store: Store,
    now: datetime,
    progress: Progress | None = None,
    sources: Collection[str] | None = None,
) -> RefreshReport:
    """Poll the named sources (all by default) once, then publish every document whose entries changed.

    ``progress`` may raise (RefreshAborted, say) to stop between files: the
    transaction is then rolled back and nothing is published.
    """
    polled = [s for s in config.sources if sources is None or s.name in sources]
    with store.transaction():
        forget_files_if_rules_changed(config, store)
        reports = tuple(open_source(source, config).poll(store, now, progress) for source in polled)
    built = build(config, store, now)
    return RefreshReport(
        sources=reports,
        written=tuple(built.written),
        unchanged_files=tuple(built.unchanged),
        topics=tuple(built.topics),
        feeds=tuple(built.feeds),
    )


def check_seeds(config: Config, now: datetime) -> Iterator[tuple[SeedsSource, SeedFile | None, Article | Problem]]:
    """Parse every seed of every source without touching the state or the output (``feeder check``)."""
    for source in config.sources:
        if isinstance(source, SeedsSource):
            for seed, result in seeds.SeedsPoller(source, config).check(now):
                yield source, seed, result


def forget_files_if_rules_changed(config: Config, store: Store) -> None:
    """Read every seed again when the parser, a site's rules or the host allowlist changed since the last refresh."""
    rules = seed_rules(config)
    if store.setting("seed_rules") != rules:
        for source in config.sources:
            store.forget_files(source.name)
        store.set_setting("seed_rules", rules)


def seed_rules(config: Config) -> str:
    """What seed files are read by: the parser's version, the host allowlist, the seeds sources' site rules."""
    sites = sorted({f"{s.site}={config.site(s.site).digest}" for s in config.sources if isinstance(s, SeedsSource)})
    return f"{PARSER_VERSION}:{','.join(sorted(config.allowed_hosts))}:{','.join(sites)}"


def seed_rules_changed(config: Config, store: Store) -> bool:
    """Whether forget_files_if_rules_changed has anything to do (a look, no write)."""
    return store.setting("seed_rules") != seed_rules(config)


def state_database(config: Config) -> Path | str:
    """Where the state is: the ``database:`` URL (PostgreSQL), else the SQLite file in state_dir."""
    return config.database or config.state_dir / "feeder.sqlite3"
