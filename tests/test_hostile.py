"""Hostile content: fuzzed inputs never crash the parsers or the renderer, and no XSS vector reaches a feed.

Two halves. Property-based fuzzing (hypothesis, derandomized, no example database) throws random bytes and
mutations of the real fixtures at every parser, and arbitrary text at the renderer: the parsers must return
or raise ParseError, nothing else (the server's request heads: a request or a status code that refuses it),
and every rendered file must be well-formed. Then an XSS corpus
(tests/data/xss/vectors.txt, one vector per line) goes through a seed file processed by the real
``feeder refresh`` and through an RFI article page (parse_page → normalize → render): in every published
Atom, RSS and JSON Feed file, read with feedparser and by parsing the raw content HTML with lxml, no
dangerous element, attribute or URL scheme survives, and the innocent text around each vector does.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import lxml.etree
import lxml.html
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from feeder.config import FeedConfig
from feeder.errors import ParseError
from feeder.models import Article, Entry, ParsedArticle, RawDocument
from feeder.normalize import normalize
from feeder.parse import decode_html, parse_feed, parse_page, parse_seed
from feeder.render import render_feed
from feeder.request_head import HeadReader, Request
from feeder.text import plain_text, xml_safe
from tests.builders import CHINA_URL, NOW, RFI, config_text, rfi_urls, run_feeder, seed_text, write_seed

DATA = Path(__file__).parent / "data"
VECTORS = [line for line in (DATA / "xss" / "vectors.txt").read_text(encoding="utf-8").splitlines() if line]
PAGES = sorted((DATA / "rfi").glob("*.html"))
FEEDS = sorted((DATA / "rfi").glob("*.xml")) + sorted(p for p in (DATA / "feeds").iterdir() if "expected" not in p.name)
ALLOWED_HOSTS = ("www.rfi.fr",)
SECTION = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/"
BASE = "http://127.0.0.1:8080/"
FORMATS = ("atom", "rss", "json")
FEED = FeedConfig(
    name="rfi-cn", title="RFI 中文", description="测试", sources=("seeds",), language="zh-cn", author="RFI"
)

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"

# Hypothesis keeps caches (Unicode tables, constants) in ./.hypothesis/ even without an example database: keep the
# project folder clean, as -p no:cacheprovider does for pytest.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "feeder-hypothesis"))
FUZZ = settings(
    derandomize=True,  # the same examples on every run: a failure here is a failure everywhere
    database=None,  # no example database
    deadline=None,
    max_examples=int(os.environ.get("FEEDER_FUZZ_EXAMPLES", "2500")),  # more for a long hunt; ~2 s per test here
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
RENDER_FUZZ = settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 8))


# Fuzzing: inputs -------------------------------------------------------------------------------------------------

# Bytes that mean something to one of the parsers: markup, entities, line structure, encodings.
TOKENS = [
    b"<",
    b">",
    b"</div>",
    b"<div>",
    b"<p>",
    b"<img src=",
    b"<!--",
    b"-->",
    b"<![CDATA[",
    b"]]>",
    b"&",
    b"&#",
    b"&#x1F;",
    b"&#0;",
    b"&amp;",
    b"&nbsp",
    b'"',
    b"'",
    b"[",
    b"](",
    b")",
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\x0b",
    b"\xff",
    b"\xfe\xff",
    b"\xef\xbb\xbf",
    b"\xe4\xb8",
    "中国".encode(),
    b"<!--99999999999999999-->",
    b"<!---1-->",
    b"------",
    b"31/02/2024 - 25:61",
    b"<div>09/01/2024 - 10:05</div>",
    b"https://www.rfi.fr.example.net/",
    b"http://[::1",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b'<meta charset="utf-7">',
    b'<meta charset="gbk">',
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"&a;",
    b'<script type="application/ld+json">',
    b"</script>",
    b'{"@type":"NewsArticle","headline":',
    b"<item><title>t</title><link>https://www.rfi.fr/cn/x</link></item>",
    b"<entry>",
    b"<rss>",
]


# Well-formed snippets to put between two tags: they keep an XML document parseable (most of them) and an
# HTML document meaningful, so the fuzzing reaches past the well-formedness check.
SNIPPETS = [
    b"&amp;",
    b"&lt;b&gt;x&lt;/b&gt;",
    b"<![CDATA[<script>alert(1)</script>]]>",
    b"<![CDATA[]]>",
    "中文".encode(),
    b"&#x4E2D;",
    b"&#1;",
    b"<!-- c -->",
    b"<?pi x?>",
    b"<x:y xmlns:x='urn:x'/>",
    b"<b>\xe7\xb2\x97</b>",
    b"<img src=x onerror=alert(1)>",
    b" " * 300,
    b"https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-x",
    b"Tue, 30 Feb 2024 25:00:00 GMT",
    b"2024-01-09T09:05:12+99:00",
]
_ELEMENT = re.compile(rb"<(item|entry|p|div|script|meta|link)\b[^>]*>.*?</\1>|<(meta|link|img)\b[^>]*>", re.DOTALL)


ALL_EDITS = ("insert", "token", "snippet", "element", "delete", "replace", "line", "cut")
XML_EDITS = ("snippet", "snippet", "element", "element", "token", "cut")  # mostly edits XML survives


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes], operations: tuple[str, ...] = ALL_EDITS) -> bytes:
    """A base document with a few random edits: bytes, tokens or snippets inserted, ranges deleted or replaced,
    lines or elements duplicated, swapped or dropped, the end cut off."""
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(operations))
        at = draw(st.integers(0, len(data)))
        if operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif operation == "snippet":
            ends = [m.end() for m in re.finditer(rb">", data)] or [at]
            spot = draw(st.sampled_from(ends))
            data[spot:spot] = draw(st.sampled_from(SNIPPETS))
        elif operation == "element":
            data = bytearray(_edit_element(draw, bytes(data)))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif operation == "replace":
            data[at : at + 1] = bytes([draw(st.integers(0, 255))])
        elif operation == "line":
            lines = bytes(data).split(b"\n")
            first, second = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
            if draw(st.booleans()):
                lines.insert(second, lines[first])
            else:
                lines[first], lines[second] = lines[second], lines[first]
            data = bytearray(b"\n".join(lines))
        else:
            del data[at:]
    return bytes(data)


def _edit_element(draw: st.DrawFn, data: bytes) -> bytes:
    """Duplicate, drop or move one whole element (an item, an entry, a paragraph, a script…)."""
    spans = [m.span() for m in _ELEMENT.finditer(data)]
    if not spans:
        return data
    start, end = draw(st.sampled_from(spans))
    element = data[start:end]
    how = draw(st.sampled_from(["duplicate", "drop", "move"]))
    if how == "duplicate":
        return data[:end] + element + data[end:]
    rest = data[:start] + data[end:]
    if how == "drop":
        return rest
    spot = draw(st.integers(0, len(rest)))
    return rest[:spot] + element + rest[spot:]


def seed_bases() -> list[bytes]:
    hostile_body = "<p>第一段</p>" + "".join(VECTORS[:20]) + "<p>第二段</p>"
    return [
        seed_text().encode("utf-8"),
        seed_text(share=False, image=None, date_div=None).encode("utf-8"),
        seed_text(body=hostile_body, title="标题 &amp; <b>粗</b>").encode("utf-8"),
        ("\ufeff" + seed_text()).replace("\n", "\r\n").encode("utf-8"),
    ]


SEEDS = seed_bases()
FIXED = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def random_or_mutated(bases: list[bytes], operations: tuple[str, ...] = ALL_EDITS) -> st.SearchStrategy[bytes]:
    """Random bytes (a third) or a mutated fixture (two thirds)."""
    return st.one_of(st.binary(max_size=1024), mutated(bases, operations), mutated(bases, operations))


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            None,
            "text/html",
            "text/html; charset=utf-8",
            'text/html; charset="GB2312"',
            "text/html; charset=utf-16",
            "text/html; charset=utf-7",
            "text/html; charset=base64",
            "text/html; charset=rot13",
            "text/html; charset=idna",
            "text/html; charset=nonsense",
            "text/html; charset=",
        ]
    ),
    st.text(max_size=40).map(lambda s: f"text/html; charset={s}"),
)


# Fuzzing: the checks -----------------------------------------------------------------------------------------------


def normalized(article: ParsedArticle) -> Article | None:
    """normalize() with fixed clocks: an Article, or None for a ParseError (anything else propagates)."""
    try:
        return normalize(article, urls=rfi_urls(*ALLOWED_HOSTS), retrieved_at=FIXED, now=FIXED)
    except ParseError:
        return None


def assert_clean_article(article: Article | None) -> None:
    """What normalize() returns is safe to render: XML-legal text and sanitized HTML."""
    if article is None:
        return
    for text in (article.title, article.lead, article.content_html, *article.categories, article.author or ""):
        assert xml_safe(text) == text, f"XML-illegal character left in {text!r}"
    assert html_problems(article.content_html) == [], article.content_html


@FUZZ
@given(random_or_mutated(SEEDS))
def test_parse_seed_returns_an_article_or_a_parse_error(data: bytes) -> None:
    document = RawDocument(source="seeds", locator="fuzz.txt", content=data, retrieved_at=FIXED)
    try:
        article = parse_seed(document, RFI)
    except ParseError:
        return
    assert isinstance(article, ParsedArticle)
    assert_clean_article(normalized(article))


PAGE_BYTES = [path.read_bytes() for path in PAGES]


@FUZZ
@given(random_or_mutated(PAGE_BYTES), CONTENT_TYPES)
def test_parse_page_returns_an_article_or_a_parse_error(data: bytes, content_type: str | None) -> None:
    url = SECTION + "20240109-fuzz"
    try:
        article = parse_page(decode_html(data, content_type), url, url, RFI)
    except ParseError:
        return
    assert isinstance(article, ParsedArticle)
    assert_clean_article(normalized(article))


# The well-formed feeds weigh three times as much as the hostile ones (XXE, billion laughs, malformed).
FEED_BYTES = [path.read_bytes() for path in FEEDS] + [p.read_bytes() for p in FEEDS if p.name.startswith("rss_")] * 2


@FUZZ
@given(random_or_mutated(FEED_BYTES, XML_EDITS))
def test_parse_feed_returns_a_list_or_a_parse_error(data: bytes) -> None:
    try:
        articles = parse_feed(data, "fuzz.xml")
    except ParseError:
        return
    assert isinstance(articles, list)
    for article in articles:
        assert isinstance(article, ParsedArticle)
        assert_clean_article(normalized(article))


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0" encoding="utf-8">\n<rss version="2.0"><channel></channel></rss>',
        b'<?xml\x00\tencoding=""',
    ],
)
def test_a_broken_xml_declaration_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(data, "broken.xml")


# Fuzzing the server's request heads (llhttp and the checks around it) ------------------------------------------

HEADS = [
    b'GET /rfi-cn.atom HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: "abc"\r\nAccept-Encoding: gzip\r\n\r\n',
    b"HEAD /sub/?q=1 HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\n\r\n",
]


@FUZZ
@given(st.one_of(st.binary(max_size=512), mutated(HEADS, ("insert", "replace", "delete", "line", "cut"))))
def test_a_request_head_reads_as_a_request_or_a_refusal(data: bytes) -> None:
    head = data + b"\r\n\r\n"
    head = head[: head.index(b"\r\n\r\n") + 4]  # as serve.py cuts the stream
    request = HeadReader().read(head)
    if not isinstance(request, Request):
        assert request in (400, 405, 413, 414, 431, 505)
        return
    assert request.method in ("GET", "HEAD")
    assert head.startswith(f"{request.method} {request.target} HTTP/{request.version}\r\n".encode("latin-1"))
    assert request.version in ("1.0", "1.1")
    assert request.headers.get("content-length", "0") == "0"
    assert "transfer-encoding" not in request.headers
    assert request.version == "1.0" or "host" in request.headers


# Fuzzing the sanitizer with markup built from hostile parts ----------------------------------------------------

TAGS = (
    "a", "img", "p", "div", "svg", "math", "style", "script", "iframe", "table", "td", "form", "button", "noscript",
    "template", "object", "select", "textarea", "title", "mglyph", "mtext", "xmp", "figure",
)  # fmt: skip
ATTRIBUTES = (
    "href", "src", "srcset", "style", "onerror", "onload", "formaction", "xlink:href", "title", "alt", "background",
    "action", "data", "srcdoc", "class", "data-selfpromo",
)  # fmt: skip
VALUES = [
    "javascript:alert(1)",
    "java&#9;script:alert(1)",
    "&#106;avascript&colon;alert(1)",
    " &#1;javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:x",
    "https://www.rfi.fr/cn/",
    "/cn/relative",
    "//evil.example/x",
    'x" onerror="alert(1)',
    "</style><img src=x onerror=alert(1)>",
    "<!--",
]


@st.composite
def hostile_markup(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(VECTORS)))
            continue
        tag = draw(st.sampled_from(TAGS))
        attributes = draw(st.lists(st.tuples(st.sampled_from(ATTRIBUTES), st.sampled_from(VALUES)), max_size=3))
        quote = draw(st.sampled_from(['"', "'", ""]))
        written = "".join(f" {name}={quote}{value}{quote}" for name, value in attributes)
        inner = draw(st.sampled_from(["", "文字", "<img src=x onerror=alert(1)>", "</p>", "&lt;b&gt;"]))
        close = draw(st.sampled_from([f"</{tag}>", ""]))
        parts.append(f"<{tag}{written}>{inner}{close}")
    return "".join(parts)


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 5))
@given(hostile_markup())
def test_sanitized_content_never_holds_what_a_reader_would_run(markup: str) -> None:
    body = f"<p>段落甲</p>{markup}<p>段落乙</p>"
    try:
        parsed = parse_seed(RawDocument("seeds", "x.txt", seed_text(body=body).encode("utf-8"), FIXED), RFI)
    except ParseError:
        return
    article = normalized(parsed)
    assert article is not None
    assert html_problems(article.content_html) == [], article.content_html


# What the fuzzing found (fixed): a character reference to a control character right after dropped markup.


@pytest.mark.parametrize("dropped", ["<!-- x -->", "<script>x()</script>", "<div data-selfpromo-app></div>"])
def test_a_control_reference_after_dropped_markup_in_a_seed_is_no_crash(dropped: str) -> None:
    body = f"<p>段落甲</p>{dropped}&#1;<p>段落乙</p>"
    article = parse_seed(RawDocument("seeds", "x.txt", seed_text(body=body).encode("utf-8"), FIXED), RFI)
    assert "段落甲" in article.body_html
    assert "段落乙" in article.body_html


def test_a_control_reference_after_dropped_markup_in_a_page_is_no_crash() -> None:
    page = (
        "<html><head><title>标题</title></head><body><div class='t-content__body'>"
        "<p>段落甲</p><script>x()</script>&#x1F;<p>段落乙</p></div></body></html>"
    )
    article = parse_page(page, CHINA_URL, "page.html", RFI)
    assert "段落乙" in article.body_html


@pytest.mark.e2e
def test_one_seed_with_a_control_reference_after_a_comment_does_not_stop_the_refresh(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text(), encoding="utf-8")
    write_seed(tmp_path / "seeds", "001_0000000000000001.txt", seed_text())
    hostile = seed_text(SECTION + "20240109-hostile", body="<p>甲</p><!-- x -->&#1;<p>乙</p>")
    write_seed(tmp_path / "seeds", "002_0000000000000002.txt", hostile)
    result = run_feeder(config, "refresh")  # expected: exit 0, the other file published
    assert CHINA_URL.encode() in (tmp_path / "public" / "rfi-cn.atom").read_bytes(), result


# Fuzzing: the renderer ----------------------------------------------------------------------------------------------

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
ANY_TEXT = st.text(max_size=60)  # any code point but surrogates, control characters included
WITH_SURROGATES = st.text(alphabet=st.one_of(st.characters(), SURROGATES), max_size=60)
MOMENTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@st.composite
def entries(draw: st.DrawFn, text: st.SearchStrategy[str]) -> list[Entry]:
    found = []
    for number in range(draw(st.integers(1, 3))):
        published = draw(MOMENTS)
        found.append(
            Entry(
                url=f"{SECTION}20240109-entry-{number}",
                title=draw(text),
                section="中国",
                categories=tuple(draw(st.lists(text, max_size=3))),
                author=draw(st.one_of(st.none(), text)),
                lead=draw(text),
                image=draw(st.sampled_from([None, "https://s.rfi.fr/media/display/x/w:1280/p:16x9/x.jpg"])),
                content_html=draw(st.one_of(text, st.sampled_from(VECTORS))),
                published=published,
                updated=published + draw(st.sampled_from([timedelta(0), timedelta(hours=1)])),
            )
        )
    return found


def render(items: list[Entry]) -> dict[str, bytes]:
    return render_feed(FEED, items, base_url=BASE, updated=max(e.updated for e in items), ttl_minutes=15)


def assert_well_formed(files: dict[str, bytes], items: list[Entry]) -> None:
    atom = ET.fromstring(files["rfi-cn.atom"])
    rss = ET.fromstring(files["rfi-cn.rss"])
    document = json.loads(files["rfi-cn.json"].decode("utf-8"))
    assert [e.findtext(f"{ATOM}id") for e in atom.iter(f"{ATOM}entry")] == [i.url for i in items]
    assert [e.findtext("guid") for e in rss.iter("item")] == [i.url for i in items]
    assert [item["id"] for item in document["items"]] == [i.url for i in items]
    # The title arrives as plain text: references decoded, tag lookalikes and what XML cannot carry taken out.
    assert [e.findtext(f"{ATOM}title") for e in atom.iter(f"{ATOM}entry")] == [plain_text(i.title) for i in items]


@RENDER_FUZZ
@given(entries(ANY_TEXT))
def test_rendered_feeds_are_well_formed_for_any_text(items: list[Entry]) -> None:
    assume(all(plain_text(item.title) for item in items))  # an empty title: see the test below
    assert_well_formed(render(items), items)


@pytest.mark.parametrize("title", ["", "\x00", "\x01\x1f\ufffe"])
def test_an_entry_title_of_only_illegal_characters_still_renders(title: str) -> None:
    item = Entry(
        url=CHINA_URL,
        title=title,
        section="中国",
        categories=(),
        author=None,
        lead="",
        image=None,
        content_html="<p>正文</p>",
        published=NOW,
        updated=NOW,
    )
    files = render([item])
    assert_well_formed(files, [dataclasses.replace(item, title=CHINA_URL)])  # the URL stands in for the title


@settings(RENDER_FUZZ, max_examples=20, phases=[Phase.generate])  # every example fails: no shrinking
@given(entries(WITH_SURROGATES), SURROGATES)
def test_rendered_feeds_are_well_formed_for_text_with_lone_surrogates(items: list[Entry], surrogate: str) -> None:
    # Every title holds a surrogate (and stays non-empty once XML-illegal characters are dropped).
    items = [dataclasses.replace(item, title=f"标题{surrogate}{item.title}") for item in items]
    assert_well_formed(render(items), items)


# The XSS corpus: what must never survive -----------------------------------------------------------------------

BLOCKED_TAGS = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "param", "form", "button",
        "input", "textarea", "select", "isindex", "keygen", "svg", "math", "meta", "base", "link", "template",
        "noscript", "xmp", "plaintext", "bgsound", "portal",
    }
)  # fmt: skip
BLOCKED_ATTRIBUTES = frozenset({"style", "srcdoc", "srcset", "formaction", "dynsrc", "lowsrc"})
URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "data", "poster", "background", "cite", "longdesc", "codebase", "ping"}
)
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f]+")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_TAG_IN_TEXT = re.compile(r"<\s*/?\s*[a-zA-Z!]")
TITLE_TAG = "holds a tag"
_ESCAPED_LT = re.compile(r"&(?:lt|#0*60|#x0*3c)\b", re.IGNORECASE)


def url_scheme(value: str) -> str | None:
    """The scheme a browser would see: entities decoded, whitespace and control characters dropped anywhere."""
    cleaned = _INVISIBLE.sub("", html.unescape(value))
    match = _SCHEME.match(cleaned)
    return match.group(1).lower() if match else None


def html_problems(fragment: str) -> list[str]:
    """Everything dangerous in an HTML fragment, parsed as a reader would parse it (lxml.html)."""
    if not fragment.strip():
        return []
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.ParserError, ValueError) as e:
        return [f"unparsable HTML ({e}): {fragment[:200]!r}"]
    problems = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments are inert
        tag = lxml.etree.QName(element).localname.lower()
        if tag in BLOCKED_TAGS:
            problems.append(f"<{tag}> survives")
        for name, value in element.attrib.items():
            local = lxml.etree.QName(name).localname.lower() if name.startswith("{") else name.lower()
            if local.startswith("on") or local in BLOCKED_ATTRIBUTES:
                problems.append(f"<{tag} {name}={value!r}> survives")
            if local in URL_ATTRIBUTES or local.endswith(":href") or name.endswith("}href"):
                scheme = url_scheme(value)
                if scheme not in SAFE_SCHEMES:
                    problems.append(f"<{tag} {name}={value!r}>: scheme {scheme!r}, not an absolute http(s)/mailto URL")
    return problems


def text_of(fragment: str) -> str:
    if not fragment.strip():
        return ""
    return str(lxml.html.fragment_fromstring(fragment, create_parent="div").text_content())


def vector_url(number: int) -> str:
    return f"{SECTION}20240109-xss-{number:03d}"


def before(number: int) -> str:
    return f"段落甲{number:03d}"


def after(number: int) -> str:
    return f"段落乙{number:03d}"


def title_words(number: int) -> tuple[str, str]:
    return f"标题甲{number:03d}", f"标题乙{number:03d}"


def vector_body(number: int, vector: str) -> str:
    return f"<p>{before(number)}</p>{vector}<p>{after(number)}</p>"


def vector_title(number: int, vector: str) -> str:
    first, last = title_words(number)
    return f"{first} {vector} {last}"


def title_problems(number: int, title: str | None, where: str) -> list[str]:
    """A title is plain text: the words around the vector are there, and no tag unless the vector wrote one as
    text (an escaped '&lt;' decoded once is a literal '<', which plain-text fields carry as text)."""
    problems = []
    title = title or ""
    if not all(word in title for word in title_words(number)):
        problems.append(f"{where}: title {title!r} lost the text around the vector")
    if _TAG_IN_TEXT.search(title) and not _ESCAPED_LT.search(VECTORS[number]):
        problems.append(f"{where}: title {title!r} {TITLE_TAG}")
    return problems


def content_problems(number: int, fragment: str | None, where: str) -> list[str]:
    fragment = fragment or ""
    problems = [f"{where}: {p}" for p in html_problems(fragment)]
    try:
        text = text_of(fragment)
    except (lxml.etree.ParserError, ValueError):
        text = fragment
    if before(number) not in text or after(number) not in text:
        problems.append(f"{where}: the text around the vector is lost: {fragment[-300:]!r}")
    return problems


def feed_problems(files: dict[str, bytes], numbers: dict[str, int]) -> list[str]:
    """Every problem in one feed's Atom, RSS and JSON files, for entries whose URL maps to a vector number."""
    found: list[str] = []
    for name, data in sorted(files.items()):
        if name.endswith(".atom"):
            found += _atom_problems(name, data, numbers)
        elif name.endswith(".rss"):
            found += _rss_problems(name, data, numbers)
        else:
            found += _json_problems(name, data, numbers)
        if not name.endswith(".json"):
            found += _feedparser_problems(name, data, numbers)
    return found


def _atom_problems(name: str, data: bytes, numbers: dict[str, int]) -> list[str]:
    found = []
    seen = set()
    for entry in ET.fromstring(data).iter(f"{ATOM}entry"):
        url = entry.findtext(f"{ATOM}id") or ""
        number = numbers[url]
        seen.add(url)
        where = f"{name} #{number} {VECTORS[number]!r}"
        title = entry.find(f"{ATOM}title")
        assert title is not None
        if title.get("type", "text") != "text" or len(title):
            found.append(f"{where}: the title is not plain text: type {title.get('type')!r}")
        found += title_problems(number, title.text, where)
        content = entry.find(f"{ATOM}content")
        assert content is not None
        if content.get("type") != "html":
            found.append(f"{where}: content type {content.get('type')!r}")
        found += content_problems(number, content.text, where)
        summary = entry.find(f"{ATOM}summary")
        if summary is not None and summary.get("type", "text") != "text":
            found += [f"{where}: summary: {p}" for p in html_problems(summary.text or "")]
    found += [f"{name}: no entry for vector #{numbers[url]}" for url in sorted(set(numbers) - seen)]
    return found


def _rss_problems(name: str, data: bytes, numbers: dict[str, int]) -> list[str]:
    found = []
    seen = set()
    for item in ET.fromstring(data).iter("item"):
        url = item.findtext("guid") or ""
        number = numbers[url]
        seen.add(url)
        where = f"{name} #{number} {VECTORS[number]!r}"
        found += title_problems(number, item.findtext("title"), where)
        found += content_problems(number, item.findtext(CONTENT_ENCODED), where)
        # RSS readers take <description> as (entity-encoded) HTML.
        found += [f"{where}: description: {p}" for p in html_problems(item.findtext("description") or "")]
    found += [f"{name}: no item for vector #{numbers[url]}" for url in sorted(set(numbers) - seen)]
    return found


def _json_problems(name: str, data: bytes, numbers: dict[str, int]) -> list[str]:
    found = []
    items = json.loads(data.decode("utf-8"))["items"]
    for item in items:
        number = numbers[item["id"]]
        where = f"{name} #{number} {VECTORS[number]!r}"
        found += title_problems(number, item["title"], where)
        found += content_problems(number, item["content_html"], where)
    missing = set(numbers) - {item["id"] for item in items}
    found += [f"{name}: no item for vector #{numbers[url]}" for url in sorted(missing)]
    return found


def _feedparser_problems(name: str, data: bytes, numbers: dict[str, int]) -> list[str]:
    parsed = feedparser.parse(data)
    found = [f"{name}: feedparser: {parsed.get('bozo_exception')}"] if parsed.bozo else []
    for entry in parsed.entries:
        number = numbers[entry.id]
        where = f"{name} (feedparser) #{number} {VECTORS[number]!r}"
        found += title_problems(number, entry.title, where)
        found += content_problems(number, entry.content[0].value, where)
    return found


# The XSS corpus through the real command --------------------------------------------------------------------------


def test_the_corpus_has_enough_vectors() -> None:
    assert len(VECTORS) >= 60
    assert len(set(VECTORS)) == len(VECTORS), "a vector is listed twice"


@pytest.fixture(scope="module")
def seed_problems(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """One seed file per vector, one real ``feeder refresh``; the problems in every published feed file."""
    root = tmp_path_factory.mktemp("xss-seeds")
    config = root / "config.yaml"
    config.write_text(config_text(), encoding="utf-8")
    for number, vector in enumerate(VECTORS):
        text = seed_text(vector_url(number), vector_title(number, vector), body=vector_body(number, vector))
        write_seed(root / "seeds", f"{number:03d}_{number:016x}.txt", text)

    result = run_feeder(config, "refresh")

    assert f"seeds: {len(VECTORS)} new, 0 updated, 0 unchanged, 0 skipped, 0 errors" in result.stdout, result
    assert result.stderr == ""
    numbers = {vector_url(n): n for n in range(len(VECTORS))}
    public = root / "public"
    stems = sorted({p.with_suffix("") for p in public.rglob("*") if p.suffix in (".atom", ".rss", ".json")})
    assert [s.relative_to(public).as_posix() for s in stems] == ["rfi-cn", "rfi-cn/中国"]
    problems = []
    for stem in stems:
        files = {f"{stem.relative_to(public)}.{kind}": stem.with_suffix(f".{kind}").read_bytes() for kind in FORMATS}
        problems += feed_problems(files, numbers)
    return problems


@pytest.mark.e2e
def test_no_xss_vector_in_a_seed_file_reaches_a_published_feed(seed_problems: list[str]) -> None:
    problems = [p for p in seed_problems if TITLE_TAG not in p]
    assert problems == [], "\n".join(problems)


TITLE_TAG_REASON = (
    "parse/markup.plain_text (titles of seeds and pages) keeps the raw text of script, style, xmp, title, textarea, "
    "noembed, noframes, iframe and plaintext elements: the title 'A <style><img src=x onerror=alert(1)></style> B' "
    "(also inside <svg>/<math>) becomes the plain-text title 'A <img src=x onerror=alert(1)> B', a live tag for "
    "readers that take RSS <title> or the JSON title as HTML; with <plaintext> the title also ends in '</body></html>'"
)


@pytest.mark.e2e
def test_titles_from_seed_files_hold_no_tag(seed_problems: list[str]) -> None:
    problems = [p for p in seed_problems if TITLE_TAG in p]
    assert problems == [], "\n".join(problems)


# The XSS corpus through an article page -----------------------------------------------------------------------------

PAGE_TEMPLATE = (DATA / "rfi" / "page_article.html").read_text(encoding="utf-8")
_HEADLINE = re.compile(r'"headline":"[^"]*"')
_CANONICAL = re.compile(r'(<link rel="canonical" href=")[^"]*(")')
_BODY_START = '<div class="t-content__body u-clearfix">\n'


def hostile_page(number: int, vector: str) -> str:
    """The RFI page fixture with the vector in its JSON-LD headline and in its body, between two paragraphs."""
    headline = json.dumps(vector_title(number, vector), ensure_ascii=False).replace("</", "<\\/")
    page = _HEADLINE.sub(lambda _: f'"headline":{headline}', PAGE_TEMPLATE, count=1)
    page = _CANONICAL.sub(lambda m: f"{m.group(1)}{vector_url(number)}{m.group(2)}", page, count=1)
    assert _BODY_START in page
    return page.replace(_BODY_START, _BODY_START + vector_body(number, vector), 1)


def entry_of(article: Article) -> Entry:
    """The entry the store would give for this single version of an article."""
    return Entry(
        url=article.url,
        title=article.title,
        section=article.section,
        categories=article.categories,
        author=article.author,
        lead=article.lead,
        image=article.image,
        content_html=article.content_html,
        published=article.published,
        updated=max(article.published, article.version_at),
        audio=article.audio,
    )


@pytest.fixture(scope="module")
def page_problems() -> list[str]:
    """One article page per vector through parse_page, normalize and render_feed; the problems in the feeds."""
    items = []
    for number, vector in enumerate(VECTORS):
        page = hostile_page(number, vector).encode("utf-8")
        parsed = parse_page(decode_html(page, "text/html; charset=utf-8"), vector_url(number), f"page {number}", RFI)
        assert parsed.url == vector_url(number)
        article = normalize(parsed, urls=rfi_urls(*ALLOWED_HOSTS), retrieved_at=NOW, now=NOW)
        items.append(entry_of(article))
    return feed_problems(render(items), {vector_url(n): n for n in range(len(VECTORS))})


def test_no_xss_vector_in_an_article_page_reaches_a_rendered_feed(page_problems: list[str]) -> None:
    problems = [p for p in page_problems if TITLE_TAG not in p]
    assert problems == [], "\n".join(problems)


def test_titles_from_article_pages_hold_no_tag(page_problems: list[str]) -> None:
    problems = [p for p in page_problems if TITLE_TAG in p]
    assert problems == [], "\n".join(problems)


# Plain-text fields that RSS readers take as HTML ----------------------------------------------------------------


def _through_normalize(text: str) -> Entry:
    parsed = parse_seed(RawDocument("seeds", "lead.txt", text.encode("utf-8"), NOW), RFI)
    return entry_of(normalize(parsed, urls=rfi_urls(*ALLOWED_HOSTS), retrieved_at=NOW, now=NOW))


def test_a_lead_that_quotes_markup_stays_text_in_rss_description() -> None:
    entry = _through_normalize(seed_text(lead="代码 &lt;img src=x onerror=alert(1)&gt; 示例"))
    assert entry.lead == "代码 <img src=x onerror=alert(1)> 示例"  # plain text, as the README promises
    rss = ET.fromstring(render([entry])["rfi-cn.rss"])
    description = rss.findtext("channel/item/description") or ""
    assert html_problems(description) == []
    assert text_of(description) == entry.lead


# Section names come from the URL: they must not steer where files are written ---------------------------------


def _tree(root: Path, skip: Iterable[str]) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.parts[len(root.parts)] not in skip)


@pytest.mark.e2e
def test_a_section_name_cannot_write_outside_the_output_folder(tmp_path: Path) -> None:
    """The section is the percent-decoded first folder of the URL and names files: /cn/..%2F..%2Fevil/… once
    wrote public/rfi-cn/../../evil.atom (and .rss, .json, .gz) outside output_dir."""
    site = tmp_path / "site"
    config = site / "config.yaml"
    site.mkdir()
    config.write_text(config_text(), encoding="utf-8")
    write_seed(site / "seeds", "001_0000000000000001.txt", seed_text())
    write_seed(site / "seeds", "002_0000000000000002.txt", seed_text("https://www.rfi.fr/cn/..%2F..%2Fevil/20240109-x"))

    run_feeder(config, "refresh")

    assert _tree(tmp_path, skip=["site"]) == [], "files written outside the site folder"
    assert _tree(site, skip=["public", "seeds", "state", "config.yaml"]) == [], "files written outside public/"


@pytest.mark.e2e
@pytest.mark.parametrize("folder", ["a%00b", "x" * 300])
def test_a_section_name_that_is_no_file_name_does_not_stop_publishing(tmp_path: Path, folder: str) -> None:
    """A NUL in the folder once raised ValueError (exit 1), 300 characters 'File name too long' (exit 5), on
    every later refresh too, since the entry is committed before the files are written."""
    config = tmp_path / "config.yaml"
    config.write_text(config_text(), encoding="utf-8")
    write_seed(tmp_path / "seeds", "001_0000000000000001.txt", seed_text(f"https://www.rfi.fr/cn/{folder}/20240109-x"))
    run_feeder(config, "refresh")  # exit 0: a bad input is reported, it does not fail the run
    write_seed(tmp_path / "seeds", "002_0000000000000002.txt", seed_text())
    run_feeder(config, "refresh")
    public = tmp_path / "public"
    assert CHINA_URL.encode() in (public / "rfi-cn.atom").read_bytes()
    assert CHINA_URL.encode() in (public / "rfi-cn" / "中国.atom").read_bytes()
    assert "rfi-cn/%E4%B8%AD%E5%9B%BD.atom" in (public / "index.html").read_text(encoding="utf-8")


# The oracle itself ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fragment",
    [
        "<script>alert(1)</script>",
        "<p style='color:red'>x</p>",
        "<img src=x onerror=alert(1)>",
        '<a href="java&#9;script:alert(1)">x</a>',
        '<a href="&#106&#97&#118&#97&#115&#99&#114&#105&#112&#116&#58alert(1)">x</a>',
        '<a href="javascript&colon;alert(1)">x</a>',
        '<a href="&#1;javascript:alert(1)">x</a>',
        '<a href="/relative">x</a>',
        '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
        "<svg><a xlink:href='https://www.rfi.fr/'>x</a></svg>",
        "<iframe srcdoc='x'></iframe>",
        '<button formaction="https://x.example/">x</button>',
        '<img srcset="https://x.example/a.jpg 1x">',
    ],
)
def test_the_oracle_sees_what_must_not_survive(fragment: str) -> None:
    assert html_problems(fragment) != []


def test_the_oracle_accepts_clean_content() -> None:
    clean = (
        '<figure><img src="https://s.rfi.fr/a.jpg" alt=""></figure><p><strong>导语</strong></p>'
        '<p>正文 <a href="https://www.rfi.fr/cn/" rel="noopener noreferrer">链接</a> '
        '<a href="mailto:x@example.com">邮件</a> &lt;script&gt;</p>'
    )
    assert html_problems(clean) == []
