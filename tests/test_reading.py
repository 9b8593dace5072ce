"""Reading seed files in worker processes: the same results as in-process, in order, memory bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.config import Config
from feeder.models import KnownFile, SeedFile
from feeder.pipeline import refresh
from feeder.sources import folder as seeds
from feeder.sources import reading
from feeder.sources.reading import PARALLEL_FROM, ReadRules, SeedJob, read_all
from feeder.store import Store
from tests.builders import CHINA_URL, NOW, RFI, seed_text, seeds_folder, write_seed

RULES = ReadRules("seeds", RFI, NOW)


def broken_count(count: int) -> int:
    return sum(1 for n in range(count) if n % 7 == 3)


def jobs_for(folder: Path, count: int) -> list[SeedJob]:
    """``count`` seed files, every seventh broken and every fifth a second spelling of an earlier article."""
    jobs = []
    for n in range(count):
        if n % 7 == 3:
            text = "not a seed file\n"
        else:
            url = f"{CHINA_URL}-{n - n % 5}" + ("?xtor=RSS-1" if n % 5 else "")
            text = seed_text(url, f"标题 {n}", body=f"<p>第{n}段。</p>")
        path = write_seed(folder, f"{n:04d}.txt", text)
        jobs.append(SeedJob(SeedFile(path, path.stat().st_size, path.stat().st_mtime_ns), path.name, None))
    return jobs


def test_many_files_are_read_in_worker_processes_with_the_same_results_in_order(tmp_path: Path) -> None:
    jobs = jobs_for(tmp_path, PARALLEL_FROM + 57)
    here = list(read_all(jobs, RULES, workers=1))
    in_workers = list(read_all(jobs, RULES, workers=2))
    assert in_workers == here
    assert [read.job.key for read in in_workers] == [job.key for job in jobs]
    assert sum(read.problem is not None for read in here) == broken_count(len(jobs))
    assert {read.article.url for read in here if read.article} == {f"{CHINA_URL}-{n}" for n in range(0, len(jobs), 5)}


def test_a_poll_reading_in_worker_processes_leaves_them_to_another_still_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feeder worker runs several chunk jobs at once: the first to finish must not stop the forkserver the
    other's processes come from; the last one does."""
    stops: list[int] = []
    stop = reading._stop_forkserver

    def counted_stop() -> None:
        stops.append(reading._POOLS.running)  # the pools still reading
        stop()

    monkeypatch.setattr(reading, "_stop_forkserver", counted_stop)
    first, second = jobs_for(tmp_path / "a", PARALLEL_FROM + 40), jobs_for(tmp_path / "b", 2 * PARALLEL_FROM)
    first_done = threading.Event()

    def held_back() -> Iterator[SeedJob]:
        """The second poll's files: half, then the rest once the first poll is over (its pool stays up)."""
        yield from second[: PARALLEL_FROM + 64]
        first_done.wait(60)
        yield from second[PARALLEL_FROM + 64 :]

    results: list[reading.SeedRead] = []
    other = threading.Thread(target=lambda: results.extend(read_all(held_back(), RULES, workers=2)))
    other.start()
    assert list(read_all(first, RULES, workers=2)) == list(read_all(first, RULES, workers=1))
    first_done.set()
    other.join(120)
    assert results == list(read_all(second, RULES, workers=1))
    assert stops == [0]  # once, when neither read any more: not when the first was done and the other read on


def test_a_file_with_the_bytes_already_read_yields_no_article(tmp_path: Path) -> None:
    [job] = jobs_for(tmp_path, 1)
    first = next(read_all([job], RULES))
    assert first.seen is not None
    again = next(read_all([SeedJob(job.seed, job.key, first.seen.sha256)], RULES))
    assert (again.seen, again.article, again.problem) == (first.seen, None, None)


def test_an_unreadable_file_is_not_remembered_so_it_is_read_again(tmp_path: Path) -> None:
    missing = SeedJob(SeedFile(tmp_path / "gone.txt", 10, 1), "gone.txt", None)
    [read] = read_all([missing], RULES)
    assert read.seen is None
    assert read.problem is not None
    assert "cannot read file" in read.problem


def test_stopping_early_stops_the_workers(tmp_path: Path) -> None:
    reads = read_all(jobs_for(tmp_path, PARALLEL_FROM + 1), RULES, workers=2)
    assert next(reads).job.key == "0000.txt"
    reads.close()  # what a refresh abandoned mid-poll does: no worker is left behind, nothing hangs


def test_a_large_folder_is_listed_in_batches_and_every_file_once(tmp_path: Path) -> None:
    for n in range(25):
        (tmp_path / f"{n:02d}.txt").write_text("x")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / "folder.txt").mkdir()
    batches = list(seeds.listing(tmp_path, batch=10))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert sorted(name for batch in batches for name, _, _ in batch) == [f"{n:02d}.txt" for n in range(25)]


def test_a_refresh_of_many_files_counts_each_once_and_then_skips_them(config: Config, store: Store) -> None:
    folder = seeds_folder(config)
    jobs_for(folder, PARALLEL_FROM + 10)
    first = refresh(config, store, NOW).sources[0]
    broken = broken_count(PARALLEL_FROM + 10)
    assert (first.new, first.skipped, len(first.problems)) == (len(range(0, PARALLEL_FROM + 10, 5)), 0, broken)
    assert [p.locator for p in first.problems] == sorted(p.locator for p in first.problems)
    again = refresh(config, store, NOW).sources[0]
    assert (again.new, again.updated, again.unchanged, again.skipped) == (0, 0, 0, PARALLEL_FROM + 10)


def test_files_gone_from_the_folder_are_forgotten_and_read_again_if_they_return(config: Config, store: Store) -> None:
    folder = seeds_folder(config)
    for n in range(3):
        write_seed(folder, f"{n}.txt", seed_text(f"{CHINA_URL}-{n}"))
    refresh(config, store, NOW)
    text = (folder / "1.txt").read_bytes()
    (folder / "1.txt").unlink()
    (folder / "2.txt").rename(folder / ".2.txt")
    assert refresh(config, store, NOW).sources[0].skipped == 1
    assert store.count_files("seeds") == 1
    (folder / "1.txt").write_bytes(text)
    os.utime(folder / "1.txt", ns=(1, 1))
    back = refresh(config, store, NOW).sources[0]
    assert (back.skipped, back.unchanged) == (1, 1)  # read again: the same article, so nothing changes


@pytest.mark.parametrize("count", [0, 1, 899, 900, 901])
def test_changed_files_answers_for_any_batch_size(store: Store, count: int) -> None:
    listed = [(f"{n}.txt", n, n) for n in range(count)]
    with store.transaction():
        store.remember_files(
            "seeds", [(name, KnownFile(size, mtime, "h"), None, None) for name, size, mtime in listed[::2]]
        )
        if count > 1:
            store.remember_files("seeds", [("1.txt", KnownFile(99, 99, "old"), None, None)])
    known, changed = store.changed_files("seeds", listed)
    remembered = len(listed[::2]) + (count > 1)
    assert known == remembered
    assert [file for file, _ in changed] == listed[1::2]
    assert [k for _, k in changed][:1] == ([KnownFile(99, 99, "old")] if count > 1 else [])


READER = """
import sys
from pathlib import Path
from feeder.models import SeedFile
from feeder.sources.reading import ReadRules, SeedJob, read_all
from tests.builders import NOW, RFI

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    jobs = [SeedJob(SeedFile(p, p.stat().st_size, 0), p.name, None) for p in sorted(folder.iterdir())]
    for n, _ in enumerate(read_all(jobs * 50, ReadRules("seeds", RFI, NOW), workers=2)):
        if n == 10:
            print("reading", flush=True)
"""


def processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_workers_exit_when_the_process_that_started_them_is_killed(tmp_path: Path) -> None:
    folder = tmp_path / "seeds"
    jobs_for(folder, PARALLEL_FROM)
    script = tmp_path / "reader.py"
    script.write_text(READER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, env=env) as reader:
        assert reader.stdout is not None
        assert reader.stdout.readline() == b"reading\n"
        helpers = [pid for pid in processes_mentioning(str(tmp_path)) if pid != reader.pid]
        assert len(helpers) >= 3  # the forkserver and two workers, whose command line names the script's folder
        reader.kill()
    deadline = time.monotonic() + 10
    while processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(str(tmp_path)) == []


def children_running(marker: str) -> list[int]:
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        pids += [int(pid) for pid in (task / "children").read_text().split()]
    return [pid for pid in pids if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]


def test_no_helper_process_stays_once_the_files_are_read(tmp_path: Path) -> None:
    reads = read_all(jobs_for(tmp_path, PARALLEL_FROM), RULES, workers=2)
    next(reads)
    assert children_running("forkserver")
    assert len(list(reads)) == PARALLEL_FROM - 1
    assert children_running("forkserver") == []


def test_a_refresh_that_only_adds_files_does_not_look_for_deleted_ones(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = seeds_folder(config)
    write_seed(folder, "0.txt", seed_text(f"{CHINA_URL}-0"))
    refresh(config, store, NOW)
    write_seed(folder, "1.txt", seed_text(f"{CHINA_URL}-1"))

    def walked(source: str) -> None:
        raise AssertionError("walked every remembered file although none was deleted")

    monkeypatch.setattr(store, "file_paths", walked)
    assert refresh(config, store, NOW).sources[0].new == 1


@pytest.mark.parametrize("use_pidfd", [True, False])
def test_a_worker_learns_that_its_parent_ended_with_or_without_a_pidfd(
    use_pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "POLL_SECONDS", 0.01)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"]) as parent:
        reaper = threading.Thread(target=parent.wait)  # as systemd would: a zombie still counts as running
        reaper.start()
        started = time.monotonic()
        reading.wait_until_gone(parent.pid, use_pidfd=use_pidfd)
        assert time.monotonic() - started >= 0.2  # it waited for the end
        reaper.join(timeout=5)
        assert parent.returncode == 0
