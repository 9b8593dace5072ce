"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1) → lead-only ParsedArticles.

Read with the standard json module, as the rest of the project reads JSON. A JSON document may put any
value anywhere, so every field is checked for its type: a number where a title belongs reads as no title.
feeds.parse_feed decides what is JSON and applies the size cap; this module only reads the document.
"""

from __future__ import annotations

import json
import math
import re

from feeder.errors import ParseError
from feeder.models import Enclosure, ParsedArticle
from feeder.parse.markup import byte_count, is_http, iso_utc, joined, plain_text, unique
from feeder.text import collapse_space, xml_safe

JSON_TYPES = ("application/feed+json", "application/json")
LEAD_EXCERPT_CHARS = 300
"""An item without a summary is led by this many characters of its text, cut at a space when there is one."""

_JSON_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*[{[]")
_XML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<")
_BLOCK_TAG = re.compile(r"<(?=/?(?:p|div|br|li|h[1-6]|blockquote|pre|tr|td|th|figure|section|article)\b)", re.I)
"""Where a block begins or ends: a space there keeps "<p>One</p><p>two</p>" from reading "Onetwo"."""
_VERSIONS = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")


def is_json(content: bytes, content_type: str | None) -> bool:
    """Whether a feed body is JSON: it starts with "{" or "[" (after a BOM and whitespace), or its Content-Type is
    application/feed+json or application/json and it does not start with "<" (an XML feed served as JSON)."""
    if _JSON_START.match(content):
        return True
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type in JSON_TYPES and not _XML_START.match(content)


def parse_json_feed(content: bytes, locator: str) -> list[ParsedArticle]:
    """The items of a JSON Feed, in document order, as lead-only articles; an item without a URL or a title is
    skipped. ParseError for JSON that does not parse and for JSON that is not a JSON Feed."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError; RecursionError: [[[[…
        raise ParseError(f"feed is not valid JSON: {e}") from e
    version = document.get("version") if isinstance(document, dict) else None
    if not (isinstance(version, str) and version.startswith(_VERSIONS)):
        raise ParseError('JSON document is not a JSON Feed: it has no "version" of https://jsonfeed.org/version/…')
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError('JSON Feed has no "items" array')
    feed_authors = _names(document)  # the items' authors when they name none (JSON Feed 1.1 § authors)
    found = (_item(item, locator, feed_authors) for item in items if isinstance(item, dict))
    return [article for article in found if article is not None]


def _item(item: dict[str, object], locator: str, feed_authors: list[str]) -> ParsedArticle | None:
    item_id = _text(item, "id")
    url = _text(item, "url") or (item_id if is_http(item_id) else "")
    title = plain_text(_text(item, "title"))
    if not (url and title):
        return None
    modified = iso_utc(item.get("date_modified"))
    return ParsedArticle(
        locator=locator,
        url=url,
        title=title,
        scraped_at=None,
        published_at=iso_utc(item.get("date_published")) or modified,
        lead=plain_text(_text(item, "summary")) or _excerpt(item),
        image=_text(item, "image") or _text(item, "banner_image") or None,
        body_html="",
        modified_at=modified,
        author=joined(_names(item) or feed_authors),
        extra_categories=unique(plain_text(tag) for tag in _strings(item.get("tags"))),
        audio=_audio(item.get("attachments")),
        fulltext=False,
    )


def _text(holder: dict[str, object], key: str) -> str:
    value = holder.get(key)
    return value.strip() if isinstance(value, str) else ""


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _names(holder: dict[str, object]) -> list[str]:
    """authors[].name (1.1), else author.name (1.0)."""
    authors = holder.get("authors")
    people = authors if isinstance(authors, list) and authors else [holder.get("author")]
    return [plain_text(_text(person, "name")) for person in people if isinstance(person, dict)]


def _excerpt(item: dict[str, object]) -> str:
    """The start of content_text, else of content_html's text, as plain text."""
    text = collapse_space(xml_safe(_text(item, "content_text")))
    text = text or plain_text(_BLOCK_TAG.sub(" <", _text(item, "content_html")))
    if len(text) <= LEAD_EXCERPT_CHARS:
        return text
    cut = text[:LEAD_EXCERPT_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space > LEAD_EXCERPT_CHARS // 2 else cut).rstrip() + "…"


def _audio(attachments: object) -> Enclosure | None:
    """The first attachment whose mime_type is audio/*, with its size and duration."""
    for attachment in attachments if isinstance(attachments, list) else []:
        if not isinstance(attachment, dict):
            continue
        url, kind = _text(attachment, "url"), _text(attachment, "mime_type").lower()
        if url and kind.startswith("audio/"):
            length = byte_count(attachment.get("size_in_bytes"))
            return Enclosure(
                url=url, type=kind, length=length, duration=_seconds(attachment.get("duration_in_seconds"))
            )
    return None


def _seconds(value: object) -> int | None:
    """duration_in_seconds (a JSON number) in whole seconds; None when absent, not positive or absurd."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    seconds = round(value) if abs(value) < 10**9 else 0
    return seconds if seconds > 0 else None
