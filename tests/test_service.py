"""End-to-end: ``feeder run`` as a real daemon in a subprocess, reached the way its users reach it.

Every test builds a folder under tmp_path (seeds/, a config.yaml serving on a free port), starts
``python -m feeder run`` there and waits, bounded, until it answers on its port and has logged its first
poll. The tests then talk to it over HTTP (http.client, raw sockets, feedparser, newsboat), through
``feeder refresh|status`` and so its control API (tests/test_api_daemon.py drives the API itself), with signals,
and through a datagram socket standing in for systemd's $NOTIFY_SOCKET. Teardown sends SIGTERM and kills a
daemon that does not stop.
"""

from __future__ import annotations

import gzip
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest

from feeder.config import load_config
from feeder.models import SeedFile
from feeder.scheduler import ANCHOR, offset_for
from feeder.sources.reading import ReadRules, article_from_seed
from tests.builders import CHILD_ENV, NOW, config_text, free_port, run_feeder, seed_text, write_seed
from tests.children import Child
from tests.prom import key, samples

pytestmark = pytest.mark.e2e

FEED = "rfi-cn"
CHINA = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/"
ATOM = "{http://www.w3.org/2005/Atom}"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
POLL_LINE = re.compile(r"\bseeds: \d+ new, \d+ updated, \d+ unchanged, \d+ skipped, \d+ errors \(\d+\.\d\ds\)$")
SIGHUP_LINE = "SIGHUP: refreshing every source"
# The slow-poll tests: enough seed files, with enough text each, that the first poll takes seconds here.
BULK_FILES = 3000
BULK_PARAGRAPHS = 40


# Sites ------------------------------------------------------------------------------------------------------


def article_url(slug: str) -> str:
    return f"{CHINA}20240109-{slug}"


@dataclass(frozen=True)
class Site:
    """A folder with config.yaml, seeds/ and (once a daemon ran) public/ and state/."""

    root: Path
    port: int
    control_port: int

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def token(self) -> str:
        return (self.state / "control.token").read_text(encoding="utf-8").strip()

    def control_answers(self) -> bool:
        """True if something accepts TCP connections on the control API's port."""
        try:
            with socket.create_connection(("127.0.0.1", self.control_port), timeout=0.5):
                return True
        except OSError:
            return False


def make_site(root: Path, *, articles: int = 3, interval: str = "1m", max_entries: int = 200) -> Site:
    """tests.builders.config_text served on a free port, plus ``articles`` seed files with distinct URLs.

    The seed files are dated an hour back: files written in the last seconds make the service look again a
    second later, and tests that count polls must not see those.
    """
    site = Site(root, free_port(), free_port())
    text = config_text(max_entries=max_entries).replace(
        "base_url: http://127.0.0.1:8080/\n",
        f"base_url: {site.url()}\nserver: {{host: 127.0.0.1, port: {site.port}}}\n",
    )
    text = text.replace("interval: 1m", f"interval: {interval}") + f"control: {{port: {site.control_port}}}\n"
    assert f"port: {site.port}" in text, "config_text changed: the server settings were not inserted"
    site.seeds.mkdir(parents=True, exist_ok=True)
    site.config.write_text(text, encoding="utf-8")
    for number in range(1, articles + 1):
        add_article(site, number)
        age(site.seeds / f"{number:03d}_{number:016x}.txt")
    return site


def age(path: Path, seconds: float = 3600) -> None:
    """Date a file ``seconds`` back."""
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def add_article(site: Site, number: int) -> str:
    """Write seed file ``number`` (an article of its own) and return the article's URL."""
    url = article_url(f"article-{number}")
    text = seed_text(url, f"文章{number}", date_div=f"09/01/2024 - {number % 24:02d}:00")
    write_seed(site.seeds, f"{number:03d}_{number:016x}.txt", text)
    return url


def fill_with_bulk(site: Site, count: int = BULK_FILES) -> list[str]:
    """Add ``count`` long articles with distinct URLs, written an hour ago; return their URLs.

    (Files written in the last seconds make the service look again a second later, which would add polls.)
    """
    body = "".join(f"<p>第{k}段正文，内容稍长一些，用来让第一次轮询慢下来。</p>" for k in range(BULK_PARAGRAPHS))
    urls = []
    for number in range(count):
        url = article_url(f"bulk-{number:05d}")
        path = site.seeds / f"{number:05d}_{number:016x}.txt"
        path.write_text(seed_text(url, f"批量文章{number}", body=body), encoding="utf-8")
        age(path)
        urls.append(url)
    return urls


# The daemon ---------------------------------------------------------------------------------------------------


def wait_until(what: str, condition: Callable[[], bool], timeout: float, daemon: Daemon | None = None) -> float:
    """Poll ``condition`` until it holds; return the seconds it took. Fails (with the daemon's log) on timeout."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if daemon is not None and not daemon.alive() and not condition():
            pytest.fail(f"the daemon exited ({daemon.process.returncode}) while waiting for {what}:\n{daemon.log()}")
        if time.monotonic() - started > timeout:
            log = f":\n{daemon.log()}" if daemon else ""
            pytest.fail(f"no {what} within {timeout}s{log}")
        time.sleep(0.02)


class Daemon(Child):
    """One ``python -m feeder run`` child: its process, its stderr log, its site."""

    def __init__(self, site: Site, name: str = "daemon", env: dict[str, str] | None = None) -> None:
        super().__init__(site.config, "run", name=name, env=env)
        self.site = site

    def polls(self) -> list[str]:
        """The log lines of finished polls of the ``seeds`` source."""
        return [line for line in self.lines() if POLL_LINE.search(line)]

    def answers(self) -> bool:
        """True if something accepts TCP connections on the site's port."""
        try:
            with socket.create_connection(("127.0.0.1", self.site.port), timeout=0.5):
                return True
        except OSError:
            return False

    def serving(self) -> bool:
        """Listening, and past its start-up (signal handlers installed: the ``serving`` line is logged after)."""
        return " serving " in self.log() and self.answers()

    def wait_ready(self, *, polled: bool = True) -> Daemon:
        wait_until("answer on the port", self.serving, START_TIMEOUT, self)
        if polled:
            wait_until("first poll line", lambda: bool(self.polls()), START_TIMEOUT, self)
        return self

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the daemon did not exit within {timeout}s:\n{self.log()}")


@pytest.fixture
def launch() -> Iterator[Callable[..., Daemon]]:
    """Start daemons (stopped at teardown, whatever happened): launch(site, env=…, polled=True, name=…)."""
    started: list[Daemon] = []

    def start(site: Site, *, env: dict[str, str] | None = None, polled: bool = True, name: str = "daemon") -> Daemon:
        daemon = Daemon(site, f"{name}-{len(started)}", env)
        started.append(daemon)
        return daemon.wait_ready(polled=polled)

    yield start
    for daemon in started:
        daemon.terminate()


def feeder(
    site: Site, *args: str, expect: int = 0, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m feeder <args> --config <site config>`` and check its exit code."""
    return run_feeder(site.config, *args, expect=expect, timeout=timeout)


# HTTP -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def fetch(site: Site, target: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Response:
    """One request on a fresh connection; the target is sent exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def raw_exchange(site: Site, request: bytes) -> bytes:
    """Send raw request bytes and read everything the server sends until it closes the connection."""
    chunks = []
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as connection:
        connection.sendall(request)
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def atom_ids(document: bytes) -> list[str]:
    """The ids of an Atom document's entries, in order."""
    return [element.text or "" for element in ET.fromstring(document).findall(f"{ATOM}entry/{ATOM}id")]


def served_ids(site: Site) -> list[str]:
    """The entry ids of the Atom feed as served right now (the feed's own id left out)."""
    response = fetch(site, f"/{FEED}.atom")
    assert response.status == 200, response
    return atom_ids(response.body)


# Output files -------------------------------------------------------------------------------------------------


def assert_every_file_complete(public: Path) -> int:
    """Every published file parses as what it claims to be and no temporary file is left; returns the count."""
    files = sorted(p for p in public.rglob("*") if p.is_file())  # section feeds live in sub-folders
    leftovers = [p.name for p in files if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == [], f"temporary files left in {public}: {leftovers}"
    checked = 0
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
            assert data == path.with_suffix("").read_bytes(), f"{path.name} differs from {path.stem}"
            kind = Path(path.stem).suffix
        else:
            kind = path.suffix
        if kind in (".atom", ".rss", ".opml"):
            ET.fromstring(data)
        elif kind == ".json":
            json.loads(data)
        elif kind == ".html":
            assert data.rstrip().endswith(b"</html>"), path.name
        else:
            pytest.fail(f"unexpected file in public/: {path.name}")
        checked += 1
    return checked


# systemd's notify socket ----------------------------------------------------------------------------------------


class NotifySocket:
    """A datagram socket in place of systemd's: keeps every message (its fields) with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.messages: list[tuple[float, list[str]]] = []

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path)}

    def receive(self, seconds: float) -> None:
        """Collect every message that arrives during the next ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                break
            self.messages.append((time.monotonic(), data.decode("utf-8").split("\n")))

    def pump(self) -> None:
        """Collect what has arrived, without waiting."""
        self.socket.setblocking(False)
        try:
            while True:
                data = self.socket.recv(65536)
                self.messages.append((time.monotonic(), data.decode("utf-8").split("\n")))
        except BlockingIOError:
            pass
        finally:
            self.socket.setblocking(True)

    def states(self) -> list[str]:
        """The state changes in order of arrival (every field but STATUS=, MAINPID=, MONOTONIC_USEC=, WATCHDOG=1)."""
        self.pump()
        skipped = ("STATUS=", "MAINPID=", "MONOTONIC_USEC=", "WATCHDOG=")
        return [f for _, fields in self.messages for f in fields if not f.startswith(skipped)]

    def wait_for(self, states: list[str], timeout: float, daemon: Daemon | None = None) -> None:
        """Wait until as many state changes as ``states`` arrived, then check they are those."""
        wait_until(f"notify states {states}", lambda: len(self.states()) >= len(states), timeout, daemon)
        assert self.states() == states

    def message_with(self, field: str) -> list[str]:
        self.pump()
        return next(fields for _, fields in self.messages if field in fields)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.socket.close()


# Serving over HTTP ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon over three articles, shared by the read-only HTTP tests."""
    daemon = Daemon(make_site(tmp_path_factory.mktemp("served")))
    try:
        yield daemon.wait_ready()
    finally:
        daemon.terminate()


def test_atom_is_served_with_its_type_and_validators(served: Daemon) -> None:
    site = served.site
    response = fetch(site, f"/{FEED}.atom")
    assert response.status == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert re.fullmatch(r'"[0-9a-f]{16,}"', response.headers["etag"])
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert int(modified.timestamp()) == int((site.public / f"{FEED}.atom").stat().st_mtime)
    assert response.body == (site.public / f"{FEED}.atom").read_bytes()
    assert int(response.headers["content-length"]) == len(response.body)
    assert len(atom_ids(response.body)) == 3


def test_conditional_get_answers_304_without_a_body(served: Daemon) -> None:
    site = served.site
    first = fetch(site, f"/{FEED}.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]

    by_etag = fetch(site, f"/{FEED}.atom", headers={"If-None-Match": etag})
    assert (by_etag.status, by_etag.body) == (304, b"")
    assert by_etag.headers["etag"] == etag
    assert fetch(site, f"/{FEED}.atom", headers={"If-None-Match": f'W/{etag}, "other"'}).status == 304

    by_date = fetch(site, f"/{FEED}.atom", headers={"If-Modified-Since": modified})
    assert (by_date.status, by_date.body) == (304, b"")

    # And only when the client's copy is current.
    assert fetch(site, f"/{FEED}.atom", headers={"If-None-Match": '"not-it"'}).status == 200
    earlier = formatdate(parsedate_to_datetime(modified).timestamp() - 1, usegmt=True)
    stale = fetch(site, f"/{FEED}.atom", headers={"If-Modified-Since": earlier})
    assert (stale.status, stale.body) == (200, first.body)


def test_head_sends_the_headers_of_get_and_no_body(served: Daemon) -> None:
    site = served.site
    get = fetch(site, f"/{FEED}.atom")
    answer = raw_exchange(site, f"HEAD /{FEED}.atom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, separator, rest = answer.partition(b"\r\n\r\n")
    assert separator, answer
    assert rest == b"", f"HEAD sent {len(rest)} body bytes"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line == "HTTP/1.1 200 OK"
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    assert headers["content-length"] == str(len(get.body))
    for name in ("content-type", "etag", "last-modified", "cache-control"):
        assert headers[name] == get.headers[name], name


def test_gzip_is_sent_to_clients_that_accept_it(served: Daemon) -> None:
    site = served.site
    plain = fetch(site, f"/{FEED}.atom")
    assert "content-encoding" not in plain.headers
    packed = fetch(site, f"/{FEED}.atom", headers={"Accept-Encoding": "gzip, deflate"})
    assert packed.status == 200
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-type"] == plain.headers["content-type"]
    assert "accept-encoding" in packed.headers["vary"].lower()
    assert packed.headers["etag"] != plain.headers["etag"], "both encodings share one ETag"
    assert len(packed.body) < len(plain.body)
    assert gzip.decompress(packed.body) == plain.body
    refused = fetch(site, f"/{FEED}.atom", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    assert refused.body == plain.body


@pytest.mark.parametrize(
    ("target", "secret"),
    [
        ("/../config.yaml", "config.yaml"),
        ("/%2e%2e/config.yaml", "config.yaml"),
        ("/..%2fstate/feeder.sqlite3", "state/feeder.sqlite3"),
        ("/%2E%2E%2F%2E%2E%2Fetc/passwd", "/etc/passwd"),
        ("/.%2e/state/control.token", "state/control.token"),
        ("/%2e%2e%5cconfig.yaml", "config.yaml"),
        ("/rfi-cn.atom%00.txt", "public/rfi-cn.atom"),
    ],
)
def test_paths_outside_the_output_folder_are_not_found(served: Daemon, target: str, secret: str) -> None:
    site = served.site
    assert (site.root / secret).exists(), f"{secret} should exist, or the test shows nothing"
    response = fetch(site, target)
    assert response.status == 404, (target, response.status, response.body[:200])
    assert response.body == b"404 Not Found\n"


def test_a_symlink_out_of_the_output_folder_is_not_followed(served: Daemon) -> None:
    site = served.site
    link = site.public / "leak.atom"
    link.symlink_to(site.config)
    try:
        response = fetch(site, "/leak.atom")
    finally:
        link.unlink()
    assert response.status == 404
    assert b"base_url" not in response.body


def test_cache_lifetime_follows_the_poll_interval(served: Daemon) -> None:
    site = served.site
    for name in (f"{FEED}.atom", f"{FEED}.rss", f"{FEED}.json"):
        assert fetch(site, f"/{name}").headers["cache-control"] == "max-age=60", name
    rss = ET.fromstring(fetch(site, f"/{FEED}.rss").body)
    assert [ttl.text for ttl in rss.iter("ttl")] == ["1"]


def test_served_feeds_parse_cleanly_with_feedparser(served: Daemon) -> None:
    site = served.site
    expected = {article_url(f"article-{n}") for n in (1, 2, 3)}
    for name, version in ((f"{FEED}.atom", "atom10"), (f"{FEED}.rss", "rss20")):
        parsed = feedparser.parse(fetch(site, f"/{name}").body)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.version == version
        assert {entry.id for entry in parsed.entries} == expected
    atom = feedparser.parse(fetch(site, f"/{FEED}.atom").body)
    assert [link.href for link in atom.feed.links if link.rel == "self"] == [site.url(f"{FEED}.atom")]
    index = fetch(site, "/")
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert site.url(f"{FEED}.atom").encode() in index.body


# Watching the seeds folder ------------------------------------------------------------------------------------


def test_a_new_seed_file_is_served_within_3_seconds(tmp_path: Path, launch: Callable[..., Daemon]) -> None:
    site = make_site(tmp_path)
    daemon = launch(site)
    time.sleep(0.6)  # let the folder watcher take its first look at the folder as it is
    assert len(served_ids(site)) == 3

    started = time.monotonic()
    url = add_article(site, 4)
    wait_until("the new article in the served feed", lambda: url in served_ids(site), 10, daemon)
    latency = time.monotonic() - started
    print(f"\nnew seed file → served Atom feed: {latency:.2f}s")
    assert latency < 3.0
    assert sorted(served_ids(site)) == sorted([*(article_url(f"article-{n}") for n in (1, 2, 3)), url])
    # The poll is logged once its files are published: the line may lag the feed by a moment.
    wait_until("the watcher's poll logged", lambda: "seeds: 1 new, 0 updated" in daemon.log(), 5, daemon)


def served_titles(site: Site) -> dict[str, str]:
    return {entry.id: entry.title for entry in feedparser.parse(fetch(site, f"/{FEED}.atom").body).entries}


def test_seed_files_rewritten_renamed_or_deleted_are_picked_up_within_2_seconds(
    tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    site = make_site(tmp_path)
    daemon = launch(site)
    time.sleep(0.5)
    path = site.seeds / f"{2:03d}_{2:016x}.txt"
    url = article_url("article-2")
    newer = seed_text(url, "改写后的文章2", scraped_ms=1704891600000, date_div="09/01/2024 - 02:00")

    started = time.monotonic()
    path.write_text(newer, encoding="utf-8")  # in place: the folder's own time does not move
    wait_until("the rewritten title served", lambda: served_titles(site).get(url) == "改写后的文章2", 10, daemon)
    assert time.monotonic() - started < 2.0

    def logged(line: str) -> Callable[[], bool]:
        return lambda: any(line in poll for poll in daemon.polls())

    path.rename(site.seeds / "renamed.txt")  # read again under its new name: the same article
    assert wait_until("a poll after the rename", logged("0 updated, 1 unchanged, 2 skipped"), 10, daemon) < 2.0
    (site.seeds / "renamed.txt").unlink()
    assert wait_until("a poll after the delete", logged("0 unchanged, 2 skipped"), 10, daemon) < 2.0
    assert url in served_ids(site)  # a published article stays published when its file goes


END_MARK = "全文完"


def half_written_seed(site: Site, url: str, *, half_wins: bool) -> bytes:
    """Seed bytes whose first half, read by itself, is an article that loses (or wins) the store's tie-break.

    Both halves carry the same scrape time, so the store keeps whichever version has the greater content
    hash. The variant is chosen with feeder's own parser so that the test shows one cause at a time.
    """
    config = load_config(site.config)
    seed = SeedFile(path=site.seeds / "probe.txt", size=0, mtime_ns=time.time_ns())
    rules = ReadRules("seeds", config.site("rfi-cn").allowing(config.allowed_hosts), NOW)
    for variant in range(100):
        body = "".join(f"<p>第{k}段，第{variant}稿。</p>" for k in range(40)) + f"<p>{END_MARK}</p>"
        data = seed_text(url, "慢慢写完的文章", body=body).encode("utf-8")
        half = article_from_seed(seed, data[: len(data) // 2], rules)
        full = article_from_seed(seed, data, rules)
        assert END_MARK not in half.content_html
        if (half.content_hash > full.content_hash) == half_wins:
            return data
    pytest.fail("no variant found")


def served_text(site: Site) -> str:
    return fetch(site, f"/{FEED}.atom").body.decode("utf-8")


def test_a_seed_file_written_slowly_is_served_complete_soon_after_its_writer_closes_it(
    tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    site = make_site(tmp_path, interval="1d")  # no timed poll to hide the bug
    daemon = launch(site)
    time.sleep(0.6)
    url = article_url("slow-writer")
    data = half_written_seed(site, url, half_wins=False)
    with (site.seeds / "004_0000000000000004.txt").open("wb") as writer:
        writer.write(data[: len(data) // 2])
        writer.flush()
        wait_until("the half-written file read", lambda: url in served_ids(site), 5, daemon)
        assert END_MARK not in served_text(site)
        writer.write(data[len(data) // 2 :])
    wait_until("the complete article served", lambda: END_MARK in served_text(site), 3, daemon)


def test_a_seed_file_read_half_written_is_replaced_by_its_complete_text(
    tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    site = make_site(tmp_path, interval="1d")
    daemon = launch(site)
    time.sleep(0.6)
    url = article_url("slow-writer")
    data = half_written_seed(site, url, half_wins=True)
    path = site.seeds / "004_0000000000000004.txt"
    path.write_bytes(data[: len(data) // 2])  # the writer stalls half-way …
    wait_until("the half-written file read", lambda: url in served_ids(site), 5, daemon)
    path.write_bytes(data)  # … and finishes: the folder watcher sees the rewrite and the whole file is read
    wait_until("the complete article served", lambda: END_MARK in served_text(site), 2, daemon)
    wait_until(
        "its poll logged", lambda: "seeds: 0 new, 1 updated, 0 unchanged, 3 skipped, 0 errors" in daemon.log(), 2
    )


# Signals and systemd -------------------------------------------------------------------------------------------


def test_sighup_polls_again_and_tells_systemd(
    tmp_path: Path, launch: Callable[..., Daemon], notify_socket: NotifySocket
) -> None:
    site = make_site(tmp_path, interval="1d")  # no timed poll in the count
    daemon = launch(site, env=notify_socket.env)
    notify_socket.wait_for(["READY=1"], 5, daemon)
    assert f"MAINPID={daemon.process.pid}" in notify_socket.message_with("READY=1")
    polls_before = len(daemon.polls())

    daemon.signal(signal.SIGHUP)
    notify_socket.wait_for(["READY=1", "RELOADING=1", "READY=1"], 10, daemon)
    reloading = notify_socket.message_with("RELOADING=1")
    assert any(re.fullmatch(r"MONOTONIC_USEC=\d+", field) for field in reloading), reloading
    lines = daemon.lines()
    [sighup] = [number for number, line in enumerate(lines) if line.endswith(SIGHUP_LINE)]
    assert any(POLL_LINE.search(line) for line in lines[sighup + 1 :]), "no poll logged after the SIGHUP"
    assert len(daemon.polls()) == polls_before + 1

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    notify_socket.receive(0.2)
    assert notify_socket.states() == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_watchdog_pings_at_half_the_watchdog_period(
    tmp_path: Path, launch: Callable[..., Daemon], notify_socket: NotifySocket
) -> None:
    site = make_site(tmp_path)
    launch(site, env={**notify_socket.env, "WATCHDOG_USEC": "400000"})
    notify_socket.pump()
    notify_socket.messages.clear()
    notify_socket.receive(1.5)
    pings = [moment for moment, fields in notify_socket.messages if "WATCHDOG=1" in fields]
    print(f"\nWATCHDOG=1 pings in 1.5s: {len(pings)}")
    assert len(pings) >= 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert max(gaps) < 0.4, f"a gap of {max(gaps):.2f}s reaches the whole watchdog period"


def test_sighup_while_stopping_neither_reloads_nor_kills(
    tmp_path: Path, launch: Callable[..., Daemon], notify_socket: NotifySocket
) -> None:
    site = make_site(tmp_path)
    daemon = launch(site, env=notify_socket.env)
    notify_socket.wait_for(["READY=1"], 5, daemon)
    daemon.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while daemon.alive() and time.monotonic() < deadline:
        daemon.signal(signal.SIGHUP)  # `systemctl reload` (or logrotate) racing `systemctl stop`
        time.sleep(0.002)
    exit_code = daemon.wait_exit()
    notify_socket.receive(0.2)
    lines = daemon.lines()
    stopping = next(n for n, line in enumerate(lines) if line.endswith(" INFO stopping"))
    after = [line for line in lines[stopping:] if line.endswith(SIGHUP_LINE)]
    states = notify_socket.states()
    assert exit_code == 0, f"exit {exit_code}"
    assert after == [], "a SIGHUP was taken as a reload while stopping"
    assert states[states.index("STOPPING=1") :] == ["STOPPING=1"], states


# feeder refresh and feeder status while the daemon runs ------------------------------------------------------------


def test_refresh_is_done_by_the_running_daemon(tmp_path: Path, launch: Callable[..., Daemon]) -> None:
    site = make_site(tmp_path, interval="1d")  # every poll in the log is one the test asked for
    daemon = launch(site)
    assert len(daemon.polls()) == 1

    result = feeder(site, "refresh")
    assert result.stdout.splitlines()[0] == "refreshed by the running daemon"
    assert "seeds: 0 new, 0 updated, 0 unchanged, 3 skipped, 0 errors" in result.stdout.splitlines()
    assert len(daemon.polls()) == 2, "the daemon did not log the poll it was asked for"

    # A published file lost (deleted by hand): the refresh writes it again, and the daemon's report says so.
    (site.public / f"{FEED}.atom").unlink()
    chosen = feeder(site, "refresh", "--source", "seeds")
    assert "refreshed by the running daemon" in chosen.stdout
    assert "seeds: 0 new, 0 updated, 0 unchanged, 3 skipped, 0 errors" in chosen.stdout.splitlines()
    assert f"wrote public/{FEED}.atom" in chosen.stdout.splitlines()  # relative to the working folder
    assert len(atom_ids(fetch(site, f"/{FEED}.atom").body)) == 3

    polls = len(daemon.polls())
    unknown = feeder(site, "refresh", "--source", "nope", expect=2)
    assert "--source" in unknown.stderr
    assert "unknown source(s): nope" in unknown.stderr
    assert unknown.stdout == ""
    assert len(daemon.polls()) == polls


def test_status_and_metrics_of_the_running_daemon(tmp_path: Path, launch: Callable[..., Daemon]) -> None:
    site = make_site(tmp_path, interval="1d")  # the last poll stays the first one
    launch(site)

    lines = feeder(site, "status").stdout.splitlines()
    assert any(
        re.fullmatch(r"seeds: last poll \S+Z \(\d+\.\d\ds\): 3 new, 0 updated, 0 unchanged, 0 skipped, 0 errors", line)
        for line in lines
    ), lines
    [next_poll] = [line for line in lines if "next poll:" in line]
    assert re.fullmatch(r"  next poll: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", next_poll), next_poll
    assert "entries: 3" in lines

    document = json.loads(feeder(site, "status", "--json").stdout)
    seeds = document["sources"]["seeds"]
    assert seeds["polls"] >= 1
    assert (seeds["new"], seeds["errors"], seeds["failure"]) == (3, 0, None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", seeds["next_poll"])

    metrics = samples((site.state / "metrics.prom").read_text(encoding="utf-8"))
    assert metrics[key("feeder_source_up", source="seeds")] == 1
    assert metrics[key("feeder_source_polls_total", source="seeds", outcome="ok")] >= 1
    assert metrics[key("feeder_source_next_poll_timestamp_seconds", source="seeds")] > time.time()
    assert metrics[key("feeder_entries")] == 3


# A slow poll ---------------------------------------------------------------------------------------------------


def test_refreshes_asked_for_during_a_slow_poll_run_once_after_it(
    tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    # interval 1d: no timed poll joins in (a 1-day job fires once a day, at a fixed second).
    site = make_site(tmp_path, articles=0, interval="1d")
    fill_with_bulk(site)
    daemon = launch(site, polled=False)
    assert daemon.polls() == [], "the first poll ended before the test could ask for more: make it slower"

    for _ in range(3):
        daemon.signal(signal.SIGHUP)
        time.sleep(0.05)
    wait_until("three SIGHUP lines", lambda: daemon.log().count(SIGHUP_LINE) == 3, 5, daemon)
    assert daemon.polls() == [], "the first poll ended while SIGHUPs were sent: make it slower"

    wait_until("two polls", lambda: len(daemon.polls()) >= 2, 30, daemon)
    time.sleep(1.5)  # a third poll of 3000 unchanged files would show by now
    polls = daemon.polls()
    assert len(polls) == 2, "\n".join(polls)
    assert f"seeds: {BULK_FILES} new," in polls[0]
    assert f"{BULK_FILES} skipped" in polls[1]
    lines = daemon.lines()
    first_poll = lines.index(polls[0])
    assert sum(line.endswith(SIGHUP_LINE) for line in lines[:first_poll]) == 3
    assert json.loads((site.state / "status.json").read_text(encoding="utf-8"))["sources"]["seeds"]["polls"] == 2


# One daemon per config ----------------------------------------------------------------------------------------


def test_a_second_daemon_on_the_same_config_refuses_to_start(tmp_path: Path, launch: Callable[..., Daemon]) -> None:
    site = make_site(tmp_path)
    first = launch(site)
    token = (site.state / "control.token").read_bytes()

    second = feeder(site, "run", expect=7, timeout=START_TIMEOUT)
    assert second.stderr.splitlines() == [
        f"feeder: {site.state / 'daemon.lock'}: a feeder daemon is already running for this config"
    ]

    assert first.alive()
    assert fetch(site, f"/{FEED}.atom").status == 200
    assert site.control_answers()
    assert (site.state / "control.token").read_bytes() == token
    assert "refreshed by the running daemon" in feeder(site, "refresh").stdout


# Stopping -------------------------------------------------------------------------------------------------------


def test_sigterm_stops_within_seconds_and_leaves_complete_files(tmp_path: Path, launch: Callable[..., Daemon]) -> None:
    site = make_site(tmp_path)
    daemon = launch(site)
    assert site.control_answers()

    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(5) == 0
    print(f"\nSIGTERM → exit: {time.monotonic() - started:.2f}s")
    assert not site.control_answers()
    assert not daemon.answers()
    assert assert_every_file_complete(site.public) == 16  # the feed, its 中国 section, index, OPML; each + .gz
    assert "Traceback" not in daemon.log()
    assert daemon.lines()[-1].endswith("INFO stopping")


@dataclass(frozen=True)
class Stopped:
    site: Site
    urls: list[str]
    exit_code: int
    log: str
    seconds: float


@pytest.fixture(scope="module")
def stopped_mid_poll(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stopped]:
    """A daemon SIGTERMed while its first poll of a big folder runs (shared by two tests, run once)."""
    site = make_site(tmp_path_factory.mktemp("stopped"), articles=0, interval="1d", max_entries=10_000)
    urls = fill_with_bulk(site)
    daemon = Daemon(site, "first")
    try:
        daemon.wait_ready(polled=False)
        time.sleep(0.3)
        assert daemon.polls() == [], "the first poll ended before SIGTERM: make it slower"
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        exit_code = daemon.wait_exit()
        yield Stopped(site, urls, exit_code, daemon.log(), time.monotonic() - started)
    finally:
        daemon.terminate()


def test_sigterm_during_a_slow_poll_publishes_nothing_partial(
    stopped_mid_poll: Stopped, launch: Callable[..., Daemon]
) -> None:
    site = stopped_mid_poll.site
    print(f"\nSIGTERM mid-poll → exit: {stopped_mid_poll.seconds:.2f}s")
    assert stopped_mid_poll.exit_code == 0, stopped_mid_poll.log
    assert stopped_mid_poll.seconds < 5
    abandoned = re.search(r"refresh abandoned at file (\d+) of (\d+): the service is stopping", stopped_mid_poll.log)
    assert abandoned, "SIGTERM missed the poll"
    assert int(abandoned[1]) < BULK_FILES
    assert not any(POLL_LINE.search(line) for line in stopped_mid_poll.log.splitlines())
    if site.public.exists():
        assert_every_file_complete(site.public)

    daemon = launch(site, name="restarted")
    assert f"seeds: {BULK_FILES} new, 0 updated" in daemon.polls()[0]
    ids = served_ids(site)
    assert len(ids) == len(set(ids)), "an entry appears twice"
    assert sorted(ids) == sorted(stopped_mid_poll.urls)
    assert assert_every_file_complete(site.public) == 16  # the feed, its 中国 section, index, OPML; each + .gz


def test_sigterm_during_a_slow_poll_is_logged_in_one_line_without_an_error(stopped_mid_poll: Stopped) -> None:
    log = stopped_mid_poll.log
    assert "Traceback" not in log
    assert " ERROR " not in log


# Configuration errors -----------------------------------------------------------------------------------------


def test_an_invalid_config_stops_the_start_with_one_line(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.config.write_text(
        site.config.read_text(encoding="utf-8").replace("interval: 1m", "interval: 90"), encoding="utf-8"
    )
    result = feeder(site, "run", expect=3, timeout=START_TIMEOUT)
    [line] = result.stderr.splitlines()
    assert re.fullmatch(rf"feeder: {re.escape(str(site.config))}:9: sources\[0\]\.interval: .*\b90\b.*", line), line
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", site.port), timeout=1):
        pass
    assert not site.state.exists()
    assert not site.public.exists()


# A real feed reader -------------------------------------------------------------------------------------------


@pytest.fixture
def newsboat() -> str:
    found = shutil.which("newsboat") or ("/usr/bin/newsboat" if Path("/usr/bin/newsboat").is_file() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("newsboat is not installed: apt-get install newsboat")
        pytest.skip("newsboat is not installed (apt-get install newsboat)")
    return found


def test_newsboat_sees_every_entry_once_and_then_only_the_new_one(
    tmp_path: Path, launch: Callable[..., Daemon], newsboat: str
) -> None:
    site = make_site(tmp_path / "site")
    daemon = launch(site)
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "urls").write_text(site.url(f"{FEED}.atom") + "\n", encoding="utf-8")
    (reader / "config").write_text("reload-threads 1\nshow-read-feeds yes\n", encoding="utf-8")
    env = {**CHILD_ENV, "HOME": str(reader), "XDG_CONFIG_HOME": str(reader), "XDG_DATA_HOME": str(reader)}

    def newsboat_run(*args: str) -> str:
        command = [newsboat, "-u", "urls", "-c", "cache.db", "-C", "config", "-x", *args]
        result = subprocess.run(
            command, cwd=reader, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
        assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def items() -> list[tuple[str, str, str]]:
        with sqlite3.connect(reader / "cache.db") as db:
            return sorted(db.execute("SELECT guid, title, url FROM rss_item"))

    newsboat_run("reload")
    newsboat_run("reload")
    served = served_ids(site)
    assert [guid for guid, _, _ in items()] == sorted(served)
    assert items() == sorted((article_url(f"article-{n}"), f"文章{n}", article_url(f"article-{n}")) for n in (1, 2, 3))
    assert newsboat_run("print-unread").strip() == "3 unread articles"

    url = add_article(site, 4)
    wait_until("the new article in the served feed", lambda: url in served_ids(site), 10, daemon)
    newsboat_run("reload")
    after = items()
    assert len(after) == 4
    assert [row for row in after if row[0] == url] == [(url, "文章4", url)]
    assert newsboat_run("print-unread").strip() == "4 unread articles"


# Reloading the config -----------------------------------------------------------------------------------------


def test_sighup_applies_a_valid_config_and_keeps_the_old_one_when_the_new_is_bad(
    tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    site = make_site(tmp_path, interval="1m")
    daemon = launch(site)
    original = site.config.read_text(encoding="utf-8")

    site.config.write_text(original.replace("interval: 1m", "interval: 2h"), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    wait_until("the reload", lambda: "config reloaded from" in daemon.log(), 5, daemon)
    assert fetch(site, f"/{FEED}.atom").headers["cache-control"] == "max-age=7200"
    document = json.loads(feeder(site, "status", "--json").stdout)
    next_poll = datetime.strptime(document["sources"]["seeds"]["next_poll"], "%Y-%m-%dT%H:%M:%S%z")
    # the 2h schedule, not the 1m one: a slot of its grid (which may happen to be near, whatever the hour)
    phase = ANCHOR + offset_for("seeds", timedelta(hours=2))
    assert (next_poll - phase) % timedelta(hours=2) == timedelta(0)
    assert timedelta(0) < next_poll - datetime.now(UTC) <= timedelta(hours=2)

    site.config.write_text(original.replace("interval: 1m", "interval: 90"), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    wait_until("the refusal", lambda: "config reload refused" in daemon.log(), 5, daemon)
    assert "sources[0].interval: must be a string" in daemon.log()
    assert daemon.alive()
    assert fetch(site, f"/{FEED}.atom").headers["cache-control"] == "max-age=7200"  # still the last good one

    moved = original.replace(f"port: {site.port}", f"port: {free_port()}")
    site.config.write_text(moved, encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    wait_until(
        "the warning", lambda: "server changed; that takes effect at the next restart" in daemon.log(), 5, daemon
    )
    assert fetch(site, f"/{FEED}.atom").status == 200  # still on the old port
