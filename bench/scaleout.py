"""Scale-out benchmark: how poll throughput grows with `feeder worker` processes on PostgreSQL, and what a big
seeds poll costs on PostgreSQL with two workers next to SQLite.

Run with `python -m bench --only scaleout` (or `python -m bench.scaleout --rounds N`); not part of `make test`.
It needs Debian's PostgreSQL 15 server binaries (tests/postgres.py starts a throwaway server, fsync off).

1. Live poll throughput. 400 RSS feeds of 10 items each (distinct article URLs) on 40 loopback addresses,
   every answer after 100 ms (bench/cluster.py), one ``kind: feed`` source per feed (fulltext: none). Each
   sample is a fresh database with K `feeder worker` processes (K = 1, 2, 4, each ``--concurrency``
   CONCURRENCY, queue.concurrency's default: one worker waits on the upstream, using about a quarter of a
   CPU), started and registered before the clock starts; the clock runs from the first of 400
   ``Queue.defer_poll`` to the moment every job has finished. Throughput is 400 / seconds. The floor is the
   1-worker throughput; the figures are 2 and 4 workers against it (targets 1.8× and 3.2×). Every run is
   checked: each job succeeded, each feed was fetched once, the ``entries`` table holds exactly the 4000
   article URLs served, and every source's status says its poll succeeded. The workers' CPU time and the
   machine's busy share are printed with each sample: the machine has 2 CPUs for the workers, PostgreSQL, the
   upstream and this process (and whatever else runs there).
2. 10 000 new seeds (bench/corpus.py): one in-process full refresh into an empty SQLite state (as
   bench/pipeline.py runs it: reading, writing, rendering and publishing) against, on a fresh PostgreSQL
   database, two `feeder worker` processes (default concurrency) running one queued poll of the seeds source,
   cut into chunk jobs of ``queue.chunk_files`` files, timed from the defer until the poll job has finished.
   The ratio PostgreSQL/SQLite is information, not a target; both must hold every distinct article.

Rounds alternate the contenders (1, 2, 4 workers; SQLite, PostgreSQL); the best sample of each counts and every
sample is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import (
    FEEDS,
    LATENCY,
    Workers,
    article_urls,
    feeds_config,
    machine_busy,
    postgresql,
    seeds_config,
    upstream,
    wait_finished,
    workers,
)
from bench.common import Figure, Samples, print_table
from bench.corpus import write_corpus
from bench.live import FeedServer
from bench.pipeline import child
from feeder.config import load_config
from feeder.jobs import Queue
from feeder.pipeline import state_database
from feeder.store import Store
from tests.postgres import Server

CONCURRENCY = 4
WORKER_COUNTS = (1, 2, 4)
TARGETS = {2: 1.8, 4: 3.2}
SEED_FILES = 10_000
ROUNDS = 3
SQLITE = "SQLite, in-process refresh"
SQLITE_POLL = "SQLite, that refresh's seeds poll"
POSTGRES = "PostgreSQL, 2 workers"
POLLS_TIMEOUT = 600.0


@dataclass(frozen=True)
class PollRun:
    seconds: float
    worker_cpu: float  # the workers' CPU seconds over the run
    machine: float  # share of all the machine's CPUs busy over the run


# Part 1: live poll throughput -------------------------------------------------------------------------------


def poll_run(server: FeedServer, pg: Server, work: Path, count: int) -> PollRun:
    """One timed run of 400 polls on ``count`` fresh workers and a fresh database, checked."""
    url = pg.new_database()
    config = feeds_config(work / f"polls-{count}-{time.monotonic_ns()}", url, server.port, CONCURRENCY)
    with Queue(url) as queue, workers(config, queue, count, CONCURRENCY) as running:
        server.reset()
        cpu, machine = running.cpu_seconds(), machine_busy()
        started = time.perf_counter()
        ids = [queue.defer_poll(f"f{n:03d}") for n in range(FEEDS)]
        states = wait_finished(url, ids, POLLS_TIMEOUT)
        seconds = time.perf_counter() - started
        cpu_used, busy = running.cpu_seconds() - cpu, _busy_share(machine, machine_busy())
        check_polls(url, list(states.values()), server.reset().statuses[200], running)
    return PollRun(seconds, cpu_used, busy)


def _busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    return (after[0] - before[0]) / max(1.0, after[1] - before[1])


def check_polls(url: str, states: list[str], fetched: int, running: Workers) -> None:
    """Every job succeeded, each feed was fetched once, no entry is missing or doubled, every poll recorded."""
    served = len({u for n in range(FEEDS) for u in article_urls(n)})
    with Store.open(url) as store:
        entries = store.count_entries()
        recorded = store.shared_status().get("sources", {})
    failed = [name for n in range(FEEDS) if not _succeeded(recorded.get(name := f"f{n:03d}", {}))]
    problems = [
        f"{states.count('succeeded')} of {FEEDS} jobs succeeded" if states.count("succeeded") != FEEDS else "",
        f"the upstream sent {fetched} feeds for {FEEDS} polls" if fetched != FEEDS else "",
        f"{entries} rows in entries for {served} article URLs served" if entries != served else "",
        f"{len(failed)} sources' status shows no successful poll: {failed[:5]}" if failed else "",
    ]
    if any(problems):
        running.fail("; ".join(p for p in problems if p))


def _succeeded(source: dict[str, object]) -> bool:
    return bool(source.get("last_success")) and not source.get("failure") and source.get("errors") == 0


def throughput(server: FeedServer, pg: Server, work: Path, rounds: int) -> list[Figure]:
    samples = Samples()
    for round_number in range(1, rounds + 1):
        for count in WORKER_COUNTS:
            run = poll_run(server, pg, work, count)
            samples.add(_workers(count), FEEDS / run.seconds)
            print(
                f"  round {round_number}, {_workers(count)} × concurrency {CONCURRENCY}: {run.seconds:.3f} s,"
                f" {FEEDS / run.seconds:.1f} polls/s; workers' CPU {run.worker_cpu / run.seconds:.2f} cores"
                f" ({run.worker_cpu / run.seconds / count:.2f} each), machine busy {run.machine:.0%} of 2 CPUs",
                flush=True,
            )
    samples.show(f"{FEEDS} polls, {LATENCY * 1000:.0f} ms upstream latency, concurrency {CONCURRENCY}", "polls/s", 1)
    best = {count: samples.best(_workers(count), lowest=False) for count in WORKER_COUNTS}
    ideal = CONCURRENCY / LATENCY
    return [
        Figure(f"scaleout {FEEDS} polls, 1 worker × {CONCURRENCY}", best[1], "poll/s", "— (information)", True,
               ideal, f"floor column: the latency bound, {CONCURRENCY} polls at a time / {LATENCY:g} s"),
        *(Figure(f"scaleout {FEEDS} polls, {_workers(count)} × {CONCURRENCY} vs 1", best[count], "poll/s",
                 f">= {TARGETS[count]:g}x floor (1 worker)", best[count] >= TARGETS[count] * best[1], best[1])
          for count in TARGETS),
    ]  # fmt: skip


def _workers(count: int) -> str:
    return f"{count} worker" + ("s" if count > 1 else "")


# Part 2: 10 000 new seeds -----------------------------------------------------------------------------------


def sqlite_refresh(seeds: Path, state: Path) -> tuple[float, float, int]:
    """bench/pipeline.py's in-process refresh into an empty state: its seconds, those of its seeds poll (the rest
    is rendering and publishing), and the entries it left."""
    timed = child("refresh", seeds, state)
    with Store.open(state_database(load_config(state / "config.yaml"))) as store:
        return timed["seconds"], timed["poll"], store.count_entries()


def postgres_poll(seeds: Path, pg: Server, folder: Path) -> tuple[float, int]:
    """One queued poll of the seeds source on two fresh workers and a fresh database: seconds, and entries."""
    url = pg.new_database()
    config = seeds_config(seeds, folder, url)
    with Queue(url) as queue, workers(config, queue, 2) as running:
        started = time.perf_counter()
        states = wait_finished(url, [queue.defer_poll("seeds")], POLLS_TIMEOUT)
        seconds = time.perf_counter() - started
        if list(states.values()) != ["succeeded"]:
            running.fail(f"the seeds poll ended {states}")
    with Store.open(url) as store:
        recorded = store.shared_status().get("sources", {}).get("seeds", {})
        if not _succeeded(recorded):
            raise SystemExit(f"scaleout: the seeds poll did not succeed: {recorded}")
        return seconds, store.count_entries()


def seeds_figures(pg: Server, work: Path, rounds: int) -> list[Figure]:
    seeds = work / "seeds"
    articles = write_corpus(seeds, SEED_FILES)
    samples = Samples()
    for n in range(1, rounds + 1):
        refresh, poll, lite_entries = sqlite_refresh(seeds, work / f"sqlite-{n}")
        samples.add(SQLITE, refresh)
        samples.add(SQLITE_POLL, poll)
        seconds, pg_entries = postgres_poll(seeds, pg, work / f"pg-{n}")
        samples.add(POSTGRES, seconds)
        print(f"  round {n}: {SQLITE} {refresh:.3f} s (its poll {poll:.3f} s), {lite_entries} entries;"
              f" {POSTGRES} {seconds:.3f} s, {pg_entries} entries", flush=True)  # fmt: skip
        if not lite_entries == pg_entries == articles:
            raise SystemExit(
                f"scaleout: {lite_entries} entries on SQLite, {pg_entries} on PostgreSQL, {articles} articles"
            )
    samples.show(f"{SEED_FILES} new seeds ({articles} articles)", "s")
    pg_best, lite, lite_poll = samples.best(POSTGRES), samples.best(SQLITE), samples.best(SQLITE_POLL)
    return [
        Figure(f"scaleout {SEED_FILES} new seeds, PG 2 workers vs SQLite refresh", pg_best, "s", "— (information)",
               True, lite, f"PostgreSQL/SQLite = {pg_best / lite:.2f}; the SQLite refresh also renders and publishes"),
        Figure(f"scaleout {SEED_FILES} new seeds, PG 2 workers vs SQLite poll", pg_best, "s", "— (information)",
               True, lite_poll, f"PostgreSQL/SQLite = {pg_best / lite_poll:.2f}: the refresh's seeds poll alone"),
    ]  # fmt: skip


def figures(rounds: int = ROUNDS) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="feeder-bench-scaleout-") as tmp, postgresql() as pg:
        work = Path(tmp)
        print(f"  each worker runs {CONCURRENCY} polls at once (--concurrency {CONCURRENCY})", flush=True)
        with upstream() as server:
            found = throughput(server, pg, work, rounds)
        return found + seeds_figures(pg, work, max(2, rounds // 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    print_table(figures(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
