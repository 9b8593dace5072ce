"""feeder.answers: what the control API answers, from a real config, status.json, published files and a Refresher
whose refresh is the real one (refreshes.refresh_once) on tmp_path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feeder import status
from feeder.answers import Answers, duration_text
from feeder.config import Config, parse_config
from feeder.errors import UnknownSourceError
from feeder.models import RefreshReport
from feeder.refreshes import refresh_once
from feeder.scheduler import Refresher, Schedule
from tests.builders import CHINA_URL, config_text, seed_text, seeds_folder, write_seed

TIMEOUT = 5.0
OTHER_URL = "https://www.rfi.fr/cn/%E6%B3%95%E5%9B%BD/20240110-other"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "seeds").mkdir()
    text = config_text().replace("    max_entries: 200\n", "    max_entries: 200\n    variants: [zh-tw]\n")
    text = text.replace("    interval: 1m\n", "    interval: 90s\n")
    return parse_config(text, tmp_path / "config.yaml")


@pytest.fixture
def running(config: Config) -> Iterator[Answers]:
    def run(sources: frozenset[str]) -> RefreshReport:
        return refresh_once(config, datetime.now(UTC), sources)

    refresher = Refresher(run)
    schedule = Schedule(refresher, {"seeds": timedelta(minutes=1)})
    answers = Answers(lambda: config, refresher, schedule)
    refresher.start()
    schedule.start()
    yield answers
    schedule.stop()
    assert refresher.stop(TIMEOUT)


def finished(answers: Answers, ident: str) -> dict[str, object]:
    deadline = time.monotonic() + TIMEOUT
    while (asked := answers.progress(ident)) is not None and asked["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert asked is not None
    return asked


def test_before_any_poll(config: Config) -> None:
    refresher = Refresher(lambda sources: RefreshReport(sources=()))
    answers = Answers(lambda: config, refresher, Schedule(refresher, {"seeds": timedelta(minutes=1)}))
    [source] = answers.sources()
    assert source == {
        "name": "seeds",
        "kind": "seeds",
        "interval": "90s",
        "interval_seconds": 90,
        "last_poll": None,
        "next_poll": None,
        "degraded": None,
        "failure": None,
        "waiting": None,
    }
    assert answers.status() == {"sources": {"seeds": {"next_poll": None}}}
    assert [(f["name"], f["entries"], f["last_change"], f["bytes"]) for f in answers.feeds()] == [
        ("rfi-cn", None, None, {"atom": None, "rss": None, "json": None}),
        ("rfi-cn-zh-tw", None, None, {"atom": None, "rss": None, "json": None}),
    ]
    assert answers.health() == "the scheduler is not running"


def test_a_refresh_asked_for_runs_and_everything_shows_it(config: Config, running: Answers) -> None:
    write_seed(seeds_folder(config), "001_a.txt", seed_text())
    write_seed(seeds_folder(config), "002_b.txt", seed_text(OTHER_URL, "另一篇"))
    asked = running.refresh(None)
    assert asked["sources"] == ["seeds"]
    assert asked["state"] in ("queued", "running", "done")
    done = finished(running, str(asked["id"]))
    assert done["state"] == "done"
    assert done["error"] is None
    report = done["report"]
    assert isinstance(report, dict)
    assert report["sources"][0]["new"] == 2

    [source] = running.sources()
    assert (source["new"], source["polls"], source["failure"], source["degraded"]) == (2, 1, None, None)
    assert source["last_poll"].endswith("Z")
    assert source["next_poll"] is not None
    assert running.status()["sources"]["seeds"]["next_poll"] == source["next_poll"]
    assert running.health() is None

    feed, edition = running.feeds()
    assert (feed["name"], feed["title"], feed["edition"], feed["entries"]) == ("rfi-cn", "RFI 中文", None, 2)
    assert (edition["name"], edition["title"], edition["edition"]) == ("rfi-cn-zh-tw", "RFI 中文 (zh-TW)", "zh-tw")
    assert feed["urls"] == {kind: f"http://127.0.0.1:8080/rfi-cn.{kind}" for kind in ("atom", "rss", "json")}
    assert feed["bytes"]["atom"] == (config.output_dir / "rfi-cn.atom").stat().st_size
    assert feed["last_change"].endswith("Z")


def test_unknown_sources_are_refused(running: Answers) -> None:
    with pytest.raises(UnknownSourceError, match=r"unknown source\(s\): nope, other"):
        running.refresh(["seeds", "other", "nope"])
    assert running.progress("0" * 16) is None


def test_a_refresh_that_cannot_publish_makes_the_daemon_unhealthy(config: Config, running: Answers) -> None:
    write_seed(seeds_folder(config), "001_a.txt", seed_text(CHINA_URL))
    config.output_dir.parent.mkdir(exist_ok=True)
    config.output_dir.write_text("a file where the output folder should be", encoding="utf-8")
    failed = finished(running, str(running.refresh(["seeds"])["id"]))
    assert failed["state"] == "failed"
    assert str(failed["error"])
    assert running.health() == f"refresh of seeds failed: {failed['error']}"
    config.output_dir.unlink()
    assert finished(running, str(running.refresh(["seeds"])["id"]))["state"] == "done"
    assert running.health() is None


def test_a_feed_file_that_is_not_a_json_feed_has_no_entry_count(config: Config) -> None:
    config.output_dir.mkdir()
    (config.output_dir / "rfi-cn.json").write_text("[]", encoding="utf-8")
    refresher = Refresher(lambda sources: RefreshReport(sources=()))
    answers = Answers(lambda: config, refresher, Schedule(refresher, {}))
    assert answers.feeds()[0]["entries"] is None
    (config.output_dir / "rfi-cn.json").write_text('{"items": {}}', encoding="utf-8")
    assert answers.feeds()[0]["entries"] is None


def test_the_status_is_the_recorded_one_with_next_polls(config: Config) -> None:
    recorded = {"updated": "2026-01-15T12:00:00Z", "entries": 1, "sources": {"gone": {"polls": 1}}}
    config.state_dir.mkdir(parents=True)
    status.save(config.state_dir, recorded)
    refresher = Refresher(lambda sources: RefreshReport(sources=()))
    answers = Answers(lambda: config, refresher, Schedule(refresher, {"seeds": timedelta(minutes=1)}))
    assert answers.status() == {**recorded, "sources": {"gone": {"polls": 1}, "seeds": {"next_poll": None}}}


@pytest.mark.parametrize(
    ("seconds", "text"), [(30, "30s"), (90, "90s"), (60, "1m"), (900, "15m"), (7200, "2h"), (86400, "1d")]
)
def test_duration_text(seconds: int, text: str) -> None:
    assert duration_text(timedelta(seconds=seconds)) == text
