"""Feeds → lead-only ParsedArticles: RSS 0.91–2.0, RSS 1.0 (RDF), Atom 0.3 and 1.0 with an explicit safe XML
parser, and JSON Feed (read by jsonfeed.py).

Title, link, lead, dates, categories, image and audio per item; never a body. Documents that declare
entities (XXE, billion laughs) are refused before lxml sees them.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import lxml.etree
import lxml.html

from feeder.errors import ParseError
from feeder.models import Enclosure, ParsedArticle
from feeder.parse.jsonfeed import is_json, parse_json_feed
from feeder.parse.markup import (
    MAX_FEED_BYTES,
    NS_ATOM,
    NS_ATOM03,
    NS_DC,
    NS_ITUNES,
    NS_MEDIA,
    NS_RDF,
    NS_RSS_RDF,
    XML_DECLARATION,
    byte_count,
    day_utc,
    header_charset,
    is_http,
    iso_utc,
    joined,
    plain_text,
    unique,
)

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
_ATOM_DATES = {NS_ATOM: (("published",), "updated"), NS_ATOM03: (("issued", "created"), "modified")}
"""Per Atom namespace (1.0, 0.3): the elements that date an entry's publication, first found wins, and its update."""


def parse_feed(content: bytes, locator: str, content_type: str | None = None) -> list[ParsedArticle]:
    """The items of a feed, in document order, as lead-only articles (fulltext=False).

    Reads RSS 0.91, 0.92 and 2.0 (<rss>), RSS 1.0 and 0.90 (<rdf:RDF>), Atom 1.0 and 0.3 (<feed>), and JSON
    Feed 1.0 and 1.1: a body that starts with "{" or is served as JSON goes to jsonfeed.py.

    Hostile XML is refused, never expanded: a body over MAX_FEED_BYTES is not parsed, and a DOCTYPE that
    declares entities (XXE reading file:///etc/passwd, billion laughs) raises ParseError before lxml sees
    it; the parser is built so that it could not read a file, reach the network or expand an entity anyway
    (lxml 6 refuses both attacks by default too). An item without a link or a title is skipped.

    Bytes that are valid UTF-8 are read as UTF-8 whatever the XML declaration says (a declaration that
    lies would turn every title and link into mojibake); other bytes by the Content-Type charset, else
    by the declaration.
    """
    if len(content) > MAX_FEED_BYTES:
        raise ParseError(f"feed refused: {len(content)} bytes is over the {MAX_FEED_BYTES}-byte cap")
    if not content.strip():
        raise ParseError("feed is empty")
    if is_json(content, content_type):
        return parse_json_feed(content, locator)
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
        root = lxml.etree.fromstring(_feed_text(content, content_type), parser)
    except (lxml.etree.XMLSyntaxError, ValueError) as e:  # ValueError: a str with a malformed declaration
        if _HTML_START.match(content[:4096]):
            raise ParseError("an HTML page was served instead of a feed (block or error page?)") from e
        raise ParseError(f"feed is not well-formed XML: {e}") from e
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and next(iter(dtd.iterentities()), None) is not None:  # type: ignore[union-attr]
        raise ParseError(_ENTITY_REFUSAL)  # a declaration the byte scan above did not see
    return [article for article in _items(root, locator) if article is not None]


def _items(root: lxml.etree._Element, locator: str) -> Iterator[ParsedArticle | None]:
    """Each item of the document, by its format; ParseError when the root element is no feed's."""
    name = lxml.etree.QName(root) if isinstance(root.tag, str) else lxml.etree.QName("_")
    if root.tag == "rss":  # 0.91, 0.92 and 2.0 share their element names
        return (_rss_item(item, locator) for item in root.iter("item"))
    if root.tag == f"{{{NS_RDF}}}RDF":
        ns = next((ns for ns in NS_RSS_RDF if root.find(f"{{{ns}}}channel") is not None), None)
        if ns is None:
            raise ParseError("the root element <rdf:RDF> has no RSS 1.0 <channel>: an RDF document, not a feed")
        return (_rss_item(item, locator, f"{{{ns}}}") for item in root.iterfind(f"{{{ns}}}item"))
    if name.localname == "feed" and name.namespace in _ATOM_DATES:
        return (_atom_entry(entry, locator, name.namespace) for entry in root.iterfind(f"{{{name.namespace}}}entry"))
    if name.localname.lower() == "html":
        raise ParseError("an HTML page was served instead of a feed (block or error page?)")
    raise ParseError(f"the root element <{name.localname}> is neither RSS, RDF (RSS 1.0) nor Atom")


def _feed_text(content: bytes, content_type: str | None) -> str | bytes:
    """The feed as text when its encoding is known here; else the bytes, for lxml to read the declaration."""
    encoding = "utf-8" if _is_utf8(content) else header_charset(content_type)
    if encoding is None:
        return content
    try:
        text = content.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError:
        return content  # the header is wrong too: the declaration decides, and lxml reports what does not fit
    return XML_DECLARATION.sub("", text, count=1)  # lxml refuses a str that still declares an encoding


def _is_utf8(content: bytes) -> bool:
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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


def _rss_item(item: lxml.etree._Element, locator: str, ns: str = "") -> ParsedArticle | None:
    """An RSS item; ``ns`` is "{namespace}" of RSS 1.0 and 0.90 elements, "" for RSS 0.91–2.0."""
    url = _xml_text(item.find(f"{ns}link")).strip()
    if not url:
        guid = _xml_text(item.find("guid")).strip() or item.get(f"{{{NS_RDF}}}about", "").strip()
        url = guid if is_http(guid) else ""
    title = plain_text(_xml_text(item.find(f"{ns}title")))
    if not (url and title):
        return None
    enclosures = [(e.get("url", ""), e.get("type", ""), e.get("length", "")) for e in item.iter("enclosure")]
    audio = _audio_enclosure(enclosures)
    if audio is not None:
        duration = _clock_seconds(_xml_text(item.find(f"{{{NS_ITUNES}}}duration")))
        audio = Enclosure(url=audio.url, type=audio.type, length=audio.length, duration=duration)
    date, dc_date = _xml_text(item.find("pubDate")), _xml_text(item.find(f"{{{NS_DC}}}date"))
    return ParsedArticle(
        locator=locator,
        url=url,
        title=title,
        scraped_at=None,
        published_at=_rfc822_utc(date) or iso_utc(date) or _w3c_utc(dc_date),
        lead=plain_text(_xml_text(item.find(f"{ns}description"))),
        image=_feed_image(item, enclosures),
        body_html="",
        author=joined(plain_text(_xml_text(c)) for c in item.iter(f"{{{NS_DC}}}creator")),
        extra_categories=unique(plain_text(_xml_text(c)) for c in item.iter("category", f"{{{NS_DC}}}subject")),
        audio=audio,
        fulltext=False,
    )


def _atom_entry(entry: lxml.etree._Element, locator: str, namespace: str) -> ParsedArticle | None:
    """An Atom 1.0 or 0.3 entry (0.3 dates it with issued, created and modified)."""
    atom = f"{{{namespace}}}"
    links = [(e.get("rel", "alternate"), e.get("href", "").strip(), e) for e in entry.iterfind(f"{atom}link")]
    url = next((href for rel, href, _ in links if rel == "alternate" and href), "")
    if not url:
        entry_id = _xml_text(entry.find(f"{atom}id")).strip()
        url = entry_id if is_http(entry_id) else ""
    title = plain_text(_xml_text(entry.find(f"{atom}title")))
    if not (url and title):
        return None
    enclosures = [(href, e.get("type", ""), e.get("length", "")) for rel, href, e in links if rel == "enclosure"]
    published_names, updated_name = _ATOM_DATES[namespace]
    updated = _w3c_utc(_xml_text(entry.find(f"{atom}{updated_name}")))
    published = (_w3c_utc(_xml_text(entry.find(f"{atom}{n}"))) for n in published_names)
    categories = [c.get("label") or c.get("term") or "" for c in entry.iterfind(f"{atom}category")]
    categories += (_xml_text(c) for c in entry.iterfind(f"{{{NS_DC}}}subject"))
    return ParsedArticle(
        locator=locator,
        url=url,
        title=title,
        scraped_at=None,
        published_at=next((p for p in published if p is not None), updated),
        lead=plain_text(_xml_text(entry.find(f"{atom}summary"))),
        image=_feed_image(entry, enclosures),
        body_html="",
        modified_at=updated,
        author=joined(plain_text(_xml_text(a)) for a in entry.iterfind(f"{atom}author/{atom}name")),
        extra_categories=unique(plain_text(c) for c in categories),
        audio=_audio_enclosure(enclosures),
        fulltext=False,
    )


def _xml_text(element: lxml.etree._Element | None) -> str:
    """All the text inside an element (CDATA included; unexpanded entity references left out)."""
    return "" if element is None else "".join(t for t in element.itertext() if isinstance(t, str))


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
            return Enclosure(url=url.strip(), type=kind.strip().lower(), length=byte_count(length))
    return None


def _clock_seconds(value: str) -> int | None:
    """An itunes:duration ("585", "09:45", "1:02:03") in seconds; None when absent, zero or not a duration."""
    match = _CLOCK.match(value.strip()) if len(value) <= 32 else None
    if not match or not value.isascii():
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds or None


def _w3c_utc(value: str) -> datetime | None:
    """A W3C-DTF date (dc:date, Atom): a date-time with an offset, or a day alone as midnight UTC."""
    return iso_utc(value) or day_utc(value)


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
