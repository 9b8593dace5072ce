"""Traditional Chinese editions: OpenCC s2twp (zh-tw) and s2hk (zh-hk) on text only, same ids and links, their
own feeds, sections and archives, listed beside the original; converted once per text, byte-stable."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder import variants
from feeder.config import Config, parse_config
from feeder.errors import ConfigError
from feeder.models import Entry
from feeder.normalize import sanitize_html
from feeder.pipeline import refresh, state_database
from feeder.store import Store
from feeder.variants import Converter
from tests.builders import NOW, config_text, seed_text, write_seed

DATA = Path(__file__).parent / "data" / "variants"
PHRASES = [line.split("\t") for line in (DATA / "phrases.tsv").read_text(encoding="utf-8").splitlines()[1:]]
TAIWAN_URL = "https://www.rfi.fr/cn/%E6%B8%AF%E6%BE%B3%E5%8F%B0/20240113-%E5%8F%B0%E6%B9%BE"
TAG = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")


@pytest.mark.parametrize(("simplified", "taiwan", "hong_kong"), PHRASES, ids=[row[0] for row in PHRASES])
def test_phrases(simplified: str, taiwan: str, hong_kong: str) -> None:
    assert variants.converter("zh-tw").text(simplified) == taiwan
    assert variants.converter("zh-hk").text(simplified) == hong_kong


@pytest.mark.parametrize("variant", ["zh-tw", "zh-hk"])
def test_an_article_converts_its_text_and_leaves_its_markup_byte_for_byte(variant: str) -> None:
    original = (DATA / "article.html").read_text(encoding="utf-8")
    converted = Converter(variant).html(original)
    assert converted == (DATA / f"article.{variant}.html").read_text(encoding="utf-8")
    assert TAG.findall(converted) == TAG.findall(original)  # tags, attribute values and URLs untouched


HTML_PIECES = st.lists(
    st.one_of(
        st.text(alphabet="信息软件台湾网络鼠标打印机视频 &<>\"'", max_size=12),
        st.sampled_from(['<a href="https://x.example/软件?a=1&amp;b=2" title="网络>信息">', "</a>", "<p>", "</p>"]),
        st.sampled_from(['<img src="https://x.example/台湾.jpg" alt="鼠标 > 视频">', "<br>", "<strong>", "</strong>"]),
    ),
    max_size=12,
)


@given(HTML_PIECES, st.sampled_from(["zh-tw", "zh-hk"]))
def test_no_tag_of_sanitized_html_is_ever_changed(pieces: list[str], variant: str) -> None:
    fragment = sanitize_html("".join(pieces), base_url="https://www.rfi.fr/cn/x")
    converter = variants.converter(variant)
    converted = converter.html(fragment)
    assert TAG.findall(converted) == TAG.findall(fragment)
    assert [converter.text(text) for text in TAG.split(fragment)] == TAG.split(converted)


def test_an_entry_is_converted_again_only_once_its_text_changed() -> None:
    converter = Converter("zh-tw")
    first = Entry(TAIWAN_URL, "台湾", "中国", ("中国",), None, "导语", None, "<p>软件</p>", NOW, NOW)
    second = dataclasses.replace(first, url=TAIWAN_URL + "-2", title="网络")
    shown, fresh = converter.entries([first, second], {})
    assert [(e.title, e.lead, e.content_html, e.categories) for e in shown] == [
        ("臺灣", "導語", "<p>軟體</p>", ("中國",)),
        ("網路", "導語", "<p>軟體</p>", ("中國",)),
    ]
    assert [e.url for e in shown] == [first.url, second.url]
    kept = {url: (source, text) for url, source, text in fresh}
    converted = converter.conversions
    again, nothing = converter.entries([first, second], kept)
    assert (again, nothing, converter.conversions) == (shown, [], converted)
    changed = dataclasses.replace(second, lead="信息")
    _, redone = converter.entries([first, changed], kept)
    assert [url for url, _, _ in redone] == [changed.url]


# Editions end to end ----------------------------------------------------------------------------------------

SEEDS = [
    (
        TAIWAN_URL,
        "台湾总统大选结果揭晓",
        "台湾选民投票选出新总统。",
        "<p>中选会公布的信息显示，网络投票率约为72%。</p>",
    ),
    (
        "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240110-software",
        "数据库软件出现安全漏洞",
        "多家公司的软件受到影响。",
        '<p>请更新<a href="https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/软件">软件</a>。</p>',
    ),
]


def editions_config(tmp_path: Path, variants_line: str = "    variants: [zh-tw, zh-hk]\n") -> Config:
    text = config_text(max_entries=1).replace("    max_entries: 1\n", f"    max_entries: 1\n{variants_line}")
    text = text.replace("    title: RFI 中文\n", "    title: RFI 中文\n    description: 法国国际广播电台中文网\n")
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    return parse_config(text, tmp_path / "config.yaml")


def build(config: Config, hours: int = 0) -> None:
    with Store.open(state_database(config)) as store:
        refresh(config, store, NOW + timedelta(hours=hours))


@pytest.fixture
def published(tmp_path: Path) -> Config:
    config = editions_config(tmp_path)
    for number, (url, title, lead, body) in enumerate(SEEDS):  # the first is the newer
        scraped, date = 1705154400000 - number * 86_400_000, f"{13 - number}/01/2024 - 15:00"
        text = seed_text(url, title, lead=lead, body=body, scraped_ms=scraped, date_div=date)
        write_seed(tmp_path / "seeds", f"{number}.txt", text)
    build(config)
    return config


def entries_of(path: Path) -> list[feedparser.FeedParserDict]:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0
    return list(parsed.entries)


@pytest.mark.parametrize(
    ("variant", "language", "title", "section"),
    [("zh-tw", "zh-TW", "臺灣總統大選結果揭曉", "港澳臺"), ("zh-hk", "zh-HK", "台灣總統大選結果揭曉", "港澳台")],
)
def test_each_edition_is_a_feed_of_its_own_in_every_format(
    published: Config, variant: str, language: str, title: str, section: str
) -> None:
    public = published.output_dir
    name = f"rfi-cn-{variant}"
    for kind in ("atom", "rss"):
        parsed = feedparser.parse((public / f"{name}.{kind}").read_bytes())
        original = feedparser.parse((public / f"rfi-cn.{kind}").read_bytes())
        assert parsed.feed.language == language
        assert parsed.feed.title == "RFI 中文"
        assert [(e.id, e.link) for e in parsed.entries] == [(e.id, e.link) for e in original.entries]
        (entry,) = parsed.entries
        assert entry.title == title
        assert [tag.term for tag in entry.tags] == [section]  # the category is converted…
    assert (public / f"{name}/港澳台.atom").exists()  # …the section's file name, a URL, is not
    assert (public / f"{name}/archive/1.atom").exists()
    feed = json.loads((public / f"{name}.json").read_text(encoding="utf-8"))
    assert feed["language"] == language
    assert feed["items"][0]["id"] == TAIWAN_URL
    assert feed["items"][0]["title"] == title


def test_the_text_is_converted_and_the_markup_and_urls_are_not(published: Config) -> None:
    public = published.output_dir
    (archived,) = entries_of(public / "rfi-cn-zh-tw/archive/1.atom")
    assert archived.title == "資料庫軟體出現安全漏洞"
    assert archived.summary == "多家公司的軟體受到影響。"
    content = archived.content[0].value
    assert (
        '<a href="https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/%E8%BD%AF%E4%BB%B6" rel="noopener noreferrer">軟體</a>'
        in content
    )
    assert "請更新" in content
    (section,) = entries_of(public / "rfi-cn-zh-hk/港澳台.atom")
    assert "中選會公佈的信息顯示，網絡投票率約為72%。" in section.content[0].value
    root = ElementTree.fromstring((public / "rfi-cn-zh-tw.atom").read_bytes())
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-TW"
    assert root.findtext("{http://www.w3.org/2005/Atom}subtitle") == "法國國際廣播電臺中文網"


def test_the_editions_are_listed_in_the_index_and_the_opml(published: Config) -> None:
    page = (published.output_dir / "index.html").read_text(encoding="utf-8")
    assert 'href="http://127.0.0.1:8080/rfi-cn-zh-tw.atom" hreflang="zh-TW"' in page
    assert '<li lang="zh-HK"><strong>RFI 中文 (zh-HK)</strong>' in page
    opml = ElementTree.fromstring((published.output_dir / "feeds.opml").read_bytes())
    urls = [outline.get("xmlUrl") for outline in opml.iter("outline")]
    assert "http://127.0.0.1:8080/rfi-cn-zh-tw.atom" in urls
    assert "http://127.0.0.1:8080/rfi-cn-zh-hk/%E6%B8%AF%E6%BE%B3%E5%8F%B0.atom" in urls


def test_a_rebuild_with_no_new_input_leaves_every_edition_byte_identical(published: Config) -> None:
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in published.output_dir.rglob("*") if p.is_file()}
    build(published, hours=1)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == files


def test_rendering_everything_again_converts_no_entry_already_converted(
    published: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted: list[str] = []
    real = Converter._convert_entry

    def counting(self: Converter, entry: Entry) -> str:
        converted.append(f"{self.variant} {entry.url}")
        return real(self, entry)

    monkeypatch.setattr(Converter, "_convert_entry", counting)
    files = {p: p.read_bytes() for p in published.output_dir.rglob("*") if p.suffix in (".atom", ".rss", ".json")}
    for path in files:
        path.unlink()  # every document is rendered again, in a new process as far as the store can tell
    build(published)
    assert converted == []
    assert {p: p.read_bytes() for p in files} == files

    seeds = published.output_dir.parent / "seeds"
    write_seed(seeds, "0.txt", (seeds / "0.txt").read_text(encoding="utf-8").replace("新总统", "新的总统"))
    build(published, hours=1)
    assert sorted(converted) == [f"zh-hk {TAIWAN_URL}", f"zh-tw {TAIWAN_URL}"]  # the edited one, once each


def test_no_variant_no_edition(tmp_path: Path) -> None:
    config = editions_config(tmp_path, variants_line="")
    write_seed(tmp_path / "seeds", "0.txt", seed_text(TAIWAN_URL))
    build(config)
    assert sorted(p.name for p in config.output_dir.glob("*.atom")) == ["rfi-cn.atom"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("    variants: [zh-tw, zh-tw]\n", "feeds[0].variants[1]: 'zh-tw' is listed twice"),
        ("    variants: [zh-cn]\n", "feeds[0].variants[0]: Input should be 'zh-tw' or 'zh-hk'"),
    ],
)
def test_a_wrong_variant_is_refused_with_its_line(tmp_path: Path, line: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        editions_config(tmp_path, variants_line=line)


def test_an_edition_may_not_take_another_feeds_name(tmp_path: Path) -> None:
    other = "  - {name: rfi-cn-zh-hk, title: 另一个, sources: [seeds]}\n"
    text = config_text(extra_feed=other).replace(
        "    max_entries: 200\n", "    max_entries: 200\n    variants: [zh-hk]\n"
    )
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: feeds\[0\].variants\[0\]: its feed 'rfi-cn-zh-hk' has"):
        parse_config(text, tmp_path / "config.yaml")
