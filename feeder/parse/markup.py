"""What the parsers share: furniture removal by a site's rules, namespaces, charsets and lxml helpers.

Pure; lxml is imported only inside the feeder.parse package.
"""

from __future__ import annotations

import codecs
import html as htmllib
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

import lxml.etree
import lxml.html

from feeder.rules import ArticleRules
from feeder.text import collapse_space, xml_safe

# Page furniture whatever the site: elements that never hold article text, and share links.
FURNITURE_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "form"})
SHARE_LINK = re.compile(
    r"^(whatsapp:|https?://(www\.)?(facebook\.com/dialog/share|facebook\.com/sharer|x\.com/intent|"
    r"twitter\.com/intent|web\.whatsapp\.com/send))"
)
JSONLD_ARTICLE_TYPES = frozenset({"NewsArticle", "Article", "ReportageNewsArticle"})
AUDIO_FORMATS = {"mp3": "audio/mpeg", "mpeg": "audio/mpeg", "m4a": "audio/mp4", "aac": "audio/aac", "ogg": "audio/ogg"}
"""encodingFormat values written as a file extension rather than a media type."""

# Feeds.
MAX_FEED_BYTES = 5 * 1024 * 1024
NS_ATOM = "http://www.w3.org/2005/Atom"
NS_ATOM03 = "http://purl.org/atom/ns#"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_RSS_RDF = ("http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/")
"""The element namespaces of RDF feeds: RSS 1.0, and Netscape's RSS 0.90 before it."""
NS_MEDIA = "http://search.yahoo.com/mrss/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"

# Charsets: WHATWG aliases where Python's codec is a strict subset of what pages really hold.
CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "iso8859-1": "cp1252", "ascii": "cp1252"}
CHARSET_REFUSED = frozenset({"utf-7", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})
CHARSET_SNIFF_BYTES = 2048

_TAG = re.compile(r"<[^>]*>")
_FULL_DOCUMENT = re.compile(r"^\s*<(?:html|!doctype)", re.IGNORECASE)
_STRING_VALUE = lxml.etree.XPath("string()")
_parsers = threading.local()
RAW_TEXT_TAGS = (
    "script",
    "style",
    "xmp",
    "title",
    "textarea",
    "noembed",
    "noframes",
    "iframe",
    "noscript",
)


def plain_text(markup: str) -> str:
    """Text of an HTML snippet: tags stripped, entities decoded once, whitespace collapsed."""
    if "<" not in markup and "&" not in markup:
        return collapse_space(markup)
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="span")
    except (lxml.etree.ParserError, ValueError):
        # lxml refuses some character references (&#x1F;): strip tags and decode by hand
        return collapse_space(xml_safe(htmllib.unescape(_TAG.sub("", markup))))
    for element in root.iter(*RAW_TEXT_TAGS):  # their content is markup-looking text nobody is meant to see
        element.drop_tree()
    return collapse_space(xml_safe(root.text_content()))


def html_fragment(markup: str, wrapper: str) -> lxml.etree._Element:
    """``markup`` parsed as lxml.html.fragment_fromstring(markup, create_parent=wrapper) parses it, into
    plain etree elements: lxml.html calls back into Python to choose the class of every element it hands
    out, which costs more than the parse. ParserError or ValueError when lxml refuses the markup."""
    if not _FULL_DOCUMENT.match(markup):
        markup = f"<html><body>{markup}</body></html>"
    document = lxml.etree.fromstring(markup, _html_parser())
    if document is None:
        raise lxml.etree.ParserError("Document is empty")
    root = lxml.etree.Element(wrapper)
    body = document.find("body")
    if body is not None:
        if body.text and body.text.strip():
            root.text = body.text
        root.extend(body)
    return root


def _html_parser() -> lxml.etree.HTMLParser:
    """One parser per thread: lxml parsers are not to be shared between threads."""
    parser: lxml.etree.HTMLParser | None = getattr(_parsers, "html", None)
    if parser is None:
        parser = _parsers.html = lxml.etree.HTMLParser()
    return parser


def element_text(element: lxml.etree._Element) -> str:
    """``plain_text`` of an element already parsed and detached (so no tail); drops its raw-text elements."""
    for inner in element.iter(*RAW_TEXT_TAGS):
        if inner is not element:
            drop_keeping_tail(inner)
    return collapse_space(xml_safe(str(_STRING_VALUE(element))))


def text_date(text: str, rules: ArticleRules, zone: tzinfo) -> datetime | bool | None:
    """A date written as text in one of the site's date formats, read in its time zone: the UTC time; None when the
    text has a date's shape but names no real time (31/02); False when it is not written as a date at all."""
    for pattern in rules.date_formats:
        match = pattern.match(text)
        if match:
            day, month, year, hour, minute, second = (int(match.groupdict().get(k) or 0) for k in "dmYHMS")
            try:
                return datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)
            except (ValueError, OverflowError):
                return None
    return False


def xpath(expression: str) -> lxml.etree.XPath:
    """A compiled XPath, one per thread (lxml's evaluators are not to be shared between threads)."""
    cache: dict[str, lxml.etree.XPath] | None = getattr(_parsers, "xpaths", None)
    if cache is None:
        cache = _parsers.xpaths = {}
    compiled = cache.get(expression)
    if compiled is None:
        compiled = cache[expression] = lxml.etree.XPath(expression)
    return compiled


def remove_furniture(root: lxml.etree._Element, rules: ArticleRules) -> None:
    """Drop what the site's rules call furniture, custom elements, scripts and share links, in place."""
    for element in _furniture(root, rules):
        if element.getparent() is not None:
            drop_keeping_tail(element)


def _furniture(root: lxml.etree._Element, rules: ArticleRules) -> list[lxml.etree._Element]:
    found = []
    prefixes = rules.remove_attribute_prefixes
    label = rules.share_label
    for element in root.iterdescendants():
        tag = element.tag
        if not isinstance(tag, str) or tag in FURNITURE_TAGS or "-" in tag:
            found.append(element)  # comments and processing instructions too
        elif _marked_as_furniture(element, prefixes):
            found.append(element)
        elif label is not None and len(element) == 0 and label.match(element.text or ""):  # a leaf's text is all
            found.append(_share_block(root, element))
    if rules.remove:
        chosen = xpath(rules.remove)(root)
        if isinstance(chosen, list):
            found.extend(e for e in chosen if isinstance(e, lxml.etree._Element))
    return found


def _marked_as_furniture(element: lxml.etree._Element, prefixes: tuple[str, ...]) -> bool:
    if prefixes and any(str(name).startswith(prefixes) for name in element.keys()):  # noqa: SIM118
        return True
    return element.tag == "a" and bool(SHARE_LINK.match(element.get("href", "")))


def _share_block(root: lxml.etree._Element, label: lxml.etree._Element) -> lxml.etree._Element:
    """The share bar around a share label: its parent, unless that parent holds article text."""
    parent = label.getparent()
    if parent is None or parent is root or next(parent.iter("p"), None) is not None:
        return label
    return parent


def drop_keeping_tail(element: lxml.etree._Element) -> None:
    """Remove an element and its children but keep the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    previous = element.getprevious()
    parent.remove(element)
    element.tail = None
    if tail:  # lxml refuses to store text holding a control character that a &#1; reference decoded to
        if previous is not None:
            previous.tail = xml_safe((previous.tail or "") + tail)
        else:
            parent.text = xml_safe((parent.text or "") + tail)


def inner_html(root: lxml.etree._Element) -> str:
    parts = [htmllib.escape(root.text, quote=False)] if root.text else []
    parts.extend(lxml.etree.tostring(child, method="html", encoding="unicode") for child in root)
    return "".join(parts).strip()


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)


def iso_utc(value: object) -> datetime | None:
    """An ISO 8601 date-time with an offset as aware UTC; None when missing, broken or without an offset."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return None if moment.utcoffset() is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def day_utc(value: object) -> datetime | None:
    """A calendar day alone (2024-03-05, as W3C-DTF and htmldate write it) as midnight UTC of that day; None for
    anything else. The day is taken as written: its time zone is unknown, so UTC is as good a guess as any."""
    if not isinstance(value, str) or not _DAY.match(value.strip()):
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:  # 2024-02-30
        return None


def is_http(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def iso_duration(value: object) -> int | None:
    """An ISO 8601 duration (PT1M30S) in whole seconds; None when absent, zero or not a duration."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    match = _ISO_DURATION.match(value.strip())
    if not match or value.strip().upper() in ("P", "PT") or value.strip().upper().endswith("T"):
        return None
    factors = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
    total = sum(float(match.group(k).replace(",", ".")) * f for k, f in factors.items() if match.group(k))
    return round(total) if 0 < total < 10**9 else None


def byte_count(value: object) -> int | None:
    """A positive size in bytes written as an int or a string of digits; None otherwise."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 18:
        value = int(value.strip())
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty values, first spelling kept, in order."""
    return tuple(dict.fromkeys(v for v in values if v))


def joined(names: Iterable[str]) -> str | None:
    return "、".join(unique(names)) or None


HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", re.IGNORECASE)
XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def header_charset(content_type: str | None) -> str | None:
    """The usable codec a Content-Type header names, if any."""
    header = HEADER_CHARSET.search(content_type or "")
    return usable_charset(header.group(1)) if header else None


def usable_charset(label: str) -> str | None:
    """Python's codec for a charset label, None when unknown, not a text encoding or unsafe (UTF-7)."""
    try:
        name = codecs.lookup(label.strip()).name
        b"a".decode(name, errors="replace")  # refuses bytes-to-bytes codecs (base64, zlib); b"" is not checked
    except (LookupError, ValueError):
        return None
    if name in CHARSET_REFUSED:
        return None
    return CHARSET_ALIASES.get(name, name)
