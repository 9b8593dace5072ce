"""Scale-out on a real PostgreSQL: ``feeder run`` nodes and ``feeder worker`` processes sharing one database,
and the faults they must survive (a worker killed mid-poll, two schedulers, the database stopped for 30 s, a
manual refresh while every worker is busy)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from feeder.jobs import Queue
from feeder.store import Store
from tests import postgres
from tests.builders import seed_text, write_seed
from tests.scaleout import Cluster, Upstream, feed_sources, node_config, port_of, serving

CHINA = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/"
OUTAGE = 30.0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    yield started
    started.stop()


def seeds_body(folder: Path) -> str:
    return (
        f"sources:\n  - {{name: seeds, kind: seeds, path: '{folder}', interval: 1h}}\n"
        "feeds:\n  - {name: rfi-cn, title: RFI 中文, sources: [seeds]}\n"
    )


def write_articles(folder: Path, numbers: range) -> set[str]:
    urls = set()
    for number in numbers:
        url = f"{CHINA}20240109-article-{number}"
        text = seed_text(url, f"文章{number}", date_div=f"09/01/2024 - {number % 24:02d}:00")
        path = write_seed(folder, f"{number:03d}_{number:016x}.txt", text)
        moment = time.time() - 3600  # not a file still being written
        os.utime(path, (moment, moment))
        urls.add(url)
    return urls


def entry_urls(url: str) -> list[str]:
    with Store.open(url) as store:
        return [entry.url for entry in store.entries(["seeds", "slow", "other", "news"], 10_000)]


def published(config: Path, name: str) -> list[str]:
    """The links of the entries in a node's published Atom feed (none while it is not written)."""
    path = config.parent / "public" / f"{name}.atom"
    if not path.exists():
        return []
    return [entry.link for entry in feedparser.parse(path.read_bytes()).entries]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _url(config: Path, path: str) -> str:
    """The URL of a published file on a node's HTTP server (its ``server: {port: N}`` line)."""
    return f"http://127.0.0.1:{port_of(config, 'server')}/{path}"


def etag(config: Path, path: str) -> str:
    request = urllib.request.Request(_url(config, path), method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return str(answer.headers["ETag"])


def test_workers_share_a_big_seeds_poll_and_every_node_publishes_the_same_bytes(
    tmp_path: Path, postgres_url: str, cluster: Cluster
) -> None:
    seeds = tmp_path / "seeds"
    urls = write_articles(seeds, range(25))
    first = node_config(tmp_path / "a", postgres_url, seeds_body(seeds))
    second = node_config(tmp_path / "b", postgres_url, seeds_body(seeds))
    workers = [cluster.start(first, "worker", "--concurrency", "2", name=f"worker{n}") for n in (1, 2)]
    nodes = [cluster.start(config, "run", name="run") for config in (first, second)]

    cluster.wait("the first node's feed", lambda: set(published(first, "rfi-cn")) == urls)
    cluster.wait("the second node's feed", lambda: set(published(second, "rfi-cn")) == urls)

    def differing() -> list[str]:
        ours, theirs = files(first.parent / "public"), files(second.parent / "public")
        return sorted(name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name))

    cluster.wait("the nodes' files alike", lambda: not differing(), detail=lambda: f"(differing: {differing()})")

    stored = entry_urls(postgres_url)
    assert sorted(stored) == sorted(urls)  # each article once, though two workers read the folder
    assert any("25 files to read, in 3 jobs" in worker.log() for worker in workers)
    assert etag(first, "rfi-cn.atom") == etag(second, "rfi-cn.atom")
    assert all(node.alive() for node in nodes)
    metrics = first.parent / "state" / "metrics.prom"
    cluster.wait(
        "the workers in the metrics", lambda: metrics.exists() and "feeder_queue_workers 2.0" in metrics.read_text()
    )
    recorded = json.loads((second.parent / "state" / "status.json").read_text(encoding="utf-8"))
    assert recorded["sources"]["seeds"]["new"] == 25
    assert recorded["entries"] == 25


def test_a_lone_worker_reads_the_chunks_no_other_worker_takes(
    tmp_path: Path, postgres_url: str, cluster: Cluster
) -> None:
    seeds = tmp_path / "seeds"
    urls = write_articles(seeds, range(25))
    config = node_config(tmp_path / "a", postgres_url, seeds_body(seeds))
    worker = cluster.start(config, "worker", "--concurrency", "1", name="worker")
    cluster.start(config, "run", name="run")
    cluster.wait("the feed", lambda: set(published(config, "rfi-cn")) == urls)
    assert "25 files to read, in 3 jobs" in worker.log()
    assert "seeds: 25 new" in worker.log()


def test_a_worker_killed_mid_poll_has_its_poll_run_again_and_nothing_is_lost(
    tmp_path: Path, postgres_url: str, cluster: Cluster
) -> None:
    with serving(Upstream(items=3)) as upstream:
        config = node_config(tmp_path / "a", postgres_url, feed_sources(upstream, ["slow"], "1h"))
        doomed = cluster.start(config, "worker", "--concurrency", "1", name="doomed")
        node = cluster.start(config, "run", name="run")
        cluster.wait("the first poll published", lambda: len(published(config, "news")) == 3)

        upstream.items = 5
        upstream.gates["slow"] = threading.Event()
        with Queue(postgres_url) as queue:
            job = queue.defer_poll("slow")
            cluster.wait("the worker in the middle of the poll", lambda: len(upstream.of("slow")) == 2)
            doomed.kill()
            upstream.gates["slow"].set()
            assert len(published(config, "news")) == 3  # what was published stays
            rescuer = cluster.start(config, "worker", "--concurrency", "1", name="rescuer")
            cluster.wait("the poll run again", lambda: queue.states([job])[job] == "succeeded", timeout=30)

        cluster.wait("the rescued poll published", lambda: len(published(config, "news")) == 5)
        stored = [url.removeprefix(upstream.origin.replace("http:", "https:")) for url in entry_urls(postgres_url)]
        assert sorted(stored) == sorted(upstream.article_paths("slow"))  # each once
        assert len(upstream.of("slow")) == 3  # the first poll, the killed one, the one run again
        assert "no heartbeat" in rescuer.log()
        assert node.alive()


def test_a_worker_asked_to_stop_finishes_its_poll_and_no_other_runs_it_meanwhile(
    tmp_path: Path, postgres_url: str, cluster: Cluster
) -> None:
    with serving(Upstream(items=2)) as upstream:
        upstream.gates["slow"] = threading.Event()
        config = node_config(tmp_path / "a", postgres_url, feed_sources(upstream, ["slow"], "1h"))
        stopping = cluster.start(config, "worker", "--concurrency", "1", name="stopping")
        with Queue(postgres_url) as queue:
            job = queue.defer_poll("slow")
            cluster.wait("the poll under way", lambda: len(upstream.of("slow")) == 1)
            stopping.process.send_signal(signal.SIGTERM)
            other = cluster.start(config, "worker", "--concurrency", "1", name="other")
            time.sleep(6)  # twice stalled_after: its heartbeats go on while it finishes
            assert len(upstream.of("slow")) == 1, other.log()
            upstream.gates["slow"].set()
            assert stopping.process.wait(30) == 0, stopping.log()
            assert queue.states([job]) == {job: "succeeded"}
    assert "no heartbeat" not in other.log()
    assert len(entry_urls(postgres_url)) == 2


def test_two_schedulers_and_three_workers_poll_each_source_once_per_interval(
    tmp_path: Path, postgres_url: str, cluster: Cluster
) -> None:
    names = ["s1", "s2", "s3", "s4"]
    with serving(Upstream(items=2, delay=dict.fromkeys(names, 0.4))) as upstream:
        body = feed_sources(upstream, names, "2s")
        configs = [node_config(tmp_path / node, postgres_url, body) for node in ("a", "b")]
        for n in range(3):
            cluster.start(configs[0], "worker", "--concurrency", "2", name=f"worker{n}")
        for config in configs:
            cluster.start(config, "run", name="run")
        cluster.wait("every source polled", lambda: all(upstream.of(name) for name in names))
        time.sleep(4)  # past the polls every node asks for as it starts
        window = time.monotonic(), time.monotonic() + 20.0  # ten intervals
        time.sleep(21)

    for name in names:
        requests = sorted(upstream.of(name), key=lambda r: r.started)
        for before, after in itertools.pairwise(requests):
            assert after.started >= before.ended, f"{name}: two polls at once"
        inside = [r for r in requests if window[0] <= r.started < window[1]]
        assert 9 <= len(inside) <= 11, f"{name}: {len(inside)} polls in 10 intervals"


def test_postgresql_stopped_for_30s_nodes_keep_serving_and_resume_by_themselves(
    tmp_path: Path, postgres_server: postgres.Server, postgres_url: str, cluster: Cluster
) -> None:
    seeds = tmp_path / "seeds"
    urls = write_articles(seeds, range(2))
    config = node_config(tmp_path / "a", postgres_url, seeds_body(seeds))
    worker = cluster.start(config, "worker", name="worker")
    node = cluster.start(config, "run", name="run")
    cluster.wait("the first publish", lambda: set(published(config, "rfi-cn")) == urls)
    feed = (config.parent / "public" / "rfi-cn.atom").read_bytes()

    postgres_server.pause()
    try:
        ended = time.monotonic() + OUTAGE
        while time.monotonic() < ended:  # the node's HTTP server answers from its folder all along
            with urllib.request.urlopen(_url(config, "rfi-cn.atom"), timeout=5) as answer:
                assert answer.status == 200
                assert answer.read() == feed
            time.sleep(2)
    finally:
        postgres_server.resume()

    urls |= write_articles(seeds, range(2, 3))
    cluster.wait("a publish after the outage", lambda: set(published(config, "rfi-cn")) == urls, timeout=60)
    cluster.wait("the worker back", lambda: "seeds: 1 new" in worker.log())
    log = node.log()
    assert log.count("state database unreachable") == 1, log
    assert log.count("state database reachable again") == 1, log
    assert worker.log().count("job queue unreachable") <= 1, worker.log()  # it may have been idle throughout
    assert "Traceback" not in worker.log() + log
    assert worker.alive()
    assert node.alive()


def test_a_refresh_asked_while_every_worker_is_busy_runs_once_afterwards(
    tmp_path: Path, postgres_url: str, cluster: Cluster
) -> None:
    with serving(Upstream(items=2)) as upstream:
        config = node_config(tmp_path / "a", postgres_url, feed_sources(upstream, ["slow", "other"], "1h"))
        cluster.start(config, "worker", "--concurrency", "1", name="worker")
        cluster.start(config, "run", name="run")
        cluster.wait("the first polls", lambda: len(published(config, "news")) == 4)

        upstream.gates["slow"] = threading.Event()
        busy = cluster.start(config, "refresh", "--source", "slow", name="refresh-slow")
        cluster.wait("the only worker busy", lambda: len(upstream.of("slow")) == 2)
        asked = [cluster.start(config, "refresh", "--source", "other", name=f"refresh-other{n}") for n in (1, 2)]
        time.sleep(2)
        assert len(upstream.of("other")) == 1  # waiting for the worker, not polled alongside
        upstream.gates["slow"].set()
        for child in [busy, *asked]:
            assert child.process.wait(30) == 0, child.log()

    others = sorted(upstream.of("other"), key=lambda r: r.started)
    assert len(others) == 2  # two refreshes asked while it waited: one poll
    assert others[1].started >= upstream.of("slow")[1].ended
    assert all("other: 0 new" in child.log() for child in asked)
