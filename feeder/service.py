"""``feeder run``: the long-running service.

Wires the parts together around one asyncio loop: the HTTP server over the
output folder, the control API and status page (feeder/api.py, answered by
answers.py), a watcher per seeds folder that notices a changed seed file at once
(feeder.watch), signal handling and systemd notifications. Refreshes run on the
Refresher's worker thread (timed by the Schedule, asked for over the control
API or by SIGHUP); the loop never blocks on one. What a refresh does around the
pipeline (lock, status, log lines) is in refreshes.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from feeder import status, websub
from feeder.answers import Answers
from feeder.api import ApiServer, create_app
from feeder.build import Built
from feeder.config import Config, SeedsSource, load_config
from feeder.control import load_token
from feeder.errors import ConfigError, ListenError, RefreshAbortedError
from feeder.locks import DAEMON_LOCK, held
from feeder.memory import release_free_memory
from feeder.metrics import Metrics
from feeder.models import RefreshReport
from feeder.notify import notify, watchdog_period
from feeder.pipeline import state_database
from feeder.refreshes import log_report, ping_lines, refresh_once
from feeder.scheduler import Refresher, Refreshes, Schedule
from feeder.serve import FileServer
from feeder.sources.web import user_agent
from feeder.store import Store
from feeder.watch import watch_folder
from feeder.websub import PingOutcome

if TYPE_CHECKING:
    from feeder.following import Follower

log = logging.getLogger("feeder")

# Settings a running service cannot take over from a reloaded config.
RESTART_ONLY = ("output_dir", "state_dir", "database", "server", "control")
RECHECK_DELAY = 1.0
STOP_GRACE = 20.0


def daemon_lock(config: Config) -> Path:
    return config.state_dir / DAEMON_LOCK


async def announce(config: Config, topics: Sequence[str], metrics: Metrics | None = None) -> list[PingOutcome]:
    """Tell the WebSub hubs which feed URLs changed, record how it went in the status and feed it to ``metrics``
    (without one, a Metrics for this round alone, which writes metrics.prom all the same)."""
    outcomes = await websub.announce(config.websub, topics, user_agent=user_agent(config))
    if outcomes:
        status.record_pings(config.state_dir, outcomes, datetime.now(UTC))
        (metrics or Metrics(config.state_dir)).observe_pings(outcomes)
    return outcomes


async def _announce_and_log(config: Config, topics: Sequence[str], metrics: Metrics) -> None:
    for ok, line in ping_lines(await announce(config, topics, metrics)):
        (log.info if ok else log.warning)("%s", line)


class Service:
    """One running feeder: serve, schedule, watch, answer the control API, obey signals."""

    def __init__(self, config: Config, *, schedule: bool = True, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.metrics = Metrics(config.state_dir)  # GET /metrics serves self.metrics.exposition()
        self.refresher: Refreshes
        self.follower: Follower | None = None
        if config.database is None:
            self.refresher = Refresher(self._refresh)
            self.schedule = Schedule(self.refresher, _intervals(config) if schedule else {})
            self.answers = Answers(lambda: self.config, self.refresher, self.schedule)
        else:  # polls are jobs for the workers; this process publishes what they store
            from feeder.deferring import JobRefresher  # noqa: PLC0415 - procrastinate, only on PostgreSQL
            from feeder.following import Follower  # noqa: PLC0415

            jobs = self.refresher = JobRefresher(config)
            self.schedule = Schedule(jobs, _intervals(config) if schedule else {})
            self.follower = Follower(lambda: self.config, self.schedule.next_polls, self._followed)
            trouble = lambda: self.follower.last_failure if self.follower else None  # noqa: E731
            self.answers = Answers(lambda: self.config, jobs, self.schedule, queue=jobs.overview, trouble=trouble)
        # a lambda, not the bound method: after a reload the new config's intervals apply
        self.server = FileServer(config.output_dir, lambda path: self.config.max_age(path))  # noqa: PLW0108
        self.api: ApiServer | None = None
        self._scheduling = schedule
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pings: set[asyncio.Task[None]] = set()
        self._watchers: dict[tuple[str, Path], asyncio.Task[None]] = {}

    def run(self) -> None:
        """Run until SIGTERM or SIGINT; raise BusyError if this config already has a daemon."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._scheduling:
            asyncio.run(self._main())
            return
        with held(daemon_lock(self.config), wait=False, what="a feeder daemon"):
            with Store.open(state_database(self.config)):
                pass  # migrate now, so a broken state stops the start, not the first poll
            asyncio.run(self._main())

    async def _main(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        if self._scheduling:
            loop.add_signal_handler(signal.SIGHUP, self._reload)
        host, port = await self._listen()
        if self._scheduling:
            await self._start_api()
        tasks = [asyncio.create_task(self._watchdog())]
        if self._scheduling:
            await asyncio.to_thread(self.refresher.start)
            if self.follower:
                self.follower.start()
            self.schedule.start()
            self.refresher.request(s.name for s in self.config.sources)
            self._watch_folders()
        log.info("serving %s on http://%s:%d/", self.config.output_dir, host, port)
        notify("READY=1", f"STATUS=serving {self.config.output_dir} on http://{host}:{port}/", f"MAINPID={os.getpid()}")
        await self._stop.wait()
        log.info("stopping")
        notify("STOPPING=1")
        # A reload or a second SIGTERM racing the stop is moot, and once the loop is closed their default
        # action would kill the process: take them from the loop (which would restore that default) and ignore them.
        for signum in (signal.SIGHUP, signal.SIGTERM):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
        for task in [*tasks, *self._watchers.values()]:
            task.cancel()
        await self._shutdown()

    async def _listen(self) -> tuple[str, int]:
        server = self.config.server
        try:
            return await self.server.start(server.host, server.port)
        except OSError as e:
            raise ListenError(f"cannot listen on {server.host}:{server.port}: {e.strerror or e}") from e

    async def _start_api(self) -> None:
        """The control API and status page on control.host:control.port, with the token of control.token_file."""
        control = self.config.control
        app = create_app(self.answers, token=load_token(self.config.token_file), metrics=self.metrics.exposition)
        self.api = ApiServer(app, control.host, control.port)
        host, port = await self.api.start()
        shown = f"[{host}]" if ":" in host else host
        log.info("control API and status page on http://%s:%d/ (token in %s)", shown, port, self.config.token_file)

    async def _shutdown(self) -> None:
        self.schedule.stop()
        if self.follower:
            await asyncio.to_thread(self.follower.stop, STOP_GRACE)
        stopped = await asyncio.to_thread(self.refresher.stop, STOP_GRACE)
        if not stopped:
            log.warning(
                "the current refresh did not stop in %ss; abandoning it (nothing partial is published)", STOP_GRACE
            )
        await self.server.stop()
        if self.api:
            await self.api.stop()
        for task in self._pings:
            task.cancel()
        if self._pings:
            log.warning("stopping: %d round(s) of WebSub pings left unfinished", len(self._pings))
            await asyncio.gather(*self._pings, return_exceptions=True)

    def _refresh(self, sources: frozenset[str]) -> RefreshReport:
        """The Refresher's work: runs on its thread."""
        report = refresh_once(
            self.config,
            datetime.now(UTC),
            sources,
            progress=self._abort_when_stopping,
            next_polls=self.schedule.next_polls(),
            metrics=self.metrics,
        )
        log_report(report)
        self._poll_again_if_recent(report)
        if report.topics and self.config.websub.hubs and self._loop:
            self._loop.call_soon_threadsafe(self._ping, report.topics)
        release_free_memory()
        return report

    def _followed(self, built: Built | None) -> None:
        """After each look of the Follower (on its thread): metrics.prom follows status.json; what it published
        is logged, and the hubs are told."""
        self.metrics.write_textfile()
        if built is None:
            return
        log_report(RefreshReport((), written=tuple(built.written)))
        if built.topics and self.config.websub.hubs and self._loop:
            self._loop.call_soon_threadsafe(self._ping, built.topics)

    def _ping(self, topics: Sequence[str]) -> None:
        """Ping the hubs in the loop, apart from the refresh: a slow or failing hub never holds up the next one."""
        if self._stop.is_set():
            return
        task = asyncio.create_task(_announce_and_log(self.config, topics, self.metrics))
        self._pings.add(task)
        task.add_done_callback(self._pings.discard)

    def _poll_again_if_recent(self, report: RefreshReport) -> None:
        """A file written in the last seconds may have been read half-written: look again shortly."""
        recent = [s.source for s in report.sources if s.recent]
        if recent and self._loop and not self.refresher.stopping:
            self._loop.call_soon_threadsafe(self._loop.call_later, RECHECK_DELAY, self._request, recent)

    def _request(self, sources: list[str]) -> None:
        if not self._stop.is_set():
            self.refresher.request(sources)

    def _abort_when_stopping(self, source: str, done: int, total: int) -> None:
        if self.refresher.stopping:
            raise RefreshAbortedError(f"{source}: refresh abandoned at file {done} of {total}: the service is stopping")

    def _reload(self) -> None:
        """SIGHUP (``systemctl reload``): read the config again, then poll every source now.

        Runs in the loop, not in the signal handler. A config that does not validate is logged and the
        service keeps running on the one it has.
        """
        if self._stop.is_set():
            return
        log.info("SIGHUP: refreshing every source")
        notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        if self.config_path is not None:
            self._reload_config(self.config_path)
        future = self.refresher.request(s.name for s in self.config.sources)
        future.add_done_callback(lambda _: None if self._stop.is_set() else notify("READY=1"))

    def _reload_config(self, path: Path) -> None:
        try:
            new = load_config(path)
        except ConfigError as e:
            log.error("config reload refused; still running on the previous config:")
            for line in str(e).splitlines():
                log.error("%s", line)
            return
        fixed = {
            key: getattr(self.config, key) for key in RESTART_ONLY if getattr(new, key) != getattr(self.config, key)
        }
        for key in fixed:
            log.warning("config reload: %s changed; that takes effect at the next restart", key)
        self.config = new.model_copy(update=fixed)
        self.schedule.replace(_intervals(self.config))
        self._watch_folders()
        self.server.files.forget()  # cached headers carry Cache-Control from the old intervals
        log.info("config reloaded from %s", path)

    def _watch_folders(self) -> None:
        """One watcher per seeds folder of the config (which a reload may change): a change polls its source."""
        wanted = {(s.name, s.path) for s in self.config.sources if isinstance(s, SeedsSource)}
        for key in set(self._watchers) - wanted:
            self._watchers.pop(key).cancel()
        for name, path in wanted - set(self._watchers):
            changed = functools.partial(self._request, [name])
            self._watchers[name, path] = asyncio.create_task(watch_folder(name, path, changed, self._stop))

    async def _watchdog(self) -> None:
        period = watchdog_period()
        if period is None:
            return
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(period)


def _intervals(config: Config) -> dict[str, timedelta]:
    return {s.name: s.interval for s in config.sources}


def serve_only(config: Config) -> None:
    """``feeder serve``: the HTTP server alone, over files another process publishes."""
    Service(config, schedule=False).run()
