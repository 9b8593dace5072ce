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
import json
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
from procrastinate import App, JobContext, PsycopgConnector, SyncPsycopgConnector, sql
from procrastinate.exceptions import AlreadyEnqueued, ProcrastinateException, UniqueViolation
from procrastinate.schema import SchemaManager

from feeder.config import Config
from feeder.database_url import redacted
from feeder.errors import StoreError
from feeder.models import RefreshReport, SourceReport
from feeder.polling import poll_source, read_chunk, report_data, report_from_data
from feeder.refreshes import log_report
from feeder.status import iso
from feeder.store import Store

log = logging.getLogger("feeder")

QUEUE = "poll"
POLL_TASK = "feeder.poll"
CHUNK_TASK = "feeder.read_seeds"
SCHEMA = f"procrastinate {procrastinate.__version__}"
WAIT_STEP = 0.2
"""Seconds between two looks at the chunks a poll waits for."""
OUTAGE_RETRY = 5.0
FINISHED = ("succeeded", "failed", "cancelled", "aborted")


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
            raise StoreError(f"{redacted(self.url)}: cannot open the job queue: {e}") from e
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
            waiting = "SELECT id FROM procrastinate_jobs WHERE queueing_lock = %(lock)s AND status = 'todo'"
            rows = self._query(waiting)(lock=source)
            if rows:
                return int(rows[0]["id"])
            return self.defer_poll(source)  # it started between the two statements: queue another
        except ProcrastinateException as e:
            raise StoreError(f"cannot queue a poll of {source}: {e}") from e

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
            raise StoreError(f"cannot queue a poll of {source}: {e}") from e
        return None if row["id"] is None else int(row["id"])

    def states(self, ids: Iterable[int]) -> dict[int, str]:
        """Where these jobs stand (todo, doing, succeeded, failed…); a job no longer kept counts as succeeded
        (workers delete the jobs that succeed)."""
        wanted = sorted(set(ids))
        rows = self._query("SELECT id, status FROM procrastinate_jobs WHERE id = ANY(%(ids)s)")(ids=wanted)
        found = {int(row["id"]): str(row["status"]) for row in rows}
        return {ident: found.get(ident, "succeeded") for ident in wanted}

    def read_chunks(self, source: str, now: datetime, chunks: list[list[str]]) -> list[SourceReport]:
        """Defer one ``read_seeds`` job per chunk and wait for them all; the reports of those that succeeded
        (the poll reads whatever a failed one left)."""
        ids = [
            int(self._app.configure_task(CHUNK_TASK).defer(source=source, files=list[Any](chunk), now=now.isoformat()))
            for chunk in chunks
        ]
        log.info("%s: %d files to read, in %d jobs", source, sum(map(len, chunks)), len(ids))
        while any(state not in FINISHED for state in self.states(ids).values()):
            time.sleep(WAIT_STEP)
        with Store.open(self.url) as store, store.transaction():
            found = [store.setting(_chunk_key(ident)) for ident in ids]
            for ident in ids:
                store.delete_setting(_chunk_key(ident))
        return [report_from_data(json.loads(text)) for text in found if text]

    def overview(self, seen_within: timedelta) -> dict[str, Any]:
        """Per source, its jobs waiting, running and failed; and the workers heard from within ``seen_within``."""
        jobs = self._query(
            "SELECT args->>'source' AS source, status, count(*) AS n FROM procrastinate_jobs"
            " WHERE queue_name = %(queue)s AND status IN ('todo', 'doing', 'failed') GROUP BY 1, 2 ORDER BY 1, 2"
        )(queue=QUEUE)
        sources: dict[str, dict[str, int]] = {}
        for row in jobs:
            counts = sources.setdefault(str(row["source"]), {"waiting": 0, "running": 0, "failed": 0})
            counts[{"todo": "waiting", "doing": "running", "failed": "failed"}[str(row["status"])]] = int(row["n"])
        workers = self._query(
            "SELECT id, last_heartbeat FROM procrastinate_workers"
            " WHERE last_heartbeat > now() - %(seconds)s * interval '1 second' ORDER BY id"
        )(seconds=seen_within.total_seconds())
        return {
            "sources": sources,
            "workers": [{"id": int(w["id"]), "last_heartbeat": iso(w["last_heartbeat"])} for w in workers],
        }

    def forget_failed(self, older_than: timedelta) -> None:
        """Delete the failed and cancelled jobs that ended before this (the status shows recent failures)."""
        self._query(
            "DELETE FROM procrastinate_jobs AS j WHERE queue_name = %(queue)s AND status IN ('failed', 'cancelled')"
            " AND NOT EXISTS (SELECT 1 FROM procrastinate_events AS e WHERE e.job_id = j.id"
            " AND e.at > now() - %(seconds)s * interval '1 second')"
        )(queue=QUEUE, seconds=older_than.total_seconds())

    def _query(self, query: str) -> Any:
        connector = self._app.connector

        def run(**arguments: object) -> list[dict[str, Any]]:
            try:
                return list(connector.execute_query_all(query, **arguments))
            except ProcrastinateException as e:
                raise StoreError(f"the job queue: {e}") from e

        return run


def _chunk_key(job_id: int) -> str:
    return f"chunk:{job_id}"


def _poll_job(context: JobContext, source: str, timestamp: int | None = None) -> None:
    """Poll ``source`` (``timestamp``: the slot a scheduled poll was due at; a scheduler's, unused here)."""
    config: Config = context.additional_context["config"]
    queue: Queue = context.additional_context["queue"]
    now = datetime.now(UTC)
    assert config.database is not None
    with Store.open(config.database) as store:
        report = poll_source(config, store, source, now, lambda chunks: queue.read_chunks(source, now, chunks))
    log_report(RefreshReport((report,)))


def _chunk_job(context: JobContext, source: str, files: Sequence[str], now: str) -> None:
    config: Config = context.additional_context["config"]
    assert config.database is not None
    assert context.job.id is not None
    with Store.open(config.database) as store:
        report = read_chunk(config, store, source, files, datetime.fromisoformat(now))
        with store.transaction():
            store.set_setting(_chunk_key(context.job.id), json.dumps(report_data(report), ensure_ascii=False))


async def run_worker(config: Config, concurrency: int) -> None:
    """``feeder worker``: run poll jobs, ``concurrency`` at a time, until SIGTERM or SIGINT. An unreachable
    database is logged once (not once per connection attempt of the pools) and waited out."""
    assert config.database is not None
    url = config.database
    for handler in logging.getLogger().handlers:  # a logger's filter would miss its children's records
        handler.addFilter(_quiet_outage)
    await asyncio.to_thread(prepare, url)
    queue = await asyncio.to_thread(Queue(url).open)
    outage = _Outage(url)
    try:
        while True:
            try:
                await _work(config, queue, concurrency, outage)
                return
            except (ProcrastinateException, OSError) as e:
                outage.began(e)
            await asyncio.sleep(OUTAGE_RETRY)
    finally:
        await asyncio.to_thread(queue.close)


class _Outage:
    """Says once that the database went away, and once that it is back."""

    def __init__(self, url: str) -> None:
        self.url, self.down = redacted(url), False

    def began(self, error: Exception) -> None:
        if not self.down:
            reason = " ".join(str(error).split()) or type(error).__name__
            log.error("%s: job queue unreachable (%s); trying again every %ss", self.url, reason, OUTAGE_RETRY)
        self.down = True

    def ended(self) -> None:
        if self.down:
            log.info("%s: job queue reachable again", self.url)
        self.down = False


def _quiet_outage(record: logging.LogRecord) -> bool:
    """Keep the pools' and the worker's own lines about a lost connection out of the log: run_worker says it
    once. Any other error of theirs stays."""
    if record.name.startswith("psycopg.pool"):
        return record.levelno > logging.WARNING
    error = record.exc_info[1] if record.exc_info else None
    return not (record.name.startswith("procrastinate") and isinstance(error, ProcrastinateException))


async def _work(config: Config, queue: Queue, concurrency: int, outage: _Outage) -> None:
    assert config.database is not None
    app = _app(PsycopgConnector(conninfo=config.database, min_size=1, max_size=concurrency + 2, timeout=10))
    async with app.open_async():
        outage.ended()
        watch = asyncio.create_task(_retry_stalled(app, config))
        log.info("worker: taking poll jobs, %d at a time", concurrency)
        try:
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                additional_context={"config": config, "queue": queue},
                update_heartbeat_interval=config.queue.heartbeat.total_seconds(),
                stalled_worker_timeout=config.queue.stalled_after.total_seconds(),
                delete_jobs="successful",
                listen_notify=True,
            )
        finally:
            watch.cancel()


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
