"""WebSub publish pings: once a build has written changed feeds, each hub hears which feed URLs changed.

One POST per hub and changed feed URL (``hub.mode=publish``, ``hub.url=`` the feed's self URL), sent after the
files are written, so a ping never delays or fails publishing. A network error or a 5xx answer is tried again
after ``retry_delay``, doubling, up to ``attempts`` tries in all; any other answer outside 2xx is final. What
becomes of the pings is returned, for the caller to record (status.record_pings) and log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from feeder.config import WebSubConfig
from feeder.errors import FetchError
from feeder.http import FormPoster

PINGS_PER_HUB = 4
"""Pings in flight at once to one hub."""
TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class PingOutcome:
    """What became of the ping of one hub about one feed URL."""

    hub: str
    topic: str
    ok: bool
    detail: str
    """The last answer ("HTTP 204") or why there was none."""
    attempts: int


Sleep = Callable[[float], Awaitable[None]]


def by_hub(outcomes: Sequence[PingOutcome]) -> dict[str, tuple[list[PingOutcome], list[PingOutcome]]]:
    """Per hub, in the order hubs were pinged: its outcomes, and those of them that failed."""
    rounds: dict[str, tuple[list[PingOutcome], list[PingOutcome]]] = {}
    for outcome in outcomes:
        pinged, failed = rounds.setdefault(outcome.hub, ([], []))
        pinged.append(outcome)
        if not outcome.ok:
            failed.append(outcome)
    return rounds


async def announce(
    settings: WebSubConfig,
    topics: Sequence[str],
    *,
    user_agent: str,
    sleep: Sleep = asyncio.sleep,
) -> list[PingOutcome]:
    """Ping every hub about every changed feed URL; never raises for a hub's failure."""
    if not settings.hubs or not topics:
        return []
    async with FormPoster(user_agent, timeout=TIMEOUT) as client:
        pings = [_Pinger(hub, settings, client, sleep) for hub in settings.hubs]
        results = await asyncio.gather(*(pinger.ping(topic) for pinger in pings for topic in topics))
    return list(results)


class _Pinger:
    """The pings of one hub, a few at a time."""

    def __init__(self, hub: str, settings: WebSubConfig, client: FormPoster, sleep: Sleep) -> None:
        self.hub, self.settings, self.client, self.sleep = hub, settings, client, sleep
        self.slots = asyncio.Semaphore(PINGS_PER_HUB)

    async def ping(self, topic: str) -> PingOutcome:
        delay = self.settings.retry_delay.total_seconds()
        detail = ""
        for attempt in range(1, self.settings.attempts + 1):
            async with self.slots:
                status, detail = await self._post(topic)
            if status is not None and 200 <= status < 300:
                return PingOutcome(self.hub, topic, ok=True, detail=detail, attempts=attempt)
            if status is not None and status < 500:  # refused: asking again will not help
                return PingOutcome(self.hub, topic, ok=False, detail=detail, attempts=attempt)
            if attempt < self.settings.attempts:
                await self.sleep(delay)
                delay *= 2
        return PingOutcome(self.hub, topic, ok=False, detail=detail, attempts=self.settings.attempts)

    async def _post(self, topic: str) -> tuple[int | None, str]:
        try:
            status = await self.client.post(self.hub, [("hub.mode", "publish"), ("hub.url", topic)])
        except FetchError as e:
            return None, e.reason
        return status, f"HTTP {status}"
