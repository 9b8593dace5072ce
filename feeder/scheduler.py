"""When refreshes run: APScheduler 3 jobs per source, and a queue that never loses a manual request.

APScheduler 3 silently drops a run asked for while that job is running
(``max_instances=1``), and its interval jitter drifts. So every refresh, timed
or manual, goes through one Refresher: a worker thread that runs one refresh at
a time. A request made while a poll of that source is under way is queued and
runs once right after it; several such requests collapse into that one extra
poll. Jobs start at a fixed per-source offset instead of using jitter.

A request asked for by id (``ask``, what the control API does) can be followed: queued until the worker takes
it, running while its poll runs, then done or failed; the last KEPT finished ids are remembered.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from feeder.errors import FeederError, RefreshAbortedError
from feeder.models import RefreshReport

log = logging.getLogger(__name__)

RunRefresh = Callable[[frozenset[str]], RefreshReport]
ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
KEPT = 100
"""Finished requests whose outcome ``progress`` still knows."""

State = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class Asked:
    """Where one request asked for by id stands: its report once done, its error once failed."""

    id: str
    sources: tuple[str, ...]
    state: State
    report: RefreshReport | None = None
    error: str | None = None


class Refreshes(Protocol):
    """What the schedule and the control API ask of a refresher: this module's Refresher, or on PostgreSQL
    feeder.deferring's JobRefresher, which defers poll jobs to the workers."""

    runs: int

    @property
    def last_failure(self) -> str | None:
        """Why the last refresh (or deferral) failed; None once one succeeds."""

    def start(self) -> None: ...

    def request(self, sources: Iterable[str]) -> Future[RefreshReport]: ...

    def request_scheduled(self, source: str, slot: int) -> None:
        """The schedule's poll of ``source``, due at ``slot`` (Unix seconds): the same slot from several
        schedulers is one poll."""

    def ask(self, sources: Iterable[str]) -> str: ...

    def progress(self, ident: str) -> Asked | None: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def working(self) -> bool: ...

    def stop(self, timeout: float) -> bool: ...


class Refresher:
    """Runs refreshes one at a time on its own thread; see the module docstring for the queueing rule."""

    def __init__(self, run: RunRefresh) -> None:
        self._run = run
        self._lock = threading.Condition()
        self._pending: set[str] = set()
        self._waiting: list[tuple[frozenset[str], Future[RefreshReport]]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="refresher", daemon=True)
        self._asked: OrderedDict[str, tuple[tuple[str, ...], Future[RefreshReport]]] = OrderedDict()
        self.runs = 0
        self.last_failure: str | None = None
        """Why the last refresh failed as a whole (nothing published); None once one succeeds."""

    def start(self) -> None:
        self._thread.start()

    def request(self, sources: Iterable[str]) -> Future[RefreshReport]:
        """Ask for a poll of these sources that starts after now; the future holds its report."""
        wanted = frozenset(sources)
        future: Future[RefreshReport] = Future()
        with self._lock:
            if self._stopping:
                future.cancel()
                return future
            self._pending |= wanted
            self._waiting.append((wanted, future))
            self._lock.notify()
        return future

    def request_scheduled(self, source: str, slot: int) -> None:
        """``request``, waited for: this process is the only scheduler, so the slot needs no checking."""
        future = self.request([source])
        with contextlib.suppress(CancelledError):
            future.exception()  # wait for the poll; the refresher has logged any failure

    def ask(self, sources: Iterable[str]) -> str:
        """``request``, remembered under a new id that ``progress`` answers for."""
        wanted = tuple(sorted(set(sources)))
        future = self.request(wanted)
        ident = secrets.token_hex(8)
        with self._lock:
            self._asked[ident] = (wanted, future)
            finished = [key for key, (_, kept) in self._asked.items() if kept.done()]
            for key in finished[: max(0, len(finished) - KEPT)]:
                del self._asked[key]
        return ident

    def progress(self, ident: str) -> Asked | None:
        """Where the request ``ask`` gave this id stands; None for an id unknown or long finished."""
        with self._lock:
            if ident not in self._asked:
                return None
            sources, future = self._asked[ident]
        return _progress(ident, sources, future)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def working(self) -> bool:
        """The worker thread runs and takes requests."""
        return self._thread.is_alive() and not self._stopping

    def stop(self, timeout: float) -> bool:
        """Stop taking work; wait up to ``timeout`` for the current refresh. True if the worker ended."""
        with self._lock:
            self._stopping = True
            for _, future in self._waiting:
                future.cancel()
            self._waiting.clear()
            self._lock.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                batch = frozenset(self._pending)
                self._pending.clear()
                waiting, self._waiting = self._waiting, []
                taken = [future for _, future in waiting if future.set_running_or_notify_cancel()]
            self._run_batch(batch, taken)

    def _run_batch(self, batch: frozenset[str], futures: list[Future[RefreshReport]]) -> None:
        self.runs += 1
        try:
            report = self._run(batch)
        except BaseException as e:  # the worker must survive a failed refresh
            names = ", ".join(sorted(batch))
            if isinstance(e, RefreshAbortedError):
                log.info("%s", e)
            elif isinstance(e, FeederError):
                log.error("refresh of %s: %s", names, e)
            else:
                log.exception("refresh of %s failed", names)
            if not isinstance(e, RefreshAbortedError):
                self.last_failure = f"refresh of {names} failed: {e}"
            for future in futures:
                future.set_exception(e)
            return
        self.last_failure = None
        for future in futures:
            future.set_result(report)


def _progress(ident: str, sources: tuple[str, ...], future: Future[RefreshReport]) -> Asked:
    if future.cancelled():
        return Asked(ident, sources, "failed", error="the service stopped before this refresh ran")
    if not future.done():
        return Asked(ident, sources, "running" if future.running() else "queued")
    error = future.exception()
    if error is not None:
        return Asked(ident, sources, "failed", error=str(error) or type(error).__name__)
    return Asked(ident, sources, "done", report=future.result())


def offset_for(name: str, interval: timedelta) -> timedelta:
    """A fixed, name-derived phase within the interval, so sources do not all poll at the same second."""
    seconds = max(1, int(interval.total_seconds()))
    return timedelta(seconds=zlib.crc32(name.encode()) % seconds)


def slot_of(name: str, interval: timedelta, now: datetime) -> int:
    """The scheduled time (Unix seconds) of a source's poll nearest to ``now``: what every scheduler of the
    source, whose jobs start at the same anchor and offset, calls the poll it is running."""
    start = ANCHOR + offset_for(name, interval)
    seconds = max(1, int(interval.total_seconds()))
    nearest = round((now - start).total_seconds() / seconds)
    return int(start.timestamp()) + nearest * seconds


class Schedule:
    """One APScheduler job per source, each asking the Refresher for a poll and waiting for it."""

    def __init__(self, refresher: Refreshes, intervals: dict[str, timedelta]) -> None:
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._refresher = refresher
        self._add_jobs(intervals)

    def replace(self, intervals: dict[str, timedelta]) -> None:
        """New jobs for a new config (a reload); a poll under way finishes."""
        self._scheduler.remove_all_jobs()
        self._add_jobs(intervals)

    def _add_jobs(self, intervals: dict[str, timedelta]) -> None:
        for name, interval in intervals.items():
            self._scheduler.add_job(
                self._poll,
                IntervalTrigger(seconds=int(interval.total_seconds()), start_date=ANCHOR + offset_for(name, interval)),
                args=[self._refresher, name, interval],
                id=name,
                name=f"poll {name}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(interval.total_seconds()) // 2),
            )

    @staticmethod
    def _poll(refresher: Refreshes, name: str, interval: timedelta) -> None:
        refresher.request_scheduled(name, slot_of(name, interval, datetime.now(UTC)))

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def next_polls(self) -> dict[str, datetime | None]:
        # a job has no next_run_time attribute before the scheduler starts
        return {job.id: getattr(job, "next_run_time", None) for job in self._scheduler.get_jobs()}
