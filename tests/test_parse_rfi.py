"""parse.py on RFI's live documents: RSS feeds → lead-only articles, article pages → full articles.

The documents under tests/data/rfi/ are hand-written stand-ins shaped like RFI's (see docs/RFI.md): minified RSS
with CDATA and the `ref="self"` typo, article pages with JSON-LD, furniture and a zh-Hant alternate, hostile XML.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from feeder.errors import ParseError
from feeder.models import Enclosure, ParsedArticle
from feeder.normalize import canonical_url
from feeder.parse import MAX_FEED_BYTES, decode_html, parse_feed, parse_page
from tests.builders import RFI

DATA = Path(__file__).parent / "data" / "rfi"
S_RFI = "https://s.rfi.fr/media/display/"
AOD = "https://aod-rfi.akamaized.net/rfi/chinois/audio/modules/actu/202401/"


def rfi(path: str, site: str = "cn") -> str:
    """An RFI URL as RFI writes it: the path percent-encoded with upper-case hex."""
    return f"https://www.rfi.fr/{site}/" + quote(path)


def feed(name: str) -> list[ParsedArticle]:
    return parse_feed((DATA / name).read_bytes(), name)


def page(name: str, url: str = "https://www.rfi.fr/cn/", content_type: str | None = "text/html") -> ParsedArticle:
    return parse_page(decode_html((DATA / name).read_bytes(), content_type), url, name, RFI)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:  # noqa: PLR0917
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def rss(items: str, namespaces: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"'
        f' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"{namespaces}><channel><title>RFI</title>'
        f"<link>https://www.rfi.fr/cn/</link><description>RFI</description>{items}</channel></rss>"
    ).encode()


def one_item(inner: str) -> ParsedArticle:
    (article,) = parse_feed(rss(f"<item>{inner}</item>"), "inline.xml")
    return article


LINK = "<title>标题</title><link>https://www.rfi.fr/cn/x</link>"


# --- the main feed -------------------------------------------------------------------------------------------

MAIN = [
    (
        "长江流域冬季水鸟调查结果公布",
        rfi("中国/20240109-长江流域冬季水鸟调查结果公布"),
        utc(2024, 1, 9, 9, 5, 12),
        ("中国", "环境"),
        "法广",
        S_RFI + "3f1c2a6e-aeb1-11ee-9a3c-005056a97e36/w:640/p:16x9/yangtze-birds.jpg",
        "湖北、江西等地的志愿者完成了今年冬季的水鸟同步调查，记录到的物种数量与去年相近。",
    ),
    (
        "北欧多国迎来今冬最强寒潮",
        rfi("国际/20240109-北欧多国迎来今冬最强寒潮"),
        utc(2024, 1, 9, 8, 40),
        ("国际",),
        "法广",
        S_RFI + "1b7d9c40-aeaa-11ee-8b1e-005056a97e36/w:640/p:16x9/nordic-cold.jpg",
        "瑞典和芬兰北部气温降至零下四十度以下，部分铁路线路暂停运营。",
    ),
    (
        "上海图书馆东馆推出夜间阅读活动",
        rfi("中国/20240108-上海图书馆东馆推出夜间阅读活动"),
        utc(2024, 1, 8, 15, 2),
        ("中国",),
        None,
        S_RFI + "0a4e7d12-ae3c-11ee-b5d1-005056a97e36/w:640/p:16x9/shanghai-library.jpg",
        "每周五和周六晚间延长开放至二十二点，读者可预约参加导览和读书会。",
    ),
    (
        "巴黎多家博物馆延长周末开放时间",
        rfi("法国/20240108-巴黎多家博物馆延长周末开放时间") + "?xtor=RSS-1",
        utc(2024, 1, 8, 17, 30, 45),
        ("法国",),
        "法广",
        S_RFI + "c2d8e7f0-ae41-11ee-a4b2-005056a97e36/w:640/p:16x9/paris-museums.jpg",
        "从二月起，多家市立博物馆将在周六延长开放两个小时 & 增加免费导览。",
    ),
    (
        "纪录片《沙海驼铃》在里昂首映",
        rfi("科技与文化/20240108-纪录片《沙海驼铃》在里昂首映"),
        utc(2024, 1, 8, 11, 15),
        ("科技与文化",),
        "法广",
        S_RFI + "5e6f7a8b-ae1f-11ee-9c0d-005056a97e36/w:640/p:16x9/silk-road-film.jpg",
        "这部纪录片用三年时间跟拍一支沿古代商路行进的驼队。",
    ),
]


def test_the_main_feed_gives_every_item_in_document_order() -> None:
    items = feed("rss_main.xml")
    assert [(a.title, a.url, a.published_at, a.extra_categories, a.author, a.image, a.lead) for a in items] == MAIN


def test_a_feed_item_is_a_lead_only_article() -> None:
    first = feed("rss_main.xml")[0]
    assert first == ParsedArticle(
        locator="rss_main.xml",
        url=MAIN[0][1],
        title="长江流域冬季水鸟调查结果公布",
        scraped_at=None,
        published_at=utc(2024, 1, 9, 9, 5, 12),
        lead=MAIN[0][6],
        image=MAIN[0][5],
        body_html="",
        modified_at=None,
        author="法广",
        extra_categories=("中国", "环境"),
        audio=None,
        fulltext=False,
    )
    assert first.published_at is not None
    assert first.published_at.tzinfo is UTC


def test_rfi_channel_quirks_are_tolerated() -> None:
    raw = (DATA / "rss_main.xml").read_text(encoding="utf-8")
    assert 'ref="self"' in raw
    assert "<title><![CDATA[" in raw
    assert raw.index("<language>") > raw.rindex("</item>")
    assert len(feed("rss_main.xml")) == 5


def test_the_section_feed_repeats_two_articles_one_spelled_differently() -> None:
    main = {canonical_url(a.url, RFI.urls): a for a in feed("rss_main.xml")}
    china = feed("rss_section_china.xml")
    assert [a.title for a in china] == [
        "长江流域冬季水鸟调查结果公布",
        "上海图书馆东馆推出夜间阅读活动",
        "昆明植物园举办冬季山茶花展",
    ]
    assert china[0].url == main[canonical_url(china[0].url, RFI.urls)].url
    assert china[1].url != MAIN[2][1]  # lower-case %e4…: parse keeps the spelling, normalize unifies it
    assert china[1].url.lower() == MAIN[2][1].lower()
    assert canonical_url(china[1].url, RFI.urls) in main
    assert canonical_url(china[2].url, RFI.urls) not in main
    assert china[2].published_at == utc(2024, 1, 7, 6, 45, 30)


# --- podcasts ------------------------------------------------------------------------------------------------


def test_a_podcast_feed_gives_audio_enclosures_with_durations() -> None:
    first, second = feed("rss_podcast.xml")  # the third item has no link and a guid that is not a URL
    assert first.url == rfi("专栏检索/文化艺术/20240110-布列塔尼的传统木船节")
    assert first.title == "布列塔尼的传统木船节"
    assert first.published_at == utc(2024, 1, 10, 10, 0)
    assert first.image == S_RFI + "7d2e4c1a-af9b-11ee-8e55-005056a97e36/w:640/p:16x9/boats.jpg"
    assert first.author == "林晓"
    assert first.audio == Enclosure(
        url=AOD + "CHINOIS_-_CULTURE_10012024.mp3", type="audio/mpeg", length=11995136, duration=750
    )
    assert second.url == rfi("专栏检索/文化艺术/20240103-里昂丝绸博物馆的修复工作")  # from the permalink guid
    assert second.published_at == utc(2024, 1, 3, 9, 0)  # 10:00 +0100
    assert second.author == "林晓、苏菲"
    assert second.image is None
    assert second.audio == Enclosure(
        url=AOD + "CHINOIS_-_CULTURE_03012024.mp3", type="audio/mpeg", length=9437184, duration=585
    )


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("585", 585),
        ("09:45", 585),
        ("1:02:03", 3723),
        ("00:12:30", 750),
        ("", None),
        ("abc", None),
        ("0", None),
        ("9" * 5000, None),
    ],
)
def test_itunes_duration(written: str, seconds: int | None) -> None:
    enclosure = '<enclosure url="https://aod.example/a.mp3" length="100" type="audio/mpeg"/>'
    audio = one_item(f"{LINK}{enclosure}<itunes:duration>{written}</itunes:duration>").audio
    assert audio == Enclosure(url="https://aod.example/a.mp3", type="audio/mpeg", length=100, duration=seconds)


def test_only_an_audio_enclosure_is_audio() -> None:
    item = one_item(
        f'{LINK}<enclosure url="https://s.example/a.jpg" type="image/jpeg"/>'
        '<enclosure url=" https://aod.example/a.mp3 " type="Audio/MPEG" length="0"/>'
    )
    assert item.audio == Enclosure(url="https://aod.example/a.mp3", type="audio/mpeg", length=None)
    huge = one_item(f'{LINK}<enclosure url="https://aod.example/a.mp3" type="audio/mpeg" length="{"9" * 5000}"/>')
    assert huge.audio == Enclosure(url="https://aod.example/a.mp3", type="audio/mpeg", length=None)
    assert item.image == "https://s.example/a.jpg"
    assert one_item(f'{LINK}<enclosure url="https://v.example/a.mp4" type="video/mp4"/>').audio is None


# --- items: what is kept, what is skipped ----------------------------------------------------------------------


def test_an_item_without_link_or_title_is_skipped_and_the_feed_goes_on() -> None:
    items = parse_feed(
        rss(
            "<item><title>无链接</title></item>"
            "<item><link>https://www.rfi.fr/cn/a</link></item>"
            "<item><title><![CDATA[ <b> </b> ]]></title><link>https://www.rfi.fr/cn/b</link></item>"
            '<item><title>非网址</title><guid isPermaLink="false">rfi-cn-1</guid></item>'
            "<item><title>网址</title><guid>https://www.rfi.fr/cn/c</guid></item>"
            "<item><title>保留</title><link>\n  https://www.rfi.fr/cn/d  \n</link><guid>https://x.example/</guid></item>"
        ),
        "inline.xml",
    )
    assert [(a.title, a.url) for a in items] == [
        ("网址", "https://www.rfi.fr/cn/c"),
        ("保留", "https://www.rfi.fr/cn/d"),
    ]


def test_titles_and_leads_are_plain_text() -> None:
    item = one_item(
        "<title><![CDATA[<b>欧盟</b>  通过 &amp; 生效]]></title><link>https://www.rfi.fr/cn/x</link>"
        "<description>&lt;p&gt;导语&lt;/p&gt;  第二句</description>"
        "<category>中国</category><category> </category><category>中国</category><category>环境</category>"
    )
    assert item.title == "欧盟 通过 & 生效"
    assert item.lead == "导语 第二句"
    assert item.extra_categories == ("中国", "环境")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("<pubDate>Tue, 09 Jan 2024 09:05:12 GMT</pubDate>", utc(2024, 1, 9, 9, 5, 12)),
        ("<pubDate>Tue, 09 Jan 2024 10:05:12 +0100</pubDate>", utc(2024, 1, 9, 9, 5, 12)),
        ("<pubDate>09 Jan 2024 09:05 -0000</pubDate>", utc(2024, 1, 9, 9, 5)),
        ("<pubDate> Tue, 09 Jan 2024 09:05:12 UT </pubDate>", utc(2024, 1, 9, 9, 5, 12)),
        ("<pubDate>2024-01-09T09:05:12+00:00</pubDate>", utc(2024, 1, 9, 9, 5, 12)),
        ("<pubDate>Tue, 32 Jan 2024 09:05:12 GMT</pubDate>", None),
        ("<pubDate>不是日期</pubDate>", None),
        ("<pubDate></pubDate>", None),
        ("", None),
    ],
)
def test_pub_date(written: str, expected: datetime | None) -> None:
    published = one_item(LINK + written).published_at
    assert published == expected
    assert published is None or published.tzinfo is UTC


@pytest.mark.parametrize(
    ("written", "image"),
    [
        (
            '<media:thumbnail url="https://s.example/t.jpg"/>'
            '<media:content url="https://s.example/c.jpg" medium="image"/>',
            "https://s.example/t.jpg",
        ),
        ('<media:content url="https://s.example/v.mp4" medium="video"/>', None),
        ('<media:content url="https://s.example/c.jpg" medium="image"/>', "https://s.example/c.jpg"),
        ('<media:content url="https://s.example/c.png" type="image/png"/>', "https://s.example/c.png"),
        ('<enclosure url="https://s.example/e.jpg" type="image/jpeg" length="1"/>', "https://s.example/e.jpg"),
        ('<media:thumbnail url=" "/>', None),
        ("", None),
    ],
)
def test_feed_image(written: str, image: str | None) -> None:
    assert one_item(LINK + written).image == image


def test_an_atom_feed_is_read_too() -> None:
    atom = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/"><title>RFI</title>
<id>https://www.rfi.fr/cn/</id><updated>2024-01-09T10:00:00Z</updated>
<entry><title type="html">中美 &amp;amp; 欧盟</title><id>tag:rfi.fr,2024:1</id>
<link rel="alternate" href="https://www.rfi.fr/cn/a"/>
<link rel="enclosure" href="https://aod.example/a.mp3" type="audio/mpeg" length="42"/>
<published>2024-01-09T10:05:12+01:00</published><updated>2024-01-09T11:00:00Z</updated>
<author><name>法广</name></author><author><name>林晓</name></author>
<category term="china" label="中国"/><category term="环境"/>
<summary>导语。</summary><media:thumbnail url="https://s.example/t.jpg"/></entry>
<entry><title>只有 id</title><id>https://www.rfi.fr/cn/b</id><updated>2024-01-08T11:00:00Z</updated></entry>
<entry><id>https://www.rfi.fr/cn/c</id><link href="https://www.rfi.fr/cn/c"/></entry>
</feed>"""
    first, second = parse_feed(atom.encode(), "atom.xml")
    assert first == ParsedArticle(
        locator="atom.xml",
        url="https://www.rfi.fr/cn/a",
        title="中美 & 欧盟",
        scraped_at=None,
        published_at=utc(2024, 1, 9, 9, 5, 12),
        lead="导语。",
        image="https://s.example/t.jpg",
        body_html="",
        modified_at=utc(2024, 1, 9, 11, 0),
        author="法广、林晓",
        extra_categories=("中国", "环境"),
        audio=Enclosure(url="https://aod.example/a.mp3", type="audio/mpeg", length=42),
        fulltext=False,
    )
    assert (second.url, second.title, second.published_at) == (
        "https://www.rfi.fr/cn/b",
        "只有 id",
        utc(2024, 1, 8, 11),
    )


# --- documents that are not feeds -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["feed_xxe.xml", "feed_billion_laughs.xml"])
def test_entity_attacks_are_refused_without_reading_or_expanding(name: str) -> None:
    with pytest.raises(ParseError, match="declares entities") as caught:
        feed(name)
    message = str(caught.value)
    assert "root:" not in message
    assert "lollol" not in message
    assert "no file or URL was read" in message


def test_a_doctype_that_hides_its_entities_from_the_byte_scan_is_refused_after_parsing() -> None:
    sneaky = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!-- ]> --><!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><item><title>&xxe;</title><link>https://www.rfi.fr/cn/x</link></item></channel></rss>'
    )
    with pytest.raises(ParseError, match="declares entities") as caught:
        parse_feed(sneaky, "sneaky.xml")
    assert "root:" not in str(caught.value)


def test_a_utf16_entity_attack_is_refused() -> None:
    text = (DATA / "feed_xxe.xml").read_text(encoding="utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    with pytest.raises(ParseError, match="declares entities"):
        parse_feed(text.encode("utf-16"), "utf16.xml")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_an_external_entity_is_never_opened(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes: a parser that tried to read the entity would hang.
    fifo = tmp_path / "entity.fifo"
    os.mkfifo(fifo)
    sneaky = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!-- ]> --><!ENTITY xxe SYSTEM "file://{fifo}">]>'
        '<rss version="2.0"><channel><item><title>&xxe;</title><link>https://www.rfi.fr/cn/x</link></item></channel></rss>'
    ).encode()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            parse_feed(sneaky, "fifo.xml")
        except ParseError as e:
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the parser opened the external entity's file")
    assert len(outcome) == 1
    assert "declares entities" in str(outcome[0])


def test_a_long_prolog_is_read_in_linear_time() -> None:
    # "<?a?>" × n once made the DOCTYPE scan backtrack exponentially (n = 30 took minutes)
    prolog = b'<?xml version="1.0"?>' + b"<?a?><!--b-->\n" * 50_000
    assert len(parse_feed(prolog + rss(f"<item>{LINK}</item>").split(b"?>", 1)[1], "prolog.xml")) == 1
    with pytest.raises(ParseError, match="not well-formed XML"):
        parse_feed(b"<?a?>" * 50 + b"<!--", "prolog.xml")


def test_a_cut_off_feed_names_the_reason() -> None:
    with pytest.raises(ParseError, match=r"feed is not well-formed XML: \S+") as caught:
        feed("feed_malformed.xml")
    assert "line" in str(caught.value)


def test_an_html_page_served_as_a_feed_is_refused() -> None:
    with pytest.raises(ParseError, match="HTML page was served instead of a feed"):
        feed("feed_html.html")


def test_well_formed_xhtml_served_as_a_feed_is_refused() -> None:
    xhtml = b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>403</title></head><body><p>x</p></body></html>'
    with pytest.raises(ParseError, match="HTML page was served instead of a feed"):
        parse_feed(xhtml, "x.html")


def test_another_xml_document_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match=r"root element <opml> is neither RSS, RDF \(RSS 1.0\) nor Atom"):
        parse_feed(b'<?xml version="1.0"?><opml version="2.0"><body/></opml>', "x.opml")


def test_an_empty_body_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="feed is empty"):
        parse_feed(b" \n", "empty.xml")


def test_a_body_over_the_cap_is_refused_before_parsing() -> None:
    document = rss(f"<item>{LINK}</item>")
    at_cap = document + b" " * (MAX_FEED_BYTES - len(document))
    assert len(parse_feed(at_cap, "cap.xml")) == 1
    with pytest.raises(ParseError, match=f"over the {MAX_FEED_BYTES}-byte cap"):
        parse_feed(at_cap + b" ", "cap.xml")


# --- decode_html ---------------------------------------------------------------------------------------------

GBK_TITLE = "昆明植物园举办冬季山茶花展"


def test_a_gbk_page_declared_in_meta_decodes_without_a_header_charset() -> None:
    raw = (DATA / "page_gbk.html").read_bytes()
    assert GBK_TITLE.encode("gbk") in raw
    for content_type in (None, "text/html", "text/html; charset="):
        assert f"<title>{GBK_TITLE}</title>" in decode_html(raw, content_type)


def test_the_header_charset_beats_the_meta_charset() -> None:
    raw = (DATA / "page_gbk.html").read_bytes()
    assert GBK_TITLE not in decode_html(raw, "text/html; charset=utf-8")
    assert "\ufffd" in decode_html(raw, "text/html; charset=utf-8")
    utf8_page = '<meta charset="gbk"><p>山茶花</p>'.encode()
    assert "<p>山茶花</p>" in decode_html(utf8_page, 'text/html; charset="UTF-8"')


@pytest.mark.parametrize(
    "content_type",
    ["text/html; charset=no-such-charset", "text/html; charset=base64", "text/html; charset=utf-7", "text/html; x=1"],
)
def test_an_unusable_header_charset_falls_back_to_meta(content_type: str) -> None:
    assert f"<title>{GBK_TITLE}</title>" in decode_html((DATA / "page_gbk.html").read_bytes(), content_type)


def test_http_equiv_meta_and_gb2312_labels_decode_as_gb18030() -> None:
    text = '<meta http-equiv="Content-Type" content="text/html; charset=gb2312"><p>山茶品种“玉珺”</p>'
    raw = text.encode("gbk")  # 珺 is GBK, not GB2312: pages that say gb2312 hold GBK
    assert decode_html(raw, None) == text
    assert decode_html(raw, "text/html;charset=GB2312") == text


def test_a_meta_charset_beyond_2_kb_is_not_looked_at() -> None:
    raw = b"<!-- " + b"x" * 2100 + b' --><meta charset="gbk"><p>' + "山茶花".encode("gbk") + b"</p>"
    assert "山茶花" not in decode_html(raw, None)
    assert decode_html(raw[:6] + raw[2106:], None).endswith("<p>山茶花</p>")


def test_an_unusable_meta_charset_lets_the_next_one_decide() -> None:
    raw = '<meta charset="x-no-such"><meta charset="gbk"><p>山茶花</p>'.encode("gbk")
    assert decode_html(raw, None).endswith("<p>山茶花</p>")


def test_the_default_is_utf8_with_replacement_and_no_bom() -> None:
    assert decode_html("\ufeff<p>正文</p>".encode(), None) == "<p>正文</p>"
    assert decode_html(b"<p>\xff\xfe</p>", None) == "<p>\ufffd\ufffd</p>"
    assert decode_html('<meta charset="utf-16"><p>正文</p>'.encode(), None) == '<meta charset="utf-16"><p>正文</p>'
    assert decode_html("<p>正文</p>".encode("utf-16"), None) == "<p>正文</p>"


# --- article pages -------------------------------------------------------------------------------------------

ARTICLE_URL = rfi("中国/20240109-长江流域冬季水鸟调查结果公布")
ARTICLE_PARAGRAPHS = (
    "<p>今年一月初，来自湖北、湖南和江西的数百名志愿者在长江中下游的湖泊与湿地同时开展了冬季水鸟调查。</p>",
    "<p>调查覆盖了<a href=",
    ">鄱阳湖</a>、洞庭湖等主要越冬地，共记录到水鸟一百余种。</p>",
    "<h2>志愿者的工作</h2>",
    "<p>志愿者们按照统一的方法清点鸟类数量，并用照片记录难以辨认的物种。</p>",
    "<p>研究人员表示，调查数据将用于评估湿地保护措施的效果。</p>",
)
FURNITURE = (
    "广告位",  # .m-interstitial
    "下载法广应用",  # .o-self-promo
    "立即下载",
    "分享",  # .m-share-bar
    "facebook",
    "延伸阅读",  # .a-read-more
    "鄱阳湖水位回升",  # the read-more link and the related-story card
    "相关报道",
    "生物多样性专题",  # .m-tags-list
    "标签",
    "快讯",  # .m-em-flash
    "站点维护通知",
    "datawrapper",  # the embed's iframe
    "addEventListener",  # the embed's script
    "<script",
    "<iframe",
    "dataLayer",
    "湖北、江西等地的志愿者完成了",  # the chapô is the lead, not body text
    "09/01/2024",  # .m-pub-dates
    "发表时间",
    "<img",  # the main image is the image field
    "鄱阳湖湿地的越冬候鸟",
    "法国国际广播电台",  # site header and footer
)


def test_an_article_page_gives_every_field() -> None:
    article = page("page_article.html", url=rfi("中国/20240109-长江流域冬季水鸟调查结果公布") + "?xtor=RSS-1")
    assert article.locator == "page_article.html"
    assert article.url == ARTICLE_URL  # the canonical link, not the URL asked for nor the zh-Hant alternate
    assert article.title == "长江流域冬季水鸟调查结果公布"
    assert article.lead == "湖北、江西等地的志愿者完成了今年冬季的水鸟同步调查，记录到的物种数量与去年相近。"
    assert article.published_at == utc(2024, 1, 9, 9, 5, 12)
    assert article.modified_at == utc(2024, 1, 9, 10, 20)
    assert article.image == S_RFI + "3f1c2a6e-aeb1-11ee-9a3c-005056a97e36/w:1280/p:16x9/yangtze-birds.jpg"
    assert article.author == "法广"
    assert article.extra_categories == ("中国", "环境", "候鸟", "长江")  # articleSection, then keywords (a string)
    assert article.audio is None
    assert article.scraped_at is None
    assert article.fulltext is True


def test_every_article_paragraph_survives_in_order() -> None:
    body = page("page_article.html").body_html
    positions = [body.index(part) for part in ARTICLE_PARAGRAPHS]
    assert positions == sorted(positions)
    assert body.startswith(ARTICLE_PARAGRAPHS[0])
    assert body.endswith(ARTICLE_PARAGRAPHS[-1])
    assert 'href="/cn/%E4%B8%AD%E5%9B%BD/20240105-' in body  # links are kept as written for normalize


@pytest.mark.parametrize("furniture", FURNITURE)
def test_no_furniture_survives_in_the_body(furniture: str) -> None:
    assert furniture.lower() not in page("page_article.html").body_html.lower()


def test_the_traditional_character_copy_is_not_merged() -> None:
    article = page("page_article.html")
    assert "/tw/" not in article.url
    assert "長江" not in article.title + article.lead + article.body_html


def test_the_article_of_the_page_is_chosen_among_two_by_its_canonical_url() -> None:
    article = page("page_two_articles.html")
    assert article.url == rfi("中国/20240108-上海图书馆东馆推出夜间阅读活动")
    assert article.title == "上海图书馆东馆推出夜间阅读活动"  # the embedded related story's block came first
    assert article.lead == "每周五和周六晚间延长开放至二十二点，读者可预约参加导览和读书会。"
    assert article.published_at == utc(2024, 1, 8, 15, 2)  # "Z"
    assert article.modified_at == utc(2024, 1, 8, 15, 45, 30)  # 16:45:30.000+01:00
    assert article.image == S_RFI + "0a4e7d12-ae3c-11ee-b5d1-005056a97e36/w:1280/p:16x9/shanghai-library.jpg"
    assert article.author == "法广"
    assert article.extra_categories == ("中国", "上海", "阅读", "图书馆")  # keywords as an array
    assert article.body_html == (
        "<p>上海图书馆东馆自本月起在周末延长开放时间，成为当地新的夜间文化去处。</p>\n\n"
        "<p>馆方介绍，夜间时段将安排专业馆员带领的建筑导览，以及每周一次的读书会。</p>\n"
        "<p>读者需要通过官方平台提前预约，每场名额有限。</p>"
    )


def test_without_a_matching_block_the_first_news_article_is_taken() -> None:
    html = (DATA / "page_two_articles.html").read_text(encoding="utf-8")
    html = html.replace('<link rel="canonical"', '<link rel="alternate"')
    other = parse_page(html, "https://www.rfi.fr/cn/elsewhere", "p.html", RFI)
    assert other.title == "长江流域冬季水鸟调查结果公布"
    assert other.url == "https://www.rfi.fr/cn/elsewhere"
    own = parse_page(
        html, "http://www.rfi.fr/cn/中国/20240108-上海图书馆东馆推出夜间阅读活动?xtor=RSS-1#top", "p.html", RFI
    )
    assert own.title == "上海图书馆东馆推出夜间阅读活动"  # the URL asked for stands in for the canonical link


def test_an_audio_page_gives_its_audio_object() -> None:
    article = page("page_audio.html")
    assert article.url == rfi("专栏检索/文化艺术/20240110-布列塔尼的传统木船节")
    assert article.audio == Enclosure(url=AOD + "CHINOIS_-_CULTURE_10012024.mp3", type="audio/mpeg", duration=750)
    assert article.author == "林晓、苏菲"
    assert article.image == S_RFI + "7d2e4c1a-af9b-11ee-8e55-005056a97e36/w:1280/p:16x9/boats.jpg"  # not og:image
    assert article.lead == "每年夏天，布列塔尼的港口都会迎来上百艘修复后的传统木船。本期节目走访了几位造船师傅。"
    assert article.extra_categories == ("文化艺术", "布列塔尼", "传统工艺")
    assert article.published_at == article.modified_at == utc(2024, 1, 10, 10, 0)
    assert article.body_html == (
        "<p>在布列塔尼，修复和驾驶传统木船是许多家庭代代相传的手艺。</p>\n"
        "<p>本期节目中，几位造船师傅介绍了他们如何按照旧图纸复原船体。</p>"
    )


def test_a_page_without_a_body_is_a_lead_only_article_from_its_head() -> None:
    article = page("page_no_body.html")
    assert article == ParsedArticle(
        locator="page_no_body.html",
        url=rfi("法国/20240111-里昂灯光节筹备工作启动"),
        title="里昂灯光节筹备工作启动",
        scraped_at=None,
        published_at=utc(2024, 1, 11, 7, 30),
        lead="主办方开始征集今年灯光节的装置作品，入选作品将在十二月展出。",
        image=S_RFI + "e1f2a3b4-b07c-11ee-9d1e-005056a97e36/w:1280/p:16x9/lyon-lights.jpg",
        body_html="",
        modified_at=utc(2024, 1, 11, 8, 0),
        author=None,
        extra_categories=("法国", "里昂", "灯光节"),
        audio=None,
        fulltext=False,
    )


def test_a_gbk_page_parses_to_the_right_chinese() -> None:
    article = page("page_gbk.html", content_type=None)
    assert article.title == GBK_TITLE
    assert article.lead == "展览汇集了两百多个山茶花品种，将持续到二月底。"
    assert article.url == rfi("中国/20240107-昆明植物园举办冬季山茶花展")
    assert article.extra_categories == ("中国", "云南", "植物")
    assert "<p>昆明植物园的山茶园今年首次在冬季对公众开放夜间参观。</p>" in article.body_html
    assert article.fulltext is True


def test_a_block_page_is_refused_not_published_empty() -> None:
    with pytest.raises(ParseError, match="no lead, image or article text"):
        page("feed_html.html")


# --- article pages: fallbacks and variations ---------------------------------------------------------------------

CANONICAL = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-x"


def page_with(head: str = "", body: str = '<div class="t-content__body"><p>正文。</p></div>') -> ParsedArticle:
    html = f'<html><head><link rel="canonical" href="{CANONICAL}">{head}</head><body>{body}</body></html>'
    return parse_page(html, CANONICAL, "inline.html", RFI)


def with_ld(article: str) -> ParsedArticle:
    block = f'<script type="application/ld+json">{{"@type": "NewsArticle", "headline": "标题"{article}}}</script>'
    return page_with(block)


def test_the_title_falls_back_to_og_title_then_to_the_title_element() -> None:
    assert page_with('<meta property="og:title" content="OG 标题"><title>页面标题</title>').title == "OG 标题"
    assert page_with("<title> 页面\n标题 </title>").title == "页面 标题"


def test_a_page_without_a_title_is_refused() -> None:
    with pytest.raises(ParseError, match="no title"):
        page_with('<meta property="og:description" content="导语">')


@pytest.mark.parametrize("html", ["", "   ", "\ufeff"])
def test_an_empty_page_is_refused(html: str) -> None:
    with pytest.raises(ParseError, match="page is empty"):
        parse_page(html, CANONICAL, "empty.html", RFI)


def test_an_xml_declaration_in_the_text_is_not_a_crash() -> None:
    html = (
        '<?xml version="1.0" encoding="utf-8"?><html><head><title>标题</title>'
        '<meta property="og:description" content="导语"></head><body><p>正文</p></body></html>'
    )
    article = parse_page(html, CANONICAL, "x.html", RFI)
    assert (article.title, article.lead, article.fulltext, article.body_html) == ("标题", "导语", False, "")


def test_a_body_left_without_text_by_furniture_removal_is_lead_only() -> None:
    body = (
        '<p class="t-content__chapo">导语。</p>'
        '<div class="t-content__body"><div class="m-interstitial">广告</div></div>'
    )
    article = page_with("<title>标题</title>", body)
    assert (article.lead, article.body_html, article.fulltext) == ("导语。", "", False)


def test_class_names_match_whole_tokens() -> None:
    body = (
        '<div class="t-content__body-wrapper"><p>不是正文。</p></div>'
        '<div class="x  t-content__body\tu-clearfix"><p>正文。</p></div>'
    )
    assert page_with("<title>标题</title>", body).body_html == "<p>正文。</p>"


def test_the_main_media_image_is_the_last_resort() -> None:
    media = (
        '<div class="t-content__main-media"><picture><img src="data:image/gif;base64,R0lGOD" '
        'data-src="https://s.rfi.fr/lazy.jpg"></picture></div><div class="t-content__body"><p>正文。</p></div>'
    )
    assert page_with("<title>标题</title>", media).image == "https://s.rfi.fr/lazy.jpg"
    og = '<title>标题</title><meta property="og:image" content="https://s.rfi.fr/og.jpg">'
    assert page_with(og, media).image == "https://s.rfi.fr/og.jpg"
    assert page_with("<title>标题</title>").image is None


@pytest.mark.parametrize(
    ("written", "image"),
    [
        ('"https://s.rfi.fr/a.jpg"', "https://s.rfi.fr/a.jpg"),
        ('["https://s.rfi.fr/a.jpg", "https://s.rfi.fr/b.jpg"]', "https://s.rfi.fr/a.jpg"),
        ('{"@type": "ImageObject", "url": "https://s.rfi.fr/a.jpg"}', "https://s.rfi.fr/a.jpg"),
        ('[{"@type": "ImageObject", "contentUrl": "https://s.rfi.fr/c.jpg"}]', "https://s.rfi.fr/c.jpg"),
        ('{"@type": "ImageObject"}', None),
        ("42", None),
    ],
)
def test_json_ld_image(written: str, image: str | None) -> None:
    assert with_ld(f', "image": {written}').image == image


@pytest.mark.parametrize(
    ("written", "author"),
    [
        ('"法广"', "法广"),
        ('{"@type": "Person", "name": "林晓"}', "林晓"),
        ('[{"name": "林晓"}, "苏菲", {"name": "林晓"}, {"@type": "Person"}]', "林晓、苏菲"),
        ("[]", None),
    ],
)
def test_json_ld_author(written: str, author: str | None) -> None:
    assert with_ld(f', "author": {written}').author == author


@pytest.mark.parametrize(
    ("written", "categories"),
    [
        ('"articleSection": "中国", "keywords": "中国，环境, 候鸟 ,"', ("中国", "环境", "候鸟")),
        ('"articleSection": ["中国", "经贸"], "keywords": ["经贸", "欧盟, 关税"]', ("中国", "经贸", "欧盟", "关税")),
        ('"keywords": ""', ()),
    ],
)
def test_json_ld_categories(written: str, categories: tuple[str, ...]) -> None:
    assert with_ld(f", {written}").extra_categories == categories


def test_head_meta_fills_what_json_ld_lacks() -> None:
    head = (
        '<script type="application/ld+json">{"@type": "Article", "headline": "标题", "datePublished": "2024-01-09"}'
        '</script><meta property="og:description" content="OG 导语">'
        '<meta property="article:published_time" content="2024-01-09T10:05:12+01:00">'
        '<meta property="article:section" content="中国"><meta property="article:tag" content="环境">'
    )
    article = page_with(head)
    assert article.lead == "OG 导语"
    assert article.published_at == utc(2024, 1, 9, 9, 5, 12)  # a date without an offset is not trusted
    assert article.extra_categories == ("中国", "环境")


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ('"PT1M30S"', 90),
        ('"PT12M30S"', 750),
        ('"PT1H2M3S"', 3723),
        ('"PT45.6S"', 46),
        ('"P0DT0H5M"', 300),
        ('"PT"', None),
        ('"P"', None),
        ('"PT0S"', None),
        ('"1:30"', None),
        ("90", None),
        ('"PT' + "9" * 400 + 'S"', None),
        ('"PT99999999999H"', None),
    ],
)
def test_audio_object_duration(duration: str, seconds: int | None) -> None:
    audio = with_ld(
        f', "audio": {{"@type": "AudioObject", "contentUrl": "https://aod.example/a.mp3", "duration": {duration}}}'
    )
    assert audio.audio == Enclosure(url="https://aod.example/a.mp3", type="audio/mpeg", duration=seconds)


@pytest.mark.parametrize(
    ("written", "audio"),
    [
        (
            '{"@type": "AudioObject", "contentUrl": "https://a.example/x.m4a", "encodingFormat": "m4a",'
            ' "contentSize": "1234"}',
            Enclosure(url="https://a.example/x.m4a", type="audio/mp4", length=1234),
        ),
        (
            '[{"@type": "VideoObject", "contentUrl": "https://a.example/v.mp4"},'
            ' {"@type": "AudioObject", "contentUrl": "https://a.example/a.mp3", "contentSize": 99}]',
            Enclosure(url="https://a.example/a.mp3", type="audio/mpeg", length=99),
        ),
        ('{"@type": "AudioObject", "name": "没有地址"}', None),
        ('"https://a.example/a.mp3"', None),
    ],
)
def test_audio_object(written: str, audio: Enclosure | None) -> None:
    assert with_ld(f', "audio": {written}').audio == audio


def test_broken_and_foreign_json_ld_blocks_are_skipped() -> None:
    head = (
        '<script type="application/ld+json">{"@type": "NewsArticle", "headline": </script>'
        '<script type="application/ld+json">[1, "x", {"@type": "Organization", "name": "RFI"}]</script>'
        '<script type="text/javascript">{"@type": "NewsArticle", "headline": "脚本里的标题"}</script>'
        '<script type="application/ld+json; charset=utf-8">{"@graph": [{"@type": ["ReportageNewsArticle"], '
        '"headline": "图里的标题", "mainEntityOfPage": "https://www.rfi.fr/cn/中国/20240109-x/"}]}</script>'
    )
    assert page_with(head).title == "图里的标题"


def test_json_ld_text_is_plain_text_and_escapes_are_json() -> None:
    head = (
        '<script type="application/ld+json">{"@type": "NewsArticle", "headline": "\\u4e2d\\u7f8e &amp; <b>欧盟</b>",'
        ' "url": "https:\\/\\/www.rfi.fr\\/cn\\/x", "description": "导语\\n第二行"}</script>'
    )
    article = page_with(head)
    assert article.title == "中美 & 欧盟"
    assert article.lead == "导语 第二行"


def test_lead_image_and_dates_inside_the_body_are_fields_not_body_text() -> None:
    body = (
        '<div class="t-content__body"><p class="t-content__chapo">导语。</p>'
        '<div class="t-content__main-media"><img srcset="https://s.rfi.fr/a.jpg 1x, https://s.rfi.fr/b.jpg 2x"></div>'
        '<p class="m-pub-dates">09/01/2024 - 10:05</p>尾文<p>正文。</p></div>'
    )
    article = page_with("<title>标题</title>", body)
    assert (article.lead, article.image) == ("导语。", "https://s.rfi.fr/a.jpg")
    assert article.body_html == "尾文<p>正文。</p>"


def test_a_broken_url_in_json_ld_is_no_match_not_a_crash() -> None:
    head = (
        '<script type="application/ld+json">[{"@type": "NewsArticle", "headline": "甲", "url": "https://[broken"},'
        ' {"@type": "NewsArticle", "headline": "乙", "url": "/cn/%E4%B8%AD%E5%9B%BD/20240109-x?xtor=RSS-1"}]</script>'
    )
    assert page_with(head).title == "乙"  # a relative url resolves against the page
    broken = '<link rel="canonical" href="https://[broken"><title>标题</title><meta name="og:image" content="i.jpg">'
    assert parse_page(broken, CANONICAL, "broken.html", RFI).url == CANONICAL


def test_markup_that_lxml_cannot_make_a_document_of_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="page HTML cannot be parsed"):
        parse_page("<!-- 只有注释 -->", CANONICAL, "comment.html", RFI)


def test_json_ld_sections_are_plain_text() -> None:
    assert with_ld(', "articleSection": "<b>中国</b> &amp; 亚洲"').extra_categories == ("中国 & 亚洲",)
