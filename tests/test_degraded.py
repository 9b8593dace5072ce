"""Degradation signals: a source that answers but looks broken is flagged in status and metrics, never silently."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from feeder import status
from feeder.config import Config, parse_config
from feeder.metrics import persisted_exposition
from feeder.models import RefreshReport
from feeder.pipeline import refresh
from feeder.store import Store
from tests.builders import NOW, config_text, seed_text, seeds_folder, write_seed
from tests.prom import key, samples

DATA = Path(__file__).parent / "data" / "rfi"


def record(config: Config, report: RefreshReport, previous: status.Status) -> status.Status:
    return status.record(previous, report, started=NOW, next_polls={}, entries=0)


def test_a_seeds_folder_that_empties_is_degraded_until_files_come_back(config: Config, store: Store) -> None:
    path = write_seed(seeds_folder(config), "001.txt", seed_text())
    assert refresh(config, store, NOW).sources[0].degraded is None
    path.unlink()
    current = record(config, refresh(config, store, NOW), {"sources": {}})
    assert current["sources"]["seeds"]["degraded"] == "the folder holds no seed files any more (it held 1)"
    assert samples(persisted_exposition(current))[key("feeder_source_degraded", source="seeds")] == 1
    assert "  DEGRADED: the folder holds no seed files any more (it held 1)" in status.describe(current)
    assert refresh(config, store, NOW).sources[0].degraded is not None  # still empty: still flagged
    write_seed(seeds_folder(config), "002.txt", seed_text())
    current = record(config, refresh(config, store, NOW), current)
    assert current["sources"]["seeds"]["degraded"] is None
    assert samples(persisted_exposition(current))[key("feeder_source_degraded", source="seeds")] == 0


class _Site(BaseHTTPRequestHandler):
    documents: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.documents.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/rss+xml" if self.path.endswith("/rss") else "text/html")
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[tuple[str, dict[str, bytes]]]:
    documents: dict[str, bytes] = {}
    handler = type("Handler", (_Site,), {"documents": documents})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", documents
    server.shutdown()
    server.server_close()


def rfi_config(tmp_path: Path, origin: str) -> Config:
    source = (
        f"  - {{name: rfi, kind: site, site: rfi-cn, origin: '{origin}', feeds: ['https://www.rfi.fr/cn/rss'],"
        " max_pages: 10}\n"
    )
    text = config_text().replace("feeds:\n", source + "feeds:\n").replace("sources: [seeds]", "sources: [seeds, rfi]")
    (tmp_path / "seeds").mkdir(exist_ok=True)
    return parse_config(text, tmp_path / "config.yaml")


def test_a_feed_that_suddenly_lists_nothing_is_degraded(
    tmp_path: Path, store: Store, site: tuple[str, dict[str, bytes]]
) -> None:
    origin, documents = site
    documents["/cn/rss"] = (DATA / "rss_main.xml").read_bytes()
    config = rfi_config(tmp_path, origin)
    first = refresh(config, store, NOW, sources={"rfi"}).sources[0]
    assert first.new > 0
    assert first.degraded is None
    channel = (DATA / "rss_main.xml").read_text(encoding="utf-8")
    documents["/cn/rss"] = (channel[: channel.index("<item>")] + "</channel></rss>").encode()
    report = refresh(config, store, NOW + timedelta(minutes=15), sources={"rfi"}).sources[0]
    assert report.failure is None
    assert report.degraded is not None
    assert report.degraded.startswith("https://www.rfi.fr/cn/rss lists no items any more (it listed ")


def test_article_pages_without_their_body_are_degraded(
    tmp_path: Path, store: Store, site: tuple[str, dict[str, bytes]]
) -> None:
    origin, documents = site
    documents["/cn/rss"] = (DATA / "rss_main.xml").read_bytes()  # its items' pages answer 404 at first
    config = rfi_config(tmp_path, origin)
    refresh(config, store, NOW, sources={"rfi"})
    no_body = (DATA / "page_no_body.html").read_bytes()
    for url in store.pages_due("rfi", NOW + timedelta(days=1), 100):
        documents[url.removeprefix("https://www.rfi.fr")] = no_body  # a redesign: every page lost its body
    # an hour later: past the first pages' retry wait (5 minutes)
    report = refresh(config, store, NOW + timedelta(hours=1), sources={"rfi"}).sources[0]
    assert report.degraded is not None
    assert "article pages had an empty or unusually short body" in report.degraded
