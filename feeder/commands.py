"""What a running service answers on the control socket (control.py carries the requests): ``status``, and
``refresh`` of some or all sources, answered once that refresh is done."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import Any

from feeder import status
from feeder.config import Config
from feeder.errors import FeederError
from feeder.models import RefreshReport
from feeder.scheduler import Refresher, Schedule

log = logging.getLogger("feeder")


async def answer(request: dict[str, Any], config: Config, refresher: Refresher, schedule: Schedule) -> dict[str, Any]:
    command = request.get("command")
    if command == "status":
        return {"status": current_status(config, schedule)}
    if command != "refresh":
        return {"error": f"unknown command {command!r}"}
    names = request.get("sources") or [s.name for s in config.sources]
    unknown = sorted(set(names) - {s.name for s in config.sources})
    if unknown:
        return {"error": f"unknown source(s): {', '.join(unknown)}"}
    log.info("refresh of %s requested over the control socket", ", ".join(names))
    future: Future[RefreshReport] = refresher.request(names)
    try:
        report = await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        return {"error": "the service is stopping"}
    except FeederError as e:
        return {"error": str(e)}
    return {"report": report.to_dict()}


def current_status(config: Config, schedule: Schedule) -> status.Status:
    """The status last recorded, with when each source is polled next."""
    current = status.load(config.state_dir)
    for name, moment in schedule.next_polls().items():
        current["sources"].setdefault(name, {})["next_poll"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
    return current
