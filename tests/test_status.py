"""feeder.status: recording polls, status.json round trips, the Prometheus text file and `feeder status` lines."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from feeder import status
from feeder.models import Problem, RefreshReport, SourceReport
from tests.builders import NOW

NEXT = NOW + timedelta(minutes=1)
NOW_EPOCH = 1_768_478_400
NEXT_EPOCH = NOW_EPOCH + 60

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
        "sources": {
            "rfi": {
                "last_poll": "2026-01-15T12:00:00Z",
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
                "next_poll": None,
            },
            "seeds": {
                "last_poll": "2026-01-15T12:00:00Z",
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
    assert (state / status.METRICS_FILE).read_text(encoding="utf-8") == status.metrics(recorded)
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


# --- Prometheus text format ----------------------------------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    rf"^(?P<name>{NAME})(?:\{{(?P<labels>{LABEL}(?:,{LABEL})*)\}})? "
    r"(?P<value>-?(?:[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|\+Inf|-Inf))$"
)
HELP = re.compile(rf"^# HELP (?P<name>{NAME}) \S.*$")
TYPE = re.compile(rf"^# TYPE (?P<name>{NAME}) (?P<kind>counter|gauge|histogram|summary|untyped)$")


def parse_prometheus(text: str) -> dict[tuple[str, str], str]:
    """Check the exposition format line by line; the samples as {(name, labels): value text}."""
    assert text.endswith("\n")
    samples: dict[tuple[str, str], str] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    finished: set[str] = set()  # families whose samples are over: they must not come back
    current = ""
    for line in text.splitlines():
        if not line:
            continue  # the format ignores empty lines
        if help_line := HELP.match(line):
            name = help_line["name"]
            assert name not in helped, f"second HELP for {name}"
            helped.add(name)
        elif type_line := TYPE.match(line):
            name = type_line["name"]
            assert name not in typed, f"second TYPE for {name}"
            assert name in helped, f"TYPE before HELP for {name}"
            typed[name] = type_line["kind"]
        else:
            sample = SAMPLE.match(line)
            assert sample, f"not a sample line: {line!r}"
            name = sample["name"]
            assert name in helped, f"{name} sample before its HELP"
            assert name in typed, f"{name} sample before its TYPE"
            assert name not in finished, f"{name} samples are not grouped"
            if name != current:
                finished.add(current)
                current = name
            key = (name, sample["labels"] or "")
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample["value"]
            if typed[name] == "counter":
                assert name.endswith("_total")
    return samples


def test_metrics_is_prometheus_text_format() -> None:
    recorded = first_status()
    recorded["sources"]["later"] = {"next_poll": "2026-01-15T12:01:00Z"}  # scheduled, never polled
    samples = parse_prometheus(status.metrics(recorded))
    seeds, rfi, later = 'source="seeds"', 'source="rfi"', 'source="later"'
    assert samples[("feeder_source_last_poll_timestamp_seconds", seeds)] == str(NOW_EPOCH)
    assert samples[("feeder_source_next_poll_timestamp_seconds", seeds)] == str(NEXT_EPOCH)
    assert samples[("feeder_source_next_poll_timestamp_seconds", later)] == str(NEXT_EPOCH)
    assert ("feeder_source_next_poll_timestamp_seconds", rfi) not in samples  # none scheduled
    assert ("feeder_source_last_poll_timestamp_seconds", later) not in samples
    assert samples[("feeder_source_last_poll_duration_seconds", seeds)] == "1.235"
    assert samples[("feeder_source_last_poll_duration_seconds", rfi)] == "0.5"
    assert samples[("feeder_source_last_poll_entries", f'{seeds},outcome="new"')] == "2"
    assert samples[("feeder_source_last_poll_entries", f'{seeds},outcome="updated"')] == "1"
    assert samples[("feeder_source_last_poll_entries", f'{seeds},outcome="unchanged"')] == "3"
    assert samples[("feeder_source_last_poll_entries", f'{seeds},outcome="skipped"')] == "1"
    assert samples[("feeder_source_last_poll_errors", seeds)] == "1"
    assert samples[("feeder_source_up", seeds)] == "1"
    assert samples[("feeder_source_up", rfi)] == "0"
    assert samples[("feeder_source_polls_total", rfi)] == "1"
    assert samples[("feeder_source_failed_polls_total", rfi)] == "1"
    assert samples[("feeder_source_failed_polls_total", seeds)] == "0"
    assert samples[("feeder_entries", "")] == "7"
    for (name, _), value in samples.items():
        if name.endswith("_timestamp_seconds"):
            assert re.fullmatch(r"[0-9]{10}", value), f"{name} {value}: not a full integer"
        assert "e" not in value.lower(), f"{name} {value}: exponent notation"


def test_metrics_keeps_integer_timestamps_far_in_the_future() -> None:
    recorded = {"sources": {"s": {"next_poll": "2286-11-20T17:46:40Z"}}}
    samples = parse_prometheus(status.metrics(recorded))
    assert samples[("feeder_source_next_poll_timestamp_seconds", 'source="s"')] == "10000000000"


def test_metrics_of_an_empty_status_has_no_samples() -> None:
    assert parse_prometheus(status.metrics({"sources": {}})) == {}
    assert parse_prometheus(status.metrics({"sources": {}, "entries": 0})) == {("feeder_entries", ""): "0"}


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
    assert status.metrics(loaded).endswith("\n")


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
