"""Every feed feeder writes passes the W3C Feed Validation Service with no error and no warning, and every JSON
Feed the JSON Feed 1.1 rules: the bundled seeds (with section feeds, archive pages, both Traditional Chinese
editions and WebSub hubs), every golden seed, the hostile-markup corpus and the golden render files. The live
source's output is checked in tests/test_rfi.py, on its own end-to-end run.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeder.config import parse_config
from feeder.pipeline import refresh, state_database
from feeder.store import Store
from tests.builders import run_feeder, seed_text, write_seed
from tests.feedcheck import check_json_feeds, json_feed_problems, validate_feeds
from tests.test_hostile import VECTORS, vector_body, vector_title, vector_url

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
BASE_URL = "http://127.0.0.1:8080/"


def every_kind_of_feed(seeds: Path) -> str:
    """The bundled config.yaml, over ``seeds``, with everything feeder can write turned on: few entries per feed
    so the history goes to archive pages, both Traditional Chinese editions, a WebSub hub."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("path: seeds", f"path: {seeds}").replace("max_entries: 200", "max_entries: 3")
    text = text.replace("archive_page_entries: 100", "archive_page_entries: 10")
    text = text.replace("variants: []", "variants: [zh-tw, zh-hk]")
    text = text.replace("attempts: 4", "attempts: 1")  # nothing listens there: one refused ping is enough
    return text.replace("hubs: []", "hubs: [http://127.0.0.1:9/hub]")


def build(root: Path, seeds: Path) -> Path:
    config = parse_config(every_kind_of_feed(seeds), root / "config.yaml")
    with Store.open(state_database(config)) as store:
        report = refresh(config, store, datetime.now(UTC))
    assert not report.failed
    return config.output_dir


def test_the_bundled_seeds_give_feeds_every_validator_accepts(tmp_path: Path) -> None:
    public = build(tmp_path, ROOT / "seeds")
    names = {p.relative_to(public).as_posix() for p in public.rglob("*.atom")}
    # what the check covers: the feed, its sections, its archive, its editions and theirs
    assert {"rfi-cn.atom", "rfi-cn-zh-tw.atom", "rfi-cn-zh-hk.atom", "rfi-cn/archive/1.atom"} <= names
    assert {"rfi-cn/中国.atom", "rfi-cn-zh-tw/中国.atom", "rfi-cn-zh-hk/archive/1.atom"} <= names
    validate_feeds(public, BASE_URL)
    assert check_json_feeds(public) == len(names)


def test_every_golden_seed_gives_valid_feeds(tmp_path: Path) -> None:
    public = build(tmp_path, DATA / "seeds")
    assert len(list(public.rglob("*.atom"))) > 30
    validate_feeds(public, BASE_URL)
    check_json_feeds(public)


@pytest.mark.e2e
def test_feeds_made_of_hostile_markup_are_valid(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    for number, vector in enumerate(VECTORS):
        scraped = 1704791701000 + number * 61_000  # one scrape after another, as a scraper writes them
        title, body = vector_title(number, vector), vector_body(number, vector)
        write_seed(
            seeds,
            f"{number:03d}_{number:016x}.txt",
            seed_text(vector_url(number), title, body=body, scraped_ms=scraped),
        )
    (tmp_path / "config.yaml").write_text(every_kind_of_feed(seeds), encoding="utf-8")
    run_feeder(tmp_path / "config.yaml", "refresh")
    validate_feeds(tmp_path / "public", BASE_URL)
    check_json_feeds(tmp_path / "public")


def test_the_golden_render_files_are_valid(tmp_path: Path) -> None:
    shutil.copytree(DATA / "render", tmp_path / "render")
    validate_feeds(tmp_path / "render", BASE_URL)
    check_json_feeds(tmp_path / "render")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"title": "t", "items": []}, "version is None"),
        ({"version": "https://jsonfeed.org/version/1.1", "items": []}, "title is required"),
        ({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [{"id": "a"}]}, "content_html or"),
        ({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [], "next": "x"}, "not a JSON Feed"),
        ({"version": "https://jsonfeed.org/version/1.1", "title": "t", "feed_url": "/x", "items": []}, "absolute URL"),
        ({"version": "https://jsonfeed.org/version/1.1", "title": "t", "hubs": [{"url": "x"}], "items": []}, "hubs[0]"),
        (
            {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [{"id": 1, "content_text": ""}]},
            "id is required",
        ),
        (
            {
                "version": "https://jsonfeed.org/version/1.1",
                "title": "t",
                "items": [{"id": "a", "content_text": "", "date_published": "2024-01-01 10:00"}],
            },
            "not an RFC 3339 date",
        ),
    ],
)
def test_the_json_feed_check_catches_each_rule(document: dict[str, object], problem: str) -> None:
    assert any(problem in found for found in json_feed_problems(document)), json_feed_problems(document)
