"""Poll jobs on PostgreSQL, carried by procrastinate (the only module that imports it).

``poll(source)`` jobs go to the ``poll`` queue with ``lock=source`` (one poll of a source runs at a time, on
whichever worker) and ``queueing_lock=source`` (at most one waits: asking again while one waits is that one,
so a request is never lost and never doubled). A seeds poll with many files defers ``read_seeds`` jobs, one per
chunk, and waits for them, so every worker reads a share. ``Queue`` is the side that defers and looks
(``feeder run``'s schedule, the control API, the CLI, the status); ``run_worker`` is ``feeder worker``.

A worker that dies in the middle of a poll stops sending heartbeats; after ``queue.stalled_after`` every
worker's watch finds its jobs and queues them again. A poll is idempotent (entries are keyed by canonical URL),
so running one again after a crash loses and doubles nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import procrastinate
from procrastinate import App, JobContext, PsycopgConnector, SyncPsycopgConnector, sql
from procrastinate.exceptions import AlreadyEnqueued, ProcrastinateException, UniqueViolation
from procrastinate.schema import SchemaManager
from procrastinate.worker import Worker

from feeder.config import Config
from feeder.database_url import redacted
from feeder.errors import StoreError
from feeder.models import RefreshReport, SourceReport
from feeder.outage import Outage
from feeder.polling import ReadHere, run_chunk, run_poll, take_chunk_reports
from feeder.refreshes import log_report
from feeder.status import queue_overview
from feeder.store import Store
from feeder.store.postgres import Connections
from feeder.store.queue_tables import QUEUE

log = logging.getLogger("feeder")

POLL_TASK = "feeder.poll"
CHUNK_TASK = "feeder.read_seeds"
SCHEMA = f"procrastinate {procrastinate.__version__}"
WAIT_STEP = 0.2
"""Seconds between two looks at the chunks a poll waits for."""
OUTAGE_RETRY = 5.0
FINISHED = ("succeeded", "failed", "cancelled", "aborted")
CLAIM_AFTER = 1.0
"""Seconds a chunk job may wait for a worker before the poll that deferred it reads it itself."""
EXTRA_THREADS = 4
"""A worker's threads besides one per job: for opening and closing the queue and the connections (to_thread)."""


def prepare(url: str) -> None:
    """Create procrastinate's tables in the state database, once, whoever starts first."""
    with Store.open(url) as store:
        if store.apply_once(SCHEMA, SchemaManager.get_schema(), "procrastinate_jobs"):
            log.info("%s: created the job queue's tables", redacted(url))


def _app(connector: PsycopgConnector | SyncPsycopgConnector) -> App:
    app = App(connector=connector)
    app.task(name=POLL_TASK, queue=QUEUE, pass_context=True)(_poll_job)
    app.task(name=CHUNK_TASK, queue=QUEUE, pass_context=True)(_chunk_job)
    return app


class Queue:
    """The job queue as those who defer polls and watch them see it (synchronous, thread-safe)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._app = _app(SyncPsycopgConnector(conninfo=url, min_size=1, max_size=4, timeout=10))

    def open(self) -> Queue:
        try:
            prepare(self.url)
            self._app.open()
        except ProcrastinateException as e:
            raise StoreError(f"{redacted(self.url)}: cannot open the job queue: {_cause(e)}") from e
        return self

    def close(self) -> None:
        self._app.close()

    def __enter__(self) -> Queue:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    def defer_poll(self, source: str) -> int:
        """Queue a poll of ``source``; the id of its job, or of the one already waiting, which covers it."""
        try:
            return int(self._app.configure_task(POLL_TASK, lock=source, queueing_lock=source).defer(source=source))
        except AlreadyEnqueued:
            with Store.open(self.url) as store:
                waiting = store.waiting_job(source)
            return self.defer_poll(source) if waiting is None else waiting  # None: it just started
        except ProcrastinateException as e:
            raise StoreError(f"cannot queue a poll of {source}: {_cause(e)}") from e

    def defer_scheduled(self, source: str, slot: int) -> int | None:
        """Queue the poll of ``source`` due at ``slot`` (Unix seconds) unless another scheduler already did:
        procrastinate keeps one deferral per (source, slot), so several ``feeder run`` poll a source once per
        interval. The job's id; None when it was deferred already or a poll of the source is waiting anyway."""
        arguments = {"source": source, "timestamp": slot}
        try:
            row = self._app.connector.execute_query_one(
                query=sql.queries["defer_periodic_job"],
                queue=QUEUE,
                lock=source,
                queueing_lock=source,
                task_name=POLL_TASK,
                priority=0,
                periodic_id=source,
                defer_timestamp=slot,
                args=arguments,
            )
        except UniqueViolation:
            return None  # the queueing lock: a poll of this source is waiting, and covers this one
        except ProcrastinateException as e:
            raise StoreError(f"cannot queue a poll of {source}: {_cause(e)}") from e
        return None if row["id"] is None else int(row["id"])

    def states(self, ids: Iterable[int]) -> dict[int, str]:
        with Store.open(self.url) as store:
            return store.job_states(ids)

    def read_chunks(
        self, source: str, now: datetime, chunks: list[list[str]], read_here: ReadHere
    ) -> list[SourceReport]:
        """Defer one ``read_seeds`` job per chunk and wait for them all; a chunk no worker took within
        ``CLAIM_AFTER`` is taken back and read here (``read_here``), so a poll never waits on workers that are
        all busy, itself included. The reports of the chunks that were read (the poll reads what is left)."""
        ids = {
            int(
                self._app.configure_task(CHUNK_TASK).defer(source=source, files=list[Any](chunk), now=now.isoformat())
            ): chunk
            for chunk in chunks
        }
        log.info("%s: %d files to read, in %d jobs", source, sum(map(len, chunks)), len(ids))
        here: list[SourceReport] = []
        waited = time.monotonic()
        with Store.open(self.url) as store:
            while waiting := [ident for ident, state in store.job_states(ids).items() if state not in FINISHED]:
                if time.monotonic() - waited > CLAIM_AFTER:
                    taken = [ident for ident in waiting if self._app.job_manager.cancel_job_by_id(ident)]
                    here += [read_here(ids[ident]) for ident in taken]
                time.sleep(WAIT_STEP)
            return [*here, *take_chunk_reports(store, source, list(ids))]

    def overview(self, seen_within: timedelta) -> dict[str, Any]:
        """Per source, its jobs waiting, running and failed; and the workers heard from within ``seen_within``."""
        with Store.open(self.url) as store:
            return queue_overview(store, seen_within)


def _cause(error: BaseException) -> str:
    """What went wrong beneath procrastinate's "Database error." """
    while error.__cause__ is not None:
        error = error.__cause__
    return " ".join(str(error).split()) or type(error).__name__


def _poll_job(context: JobContext, source: str, timestamp: int | None = None) -> None:
    """Poll ``source`` (``timestamp``: the slot a scheduled poll was due at; a scheduler's, unused here)."""
    queue: Queue = context.additional_context["queue"]
    connections: Connections = context.additional_context["connections"]
    config: Config = context.additional_context["config"]
    borrowed = partial(Store.borrow, connections)
    report = run_poll(config, source, datetime.now(UTC), queue.read_chunks, open_store=borrowed)
    log_report(RefreshReport((report,)))


def _chunk_job(context: JobContext, source: str, files: Sequence[str], now: str) -> None:
    assert context.job.id is not None
    connections: Connections = context.additional_context["connections"]
    config: Config = context.additional_context["config"]
    borrowed = partial(Store.borrow, connections)
    run_chunk(config, source, files, datetime.fromisoformat(now), context.job.id, open_store=borrowed)


async def run_worker(config: Config, concurrency: int) -> None:
    """``feeder worker``: run poll jobs, ``concurrency`` at a time, until SIGTERM or SIGINT. An unreachable
    database is logged once (not once per connection attempt of the pools) and waited out."""
    assert config.database is not None
    url = config.database
    for handler in logging.getLogger().handlers:  # a logger's filter would miss its children's records
        handler.addFilter(_quiet_outage)
    # procrastinate runs a synchronous job in the loop's default executor, whose min(32, CPUs + 4) threads would
    # leave jobs beyond that waiting (6 on 2 CPUs); a few more than the jobs for asyncio.to_thread's own calls
    pool = ThreadPoolExecutor(concurrency + EXTRA_THREADS, thread_name_prefix="feeder-job")
    asyncio.get_running_loop().set_default_executor(pool)
    await asyncio.to_thread(prepare, url)
    queue = await asyncio.to_thread(Queue(url).open)
    outage = Outage(
        f"{redacted(url)}: job queue unreachable ({{reason}}); trying again every {OUTAGE_RETRY}s",
        f"{redacted(url)}: job queue reachable again",
    )
    try:
        while True:
            try:
                await _work(config, queue, concurrency, outage)
                return
            except (ProcrastinateException, OSError) as e:
                outage.began(_cause(e))
            await asyncio.sleep(OUTAGE_RETRY)
    finally:
        await asyncio.to_thread(queue.close)


def _quiet_outage(record: logging.LogRecord) -> bool:
    """Keep the pools' and the worker's own lines about a lost connection out of the log: run_worker says it
    once. Any other error of theirs stays."""
    if record.name.startswith("psycopg.pool"):
        return record.levelno > logging.WARNING
    error = record.exc_info[1] if record.exc_info else None
    return not (record.name.startswith("procrastinate") and isinstance(error, ProcrastinateException))


async def _work(config: Config, queue: Queue, concurrency: int, outage: Outage) -> None:
    assert config.database is not None
    app = _app(PsycopgConnector(conninfo=config.database, min_size=1, max_size=concurrency + 2, timeout=10))
    connections = Connections(config.database, concurrency)  # the jobs' own, one each, kept from job to job
    async with app.open_async():
        outage.ended()
        await asyncio.to_thread(connections.open)
        worker = Worker(
            app,
            queues=[QUEUE],
            concurrency=concurrency,
            additional_context={"config": config, "queue": queue, "connections": connections},
            update_heartbeat_interval=config.queue.heartbeat.total_seconds(),
            stalled_worker_timeout=config.queue.stalled_after.total_seconds(),
            delete_jobs="successful",
        )
        watches = [asyncio.create_task(_retry_stalled(app, config)), asyncio.create_task(_beat(app, worker, config))]
        log.info("worker: taking poll jobs, %d at a time", concurrency)
        try:
            await worker.run()  # type: ignore[no-untyped-call]
        finally:
            for watch in watches:
                watch.cancel()
            await asyncio.to_thread(connections.close)


async def _beat(app: App, worker: Worker, config: Config) -> None:
    """Heartbeats until the worker is gone. procrastinate stops its own as soon as a worker is asked to stop,
    then waits for the polls it runs: without these, a poll longer than ``stalled_after`` would be run again
    by another worker while this one finishes it."""
    while True:
        await asyncio.sleep(config.queue.heartbeat.total_seconds())
        if worker.worker_id is not None:
            with contextlib.suppress(ProcrastinateException):
                await app.job_manager.update_heartbeat(worker.worker_id)


async def _retry_stalled(app: App, config: Config) -> None:
    """Queue again the jobs of workers that stopped sending heartbeats (killed, frozen, cut off)."""
    stalled_after = config.queue.stalled_after.total_seconds()
    while True:
        await asyncio.sleep(config.queue.heartbeat.total_seconds())
        try:
            stalled = await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=stalled_after)
            for job in stalled:
                log.warning(
                    "%s %s: its worker sent no heartbeat for %ds; running it again",
                    job.task_name,
                    job.task_kwargs.get("source"),
                    stalled_after,
                )
                await app.job_manager.retry_job(job)
        except ProcrastinateException as e:
            log.debug("looking for stalled jobs: %s", e)
