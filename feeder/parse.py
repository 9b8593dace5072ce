"""Bytes → ParsedArticle: understand a document and take the site's furniture out.

Pure: never opens files or sockets. The only module that imports lxml. What a
document *says* is extracted here, as written (URL not yet canonical, HTML not
yet sanitized); policy (canonical URLs, the tag allowlist, credible dates) is
normalize.py's job. Site knowledge lives in the FURNITURE_* and PAGE_* tables
below, so a change of the site's markup is a change of data in one place.

Three kinds of document: seed files (parse_seed), RSS/Atom feeds (parse_feed:
title, link, lead, dates, image and audio per item, never a body) and RFI
article pages (decode_html, then parse_page: JSON-LD metadata, the article
body without its furniture).
"""

from __future__ import annotations

import codecs
import html as htmllib
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urljoin, urlsplit
from zoneinfo import ZoneInfo

import lxml.etree
import lxml.html

from feeder.errors import ParseError
from feeder.models import Enclosure, ParsedArticle, RawDocument
from feeder.text import collapse_space, xml_safe

PARIS = ZoneInfo("Europe/Paris")

# Page furniture: share bars, self-promotion, ads, read-more links, flash banners.
FURNITURE_CLASSES = frozenset(
    {
        "m-interstitial",
        "o-self-promo",
        "t-content__shares",
        "m-share-bar",
        "a-read-more",
        "m-em-flash",
        # RFI article pages: tag lists and related-story cards (class names of RFI's platform; unverified for /cn)
        "m-tags-list",
        "m-item-list-article",
    }
)
FURNITURE_ATTRIBUTE_PREFIXES = ("data-selfpromo", "data-root-share")
FURNITURE_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "form"})
SHARE_LABEL = re.compile(r"^\s*(分享|分享到|Partager)\s*[:：]?\s*$")
SHARE_LINK = re.compile(
    r"^(whatsapp:|https?://(www\.)?(facebook\.com/dialog/share|facebook\.com/sharer|x\.com/intent|"
    r"twitter\.com/intent|web\.whatsapp\.com/send))"
)


# RFI article pages (www.rfi.fr/cn/<section>/<date>-<slug>): where each field is. Classes match whole @class tokens.
PAGE_BODY_CLASS = "t-content__body"
PAGE_LEAD_CLASS = "t-content__chapo"
PAGE_MAIN_MEDIA_CLASS = "t-content__main-media"
PAGE_FIELD_CLASSES = (PAGE_LEAD_CLASS, PAGE_MAIN_MEDIA_CLASS, "m-pub-dates")
"""Fields shown with the article (lead, main image, dates): dropped from the body when it holds them."""
JSONLD_ARTICLE_TYPES = frozenset({"NewsArticle", "Article", "ReportageNewsArticle"})
AUDIO_FORMATS = {"mp3": "audio/mpeg", "mpeg": "audio/mpeg", "m4a": "audio/mp4", "aac": "audio/aac", "ogg": "audio/ogg"}
"""encodingFormat values written as a file extension rather than a media type."""

# Feeds.
MAX_FEED_BYTES = 5 * 1024 * 1024
NS_ATOM = "http://www.w3.org/2005/Atom"
NS_MEDIA = "http://search.yahoo.com/mrss/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"

# Charsets: WHATWG aliases where Python's codec is a strict subset of what pages really hold.
CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "iso8859-1": "cp1252", "ascii": "cp1252"}
CHARSET_REFUSED = frozenset({"utf-7", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})
CHARSET_SNIFF_BYTES = 2048

_TAG = re.compile(r"<[^>]*>")
_STAMP_LINE = re.compile(r"^\s*<!--\s*(?P<value>.*?)\s*-->\s*$")
_LINK_LINE = re.compile(r"^\s*\[(?P<title>.*)\]\(\s*(?P<url>[^\s()]+(?:\([^\s()]*\)[^\s()]*)*)\s*\)\s*$")
_SEPARATOR = re.compile(r"^\s*-{3,}\s*$")
_PARIS_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*-\s*(\d{1,2})[:h](\d{2})\s*$")


def parse_seed(doc: RawDocument) -> ParsedArticle:
    """Parse one seed file (see seeds/FORMAT.md); raise ParseError naming the reason."""
    text = xml_safe(doc.content.decode("utf-8", errors="replace")).lstrip("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    scraped_at, rest = _take_stamp(lines)
    title, url, rest = _take_link(rest, first_line=len(lines) - len(rest) + 1)
    html = "\n".join(_skip_separator(rest)).strip()
    if not html:
        raise ParseError("no article HTML after the header (file cut off?)")
    published_at, image, lead, body_html = _split_article(html)
    if not (lead or image or plain_text(body_html)):
        raise ParseError("the article HTML holds no lead, image or text")
    return ParsedArticle(
        locator=doc.locator,
        url=url,
        title=title,
        scraped_at=scraped_at,
        published_at=published_at,
        lead=lead,
        image=image,
        body_html=body_html,
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
    return collapse_space(xml_safe(root.text_content()))


def paris_to_utc(day: int, month: int, year: int, hour: int, minute: int) -> datetime:
    """A wall-clock time in Paris (as RFI prints it) as an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def _take_stamp(lines: list[str]) -> tuple[datetime | None, list[str]]:
    match = _STAMP_LINE.match(lines[0]) if lines else None
    if not match:
        return None, lines
    return _epoch(match.group("value")), lines[1:]


def _epoch(value: str) -> datetime | None:
    """Milliseconds (13 digits) or seconds since the epoch; None when not a usable number."""
    if not (value.isascii() and value.isdigit()) or len(value) > 16:
        return None
    number = int(value)
    seconds = number / 1000 if number >= 100_000_000_000 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _take_link(lines: list[str], first_line: int) -> tuple[str, str, list[str]]:
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        match = _LINK_LINE.match(line)
        if not match:
            raise ParseError(f"line {first_line + index} is not a '[title](url)' link")
        title = plain_text(match.group("title"))
        if not title:
            raise ParseError("the article title is empty")
        return title, match.group("url"), lines[index + 1 :]
    raise ParseError("no '[title](url)' line (empty or cut-off file)")


def _skip_separator(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        if line.strip():
            return lines[index + 1 :] if _SEPARATOR.match(line) else lines[index:]
    return []


def _split_article(html: str) -> tuple[datetime | None, str | None, str, str]:
    """Seed HTML → (publication time, lead image, lead text, body HTML without furniture)."""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError) as e:
        raise ParseError(f"article HTML cannot be parsed: {e}") from e
    published_at = _take_date(root)
    image = _take_first(root, "img")
    image_src = image.get("src") if image is not None else None
    lead = _take_lead(root)
    remove_furniture(root)
    return published_at, (image_src or "").strip() or None, lead, _inner_html(root)


def _take_date(root: lxml.html.HtmlElement) -> datetime | None:
    for child in root:
        if child.tag == "div" and len(child) == 0:
            match = _PARIS_DATE.match(child.text_content())
            if match:
                _drop_keeping_tail(child)
                day, month, year, hour, minute = (int(g) for g in match.groups())
                try:
                    return paris_to_utc(day, month, year, hour, minute)
                except ValueError:
                    return None
    return None


def _take_first(root: lxml.html.HtmlElement, tag: str) -> lxml.html.HtmlElement | None:
    """Detach the first top-level element with this tag, if it comes before the body."""
    for child in root:
        if child.tag == tag:
            _drop_keeping_tail(child)
            return child
        if child.tag == "div":
            return None
    return None


def _take_lead(root: lxml.html.HtmlElement) -> str:
    lead = _take_first(root, "p")
    return plain_text(lxml.html.tostring(lead, encoding="unicode")) if lead is not None else ""


def remove_furniture(root: lxml.html.HtmlElement) -> None:
    """Drop share bars, self-promotion, custom elements and scripts, in place."""
    for element in list(_furniture(root)):
        if element.getparent() is not None:
            _drop_keeping_tail(element)


def _furniture(root: lxml.html.HtmlElement) -> Iterator[lxml.html.HtmlElement]:
    for element in root.iterdescendants():
        if not isinstance(element.tag, str):
            yield element  # comments and processing instructions
        elif _is_furniture(element):
            yield element
        elif SHARE_LABEL.match(element.text_content()) and len(element) == 0:
            yield _share_block(root, element)


def _share_block(root: lxml.html.HtmlElement, label: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """The share bar around a '分享 :' label: its parent, unless that parent holds article text."""
    parent = label.getparent()
    if parent is None or parent is root or next(parent.iter("p"), None) is not None:
        return label
    return parent


def _is_furniture(element: lxml.html.HtmlElement) -> bool:
    if element.tag in FURNITURE_TAGS or "-" in element.tag:
        return True
    if any(name.startswith(FURNITURE_ATTRIBUTE_PREFIXES) for name in element.attrib):
        return True
    if FURNITURE_CLASSES.intersection(element.get("class", "").split()):
        return True
    return element.tag == "a" and bool(SHARE_LINK.match(element.get("href", "")))


def _drop_keeping_tail(element: lxml.html.HtmlElement) -> None:
    """Remove an element and its children but keep the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    previous = element.getprevious()
    parent.remove(element)
    element.tail = None
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


def _inner_html(root: lxml.html.HtmlElement) -> str:
    parts = [htmllib.escape(root.text, quote=False)] if root.text else []
    parts.extend(lxml.html.tostring(child, encoding="unicode") for child in root)
    return "".join(parts).strip()


# --- feeds: RSS 2.0 and Atom 1.0 ------------------------------------------------------------------------------

# Whitespace, processing instructions and comments before the first tag; each alternative is unambiguous and the
# repetition possessive, so a hostile prolog ("<?a?>" × n) costs linear time, not exponential backtracking.
_PROLOG = rb"\A(?:\s|<\?(?:[^?]|\?(?!>))*\?>|<!--(?:[^-]|-(?!->))*-->)*+"
_PROLOG_WITH_SUBSET = re.compile(_PROLOG + rb"<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
_SUBSET_END = re.compile(rb"\]\s*>")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_UTF16_32_SIGNATURES = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)
_HTML_START = re.compile(_PROLOG + rb"<(?:!doctype\s+html|html[\s>]|head[\s>])", re.IGNORECASE)
_ENTITY_REFUSAL = (
    "feed refused: its DOCTYPE declares entities (the XXE / billion-laughs pattern); "
    "no file or URL was read and no entity was expanded"
)
_CLOCK = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+)$")
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_feed(content: bytes, locator: str) -> list[ParsedArticle]:
    """The items of an RSS 2.0 (or Atom 1.0) feed, in document order, as lead-only articles (fulltext=False).

    Hostile XML is refused, never expanded: a body over MAX_FEED_BYTES is not parsed, and a DOCTYPE that
    declares entities (XXE reading file:///etc/passwd, billion laughs) raises ParseError before lxml sees
    it; the parser is built so that it could not read a file, reach the network or expand an entity anyway
    (lxml 6 refuses both attacks by default too). An item without a link or a title is skipped.
    """
    if len(content) > MAX_FEED_BYTES:
        raise ParseError(f"feed refused: {len(content)} bytes is over the {MAX_FEED_BYTES}-byte cap")
    if not content.strip():
        raise ParseError("feed is empty")
    if _declares_entities(content):
        raise ParseError(_ENTITY_REFUSAL)
    parser = lxml.etree.XMLParser(
        resolve_entities=False,  # never replace &name; by a declared value: no XXE, no billion laughs
        no_network=True,
        load_dtd=False,  # never fetch an external DTD (file or URL)
        huge_tree=False,  # keep libxml2's limits on depth and text size
        remove_comments=True,
    )
    try:
        root = lxml.etree.fromstring(content, parser)
    except lxml.etree.XMLSyntaxError as e:
        if _HTML_START.match(content[:4096]):
            raise ParseError("an HTML page was served instead of a feed (block or error page?)") from e
        raise ParseError(f"feed is not well-formed XML: {e}") from e
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and next(iter(dtd.iterentities()), None) is not None:  # type: ignore[union-attr]
        raise ParseError(_ENTITY_REFUSAL)  # a declaration the byte scan above did not see
    name = lxml.etree.QName(root).localname if isinstance(root.tag, str) else ""
    if root.tag == "rss":
        found = (_rss_item(item, locator) for item in root.iter("item"))
    elif root.tag == f"{{{NS_ATOM}}}feed":
        found = (_atom_entry(entry, locator) for entry in root.iterfind(f"{{{NS_ATOM}}}entry"))
    elif name.lower() == "html":
        raise ParseError("an HTML page was served instead of a feed (block or error page?)")
    else:
        raise ParseError(f"the root element <{name}> is neither RSS <rss> nor Atom <feed>")
    return [article for article in found if article is not None]


def _declares_entities(content: bytes) -> bool:
    """Whether the DOCTYPE's internal subset declares an entity (read as bytes, before any parsing)."""
    for signature, codec in _UTF16_32_SIGNATURES:
        if content.startswith(signature):
            content = content.decode(codec, errors="replace").encode("utf-8", errors="replace")
            break
    content = content.removeprefix(codecs.BOM_UTF8)
    doctype = _PROLOG_WITH_SUBSET.match(content)
    if doctype is None:
        return False
    end = _SUBSET_END.search(content, doctype.end())
    return _ENTITY_DECLARATION.search(content, doctype.end(), end.end() if end else len(content)) is not None


def _rss_item(item: lxml.etree._Element, locator: str) -> ParsedArticle | None:
    url = _xml_text(item.find("link")).strip()
    if not url:
        guid = _xml_text(item.find("guid")).strip()
        url = guid if _is_http(guid) else ""
    title = plain_text(_xml_text(item.find("title")))
    if not (url and title):
        return None
    enclosures = [(e.get("url", ""), e.get("type", ""), e.get("length", "")) for e in item.iter("enclosure")]
    audio = _audio_enclosure(enclosures)
    if audio is not None:
        duration = _clock_seconds(_xml_text(item.find(f"{{{NS_ITUNES}}}duration")))
        audio = Enclosure(url=audio.url, type=audio.type, length=audio.length, duration=duration)
    date = _xml_text(item.find("pubDate"))
    return ParsedArticle(
        locator=locator,
        url=url,
        title=title,
        scraped_at=None,
        published_at=_rfc822_utc(date) or _iso_utc(date),
        lead=plain_text(_xml_text(item.find("description"))),
        image=_feed_image(item, enclosures),
        body_html="",
        author=_joined(plain_text(_xml_text(c)) for c in item.iter(f"{{{NS_DC}}}creator")),
        extra_categories=_unique(plain_text(_xml_text(c)) for c in item.iter("category")),
        audio=audio,
        fulltext=False,
    )


def _atom_entry(entry: lxml.etree._Element, locator: str) -> ParsedArticle | None:
    atom = f"{{{NS_ATOM}}}"
    links = [(e.get("rel", "alternate"), e.get("href", "").strip(), e) for e in entry.iterfind(f"{atom}link")]
    url = next((href for rel, href, _ in links if rel == "alternate" and href), "")
    if not url:
        entry_id = _xml_text(entry.find(f"{atom}id")).strip()
        url = entry_id if _is_http(entry_id) else ""
    title = plain_text(_xml_text(entry.find(f"{atom}title")))
    if not (url and title):
        return None
    enclosures = [(href, e.get("type", ""), e.get("length", "")) for rel, href, e in links if rel == "enclosure"]
    updated = _iso_utc(_xml_text(entry.find(f"{atom}updated")))
    categories = (c.get("label") or c.get("term") or "" for c in entry.iterfind(f"{atom}category"))
    return ParsedArticle(
        locator=locator,
        url=url,
        title=title,
        scraped_at=None,
        published_at=_iso_utc(_xml_text(entry.find(f"{atom}published"))) or updated,
        lead=plain_text(_xml_text(entry.find(f"{atom}summary"))),
        image=_feed_image(entry, enclosures),
        body_html="",
        modified_at=updated,
        author=_joined(plain_text(_xml_text(a)) for a in entry.iterfind(f"{atom}author/{atom}name")),
        extra_categories=_unique(plain_text(c) for c in categories),
        audio=_audio_enclosure(enclosures),
        fulltext=False,
    )


def _xml_text(element: lxml.etree._Element | None) -> str:
    """All the text inside an element (CDATA included; unexpanded entity references left out)."""
    return "" if element is None else "".join(t for t in element.itertext() if isinstance(t, str))


def _is_http(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def _feed_image(item: lxml.etree._Element, enclosures: list[tuple[str, str, str]]) -> str | None:
    """media:thumbnail, else an image media:content, else an image enclosure."""
    for thumbnail in item.iter(f"{{{NS_MEDIA}}}thumbnail"):
        if thumbnail.get("url", "").strip():
            return thumbnail.get("url", "").strip()
    for media in item.iter(f"{{{NS_MEDIA}}}content"):
        is_image = media.get("medium") == "image" or media.get("type", "").lower().startswith("image/")
        if is_image and media.get("url", "").strip():
            return media.get("url", "").strip()
    return next((url.strip() for url, kind, _ in enclosures if kind.lower().startswith("image/") and url.strip()), None)


def _audio_enclosure(enclosures: list[tuple[str, str, str]]) -> Enclosure | None:
    for url, kind, length in enclosures:
        if kind.strip().lower().startswith("audio/") and url.strip():
            return Enclosure(url=url.strip(), type=kind.strip().lower(), length=_byte_count(length))
    return None


def _clock_seconds(value: str) -> int | None:
    """An itunes:duration ("585", "09:45", "1:02:03") in seconds; None when absent, zero or not a duration."""
    match = _CLOCK.match(value.strip()) if len(value) <= 32 else None
    if not match or not value.isascii():
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds or None


def _rfc822_utc(value: str) -> datetime | None:
    """An RSS date (RFC 822/2822) as aware UTC; None when missing or broken. "-0000" counts as UTC."""
    if not value.strip():
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _iso_utc(value: object) -> datetime | None:
    """An ISO 8601 date-time with an offset as aware UTC; None when missing, broken or without an offset."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return None if moment.utcoffset() is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _iso_duration(value: object) -> int | None:
    """An ISO 8601 duration (PT1M30S) in whole seconds; None when absent, zero or not a duration."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    match = _ISO_DURATION.match(value.strip())
    if not match or value.strip().upper() in ("P", "PT") or value.strip().upper().endswith("T"):
        return None
    factors = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
    total = sum(float(match.group(k).replace(",", ".")) * f for k, f in factors.items() if match.group(k))
    return round(total) if 0 < total < 10**9 else None


def _byte_count(value: object) -> int | None:
    """A positive size in bytes written as an int or a string of digits; None otherwise."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 18:
        value = int(value.strip())
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty values, first spelling kept, in order."""
    return tuple(dict.fromkeys(v for v in values if v))


def _joined(names: Iterable[str]) -> str | None:
    return "、".join(_unique(names)) or None


# --- article pages: charset --------------------------------------------------------------------------------------

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)


def decode_html(content: bytes, content_type: str | None) -> str:
    """An HTML page's text: charset of the Content-Type header if usable, else <meta charset> (or http-equiv)
    in the first 2 KB, else UTF-8. Undecodable bytes become U+FFFD; lxml only ever gets the str."""
    header = _HEADER_CHARSET.search(content_type or "")
    encoding = _usable_charset(header.group(1)) if header else None
    if encoding is None:
        for meta in _META_CHARSET.finditer(content[:CHARSET_SNIFF_BYTES]):
            encoding = _usable_charset(meta.group(1).decode("ascii"))
            if encoding is not None:
                # a page that can declare its charset in ASCII is not UTF-16 or UTF-32 (WHATWG)
                encoding = "utf-8" if encoding.startswith(("utf-16", "utf-32")) else encoding
                break
    if encoding is None:
        boms = ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
        encoding = next((codec for bom, codec in boms if content.startswith(bom)), "utf-8")
    return content.decode(encoding, errors="replace").removeprefix("\ufeff")


def _usable_charset(label: str) -> str | None:
    """Python's codec for a charset label, None when unknown, not a text encoding or unsafe (UTF-7)."""
    try:
        name = codecs.lookup(label.strip()).name
        b"a".decode(name, errors="replace")  # refuses bytes-to-bytes codecs (base64, zlib); b"" is not checked
    except (LookupError, ValueError):
        return None
    if name in CHARSET_REFUSED:
        return None
    return CHARSET_ALIASES.get(name, name)


# --- article pages: RFI ------------------------------------------------------------------------------------------

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_CLASS_XPATH = "descendant-or-self::*[contains(concat(' ', normalize-space(@class), ' '), $token)]"
_KEYWORD_SEPARATOR = re.compile(r"[,，]")


def parse_page(html: str, url: str, locator: str) -> ParsedArticle:
    """An RFI article page (decoded text) → its article: JSON-LD metadata with head-meta fallbacks, the body
    without furniture. A page without a body (redesign, block page) gives a lead-only article (fulltext=False);
    a page without a title, or with neither lead, image nor text, is a ParseError."""
    root = _html_document(html)
    canonical = _canonical_link(root, url)
    meta = _head_meta(root)
    ld = _chosen_article(_json_ld_objects(root), canonical)
    title = (
        plain_text(_ld_text(ld.get("headline")))
        or _first(meta, "og:title")
        or _element_text(next(iter(root.iterfind("head/title")), None))
    )
    if not title:
        raise ParseError("the page has no title (no JSON-LD headline, og:title or <title>)")
    chapo = _with_class(root, PAGE_LEAD_CLASS)
    lead = (
        (_element_text(chapo[0]) if chapo else "")
        or plain_text(_ld_text(ld.get("description")))
        or _first(meta, "og:description")
    )
    image = _ld_image(ld.get("image")) or _first(meta, "og:image") or _main_media_image(root) or None
    sections = [plain_text(s) for s in _ld_strings(ld.get("articleSection"))] or meta.get("article:section", [])
    keywords = _ld_keywords(ld.get("keywords")) or meta.get("article:tag", [])
    body_html = _article_body(root)
    if not (lead or image or body_html):
        raise ParseError("the page holds no lead, image or article text (a block page?)")
    return ParsedArticle(
        locator=locator,
        url=canonical,
        title=title,
        scraped_at=None,
        published_at=_iso_utc(ld.get("datePublished")) or _iso_utc(_first(meta, "article:published_time")),
        lead=lead,
        image=image,
        body_html=body_html,
        modified_at=_iso_utc(ld.get("dateModified")) or _iso_utc(_first(meta, "article:modified_time")),
        author=_joined(_ld_names(ld.get("author"))),
        extra_categories=_unique([*sections, *keywords]),
        audio=_ld_audio(ld.get("audio")),
        fulltext=bool(body_html),
    )


def _html_document(html: str) -> lxml.html.HtmlElement:
    text = _XML_DECLARATION.sub("", xml_safe(html).lstrip("\ufeff"), count=1)
    if not text.strip():
        raise ParseError("the page is empty")
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError) as e:
        raise ParseError(f"page HTML cannot be parsed: {e}") from e


def _with_class(root: lxml.html.HtmlElement, name: str) -> list[lxml.html.HtmlElement]:
    """Elements (root included) whose class attribute holds this token, in document order."""
    found = root.xpath(_CLASS_XPATH, token=f" {name} ")
    return [e for e in found if isinstance(e, lxml.html.HtmlElement)] if isinstance(found, list) else []


def _element_text(element: lxml.html.HtmlElement | None) -> str:
    return "" if element is None else collapse_space(xml_safe(element.text_content()))


def _canonical_link(root: lxml.html.HtmlElement, url: str) -> str:
    for link in root.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        href = (link.get("href") or "").strip()
        if "canonical" in rels and href:
            return _resolved(url, href) or url
    return url


def _head_meta(root: lxml.html.HtmlElement) -> dict[str, list[str]]:
    """<meta property|name=… content=…> values by lower-case key, in order (article:tag repeats)."""
    found: dict[str, list[str]] = {}
    for meta in root.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").strip().lower()
        value = collapse_space(xml_safe(meta.get("content") or ""))
        if key and value:
            found.setdefault(key, []).append(value)
    return found


def _first(meta: dict[str, list[str]], key: str) -> str:
    return next(iter(meta.get(key, [])), "")


def _json_ld_objects(root: lxml.html.HtmlElement) -> list[dict[str, object]]:
    """Every JSON object of every ld+json block, top level, arrays and @graph flattened; bad blocks skipped."""
    found: list[dict[str, object]] = []
    for script in root.iter("script"):
        if (script.get("type") or "").split(";")[0].strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "", strict=False)
        except (ValueError, RecursionError):
            continue
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                found.append(item)
                graph = item.get("@graph")
                found.extend(g for g in (graph if isinstance(graph, list) else []) if isinstance(g, dict))
    return found


def _chosen_article(objects: list[dict[str, object]], canonical: str) -> dict[str, object]:
    """The article whose url/mainEntityOfPage is this page, else the first article, else {}."""
    articles = [o for o in objects if JSONLD_ARTICLE_TYPES.intersection(_ld_strings(o.get("@type")))]
    page = _page_key(canonical)
    for article in articles:
        entity = article.get("mainEntityOfPage")
        spellings = [article.get("url"), entity.get("@id") if isinstance(entity, dict) else entity]
        if page and any(isinstance(s, str) and _page_key(_resolved(canonical, s)) == page for s in spellings):
            return article
    return articles[0] if articles else {}


def _resolved(base: str, href: str) -> str:
    """href resolved against base; "" when either is not a URL urllib can split (https://[broken)."""
    try:
        return str(urljoin(base, href.strip()))
    except ValueError:
        return ""


def _page_key(url: str) -> tuple[str, str] | None:
    """Host and percent-decoded path: what two spellings of one page share (query, fragment, final / dropped)."""
    try:
        parts = urlsplit(url.strip())
        return (parts.hostname or "").lower(), unquote(parts.path).rstrip("/")
    except ValueError:
        return None


def _ld_strings(value: object) -> list[str]:
    """A JSON-LD value that may be one string or a list of them."""
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _ld_text(value: object) -> str:
    return next(iter(_ld_strings(value)), "")


def _ld_keywords(value: object) -> list[str]:
    """keywords: a comma-separated string or an array (whose items may hold commas too)."""
    return [k for v in _ld_strings(value) for k in (plain_text(p) for p in _KEYWORD_SEPARATOR.split(v)) if k]


def _ld_names(value: object) -> list[str]:
    """author: a name, a Person/Organization, or a list of either."""
    values = value if isinstance(value, list) else [value]
    names = (v.get("name") if isinstance(v, dict) else v for v in values)
    return [plain_text(n) for n in names if isinstance(n, str)]


def _ld_image(value: object) -> str | None:
    """image: a URL, an ImageObject (url or contentUrl), or a list of either (the first one wins)."""
    for item in value if isinstance(value, list) else [value]:
        url = _ld_text(item.get("url") or item.get("contentUrl")) if isinstance(item, dict) else _ld_text(item)
        if url:
            return url
    return None


def _ld_audio(value: object) -> Enclosure | None:
    """audio: the first AudioObject with a contentUrl, with its media type, size and duration."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict):
            continue
        kinds = _ld_strings(item.get("@type"))
        url = _ld_text(item.get("contentUrl")) or _ld_text(item.get("url"))
        if not url or (kinds and "AudioObject" not in kinds):
            continue
        written = _ld_text(item.get("encodingFormat")).lower()
        kind = written if "/" in written else AUDIO_FORMATS.get(written.lstrip("."), "audio/mpeg")
        length = _byte_count(item.get("contentSize"))
        return Enclosure(url=url, type=kind, length=length, duration=_iso_duration(item.get("duration")))
    return None


def _main_media_image(root: lxml.html.HtmlElement) -> str | None:
    """The first real image URL of the page's main media (lazy-loading placeholders skipped)."""
    for media in _with_class(root, PAGE_MAIN_MEDIA_CLASS)[:1]:
        for element in media.iter("img", "source"):
            srcset = (element.get("srcset") or element.get("data-srcset") or "").strip()
            candidates = (element.get("src"), element.get("data-src"), srcset.split(",")[0].strip().split(" ")[0])
            for candidate in candidates:
                if candidate and candidate.strip() and not candidate.strip().lower().startswith("data:"):
                    return candidate.strip()
    return None


def _article_body(root: lxml.html.HtmlElement) -> str:
    """Inner HTML of the article body without furniture and fields; "" when there is no body or no text."""
    bodies = _with_class(root, PAGE_BODY_CLASS)
    if not bodies:
        return ""
    body = bodies[0]
    for name in PAGE_FIELD_CLASSES:
        for element in _with_class(body, name):
            if element is not body:
                _drop_keeping_tail(element)
    remove_furniture(body)
    return _inner_html(body) if _element_text(body) else ""
