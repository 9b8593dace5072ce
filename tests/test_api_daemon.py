"""End-to-end: the control API of a real ``feeder run`` (a subprocess on free ports, see tests/test_service.py),
driven over HTTP with and without the token: every endpoint and its 200/202/401/404/405/413/503 answers, a
refresh asked for while a slow poll runs (it runs once, after that poll), the token kept across a restart, and
SIGHUP and SIGTERM still obeyed with uvicorn in the daemon's loop."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from feeder.api import CSP, MAX_BODY_BYTES
from feeder.locks import taken
from feeder.metrics import EXPOSITION_TYPE
from tests.apiserver import Reply, request
from tests.prom import key, samples
from tests.test_service import (
    BULK_FILES,
    FEED,
    SIGHUP_LINE,
    Daemon,
    Site,
    feeder,
    fetch,
    fill_with_bulk,
    make_site,
    wait_until,
)

pytestmark = pytest.mark.e2e


def api(site: Site, method: str, target: str, *, token: str | None = "", body: bytes | None = None) -> Reply:
    """A request to the daemon's control API; the site's own token unless another (or None) is given."""
    return request(site.control_port, method, target, token=site.token if token == "" else token, body=body)


@pytest.fixture
def launch() -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(site: Site, *, polled: bool = True, name: str = "daemon") -> Daemon:
        daemon = Daemon(site, f"{name}-{len(started)}")
        started.append(daemon)
        return daemon.wait_ready(polled=polled)

    yield start
    for daemon in started:
        daemon.terminate()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon over three articles polled once a day, shared by the tests that only read."""
    daemon = Daemon(make_site(tmp_path_factory.mktemp("api"), interval="1d"))
    try:
        yield daemon.wait_ready()
    finally:
        daemon.terminate()


def until_finished(site: Site, ident: str) -> dict[str, Any]:
    reply = api(site, "GET", f"/api/refresh/{ident}?wait=20")
    assert reply.status == 200, reply
    asked: dict[str, Any] = reply.json()
    assert asked["state"] in ("done", "failed"), asked
    return asked


# Every endpoint -------------------------------------------------------------------------------------------------------

API = [
    ("GET", "/api/status"),
    ("GET", "/api/sources"),
    ("GET", "/api/feeds"),
    ("POST", "/api/refresh"),
    ("POST", "/api/refresh/seeds"),
    ("GET", "/api/refresh/0123456789abcdef"),
]


@pytest.mark.parametrize(("method", "target"), API)
def test_every_api_endpoint_refuses_a_missing_or_wrong_token(running: Daemon, method: str, target: str) -> None:
    site = running.site
    for token in (None, "0" * 64, site.token + "0"):
        reply = api(site, method, target, token=token)
        assert reply.status == 401, (target, token)
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert "error" in reply.json()
    assert "requested over the control API" not in running.log()


def test_status_sources_and_feeds(running: Daemon) -> None:
    site = running.site
    status = api(site, "GET", "/api/status")
    assert status.status == 200
    assert status.json() == json.loads(feeder(site, "status", "--json").stdout)  # what feeder status --json prints
    assert status.json()["sources"]["seeds"]["new"] == 3

    [seeds] = api(site, "GET", "/api/sources").json()["sources"]
    assert (seeds["name"], seeds["kind"], seeds["interval"], seeds["interval_seconds"]) == (
        "seeds",
        "seeds",
        "1d",
        86400,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", seeds["last_poll"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", seeds["next_poll"])
    assert (seeds["degraded"], seeds["failure"], seeds["errors"]) == (None, None, 0)

    [feed] = api(site, "GET", "/api/feeds").json()["feeds"]
    assert (feed["name"], feed["title"], feed["edition"], feed["entries"]) == (FEED, "RFI 中文", None, 3)
    for kind in ("atom", "rss", "json"):
        assert feed["urls"][kind] == site.url(f"{FEED}.{kind}")
        assert feed["bytes"][kind] == (site.public / f"{FEED}.{kind}").stat().st_size
        assert fetch(site, f"/{FEED}.{kind}").status == 200  # the URLs it gives are served
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", feed["last_change"])


def test_health_metrics_and_the_page_need_no_token(running: Daemon) -> None:
    site = running.site
    health = api(site, "GET", "/healthz", token=None)
    assert (health.status, health.json()) == (200, {"status": "ok"})
    metrics = api(site, "GET", "/metrics", token=None)
    assert metrics.status == 200
    assert metrics.headers["content-type"] == EXPOSITION_TYPE
    found = samples(metrics.body)  # read back with prometheus_client's parser
    assert found[key("feeder_source_up", source="seeds")] == 1
    assert found[key("feeder_entries")] == 3
    assert found[key("feeder_source_polls_total", source="seeds", outcome="ok")] >= 1
    assert key("process_resident_memory_bytes") in found  # the daemon's own process metrics
    page = api(site, "GET", "/", token=None)
    assert (page.status, page.headers["content-security-policy"]) == (200, CSP)
    assert site.token not in page.body.decode()
    assets = re.findall(r'(?:src|href)="(static/[^"]+)"', page.body.decode())
    assert len(assets) == 2
    for asset in assets:
        assert api(site, "GET", "/" + asset, token=None).status == 200


BAD_BODY = 'the body must be empty or JSON: {"sources": ["NAME", ...]}'


def test_errors_are_json_with_their_status(running: Daemon) -> None:
    site = running.site
    cases = [
        ("POST", "/api/refresh/nope", None, 404, "unknown source(s): nope"),
        ("GET", "/api/refresh/0123456789abcdef", None, 404, "no such refresh request (unknown, or long finished)"),
        ("GET", "/api/nothing", None, 404, "Not Found"),
        ("DELETE", "/api/status", None, 405, "Method Not Allowed"),
        ("GET", "/api/refresh", None, 405, "Method Not Allowed"),
        ("PUT", "/healthz", None, 405, "Method Not Allowed"),
        ("POST", "/api/refresh", b" " * (MAX_BODY_BYTES + 1), 413, f"the request body is over {MAX_BODY_BYTES} bytes"),
        (
            "POST",
            "/api/refresh",
            b'{"sources": "seeds"}',
            400,
            'the body must be empty or JSON: {"sources": ["NAME", ...]}',
        ),
    ]
    for method, target, body, status, message in cases:
        reply = api(site, method, target, body=body)
        assert (reply.status, reply.json()) == (status, {"error": message}), (method, target)
    assert "requested over the control API" not in running.log()


def test_a_refresh_is_accepted_and_followed_until_done(running: Daemon) -> None:
    site = running.site
    polls = len(running.polls())
    accepted = api(site, "POST", "/api/refresh/seeds")
    assert accepted.status == 202
    asked = accepted.json()
    assert accepted.headers["location"] == f"/api/refresh/{asked['id']}"
    assert (asked["sources"], asked["report"], asked["error"]) == (["seeds"], None, None)
    done = until_finished(site, asked["id"])
    assert done["state"] == "done"
    [report] = done["report"]["sources"]
    assert (report["source"], report["new"], report["skipped"]) == ("seeds", 0, 3)
    wait_until("the poll logged", lambda: len(running.polls()) == polls + 1, 5, running)
    assert f"refresh of seeds requested over the control API ({asked['id']})" in running.log()
    assert api(site, "GET", f"/api/refresh/{asked['id']}").json() == done  # still known afterwards


# The queue ------------------------------------------------------------------------------------------------------------


def test_refreshes_asked_over_http_during_a_slow_poll_run_once_after_it(
    tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    site = make_site(tmp_path, articles=0, interval="1d")  # no timed poll joins in
    fill_with_bulk(site)
    daemon = launch(site, polled=False)
    asked = [api(site, "POST", "/api/refresh/seeds") for _ in range(3)]
    assert daemon.polls() == [], "the first poll ended before the requests: make it slower"
    assert [reply.status for reply in asked] == [202, 202, 202]
    assert [reply.json()["state"] for reply in asked] == ["queued", "queued", "queued"]
    ids = [reply.json()["id"] for reply in asked]

    seen = [api(site, "GET", f"/api/refresh/{ids[0]}").json()["state"]]
    while seen[-1] not in ("done", "failed"):
        time.sleep(0.01)
        seen.append(api(site, "GET", f"/api/refresh/{ids[0]}").json()["state"])
    states = [state for n, state in enumerate(seen) if n == 0 or state != seen[n - 1]]
    assert states in (["queued", "running", "done"], ["queued", "done"]), seen
    print(f"\nstates of a refresh asked for during a slow poll: {' → '.join(states)}")
    reports = [until_finished(site, ident)["report"] for ident in ids]
    assert reports[1] == reports[0] == reports[2]  # one poll answered all three
    assert f"{BULK_FILES} skipped" in daemon.polls()[-1]

    time.sleep(1.5)  # a third poll of 3000 unchanged files would show by now
    polls = daemon.polls()
    assert len(polls) == 2, "\n".join(polls)
    assert f"seeds: {BULK_FILES} new," in polls[0]
    [seeds] = api(site, "GET", "/api/sources").json()["sources"]
    assert seeds["polls"] == 2


# Health ---------------------------------------------------------------------------------------------------------------


def test_healthz_is_503_while_publishing_fails_and_200_once_it_works(
    tmp_path: Path, launch: Callable[..., Daemon]
) -> None:
    site = make_site(tmp_path, interval="1d")
    site.public.write_text("a file where the output folder should be", encoding="utf-8")
    daemon = launch(site, polled=False)
    wait_until("the failed refresh", lambda: api(site, "GET", "/healthz", token=None).status == 503, 15, daemon)
    reply = api(site, "GET", "/healthz", token=None)
    assert reply.json()["error"].startswith("refresh of seeds failed: "), reply.json()

    failed = until_finished(site, api(site, "POST", "/api/refresh").json()["id"])
    assert failed["state"] == "failed"
    assert failed["report"] is None
    assert failed["error"] in reply.json()["error"]

    site.public.unlink()
    assert until_finished(site, api(site, "POST", "/api/refresh").json()["id"])["state"] == "done"
    assert (api(site, "GET", "/healthz").status, api(site, "GET", "/healthz").json()) == (200, {"status": "ok"})


# Restarts and signals -------------------------------------------------------------------------------------------------


def test_the_token_survives_a_restart_and_signals_still_work(tmp_path: Path, launch: Callable[..., Daemon]) -> None:
    site = make_site(tmp_path, interval="1d")
    daemon = launch(site)
    token = site.token
    assert api(site, "GET", "/api/status").status == 200
    polls = len(daemon.polls())

    daemon.signal(signal.SIGHUP)  # uvicorn must not have taken the signals from the daemon's loop
    wait_until("the SIGHUP poll", lambda: len(daemon.polls()) == polls + 1, 10, daemon)
    assert SIGHUP_LINE in daemon.log()
    assert api(site, "GET", "/api/sources").json()["sources"][0]["polls"] == polls + 1

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert not site.control_answers()
    assert not daemon.answers()
    assert "Traceback" not in daemon.log()
    assert daemon.lines()[-1].endswith("INFO stopping")

    launch(site, name="restarted")
    assert site.token == token
    assert api(site, "GET", "/api/status", token=token).status == 200  # a tab or script keeps working


def test_a_control_port_in_use_stops_the_start_with_exit_8(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", site.control_port))
        busy.listen()
        result = feeder(site, "run", expect=8, timeout=30)
    [line] = result.stderr.splitlines()
    assert line.startswith(f"feeder: control API: cannot listen on 127.0.0.1:{site.control_port}: "), line
    assert not taken(site.state / "daemon.lock")
