"""Seed files (seeds/FORMAT.md) → ParsedArticle: header lines, the date line (in the site's date format and time
zone), lead image, lead, body without the furniture the site's rules name."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import lxml.etree

from feeder.errors import ParseError
from feeder.models import ParsedArticle, RawDocument
from feeder.parse.markup import (
    drop_keeping_tail,
    element_text,
    html_fragment,
    inner_html,
    plain_text,
    remove_furniture,
    text_date,
)
from feeder.rules import SiteRules
from feeder.text import xml_safe

_STAMP_LINE = re.compile(r"^\s*<!--\s*(?P<value>.*?)\s*-->\s*$")
_LINK_LINE = re.compile(r"^\s*\[(?P<title>.*)\]\(\s*(?P<url>[^\s()]+(?:\([^\s()]*\)[^\s()]*)*)\s*\)\s*$")
_SEPARATOR = re.compile(r"^\s*-{3,}\s*$")


def parse_seed(doc: RawDocument, site: SiteRules) -> ParsedArticle:
    """Parse one seed file (see seeds/FORMAT.md); raise ParseError naming the reason."""
    text = xml_safe(doc.content.decode("utf-8", errors="replace")).lstrip("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    scraped_at, rest = _take_stamp(lines)
    title, url, rest = _take_link(rest, first_line=len(lines) - len(rest) + 1)
    html = "\n".join(_skip_separator(rest)).strip()
    if not html:
        raise ParseError("no article HTML after the header (file cut off?)")
    published_at, image, lead, body_html = _split_article(html, site)
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


def _split_article(html: str, site: SiteRules) -> tuple[datetime | None, str | None, str, str]:
    """Seed HTML → (publication time, lead image, lead text, body HTML without furniture)."""
    try:
        root = html_fragment(html, "div")
    except (lxml.etree.ParserError, ValueError) as e:
        raise ParseError(f"article HTML cannot be parsed: {e}") from e
    published_at = _take_date(root, site)
    image = _take_first(root, "img")
    image_src = image.get("src") if image is not None else None
    lead = _take_lead(root)
    remove_furniture(root, site.article)
    return published_at, (image_src or "").strip() or None, lead, inner_html(root)


def _take_date(root: lxml.etree._Element, site: SiteRules) -> datetime | None:
    for child in root:
        if child.tag == "div" and len(child) == 0:
            moment = text_date(child.text or "", site.article, site.timezone)
            if moment is not False:
                drop_keeping_tail(child)
                return moment if isinstance(moment, datetime) else None
    return None


def _take_first(root: lxml.etree._Element, tag: str) -> lxml.etree._Element | None:
    """Detach the first top-level element with this tag, if it comes before the body."""
    for child in root:
        if child.tag == tag:
            drop_keeping_tail(child)
            return child
        if child.tag == "div":
            return None
    return None


def _take_lead(root: lxml.etree._Element) -> str:
    lead = _take_first(root, "p")
    return element_text(lead) if lead is not None else ""
