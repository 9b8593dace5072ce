"""Golden seed files: tests/data/seeds/<case>.txt parsed and normalized must give <case>.expected.json.

Each case holds one quirk of real seed directories (see seeds/FORMAT.md). An expected file is either the
article a feed reader must see, or {"error": "<part of the ParseError message>"}. A very long article may
store the length, SHA-256 and paragraph count of its content instead of the content itself.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feeder.errors import ParseError
from feeder.models import Article, RawDocument
from feeder.normalize import normalize
from feeder.parse import parse_seed
from tests.builders import NOW, RFI

SEEDS = Path(__file__).parent / "data" / "seeds"
RETRIEVED = datetime(2024, 6, 1, tzinfo=UTC)
CASES = sorted(SEEDS.glob("*.txt"))
ARTICLE_KEYS = ("url", "title", "section", "categories", "lead", "image", "published", "version_at")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(path: Path) -> Article:
    document = RawDocument(source="seeds", locator=path.stem, content=path.read_bytes(), retrieved_at=RETRIEVED)
    return normalize(parse_seed(document, RFI), urls=RFI.urls, retrieved_at=RETRIEVED, now=NOW)


def _as_json(article: Article) -> dict[str, Any]:
    return {
        "url": article.url,
        "title": article.title,
        "section": article.section,
        "categories": list(article.categories),
        "lead": article.lead,
        "image": article.image,
        "published": _utc(article.published),
        "version_at": _utc(article.version_at),
        "content_html": article.content_html,
    }


def test_cases_exist() -> None:
    assert len(CASES) >= 30


def test_every_input_has_an_expectation_and_every_expectation_an_input() -> None:
    inputs = {p.name.removesuffix(".txt") for p in SEEDS.glob("*.txt")}
    expectations = {p.name.removesuffix(".expected.json") for p in SEEDS.glob("*.expected.json")}
    assert inputs == expectations
    strays = {p.name for p in SEEDS.iterdir()} - {f"{n}.txt" for n in inputs} - {f"{n}.expected.json" for n in inputs}
    assert not strays


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_seed(path: Path) -> None:
    expected: dict[str, Any] = json.loads(path.with_name(f"{path.stem}.expected.json").read_text(encoding="utf-8"))
    if "error" in expected:
        with pytest.raises(ParseError) as caught:
            _run(path)
        assert expected["error"] in str(caught.value)
        return
    actual = _as_json(_run(path))
    if "content_html_sha256" in expected:
        content = actual.pop("content_html")
        assert {k: actual[k] for k in ARTICLE_KEYS} == {k: expected[k] for k in ARTICLE_KEYS}
        assert content.count("<p>") == expected["content_html_paragraphs"]
        assert len(content) == expected["content_html_length"]
        assert hashlib.sha256(content.encode("utf-8")).hexdigest() == expected["content_html_sha256"]
    else:
        assert actual == expected


def test_very_long_article_keeps_every_paragraph_in_order() -> None:
    content = _run(SEEDS / "very_long.txt").content_html
    positions = [content.find(f"<p>第{i}段：") for i in range(1, 1021)]
    assert -1 not in positions
    assert positions == sorted(positions)
    assert content.endswith("分析人士指出，这场辩论可能持续数周之久。</p>")


@pytest.mark.parametrize(
    "case",
    ["url_http", "url_raw_chinese_path", "url_lowercase_hex", "url_tracking", "url_fragment", "url_trailing_slash"],
)
def test_every_url_spelling_is_the_same_entry(case: str) -> None:
    reference = _run(SEEDS / f"{case}.txt")
    canonical = _run(SEEDS / "url_tracking.txt")
    assert reference.url == canonical.url
    assert reference.content_hash == canonical.content_hash


def test_the_real_seed_is_unchanged_by_crlf_and_bom() -> None:
    data = (SEEDS / "real_rfi.txt").read_bytes()
    variants = [data, data.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + data]
    articles = [
        normalize(
            parse_seed(RawDocument(source="seeds", locator="real", content=v, retrieved_at=RETRIEVED), RFI),
            urls=RFI.urls,
            retrieved_at=RETRIEVED,
            now=NOW,
        )
        for v in variants
    ]
    assert len(set(articles)) == 1
