"""What the last polls did, kept out of band: state_dir/status.json (and websub.json for the hubs' pings).

Errors are reported here and in the log, never as feed entries. The daemon
and ``feeder refresh`` both record into the same file; ``feeder status`` reads
it, and feeder.metrics exports it (the counters that outlive a restart).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feeder.models import RefreshReport
from feeder.publish import write_if_changed
from feeder.websub import PingOutcome, by_hub

if TYPE_CHECKING:
    from feeder.store import Store

STATUS_FILE = "status.json"
WEBSUB_FILE = "websub.json"
PROBLEMS_KEPT = 20

Status = dict[str, Any]
_WRITING = threading.Lock()  # the daemon records polls on its refresh thread and pings in its event loop


def load(state_dir: Path) -> Status:
    """The recorded status, or an empty one when none was written yet (or it is unreadable), with the WebSub
    hubs' last pings under ``websub`` when there were any."""
    data = _read_json(state_dir / STATUS_FILE)
    if not isinstance(data.get("sources"), dict):
        data = {"sources": {}}
    data["sources"] = {name: values for name, values in data["sources"].items() if isinstance(values, dict)}
    hubs = _read_json(state_dir / WEBSUB_FILE)
    if hubs:
        data["websub"] = {hub: values for hub, values in hubs.items() if isinstance(values, dict)}
    return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_pings(state_dir: Path, outcomes: Sequence[PingOutcome], now: datetime) -> None:
    """Keep, per hub, how its last round of WebSub pings went and how many pings it had in all."""
    with _WRITING:
        _record_pings(state_dir, outcomes, now)


def _record_pings(state_dir: Path, outcomes: Sequence[PingOutcome], now: datetime) -> None:
    hubs = _read_json(state_dir / WEBSUB_FILE)
    for hub, (mine, failed) in by_hub(outcomes).items():
        before = hubs[hub] if isinstance(hubs.get(hub), dict) else {}
        hubs[hub] = {
            "last_ping": iso(now),
            "ok": not failed,
            "feeds": len(mine),
            "failed": len(failed),
            "detail": (failed or mine)[-1].detail,
            "pings": int(before.get("pings", 0)) + len(mine),
            "failed_pings": int(before.get("failed_pings", 0)) + len(failed),
        }
    write_if_changed(state_dir / WEBSUB_FILE, (json.dumps(hubs, ensure_ascii=False, indent=2) + "\n").encode())


def record(
    previous: Status,
    report: RefreshReport,
    *,
    started: datetime,
    next_polls: Mapping[str, datetime | None],
    entries: int,
    configured: Collection[str] | None = None,
) -> Status:
    """The status after one refresh: the polled sources' figures replaced, the others' next poll times refreshed,
    the feeds' entry counts replaced, and the last publish moved to ``started`` when the refresh wrote files.

    With ``configured`` (the config's source names), sources no longer configured are dropped and a
    configured source without a scheduled poll gets none.
    """
    sources = {
        name: dict(values)
        for name, values in previous.get("sources", {}).items()
        if configured is None or name in configured
    }
    for s in report.sources:
        before = sources.get(s.source, {})
        succeeded = not s.failure and not s.waiting
        sources[s.source] = {
            "last_poll": iso(started),
            "last_success": iso(started) if succeeded else before.get("last_success"),
            "duration_seconds": round(s.duration, 3),
            "new": s.new,
            "updated": s.updated,
            "unchanged": s.unchanged,
            "skipped": s.skipped,
            "errors": len(s.problems),
            "problems": [{"file": p.locator, "reason": p.reason} for p in s.problems[:PROBLEMS_KEPT]],
            "failure": s.failure,
            "degraded": s.degraded,
            "waiting": s.waiting,
            "polls": int(before.get("polls", 0)) + 1,
            "failed_polls": int(before.get("failed_polls", 0)) + (1 if s.failure else 0),
            "waiting_polls": int(before.get("waiting_polls", 0)) + (1 if s.waiting and not s.failure else 0),
        }
    scheduled = {name: next_polls.get(name) for name in configured} if configured is not None else next_polls
    set_next_polls(sources, scheduled)
    return {
        "updated": iso(started),
        "entries": entries,
        "last_publish": iso(started) if report.written else previous.get("last_publish"),
        "feeds": dict(report.feeds),
        "sources": dict(sorted(sources.items())),
    }


def set_next_polls(sources: dict[str, Any], next_polls: Mapping[str, datetime | None]) -> None:
    """Give each source of ``next_polls`` its next poll time (None: not scheduled) in a status's ``sources``."""
    for name, moment in next_polls.items():
        sources.setdefault(name, {})["next_poll"] = iso(moment) if moment else None


def queue_overview(store: Store, within: timedelta) -> dict[str, Any]:
    """The job queue as the status shows it (PostgreSQL): per source its poll jobs waiting, running and failed,
    and the workers heard from within ``within``."""
    sources, workers = store.queue_overview(within)
    return {"sources": sources, "workers": [{"id": ident, "last_heartbeat": iso(beat)} for ident, beat in workers]}


def save(state_dir: Path, status: Status) -> None:
    """Write status.json atomically."""
    with _WRITING:
        write_if_changed(state_dir / STATUS_FILE, (json.dumps(status, ensure_ascii=False, indent=2) + "\n").encode())


def describe(status: Status) -> list[str]:
    """Human-readable lines for ``feeder status``."""
    if not status.get("sources"):
        return ["no poll recorded yet"]
    lines = []
    for source, v in status["sources"].items():
        if "last_poll" not in v:
            lines.append(f"{source}: never polled; next poll {v.get('next_poll') or 'not scheduled'}")
            continue
        outcome = (
            f"failed: {v['failure']}"
            if v["failure"]
            else (
                f"{v['new']} new, {v['updated']} updated, {v['unchanged']} unchanged, {v['skipped']} skipped, "
                f"{v['errors']} errors"
            )
        )
        lines.append(f"{source}: last poll {v['last_poll']} ({v['duration_seconds']:.2f}s): {outcome}")
        if v.get("degraded"):
            lines.append(f"  DEGRADED: {v['degraded']}")
        if v.get("waiting"):
            lines.append(f"  SKIPPED, asked to wait: {v['waiting']}")
        lines += [f"  {p['file']}: {p['reason']}" for p in v.get("problems", [])]
        lines.append(f"  next poll: {v.get('next_poll') or 'not scheduled (no daemon running)'}")
    for hub, v in status.get("websub", {}).items():
        outcome = "ok" if v["ok"] else f"{v['failed']} of {v['feeds']} failed"
        lines.append(
            f"websub {hub}: last ping {v['last_ping']} about {v['feeds']} feed URLs: {outcome} ({v['detail']})"
        )
    if "entries" in status:
        lines.append(f"entries: {status['entries']}")
    return lines + queue_lines(status.get("queue"))


def queue_lines(queue: object) -> list[str]:
    """The job queue (PostgreSQL): per source, its poll jobs waiting, running and failed; the live workers."""
    if not isinstance(queue, dict):
        return []
    if "error" in queue:
        return [f"queue: {queue['error']}"]
    lines = []
    for source, counts in queue.get("sources", {}).items():
        shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        lines.append(f"queue {source}: {shown or 'nothing queued'}")
    workers = queue.get("workers", [])
    heard = ", ".join(f"#{w['id']} at {w['last_heartbeat']}" for w in workers)
    lines.append(f"workers: {len(workers)} alive" + (f" (last heartbeats: {heard})" if heard else ""))
    return lines


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
