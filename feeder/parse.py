"""Bytes → ParsedArticle: understand a document and take the site's furniture out.

Pure: never opens files or sockets. The only module that imports lxml. What a
document *says* is extracted here, as written (URL not yet canonical, HTML not
yet sanitized); policy (canonical URLs, the tag allowlist, credible dates) is
normalize.py's job. Site knowledge lives in the FURNITURE_* tables below, so a
change of the site's markup is a change of data in one place.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import lxml.etree
import lxml.html

from feeder.errors import ParseError
from feeder.models import ParsedArticle, RawDocument
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
    }
)
FURNITURE_ATTRIBUTE_PREFIXES = ("data-selfpromo", "data-root-share")
FURNITURE_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "form"})
SHARE_LABEL = re.compile(r"^\s*(分享|分享到|Partager)\s*[:：]?\s*$")
SHARE_LINK = re.compile(
    r"^(whatsapp:|https?://(www\.)?(facebook\.com/dialog/share|facebook\.com/sharer|x\.com/intent|"
    r"twitter\.com/intent|web\.whatsapp\.com/send))"
)

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
