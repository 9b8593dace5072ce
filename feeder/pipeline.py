"""refresh(): poll every source → ingest in one transaction → render → publish.

The stages meet here and nowhere else. One failing source, or one bad file,
never stops the others: it becomes a Problem or a failure in the report, and
what is already published stays. Publishing is idempotent and follows the
transaction, so a crash in between is repaired by the next refresh.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from feeder.build import build
from feeder.config import Config, RfiSource, SeedsSource
from feeder.errors import SourceError
from feeder.live import poll_rfi
from feeder.models import (
    Article,
    Problem,
    Progress,
    RefreshReport,
    SeedFile,
    SourceReport,
)
from feeder.reading import ReadRules, SeedJob, SeedRead, read_all, read_seed
from feeder.sources import seeds
from feeder.store import Store

# Bump when parsing or normalizing changes what a seed file yields, so every file is read again.
PARSER_VERSION = "2"
# A file modified this recently may still be being written; the service polls again soon.
RECENT_WRITE = timedelta(seconds=10)
# Read files are written to the store this many at a time.
RECORD_BATCH = 64


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
        _forget_files_if_rules_changed(config, store)
        reports = tuple(_poll(source, config, store, now, progress) for source in polled)
    built = build(config, store, now)
    return RefreshReport(
        sources=reports,
        written=tuple(built.written),
        unchanged_files=tuple(built.unchanged),
        topics=tuple(built.topics),
    )


@dataclass
class _Tally:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)

    recent: int = 0
    degraded: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def report(self, source: str, failure: str | None = None) -> SourceReport:
        elapsed = time.perf_counter() - self.started
        problems = tuple(self.problems)
        counts = (self.new, self.updated, self.unchanged, self.skipped)
        return SourceReport(source, *counts, problems, failure, elapsed, self.recent, self.degraded)


def _poll(
    source: SeedsSource | RfiSource, config: Config, store: Store, now: datetime, progress: Progress | None
) -> SourceReport:
    if isinstance(source, RfiSource):
        started = time.perf_counter()
        report = poll_rfi(source, config, store, now, progress)
        return dataclasses.replace(report, duration=time.perf_counter() - started)
    return _poll_seeds(source, config, store, now, progress)


def _poll_seeds(
    source: SeedsSource, config: Config, store: Store, now: datetime, progress: Progress | None
) -> SourceReport:
    """Read the files that are new or whose size or mtime moved; the others cost a stat and a lookup."""
    tally = _Tally()
    remembered = store.count_files(source.name)
    listed = _Listing(source, store, tally, now)
    rules = ReadRules(source.name, frozenset(config.allowed_hosts), now)
    try:
        done = 0
        for reads in _batches(read_all(listed.jobs(), rules), RECORD_BATCH):
            _record(reads, source, store, tally)
            for _ in reads:
                done += 1
                if progress:
                    progress(source.name, done, listed.to_read)
    except SourceError as e:
        return tally.report(source.name, failure=str(e))
    before = store.emptied(f"files:{source.name}", listed.count)
    tally.degraded = f"the folder holds no seed files any more (it held {before})" if before else None
    if listed.known < remembered:  # some remembered file was not listed: find which, and forget it
        gone = [path for path in store.file_paths(source.name) if not seeds.is_seed(source.path, path)]
        store.forget_paths(source.name, gone)
    tally.problems.sort(key=lambda p: p.locator)
    return tally.report(source.name)


class _Listing:
    """The folder's files, batch by batch, as jobs for those to read; counts what it lists."""

    def __init__(self, source: SeedsSource, store: Store, tally: _Tally, now: datetime) -> None:
        self.source, self.store, self.tally = source, store, tally
        self.recent_after = (now - RECENT_WRITE).timestamp() * 1e9
        self.count = self.known = self.to_read = 0

    def jobs(self) -> Iterator[SeedJob]:
        folder = self.source.path
        for batch in seeds.listing(folder):
            known, changed = self.store.changed_files(self.source.name, batch)
            self.count += len(batch)
            self.known += known
            self.tally.skipped += len(batch) - len(changed)
            self.tally.recent += sum(1 for _, _, mtime_ns in batch if mtime_ns > self.recent_after)
            self.to_read += len(changed)
            for listed, remembered in changed:
                yield SeedJob(seeds.seed_file(folder, listed), listed[0], remembered.sha256 if remembered else None)


def _record(reads: list[SeedRead], source: SeedsSource, store: Store, tally: _Tally) -> None:
    """Write what reading a batch of files gave: the articles, and each file as seen."""
    tally.problems += [Problem(str(read.job.seed.path), read.problem) for read in reads if read.problem]
    tally.skipped += sum(1 for r in reads if r.seen and r.article is None and r.problem is None)
    articles = [r.article for r in reads if r.article is not None]
    for outcome in store.upsert_many(articles, source.name):
        setattr(tally, outcome, getattr(tally, outcome) + 1)
    seen = [(r.job.key, r.seen, r.article.url if r.article else None, r.problem) for r in reads if r.seen]
    store.remember_files(source.name, seen)


def _batches(reads: Iterator[SeedRead], size: int) -> Iterator[list[SeedRead]]:
    while batch := list(itertools.islice(reads, size)):
        yield batch


def check_seeds(config: Config, now: datetime) -> Iterator[tuple[SeedsSource, SeedFile | None, Article | Problem]]:
    """Parse every seed of every source without touching the state or the output (``feeder check``)."""
    for source in config.sources:
        if not isinstance(source, SeedsSource):
            continue
        try:
            files = seeds.scan(source.path)
        except SourceError as e:
            yield source, None, Problem(source.name, str(e))
            continue
        rules = ReadRules(source.name, frozenset(config.allowed_hosts), now)
        for seed in files:
            read = read_seed(SeedJob(seed, seed.path.name, None), rules)
            yield source, seed, read.article or Problem(str(seed.path), read.problem or "")


def _forget_files_if_rules_changed(config: Config, store: Store) -> None:
    """Read every seed again when the parser or the host allowlist changed since the last refresh."""
    rules = f"{PARSER_VERSION}:{','.join(sorted(config.allowed_hosts))}"
    if store.setting("seed_rules") != rules:
        for source in config.sources:
            store.forget_files(source.name)
        store.set_setting("seed_rules", rules)


def state_database(config: Config) -> Path:
    return config.state_dir / "feeder.sqlite3"
