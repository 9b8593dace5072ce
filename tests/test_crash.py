"""Crash safety: ``feeder run`` killed with SIGKILL at random moments never leaves a broken output or state.

The daemon runs as in production (a subprocess on a free port over a seeds folder, interval 1m) while seed
files keep arriving, some of them new versions or other spellings of earlier articles, and refreshes are
asked for by SIGHUP and by ``feeder refresh`` right before some kills, so that kills land in the middle of
a poll, a render or a publish. After every kill each published file is complete and well-formed; at the end
a clean run publishes every article exactly once, in its newest version, over an intact database.

The moments come from a seeded ``random.Random``: the seed is printed and named in every failure, and
``FEEDER_CRASH_SEED=<seed>`` replays a run (as closely as process timing allows).
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.builders import CHILD_ENV, config_text, free_port, seed_text
from tests.children import Child

pytestmark = pytest.mark.e2e

CYCLES = 40
BUDGET = 35.0  # seconds for all the cycles; the test stops early (and says so) rather than run longer
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
FEED = "rfi-cn"
ATOM = "{http://www.w3.org/2005/Atom}"
SECTION_PATH = "/cn/%E4%B8%AD%E5%9B%BD/"
FIRST_SCRAPE_MS = 1704791701000


def canonical(article: int) -> str:
    return f"https://www.rfi.fr{SECTION_PATH}20240109-crash-{article:03d}"


def spelling(article: int, rng: random.Random) -> str:
    """One of the ways real seed folders spell an article's URL; all have canonical(article) as their key."""
    slug = f"20240109-crash-{article:03d}"
    return rng.choice(
        [
            canonical(article),
            f"http://www.rfi.fr/cn/中国/{slug}/?xtor=RSS-1#top",
            f"https://WWW.RFI.FR/cn/%e4%b8%ad%e5%9b%bd/{slug}?utm_source=x&utm_medium=y",
            f"https://www.rfi.fr:443/cn/中国/{slug}#fragment",
        ]
    )


@dataclass
class Site:
    """A folder with config.yaml (serving on a free port), seeds/, and what the daemon makes: public/, state/."""

    root: Path
    max_entries: int = 200
    port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        text = config_text(max_entries=self.max_entries).replace(
            "base_url: http://127.0.0.1:8080/\n",
            f"base_url: http://127.0.0.1:{self.port}/\nserver: {{host: 127.0.0.1, port: {self.port}}}\n",
        )
        text += f"control: {{port: {self.control_port}}}\n"
        assert f"port: {self.port}" in text, "config_text changed: the server settings were not inserted"
        assert "interval: 1m" in text
        self.seeds.mkdir(parents=True)
        self.config.write_text(text, encoding="utf-8")

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
    def database(self) -> Path:
        return self.root / "state" / "feeder.sqlite3"


@dataclass
class Writer:
    """Writes seed files as a scraper does (a hidden temporary file renamed into place) and remembers, per
    canonical URL, the title of its newest version."""

    site: Site
    rng: random.Random
    files: int = 0
    newest: dict[str, str] = field(default_factory=dict)

    def write(self, count: int) -> None:
        for _ in range(count):
            self.files += 1
            number = self.files
            known = len(self.newest)
            article = self.rng.randrange(known) if known and self.rng.random() < 0.4 else known
            title = f"文章{article}第{number}版"
            text = seed_text(
                spelling(article, self.rng),
                title,
                scraped_ms=FIRST_SCRAPE_MS + number * 60_000,  # every file is a newer version than the last
                body=f"<p>第{article}篇文章的第{number}版。</p>" + "<p>正文。</p>" * self.rng.randint(1, 30),
            )
            name = f"{number:04d}_{number:016x}.txt"
            temporary = self.site.seeds / f".{name}.part"
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(self.site.seeds / name)
            self.newest[canonical(article)] = title


class Daemon(Child):
    """One ``python -m feeder run`` child with its log."""

    def __init__(self, site: Site, name: str) -> None:
        super().__init__(site.config, "run", name=name)
        self.site = site

    def serving(self) -> bool:
        if " serving " not in self.log():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.site.port), timeout=0.5):
                return True
        except OSError:
            return False


Children = list[Daemon | subprocess.Popen[str]]


@pytest.fixture
def processes() -> Iterator[Children]:
    """Every child the test starts, killed at teardown if it still runs."""
    started: Children = []
    yield started
    for child in started:
        if isinstance(child, Daemon):
            child.kill()
        elif child.poll() is None:
            child.kill()
            child.wait(STOP_TIMEOUT)


def wait_until(what: str, condition: Callable[[], bool], timeout: float, daemon: Daemon, context: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not daemon.alive():
            pytest.fail(f"{context}: the daemon exited ({daemon.process.returncode}) before {what}:\n{daemon.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{context}: no {what} within {timeout}s:\n{daemon.log()}")
        time.sleep(0.02)


# What a kill may leave, and what it may not -------------------------------------------------------------------


def temporary_files(public: Path) -> set[Path]:
    return {p for p in public.rglob(".*") if p.is_file()} if public.exists() else set()


def check_public(public: Path, context: str) -> int:
    """Every published file is complete and well-formed; a .gz matches its file or is older than it (a publish
    killed between the two; the server does not serve it and the next publish rewrites it). Temporary files
    (``.NAME.*.tmp``) are left aside. Returns how many .gz files were stale."""
    if not public.exists():
        return 0
    stale = 0
    for path in sorted(p for p in public.rglob("*") if p.is_file()):
        name = path.relative_to(public).as_posix()
        if path.name.startswith("."):
            assert path.name.endswith(".tmp"), f"{context}: unexpected hidden file {name}"
            continue
        data = path.read_bytes()
        assert data, f"{context}: {name} is empty"
        if path.suffix == ".gz":
            sibling = path.with_suffix("")
            assert sibling.is_file(), f"{context}: {name} has no {sibling.name}"
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as e:
                pytest.fail(f"{context}: {name} does not decompress: {e}")
            if data != sibling.read_bytes():
                older = path.stat().st_mtime_ns < sibling.stat().st_mtime_ns
                assert older, f"{context}: {name} differs from {sibling.name} and is not older than it"
                stale += 1
            kind = sibling.suffix
        else:
            kind = path.suffix
        check_document(kind, data, f"{context}: {name}")
    return stale


def check_document(kind: str, data: bytes, where: str) -> None:
    try:
        if kind in (".atom", ".rss", ".opml"):
            ET.fromstring(data)
        elif kind == ".json":
            json.loads(data)
        elif kind == ".html":
            assert data.rstrip().endswith(b"</html>"), f"{where}: cut off"
        else:
            pytest.fail(f"{where}: unexpected file")
    except (ET.ParseError, ValueError) as e:
        pytest.fail(f"{where}: not well-formed: {e}")


# The test -----------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    seed: int
    kills: dict[str, int] = field(default_factory=dict)
    stale_gz: int = 0
    temporary_seen: set[Path] = field(default_factory=set)
    interrupted: int = 0
    refresh_answers: dict[str, int] = field(default_factory=dict)


MODES = ("starting", "watching", "sighup", "refresh", "sighup+refresh", "mid-publish")


def run_cycle(site: Site, writer: Writer, cycle: int, tally: Tally, started: Children) -> None:
    """Start the daemon, let it get somewhere (maybe asked to refresh), SIGKILL it, check what it left."""
    rng = writer.rng
    context = f"seed {tally.seed}, cycle {cycle}"
    writer.write(rng.randint(1, 3))
    daemon = Daemon(site, f"cycle-{cycle:02d}")
    started.append(daemon)
    mode = rng.choice(MODES)
    client = None
    if mode == "starting":  # anywhere in the start-up and the first poll
        time.sleep(rng.uniform(0.1, 1.0))
    else:
        wait_until("serving", daemon.serving, START_TIMEOUT, daemon, context)
        writer.write(rng.randint(0 if mode == "watching" else 1, 2))  # the folder watcher polls ~a second later
        if mode == "watching":
            time.sleep(rng.uniform(0.3, 1.3))
        if "sighup" in mode or mode == "mid-publish":
            daemon.process.send_signal(signal.SIGHUP)
        if "refresh" in mode:
            client = start_refresh(site)
            started.append(client)
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.15, 0.6))  # the client needs ~0.25s to start and ask
            else:
                wait_for_a_publish(site.public, rng)
        elif "sighup" in mode:
            time.sleep(rng.uniform(0.0, 0.15))
        if mode == "mid-publish":
            wait_for_a_publish(site.public, rng)
    if not daemon.alive():
        pytest.fail(f"{context}: the daemon died by itself ({daemon.process.returncode}):\n{daemon.log()}")
    daemon.kill()
    tally.kills[mode] = tally.kills.get(mode, 0) + 1
    log = daemon.log()
    assert "Traceback" not in log, f"{context}:\n{log}"
    if client is not None:  # it may have fallen back to an in-process refresh: wait for it before looking
        out, err = client.communicate(timeout=60)
        assert "Traceback" not in err, f"{context}: feeder refresh:\n{err}"
        how = "by the daemon" if "refreshed by the running daemon" in out else "in-process"
        answer = f"exit {client.returncode} {how}: {(err.strip().splitlines() or [''])[0]}"
        tally.refresh_answers[answer] = tally.refresh_answers.get(answer, 0) + 1
    stale = check_public(site.public, context)
    temporary = temporary_files(site.public) - tally.temporary_seen
    tally.stale_gz += stale
    tally.temporary_seen |= temporary
    tally.interrupted += bool(stale or temporary or poll_pending(log))


def poll_pending(log: str) -> bool:
    """Whether the log shows a poll asked for (start-up, SIGHUP) and not yet logged as done."""
    lines = log.splitlines()
    asked = [n for n, line in enumerate(lines) if " serving " in line or line.endswith("refreshing every source")]
    done = [n for n, line in enumerate(lines) if " seeds: " in line and " new, " in line]
    return bool(asked) and (not done or done[-1] < asked[-1])


def start_refresh(site: Site) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "feeder", "refresh", "--config", str(site.config)],
        cwd=site.root,
        env=CHILD_ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def wait_for_a_publish(public: Path, rng: random.Random) -> None:
    """Spin until a temporary file shows that a publish is writing (at most 1.5 s), then a few ms more."""
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not temporary_files(public):
        pass
    time.sleep(rng.uniform(0.0, 0.004))


def test_sigkill_at_random_moments_never_breaks_the_output_or_the_state(tmp_path: Path, processes: Children) -> None:
    seed = int(os.environ.get("FEEDER_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\ncrash test seed: {seed} (FEEDER_CRASH_SEED={seed} replays it)")
    rng = random.Random(seed)  # noqa: S311  (timing, not cryptography)
    site = Site(tmp_path, max_entries=1000)  # every article fits in the feed
    writer = Writer(site, rng)
    tally = Tally(seed)
    started = time.monotonic()
    cycles = 0
    while cycles < CYCLES and time.monotonic() - started < BUDGET:
        run_cycle(site, writer, cycles, tally, processes)
        cycles += 1
    elapsed = time.monotonic() - started
    print(f"{cycles} kills in {elapsed:.1f}s by moment: {tally.kills}")
    print(f"kills that landed while a poll was running or pending, or mid-publish: {tally.interrupted}")
    print(f"feeder refresh answers while the daemon was killed: {tally.refresh_answers}")
    print(f"{writer.files} seed files, {len(writer.newest)} articles; stale .gz seen after kills: {tally.stale_gz}")
    assert cycles >= 10, f"seed {seed}: only {cycles} cycles in {BUDGET}s"

    # A last, clean run: restart, let it poll everything, stop it with SIGTERM.
    leftovers = temporary_files(site.public)
    print(f"temporary files of killed publishes: {len(tally.temporary_seen)} seen after kills, {len(leftovers)} left")
    daemon = Daemon(site, "final")
    processes.append(daemon)
    context = f"seed {seed}, final run"
    wait_until("serving", daemon.serving, START_TIMEOUT, daemon, context)
    expected = writer.newest
    wait_until("every article in the feed", lambda: atom_titles(site) == expected, 20, daemon, context)
    for path in leftovers:  # never served, whatever they hold
        assert http_status(site, "/" + path.relative_to(site.public).as_posix()) == 404, path
    assert daemon.stop() == 0, f"{context}: SIGTERM did not stop it cleanly:\n{daemon.log()}"
    assert "Traceback" not in daemon.log(), f"{context}:\n{daemon.log()}"

    assert check_public(site.public, context) == 0, f"{context}: a stale .gz survived a clean run"
    for kind in ("atom", "rss", "json"):
        ids = feed_ids(site.public / f"{FEED}.{kind}")
        assert len(ids) == len(set(ids)), f"{context}: {FEED}.{kind} lists an article twice"
        assert set(ids) == set(expected), f"{context}: {FEED}.{kind}: lost {set(expected) - set(ids)}"
    assert atom_titles(site) == expected, f"{context}: an article is not in its newest version"
    db = sqlite3.connect(site.database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], context
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (len(expected),), context
    finally:
        db.close()
    remaining = temporary_files(site.public) & leftovers
    print(f"temporary files of killed publishes still there after a clean run: {len(remaining)}")


def atom_titles(site: Site) -> dict[str, str]:
    """{id: title} of the Atom feed on disk (empty while it does not exist or is being replaced)."""
    try:
        root = ET.fromstring((site.public / f"{FEED}.atom").read_bytes())
    except (OSError, ET.ParseError):
        return {}
    return {e.findtext(f"{ATOM}id") or "": e.findtext(f"{ATOM}title") or "" for e in root.iter(f"{ATOM}entry")}


def feed_ids(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.suffix == ".json":
        return [item["id"] for item in json.loads(data)["items"]]
    root = ET.fromstring(data)
    if path.suffix == ".rss":
        return [item.findtext("guid") or "" for item in root.iter("item")]
    return [entry.findtext(f"{ATOM}id") or "" for entry in root.iter(f"{ATOM}entry")]


def http_status(site: Site, target: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        connection.request("GET", urllib.parse.quote(target))
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# Temporary files of a killed publish ------------------------------------------------------------------------------


def test_temporary_files_of_a_killed_publish_are_removed_by_the_next_run(tmp_path: Path, processes: Children) -> None:
    site = Site(tmp_path)
    Writer(site, random.Random(1)).write(3)  # noqa: S311
    leftovers = [
        site.public / f".{FEED}.atom.k1ll3d_.tmp",
        site.public / f".{FEED}.json.gz.k1ll3d_.tmp",
        site.public / FEED / ".中国.rss.k1ll3d_.tmp",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"<?xml version='1.0' encoding='UTF-8'?>\n<feed xmlns=")  # cut off, as a kill leaves it
        os.utime(path, (time.time() - 600, time.time() - 600))
    daemon = Daemon(site, "after-a-kill")
    processes.append(daemon)
    wait_until("the first poll", (site.public / "index.html").exists, START_TIMEOUT, daemon, "restart")
    wait_until("serving", daemon.serving, START_TIMEOUT, daemon, "restart")
    for path in leftovers:
        assert http_status(site, "/" + path.relative_to(site.public).as_posix()) == 404
    assert daemon.stop() == 0
    assert check_public(site.public, "after a restart") == 0
    assert sorted(p.name for p in temporary_files(site.public)) == []


# A `feeder refresh` waiting on a daemon that is killed --------------------------------------------------------------

BULK_FILES = 5000  # enough that the first poll (in worker processes) takes over a second here
BULK_BODY = "".join(f"<p>第{k}段正文，内容稍长一些，用来让第一次轮询慢下来。</p>" for k in range(40))


def test_a_refresh_waiting_on_a_killed_daemon_fails_in_one_line_and_nothing_is_lost(
    tmp_path: Path, processes: Children
) -> None:
    site = Site(tmp_path, max_entries=10_000)
    urls = []
    for number in range(BULK_FILES):
        urls.append(canonical(number))
        path = site.seeds / f"{number:05d}_{number:016x}.txt"
        path.write_text(seed_text(urls[-1], f"批量文章{number}", body=BULK_BODY), encoding="utf-8")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    daemon = Daemon(site, "busy")
    processes.append(daemon)
    wait_until("serving", daemon.serving, START_TIMEOUT, daemon, "busy daemon")
    client = start_refresh(site)  # asks while the first poll runs: queued behind it
    processes.append(client)
    wait_until("the request", lambda: "requested over the control API" in daemon.log(), 30, daemon, "busy daemon")
    assert " seeds: " not in daemon.log(), "the first poll ended before the kill: make it slower"
    daemon.kill()
    out, err = client.communicate(timeout=60)

    assert "Traceback" not in err, err
    assert client.returncode != 0, f"the refresh claims success:\n{out}\n{err}"
    assert out == ""
    assert err.splitlines()[0].startswith("feeder: "), err
    assert "daemon" in err.splitlines()[0], err
    print(f"\nfeeder refresh when its daemon is killed: exit {client.returncode}: {err.strip()!r}")
    check_public(site.public, "after the kill")

    restarted = Daemon(site, "restarted")
    processes.append(restarted)
    wait_until("serving", restarted.serving, START_TIMEOUT, restarted, "restart")
    wait_until("every article", lambda: len(atom_titles(site)) == BULK_FILES, 30, restarted, "restart")
    assert restarted.stop() == 0
    ids = feed_ids(site.public / f"{FEED}.atom")
    assert sorted(ids) == sorted(urls)
