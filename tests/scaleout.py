"""What the scale-out tests share: ``feeder run`` and ``feeder worker`` as child processes of one PostgreSQL
database, each node with a config of its own, and an upstream of RSS feeds that answers slowly on request and
records when each request began and ended."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.builders import free_port
from tests.children import Child
from tests.webserver import listening

START_TIMEOUT = 60.0
QUEUE = "queue: {heartbeat: 1s, stalled_after: 3s, check_every: 2s, chunk_files: 10}\n"


@dataclass
class Request:
    feed: str
    started: float
    ended: float = 0.0


@dataclass
class Upstream:
    """RSS feeds by name at /NAME.xml, ``items`` items each; ``delay`` (seconds) per feed; ``gate`` holds a
    feed's answers until it is set."""

    items: int = 3
    delay: dict[str, float] = field(default_factory=dict)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    origin: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, feed: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.feed == feed]

    def article_paths(self, feed: str) -> set[str]:
        """The paths of a feed's articles (their canonical URLs are on https)."""
        return {f"/{feed}/{n}" for n in range(self.items)}

    def document(self, feed: str) -> bytes:
        published = datetime(2024, 1, 9, 8, tzinfo=UTC)
        items = "".join(
            f"<item><title>{feed} {n}</title><link>{self.origin}/{feed}/{n}</link>"
            f"<guid>{self.origin}/{feed}/{n}</guid><description>{feed} article {n}</description>"
            f"<pubDate>{format_datetime(published + timedelta(hours=n))}</pubDate></item>"
            for n in range(self.items)
        )
        channel = f"<title>{feed}</title><link>{self.origin}/</link><description>{feed}</description>{items}"
        return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>{channel}</channel></rss>'.encode()


@contextmanager
def serving(upstream: Upstream) -> Iterator[Upstream]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            feed = self.path.strip("/").removesuffix(".xml")
            request = Request(feed, time.monotonic())
            with upstream.lock:
                upstream.requests.append(request)
            if feed in upstream.gates:
                upstream.gates[feed].wait(60)
            time.sleep(upstream.delay.get(feed, 0.0))
            body = upstream.document(feed)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # a worker killed while it waited
                self.wfile.write(body)
            request.ended = time.monotonic()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with listening(Handler) as origin:
        upstream.origin = origin
        try:
            yield upstream
        finally:
            for gate in upstream.gates.values():
                gate.set()


def feed_sources(upstream: Upstream, names: Sequence[str], interval: str) -> str:
    lines = ["sources:\n"]
    for name in names:
        lines.append(f"  - {{name: {name}, kind: feed, url: '{upstream.origin}/{name}.xml', interval: {interval}}}\n")
    lines.append(f"feeds:\n  - {{name: news, title: News, sources: [{', '.join(names)}]}}\n")
    return "".join(lines)


def node_config(root: Path, url: str, body: str) -> Path:
    """A node's config.yaml in ``root``: its own output and state folders and ports, the shared database and
    base_url (where a load balancer would publish every node's files)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    text = (
        f"output_dir: public\nstate_dir: state\ndatabase: '{url}'\nbase_url: http://127.0.0.1:8080/\n"
        f"server: {{port: {port}}}\ncontrol: {{port: {free_port()}}}\n{QUEUE}{body}"
    )
    path = root / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def port_of(config: Path, listener: str) -> int:
    """The port a node's config gives ``server`` or ``control`` (its ``LISTENER: {port: N}`` line)."""
    line = next(line for line in config.read_text().splitlines() if line.startswith(f"{listener}:"))
    return int(line.split()[-1].rstrip("}"))


class Cluster:
    """Every child a test started, stopped at teardown; ``wait`` shows their logs when it times out."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, config: Path, command: str, *args: str, name: str) -> Child:
        child = Child(config, command, *args, name=name)
        self.children.append(child)
        return child

    def wait(
        self, what: str, condition: Callable[[], bool], timeout: float = START_TIMEOUT, detail: Callable[[], str] = str
    ) -> None:
        """Until ``condition`` holds; else fail with ``detail()`` and the children's logs."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.log_path.name}:\n{c.log()[-4000:]}" for c in self.children)
                pytest.fail(f"no {what} within {timeout}s {detail()}\n{logs}")
            time.sleep(0.05)

    def stop(self) -> None:
        for child in self.children:
            child.terminate(30)
