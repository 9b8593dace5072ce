"""The ``seeds`` source: a folder of scraped article files, read by a site's rules.

A poll reads the files that are new or whose size or mtime moved (the others cost a stat and a lookup), in
worker processes when there are many (reading.py), and forgets the files that left the folder.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feeder.config import Config, SeedsSource
from feeder.errors import SourceError
from feeder.models import Article, Problem, Progress, SeedFile, SourceReport
from feeder.sources import folder
from feeder.sources.reading import ReadRules, SeedJob, SeedRead, read_all, read_seed
from feeder.store import Store

# A file modified this recently may still be being written; the service polls again soon.
RECENT_WRITE = timedelta(seconds=10)
# Read files are written to the store this many at a time.
RECORD_BATCH = 64


class SeedsPoller:
    """Polls one seeds folder."""

    def __init__(self, spec: SeedsSource, config: Config) -> None:
        self.name = spec.name
        self.spec = spec
        self.site = config.site(spec.site).allowing(config.allowed_hosts)

    def poll(
        self, store: Store, now: datetime, progress: Progress | None = None, *, only: Collection[str] | None = None
    ) -> SourceReport:
        """Read what changed in the folder; with ``only`` (file names: one chunk of a big poll), among those
        files alone, and without looking for files that left the folder."""
        tally = _Tally()
        remembered = store.count_files(self.name)
        listed = _Listing(self.spec, store, tally, now, None if only is None else frozenset(only))
        rules = ReadRules(self.name, self.site, now)
        try:
            done = 0
            for reads in _batches(read_all(listed.jobs(), rules), RECORD_BATCH):
                with store.transaction():
                    _record(reads, self.name, store, tally)
                for _ in reads:
                    done += 1
                    if progress:
                        progress(self.name, done, listed.to_read)
        except SourceError as e:
            return tally.report(self.name, failure=str(e))
        if only is not None:
            return tally.report(self.name)
        with store.transaction():
            before = store.emptied(f"files:{self.name}", listed.count)
            tally.degraded = f"the folder holds no seed files any more (it held {before})" if before else None
            if listed.known < remembered:  # some remembered file was not listed: find which, and forget it
                gone = [path for path in store.file_paths(self.name) if not folder.is_seed(self.spec.path, path)]
                store.forget_paths(self.name, gone)
        tally.problems.sort(key=lambda p: p.locator)
        return tally.report(self.name)

    def changed_names(self, store: Store) -> list[str]:
        """The names of the folder's files that are new or changed since they were last read (none when the
        folder cannot be listed: the poll says why)."""
        names: list[str] = []
        try:
            for batch in folder.listing(self.spec.path):
                names += [listed[0] for listed, _ in store.changed_files(self.name, batch)[1]]
        except SourceError:
            return []
        return names

    def check(self, now: datetime) -> Iterator[tuple[SeedFile | None, Article | Problem]]:
        """Parse every file without touching the state or the output (``feeder check``)."""
        try:
            files = folder.scan(self.spec.path)
        except SourceError as e:
            yield None, Problem(self.name, str(e))
            return
        rules = ReadRules(self.name, self.site, now)
        for seed in files:
            read = read_seed(SeedJob(seed, seed.path.name, None), rules)
            yield seed, read.article or Problem(str(seed.path), read.problem or "")


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


class _Listing:
    """The folder's files, batch by batch, as jobs for those to read; counts what it lists."""

    def __init__(
        self, source: SeedsSource, store: Store, tally: _Tally, now: datetime, only: frozenset[str] | None
    ) -> None:
        self.source, self.store, self.tally, self.only = source, store, tally, only
        self.recent_after = (now - RECENT_WRITE).timestamp() * 1e9
        self.count = self.known = self.to_read = 0

    def jobs(self) -> Iterator[SeedJob]:
        path = self.source.path
        for listed_batch in folder.listing(path):
            batch = listed_batch if self.only is None else [f for f in listed_batch if f[0] in self.only]
            known, changed = self.store.changed_files(self.source.name, batch)
            self.count += len(batch)
            self.known += known
            self.tally.skipped += len(batch) - len(changed)
            self.tally.recent += sum(1 for _, _, mtime_ns in batch if mtime_ns > self.recent_after)
            self.to_read += len(changed)
            for listed, remembered in changed:
                yield SeedJob(folder.seed_file(path, listed), listed[0], remembered.sha256 if remembered else None)


def _record(reads: list[SeedRead], source: str, store: Store, tally: _Tally) -> None:
    """Write what reading a batch of files gave: the articles, and each file as seen."""
    tally.problems += [Problem(str(read.job.seed.path), read.problem) for read in reads if read.problem]
    tally.skipped += sum(1 for r in reads if r.seen and r.article is None and r.problem is None)
    articles = [r.article for r in reads if r.article is not None]
    for outcome in store.upsert_many(articles, source):
        setattr(tally, outcome, getattr(tally, outcome) + 1)
    seen = [(r.job.key, r.seen, r.article.url if r.article else None, r.problem) for r in reads if r.seen]
    store.remember_files(source, seen)


def _batches(reads: Iterator[SeedRead], size: int) -> Iterator[list[SeedRead]]:
    while batch := list(itertools.islice(reads, size)):
        yield batch
