"""Golden article pages: each tests/data/sites/golden/<case>.json names a page, the site whose rules read it and
the URL it was fetched from; read and normalized, the page must give the article in the case's ``expected``
(or ``{"error": "<part of the message>"}``). A case per kind of rule (see each case's ``why``).

``FEEDER_REGENERATE_GOLDEN=1 pytest tests/test_golden_pages.py`` rewrites the expectations; review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feeder.errors import ParseError
from feeder.models import Article
from feeder.normalize import normalize
from feeder.parse import decode_html, parse_page
from feeder.rules import SiteRules
from feeder.sites import load_site
from tests.builders import NOW, RFI

DATA = Path(__file__).parent / "data"
CASES = sorted((DATA / "sites" / "golden").glob("*.json"))
SITES = {"rfi-cn": RFI, "gazette": load_site(DATA / "sites" / "gazette.yaml")}
FETCHED = datetime(2024, 6, 1, tzinfo=UTC)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(case: dict[str, Any], site: SiteRules) -> dict[str, Any]:
    page = decode_html((DATA / case["page"]).read_bytes(), None)
    try:
        parsed = parse_page(page, case["url"], case["page"], site)
        article = normalize(parsed, urls=site.urls, retrieved_at=FETCHED, now=NOW)
    except ParseError as e:
        return {"error": str(e)}
    return _as_json(article)


def _as_json(article: Article) -> dict[str, Any]:
    return {
        "url": article.url,
        "title": article.title,
        "section": article.section,
        "categories": list(article.categories),
        "author": article.author,
        "lead": article.lead,
        "image": article.image,
        "published": _utc(article.published),
        "version_at": _utc(article.version_at),
        "fulltext": article.fulltext,
        "audio": None if article.audio is None else article.audio.url,
        "content_html": article.content_html,
    }


def test_there_is_a_case_for_each_kind_of_rule() -> None:
    assert len(CASES) >= 9


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_page(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    got = _read(case, SITES[case["site"]])
    if os.environ.get("FEEDER_REGENERATE_GOLDEN"):
        path.write_text(json.dumps({**case, "expected": got}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    expected = case["expected"]
    if "error" in expected:
        assert "error" in got, got
        assert expected["error"] in got["error"]
    else:
        assert got == expected
