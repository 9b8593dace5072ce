"""The pieces of scale-out one at a time: scheduled slots, the queue's coalescing, generations and their
notifications, reports carried between jobs, and the commands on PostgreSQL (a real server)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feeder.config import parse_config
from feeder.errors import ConfigError
from feeder.jobs import Queue
from feeder.models import Problem, SourceReport
from feeder.polling import combined, report_data, report_from_data, take_chunk_reports
from feeder.scheduler import offset_for, slot_of
from feeder.status import queue_lines
from feeder.store import Store
from feeder.store.postgres import Listener
from feeder.store.shared import CHANNEL
from tests.builders import config_text, run_feeder, seed_text, write_seed
from tests.scaleout import Cluster

CHINA = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/"


def test_schedulers_name_a_poll_by_the_slot_nearest_to_their_clock() -> None:
    interval = timedelta(minutes=10)
    due = datetime(2026, 1, 1, tzinfo=UTC) + offset_for("news", interval)
    slot = int(due.timestamp())
    for skew in (-299, -1, 0, 1, 299):  # two schedulers a little apart still name the same poll
        assert slot_of("news", interval, due + timedelta(seconds=skew)) == slot
    assert slot_of("news", interval, due + timedelta(seconds=301)) == slot + 600
    assert slot_of("other", interval, due) != slot  # each source has its own phase


def test_a_report_survives_the_trip_between_jobs() -> None:
    report = SourceReport(
        "seeds", 3, 1, 2, 4, (Problem("a.txt", "broken"),), None, 1.5, 1, "degraded", None, (("h", "200", 2),)
    )
    assert report_from_data(report_data(report)) == report


def test_taking_a_polls_chunk_reports_clears_those_a_dead_poll_left(store: Store) -> None:
    report = SourceReport("seeds", new=3)
    with store.transaction():
        for key in ("chunk:seeds:1", "chunk:seeds:99", "chunk:seeds-old:5"):
            store.set_setting(key, json.dumps(report_data(report)))
    assert take_chunk_reports(store, "seeds", [1, 2]) == [report]  # job 2 left none: it was read by the poll
    assert store.setting("chunk:seeds:99") is None
    assert store.setting("chunk:seeds-old:5") is not None  # another source's


def test_a_chunked_poll_adds_its_chunks_and_counts_their_files_once() -> None:
    final = SourceReport("seeds", new=1, skipped=30, problems=(Problem("z.txt", "late"),))
    chunks = [
        SourceReport("seeds", new=10, problems=(Problem("b.txt", "bad"),)),
        SourceReport("seeds", new=8, updated=1, skipped=1),
    ]
    report = combined(final, chunks, files=20, duration=2.0)
    assert (report.new, report.updated, report.skipped) == (19, 1, 11)
    assert [p.locator for p in report.problems] == ["b.txt", "z.txt"]
    assert report.duration == 2.0


def test_the_status_lines_show_the_queue_and_the_live_workers() -> None:
    queue = {
        "sources": {"news": {"waiting": 1, "running": 1, "failed": 0}},
        "workers": [{"id": 7, "last_heartbeat": "2026-01-01T00:00:00Z"}],
    }
    assert queue_lines(queue) == [
        "queue news: 1 waiting, 1 running",
        "workers: 1 alive (last heartbeats: #7 at 2026-01-01T00:00:00Z)",
    ]
    assert queue_lines({"error": "the job queue: down"}) == ["queue: the job queue: down"]
    assert queue_lines(None) == []


def test_a_worker_silent_for_less_than_two_heartbeats_is_refused(tmp_path: Path) -> None:
    text = config_text() + "queue: {heartbeat: 10s, stalled_after: 15s}\n"
    with pytest.raises(ConfigError, match=r"queue.*stalled_after must be at least twice heartbeat"):
        parse_config(text, tmp_path / "config.yaml")


def test_feeder_worker_on_sqlite_says_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "config.yaml").write_text(config_text(), encoding="utf-8")
    result = run_feeder(tmp_path / "config.yaml", "worker", expect=3)
    assert "feeder worker needs database: postgresql://" in result.stderr


def test_a_poll_asked_for_while_one_waits_is_that_one(postgres_url: str) -> None:
    with Queue(postgres_url) as queue:
        first = queue.defer_poll("news")
        assert queue.defer_poll("news") == first
        assert queue.defer_poll("other") != first
        assert queue.states([first]) == {first: "todo"}
        assert queue.defer_scheduled("news", 1000) is None  # covered by the waiting poll
        assert queue.defer_scheduled("third", 1000) is not None
        assert queue.defer_scheduled("third", 1000) is None  # the same slot, from another scheduler
        overview = queue.overview(timedelta(seconds=30))
    assert overview["sources"]["news"] == {"waiting": 1, "running": 0, "failed": 0}
    assert overview["workers"] == []


def test_a_failed_poll_shows_in_the_queue_until_it_is_cleared(tmp_path: Path, postgres_url: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text() + f"database: '{postgres_url}'\n", encoding="utf-8")
    (tmp_path / "seeds").mkdir()
    cluster = Cluster()
    with Queue(postgres_url) as queue:
        job = queue.defer_poll("ghost")  # a source this worker's config does not have
        try:
            cluster.start(config, "worker", name="worker")
            cluster.wait("the poll failed", lambda: queue.states([job])[job] == "failed")
        finally:
            cluster.stop()
        assert queue.overview(timedelta(seconds=30))["sources"] == {"ghost": {"waiting": 0, "running": 0, "failed": 1}}
        with Store.open(postgres_url) as store:
            store.forget_failed_jobs(timedelta(days=1))
            assert queue.overview(timedelta(seconds=30))["sources"]["ghost"]["failed"] == 1  # a recent one stays
            store.forget_failed_jobs(timedelta(0))
        assert queue.overview(timedelta(seconds=30))["sources"] == {}
    assert "unknown source 'ghost'" in cluster.children[0].log()


def test_moving_a_generation_notifies_the_listeners_at_commit(postgres_url: str) -> None:
    listener = Listener(postgres_url, CHANNEL)
    listener.listen()
    try:
        with Store.open(postgres_url) as store:
            with store.transaction():
                store.bump_generations(["news", "other", "news"])
                assert listener.wait(0.2) == []  # not before the commit
            assert listener.wait(5) == ["news,other"]
            with store.transaction():
                store.bump_generations(["news"])
            assert store.generations() == {"news": 2, "other": 1}
    finally:
        listener.close()


def test_refresh_and_status_on_postgresql_with_and_without_workers(tmp_path: Path, postgres_url: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        config_text() + f"database: '{postgres_url}'\nqueue: {{heartbeat: 1s, stalled_after: 3s}}\n", encoding="utf-8"
    )
    write_seed(tmp_path / "seeds", "001_a.txt", seed_text(f"{CHINA}20240109-one", "一"))

    alone = run_feeder(config, "refresh")  # no worker: it polls by itself, as on SQLite
    assert "seeds: 1 new" in alone.stdout
    assert "polled by the workers" not in alone.stdout
    shown = run_feeder(config, "status").stdout
    assert "seeds: last poll" in shown
    assert "1 new" in shown
    assert "workers: 0 alive" in shown

    cluster = Cluster()
    try:
        cluster.start(config, "worker", name="worker")
        deadline = time.monotonic() + 30
        while "workers: 1 alive" not in run_feeder(config, "status").stdout:
            assert time.monotonic() < deadline, cluster.children[0].log()
            time.sleep(0.2)
        write_seed(tmp_path / "seeds", "002_b.txt", seed_text(f"{CHINA}20240109-two", "二"))
        queued = run_feeder(config, "refresh")
    finally:
        cluster.stop()
    assert "polled by the workers" in queued.stdout
    assert "seeds: 1 new, 0 updated, 0 unchanged, 1 skipped" in queued.stdout
    with Store.open(postgres_url) as store:
        assert store.count_entries() == 2
        assert store.generations() == {"rfi-cn": 2}
