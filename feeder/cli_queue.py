"""``feeder worker``, and what ``feeder refresh`` and ``feeder status`` do on PostgreSQL with no daemon to ask:
queue the polls when workers are about (else poll here, as on SQLite), and read the status from the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from feeder import status
from feeder.cli_common import config_option, configure_logging
from feeder.config import Config, load_config
from feeder.errors import ConfigError, FeederError
from feeder.store import Store

WAIT_STEP = 0.3


@click.command("worker")
@config_option
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=None, help="Polls run at once [default: queue.concurrency]."
)
@click.pass_context
def worker_command(ctx: click.Context, config_path: Path, concurrency: int | None) -> None:
    """Run poll jobs from the job queue in PostgreSQL (database: postgresql://…). Start as many as you like,
    on any machine that has the config (and the seeds folders it names)."""
    configure_logging(ctx.obj["debug"])
    config = load_config(config_path)
    if config.database is None:
        raise ConfigError(
            f"{config_path}: feeder worker needs database: postgresql://… (on SQLite, feeder run polls by itself)"
        )
    from feeder.jobs import run_worker  # noqa: PLC0415 - procrastinate, only on PostgreSQL

    asyncio.run(run_worker(config, concurrency or config.queue.concurrency))


def queued_refresh(config: Config, sources: Sequence[str], timeout: float) -> dict[str, Any] | None:
    """On PostgreSQL with workers heard from lately: queue these polls (all when empty), wait for them, and
    give their report; None when there is no worker to do it (the caller polls by itself)."""
    if config.database is None:
        return None
    from feeder.deferring import JobRefresher  # noqa: PLC0415 - procrastinate, only on PostgreSQL

    jobs = JobRefresher(config)
    jobs.start()
    try:
        if not jobs.overview()["workers"]:
            return None
        ident = jobs.ask(sources or [s.name for s in config.sources])
        deadline = time.monotonic() + timeout
        while (asked := jobs.progress(ident)) is not None and asked.state in ("queued", "running"):
            if time.monotonic() > deadline:
                raise FeederError(f"the workers did not finish the polls within {timeout:.0f}s; they are still queued")
            time.sleep(WAIT_STEP)
        if asked is None or asked.report is None:
            raise FeederError(asked.error if asked and asked.error else "the polls failed: see the workers' logs")
        return asked.report.to_dict()
    finally:
        jobs.stop(0)


def database_status(config: Config) -> status.Status | None:
    """On PostgreSQL: what the polls recorded in the database, the entries, and the job queue; else None."""
    if config.database is None:
        return None
    with Store.open(config.database) as store:
        recorded = store.shared_status().get("sources", {})
        return {
            "entries": store.count_entries(),
            "sources": {s.name: recorded.get(s.name, {}) for s in config.sources},
            "queue": status.queue_overview(store, config.queue.stalled_after),
        }
