"""The Refresher of a ``feeder run`` on PostgreSQL: every poll asked for, by the schedule, a seeds folder's
watcher, SIGHUP or the control API, becomes a ``poll`` job for the workers (feeder/jobs.py), never a poll in
this process. The queueing lock gives the rule the SQLite Refresher keeps by itself: a request made while a
poll of that source runs is one more poll right after it, and several such requests are that one poll.

A request asked for by id is followed through its jobs; once they are done, its report is what the polls
recorded in the database.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from feeder.config import Config
from feeder.errors import FeederError, StoreError
from feeder.jobs import Queue
from feeder.models import Problem, RefreshReport, SourceReport
from feeder.outage import Outage
from feeder.scheduler import KEPT, Asked
from feeder.store import Store

log = logging.getLogger("feeder")
T = TypeVar("T")


class JobRefresher:
    """Defers poll jobs; the same face as scheduler.Refresher, which the schedule and the control API use."""

    def __init__(self, config: Config) -> None:
        assert config.database is not None
        self._config = config
        self._queue = Queue(config.database)
        self._lock = threading.Lock()
        self._asked: OrderedDict[str, tuple[tuple[str, ...], list[int]]] = OrderedDict()
        self._open = False
        self._stopping = False
        self.runs = 0
        self._outage = Outage("cannot queue polls: {reason}", "polls are queued again")

    @property
    def last_failure(self) -> str | None:
        reason = self._outage.reason
        return None if reason is None else f"cannot queue polls: {reason}"

    def start(self) -> None:
        self._queue.open()
        self._open = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def working(self) -> bool:
        return self._open and not self._stopping

    def stop(self, timeout: float) -> bool:
        self._stopping = True
        if self._open:
            self._queue.close()
            self._open = False
        return True

    def request(self, sources: Iterable[str]) -> Future[RefreshReport]:
        """Defer a poll of each source; the future is done once they are queued (workers run them)."""
        future: Future[RefreshReport] = Future()
        try:
            self._defer(sorted(set(sources)))
        except FeederError as e:
            future.set_exception(e)
        else:
            future.set_result(RefreshReport(()))
        return future

    def request_scheduled(self, source: str, slot: int) -> None:
        with contextlib.suppress(StoreError):  # logged once per outage; the next slot tries again
            self._recorded(lambda: self._queue.defer_scheduled(source, slot))

    def ask(self, sources: Iterable[str]) -> str:
        """``request``, remembered under a new id that ``progress`` answers for."""
        wanted = tuple(sorted(set(sources)))
        ids = self._defer(list(wanted))
        ident = secrets.token_hex(8)
        with self._lock:
            self._asked[ident] = (wanted, ids)
            while len(self._asked) > KEPT:
                self._asked.popitem(last=False)
        return ident

    def progress(self, ident: str) -> Asked | None:
        with self._lock:
            if ident not in self._asked:
                return None
            sources, ids = self._asked[ident]
        states = set(self._queue.states(ids).values())
        if "failed" in states or "cancelled" in states or "aborted" in states:
            return Asked(ident, sources, "failed", error="a poll job failed: see the worker's log")
        if states & {"doing", "aborting"}:
            return Asked(ident, sources, "running")
        if "todo" in states:
            return Asked(ident, sources, "queued")
        return Asked(ident, sources, "done", report=self._report(sources))

    def overview(self) -> dict[str, Any]:
        """The queue and the workers heard from lately, for the status."""
        return self._queue.overview(self._config.queue.stalled_after)

    def _defer(self, sources: list[str]) -> list[int]:
        return self._recorded(lambda: [self._queue.defer_poll(name) for name in sources])

    def _recorded(self, defer: Callable[[], T]) -> T:
        """Defer, saying once when the queue cannot be reached and once when it can again."""
        try:
            done = defer()
        except StoreError as e:
            self._outage.began(e)
            raise
        self._outage.ended()
        self.runs += 1
        return done

    def _report(self, sources: tuple[str, ...]) -> RefreshReport:
        """The last polls of these sources as the database recorded them."""
        assert self._config.database is not None
        with Store.open(self._config.database) as store:
            return RefreshReport(tuple(_source_report(name, store.source_status(name)) for name in sources))


def _source_report(name: str, values: dict[str, Any]) -> SourceReport:
    return SourceReport(
        name,
        new=int(values.get("new", 0)),
        updated=int(values.get("updated", 0)),
        unchanged=int(values.get("unchanged", 0)),
        skipped=int(values.get("skipped", 0)),
        problems=tuple(Problem(str(p.get("file")), str(p.get("reason"))) for p in values.get("problems", [])),
        failure=values.get("failure"),
        duration=float(values.get("duration_seconds", 0.0)),
        degraded=values.get("degraded"),
        waiting=values.get("waiting"),
    )
