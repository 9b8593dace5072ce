"""The job queue's tables as feeder reads them (PostgreSQL, where procrastinate keeps them): how a source's
jobs stand, which workers are alive, and clearing old failures. Deferring and running jobs is feeder.jobs'."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from feeder.store.connection import Connection

QUEUE = "poll"
"""The queue poll jobs go to."""
STATES = {"todo": "waiting", "doing": "running", "failed": "failed"}


class QueueTables(Connection):
    def waiting_job(self, lock: str) -> int | None:
        """The job waiting under this queueing lock, if one is."""
        row = self._db.execute(
            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = ? AND status = 'todo'", (lock,)
        ).fetchone()
        return None if row is None else int(row[0])

    def job_states(self, ids: Iterable[int]) -> dict[int, str]:
        """Where these jobs stand (todo, doing, succeeded, failed…); a job no longer kept counts as succeeded
        (workers delete the jobs that succeed)."""
        wanted = sorted(set(ids))
        rows = self._db.execute("SELECT id, status FROM procrastinate_jobs WHERE id = ANY(?)", (wanted,))
        found = {int(ident): str(state) for ident, state in rows}
        return {ident: found.get(ident, "succeeded") for ident in wanted}

    def queue_overview(self, within: timedelta) -> tuple[dict[str, dict[str, int]], list[tuple[int, datetime]]]:
        """``queued`` and ``live_workers``; nothing while the queue's tables are not created yet (no worker or
        ``feeder run`` has opened the queue)."""
        if not self._db.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()[0]:
            return {}, []
        return self.queued(), self.live_workers(within)

    def queued(self) -> dict[str, dict[str, int]]:
        """Per source, its jobs waiting, running and failed."""
        rows = self._db.execute(
            "SELECT args->>'source', status, count(*) FROM procrastinate_jobs"
            " WHERE queue_name = ? AND status IN ('todo', 'doing', 'failed') GROUP BY 1, 2 ORDER BY 1, 2",
            (QUEUE,),
        )
        sources: dict[str, dict[str, int]] = {}
        for source, state, count in rows:
            sources.setdefault(str(source), dict.fromkeys(STATES.values(), 0))[STATES[str(state)]] = int(count)
        return sources

    def live_workers(self, within: timedelta) -> list[tuple[int, datetime]]:
        """The workers heard from within ``within``: (id, last heartbeat)."""
        rows = self._db.execute(
            "SELECT id, last_heartbeat FROM procrastinate_workers"
            " WHERE last_heartbeat > now() - ? * interval '1 second' ORDER BY id",
            (within.total_seconds(),),
        )
        return [(int(ident), beat) for ident, beat in rows]

    def forget_failed_jobs(self, older_than: timedelta) -> None:
        """Delete the failed and cancelled jobs whose last event is older than ``older_than``."""
        self._db.execute(
            "DELETE FROM procrastinate_jobs AS j WHERE queue_name = ? AND status IN ('failed', 'cancelled')"
            " AND NOT EXISTS (SELECT 1 FROM procrastinate_events AS e WHERE e.job_id = j.id"
            " AND e.at > now() - ? * interval '1 second')",
            (QUEUE, older_than.total_seconds()),
        )
