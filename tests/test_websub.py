"""WebSub: hub links in every subscription feed, and one publish ping per hub and changed feed URL after a
publish, against a hub stand-in on 127.0.0.1 that records what it is sent."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote

import feedparser
import pytest

from feeder import websub
from feeder.config import WebSubConfig
from feeder.status import load
from tests.builders import free_port, run_feeder, seed_text, write_seed
from tests.prom import key, samples
from tests.test_service import Daemon, Site, add_article, launch, make_site, wait_until

__all__ = ["launch"]  # the daemon fixture, used below


class Hub:
    """What the stand-in hub was sent, and how it answers: each POST takes the next status of ``answers``,
    then 204. ``pings`` are the forms it accepted (2xx), ``requests`` counts every POST."""

    def __init__(self) -> None:
        self.pings: list[dict[str, str]] = []
        self.requests = 0
        self.answers: list[int] = []
        self.lock = threading.Lock()
        self.url = ""

    def topics(self) -> list[str]:
        with self.lock:
            return [ping["hub.url"] for ping in self.pings]

    def take(self) -> list[str]:
        with self.lock:
            topics = [ping["hub.url"] for ping in self.pings]
            self.pings.clear()
            return topics


class _HubHandler(BaseHTTPRequestHandler):
    server: _HubServer

    def do_POST(self) -> None:
        hub = self.server.hub
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        form = self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
        with hub.lock:
            hub.requests += 1
            status = hub.answers.pop(0) if hub.answers else 204
            if form and status < 300:
                hub.pings.append(dict(parse_qsl(body)))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _HubServer(ThreadingHTTPServer):
    daemon_threads = True
    hub: Hub


@contextmanager
def hub_running() -> Iterator[Hub]:
    server = _HubServer(("127.0.0.1", 0), _HubHandler)
    server.hub = Hub()
    server.hub.url = f"http://127.0.0.1:{server.server_address[1]}/hub"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.hub
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub() -> Iterator[Hub]:
    with hub_running() as running:
        yield running


# The pinging itself --------------------------------------------------------------------------------------------


def announce(hub_url: str, topics: list[str], **settings: object) -> tuple[list[websub.PingOutcome], list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    config = WebSubConfig.model_validate({"hubs": [hub_url], "retry_delay": "2s", **settings})
    outcomes = asyncio.run(websub.announce(config, topics, user_agent="feeder-tests", sleep=sleep))
    return outcomes, slept


def test_one_form_post_per_changed_feed_url(hub: Hub) -> None:
    topics = [f"http://127.0.0.1:8080/rfi-cn.{kind}" for kind in ("atom", "rss", "json")]
    outcomes, slept = announce(hub.url, topics)
    assert sorted(hub.topics()) == sorted(topics)
    assert all(ping["hub.mode"] == "publish" for ping in hub.pings)
    assert [(o.ok, o.detail, o.attempts) for o in outcomes] == [(True, "HTTP 204", 1)] * 3
    assert slept == []


def test_a_503_is_tried_again_after_a_growing_delay(hub: Hub) -> None:
    hub.answers = [503, 503]
    outcomes, slept = announce(hub.url, ["http://127.0.0.1:8080/rfi-cn.atom"])
    assert [(o.ok, o.attempts) for o in outcomes] == [(True, 3)]
    assert slept == [2.0, 4.0]
    assert (hub.requests, hub.topics()) == (3, ["http://127.0.0.1:8080/rfi-cn.atom"])


def test_a_hub_that_stays_down_is_given_up_after_the_attempts(hub: Hub) -> None:
    hub.answers = [500] * 10
    outcomes, slept = announce(hub.url, ["http://127.0.0.1:8080/rfi-cn.atom"], attempts=3)
    assert [(o.ok, o.detail, o.attempts) for o in outcomes] == [(False, "HTTP 500", 3)]
    assert slept == [2.0, 4.0]
    assert hub.requests == 3


def test_a_refused_ping_is_not_tried_again(hub: Hub) -> None:
    hub.answers = [400]
    outcomes, slept = announce(hub.url, ["http://127.0.0.1:8080/rfi-cn.atom"])
    assert [(o.ok, o.detail, o.attempts) for o in outcomes] == [(False, "HTTP 400", 1)]
    assert (slept, hub.requests) == ([], 1)


def test_an_unreachable_hub_is_a_failed_outcome_not_an_error() -> None:
    outcomes, slept = announce(f"http://127.0.0.1:{free_port()}/hub", ["http://127.0.0.1:8080/rfi-cn.atom"])
    ((outcome),) = outcomes
    assert not outcome.ok
    assert "ConnectError" in outcome.detail
    assert slept == [2.0, 4.0, 8.0]


# With feeder refresh ------------------------------------------------------------------------------------------


def hub_site(root: Path, hub_url: str, *, variants: bool = False) -> Site:
    site = make_site(root, articles=2)
    text = site.config.read_text(encoding="utf-8")
    text = text.replace("sources:\n", f"websub:\n  hubs: [{hub_url}]\n  attempts: 2\n  retry_delay: 1s\nsources:\n")
    if variants:
        text = text.replace("    max_entries: 200\n", "    max_entries: 200\n    variants: [zh-tw]\n")
    site.config.write_text(text, encoding="utf-8")
    return site


def feed_urls(site: Site, *names: str) -> list[str]:
    return sorted(site.url(quote(f"{name}.{kind}")) for name in names for kind in ("atom", "rss", "json"))


def test_refresh_pings_every_changed_feed_once_and_an_unchanged_rebuild_none(hub: Hub, tmp_path: Path) -> None:
    site = hub_site(tmp_path, hub.url, variants=True)
    first = run_feeder(site.config, "refresh")
    assert f"websub {hub.url}: pinged about 12 feed URLs" in first.stdout
    assert sorted(hub.take()) == feed_urls(site, "rfi-cn", "rfi-cn/中国", "rfi-cn-zh-tw", "rfi-cn-zh-tw/中国")
    for kind in ("atom", "rss"):
        links = feedparser.parse((site.public / f"rfi-cn.{kind}").read_bytes()).feed.links
        assert [link.href for link in links if link.rel == "hub"] == [hub.url]
        assert [link.href for link in links if link.rel == "self"] == [site.url(f"rfi-cn.{kind}")]
    document = json.loads((site.public / "rfi-cn.json").read_text(encoding="utf-8"))
    assert document["hubs"] == [{"type": "WebSub", "url": hub.url}]

    second = run_feeder(site.config, "refresh")
    assert "websub" not in second.stdout
    assert hub.take() == []

    write_seed(site.seeds, "100.txt", seed_text("https://www.rfi.fr/cn/%E6%B3%95%E5%9B%BD/20240110-new", "新文章"))
    run_feeder(site.config, "refresh")
    changed = feed_urls(site, "rfi-cn", "rfi-cn/法国", "rfi-cn-zh-tw", "rfi-cn-zh-tw/法国")
    assert sorted(hub.take()) == changed  # the 中国 section feeds did not change: no ping for them
    recorded = load(site.state)["websub"][hub.url]
    assert (recorded["ok"], recorded["feeds"], recorded["pings"], recorded["failed_pings"]) == (True, 12, 24, 0)


def test_feeds_are_published_while_the_hub_is_down_and_status_says_so(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/hub"
    site = hub_site(tmp_path, down)
    started = time.monotonic()
    result = run_feeder(site.config, "refresh")
    assert time.monotonic() - started < 30
    assert f"feeder: websub {down}: 6 of 6 pings failed" in result.stderr
    assert "wrote public/rfi-cn.atom" in result.stdout
    assert len(feedparser.parse((site.public / "rfi-cn.atom").read_bytes()).entries) == 2
    status = run_feeder(site.config, "status").stdout
    assert f"websub {down}: last ping " in status
    assert "about 6 feed URLs: 6 of 6 failed (ConnectError" in status
    metrics = samples((site.state / "metrics.prom").read_text(encoding="utf-8"))
    assert metrics[key("feeder_websub_up", hub=down)] == 0
    assert metrics[key("feeder_websub_pings_total", hub=down, outcome="failed")] == 6
    assert metrics[key("feeder_websub_pings_total", hub=down, outcome="ok")] == 0


# With the daemon -----------------------------------------------------------------------------------------------


def test_the_daemon_pings_within_seconds_of_a_new_article(
    hub: Hub, tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    site = hub_site(tmp_path, hub.url)
    daemon = launch(site)
    wait_until("the first pings", lambda: len(hub.topics()) == 6, 15, daemon)
    assert sorted(hub.take()) == feed_urls(site, "rfi-cn", "rfi-cn/中国")

    add_article(site, 50)  # the watcher polls within about a second
    took = wait_until("pings for the new article", lambda: len(hub.topics()) == 6, 15, daemon)
    assert took < 5
    assert sorted(hub.take()) == feed_urls(site, "rfi-cn", "rfi-cn/中国")
    line = f"websub {hub.url}: pinged about 6 feed URLs"
    wait_until("the second round's log line", lambda: daemon.log().count(line) == 2, 5, daemon)

    reply = run_feeder(site.config, "refresh")  # through the daemon: nothing changed, nothing to ping
    assert "refreshed by the running daemon" in reply.stdout
    time.sleep(1)
    assert hub.take() == []
    assert json.loads(run_feeder(site.config, "status", "--json").stdout)["websub"][hub.url]["ok"] is True


def test_a_hub_answering_503_is_tried_again_by_the_daemon(
    hub: Hub, tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    hub.answers = [503] * 6  # every ping of the first round, the first time
    site = hub_site(tmp_path, hub.url)
    daemon = launch(site)
    wait_until("the pings, second tries", lambda: len(hub.topics()) == 6, 15, daemon)
    assert sorted(hub.take()) == feed_urls(site, "rfi-cn", "rfi-cn/中国")
    assert (hub.answers, hub.requests) == ([], 12)
    wait_until("the round's log line", lambda: f"websub {hub.url}: pinged about 6 feed URLs" in daemon.log(), 5, daemon)
    assert "HTTP Request:" not in daemon.log()  # the HTTP client's own line per request stays out of the log


def test_a_stop_while_pings_wait_to_be_retried_is_clean(tmp_path: Path, launch: Callable[..., Daemon]) -> None:
    site = hub_site(tmp_path, f"http://127.0.0.1:{free_port()}/hub")
    text = site.config.read_text(encoding="utf-8").replace("retry_delay: 1s", "retry_delay: 1h")
    site.config.write_text(text, encoding="utf-8")
    daemon = launch(site)
    wait_until("the published feed", (site.public / "rfi-cn.atom").exists, 15, daemon)
    time.sleep(0.5)  # the first tries are refused; the second ones wait an hour
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert time.monotonic() - started < 5
    assert "stopping: 1 round(s) of WebSub pings left unfinished" in daemon.log()
