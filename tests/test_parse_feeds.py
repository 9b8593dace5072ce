"""parse_feed on every common feed format: RSS 0.91/0.92, RSS 1.0 (RDF), Atom 0.3 and JSON Feed 1.0/1.1.

Golden files: tests/data/feeds/<case>.<xml|json> must give the items of <case>.expected.json, field by field.
The XML cases are also read with feedparser, which must agree on each item's title, link and dates; feedparser
6.0 does not read JSON Feed, so the JSON cases are checked against the spec's fields read with json instead.
(RSS 2.0 and Atom 1.0 are covered by tests/test_parse_rfi.py.)
"""

from __future__ import annotations

import dataclasses
import html
import json
from calendar import timegm
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeder.errors import ParseError
from feeder.models import Enclosure, ParsedArticle
from feeder.normalize import normalize
from feeder.parse import MAX_FEED_BYTES, parse_feed
from feeder.parse.jsonfeed import LEAD_EXCERPT_CHARS
from feeder.text import xml_safe
from tests.builders import rfi_urls

FEEDS = Path(__file__).parent / "data" / "feeds"
CASES = sorted(p for p in FEEDS.iterdir() if not p.name.endswith(".expected.json"))
XML_CASES = [p for p in CASES if p.suffix == ".xml"]
JSON_CASES = [p for p in CASES if p.suffix == ".json"]
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
RFI = "https://www.rfi.fr/cn/x"


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_json(article: ParsedArticle) -> dict[str, Any]:
    return {
        "url": article.url,
        "title": article.title,
        "published": _utc(article.published_at),
        "modified": _utc(article.modified_at),
        "lead": article.lead,
        "image": article.image,
        "author": article.author,
        "categories": list(article.extra_categories),
        "audio": dataclasses.asdict(article.audio) if article.audio else None,
    }


def _read(path: Path) -> list[ParsedArticle]:
    return parse_feed(path.read_bytes(), path.name)


def json_feed(*items: object, **fields: object) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", **fields, "items": items}).encode()


# --- golden files -----------------------------------------------------------------------------------------------


def test_every_format_has_a_case_and_every_case_an_expectation() -> None:
    assert {p.stem for p in CASES} == {"rss091", "rss092", "rss10", "atom03", "jsonfeed10", "jsonfeed11"}
    expectations = {p.name.removesuffix(".expected.json") for p in FEEDS.glob("*.expected.json")}
    assert expectations == {p.stem for p in CASES}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_feed(path: Path) -> None:
    expected = json.loads(path.with_name(f"{path.stem}.expected.json").read_text(encoding="utf-8"))
    articles = _read(path)
    assert [_as_json(a) for a in articles] == expected
    assert all(a.locator == path.name and not a.fulltext and a.body_html == "" for a in articles)
    assert all(a.published_at is None or a.published_at.tzinfo is UTC for a in articles)


def _feedparser_moment(entry: Any, *keys: str) -> str | None:
    """The first of feedparser's parsed dates (a UTC struct_time) as our golden files write dates."""
    parsed = next((entry[k] for k in keys if entry.get(k)), None)
    return None if parsed is None else _utc(datetime.fromtimestamp(timegm(parsed), UTC))


@pytest.mark.parametrize("path", XML_CASES, ids=[p.stem for p in XML_CASES])
def test_feedparser_reads_the_same_titles_links_and_dates(path: Path) -> None:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.version, "feedparser did not recognize the format"
    entries = [e for e in parsed.entries if e.get("title") and e.get("link")]  # what parse_feed skips, it skips
    ours = [_as_json(a) for a in _read(path)]
    assert len(ours) == len(entries) >= 3
    for article, entry in zip(ours, entries, strict=True):
        assert article["title"] == html.unescape(entry["title"])  # feedparser keeps a double escape (&amp;amp;)
        assert article["url"] == entry["link"]
        # feedparser files RSS 1.0's dc:date under "updated"; Atom 0.3's issued is its "published"
        assert article["published"] == _feedparser_moment(entry, "published_parsed", "updated_parsed")
        if path.stem.startswith("atom"):
            assert article["modified"] == _feedparser_moment(entry, "updated_parsed")


@pytest.mark.parametrize("path", JSON_CASES, ids=[p.stem for p in JSON_CASES])
def test_json_feeds_give_what_the_spec_fields_say(path: Path) -> None:
    """url (else an http id), title and the RFC 3339 dates, read straight from the JSON."""
    items = json.loads(path.read_bytes())["items"]
    linked = [i for i in items if i.get("title") and (i.get("url") or i["id"].startswith("http"))]
    ours = _read(path)
    assert len(ours) == len(linked) >= 3
    for article, item in zip(ours, linked, strict=True):
        assert (article.url, article.title) == (item.get("url") or item["id"], item["title"])
        assert article.published_at == datetime.fromisoformat(item["date_published"])
        modified = item.get("date_modified")
        assert article.modified_at == (datetime.fromisoformat(modified) if modified else None)
    assert feedparser.parse(path.read_bytes()).entries == []  # feedparser 6.0 has no JSON Feed reader


# --- RSS 1.0, Atom 0.3 and RSS 0.90 edge cases -------------------------------------------------------------------

RDF = (
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="{ns}"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/">{channel}{items}</rdf:RDF>'
)


def rdf(
    items: str, ns: str = "http://purl.org/rss/1.0/", channel: str = "<channel><title>c</title></channel>"
) -> bytes:
    return RDF.format(ns=ns, channel=channel, items=items).encode()


def test_rss_090_is_read_like_rss_10() -> None:
    item = f"<item><title>Mozilla 0.9 ships</title><link>{RFI}</link></item>"
    (article,) = parse_feed(rdf(item, "http://my.netscape.com/rdf/simple/0.9/"), "rss090.rdf")
    assert (article.url, article.title) == (RFI, "Mozilla 0.9 ships")


def test_an_rss_10_item_without_a_link_is_known_by_its_rdf_about() -> None:
    item = f'<item rdf:about="{RFI}"><title>t</title><dc:date>2024-05-15T10:00:00+09:00</dc:date></item>'
    (article,) = parse_feed(rdf(item), "rss10.rdf")
    assert (article.url, article.published_at) == (RFI, datetime(2024, 5, 15, 1, tzinfo=UTC))


def test_rss_10_items_outside_the_rss_namespace_are_not_items() -> None:
    assert parse_feed(rdf(f'<item xmlns=""><title>t</title><link>{RFI}</link></item>'), "rss10.rdf") == []


def test_an_rdf_document_without_an_rss_channel_is_not_a_feed() -> None:
    foaf = rdf("", channel='<foaf:Person xmlns:foaf="http://xmlns.com/foaf/0.1/"/>')
    with pytest.raises(ParseError, match=r"<rdf:RDF> has no RSS 1.0 <channel>"):
        parse_feed(foaf, "foaf.rdf")


@pytest.mark.parametrize(
    ("dates", "published", "modified"),
    [
        ("<issued>2005-11-21T16:30:00</issued><created>2005-11-21T15:30:00Z</created>", (21, 15, 30), None),
        ("<issued>2005-11-21</issued><modified>2005-11-22T08:00:00+01:00</modified>", (21, 0, 0), (22, 7, 0)),
        ("<modified>2005-11-22T07:00:00Z</modified>", (22, 7, 0), (22, 7, 0)),
    ],
)
def test_atom_03_dates(dates: str, published: tuple[int, int, int], modified: tuple[int, int, int] | None) -> None:
    """issued without an offset says no time: created (or modified) dates the entry; a day alone is midnight UTC."""
    atom = (
        '<feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry><title>t</title>'
        f'<link rel="alternate" type="text/html" href="{RFI}"/>{dates}</entry></feed>'
    ).encode()
    (article,) = parse_feed(atom, "atom03.xml")
    assert article.published_at == datetime(2005, 11, *published, tzinfo=UTC)
    assert article.modified_at == (datetime(2005, 11, *modified, tzinfo=UTC) if modified else None)


def test_rss_20_items_take_dc_date_and_dc_subject_too() -> None:
    feed = (
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><item><title>t</title>'
        f"<link>{RFI}</link><dc:date>2024-01-09T10:05:12+01:00</dc:date><category>中国</category>"
        "<dc:subject>环境</dc:subject><dc:subject>中国</dc:subject></item></channel></rss>"
    ).encode()
    (article,) = parse_feed(feed, "dc.xml")
    assert article.published_at == datetime(2024, 1, 9, 9, 5, 12, tzinfo=UTC)
    assert article.extra_categories == ("中国", "环境")


@pytest.mark.parametrize("root", ["<opml version='2.0'/>", "<rss:rss xmlns:rss='urn:x'/>", "<feed/>"])
def test_another_xml_document_names_what_a_feed_root_is(root: str) -> None:
    with pytest.raises(ParseError, match=r"the root element <\w+> is neither RSS, RDF \(RSS 1.0\) nor Atom"):
        parse_feed(root.encode(), "x.xml")


# --- JSON Feed: detection, fields, hostile documents -----------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "content_type"),
    [
        (b"", None),
        (b"\xef\xbb\xbf \r\n\t", None),
        (b"", "application/feed+json; charset=utf-8"),
        (b"", "text/plain"),  # the first byte decides whatever the header says
    ],
)
def test_json_feed_is_recognized_by_its_first_byte(prefix: bytes, content_type: str | None) -> None:
    (article,) = parse_feed(prefix + json_feed({"url": RFI, "title": "t"}), "f.json", content_type)
    assert article.url == RFI


def test_an_xml_feed_served_as_json_is_still_read_as_xml() -> None:
    rss = f'<rss version="2.0"><channel><item><title>t</title><link>{RFI}</link></item></channel></rss>'
    assert len(parse_feed(rss.encode(), "f", "application/json")) == 1


def test_a_json_content_type_sends_a_body_that_is_not_json_to_the_json_reader() -> None:
    with pytest.raises(ParseError, match="feed is not valid JSON"):
        parse_feed(b"\x00\x01 not json", "f", "application/feed+json")


@pytest.mark.parametrize(
    "document",
    [
        b'{"title": "no version", "items": []}',
        b'{"version": "https://example.org/version/1", "items": []}',
        b'{"version": 1.1, "items": []}',
        b'{"@context": "https://schema.org", "@type": "NewsArticle", "headline": "JSON-LD"}',
        b'[{"version": "https://jsonfeed.org/version/1.1", "items": []}]',
        b"[]",
    ],
)
def test_json_that_is_not_a_json_feed_is_refused_with_a_clear_reason(document: bytes) -> None:
    with pytest.raises(ParseError, match=r'JSON document is not a JSON Feed: it has no "version" of https://jsonfeed'):
        parse_feed(document, "x.json")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "title": "t"}', 'JSON Feed has no "items" array'),
        (b'{"version": "https://jsonfeed.org/version/1", "items": {"a": 1}}', 'JSON Feed has no "items" array'),
        (b'{"version": "https://jsonfeed.org/version/1", "items": [', "feed is not valid JSON: "),
        (b'{"version": "https://jsonfeed.org/version/1", "items": []} trailing', "feed is not valid JSON: Extra data"),
        (b'{"version": "https://jsonfeed.org/\xff"}', "feed is not valid JSON: "),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "feed is not valid JSON: maximum recursion depth"),
    ],
)
def test_broken_json_feeds_are_parse_errors(document: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_feed(document, "x.json")


def test_items_without_url_or_title_are_skipped_and_an_http_id_stands_for_the_url() -> None:
    document = json_feed(
        {"id": "1", "title": "no url, id not a URL"},
        {"id": "tag:x,2024:2", "title": "no url, tag id"},
        {"id": RFI, "title": "no url, http id"},
        {"url": RFI + "/4", "content_text": "no title (a microblog post)"},
        {"url": RFI + "/5", "title": "   "},
        {"url": 5, "id": ["x"], "title": "a url that is not a string"},
        "not an object",
        None,
    )
    (article,) = parse_feed(document, "f.json")
    assert (article.url, article.title) == (RFI, "no url, http id")


def test_a_feed_whose_items_all_lack_a_url_gives_no_article() -> None:
    assert parse_feed(json_feed({"id": "a", "title": "x"}, {"id": "b", "title": "y"}), "f.json") == []


def test_values_of_the_wrong_type_read_as_absent() -> None:
    item = {
        "url": RFI,
        "title": "t",
        "summary": 7,
        "content_text": ["x"],
        "image": {"url": "x"},
        "banner_image": None,
        "date_published": 1704791112,
        "date_modified": "yesterday",
        "authors": "Ann",
        "author": ["Bob"],
        "tags": "a,b",
        "attachments": {"url": "https://a.example/a.mp3", "mime_type": "audio/mpeg"},
    }
    (article,) = parse_feed(json_feed(item), "f.json")
    assert article == ParsedArticle(
        locator="f.json", url=RFI, title="t", scraped_at=None, published_at=None, lead="", image=None,
        body_html="", fulltext=False,
    )  # fmt: skip


def mp3(**fields: object) -> dict[str, object]:
    return {"url": "https://a.example/a.mp3", "mime_type": "audio/mpeg", **fields}


@pytest.mark.parametrize(
    ("attachment", "audio"),
    [
        (mp3(mime_type="AUDIO/MPEG", size_in_bytes="12", duration_in_seconds=0.4), ("audio/mpeg", 12, None)),
        (mp3(size_in_bytes=-1, duration_in_seconds=True), ("audio/mpeg", None, None)),
        (mp3(mime_type="audio/ogg", size_in_bytes=1.5, duration_in_seconds=1e300), ("audio/ogg", None, None)),
        (mp3(duration_in_seconds=89.5), ("audio/mpeg", None, 90)),
        (mp3(url="https://a.example/a.mp4", mime_type="video/mp4"), None),
        (mp3(url=""), None),
    ],
)
def test_audio_attachments(attachment: dict[str, object], audio: tuple[str, int | None, int | None] | None) -> None:
    (article,) = parse_feed(json_feed({"url": RFI, "title": "t", "attachments": [attachment]}), "f.json")
    expected = None if audio is None else Enclosure(str(attachment["url"]), *audio)
    assert article.audio == expected


def test_an_item_without_authors_has_the_feeds_and_a_11_feed_may_still_say_author() -> None:
    document = json_feed(
        {"url": RFI + "/1", "title": "a"},
        {"url": RFI + "/2", "title": "b", "authors": [], "author": {"name": "Bob"}},
        {"url": RFI + "/3", "title": "c", "authors": [{"name": "Cy"}, {"url": "nameless"}, {"name": "Di"}]},
        authors=[{"name": "Ann"}],
    )
    assert [a.author for a in parse_feed(document, "f.json")] == ["Ann", "Bob", "Cy、Di"]


@pytest.mark.parametrize(
    ("item", "lead"),
    [
        ({"summary": " <b>Short</b> &amp; plain ", "content_text": "ignored"}, "Short & plain"),
        ({"content_html": "<p>One</p><script>x()</script><p>two &lt;3</p>"}, "One two <3"),
        ({"content_text": "a <b> is not a tag here", "content_html": "<p>ignored</p>"}, "a <b> is not a tag here"),
        ({"content_text": "word " * 100}, ("word " * 60).strip() + "…"),
        ({"content_text": "长" * (LEAD_EXCERPT_CHARS + 1)}, "长" * LEAD_EXCERPT_CHARS + "…"),
        ({"content_text": "长" * LEAD_EXCERPT_CHARS}, "长" * LEAD_EXCERPT_CHARS),
    ],
)
def test_the_lead_is_the_summary_else_an_excerpt_of_the_content(item: dict[str, str], lead: str) -> None:
    (article,) = parse_feed(json_feed({"url": RFI, "title": "t", **item}), "f.json")
    assert article.lead == lead


def test_a_json_feed_over_the_cap_is_refused_before_parsing() -> None:
    document = json_feed({"url": RFI, "title": "t"})
    padded = document[:-1] + b" " * (MAX_FEED_BYTES - len(document)) + b"}"
    assert len(parse_feed(padded, "cap.json")) == 1
    with pytest.raises(ParseError, match=f"over the {MAX_FEED_BYTES}-byte cap"):
        parse_feed(padded + b" ", "cap.json")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=20), children, max_size=3),
    max_leaves=8,
)
FIELDS = (
    *("id", "url", "title", "summary", "content_text", "content_html", "image", "banner_image"),
    *("date_published", "date_modified", "authors", "author", "tags", "attachments"),
)


@settings(
    derandomize=True, database=None, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | st.text()), st.booleans())
def test_any_json_in_any_field_gives_articles_or_a_parse_error(item: dict[str, object], linked: bool) -> None:
    if linked:
        item = {**item, "url": RFI, "title": str(item.get("title"))}
    try:
        articles = parse_feed(json.dumps({"version": "https://jsonfeed.org/version/1", "items": [item]}).encode(), "f")
    except ParseError:
        return
    for article in articles:
        try:
            normalized = normalize(article, urls=rfi_urls(), retrieved_at=NOW, now=NOW)
        except ParseError:
            continue
        for text in (normalized.title, normalized.lead, normalized.content_html, normalized.author or ""):
            assert xml_safe(text) == text
