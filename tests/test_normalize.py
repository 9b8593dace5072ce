"""normalize.py: canonical URLs, sections, sanitizing, credible dates and the content hash."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from w3lib.url import canonicalize_url

from feeder import normalize as normalize_module
from feeder.errors import ParseError
from feeder.models import Article, ParsedArticle, RawDocument
from feeder.normalize import canonical_url, content_hash, normalize, sanitize_html, sections_of
from feeder.parse import parse_seed
from feeder.rules import UrlRules
from feeder.text import collapse_space, xml_safe
from tests.builders import CHINA_URL, NOW, RFI, rfi_urls, seed_text

HOSTS = ("www.rfi.fr",)
URLS = rfi_urls(*HOSTS)
RETRIEVED = datetime(2024, 6, 1, tzinfo=UTC)
CANONICAL = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-%E7%8E%8B%E6%AF%85-%E4%B8%AD%E7%BE%8E"
RAW_PATH = "/cn/中国/20240109-王毅-中美"
LOWER_PATH = "/cn/%e4%b8%ad%e5%9b%bd/20240109-%e7%8e%8b%e6%af%85-%e4%b8%ad%e7%be%8e"
PARSED = ParsedArticle(
    locator="case.txt",
    url=CHINA_URL,
    title="示例标题",
    scraped_at=datetime(2024, 1, 9, 9, 15, 1, tzinfo=UTC),
    published_at=datetime(2024, 1, 9, 9, 5, tzinfo=UTC),
    lead="这是导语。",
    image="https://s.rfi.fr/a.jpg",
    body_html="<div><p>第一段正文。</p><p>第二段正文。</p></div>",
)


def norm(parsed: ParsedArticle = PARSED, *, retrieved_at: datetime = RETRIEVED, now: datetime = NOW) -> Article:
    return normalize(parsed, urls=URLS, retrieved_at=retrieved_at, now=now)


def from_seed(text: str) -> Article:
    document = RawDocument(source="seeds", locator="case.txt", content=text.encode(), retrieved_at=RETRIEVED)
    return norm(parse_seed(document, RFI))


# --- canonical_url ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        CANONICAL,
        "http://www.rfi.fr" + RAW_PATH,
        "https://www.rfi.fr" + RAW_PATH,
        "https://www.rfi.fr" + LOWER_PATH,
        "http://www.rfi.fr" + LOWER_PATH,
        CANONICAL + "/",
        CANONICAL + "//",
        CANONICAL + "?xtor=RSS-1",
        CANONICAL + "?xtor=RSS-1&utm_source=x&at_medium=y&fbclid=z&gclid=w",
        CANONICAL + "?utm_source=rss&utm_medium=feed&utm_campaign=cn&at_campaign=a&at_xtor=b",
        CANONICAL + "?UTM_Source=X&XTOR=RSS-1",
        CANONICAL + "?",
        CANONICAL + "#xtor=CS1-8-[twitter]",
        CANONICAL + "#",
        CANONICAL + "/?xtor=RSS-1#top",
        "https://WWW.RFI.FR" + RAW_PATH,
        "HTTPS://www.rfi.fr" + RAW_PATH,
        "https://www.rfi.fr:443" + RAW_PATH,
        "http://www.rfi.fr:80" + RAW_PATH,
        "  https://www.rfi.fr" + RAW_PATH + "  ",
        "https://www.rfi.fr" + RAW_PATH + "?utm_source=微博#段落",
    ],
)
def test_every_spelling_of_one_article_is_one_key(spelling: str) -> None:
    assert canonical_url(spelling, URLS) == CANONICAL


def test_the_canonical_key_is_stable() -> None:
    assert canonical_url(canonical_url(CANONICAL + "?xtor=1", URLS), URLS) == CANONICAL


def test_other_query_parameters_are_kept_in_a_stable_order() -> None:
    assert canonical_url(CANONICAL + "?page=2&xtor=RSS-1&lang=zh", URLS) == CANONICAL + "?lang=zh&page=2"
    assert canonical_url(CANONICAL + "?lang=zh&page=2", URLS) == CANONICAL + "?lang=zh&page=2"


def test_a_port_other_than_80_or_443_is_kept() -> None:
    assert canonical_url("https://www.rfi.fr:8443" + RAW_PATH, URLS) == "https://www.rfi.fr:8443" + CANONICAL[18:]
    assert canonical_url("http://www.rfi.fr:8080/cn/x/y", URLS) == "https://www.rfi.fr:8080/cn/x/y"


def test_user_info_is_dropped() -> None:
    assert canonical_url("https://user:secret@www.rfi.fr" + RAW_PATH, URLS) == CANONICAL


def test_several_allowed_hosts() -> None:
    hosts = ("www.rfi.fr", "127.0.0.1")
    assert (
        canonical_url("http://127.0.0.1:8080/cn/中国/x", rfi_urls(*hosts))
        == "https://127.0.0.1:8080/cn/%E4%B8%AD%E5%9B%BD/x"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://www.rfi.fr.example.net" + RAW_PATH, "host 'www.rfi.fr.example.net' is not an allowed host"),
        ("https://example.net/www.rfi.fr" + RAW_PATH, "host 'example.net' is not an allowed host"),
        ("https://www.rfi.fr@evil.example" + RAW_PATH, "host 'evil.example' is not an allowed host"),
        ("https://rfi.fr" + RAW_PATH, "host 'rfi.fr' is not an allowed host"),
        ("https://cn.rfi.fr/中国/20100101-x", "host 'cn.rfi.fr' is not an allowed host"),
        ("https://m.cn.rfi.fr/中国/20100101-x", "host 'm.cn.rfi.fr' is not an allowed host"),
        ("https://rfi.my/AEz8.F", "host 'rfi.my' is not an allowed host"),
        ("https://www.bbc.com/zhongwen/simp/world-1", "host 'www.bbc.com' is not an allowed host"),
        ("https://xn--rfi-xxx.fr/cn/x/y", "is not an allowed host"),
        ("https://[::1]/cn/x/y", "host '::1' is not an allowed host"),
        ("ftp://www.rfi.fr/cn/x/y", "not an absolute http(s) URL"),
        ("javascript:alert(1)//www.rfi.fr/cn/x", "not an absolute http(s) URL"),
        ("data:text/html,www.rfi.fr", "not an absolute http(s) URL"),
        ("file:///etc/passwd", "not an absolute http(s) URL"),
        ("//www.rfi.fr/cn/x/y", "not an absolute http(s) URL"),
        ("/cn/中国/20240109-x", "not an absolute http(s) URL"),
        ("www.rfi.fr/cn/中国/20240109-x", "not an absolute http(s) URL"),
        ("https:///cn/x/y", "not an absolute http(s) URL"),
        ("", "not an absolute http(s) URL"),
        ("https://[::1/cn/x/y", "is not a valid URL"),
        ("https://[www.rfi.fr]/cn/x/y", "is not a valid URL"),
        ("https://www.rfi.fr:http/cn/x/y", "is not a valid URL"),
        ("https://www.rfi.fr:70000/cn/x/y", "is not a valid URL"),
    ],
)
def test_urls_off_rfi_or_broken_are_refused(url: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        canonical_url(url, URLS)
    assert message in str(caught.value)


def test_an_empty_allowlist_refuses_everything() -> None:
    with pytest.raises(ParseError, match="is not an allowed host"):
        canonical_url(CANONICAL, UrlRules(frozenset()))


# The shortcuts for URLs already in canonical form must give what the general case gives, for any URL: the URLs
# drawn are plain but for at most one odd piece, so that many take a shortcut and the rest only just miss it.
PLAIN_PIECES = ["a", "Z", "0", "-", "_", "~", ".", "%E4", "%B8%AD", "w:1280", "p:16x9", "A-b", "xn--"]
ODD_PIECES = [
    "..", "%", "%e4", "%41", "%2F", "%3F", "%25", "%7e", "中国", "é", ":", "@", "!", "$", "*", "+", ",", "=", ";",
    "&", "'", "(", "[", "|", "^", "`", "{", " ", "\t", "\\", "?", "#", "/", "//", "?a=1", "#x",
]  # fmt: skip
PLAIN_HOSTS = ["www.rfi.fr", "s.rfi.fr", "127.0.0.1", "a-b.example"]
ODD_HOSTS = ["WWW.rfi.fr", "www.rfi.fr.", "rfi.fr", "0x7f.1", "www.rfi.fr:443", "www.rfi.fr:8080", "user@www.rfi.fr",
             "xn--rfi-xxx.fr", "[::1]", ""]  # fmt: skip
ANY_HOSTS = ("www.rfi.fr", "127.0.0.1", "0x7f.1", "a-b.example", "s.rfi.fr", "xn--rfi-xxx.fr")


@st.composite
def urls(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.lists(st.sampled_from(PLAIN_PIECES), min_size=1, max_size=4), max_size=5))
    pieces = [piece for segment in segments for piece in ["/", *segment]]
    odd = draw(st.sampled_from(["", "scheme", "host", "end", "piece"]))
    if odd == "piece" and pieces:
        pieces.insert(draw(st.integers(0, len(pieces))), draw(st.sampled_from(ODD_PIECES)))
    scheme = draw(st.sampled_from(["HTTP", "ftp"] if odd == "scheme" else ["https", "http"]))
    host = draw(st.sampled_from(ODD_HOSTS if odd == "host" else PLAIN_HOSTS))
    end = draw(st.sampled_from(["/", "?", "?a=1", "#x", "/.."])) if odd == "end" else ""
    return f"{scheme}://{host}{''.join(pieces)}{end}"


def canonical_or_error(url: str, canonical: Callable[[str, UrlRules], str]) -> str:
    try:
        return canonical(url, rfi_urls(*ANY_HOSTS))
    except ParseError as e:
        return f"ParseError: {e}"


@settings(max_examples=2000)
@given(urls())
@example("https://www.rfi.fr" + CANONICAL[18:])
@example("https://www.rfi.fr/cn/%E4%B8%AD/./x")
@example("https://www.rfi.fr/cn/%E4%B8%AD/../x")
@example("https://127.0.0.1/a")
def test_the_shortcut_for_canonical_urls_agrees_with_the_general_case(url: str) -> None:
    assert canonical_or_error(url, canonical_url) == canonical_or_error(url, normalize_module._canonical_url)


def test_rfi_article_urls_take_the_shortcut() -> None:
    assert normalize_module._PLAIN_URL.fullmatch(CANONICAL)
    assert canonicalize_url(CANONICAL) == CANONICAL


@settings(max_examples=2000)
@given(urls())
@example("https://s.rfi.fr/media/display/cd613e30d8f16adf91b7584a2265b1f5/w:1280/p:16x9/c386bbc4.jpg")
@example("https://s.rfi.fr/a/./b.jpg")
def test_the_shortcut_for_plain_image_urls_agrees_with_the_general_case(url: str) -> None:
    shortcut = normalize_module._safe_image(url, base_url=CANONICAL)
    assert shortcut == normalize_module._resolved_image(url, base_url=CANONICAL)


def test_rfi_image_urls_take_the_shortcut() -> None:
    image = "https://s.rfi.fr/media/display/cd613e30d8f16adf91b7584a2265b1f5/w:1280/p:16x9/c386bbc4.jpg"
    assert normalize_module._PLAIN_ABSOLUTE_URL.fullmatch(image)


# --- sections_of ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "section", "categories"),
    [
        (CANONICAL, "中国", ("中国",)),
        ("https://www.rfi.fr/cn/%E6%B3%95%E5%9B%BD/20240101-x", "法国", ("法国",)),
        ("https://www.rfi.fr/cn/科技与文化/20240101-x", "科技与文化", ("科技与文化",)),
        (
            "https://www.rfi.fr/cn/%E4%B8%93%E6%A0%8F%E6%A3%80%E7%B4%A2/%E6%B3%95%E5%9B%BD%E6%8A%A5%E6%91%98/20240101-x",
            "专栏检索",
            ("专栏检索", "法国报摘"),
        ),
        ("https://www.rfi.fr/cn/20240101-x", None, ()),  # no folder between /cn/ and the slug
        ("https://www.rfi.fr/cn/", None, ()),
        ("https://www.rfi.fr/", None, ()),
        ("https://www.rfi.fr/fr/france/20240101-x", None, ()),  # not the Chinese site
        ("https://www.rfi.fr/tw/中國/20240101-x", None, ()),
    ],
)
def test_sections_of(url: str, section: str | None, categories: tuple[str, ...]) -> None:
    assert sections_of(url, URLS) == (section, categories)


def sections_from_every_segment(url: str) -> tuple[str | None, tuple[str, ...]]:
    """sections_of as it was before it cached its answer per folder: every segment unquoted, every time."""
    segments = [unquote(s) for s in urlsplit(url).path.split("/") if s]
    if len(segments) >= 3 and segments[0] == "cn":
        folders = tuple(collapse_space(xml_safe(s)) for s in segments[1:-1])
        return (folders[0] if normalize_module.is_section_name(folders[0]) else None), tuple(f for f in folders if f)
    return None, ()


SEGMENTS = st.sampled_from(["cn", "fr", "中国", "%E4%B8%AD", "%20", ".", "x y", "%2F", "a", "", "\x00", "..."])


@settings(max_examples=500)
@given(st.lists(SEGMENTS, max_size=5), st.sampled_from(["", "/", "//", "?a=1", "#x"]))
def test_sections_are_what_every_segment_gives(segments: list[str], end: str) -> None:
    url = "https://www.rfi.fr/" + "/".join(segments) + end
    assert sections_of(url, URLS) == sections_from_every_segment(url)


def test_normalize_fills_section_and_categories_from_the_canonical_url() -> None:
    deep = "https://www.rfi.fr/cn/专栏检索/法国报摘/20240101-x?xtor=RSS-1"
    article = norm(dataclasses.replace(PARSED, url=deep))
    assert article.section == "专栏检索"
    assert article.categories == ("专栏检索", "法国报摘")


# --- sanitize_html --------------------------------------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<style>p { display: none }</style>",
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="jav&#x61;script:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<img src="x" onerror="alert(1)">',
    "<img src=x onerror=alert(1)//>",
    '<p onclick="alert(1)" onmouseover="alert(2)">x</p>',
    '<body onload="alert(1)">x</body>',
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><script>alert(1)</script></mtext></math>",
    '<iframe src="https://evil.example/"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<form action="https://evil.example/"><input name="pw"><button formaction="javascript:alert(1)">b</button></form>',
    '<object data="https://evil.example/x.swf"></object>',
    '<embed src="https://evil.example/x.swf">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<a href="https://www.rfi.fr/" onfocus="alert(1)" autofocus>x</a>',
    '<video><source onerror="alert(1)"></video>',
    '<details open ontoggle="alert(1)">x</details>',
    "<!--<img src=x onerror=alert(1)>-->",
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
]
FORBIDDEN = ("<script", "javascript:", "vbscript:", "data:", "<svg", "<math", "<iframe", "<form", "<input", "<button",
             "<object", "<embed", "<base", "<meta", "<link", "<style", "style=", "srcdoc", "<body")  # fmt: skip
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


@pytest.mark.parametrize("attack", XSS)
def test_sanitize_html_removes_attacks_and_keeps_the_innocent_text(attack: str) -> None:
    cleaned = sanitize_html(f"<p>前文</p>{attack}<p>后文</p>")
    lowered = cleaned.lower()
    for marker in FORBIDDEN:
        assert marker not in lowered
    assert not EVENT_HANDLER.search(cleaned)
    assert cleaned.startswith("<p>前文</p>")
    assert cleaned.endswith("<p>后文</p>")


def test_sanitize_html_keeps_the_article_markup() -> None:
    kept = [
        "<h2>小标题</h2>",
        "<p><strong>粗</strong><em>斜</em></p>",
        '<a href="https://www.rfi.fr/cn/x" title="t" rel="noopener noreferrer">链接</a>',
        '<figure><img src="https://s.rfi.fr/a.jpg" alt="图" width="640" height="360">',
        "<figcaption>说明</figcaption></figure>",
        "<blockquote><p>引语</p></blockquote>",
        "<ul><li>一</li></ul>",
        '<table><tbody><tr><td colspan="2">格</td></tr></tbody></table>',
    ]
    assert sanitize_html("".join(kept)) == "".join(kept)


def test_sanitize_html_unwraps_unknown_containers_but_keeps_their_text() -> None:
    assert sanitize_html('<div class="x"><span id="y">文字</span><section><p>段落</p></section></div>') == (
        "文字<p>段落</p>"
    )


def test_links_open_without_giving_the_target_page_a_handle() -> None:
    cleaned = sanitize_html('<a href="https://www.rfi.fr/" target="_blank" rel="opener">x</a>')
    assert 'rel="noopener noreferrer"' in cleaned
    assert "target" not in cleaned


def test_relative_urls_cannot_survive_sanitizing() -> None:
    cleaned = sanitize_html('<a href="/cn/x">x</a><img src="a.jpg">')
    assert "/cn/x" not in cleaned
    assert "a.jpg" not in cleaned


def test_sanitize_html_output_is_xml_safe() -> None:
    assert sanitize_html("<p>a\x00b\x0bc&#x1f;d\ufffee</p>") == "<p>abcde</p>"


# --- xml_safe and collapse_space ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("中文 English 😀", "中文 English 😀"),
        ("tab\tline\ncarriage\r", "tab\tline\ncarriage\r"),
        ("".join(chr(c) for c in range(0x20)), "\t\n\r"),
        ("a\x0bb\x0cc", "abc"),
        ("a\ud800b\udfffc", "abc"),
        ("a\ufffeb\uffffc", "abc"),
        ("a\x7fb\x85c\u2028d", "abc\u2028d"),  # DEL and C1 are legal in XML 1.0, but validators flag them
        ("a\x80b\x9fc", "abc"),
        ("lost\ufffd", "lost"),  # bytes lost in decoding: flagged too
        ("\ufdd0\ufdef", ""),
        ("\x1b[1;31m红\x1b[0m字", "红字"),  # a terminal colour, whole: no "[0m" left behind
        ("\x1b]0;窗口\x07正文\x1b]2;x\x1b\\", "正文"),
        ("\x9b32m C1 CSI", " C1 CSI"),
        ("\x1b(B\x1bM", ""),
        ("ESC at the end\x1b", "ESC at the end"),
        ("", ""),
    ],
)
def test_xml_safe(text: str, safe: str) -> None:
    assert xml_safe(text) == safe


def test_collapse_space() -> None:
    assert collapse_space("\u3000 一 \t\n 二\u00a0三  ") == "一 二 三"


# --- credible times ------------------------------------------------------------------------------------------


def test_the_scrape_time_is_the_version_time_and_the_date_div_is_published() -> None:
    article = norm()
    assert article.version_at == datetime(2024, 1, 9, 9, 15, 1, tzinfo=UTC)
    assert article.published == datetime(2024, 1, 9, 9, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("scraped_at", "version_at"),
    [
        (None, RETRIEVED),
        (NOW + timedelta(days=1, seconds=1), RETRIEVED),  # beyond the clock skew allowance
        (NOW + timedelta(days=30), RETRIEVED),
        (datetime(1989, 12, 31, 23, 59, 59, tzinfo=UTC), RETRIEVED),
        (datetime(1970, 1, 1, tzinfo=UTC), RETRIEVED),
        (NOW + timedelta(hours=23), NOW + timedelta(hours=23)),  # within one day: a clock slightly ahead
        (NOW + timedelta(days=1), NOW + timedelta(days=1)),
        (datetime(1990, 1, 1, tzinfo=UTC), datetime(1990, 1, 1, tzinfo=UTC)),
        (datetime(2024, 1, 9, 9, 15, 1, 999999, tzinfo=UTC), datetime(2024, 1, 9, 9, 15, 1, tzinfo=UTC)),
    ],
)
def test_an_incredible_scrape_time_falls_back_to_retrieved_at(
    scraped_at: datetime | None, version_at: datetime
) -> None:
    assert norm(dataclasses.replace(PARSED, scraped_at=scraped_at)).version_at == version_at


@pytest.mark.parametrize(
    "published_at",
    [None, datetime(1970, 1, 1, tzinfo=UTC), datetime(1989, 12, 31, tzinfo=UTC), NOW + timedelta(days=2)],
)
def test_an_incredible_publication_time_falls_back_to_the_version_time(published_at: datetime | None) -> None:
    article = norm(dataclasses.replace(PARSED, published_at=published_at))
    assert article.published == article.version_at == datetime(2024, 1, 9, 9, 15, 1, tzinfo=UTC)


def test_without_any_scrape_time_published_comes_from_the_date_div_and_version_from_retrieved_at() -> None:
    article = norm(dataclasses.replace(PARSED, scraped_at=None))
    assert article.published == datetime(2024, 1, 9, 9, 5, tzinfo=UTC)
    assert article.version_at == RETRIEVED


def test_date_before_1990_through_a_seed_falls_back_to_the_scrape_time() -> None:
    article = from_seed(seed_text(date_div="01/01/1970 - 00:00"))
    assert article.published == datetime(2024, 1, 9, 9, 15, 1, tzinfo=UTC)
    assert "1970" not in article.content_html


def test_times_are_utc_whole_seconds() -> None:
    article = norm(dataclasses.replace(PARSED, scraped_at=datetime(2024, 1, 9, 9, 15, 1, 500000, tzinfo=UTC)))
    assert article.version_at.microsecond == 0
    assert article.version_at.utcoffset() == timedelta(0)
    assert article.published.utcoffset() == timedelta(0)


# --- the rest of normalize ---------------------------------------------------------------------------------


def test_normalize_composes_image_lead_and_body() -> None:
    article = norm()
    assert article.url == "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-example-article"
    assert article.author is None
    assert article.content_html == (
        '<figure><img src="https://s.rfi.fr/a.jpg" alt=""></figure><p><strong>这是导语。</strong></p>'
        "<p>第一段正文。</p><p>第二段正文。</p>"
    )


def test_lead_is_collapsed_and_escaped_in_the_content() -> None:
    article = norm(dataclasses.replace(PARSED, lead="  A <b> &amp;amp; B\x00  \n C "))
    assert article.lead == "A <b> & B C"  # a reference a double escape left behind is decoded too
    assert "<p><strong>A &lt;b&gt; &amp; B C</strong></p>" in article.content_html


@pytest.mark.parametrize(
    "image",
    ["javascript:alert(1)", "data:image/png;base64,AAAA", "ftp://s.rfi.fr/a.jpg", "", "   "],
)
def test_an_image_that_is_not_http_is_dropped(image: str) -> None:
    article = norm(dataclasses.replace(PARSED, image=image))
    assert article.image is None
    assert "<figure>" not in article.content_html
    assert "<img" not in article.content_html


def test_an_image_url_is_made_safe() -> None:
    article = norm(dataclasses.replace(PARSED, image='https://s.rfi.fr/a b"<x>.jpg'))
    assert article.image == "https://s.rfi.fr/a%20b%22%3Cx%3E.jpg"
    assert f'<img src="{article.image}" alt="">' in article.content_html


def test_an_article_off_the_allowlist_is_refused() -> None:
    with pytest.raises(ParseError, match="is not an allowed host"):
        norm(dataclasses.replace(PARSED, url="https://www.rfi.fr.example.net/cn/中国/x"))


# --- content_hash ---------------------------------------------------------------------------------------------

INVISIBLE_CHANGES = {
    "scrape time": seed_text(scraped_ms=1704791999000),
    "publication minute": seed_text(date_div="09/01/2024 - 10:06"),
    "share short-link code": seed_text().replace("AB12", "ZZ99"),
    "url spelling": seed_text(url="http://www.rfi.fr/cn/中国/20240109-example-article/?xtor=RSS-1#top"),
    "class attribute": seed_text(body='<p class="x">第一段正文。</p><p>第二段正文。</p>'),
    "event handler": seed_text(body='<p onclick="x()">第一段正文。</p><p>第二段正文。</p>'),
    "script": seed_text(body="<p>第一段正文。</p><script>var a = 1;</script><p>第二段正文。</p>"),
    "comment": seed_text(body="<p>第一段正文。<!-- v2 --></p><p>第二段正文。</p>"),
    "character reference": seed_text(body="<p>第一段正文&#12290;</p><p>第二段正文。</p>"),
    "lead spacing": seed_text(lead="  这是导语。   "),
    "control character": seed_text(body="<p>第一段\x00正文。</p><p>第二段正文。</p>"),
    "crlf": seed_text().replace("\n", "\r\n"),
    "whitespace between paragraphs": seed_text(body="<p>第一段正文。</p>\n  <p>第二段正文。</p>"),
}
VISIBLE_CHANGES = {
    "title": seed_text(title="新标题"),
    "lead": seed_text(lead="新的导语。"),
    "image": seed_text(image="https://s.rfi.fr/media/other.jpg"),
    "no image": seed_text(image=None),
    "body text": seed_text(body="<p>第一段正文！</p><p>第二段正文。</p>"),
    "paragraph added": seed_text(body="<p>第一段正文。</p><p>第二段正文。</p><p>第三段。</p>"),
    "paragraphs merged": seed_text(body="<p>第一段正文。第二段正文。</p>"),
    "emphasis": seed_text(body="<p><strong>第一段正文。</strong></p><p>第二段正文。</p>"),
    "link target": seed_text(body='<p><a href="https://www.rfi.fr/a">第一段正文。</a></p><p>第二段正文。</p>'),
    "section": seed_text(url="https://www.rfi.fr/cn/%E6%B3%95%E5%9B%BD/20240109-example-article"),
}


@pytest.mark.parametrize("variant", INVISIBLE_CHANGES.values(), ids=INVISIBLE_CHANGES.keys())
def test_content_hash_ignores_what_a_reader_cannot_see(variant: str) -> None:
    assert from_seed(variant).content_hash == from_seed(seed_text()).content_hash


@pytest.mark.parametrize("variant", VISIBLE_CHANGES.values(), ids=VISIBLE_CHANGES.keys())
def test_content_hash_changes_with_what_a_reader_sees(variant: str) -> None:
    assert from_seed(variant).content_hash != from_seed(seed_text()).content_hash


def test_relative_links_do_not_depend_on_the_url_spelling() -> None:
    # BUG: parse resolves relative links against the URL as written, so an http:// spelling gives http:// links
    # (and another content hash) for the very same article.
    body = '<p>见<a href="/cn/法国/20240101-x">此文</a><img src="//s.rfi.fr/a.jpg"></p>'
    https = from_seed(seed_text(body=body, image="//s.rfi.fr/lead.jpg"))
    http = from_seed(seed_text(url=CHINA_URL.replace("https://", "http://"), body=body, image="//s.rfi.fr/lead.jpg"))
    assert http.url == https.url
    assert "http://" not in http.content_html
    assert http.image == https.image == "https://s.rfi.fr/lead.jpg"
    assert http.content_hash == https.content_hash


def test_content_hash_is_a_sha256_of_every_visible_field() -> None:
    base = content_hash("标题", "导语", None, "<p>正文</p>", ("中国",))
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert base == content_hash("标题", "导语", None, "<p>正文</p>", ("中国",))
    assert base != content_hash("标题", "导语", None, "<p>正文</p>", ("中国", "法国报摘"))
    assert base != content_hash("标题", "导语", "https://s.rfi.fr/a.jpg", "<p>正文</p>", ("中国",))
    assert base != content_hash("标题导语", "", None, "<p>正文</p>", ("中国",))  # fields cannot run into each other


def test_the_fully_qualified_host_spelling_is_the_same_article() -> None:
    assert canonical_url("https://www.rfi.fr./cn/x/y", URLS) == "https://www.rfi.fr/cn/x/y"


def test_a_relative_lead_image_resolves_against_the_canonical_url() -> None:
    article = norm(dataclasses.replace(PARSED, image="/relative.jpg", url=PARSED.url.replace("https:", "http:")))
    assert article.image == "https://www.rfi.fr/relative.jpg"


@pytest.mark.parametrize(
    ("title", "expected"),
    [("AT&T 与 <b>", "AT&T 与"), ("甲 < 乙", "甲 < 乙"), ("A <img src=x onerror=alert(1)> B", "A B")],
)
def test_titles_lose_text_that_looks_like_a_tag(title: str, expected: str) -> None:
    assert norm(dataclasses.replace(PARSED, title=title)).title == expected


def test_a_title_that_is_only_markup_is_refused() -> None:
    with pytest.raises(ParseError, match="title is empty"):
        norm(dataclasses.replace(PARSED, title="<script>"))
