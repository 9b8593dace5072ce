"""feeder.scheduler: the Refresher's queueing rule with a run function that blocks like a slow poll; the Schedule."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feeder.errors import PublishError, RefreshAbortedError
from feeder.models import RefreshReport, SourceReport
from feeder.scheduler import ANCHOR, KEPT, Refresher, Schedule, offset_for

TIMEOUT = 3.0
PROJECT = Path(__file__).resolve().parent.parent


class SlowRun:
    """A refresh that blocks on ``gate`` until the test opens it; each report carries its run number in ``new``."""

    def __init__(self) -> None:
        self.batches: list[frozenset[str]] = []
        self.started = threading.Semaphore(0)
        self.gate = threading.Event()
        self.fail_on = ""

    def __call__(self, batch: frozenset[str]) -> RefreshReport:
        self.batches.append(batch)
        number = len(self.batches)
        self.started.release()
        if not self.gate.wait(TIMEOUT):
            raise RuntimeError("the test never opened the gate")
        if self.fail_on in batch:
            raise RuntimeError(f"run {number} failed")
        return RefreshReport(sources=tuple(SourceReport(source=name, new=number) for name in sorted(batch)))

    def wait_started(self) -> None:
        assert self.started.acquire(timeout=TIMEOUT), "the refresher did not start a run"


def run_number(report: RefreshReport) -> int:
    numbers = {s.new for s in report.sources}
    assert len(numbers) == 1
    return numbers.pop()


@pytest.fixture
def slow() -> SlowRun:
    return SlowRun()


@pytest.fixture
def refresher(slow: SlowRun) -> Iterator[Refresher]:
    worker = Refresher(slow)
    worker.start()
    yield worker
    slow.gate.set()
    assert worker.stop(TIMEOUT)


def settle() -> None:
    """Give the worker time to start a run it should not start."""
    time.sleep(0.1)


def test_a_request_during_a_poll_runs_once_right_after_it(refresher: Refresher, slow: SlowRun) -> None:
    first = refresher.request(["seeds"])
    slow.wait_started()
    second = refresher.request(["seeds"])
    settle()
    assert slow.batches == [frozenset({"seeds"})]  # nothing runs beside the current poll
    slow.gate.set()
    assert run_number(first.result(TIMEOUT)) == 1
    assert run_number(second.result(TIMEOUT)) == 2
    settle()
    assert slow.batches == [frozenset({"seeds"}), frozenset({"seeds"})]
    assert refresher.runs == 2


def test_three_requests_during_one_poll_collapse_into_one_run(refresher: Refresher, slow: SlowRun) -> None:
    first = refresher.request(["seeds"])
    slow.wait_started()
    waiting = [refresher.request(["seeds"]), refresher.request(["rfi"]), refresher.request(["seeds", "other"])]
    slow.gate.set()
    assert run_number(first.result(TIMEOUT)) == 1
    reports = [future.result(TIMEOUT) for future in waiting]
    assert all(report is reports[0] for report in reports)  # one run answered all three
    assert run_number(reports[0]) == 2
    settle()
    assert slow.batches == [frozenset({"seeds"}), frozenset({"seeds", "rfi", "other"})]
    assert refresher.runs == 2


def test_each_future_gets_a_run_that_started_after_its_request(refresher: Refresher, slow: SlowRun) -> None:
    slow.gate.set()
    first = refresher.request(["a"])
    assert run_number(first.result(TIMEOUT)) == 1
    later = refresher.request(["a"])
    assert run_number(later.result(TIMEOUT)) == 2  # not the finished run's report
    slow.wait_started()
    slow.wait_started()  # runs 1 and 2
    slow.gate.clear()
    third = refresher.request(["a"])
    slow.wait_started()
    fourth = refresher.request(["b"])  # asked while run 3 is under way
    slow.gate.set()
    assert run_number(third.result(TIMEOUT)) == 3
    assert run_number(fourth.result(TIMEOUT)) == 4
    assert slow.batches[2:] == [frozenset({"a"}), frozenset({"b"})]


def test_a_failing_run_fails_its_futures_and_the_worker_goes_on(
    refresher: Refresher, slow: SlowRun, caplog: pytest.LogCaptureFixture
) -> None:
    slow.fail_on = "boom"
    first = refresher.request(["x"])
    slow.wait_started()
    failing = [refresher.request(["boom"]), refresher.request(["y"])]
    with caplog.at_level(logging.ERROR, logger="feeder.scheduler"):
        slow.gate.set()
        assert run_number(first.result(TIMEOUT)) == 1
        errors = [future.exception(TIMEOUT) for future in failing]
    assert isinstance(errors[0], RuntimeError)
    assert str(errors[0]) == "run 2 failed"
    assert errors[1] is errors[0]
    assert "refresh of boom, y failed" in caplog.text
    after = refresher.request(["z"])
    assert run_number(after.result(TIMEOUT)) == 3
    assert refresher.runs == 3


def test_stop_cancels_waiting_requests_and_lets_the_running_one_finish(refresher: Refresher, slow: SlowRun) -> None:
    running = refresher.request(["a"])
    slow.wait_started()
    waiting = refresher.request(["b"])
    assert refresher.stop(0.2) is False  # the worker is still inside run 1
    assert refresher.stopping
    assert waiting.cancelled()
    assert not running.done()
    assert refresher.request(["c"]).cancelled()
    slow.gate.set()
    assert run_number(running.result(TIMEOUT)) == 1
    assert refresher.stop(TIMEOUT) is True
    assert slow.batches == [frozenset({"a"})]  # b and c never ran


def test_stop_of_an_idle_refresher(refresher: Refresher) -> None:
    started = time.monotonic()
    assert refresher.stop(TIMEOUT) is True
    assert time.monotonic() - started < 1.0
    late = refresher.request(["a"])
    assert late.cancelled()


def test_a_future_cancelled_by_its_caller_is_skipped(refresher: Refresher, slow: SlowRun) -> None:
    first = refresher.request(["a"])
    slow.wait_started()
    given_up = refresher.request(["b"])
    kept = refresher.request(["c"])
    assert given_up.cancel()
    slow.gate.set()
    assert run_number(first.result(TIMEOUT)) == 1
    assert run_number(kept.result(TIMEOUT)) == 2
    assert given_up.cancelled()


# --- Requests asked for by id ----------------------------------------------------------------------------------------


def test_an_asked_request_is_queued_then_running_then_done(refresher: Refresher, slow: SlowRun) -> None:
    first = refresher.ask(["seeds"])
    slow.wait_started()
    assert refresher.progress(first).state == "running"  # type: ignore[union-attr]
    second = refresher.ask(["seeds", "rfi", "seeds"])
    waiting = refresher.progress(second)
    assert waiting is not None
    assert (waiting.state, waiting.sources, waiting.report, waiting.error) == ("queued", ("rfi", "seeds"), None, None)
    slow.gate.set()
    wait_for_state(refresher, second, "done")
    done = refresher.progress(second)
    assert done is not None
    assert done.report is not None
    assert run_number(done.report) == 2
    assert refresher.progress(first).report is not done.report  # type: ignore[union-attr]
    assert refresher.progress("0" * 16) is None


def wait_for_state(refresher: Refresher, ident: str, state: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (asked := refresher.progress(ident)) is None or asked.state != state:
        assert time.monotonic() < deadline, f"{ident} stayed {asked}"
        time.sleep(0.01)


def test_a_failed_run_fails_its_requests_and_marks_the_refresher(refresher: Refresher, slow: SlowRun) -> None:
    slow.fail_on = "boom"
    slow.gate.set()
    failing = refresher.ask(["boom"])
    wait_for_state(refresher, failing, "failed")
    assert refresher.progress(failing).error == "run 1 failed"  # type: ignore[union-attr]
    assert refresher.last_failure == "refresh of boom failed: run 1 failed"
    fine = refresher.ask(["fine"])
    wait_for_state(refresher, fine, "done")
    assert refresher.last_failure is None


def test_an_abandoned_refresh_does_not_mark_the_refresher() -> None:
    def abandoned(batch: frozenset[str]) -> RefreshReport:
        raise RefreshAbortedError("seeds: refresh abandoned at file 3 of 9: the service is stopping")

    def unpublished(batch: frozenset[str]) -> RefreshReport:
        raise PublishError("cannot write public/rfi-cn.atom")

    for run, expected in [(abandoned, None), (unpublished, "refresh of a failed: cannot write public/rfi-cn.atom")]:
        worker = Refresher(run)
        worker.start()
        wait_for_state(worker, worker.ask(["a"]), "failed")
        assert worker.last_failure == expected
        assert worker.working
        assert worker.stop(TIMEOUT)
        assert not worker.working


def test_requests_cancelled_by_a_stop_are_failed(refresher: Refresher, slow: SlowRun) -> None:
    refresher.ask(["a"])
    slow.wait_started()
    waiting = refresher.ask(["b"])
    assert refresher.stop(0.1) is False
    asked = refresher.progress(waiting)
    assert asked is not None
    assert (asked.state, asked.error) == ("failed", "the service stopped before this refresh ran")


def test_only_the_last_finished_requests_are_kept() -> None:
    worker = Refresher(lambda batch: RefreshReport(sources=()))
    worker.start()
    try:
        idents = []
        for _ in range(KEPT + 20):
            idents.append(worker.ask(["a"]))
            wait_for_state(worker, idents[-1], "done")
        last = worker.ask(["a"])  # forgetting happens as requests come in
        known = [ident for ident in idents if worker.progress(ident) is not None]
        assert len(known) in (KEPT - 1, KEPT)  # KEPT - 1 when the last one had finished by the time of the count
        assert known == idents[-len(known) :]
        assert worker.progress(last) is not None
    finally:
        assert worker.stop(TIMEOUT)


# --- offset_for -----------------------------------------------------------------------------------------------------

NAMES = ["seeds", "rfi", "rfi-cn", "rfi-fr", "a", "b", *(f"source-{i}" for i in range(20))]


@pytest.mark.parametrize(
    "interval",
    [timedelta(seconds=1), timedelta(seconds=7), timedelta(minutes=15), timedelta(hours=1), timedelta(days=1)],
)
def test_offset_for_is_within_the_interval_in_whole_seconds(interval: timedelta) -> None:
    for name in NAMES:
        offset = offset_for(name, interval)
        assert timedelta(0) <= offset < interval
        assert offset.microseconds == 0
        assert offset_for(name, interval) == offset


def test_offset_for_spreads_sources_over_the_interval() -> None:
    offsets = {offset_for(name, timedelta(hours=1)) for name in NAMES}
    assert len(offsets) >= len(NAMES) - 2


def test_offset_for_a_sub_second_interval_is_zero() -> None:
    assert offset_for("seeds", timedelta(milliseconds=500)) == timedelta(0)


def test_offset_for_is_the_same_in_another_process() -> None:
    """Not derived from hash(), which changes with PYTHONHASHSEED."""
    code = "from datetime import timedelta; from feeder.scheduler import offset_for; " + (
        "print([int(offset_for(n, timedelta(hours=1)).total_seconds()) for n in ['seeds', 'rfi', 'rfi-cn']])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        cwd=PROJECT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    here = [int(offset_for(n, timedelta(hours=1)).total_seconds()) for n in ["seeds", "rfi", "rfi-cn"]]
    assert output.strip() == str(here)


# --- Schedule ---------------------------------------------------------------------------------------------------------


def test_schedule_polls_every_source_through_the_refresher() -> None:
    batches: list[frozenset[str]] = []
    seen = threading.Condition()

    def run(batch: frozenset[str]) -> RefreshReport:
        with seen:
            batches.append(batch)
            seen.notify_all()
        return RefreshReport(sources=tuple(SourceReport(source=name) for name in sorted(batch)))

    refresher = Refresher(run)
    refresher.start()
    schedule = Schedule(refresher, {"seeds": timedelta(seconds=1), "rfi": timedelta(seconds=1)})
    assert not schedule.running
    try:
        schedule.start()
        assert schedule.running
        polls = schedule.next_polls()
        now = datetime.now(UTC)
        assert set(polls) == {"seeds", "rfi"}
        for moment in polls.values():
            assert moment is not None
            assert moment.utcoffset() == timedelta(0)
            assert now - timedelta(seconds=1) <= moment <= now + timedelta(seconds=2)
        with seen:
            assert seen.wait_for(lambda: {"seeds", "rfi"} <= set().union(*batches), timeout=4.0), batches
    finally:
        schedule.stop()
        schedule.stop()  # idempotent
        assert refresher.stop(TIMEOUT)
    assert all(batch <= {"seeds", "rfi"} for batch in batches)


def test_schedule_fires_at_the_fixed_offset_of_each_source() -> None:
    refresher = Refresher(lambda batch: RefreshReport(sources=()))
    intervals = {"seeds": timedelta(minutes=1), "rfi": timedelta(minutes=15), "rfi-cn": timedelta(hours=1)}
    schedule = Schedule(refresher, intervals)
    schedule.stop()  # stopping a schedule that never started is harmless
    try:
        schedule.start()
        now = datetime.now(UTC)
        polls = schedule.next_polls()
    finally:
        schedule.stop()
    assert set(polls) == set(intervals)
    for name, interval in intervals.items():
        moment = polls[name]
        assert moment is not None
        assert moment.tzinfo is not None
        assert now - timedelta(seconds=1) < moment <= now + interval
        assert (moment - ANCHOR - offset_for(name, interval)) % interval == timedelta(0)


def test_next_polls_before_the_scheduler_starts_are_unknown() -> None:
    refresher = Refresher(lambda batch: RefreshReport(sources=()))
    schedule = Schedule(refresher, {"seeds": timedelta(minutes=1)})
    assert schedule.next_polls() == {"seeds": None}
