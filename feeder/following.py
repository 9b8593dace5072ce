"""How a ``feeder run`` on PostgreSQL keeps its output folder in step with the database, whoever polled.

Workers move a feed's generation on (and notify) when a poll changed what it shows. Each node listens, and
looks anyway every ``queue.check_every`` in case a notification was missed; when any generation moved since
its last build, it builds (which renders only the documents whose entries changed). Rendering is deterministic,
so every node writes the same bytes, and the same ETags go out behind a load balancer. The status the polls
recorded in the database is copied into the node's status.json, so ``feeder status``, the status page and
the metrics read it as on SQLite.

While the database cannot be reached, the node keeps serving the files it has, says so once, and tries again
every few seconds until it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from feeder import status
from feeder.build import Built, build
from feeder.config import Config
from feeder.database_url import redacted
from feeder.errors import StoreError
from feeder.outage import Outage
from feeder.store import Store
from feeder.store.postgres import Listener
from feeder.store.shared import CHANNEL

log = logging.getLogger("feeder")

RETRY_SECONDS = 3.0
WAIT_SLICE = 0.5
CLEAR_EVERY = 3600.0
FAILED_KEPT = timedelta(days=1)

NextPolls = Callable[[], Mapping[str, datetime | None]]


class Follower:
    """A thread that publishes what the database holds whenever a feed's generation moves."""

    def __init__(
        self,
        config: Callable[[], Config],
        next_polls: NextPolls,
        looked: Callable[[Built | None], None],
    ) -> None:
        self._config = config
        self._cleared = 0.0
        self._next_polls = next_polls
        self._looked = looked
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="follower", daemon=True)
        url = redacted(config().database or "")
        self._outage = Outage(
            f"{url}: state database unreachable ({{reason}}); serving the files already published, trying again"
            f" every {RETRY_SECONDS}s",
            f"{url}: state database reachable again; publishing and polling resume",
        )

    @property
    def last_failure(self) -> str | None:
        """Why the database cannot be reached, while it cannot."""
        reason = self._outage.reason
        return None if reason is None else f"state database unreachable: {reason}"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _follow(self) -> None:
        url = self._config().database
        assert url is not None
        listener = Listener(url, CHANNEL)
        seen: dict[str, int] | None = None
        try:
            while not self._stop.is_set():
                try:
                    listener.listen()  # before looking, so that nothing notified meanwhile is missed
                    seen = self._catch_up(url, seen)
                    self._wait(listener, self._config().queue.check_every.total_seconds())
                except StoreError as e:
                    listener.close()  # its connection went down with the rest: listen afresh
                    self._outage.began(str(e).removeprefix(f"{redacted(url)}: "))
                    self._stop.wait(RETRY_SECONDS)
        finally:
            listener.close()

    def _wait(self, listener: Listener, seconds: float) -> None:
        """Until a notification, ``seconds`` or a stop, in short waits: stopping never waits on a long one."""
        ends = time.monotonic() + seconds
        while not self._stop.is_set() and (left := ends - time.monotonic()) > 0:
            if listener.wait(min(left, WAIT_SLICE)):
                return

    def _catch_up(self, url: str, seen: dict[str, int] | None) -> dict[str, int]:
        config = self._config()
        now = datetime.now(UTC)
        with Store.open(url) as store:
            try:
                generations = store.generations()
                self._outage.ended()
                built = build(config, store, now) if generations != seen else None
                recorded = self._status(config, store, built, now)
                self._clear_old_failures(store)
            except store.errors as e:  # the database went away while it was read
                raise StoreError(f"{redacted(url)}: {e}") from e
        status.save(config.state_dir, recorded)
        if built is not None:
            moved = sorted(name for name, n in generations.items() if (seen or {}).get(name) != n)
            log.debug("published after generations moved: %s", ", ".join(moved) or "(first look)")
        self._looked(built)
        return generations

    def _clear_old_failures(self, store: Store) -> None:
        """Once an hour, drop the failed poll jobs older than ``FAILED_KEPT``: the status counts recent ones."""
        if self._cleared and time.monotonic() - self._cleared < CLEAR_EVERY:
            return
        store.forget_failed_jobs(FAILED_KEPT)
        self._cleared = time.monotonic()

    def _status(self, config: Config, store: Store, built: Built | None, now: datetime) -> status.Status:
        """The node's status.json: the polls as the database recorded them, with this node's next poll times,
        what it published, and the queue."""
        previous = status.load(config.state_dir)
        configured = {s.name for s in config.sources}
        recorded = store.shared_status().get("sources", {})
        sources = {name: dict(values) for name, values in recorded.items() if name in configured}
        status.set_next_polls(sources, self._next_polls())
        published = built is not None and bool(built.written)
        return {
            "updated": status.iso(now),
            "entries": store.count_entries(),
            "last_publish": status.iso(now) if published else previous.get("last_publish"),
            "feeds": dict(built.feeds) if built is not None else previous.get("feeds", {}),
            "sources": dict(sorted(sources.items())),
            "queue": status.queue_overview(store, config.queue.stalled_after),
        }
