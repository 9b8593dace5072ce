"""One poll as a worker runs it (PostgreSQL, feeder/jobs.py carries it): a source polled in short transactions
of its own, its report recorded in the database's shared status, and the generation of every feed it changed
moved on, which notifies each ``feeder run`` to publish. A seeds poll with many files to read is cut into
chunks that other workers may read at the same time.

Nothing here knows the job queue: ``read_chunks`` is how a poll hands its chunks over and waits for them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from feeder import status
from feeder.config import Config, FeedSource, SeedsSource, SiteSource
from feeder.errors import UnknownSourceError
from feeder.models import Problem, RefreshReport, SourceReport
from feeder.pipeline import forget_files_if_rules_changed, seed_rules_changed
from feeder.sources.interface import open_source
from feeder.sources.seeds import SeedsPoller
from feeder.store import Store

ReadChunks = Callable[[list[list[str]]], list[SourceReport]]
"""Read these chunks of a seeds source's files (anywhere) and give back each chunk's report."""
ReadHere = Callable[[Sequence[str]], SourceReport]
"""Read one chunk in this process, with the poll's connection."""
DeferChunks = Callable[[str, datetime, list[list[str]], ReadHere], list[SourceReport]]
"""How a worker hands chunks to the others (feeder.jobs.Queue.read_chunks)."""
OpenStore = Callable[[], AbstractContextManager[Store]]
"""Where a job's connection comes from (feeder.jobs: one lent by the worker's ``Connections``)."""


def run_poll(
    config: Config, name: str, now: datetime, defer_chunks: DeferChunks, *, open_store: OpenStore
) -> SourceReport:
    """A ``poll`` job: poll one source with a connection of its own, its big chunks read by other workers."""
    with open_store() as store:

        def read_here(files: Sequence[str]) -> SourceReport:
            return read_chunk(config, store, name, files, now)

        return poll_source(config, store, name, now, lambda chunks: defer_chunks(name, now, chunks, read_here))


def run_chunk(
    config: Config, name: str, files: Sequence[str], now: datetime, job: int, *, open_store: OpenStore
) -> None:
    """A ``read_seeds`` job: read one chunk and leave its report for the poll that waits for it."""
    with open_store() as store:
        report = read_chunk(config, store, name, files, now)
        with store.transaction():
            store.set_setting(_chunk_key(name, job), json.dumps(report_data(report), ensure_ascii=False))


def take_chunk_reports(store: Store, name: str, jobs: Iterable[int]) -> list[SourceReport]:
    """The reports these chunk jobs left (those that ran). Every chunk report of the source is removed: one left
    by a poll that did not live to take it (a killed worker) is of no use to the next."""
    with store.transaction():
        found = [store.setting(_chunk_key(name, job)) for job in jobs]
        store.delete_settings(_chunk_key(name, None))
    return [report_from_data(json.loads(text)) for text in found if text]


def _chunk_key(source: str, job: int | None) -> str:
    """Where a chunk job leaves its report; with no job, the prefix of every such key of the source."""
    return f"chunk:{source}:" + ("" if job is None else str(job))


def poll_source(
    config: Config, store: Store, name: str, now: datetime, read_chunks: ReadChunks | None = None
) -> SourceReport:
    """Poll one source and record what it did; a seeds poll with more than ``queue.chunk_files`` files to
    read has ``read_chunks`` read them (when given), then reads what is left itself."""
    started = time.perf_counter()
    spec = source_spec(config, name)
    if seed_rules_changed(config, store):  # looked at first: most polls find them as they were, and write nothing
        with store.transaction():
            forget_files_if_rules_changed(config, store)
    poller = open_source(spec, config)
    chunks: list[list[str]] = []
    if isinstance(poller, SeedsPoller) and read_chunks is not None:
        names = poller.changed_names(store)
        size = config.queue.chunk_files
        if len(names) > size:
            chunks = [names[start : start + size] for start in range(0, len(names), size)]
    chunked = read_chunks(chunks) if chunks and read_chunks else []
    report = combined(poller.poll(store, now), chunked, sum(map(len, chunks)), time.perf_counter() - started)
    record(config, store, report, now)
    return report


def read_chunk(config: Config, store: Store, name: str, files: Sequence[str], now: datetime) -> SourceReport:
    """Read one chunk of a seeds source's files (a poll's share for one worker)."""
    spec = source_spec(config, name)
    if not isinstance(spec, SeedsSource):
        raise UnknownSourceError(f"{name} is not a seeds source")
    return SeedsPoller(spec, config).poll(store, now, only=files)


def source_spec(config: Config, name: str) -> SeedsSource | SiteSource | FeedSource:
    spec = next((s for s in config.sources if s.name == name), None)
    if spec is None:
        raise UnknownSourceError(f"unknown source {name!r}: not in this worker's config")
    return spec


def combined(report: SourceReport, chunks: Sequence[SourceReport], files: int, duration: float) -> SourceReport:
    """A poll's report with the counts and problems of its chunks (``files`` files in all) added: the poll
    itself found those files already read."""
    if not chunks:
        return report
    problems: list[Problem] = [p for chunk in chunks for p in chunk.problems]
    return dataclasses.replace(
        report,
        new=report.new + sum(c.new for c in chunks),
        updated=report.updated + sum(c.updated for c in chunks),
        unchanged=report.unchanged + sum(c.unchanged for c in chunks),
        skipped=max(0, report.skipped - files) + sum(c.skipped for c in chunks),
        problems=(*sorted(problems, key=lambda p: p.locator), *report.problems),
        duration=duration,
    )


def record(config: Config, store: Store, report: SourceReport, now: datetime) -> None:
    """Keep the poll's figures in the shared status; when it changed entries, move its feeds' generations."""
    with store.transaction():  # this source's row alone: as cheap with 10 000 sources as with one
        previous = {"sources": {report.source: store.source_status(report.source)}}
        recorded = status.record(previous, RefreshReport((report,)), started=now, next_polls={}, entries=0)
        store.save_source_status(report.source, recorded["sources"][report.source])
        if report.new or report.updated:
            store.bump_generations(feed.name for feed in config.feeds if report.source in feed.sources)


def report_data(report: SourceReport) -> dict[str, Any]:
    """A source's report as JSON-ready data (what a chunk job leaves for the poll that waits for it)."""
    data = dataclasses.asdict(report)
    data["problems"] = [[p.locator, p.reason] for p in report.problems]
    data["requests"] = [list(r) for r in report.requests]
    return data


def report_from_data(data: dict[str, Any]) -> SourceReport:
    problems = tuple(Problem(str(locator), str(reason)) for locator, reason in data.pop("problems", ()))
    requests = tuple(tuple(r) for r in data.pop("requests", ()))
    return SourceReport(**data, problems=problems, requests=requests)
