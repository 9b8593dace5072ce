"""feeder.status: recording polls, status.json round trips and `feeder status` lines (its metrics: test_metrics)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from feeder import status
from feeder.models import Problem, RefreshReport, SourceReport
from tests.builders import NOW

NEXT = NOW + timedelta(minutes=1)

SEEDS = SourceReport(
    source="seeds",
    new=2,
    updated=1,
    unchanged=3,
    skipped=1,
    problems=(Problem("seeds/bad.txt", "no title line"),),
    duration=1.23456,
)
RFI = SourceReport(source="rfi", failure="HTTP 503 from www.rfi.fr", duration=0.5)


def first_status() -> status.Status:
    return status.record(
        {"sources": {}},
        RefreshReport(sources=(SEEDS, RFI)),
        started=NOW,
        next_polls={"seeds": NEXT, "rfi": None},
        entries=7,
    )


def test_record_from_an_empty_status() -> None:
    assert first_status() == {
        "updated": "2026-01-15T12:00:00Z",
        "entries": 7,
        "last_publish": None,
        "feeds": {},
        "sources": {
            "rfi": {
                "last_poll": "2026-01-15T12:00:00Z",
                "last_success": None,
                "duration_seconds": 0.5,
                "new": 0,
                "updated": 0,
                "unchanged": 0,
                "skipped": 0,
                "errors": 0,
                "problems": [],
                "failure": "HTTP 503 from www.rfi.fr",
                "degraded": None,
                "waiting": None,
                "polls": 1,
                "failed_polls": 1,
                "waiting_polls": 0,
                "next_poll": None,
            },
            "seeds": {
                "last_poll": "2026-01-15T12:00:00Z",
                "last_success": "2026-01-15T12:00:00Z",
                "duration_seconds": 1.235,
                "new": 2,
                "updated": 1,
                "unchanged": 3,
                "skipped": 1,
                "errors": 1,
                "problems": [{"file": "seeds/bad.txt", "reason": "no title line"}],
                "failure": None,
                "degraded": None,
                "waiting": None,
                "polls": 1,
                "failed_polls": 0,
                "waiting_polls": 0,
                "next_poll": "2026-01-15T12:01:00Z",
            },
        },
    }
    assert list(first_status()["sources"]) == ["rfi", "seeds"]


def test_record_from_a_previous_status_counts_polls_and_keeps_the_others() -> None:
    previous = first_status()
    previous["sources"]["retired"] = {"next_poll": "2026-01-15T11:00:00Z"}
    snapshot = copy.deepcopy(previous)
    later = NOW + timedelta(minutes=5)
    failed_seeds = SourceReport(source="seeds", failure="folder missing", duration=0.01)
    recorded = status.record(
        previous,
        RefreshReport(sources=(failed_seeds,)),
        started=later,
        next_polls={"rfi": later + timedelta(minutes=10)},
        entries=9,
    )
    assert previous == snapshot  # the previous status is not modified
    assert recorded["updated"] == "2026-01-15T12:05:00Z"
    assert recorded["entries"] == 9
    seeds = recorded["sources"]["seeds"]
    assert seeds["polls"] == 2
    assert seeds["failed_polls"] == 1
    assert seeds["failure"] == "folder missing"
    assert seeds["last_poll"] == "2026-01-15T12:05:00Z"
    assert (seeds["new"], seeds["errors"], seeds["problems"]) == (0, 0, [])
    assert "next_poll" not in seeds  # polled, and no schedule gave a next time
    rfi = recorded["sources"]["rfi"]
    assert rfi == {**snapshot["sources"]["rfi"], "next_poll": "2026-01-15T12:15:00Z"}  # only the next poll moved
    assert recorded["sources"]["retired"] == {"next_poll": "2026-01-15T11:00:00Z"}
    assert list(recorded["sources"]) == ["retired", "rfi", "seeds"]

    third = status.record(
        recorded, RefreshReport(sources=(SEEDS,)), started=later, next_polls={"seeds": None}, entries=9
    )
    assert third["sources"]["seeds"]["polls"] == 3
    assert third["sources"]["seeds"]["failed_polls"] == 1  # a success does not reset the failure count
    assert third["sources"]["seeds"]["next_poll"] is None


def test_record_keeps_the_last_success_and_publish_and_counts_polls_put_off() -> None:
    written = RefreshReport(sources=(SEEDS,), written=(Path("/out/a.atom"),), feeds=(("a", 3),))
    first = status.record({"sources": {}}, written, started=NOW, next_polls={}, entries=3)
    assert (first["last_publish"], first["feeds"]) == ("2026-01-15T12:00:00Z", {"a": 3})
    later = NOW + timedelta(minutes=5)
    report = RefreshReport(
        sources=(SourceReport("seeds", failure="folder missing"), SourceReport("rfi", waiting="asked to wait")),
        feeds=(("a", 3), ("a/中国", 0)),
    )
    second = status.record(first, report, started=later, next_polls={}, entries=3)
    assert second["last_publish"] == "2026-01-15T12:00:00Z"  # nothing written this time
    assert second["feeds"] == {"a": 3, "a/中国": 0}
    seeds, rfi = second["sources"]["seeds"], second["sources"]["rfi"]
    assert (seeds["last_poll"], seeds["last_success"]) == ("2026-01-15T12:05:00Z", "2026-01-15T12:00:00Z")
    assert (seeds["polls"], seeds["failed_polls"], seeds["waiting_polls"]) == (2, 1, 0)
    assert rfi["last_success"] is None  # put off: it asked nothing, so it read nothing
    assert (rfi["polls"], rfi["failed_polls"], rfi["waiting_polls"]) == (1, 0, 1)


def test_record_caps_the_problems_kept_but_counts_them_all() -> None:
    problems = tuple(Problem(f"seeds/{i:02}.txt", f"reason {i}") for i in range(status.PROBLEMS_KEPT + 5))
    report = RefreshReport(sources=(SourceReport(source="seeds", skipped=25, problems=problems),))
    recorded = status.record({"sources": {}}, report, started=NOW, next_polls={}, entries=0)
    seeds = recorded["sources"]["seeds"]
    assert seeds["errors"] == status.PROBLEMS_KEPT + 5
    assert len(seeds["problems"]) == status.PROBLEMS_KEPT == 20
    assert seeds["problems"][0] == {"file": "seeds/00.txt", "reason": "reason 0"}
    assert seeds["problems"][-1] == {"file": "seeds/19.txt", "reason": "reason 19"}


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "state"
    recorded = first_status()
    status.save(state, recorded)
    assert status.load(state) == recorded
    assert sorted(path.name for path in state.iterdir()) == [status.STATUS_FILE]  # metrics.prom: feeder.metrics
    chinese = status.record(
        recorded,
        RefreshReport(sources=(SourceReport(source="seeds", problems=(Problem("中文.txt", "没有标题"),)),)),
        started=NOW,
        next_polls={},
        entries=7,
    )
    status.save(state, chinese)
    assert status.load(state) == chinese
    assert "没有标题" in (state / status.STATUS_FILE).read_text(encoding="utf-8")  # written as UTF-8, not escaped


def test_load_of_a_missing_file_gives_an_empty_status(tmp_path: Path) -> None:
    assert status.load(tmp_path) == {"sources": {}}
    assert status.load(tmp_path / "no-such-folder") == {"sources": {}}


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"\xff\xfe\x00", b"[]", b'"text"', b"{}", b'{"sources": []}', b'{"sources": null}'],
)
def test_load_of_a_corrupt_file_gives_an_empty_status(tmp_path: Path, content: bytes) -> None:
    (tmp_path / status.STATUS_FILE).write_bytes(content)
    assert status.load(tmp_path) == {"sources": {}}


# --- feeder status ---------------------------------------------------------------------------------------------------


def test_describe_an_empty_status() -> None:
    assert status.describe({"sources": {}}) == ["no poll recorded yet"]
    assert status.describe(status.load(Path("/nonexistent-feeder-state"))) == ["no poll recorded yet"]


def test_describe_a_never_polled_source() -> None:
    assert status.describe({"sources": {"rfi": {"next_poll": "2026-01-15T12:01:00Z"}}}) == [
        "rfi: never polled; next poll 2026-01-15T12:01:00Z"
    ]
    assert status.describe({"sources": {"rfi": {"next_poll": None}}}) == ["rfi: never polled; next poll not scheduled"]


def test_describe_a_failed_and_a_normal_source() -> None:
    assert status.describe(first_status()) == [
        "rfi: last poll 2026-01-15T12:00:00Z (0.50s): failed: HTTP 503 from www.rfi.fr",
        "  next poll: not scheduled (no daemon running)",
        "seeds: last poll 2026-01-15T12:00:00Z (1.24s): 2 new, 1 updated, 3 unchanged, 1 skipped, 1 errors",
        "  seeds/bad.txt: no title line",
        "  next poll: 2026-01-15T12:01:00Z",
        "entries: 7",
    ]


def test_describe_after_a_refresh_without_a_daemon(tmp_path: Path) -> None:
    """`feeder refresh` with no daemon passes no next polls: the polled source shows no schedule."""
    recorded = status.record(
        {"sources": {}},
        RefreshReport(sources=(SourceReport(source="seeds", new=1, duration=0.2),)),
        started=datetime(2026, 1, 15, 12, 0, tzinfo=UTC),
        next_polls={},
        entries=1,
    )
    status.save(tmp_path, recorded)
    lines = status.describe(status.load(tmp_path))
    assert lines == [
        "seeds: last poll 2026-01-15T12:00:00Z (0.20s): 1 new, 0 updated, 0 unchanged, 0 skipped, 0 errors",
        "  next poll: not scheduled (no daemon running)",
        "entries: 1",
    ]
    assert json.loads((tmp_path / status.STATUS_FILE).read_text(encoding="utf-8")) == recorded


def test_entries_of_the_wrong_shape_are_dropped_on_load(tmp_path: Path) -> None:
    (tmp_path / status.STATUS_FILE).write_text('{"sources": {"a": 1, "b": {"polls": 2}}}', encoding="utf-8")
    loaded = status.load(tmp_path)
    assert loaded["sources"] == {"b": {"polls": 2}}
    assert status.describe(loaded)  # no crash on what is left


def test_with_the_configured_sources_removed_ones_go_and_unscheduled_ones_get_no_next_poll() -> None:
    previous = {"sources": {"gone": {"polls": 3}, "b": {"next_poll": "2026-01-15T12:01:00Z"}}}
    report = RefreshReport(sources=(SourceReport("a", new=1),))
    recorded = status.record(previous, report, started=NOW, next_polls={}, entries=1, configured=["a", "b"])
    assert set(recorded["sources"]) == {"a", "b"}
    assert recorded["sources"]["b"]["next_poll"] is None
    assert recorded["sources"]["a"]["next_poll"] is None


def test_times_are_recorded_in_utc() -> None:
    paris = datetime(2026, 1, 15, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    report = RefreshReport(sources=(SourceReport("a"),))
    recorded = status.record({"sources": {}}, report, started=paris, next_polls={}, entries=0)
    assert recorded["sources"]["a"]["last_poll"] == "2026-01-15T12:00:00Z"
