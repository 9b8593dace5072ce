"""Reading seed files: bytes → Article, in this process or, for many files, in worker processes.

A refresh that meets a few new or changed files reads them here; one that meets
hundreds (a first run, a restored folder) hands them to one worker process per
core, a chunk at a time, and keeps only a few chunks in flight, so the results
come back in order while the caller writes them to the store, and memory stays
the same whatever the folder's size. Workers are forked from a server process
that has already imported the parsers, so starting them costs little.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import select
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime

from feeder.errors import ParseError
from feeder.models import Article, KnownFile, RawDocument, SeedFile
from feeder.normalize import normalize
from feeder.parse import parse_seed
from feeder.rules import SiteRules
from feeder.sources import folder

log = logging.getLogger(__name__)

PARALLEL_FROM = 200
"""Files to read in one poll from which worker processes pay for themselves."""
CHUNK = 32
MAX_WORKERS = 4
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SeedJob:
    """A seed file to read, under the key the store knows it by, with the hash of its last version read."""

    seed: SeedFile
    key: str
    known_sha256: str | None


@dataclass(frozen=True, slots=True)
class SeedRead:
    """What reading one seed file gave: an article or a problem; ``seen`` is None when it could not be read
    (it is read again on the next poll) and ``article`` None when its bytes did not change."""

    job: SeedJob
    seen: KnownFile | None
    article: Article | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ReadRules:
    """What reading needs besides the file: the source's name, its site's rules (hosts included), the time."""

    source: str
    site: SiteRules
    now: datetime


def read_seed(job: SeedJob, rules: ReadRules) -> SeedRead:
    seed = job.seed
    too_large = folder.size_problem(seed)
    if too_large:
        return SeedRead(job, KnownFile(seed.size, seed.mtime_ns, ""), problem=too_large)
    try:
        data = folder.read(seed)
    except ParseError as e:
        return SeedRead(job, None, problem=str(e))
    seen = KnownFile(seed.size, seed.mtime_ns, hashlib.sha256(data).hexdigest())
    if seen.sha256 == job.known_sha256:
        return SeedRead(job, seen)
    try:
        return SeedRead(job, seen, article=article_from_seed(seed, data, rules))
    except ParseError as e:
        return SeedRead(job, seen, problem=str(e))


def article_from_seed(seed: SeedFile, data: bytes, rules: ReadRules) -> Article:
    """Parse and normalize one seed file's bytes (its mtime stands in for a missing scrape time)."""
    mtime = datetime.fromtimestamp(seed.mtime_ns / 1e9, UTC)
    document = RawDocument(source=rules.source, locator=str(seed.path), content=data, retrieved_at=mtime)
    parsed = parse_seed(document, rules.site)
    return normalize(parsed, urls=rules.site.urls, retrieved_at=mtime, now=rules.now)


Outcome = tuple[KnownFile | None, Article | None, str | None]
"""A SeedRead without its job, as a worker sends it back: the job is not pickled twice."""


def read_chunk(jobs: list[SeedJob], rules: ReadRules) -> list[Outcome]:
    return [(read.seen, read.article, read.problem) for read in (read_seed(job, rules) for job in jobs)]


def read_all(jobs: Iterable[SeedJob], rules: ReadRules, workers: int | None = None) -> Generator[SeedRead, None, None]:
    """Read every job, in order: here when there are few, else in ``workers`` processes (one per core)."""
    workers = default_workers() if workers is None else workers
    jobs = iter(jobs)
    first = list(itertools.islice(jobs, PARALLEL_FROM))
    if len(first) < PARALLEL_FROM or workers < 2:
        yield from (read_seed(job, rules) for job in itertools.chain(first, jobs))
    else:
        yield from _in_workers(itertools.chain(first, jobs), rules, workers)


def default_workers() -> int:
    return min(len(os.sched_getaffinity(0)), MAX_WORKERS)


def _in_workers(jobs: Iterator[SeedJob], rules: ReadRules, workers: int) -> Iterator[SeedRead]:
    with _POOLS:
        _POOLS.running += 1
    pool = ProcessPoolExecutor(workers, mp_context=_worker_context(), initializer=_exit_with, initargs=(os.getpid(),))
    in_flight: deque[tuple[Future[list[Outcome]], list[SeedJob]]] = deque()
    try:
        for chunk in _chunks(jobs, CHUNK):
            in_flight.append((pool.submit(read_chunk, chunk, rules), chunk))
            if len(in_flight) > 2 * workers:
                yield from _oldest(in_flight)
        while in_flight:
            yield from _oldest(in_flight)
    except BrokenProcessPool:
        log.warning("%s: a worker process died; reading the remaining seed files in this process", rules.source)
        left = [job for _, chunk in in_flight for job in chunk]
        yield from (read_seed(job, rules) for job in itertools.chain(left, jobs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        with _POOLS:
            _POOLS.running -= 1
            if not _POOLS.running:  # another poll's pool of this process (a worker's job) may still use it
                _stop_forkserver()


class _Pools:
    """How many polls of this process read in worker processes right now (a ``feeder worker`` runs several)."""

    def __init__(self) -> None:
        self.running = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_: object) -> None:
        self._lock.release()


_POOLS = _Pools()


def _stop_forkserver() -> None:
    """Stop the forkserver once its workers are gone, so an idle daemon keeps no helper process; the next
    large poll starts another (a fraction of a second). Python has no public way to do it: without its private
    one, the forkserver stays, idle."""
    stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()


def _exit_with(pid: int) -> None:
    """Make this worker exit when process ``pid`` does, even killed: a worker holds both ends of its task
    pipe (and the forkserver's liveness pipe), so it would otherwise wait for work forever."""

    def wait() -> None:
        wait_until_gone(pid)
        os._exit(1)

    threading.Thread(target=wait, name=f"exit-with-{pid}", daemon=True).start()


def wait_until_gone(pid: int, *, use_pidfd: bool = True) -> None:
    """Return once process ``pid`` has ended: woken by a pidfd, or where there is none (a kernel before 5.3, a
    seccomp filter) by looking once a second."""
    try:
        watched = os.pidfd_open(pid) if use_pidfd else None
    except OSError:
        watched = None
    if watched is not None:
        select.select([watched], [], [])
        return
    while _running(pid):
        time.sleep(POLL_SECONDS)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _oldest(in_flight: deque[tuple[Future[list[Outcome]], list[SeedJob]]]) -> list[SeedRead]:
    """The results of the oldest chunk in flight, which stays in flight if its worker died."""
    future, chunk = in_flight[0]
    outcomes = future.result()
    in_flight.popleft()
    return [SeedRead(job, *outcome) for job, outcome in zip(chunk, outcomes, strict=True)]


def _chunks(jobs: Iterator[SeedJob], size: int) -> Iterator[list[SeedJob]]:
    while chunk := list(itertools.islice(jobs, size)):
        yield chunk


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a server process started once, with the parsers imported: never from this
    process, which may hold threads, locks and a database connection. The server imports the main module
    too (the `feeder` script), which each worker would otherwise import again by itself."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__])
    return context
