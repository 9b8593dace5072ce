"""Rendering: byte-stable Atom/RSS/JSON that feed readers accept, index.html and OPML."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import feedparser
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feeder import render_json
from feeder.config import FeedConfig
from feeder.models import Enclosure, Entry, FeedDocument, FeedInfo
from feeder.render import render_document, render_feed, render_index, render_opml

GOLDEN = Path(__file__).parent / "data" / "render"
BASE = "http://127.0.0.1:8080/"
FEED = FeedConfig(
    name="rfi-cn", title="RFI 中文", description="测试", sources=("seeds",), language="zh-cn", author="RFI"
)
T0 = datetime(2024, 1, 9, 9, 5, tzinfo=UTC)


def entries() -> list[Entry]:
    return [
        Entry(
            url="https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240110-b",
            title="第二篇 & <新闻>",
            section="中国",
            categories=("中国",),
            author=None,
            lead="导语二",
            image="https://s.rfi.fr/media/display/x/w:1280/p:16x9/b.jpg",
            content_html='<figure><img src="https://s.rfi.fr/b.jpg" alt=""></figure><p>正文二</p>',
            published=T0 + timedelta(days=1),
            updated=T0 + timedelta(days=1, hours=2),
        ),
        Entry(
            url="https://www.rfi.fr/cn/%E4%B8%93%E6%A0%8F%E6%A3%80%E7%B4%A2/%E6%B3%95%E5%9B%BD%E6%8A%A5%E6%91%98/20240109-a",
            title="第一篇",
            section="专栏检索",
            categories=("专栏检索", "法国报摘"),
            author="某记者",
            lead="",
            image=None,
            content_html="<p>正文一</p>",
            published=T0,
            updated=T0 + timedelta(minutes=10),
        ),
    ]


def rendered() -> dict[str, bytes]:
    items = entries()
    return render_feed(FEED, items, base_url=BASE, updated=max(e.updated for e in items), ttl_minutes=15)


@pytest.mark.parametrize("name", ["rfi-cn.atom", "rfi-cn.rss", "rfi-cn.json"])
def test_output_matches_the_golden_file(name: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("FEEDER_REGENERATE_GOLDEN"):
        golden.write_bytes(rendered()[name])
    assert rendered()[name] == golden.read_bytes()


def test_rendering_twice_gives_identical_bytes() -> None:
    assert rendered() == rendered()


@pytest.mark.parametrize("name", ["rfi-cn.atom", "rfi-cn.rss"])
def test_feedparser_reads_every_field(name: str) -> None:
    parsed = feedparser.parse(rendered()[name])
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.feed.title == "RFI 中文"
    first, second = parsed.entries
    assert first.id == first.link == entries()[0].url
    assert first.title == "第二篇 & <新闻>"
    assert first.published_parsed[:5] == (2024, 1, 10, 9, 5)
    assert first.summary == "导语二"
    assert "<p>正文二</p>" in first.content[0].value
    assert first.media_thumbnail[0]["url"] == entries()[0].image
    assert [t.term for t in second.tags] == ["专栏检索", "法国报摘"]
    assert second.author == "某记者"
    assert first.author == "RFI"


def test_atom_and_rss_have_distinct_self_links_and_the_newest_updated() -> None:
    files = rendered()
    atom = feedparser.parse(files["rfi-cn.atom"]).feed
    rss = feedparser.parse(files["rfi-cn.rss"]).feed
    assert {link.href for link in atom.links if link.rel == "self"} == {BASE + "rfi-cn.atom"}
    assert {link.href for link in rss.links if link.rel == "self"} == {BASE + "rfi-cn.rss"}
    assert atom.updated == "2024-01-10T11:05:00+00:00"
    assert b"<lastBuildDate>Wed, 10 Jan 2024 11:05:00 +0000</lastBuildDate>" in files["rfi-cn.rss"]
    assert b"<ttl>15</ttl>" in files["rfi-cn.rss"]


def test_an_empty_feed_is_valid_and_dated_by_its_fallback() -> None:
    files = render_feed(FEED, [], base_url=BASE, updated=T0, ttl_minutes=1)
    parsed = feedparser.parse(files["rfi-cn.atom"])
    assert parsed.bozo == 0
    assert parsed.entries == []
    assert parsed.feed.updated == "2024-01-09T09:05:00+00:00"


def test_characters_xml_cannot_carry_are_dropped() -> None:
    item = entries()[1]
    broken = Entry(
        url=item.url,
        title="坏\x00字\x1f符\ufffe",
        section=None,
        categories=("类\x0b别",),
        author=None,
        lead="导\x08语",
        image=None,
        content_html="<p>正\x01文</p>",
        published=T0,
        updated=T0,
    )
    files = render_feed(FEED, [broken], base_url=BASE, updated=T0, ttl_minutes=1)
    for name in ("rfi-cn.atom", "rfi-cn.rss"):
        ElementTree.fromstring(files[name])  # well-formed
        assert feedparser.parse(files[name]).entries[0].title == "坏字符"


def test_json_feed_shape() -> None:
    document = json.loads(rendered()["rfi-cn.json"])
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == BASE + "rfi-cn.json"
    first, second = document["items"]
    assert first["id"] == first["url"] == entries()[0].url
    assert first["date_published"] == "2024-01-10T09:05:00Z"
    assert first["image"] == entries()[0].image
    assert "summary" not in second
    assert second["tags"] == ["专栏检索", "法国报摘"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
@example({"title": "标题\ud800", "items": [{"n": 1}]})  # a lone surrogate: the standard library's own path
def test_the_json_feed_is_written_as_the_standard_library_writes_it(document: dict[str, object]) -> None:
    expected = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8", errors="replace")
    assert render_json._json_bytes(document) == expected


def test_index_page_offers_autodiscovery_and_opml_lists_the_feeds() -> None:
    infos = [FeedInfo("rfi-cn", "RFI <中文>", "说明", T0, 2)]
    page = render_index(infos, BASE).decode()
    assert (
        f'<link rel="alternate" type="application/atom+xml" title="RFI &lt;中文&gt; (Atom)" href="{BASE}rfi-cn.atom">'
        in page
    )
    assert f'href="{BASE}rfi-cn.rss"' in page
    assert "2 entries, updated 2024-01-09 09:05 UTC" in page
    outline = ElementTree.fromstring(render_opml(infos, BASE)).find("body/outline")
    assert outline is not None
    assert outline.get("xmlUrl") == BASE + "rfi-cn.atom"
    assert outline.get("text") == "RFI <中文>"


def test_audio_is_an_enclosure_in_every_format() -> None:
    audio = Enclosure("https://aod.rfi.fr/cn/2024/a.mp3", "audio/mpeg", 1_234_567, 185)
    entry = dataclasses.replace(entries()[1], audio=audio)
    files = render_feed(FEED, [entry], base_url=BASE, updated=T0, ttl_minutes=1)
    for name in ("rfi-cn.atom", "rfi-cn.rss"):
        parsed = feedparser.parse(files[name])
        assert parsed.bozo == 0
        (enclosure,) = parsed.entries[0].enclosures
        assert (enclosure.href, enclosure.type, enclosure.length) == (audio.url, "audio/mpeg", "1234567")
        assert [link.href for link in parsed.entries[0].links if link.rel == "alternate"] == [entry.url]
    assert b'medium="audio" duration="185"' in files["rfi-cn.rss"]
    (item,) = json.loads(files["rfi-cn.json"])["items"]
    assert item["attachments"] == [
        {"url": audio.url, "mime_type": "audio/mpeg", "size_in_bytes": 1_234_567, "duration_in_seconds": 185}
    ]


def test_a_feed_name_with_a_section_is_percent_encoded_in_its_links() -> None:
    section_feed = FEED.model_copy(update={"name": "rfi-cn/中国", "title": "RFI 中文 · 中国"})
    files = render_feed(section_feed, entries(), base_url=BASE, updated=T0, ttl_minutes=1)
    atom = feedparser.parse(files["rfi-cn/中国.atom"]).feed
    assert [link.href for link in atom.links if link.rel == "self"] == [f"{BASE}rfi-cn/%E4%B8%AD%E5%9B%BD.atom"]


def document(**changes: Any) -> FeedDocument:
    base = FeedDocument(
        path="rfi-cn",
        feed_path="rfi-cn",
        title="RFI 中文",
        description="测试",
        author="RFI",
        language="zh-cn",
        updated=T0,
        ttl_minutes=15,
    )
    return dataclasses.replace(base, **changes)


def links(parsed: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for link in parsed.feed.links:
        found.setdefault(link.rel, []).append(link.href)
    return found


def test_an_archive_page_is_marked_and_linked_to_its_neighbours_and_its_feed_in_every_format() -> None:
    page = document(
        path="rfi-cn/archive/2", archive=True, prev_archive="rfi-cn/archive/1", next_archive="rfi-cn/archive/3"
    )
    files = render_document(page, entries(), base_url=BASE)
    for kind in ("atom", "rss"):
        data = files[f"rfi-cn/archive/2.{kind}"]
        assert b"<fh:archive/>" in data
        assert b'xmlns:fh="http://purl.org/syndication/history/1.0"' in data
        found = links(feedparser.parse(data))
        assert found["self"] == [f"{BASE}rfi-cn/archive/2.{kind}"]
        assert found["current"] == [f"{BASE}rfi-cn.{kind}"]
        assert found["prev-archive"] == [f"{BASE}rfi-cn/archive/1.{kind}"]
        assert found["next-archive"] == [f"{BASE}rfi-cn/archive/3.{kind}"]
    atom = feedparser.parse(files["rfi-cn/archive/2.atom"]).feed
    assert atom.id == f"{BASE}rfi-cn.atom"  # a document of the feed rfi-cn.atom
    feed = json.loads(files["rfi-cn/archive/2.json"])
    assert feed["feed_url"] == f"{BASE}rfi-cn.json"
    assert feed["next_url"] == f"{BASE}rfi-cn/archive/1.json"  # JSON Feed pages on towards older items


def test_a_subscription_feed_links_its_newest_archive_page_and_is_not_marked_an_archive() -> None:
    files = render_document(document(prev_archive="rfi-cn/archive/7"), entries(), base_url=BASE)
    for kind in ("atom", "rss"):
        data = files[f"rfi-cn.{kind}"]
        assert b"fh:archive" not in data
        found = links(feedparser.parse(data))
        assert found["prev-archive"] == [f"{BASE}rfi-cn/archive/7.{kind}"]
        assert "current" not in found
        assert "next-archive" not in found
    assert json.loads(files["rfi-cn.json"])["next_url"] == f"{BASE}rfi-cn/archive/7.json"


def test_hubs_are_announced_in_every_format_beside_the_self_link() -> None:
    hubs = ("https://hub.example.org/", "http://127.0.0.1:9/hub")
    files = render_document(document(hubs=hubs), entries(), base_url=BASE)
    for kind in ("atom", "rss"):
        found = links(feedparser.parse(files[f"rfi-cn.{kind}"]))
        assert found["hub"] == list(hubs)
        assert found["self"] == [f"{BASE}rfi-cn.{kind}"]
    assert json.loads(files["rfi-cn.json"])["hubs"] == [{"type": "WebSub", "url": hub} for hub in hubs]
    assert b'rel="hub"' not in render_document(document(), entries(), base_url=BASE)["rfi-cn.atom"]


def test_media_files_are_not_alternatives_and_rss_says_each_date_once() -> None:
    audio = Enclosure("https://aod.rfi.fr/cn/2024/a.mp3", "audio/mpeg", 1_234_567, 185)
    entry = dataclasses.replace(entries()[0], audio=audio)
    files = render_feed(FEED, [entry], base_url=BASE, updated=T0, ttl_minutes=1)
    for name in ("rfi-cn.atom", "rfi-cn.rss"):
        assert b"media:group" not in files[name]
        parsed = feedparser.parse(files[name]).entries[0]
        assert [c["url"] for c in parsed.media_content] == [entry.image, audio.url]
        assert parsed.media_thumbnail[0]["url"] == entry.image
        assert parsed.updated_parsed[:5] == (2024, 1, 10, 11, 5)
    assert b"dc:date" not in files["rfi-cn.rss"]
    assert b"<atom:updated>2024-01-10T11:05:00Z</atom:updated>" in files["rfi-cn.rss"]
    assert b"ns1" not in files["rfi-cn.atom"]  # the enclosure link is in Atom's own namespace, unprefixed
    assert b'<link rel="enclosure" href="https://aod.rfi.fr/cn/2024/a.mp3"' in files["rfi-cn.atom"]


def test_text_a_validator_flags_never_reaches_any_format() -> None:
    dirty = "\x1b[1;31m标\x7f题\x85\ufffd\x1b[0m"
    entry = dataclasses.replace(
        entries()[0], title=dirty, lead=dirty, content_html=f"<p>{dirty}</p>", categories=(dirty,), author=dirty
    )
    files = render_document(document(title=dirty, author=dirty), [entry], base_url=BASE)
    for data in files.values():
        text = data.decode("utf-8")
        assert not any(c in text for c in "\x1b\x7f\x85\ufffd"), text
        assert "[0m" not in text
        assert "标题" in text
