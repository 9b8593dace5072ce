"""Live polling benchmark: one poll of an rfi source listing 200 feeds, against a local server that answers slowly.

Run with `make bench`, or alone: `.venv/bin/python bench/live.py` (not part of `make test`). A small asyncio
HTTP/1.1 server on 127.0.0.1 serves 200 distinct RSS feeds, /cn/feed-NNN/rss, a few items each, answering every
request after LATENCY (50 ms) and honouring If-None-Match with an empty 304. The config lists the 200 feeds in one rfi
source (origin = the local server, fulltext: false, so no article page is fetched).

For each concurrency (http.per_host 2, the default, and 8) and each of ROUNDS rounds, alternating:

- the floor: a bare httpx2 client, the same per-host limit, the same 200 GETs (bodies read, nothing parsed);
- the figure: pipeline.refresh on a fresh state database (the rfi source's own poll duration and the whole
  refresh, rendering and publishing included), then a second refresh with nothing changed, where the server
  counts the bodies it sends (target: none, 200 × 304).

The table compares the best sample of each figure with the ideal bound LATENCY × ceil(200 / per_host) and with
the measured floor; every sample is printed. In `make bench`'s table (figures()) the floor column is the client
floor (the ideal for the client floor itself) and the ideal is in the note; only the second poll's 304s and
bodies have targets, the times are for information.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx2

if not __package__:  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, Samples
from feeder.config import Config, parse_config
from feeder.models import RefreshReport
from feeder.pipeline import refresh, state_database
from feeder.store import Store

FEEDS = 200
ITEMS_PER_FEED = 3
LATENCY = 0.050
ROUNDS = 3
CONCURRENCIES = (2, 8)
HEAD_LIMIT = 16 * 1024


# The server --------------------------------------------------------------------------------------------------


def feed_path(n: int) -> str:
    return f"/cn/feed-{n:03d}/rss"


def feed_document(n: int) -> bytes:
    """RSS 2.0 in RFI's shape: a few items whose pages the benchmark never fetches."""
    items = "".join(
        f"<item><category>中国</category><title><![CDATA[基准测试 {n} 第 {k} 条]]></title>"
        f"<link>https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240110-bench-{n:03d}-{k}?xtor=RSS-1</link>"
        f"<description><![CDATA[第 {n} 个源的第 {k} 条导语。]]></description>"
        f'<guid isPermaLink="false">bench-{n}-{k}</guid>'
        f"<pubDate>Wed, 10 Jan 2024 {k:02d}:{n % 60:02d}:00 GMT</pubDate>"
        f'<media:thumbnail url="https://s.rfi.fr/media/display/bench/w:640/p:16x9/{n}-{k}.jpg"/>'
        "<dc:creator>法广</dc:creator></item>"
        for k in range(1, ITEMS_PER_FEED + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0">'
        f"<channel><title><![CDATA[RFI - bench {n}]]></title><link>https://www.rfi.fr/cn/</link>"
        f"<description>bench</description>{items}<language>zh-Hans</language></channel></rss>\n"
    ).encode()


@dataclass
class Tally:
    """What the server sent since the last reset."""

    statuses: Counter[int] = field(default_factory=Counter)
    bodies: int = 0  # responses with a non-empty body
    body_bytes: int = 0

    def snapshot(self) -> Tally:
        return Tally(Counter(self.statuses), self.bodies, self.body_bytes)


class FeedServer:
    """200 RSS feeds (or ``documents``, by path) over HTTP/1.1 keep-alive, each answer after ``latency`` seconds,
    with strong ETags."""

    def __init__(self, documents: dict[str, bytes] | None = None, latency: float = LATENCY) -> None:
        self.documents = documents or {feed_path(n): feed_document(n) for n in range(FEEDS)}
        self.latency = latency
        self.etags = {path: f'"{hashlib.sha256(body).hexdigest()[:16]}"' for path, body in self.documents.items()}
        self.last_modified = format_datetime(datetime(2024, 1, 10, 12, tzinfo=UTC), usegmt=True)
        self.tally = Tally()
        self.port = 0

    def reset(self) -> Tally:
        done, self.tally = self.tally, Tally()
        return done

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) == 3 else ""
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
                await asyncio.sleep(self.latency)
                writer.write(self.answer(path, headers))
                await writer.drain()
        finally:
            writer.close()

    def answer(self, path: str, headers: dict[str, str]) -> bytes:
        body = self.documents.get(path)
        if body is None:
            status, extra, body = 404, "", b"not found"
        elif headers.get("if-none-match") == self.etags[path]:
            status, extra, body = 304, "", b""
        else:
            status, extra = 200, "Content-Type: application/rss+xml; charset=utf-8\r\n"
        validators = (
            f"ETag: {self.etags[path]}\r\nLast-Modified: {self.last_modified}\r\n" if path in self.etags else ""
        )
        self.tally.statuses[status] += 1
        self.tally.bodies += bool(body)
        self.tally.body_bytes += len(body)
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
        head = f"HTTP/1.1 {status} {reason}\r\n{extra}{validators}Content-Length: {len(body)}\r\n\r\n"
        return head.encode("latin-1") + body


@contextmanager
def serving(server: FeedServer, hosts: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[FeedServer]:
    """Run the server's own event loop in a thread: pipeline.refresh runs asyncio.run() in the main one. It
    listens on one free port of every address in ``hosts`` (loopback addresses: 127.0.0.1, 127.0.0.2…)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def main() -> None:
        first = await asyncio.start_server(server.handle, hosts[0], 0, limit=HEAD_LIMIT, backlog=512)
        server.port = first.sockets[0].getsockname()[1]
        holder.append(first)
        if hosts[1:]:
            holder.append(
                await asyncio.start_server(server.handle, hosts[1:], server.port, limit=HEAD_LIMIT, backlog=512)
            )

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        started.set()
        loop.run_forever()

    holder: list[asyncio.Server] = []
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield server
    finally:

        async def stop() -> None:
            for listener in holder:
                listener.close()
                await listener.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# The two measurements ----------------------------------------------------------------------------------------


def config(folder: Path, origin: str, per_host: int) -> Config:
    feeds = "".join(f"      - https://www.rfi.fr{feed_path(n)}\n" for n in range(FEEDS))
    text = (
        "output_dir: public\nstate_dir: state\nbase_url: http://127.0.0.1:8080/\n"
        f"http:\n  per_host: {per_host}\n"
        "sources:\n  - name: rfi\n    kind: site\n    site: rfi-cn\n    feeds:\n"
        f"{feeds}    origin: {origin}\n    fulltext: false\n"
        "feeds:\n  - name: bench\n    title: bench\n    sources: [rfi]\n    max_entries: 1000\n    sections: false\n"
    )
    return parse_config(text, folder / "config.yaml")


@dataclass(frozen=True)
class PollSample:
    poll: float  # the rfi source's own poll (SourceReport.duration)
    refresh: float  # the whole refresh: poll, transaction, rendering, publishing
    first: Tally
    second_poll: float
    second: Tally
    entries: int


def timed_refresh(cfg: Config, store: Store) -> tuple[float, RefreshReport]:
    started = time.perf_counter()
    report = refresh(cfg, store, datetime.now(UTC))
    elapsed = time.perf_counter() - started
    failures = [s.failure for s in report.sources if s.failure]
    problems = [p for s in report.sources for p in s.problems]
    if failures or problems:
        raise SystemExit(f"the poll went wrong: {failures or problems[:3]}")
    return elapsed, report


def poll_sample(server: FeedServer, per_host: int) -> PollSample:
    with tempfile.TemporaryDirectory(prefix="feeder-bench-live-") as tmp:
        cfg = config(Path(tmp), f"http://127.0.0.1:{server.port}", per_host)
        with Store.open(state_database(cfg)) as store:
            server.reset()
            whole, report = timed_refresh(cfg, store)
            first = server.reset()
            _, second_report = timed_refresh(cfg, store)
            second = server.reset()
            entries = store.count_entries()
    return PollSample(report.sources[0].duration, whole, first, second_report.sources[0].duration, second, entries)


async def client_floor(port: int, per_host: int) -> float:
    """The same 200 GETs from a bare httpx2 client limited to ``per_host`` at a time."""
    slots = asyncio.Semaphore(per_host)
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:

        async def get(path: str) -> None:
            async with slots:
                response = await client.get(path)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(get(feed_path(n)) for n in range(FEEDS)))
        return time.perf_counter() - started


# The report ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """Every round at one concurrency: the client floor and the feeder poll samples."""

    per_host: int
    floors: list[float]
    polls: list[PollSample]

    @property
    def ideal(self) -> float:
        return LATENCY * math.ceil(FEEDS / self.per_host)


def measure(server: FeedServer, per_host: int, rounds: int) -> Measured:
    """The floor and the figure alternating for ``rounds`` rounds; one line per round."""
    floors: list[float] = []
    polls: list[PollSample] = []
    for round_number in range(1, rounds + 1):
        server.reset()
        floors.append(asyncio.run(client_floor(server.port, per_host)))
        server.reset()
        polls.append(poll_sample(server, per_host))
        p = polls[-1]
        print(
            f"per_host={per_host} round {round_number}: client floor {floors[-1]:.3f} s; "
            f"first poll {p.poll:.3f} s (refresh {p.refresh:.3f} s, {dict(p.first.statuses)}, "
            f"{p.first.body_bytes} body bytes, {p.entries} entries); "
            f"second poll {p.second_poll:.3f} s ({dict(p.second.statuses)}, {p.second.bodies} bodies, "
            f"{p.second.body_bytes} body bytes)",
            flush=True,
        )
    return Measured(per_host, floors, polls)


def samples_of(m: Measured) -> Samples:
    samples = Samples()
    for floor, p in zip(m.floors, m.polls, strict=True):
        for name, value in (("client floor", floor), ("first poll", p.poll), ("first refresh", p.refresh),
                            ("second poll", p.second_poll)):  # fmt: skip
            samples.add(name, value)
    return samples


def worst_second(m: Measured) -> tuple[int, int, int]:
    """Over the rounds: the fewest 304 answers, the most bodies and body bytes of a second poll."""
    return (
        min(p.second.statuses[304] for p in m.polls),
        max(p.second.bodies for p in m.polls),
        max(p.second.body_bytes for p in m.polls),
    )


def row(figure: str, measured: str, reference: str, ratio: str) -> str:
    return f"{figure:<44} {measured:>14} {reference:>22} {ratio:>8}"


def table_rows(m: Measured) -> list[str]:
    """This script's own table: each figure against the ideal bound (and the first poll against the floor)."""
    per_host, ideal, best = m.per_host, m.ideal, samples_of(m).best
    not_modified, bodies, body_bytes = worst_second(m)
    return [
        row(f"client floor, per_host={per_host}", f"{best('client floor'):.3f} s", f"ideal {ideal:.3f} s",
            f"{best('client floor') / ideal:.2f}"),
        row(f"first poll (rfi source), per_host={per_host}", f"{best('first poll'):.3f} s", f"ideal {ideal:.3f} s",
            f"{best('first poll') / ideal:.2f}"),
        row("", "", f"floor {best('client floor'):.3f} s", f"{best('first poll') / best('client floor'):.2f}"),
        row(f"first refresh (whole), per_host={per_host}", f"{best('first refresh'):.3f} s",
            f"ideal {ideal:.3f} s", f"{best('first refresh') / ideal:.2f}"),
        row(f"second poll, per_host={per_host}", f"{best('second poll'):.3f} s", f"ideal {ideal:.3f} s",
            f"{best('second poll') / ideal:.2f}"),
        row("second poll: 304 answers (worst round)", f"{not_modified}/{FEEDS}", f"target {FEEDS}/{FEEDS}",
            f"{not_modified / FEEDS:.2f}"),
        row("second poll: bodies sent (worst round)", f"{bodies} ({body_bytes} B)", "target 0 (0 B)",
            "ok" if bodies == 0 else "FAIL"),
    ]  # fmt: skip


def to_figures(m: Measured) -> list[Figure]:
    """The same figures for `make bench`'s table: times against the client floor, the 304s and bodies checked."""
    best = samples_of(m).best
    floor = best("client floor")
    ideal = f"ideal {m.ideal:.3f} s"
    not_modified, bodies, body_bytes = worst_second(m)
    timed = [
        Figure(f"live {name}, per_host={m.per_host}", best(key), "s", "— (information)", True, floor,
               f"{ideal}: {best(key) / m.ideal:.2f}× ideal")
        for name, key in (("first poll (rfi source)", "first poll"), ("first refresh (whole)", "first refresh"),
                          ("second poll", "second poll"))
    ]  # fmt: skip
    return [
        Figure(f"live client floor (httpx2), per_host={m.per_host}", floor, "s", "— (information)", True, m.ideal,
               f"floor column: {ideal} (LATENCY × ceil({FEEDS} / per_host))"),
        *timed,
        Figure(f"live second poll: 304 answers (worst), per_host={m.per_host}", not_modified, f"/{FEEDS}",
               f"{FEEDS}/{FEEDS}", not_modified == FEEDS),
        Figure(f"live second poll: bodies sent (worst), per_host={m.per_host}", bodies, "bodies", "0 (0 B)",
               bodies == 0 and body_bytes == 0, note=f"{body_bytes} body bytes"),
    ]  # fmt: skip


def figures(rounds: int = ROUNDS, concurrencies: tuple[int, ...] = CONCURRENCIES) -> list[Figure]:
    with serving(FeedServer()) as server:
        measured = [measure(server, per_host, rounds) for per_host in concurrencies]
    for m in measured:
        samples_of(m).show(f"live per_host={m.per_host}", "s")
    return [figure for m in measured for figure in to_figures(m)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--per-host", type=int, action="append", help="concurrency to measure (repeatable)")
    args = parser.parse_args()
    concurrencies = tuple(args.per_host or CONCURRENCIES)
    with serving(FeedServer()) as server:
        measured = [measure(server, per_host, args.rounds) for per_host in concurrencies]
    print()
    print(f"{FEEDS} feeds × {ITEMS_PER_FEED} items, {LATENCY * 1000:.0f} ms per answer, best of {args.rounds} rounds")
    print(row("figure", "measured", "floor/ideal", "ratio"))
    print("\n".join(line for m in measured for line in table_rows(m)))


if __name__ == "__main__":
    main()
