"""What bench/scaleout.py runs on: a throwaway PostgreSQL server, `feeder worker` processes, and an upstream of
400 RSS feeds on 40 loopback addresses that answers every request after 100 ms.

The server is tests/postgres.py's (PostgreSQL 15 on a Unix socket, fsync off, a fresh database per run). The
upstream is bench/live.py's FeedServer listening on 127.0.0.2 … 127.0.0.41, one port; feed N is on address
N mod 40 and lists 10 items whose article URLs no other feed lists (on articles.example, never fetched).
Workers are the real command, `python -m feeder worker`, each logging to its own file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from bench.live import FeedServer, serving
from bench.pipeline import write_config
from feeder.jobs import FINISHED, Queue
from feeder.store import Store
from tests import postgres

FEEDS = 400
ITEMS = 10
LATENCY = 0.100
HOSTS = tuple(f"127.0.0.{n}" for n in range(2, 42))
ARTICLES = "articles.example"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
LOOK_EVERY = 0.02  # seconds between two looks at the jobs' states
ROOT = Path(__file__).resolve().parent.parent


# The upstream ---------------------------------------------------------------------------------------------------


def feed_path(n: int) -> str:
    return f"/feed-{n:03d}.xml"


def feed_url(n: int, port: int) -> str:
    return f"http://{HOSTS[n % len(HOSTS)]}:{port}{feed_path(n)}"


def article_urls(n: int) -> list[str]:
    return [f"https://{ARTICLES}/feed-{n:03d}/item-{k:02d}" for k in range(ITEMS)]


def feed_document(n: int) -> bytes:
    items = "".join(
        f"<item><title>Feed {n} item {k}</title><link>{url}</link><description>Lead of item {k} of feed {n}."
        f"</description><guid>{url}</guid><pubDate>Wed, 10 Jan 2024 {k:02d}:{n % 60:02d}:00 GMT</pubDate></item>"
        for k, url in enumerate(article_urls(n))
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Feed {n}</title>'
        f"<link>http://{HOSTS[n % len(HOSTS)]}/</link><description>bench</description>{items}</channel></rss>\n"
    ).encode()


@contextmanager
def upstream() -> Iterator[FeedServer]:
    """The 400 feeds, served until the block ends."""
    server = FeedServer({feed_path(n): feed_document(n) for n in range(FEEDS)}, latency=LATENCY)
    with serving(server, HOSTS) as running:
        yield running


# Configs --------------------------------------------------------------------------------------------------------


def feeds_config(folder: Path, database: str, port: int, concurrency: int) -> Path:
    """One ``kind: feed`` source per upstream feed (fulltext: none) and one feed over them all."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = "".join(
        f"  - {{name: f{n:03d}, kind: feed, url: '{feed_url(n, port)}', fulltext: none}}\n" for n in range(FEEDS)
    )
    names = ", ".join(f"f{n:03d}" for n in range(FEEDS))
    path = folder / "config.yaml"
    path.write_text(
        f"output_dir: {folder / 'public'}\nstate_dir: {folder / 'state'}\nbase_url: http://127.0.0.1:8080/\n"
        f"database: '{database}'\nallowed_hosts: [{ARTICLES}]\nqueue: {{concurrency: {concurrency}}}\n"
        f"sources:\n{sources}feeds:\n  - {{name: all, title: all, sources: [{names}], max_entries: 200}}\n",
        encoding="utf-8",
    )
    return path


def seeds_config(seeds: Path, folder: Path, database: str | None = None) -> Path:
    """bench/pipeline.py's config over a seeds folder, on SQLite or on ``database``."""
    path = write_config(seeds, folder)
    if database:
        with path.open("a", encoding="utf-8") as f:
            f.write(f"database: '{database}'\n")
    return path


# PostgreSQL and workers -----------------------------------------------------------------------------------------


@contextmanager
def postgresql() -> Iterator[postgres.Server]:
    server = postgres.start()
    try:
        yield server
    finally:
        server.stop()


class Workers:
    """``count`` `feeder worker` processes on one config, started and registered, stopped by SIGTERM."""

    def __init__(self, config: Path, count: int, concurrency: int | None = None) -> None:
        options = ["--concurrency", str(concurrency)] if concurrency else []
        self.logs = [config.parent / f"worker-{n}.log" for n in range(count)]
        self.processes = []
        for log in self.logs:
            with log.open("wb") as out:
                command = [sys.executable, "-m", "feeder", "worker", "--config", str(config), *options]
                self.processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))

    def wait_registered(self, queue: Queue) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(queue.overview(timedelta(minutes=5))["workers"]) < len(self.processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.fail("the workers did not all register")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User and system CPU time of the worker processes so far (their reader processes not counted)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for p in self.processes:
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.fail(f"worker {p.pid} did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM")
        if any(p.returncode for p in self.processes):
            self.fail(f"a worker exited with {[p.returncode for p in self.processes]}")

    def fail(self, why: str) -> None:
        tails = "\n".join(f"--- {log}:\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)
        raise SystemExit(f"scaleout: {why}\n{tails}")


@contextmanager
def workers(config: Path, queue: Queue, count: int, concurrency: int | None = None) -> Iterator[Workers]:
    """Workers started and registered before the block, stopped (SIGTERM, wait) after it, whatever happens."""
    started = Workers(config, count, concurrency)
    try:
        started.wait_registered(queue)
        yield started
    finally:
        started.stop()


def wait_finished(url: str, ids: Iterable[int], timeout: float) -> dict[int, str]:
    """Look at the jobs every LOOK_EVERY seconds until they have all finished; their states. Through one
    connection (Queue.states opens one a call, which PostgreSQL would pay for 50 times a second)."""
    wanted = list(ids)
    deadline = time.monotonic() + timeout
    with Store.open(url) as store:
        while True:
            states = store.job_states(wanted)
            if all(state in FINISHED for state in states.values()):
                return states
            if time.monotonic() > deadline:
                raise SystemExit(f"scaleout: jobs still unfinished after {timeout:.0f} s: {states}")
            time.sleep(LOOK_EVERY)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)
