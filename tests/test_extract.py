"""extract_page: the main text of any article page, found by trafilatura, with its metadata.

Golden pages: tests/data/pages/extract/<case>.html, realistic pages whose article sits among navigation, share
bars, ads, related stories, comments and a footer; <case>.expected.json says what the article is (its
paragraphs, title, dates, author, image, lead) and which furniture text must not reach the body.
"""

from __future__ import annotations

import contextlib
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import htmldate
import lxml.html
import pytest

from feeder.errors import ParseError
from feeder.normalize import normalize
from feeder.parse.extract import _publication, extract_page
from feeder.rules import UrlRules

PAGES = Path(__file__).parent / "data" / "pages" / "extract"
CASES = sorted(PAGES.glob("*.html"))
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(fragment: str) -> str:
    return " ".join(lxml.html.fragment_fromstring(fragment, create_parent="div").text_content().split())


def _paragraphs(fragment: str) -> list[str]:
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    return [" ".join(p.text_content().split()) for p in root.iter("p")]


def _page(title: str = "Short note", body: str = "") -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


def test_cases_exist_with_their_expectations() -> None:
    assert len(CASES) >= 3
    assert {p.stem for p in CASES} == {p.name.removesuffix(".expected.json") for p in PAGES.glob("*.expected.json")}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_article_and_nothing_around_it(path: Path) -> None:
    expected: dict[str, Any] = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    article = extract_page(path.read_text(encoding="utf-8"), expected["url"], path.name)
    assert _paragraphs(article.body_html) == expected["paragraphs"]
    body_text = _text(article.body_html)
    assert [f for f in expected["furniture"] if f in body_text or f in article.body_html] == []
    assert [m for m in expected["markup"] if m not in article.body_html] == []
    assert "\n" not in article.body_html  # trafilatura's pretty-printing is gone
    actual = {
        "url": article.url,
        "title": article.title,
        "published": _utc(article.published_at),
        "modified": _utc(article.modified_at),
        "author": article.author,
        "image": article.image,
        "lead": article.lead,
        "categories": list(article.extra_categories),
    }
    assert actual == {k: expected[k] for k in actual}
    assert (article.locator, article.fulltext, article.scraped_at, article.audio) == (path.name, True, None, None)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_an_extracted_article_goes_through_normalize(path: Path) -> None:
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    article = extract_page(path.read_text(encoding="utf-8"), expected["url"], path.name)
    host = expected["url"].split("/")[2]
    normalized = normalize(article, urls=UrlRules(frozenset({host})), retrieved_at=NOW, now=NOW)
    assert normalized.fulltext
    assert _paragraphs(normalized.content_html)[-1] == expected["paragraphs"][-1]


def test_links_in_the_text_are_kept_and_resolved_against_the_page() -> None:
    body = (
        "<article><h1>Short note</h1><p>The <b>library</b> opens an hour later on Saturdays from next week, "
        "<a href='/notices/42'>the council said</a>, citing staff shortages at the central branch.</p></article>"
    )
    article = extract_page(_page(body=body), "https://town.example/news/1", "x")
    assert article.body_html == (
        "<p>The <strong>library</strong> opens an hour later on Saturdays from next week, "
        '<a href="https://town.example/notices/42">the council said</a>, citing staff shortages at the central '
        "branch.</p>"
    )  # and the <h1> that repeats the title is not repeated in the body


SENTENCE = (
    "To see which services failed at boot, the quickest route is the journal of the current boot, filtered by "
    "priority, which lists every unit that logged an error."
)


def test_a_code_block_keeps_its_lines_once_in_one_pre() -> None:
    code = "<pre><code>journalctl -b -p err\n  --no-pager\n\n| less</code></pre>"
    body = f"<article><h1>Boot errors</h1><p>{SENTENCE}</p>{code}<p>{SENTENCE}</p></article>"
    article = extract_page(_page("Boot errors", body), "https://town.example/boot", "x")
    assert (
        article.body_html
        == f"<p>{SENTENCE}</p><pre>journalctl -b -p err\n  --no-pager\n\n| less</pre><p>{SENTENCE}</p>"
    )


def test_a_page_whose_only_text_is_its_title_is_a_lead_only_article() -> None:
    article = extract_page(
        _page("Only a heading", "<article><h1>Only a heading</h1></article>"), "https://t.example/", "x"
    )
    assert (article.title, article.body_html, article.fulltext) == ("Only a heading", "", False)


def test_a_page_of_furniture_only_is_a_lead_only_article() -> None:
    body = "<nav><ul><li><a href='/'>Home</a></li><li><a href='/news'>News</a></li></ul></nav>"
    body += "<footer><p>© 2024</p></footer>"
    html = _page("Town news", body).replace("</head>", '<meta name="description" content="All the news."></head>')
    article = extract_page(html, "https://town.example/", "x")
    assert (article.title, article.lead, article.body_html, article.fulltext) == (
        "Town news",
        "All the news.",
        "",
        False,
    )


@pytest.mark.parametrize(
    "html", ["<html><head></head><body><nav><a href='/'>Home</a></nav></body></html>", "<html><body></body></html>"]
)
def test_a_page_without_title_or_text_is_a_parse_error(html: str) -> None:
    html = html.replace("<a href='/'>Home</a>", "<ul><li><a href='/'>Home</a></li><li><a href='/b'>B</a></li></ul>")
    with pytest.raises(ParseError, match="neither a title nor main text"):
        extract_page(html, "https://town.example/", "x")


def test_an_empty_page_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="the page is empty"):
        extract_page(" \n", "https://town.example/", "x")


def test_trafilatura_never_reaches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """htmldate downloads a string that looks like a URL: extract_page hands trafilatura a parsed tree instead."""
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("network access")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for text in ("https://www.coastlinecourier.example/", (PAGES / "news_article.html").read_text(encoding="utf-8")):
        with contextlib.suppress(ParseError):
            extract_page(text, "https://www.coastlinecourier.example/a", "x")
    assert calls == []
    with pytest.raises(ValueError, match="URL couldn't be processed"):  # the guard does stop a download
        htmldate.find_date("https://www.coastlinecourier.example/")
    assert len(calls) == 1


def test_a_page_without_a_marked_up_date_is_undated() -> None:
    body = "<article><h1>Floods</h1>" + "<p>The floods of 2014 reached the first floors on 3 March 2014.</p>" * 3
    assert extract_page(_page("Floods", body), "https://town.example/floods", "x").published_at is None


@pytest.mark.parametrize(
    ("day", "stated", "expected"),
    [
        ("2024-03-05", ["2024-03-05T18:42:00+01:00"], datetime(2024, 3, 5, 17, 42, tzinfo=UTC)),
        ("2024-03-01", ["2024-03-01T07:30:00+08:00"], datetime(2024, 2, 29, 23, 30, tzinfo=UTC)),  # that day, locally
        (
            "2024-03-05",
            ["not a date", "2024-03-05T18:42:00", "2024-03-05T09:00:00Z"],
            datetime(2024, 3, 5, 9, tzinfo=UTC),
        ),
        ("2024-03-05", ["2024-03-04T18:42:00+01:00"], datetime(2024, 3, 5, tzinfo=UTC)),  # another day: midnight
        ("2024-03-05", ["0001-01-01T00:00:00+01:00"], datetime(2024, 3, 5, tzinfo=UTC)),
        ("2024-03-05", [], datetime(2024, 3, 5, tzinfo=UTC)),
        (None, ["2024-03-05T18:42:00+01:00"], None),
        ("2024-02-30", [], None),
    ],
)
def test_publication_time(day: str | None, stated: list[str], expected: datetime | None) -> None:
    assert _publication(day, stated) == expected
