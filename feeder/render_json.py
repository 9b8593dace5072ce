"""A feed document as JSON Feed 1.1. The only module that imports orjson."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import orjson

from feeder.formats import EntryText, feed_url, rfc3339
from feeder.models import Entry, FeedDocument
from feeder.text import plain_text


def json_feed(document: FeedDocument, entries: Sequence[Entry], texts: Sequence[EntryText], base_url: str) -> bytes:
    """JSON Feed 1.1, its keys in the order of the specification. An archive page has the URL of its feed as
    ``feed_url`` (the feed's identity) and pages on through ``next_url`` to the next older page."""
    feed: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": plain_text(document.title),
        "home_page_url": base_url,
        "feed_url": feed_url(base_url, document.feed_path, "json"),
        "description": plain_text(document.description or document.title),
    }
    if document.prev_archive:
        feed["next_url"] = feed_url(base_url, document.prev_archive, "json")
    feed["authors"] = [{"name": plain_text(document.author)}]
    feed["language"] = document.language
    if document.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in document.hubs]
    feed["items"] = [_json_item(entry, text) for entry, text in zip(entries, texts, strict=True)]
    return _json_bytes(feed)


def _json_bytes(document: Mapping[str, object]) -> bytes:
    """The document as json.dumps(document, ensure_ascii=False, indent=2) + "\\n" writes it, byte for byte, in
    a twentieth of the time: orjson writes that very format in C, where json's indenting encoder is Python."""
    try:
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:  # a lone surrogate, which UTF-8 cannot carry: normalize lets none through
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8", errors="replace")


def _json_item(entry: Entry, text: EntryText) -> dict[str, object]:
    item: dict[str, object] = {"id": entry.url, "url": entry.url, "title": text.title}
    if text.lead:
        item["summary"] = text.lead
    item["content_html"] = text.content
    if entry.image:
        item["image"] = entry.image
    item["date_published"] = rfc3339(entry.published)
    item["date_modified"] = rfc3339(entry.updated)
    if text.categories:
        item["tags"] = text.categories
    item["authors"] = [{"name": text.author}]
    if entry.audio:
        attachment: dict[str, object] = {"url": entry.audio.url, "mime_type": entry.audio.type}
        if entry.audio.length:
            attachment["size_in_bytes"] = entry.audio.length
        if entry.audio.duration is not None:
            attachment["duration_in_seconds"] = entry.audio.duration
        item["attachments"] = [attachment]
    return item
