"""When refreshes run: APScheduler 3 jobs per source, and a queue that never loses a manual request.

APScheduler 3 silently drops a run asked for while that job is running
(``max_instances=1``), and its interval jitter drifts. So every refresh, timed
or manual, goes through one Refresher: a worker thread that runs one refresh at
a time. A request made while a poll of that source is under way is queued and
runs once right after it; several such requests collapse into that one extra
poll. Jobs start at a fixed per-source offset instead of using jitter.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from feeder.errors import FeederError, RefreshAbortedError
from feeder.models import RefreshReport

log = logging.getLogger(__name__)

RunRefresh = Callable[[frozenset[str]], RefreshReport]
ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)


class Refresher:
    """Runs refreshes one at a time on its own thread; see the module docstring for the queueing rule."""

    def __init__(self, run: RunRefresh) -> None:
        self._run = run
        self._lock = threading.Condition()
        self._pending: set[str] = set()
        self._waiting: list[tuple[frozenset[str], Future[RefreshReport]]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="refresher", daemon=True)
        self.runs = 0

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

    @property
    def stopping(self) -> bool:
        return self._stopping

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
            self._run_batch(batch, [future for _, future in waiting])

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
            for future in futures:
                if future.set_running_or_notify_cancel():
                    future.set_exception(e)
            return
        for future in futures:
            if future.set_running_or_notify_cancel():
                future.set_result(report)


def offset_for(name: str, interval: timedelta) -> timedelta:
    """A fixed, name-derived phase within the interval, so sources do not all poll at the same second."""
    seconds = max(1, int(interval.total_seconds()))
    return timedelta(seconds=zlib.crc32(name.encode()) % seconds)


class Schedule:
    """One APScheduler job per source, each asking the Refresher for a poll and waiting for it."""

    def __init__(self, refresher: Refresher, intervals: dict[str, timedelta]) -> None:
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
                args=[self._refresher, name],
                id=name,
                name=f"poll {name}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(interval.total_seconds()) // 2),
            )

    @staticmethod
    def _poll(refresher: Refresher, name: str) -> None:
        future = refresher.request([name])
        with contextlib.suppress(CancelledError):
            future.exception()  # wait for the poll; the refresher has logged any failure

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def next_polls(self) -> dict[str, datetime | None]:
        # a job has no next_run_time attribute before the scheduler starts
        return {job.id: getattr(job, "next_run_time", None) for job in self._scheduler.get_jobs()}
