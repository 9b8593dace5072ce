"""Prometheus metrics: the only module that imports prometheus_client.

Two kinds of series. What outlives a restart is kept in status.json and websub.json (feeder.status writes them)
and read back at every collection by a custom collector: polls per source and outcome, the last poll and the last
successful one, the next poll, entries per feed and in the store, the last publish, WebSub pings per hub and
outcome. What only means something for the life of one process starts at zero with it and is fed as things
happen: the poll duration histogram, upstream requests by host and status, files and bytes published, and the
process, platform and garbage collector figures.

``Metrics.exposition()`` is what ``GET /metrics`` serves. ``state_dir/metrics.prom``, for node_exporter's textfile
collector, holds the persisted series alone, rewritten after every refresh and round of WebSub pings: a counter
that started afresh with each ``feeder refresh`` run from cron would read as no increase at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from feeder import status
from feeder.models import RefreshReport
from feeder.publish import write_if_changed
from feeder.websub import PingOutcome

TEXTFILE = "metrics.prom"
EXPOSITION_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of what `GET /metrics` answers."""
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds: a seeds folder takes milliseconds, a site with its article pages up to the fetch deadline and more."""

# No *_created series beside the counters and the histogram: in the text format they are only noise.
disable_created_metrics()  # type: ignore[no-untyped-call]
_WRITING = threading.Lock()  # the daemon writes metrics.prom from its refresh thread and from its event loop

_Family = Callable[..., GaugeMetricFamily | CounterMetricFamily]
_PERSISTED: dict[str, tuple[_Family, str, tuple[str, ...]]] = {
    "feeder_source_polls": (
        CounterMetricFamily,
        "Polls since the state was created, by outcome: ok, failed (the source could not be read), waiting (its "
        "hosts asked to be left alone, nothing was asked).",
        ("source", "outcome"),
    ),
    "feeder_source_last_poll_timestamp_seconds": (GaugeMetricFamily, "Start of the last poll.", ("source",)),
    "feeder_source_last_success_timestamp_seconds": (
        GaugeMetricFamily,
        "Start of the last poll that read the source (neither failed nor put off).",
        ("source",),
    ),
    "feeder_source_last_poll_duration_seconds": (GaugeMetricFamily, "Duration of the last poll.", ("source",)),
    "feeder_source_last_poll_entries": (
        GaugeMetricFamily,
        "Entries seen by the last poll, by outcome.",
        ("source", "outcome"),
    ),
    "feeder_source_last_poll_errors": (GaugeMetricFamily, "Inputs the last poll could not use.", ("source",)),
    "feeder_source_up": (GaugeMetricFamily, "1 if the last poll reached the source.", ("source",)),
    "feeder_source_degraded": (
        GaugeMetricFamily,
        "1 if the source answered but looks broken (no items any more, empty article bodies).",
        ("source",),
    ),
    "feeder_source_next_poll_timestamp_seconds": (GaugeMetricFamily, "When the next poll is scheduled.", ("source",)),
    "feeder_entries": (GaugeMetricFamily, "Entries in the state database.", ()),
    "feeder_feed_entries": (
        GaugeMetricFamily,
        "Entries each published feed shows (section feeds and editions too), as of the last refresh.",
        ("feed",),
    ),
    "feeder_last_publish_timestamp_seconds": (
        GaugeMetricFamily,
        "Start of the last refresh that wrote files into the output folder.",
        (),
    ),
    "feeder_queue_jobs": (
        GaugeMetricFamily,
        "Poll jobs in the queue by source and state (waiting, running, failed), as of the node's last look.",
        ("source", "state"),
    ),
    "feeder_queue_workers": (GaugeMetricFamily, "Workers alive, as of the node's last look.", ()),
    "feeder_websub_pings": (CounterMetricFamily, "Pings sent to the hub, by outcome (ok, failed).", ("hub", "outcome")),
    "feeder_websub_last_ping_timestamp_seconds": (GaugeMetricFamily, "When the hub was last pinged.", ("hub",)),
    "feeder_websub_up": (GaugeMetricFamily, "1 if every ping of the hub's last round succeeded.", ("hub",)),
}


class Metrics:
    """One process's metrics: the persisted series of ``state_dir`` read at each collection, and the live ones.

    The daemon holds one (``Service.metrics``) and feeds it after each refresh and each round of WebSub pings;
    ``feeder refresh`` without a daemon makes one for its run. Thread-safe.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.registry.register(PersistedCollector(lambda: status.load(state_dir)))
        self._poll_seconds = Histogram(
            "feeder_source_poll_duration_seconds",
            "How long polls took, since the process started.",
            ["source"],
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self._requests = Counter(
            "feeder_upstream_requests",
            'HTTP requests sent by polls since the process started, by host and answer: the status ("200", '
            '"304", "404"…), or "error" (refused, reset, not HTTP) or "timeout" when none came.',
            ["host", "status"],
            registry=self.registry,
        )
        self._files = Counter(
            "feeder_published_files",
            "Files written into the output folder since the process started.",
            [],
            registry=self.registry,
        )
        self._bytes = Counter(
            "feeder_published_bytes",
            "Bytes of the files written into the output folder (not their .gz copies) since the process started.",
            [],
            registry=self.registry,
        )

    def observe_refresh(self, report: RefreshReport) -> None:
        """A refresh is over and feeder.status has recorded it: count its polls, requests and files, and write
        metrics.prom again."""
        for source in report.sources:
            self._poll_seconds.labels(source.source).observe(source.duration)
            for host, answer, count in source.requests:
                self._requests.labels(host, answer).inc(count)
        self._files.inc(len(report.written))
        self._bytes.inc(sum(_size(path) for path in report.written))
        self.write_textfile()

    def observe_pings(self, outcomes: Sequence[PingOutcome]) -> None:
        """A round of WebSub pings is over and feeder.status has recorded it (their counts are persisted, so
        nothing is kept here): write metrics.prom again."""
        if outcomes:
            self.write_textfile()

    def exposition(self) -> tuple[bytes, str]:
        """What ``GET /metrics`` answers: the body in Prometheus text format, and its Content-Type."""
        return generate_latest(self.registry), EXPOSITION_TYPE

    def write_textfile(self) -> None:
        """Write ``state_dir/metrics.prom`` (the persisted series) atomically, when it changed."""
        with _WRITING:
            write_if_changed(self.state_dir / TEXTFILE, persisted_exposition(status.load(self.state_dir)))


class PersistedCollector(Collector):
    """prometheus_client's pattern for exporting external state: the recorded status, read at each collection."""

    def __init__(self, load: Callable[[], status.Status]) -> None:
        self._load = load

    def collect(self) -> Iterable[Metric]:
        return persisted_families(self._load())


def persisted_exposition(state: status.Status) -> bytes:
    """The persisted series of a status (as ``status.load`` gives it) in Prometheus text format: metrics.prom."""
    registry = CollectorRegistry()
    registry.register(PersistedCollector(lambda: state))
    return generate_latest(registry)


def persisted_families(state: status.Status) -> list[Metric]:
    """The families a status holds, in the order of _PERSISTED; a family without samples is left out."""
    samples: dict[str, list[tuple[tuple[str, ...], float]]] = {name: [] for name in _PERSISTED}
    for name, values in state.get("sources", {}).items():
        for family, labels, value in _source(name, values):
            samples[family].append((labels, value))
    for family, labels, value in _totals(state):
        samples[family].append((labels, value))
    for hub, values in state.get("websub", {}).items():
        for family, labels, value in _hub(hub, values):
            samples[family].append((labels, value))
    for family, labels, value in _queue(state.get("queue")):
        samples[family].append((labels, value))
    return [_family(name, found) for name, found in samples.items() if found]


Sample = tuple[str, tuple[str, ...], float]


def _source(name: str, values: dict[str, object]) -> Iterator[Sample]:
    label = (name,)
    if (moment := _epoch(values.get("next_poll"))) is not None:
        yield "feeder_source_next_poll_timestamp_seconds", label, moment
    if (moment := _epoch(values.get("last_poll"))) is None:
        return  # scheduled, never polled
    yield "feeder_source_last_poll_timestamp_seconds", label, moment
    if (moment := _epoch(values.get("last_success"))) is not None:
        yield "feeder_source_last_success_timestamp_seconds", label, moment
    yield "feeder_source_last_poll_duration_seconds", label, _count(values, "duration_seconds")
    for outcome in ("new", "updated", "unchanged", "skipped"):
        yield "feeder_source_last_poll_entries", (name, outcome), _count(values, outcome)
    yield "feeder_source_last_poll_errors", label, _count(values, "errors")
    yield "feeder_source_up", label, 0 if values.get("failure") else 1
    yield "feeder_source_degraded", label, 1 if values.get("degraded") else 0
    failed, waiting = _count(values, "failed_polls"), _count(values, "waiting_polls")
    yield "feeder_source_polls", (name, "ok"), max(0, _count(values, "polls") - failed - waiting)
    yield "feeder_source_polls", (name, "failed"), failed
    yield "feeder_source_polls", (name, "waiting"), waiting


def _totals(state: status.Status) -> Iterator[Sample]:
    if isinstance(entries := state.get("entries"), int | float):
        yield "feeder_entries", (), entries
    if (moment := _epoch(state.get("last_publish"))) is not None:
        yield "feeder_last_publish_timestamp_seconds", (), moment
    feeds = state.get("feeds")
    if isinstance(feeds, dict):
        for feed in feeds:
            yield "feeder_feed_entries", (str(feed),), _count(feeds, feed)


def _queue(queue: object) -> Iterator[Sample]:
    """The job queue as ``feeder run`` on PostgreSQL last recorded it (nothing on SQLite)."""
    if not isinstance(queue, dict) or not isinstance(queue.get("workers"), list):
        return
    for source, counts in queue.get("sources", {}).items():
        for state in ("waiting", "running", "failed"):
            yield "feeder_queue_jobs", (str(source), state), _count(counts, state)
    yield "feeder_queue_workers", (), len(queue["workers"])


def _hub(hub: str, values: dict[str, object]) -> Iterator[Sample]:
    if (moment := _epoch(values.get("last_ping"))) is not None:
        yield "feeder_websub_last_ping_timestamp_seconds", (hub,), moment
    yield "feeder_websub_up", (hub,), 1 if values.get("ok") else 0
    failed = _count(values, "failed_pings")
    yield "feeder_websub_pings", (hub, "ok"), max(0, _count(values, "pings") - failed)
    yield "feeder_websub_pings", (hub, "failed"), failed


def _family(name: str, samples: list[tuple[tuple[str, ...], float]]) -> Metric:
    kind, documentation, labels = _PERSISTED[name]
    family = kind(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _count(values: dict[str, object], key: str) -> float:
    """A recorded number; 0 for one that is missing or not a number (a status written by an older feeder)."""
    value = values.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _epoch(value: object) -> float | None:
    """A recorded time (``2026-01-15T12:00:00Z``) as a Unix timestamp; None for none or an unreadable one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # replaced or removed since: not ours to count any more
