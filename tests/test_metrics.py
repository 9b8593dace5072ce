"""feeder.metrics: the exposition after real refreshes (seeds, and feeds served on 127.0.0.1), read back with
prometheus_client's parser; what survives a restart and what starts afresh; odd label values; metrics.prom."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from feeder import metrics, status
from feeder.config import Config, load_config
from feeder.metrics import Metrics
from feeder.models import RefreshReport, SourceReport
from feeder.refreshes import refresh_once
from feeder.websub import PingOutcome
from tests.builders import NOW, config_text, free_port, run_feeder, seed_text, write_seed
from tests.prom import key, labelled, samples, types
from tests.webserver import Documents, serving

ATOM = Path(__file__).parent / "data" / "feed_source" / "atom.xml"
NOW_EPOCH = 1_768_478_400
SOURCES = ("seeds", "news", "gone", "down")


@dataclass
class Site:
    config: Config
    documents: Documents


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Seeds, a feed that answers, a feed that is not found and a feed whose server is down, all on 127.0.0.1
    (the failing ones polled last, so the host's backoff after "down" holds up nobody)."""
    with serving(Documents()) as documents:
        documents.put(
            "/atom.xml", "application/atom+xml", ATOM.read_text("utf-8").replace("__ORIGIN__", documents.origin)
        )
        write_seed(tmp_path / "seeds", "001.txt", seed_text())
        (tmp_path / "config.yaml").write_text(
            "output_dir: public\n"
            "state_dir: state\n"
            "base_url: http://127.0.0.1:8080/\n"
            "sources:\n"
            "  - {name: seeds, kind: seeds, path: seeds}\n"
            f"  - {{name: news, kind: feed, url: '{documents.origin}/atom.xml', hosts: [www.rfi.fr]}}\n"
            f"  - {{name: gone, kind: feed, url: '{documents.origin}/missing.xml'}}\n"
            f"  - {{name: down, kind: feed, url: 'http://127.0.0.1:{free_port()}/feed.xml'}}\n"
            "feeds:\n"
            "  - {name: riverside, title: 河畔周刊, sources: [seeds, news], language: zh-cn, sections: true}\n",
            encoding="utf-8",
        )
        yield Site(load_config(tmp_path / "config.yaml"), documents)


def scrape(live: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = live.exposition()
    assert content_type == CONTENT_TYPE_LATEST
    return samples(body)


def polls(found: dict[tuple[str, frozenset[tuple[str, str]]], float], source: str) -> tuple[float, float, float]:
    return tuple(  # type: ignore[return-value]
        found[key("feeder_source_polls_total", source=source, outcome=outcome)]
        for outcome in ("ok", "failed", "waiting")
    )


def test_the_exposition_after_real_refreshes(site: Site) -> None:
    live = Metrics(site.config.state_dir)
    report = refresh_once(site.config, NOW, metrics=live)
    assert [s.failure is None for s in report.sources] == [True, True, False, False]
    body, _ = live.exposition()
    kinds = types(body)
    assert {name: kind for name, kind in kinds.items() if name.startswith("feeder_")} == {
        "feeder_source_polls": "counter",
        "feeder_source_last_poll_timestamp_seconds": "gauge",
        "feeder_source_last_success_timestamp_seconds": "gauge",
        "feeder_source_last_poll_duration_seconds": "gauge",
        "feeder_source_last_poll_entries": "gauge",
        "feeder_source_last_poll_errors": "gauge",
        "feeder_source_up": "gauge",
        "feeder_source_degraded": "gauge",
        "feeder_entries": "gauge",
        "feeder_feed_entries": "gauge",
        "feeder_last_publish_timestamp_seconds": "gauge",
        "feeder_source_poll_duration_seconds": "histogram",
        "feeder_upstream_requests": "counter",
        "feeder_published_files": "counter",
        "feeder_published_bytes": "counter",
    }
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= set(kinds)

    found = scrape(live)
    assert {source: polls(found, source) for source in SOURCES} == {
        "seeds": (1, 0, 0),
        "news": (1, 0, 0),
        "gone": (0, 1, 0),
        "down": (0, 1, 0),
    }
    assert labelled(found, "feeder_upstream_requests_total") == {
        frozenset({("host", "127.0.0.1"), ("status", "200")}): 1,
        frozenset({("host", "127.0.0.1"), ("status", "404")}): 1,
        frozenset({("host", "127.0.0.1"), ("status", "error")}): 1,
    }
    for source in SOURCES:
        assert found[key("feeder_source_poll_duration_seconds_count", source=source)] == 1
        assert found[key("feeder_source_poll_duration_seconds_bucket", source=source, le="+Inf")] == 1
        assert found[key("feeder_source_last_poll_timestamp_seconds", source=source)] == NOW_EPOCH
    assert found[key("feeder_source_poll_duration_seconds_bucket", source="seeds", le="300.0")] == 1
    assert found[key("feeder_source_last_success_timestamp_seconds", source="news")] == NOW_EPOCH
    assert key("feeder_source_last_success_timestamp_seconds", source="gone") not in found  # never read
    assert (found[key("feeder_source_up", source="news")], found[key("feeder_source_up", source="down")]) == (1, 0)
    assert found[key("feeder_source_last_poll_entries", source="news", outcome="new")] == 2
    assert found[key("feeder_entries")] == 3
    assert labelled(found, "feeder_feed_entries") == {
        frozenset({("feed", "riverside")}): 3,
        frozenset({("feed", "riverside/中国")}): 2,  # the seed and the bird survey
    }
    assert found[key("feeder_last_publish_timestamp_seconds")] == NOW_EPOCH
    assert found[key("feeder_published_files_total")] == len(report.written) > 0
    assert found[key("feeder_published_bytes_total")] == sum(path.stat().st_size for path in report.written)
    assert site.documents.take() == ["/atom.xml", "/missing.xml"]

    later = NOW + timedelta(minutes=5)  # after the 60 s the failed connection put 127.0.0.1 off for
    again = refresh_once(site.config, later, metrics=live)
    assert again.written == ()  # nothing new: nothing published
    found = scrape(live)
    assert polls(found, "news") == (2, 0, 0)
    assert polls(found, "down") == (0, 2, 0)
    assert found[key("feeder_upstream_requests_total", host="127.0.0.1", status="200")] == 2
    assert found[key("feeder_source_poll_duration_seconds_count", source="news")] == 2
    assert found[key("feeder_source_last_poll_timestamp_seconds", source="news")] == NOW_EPOCH + 300
    assert found[key("feeder_last_publish_timestamp_seconds")] == NOW_EPOCH  # the last refresh that wrote files
    assert found[key("feeder_published_files_total")] == len(report.written)

    restarted = scrape(Metrics(site.config.state_dir))
    assert polls(restarted, "news") == (2, 0, 0)  # from status.json: it outlives the process
    assert polls(restarted, "down") == (0, 2, 0)
    assert labelled(restarted, "feeder_upstream_requests_total") == {}  # live: starts afresh with the process
    assert key("feeder_source_poll_duration_seconds_count", source="news") not in restarted
    assert restarted[key("feeder_published_files_total")] == 0


def test_metrics_prom_holds_the_persisted_series_alone(site: Site) -> None:
    live = Metrics(site.config.state_dir)
    refresh_once(site.config, NOW, metrics=live)
    text = (site.config.state_dir / metrics.TEXTFILE).read_bytes()
    assert text == metrics.persisted_exposition(status.load(site.config.state_dir))
    kinds = types(text)
    assert "feeder_source_polls" in kinds
    assert not {"process_cpu_seconds", "python_info", "feeder_upstream_requests"} & set(kinds)
    assert "feeder_source_poll_duration_seconds" not in kinds
    found = samples(text)
    assert polls(found, "gone") == (0, 1, 0)
    assert found[key("feeder_feed_entries", feed="riverside")] == 3
    live_found = scrape(live)
    assert all(live_found[k] == v for k, v in found.items())  # the same figures as GET /metrics


def test_pings_by_hub_and_outcome_come_from_websub_json(tmp_path: Path) -> None:
    hub, odd = "https://hub.example/", 'https://hub.example/"quoted"\\path'
    live = Metrics(tmp_path)
    outcomes = [
        PingOutcome(hub, "http://127.0.0.1:8080/a.atom", ok=True, detail="HTTP 204", attempts=1),
        PingOutcome(hub, "http://127.0.0.1:8080/b.atom", ok=False, detail="HTTP 500", attempts=3),
        PingOutcome(odd, "http://127.0.0.1:8080/a.atom", ok=True, detail="HTTP 202", attempts=1),
    ]
    status.record_pings(tmp_path, outcomes, NOW)
    live.observe_pings(outcomes)
    status.record_pings(tmp_path, outcomes[:1], NOW + timedelta(minutes=1))
    live.observe_pings(outcomes[:1])
    for text in (live.exposition()[0], (tmp_path / metrics.TEXTFILE).read_bytes()):
        found = samples(text)
        assert types(text)["feeder_websub_pings"] == "counter"
        assert labelled(found, "feeder_websub_pings_total") == {
            frozenset({("hub", hub), ("outcome", "ok")}): 2,
            frozenset({("hub", hub), ("outcome", "failed")}): 1,
            frozenset({("hub", odd), ("outcome", "ok")}): 1,
            frozenset({("hub", odd), ("outcome", "failed")}): 0,
        }
        assert found[key("feeder_websub_up", hub=hub)] == 1  # its last round went through
        assert found[key("feeder_websub_last_ping_timestamp_seconds", hub=hub)] == NOW_EPOCH + 60
        assert found[key("feeder_websub_last_ping_timestamp_seconds", hub=odd)] == NOW_EPOCH


def test_a_written_file_gone_since_counts_no_bytes(tmp_path: Path) -> None:
    (tmp_path / "kept.atom").write_bytes(b"12345")
    live = Metrics(tmp_path)
    live.observe_refresh(RefreshReport(sources=(), written=(tmp_path / "kept.atom", tmp_path / "gone.atom")))
    found = scrape(live)
    assert (found[key("feeder_published_files_total")], found[key("feeder_published_bytes_total")]) == (2, 5)


def test_no_ping_writes_nothing(tmp_path: Path) -> None:
    Metrics(tmp_path).observe_pings([])
    assert not (tmp_path / metrics.TEXTFILE).exists()


ODD = ['say "hi"', "back\\slash", "line\nfeed", 'all three: \\"\n\\n', "中文 · 標籤", "trailing\\"]


@pytest.mark.parametrize("odd", ODD)
def test_odd_label_values_round_trip_through_the_parser(tmp_path: Path, odd: str) -> None:
    """Source and hub names are restricted by the config, but a host, a feed name or a hub URL may be odd."""
    live = Metrics(tmp_path)
    live.observe_refresh(RefreshReport(sources=(SourceReport(odd, duration=0.5, requests=((odd, "200", 2),)),)))
    found = scrape(live)
    assert found[key("feeder_upstream_requests_total", host=odd, status="200")] == 2
    assert found[key("feeder_source_poll_duration_seconds_count", source=odd)] == 1
    state = {
        "sources": {odd: {"last_poll": "2026-01-15T12:00:00Z", "polls": 3, "failed_polls": 1}},
        "feeds": {odd: 7},
        "websub": {odd: {"last_ping": "2026-01-15T12:00:00Z", "ok": True, "pings": 4, "failed_pings": 0}},
    }
    found = samples(metrics.persisted_exposition(state))
    assert polls(found, odd) == (2, 1, 0)
    assert found[key("feeder_feed_entries", feed=odd)] == 7
    assert found[key("feeder_websub_pings_total", hub=odd, outcome="ok")] == 4


def test_a_status_of_an_older_feeder_or_of_odd_shape_still_gives_metrics(tmp_path: Path) -> None:
    older = {  # before last_success, waiting_polls, feeds and last_publish were recorded
        "updated": "2026-01-15T12:00:00Z",
        "entries": 7,
        "sources": {
            "seeds": {
                "last_poll": "2026-01-15T12:00:00Z",
                "duration_seconds": 1.235,
                **{"new": 2, "updated": 1, "unchanged": 3, "skipped": 1, "errors": 1, "problems": []},
                **{"failure": None, "polls": 5, "failed_polls": 2, "next_poll": "2026-01-15T12:01:00Z"},
            },
            "later": {"next_poll": "2286-11-20T17:46:40Z"},  # scheduled, never polled
            "odd": {"last_poll": "yesterday", "polls": "many", "next_poll": 3},
        },
    }
    (tmp_path / status.STATUS_FILE).write_text(json.dumps(older), encoding="utf-8")
    (tmp_path / status.WEBSUB_FILE).write_text('{"h": {"ok": false, "pings": null}, "x": 1}', encoding="utf-8")
    found = scrape(Metrics(tmp_path))
    assert polls(found, "seeds") == (3, 2, 0)
    assert found[key("feeder_source_last_poll_duration_seconds", source="seeds")] == 1.235
    assert found[key("feeder_source_last_poll_entries", source="seeds", outcome="unchanged")] == 3
    assert found[key("feeder_source_next_poll_timestamp_seconds", source="seeds")] == NOW_EPOCH + 60
    assert found[key("feeder_source_next_poll_timestamp_seconds", source="later")] == 10_000_000_000
    assert key("feeder_source_last_poll_timestamp_seconds", source="later") not in found
    assert key("feeder_source_last_success_timestamp_seconds", source="seeds") not in found
    assert not [labels for (name, labels) in found if ("source", "odd") in labels]  # an unreadable poll time
    assert found[key("feeder_entries")] == 7
    assert key("feeder_last_publish_timestamp_seconds") not in found
    assert labelled(found, "feeder_feed_entries") == {}
    assert found[key("feeder_websub_up", hub="h")] == 0
    assert found[key("feeder_websub_pings_total", hub="h", outcome="ok")] == 0


def test_an_empty_status_has_no_feeder_samples(tmp_path: Path) -> None:
    assert metrics.persisted_exposition({"sources": {}}) == b""
    assert samples(metrics.persisted_exposition({"sources": {}, "entries": 0})) == {key("feeder_entries"): 0}
    found = scrape(Metrics(tmp_path / "no-state-yet"))
    assert not [name for name, _ in found if name.startswith("feeder_") and not name.startswith("feeder_published")]


@pytest.mark.e2e
def test_metrics_prom_written_by_feeder_refresh_parses(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(config_text(), encoding="utf-8")
    write_seed(tmp_path / "seeds", "001.txt", seed_text())
    run_feeder(tmp_path / "config.yaml", "refresh")
    run_feeder(tmp_path / "config.yaml", "refresh")
    text = (tmp_path / "state" / metrics.TEXTFILE).read_text(encoding="utf-8")
    found = samples(text)
    assert polls(found, "seeds") == (2, 0, 0)  # counted across the two runs: from status.json
    assert found[key("feeder_entries")] == 1
    assert found[key("feeder_feed_entries", feed="rfi-cn")] == 1
    assert found[key("feeder_source_up", source="seeds")] == 1
    recorded = status.load(tmp_path / "state")
    published = datetime.fromisoformat(recorded["last_publish"]).timestamp()  # by the real clock
    assert found[key("feeder_last_publish_timestamp_seconds")] == published
    assert "process_" not in text


def test_the_readme_documents_every_metric_with_its_type_and_labels(tmp_path: Path) -> None:
    state = {
        "queue": {"sources": {"seeds": {"waiting": 1, "running": 0, "failed": 0}}, "workers": [{"id": 1}]},
        "entries": 1,
        "last_publish": "2026-01-15T12:00:00Z",
        "feeds": {"rfi-cn": 1},
        "sources": {
            "seeds": {
                "last_poll": "2026-01-15T12:00:00Z",
                "last_success": "2026-01-15T12:00:00Z",
                "next_poll": "2026-01-15T12:01:00Z",
            }
        },
    }
    (tmp_path / status.STATUS_FILE).write_text(json.dumps(state), encoding="utf-8")
    status.record_pings(tmp_path, [PingOutcome("https://hub.example/", "t", ok=True, detail="", attempts=1)], NOW)
    live = Metrics(tmp_path)
    live.observe_refresh(RefreshReport(sources=(SourceReport("seeds", requests=(("h", "200", 1),)),)))
    body, _ = live.exposition()
    exposed = {}
    for family in text_string_to_metric_families(body.decode()):
        if family.name.startswith("feeder_"):
            name = family.name + ("_total" if family.type == "counter" else "")
            labels = {label for sample in family.samples for label in sample.labels if label != "le"}
            exposed[name] = (family.type, labels)
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    documented = {}
    for row in re.findall(r"^\| `(feeder_\w+)` \| (\w+) \|([^|]*)\|", readme, flags=re.MULTILINE):
        documented[row[0]] = (row[1], set(re.findall(r"`(\w+)`", row[2])))
    assert documented == exposed
