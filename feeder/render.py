"""Entries → Atom 1.0, RSS 2.0 and JSON Feed 1.1 bytes, plus index.html and feeds.opml.

Pure and deterministic: every date comes from the data, never from the clock,
so identical entries give byte-identical files. The formats are written by
render_atom_rss.py (the only module that imports feedgen) and render_json.py
(the only one that imports orjson), from the text formats.py prepares.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from feeder.config import FeedConfig
from feeder.formats import FORMATS, EntryText, feed_url
from feeder.models import Entry, FeedDocument, FeedInfo
from feeder.render_atom_rss import atom_and_rss
from feeder.render_json import json_feed
from feeder.text import xml_safe


def render_feed(
    feed: FeedConfig, entries: Sequence[Entry], *, base_url: str, updated: datetime, ttl_minutes: int
) -> dict[str, bytes]:
    """``{file name: bytes}`` for a subscription feed on its own, without archive pages or hubs."""
    document = FeedDocument(
        path=feed.name,
        feed_path=feed.name,
        title=feed.title,
        description=feed.description or feed.title,
        author=feed.author,
        language=feed.language,
        updated=updated,
        ttl_minutes=ttl_minutes,
    )
    return render_document(document, entries, base_url=base_url)


def render_document(document: FeedDocument, entries: Sequence[Entry], *, base_url: str) -> dict[str, bytes]:
    """``{file name: bytes}`` for one document's Atom, RSS and JSON Feed files."""
    texts = [EntryText.of(entry, document.author) for entry in entries]
    atom, rss = atom_and_rss(document, entries, texts, base_url)
    return {
        f"{document.path}.atom": atom,
        f"{document.path}.rss": rss,
        f"{document.path}.json": json_feed(document, entries, texts, base_url),
    }


def render_index(feeds: Sequence[FeedInfo], base_url: str) -> bytes:
    """A page listing every feed, with autodiscovery links so a reader can subscribe to the site URL."""
    links = "".join(
        f'  <link rel="alternate" type="{FORMATS[kind]}" title="{_attr(f.title)} ({label})"'
        f' href="{_attr(feed_url(base_url, f.name, kind))}"{_hreflang(f)}>\n'
        for f in feeds
        for kind, label in (("atom", "Atom"), ("rss", "RSS"), ("json", "JSON Feed"))
    )
    items = "".join(_index_item(f, base_url) for f in feeds)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="zh">\n<head>\n  <meta charset="utf-8">\n'
        '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "  <title>feeder</title>\n"
        f"{links}"
        "</head>\n<body>\n  <h1>Feeds</h1>\n  <ul>\n"
        f"{items}"
        "  </ul>\n"
        f'  <p><a href="{_attr(base_url)}feeds.opml">All feeds as OPML</a></p>\n'
        "</body>\n</html>\n"
    )
    return page.encode("utf-8")


def _index_item(feed: FeedInfo, base_url: str) -> str:
    url = base_url + quote(feed.name)
    description = f" — {html.escape(feed.description)}" if feed.description else ""
    return (
        f"    <li{_lang(feed)}><strong>{html.escape(feed.title)}</strong>{description}<br>\n"
        f"      {feed.entry_count} entries, updated {feed.updated.strftime('%Y-%m-%d %H:%M UTC')}:\n"
        f'      <a href="{_attr(url)}.atom">Atom</a> · <a href="{_attr(url)}.rss">RSS</a>'
        f' · <a href="{_attr(url)}.json">JSON Feed</a></li>\n'
    )


def _lang(feed: FeedInfo) -> str:
    return f' lang="{_attr(feed.language)}"' if feed.language else ""


def _hreflang(feed: FeedInfo) -> str:
    return f' hreflang="{_attr(feed.language)}"' if feed.language else ""


def render_opml(feeds: Sequence[FeedInfo], base_url: str) -> bytes:
    """An OPML 2.0 subscription list of every feed (Atom URLs)."""
    outlines = "".join(
        f'    <outline type="rss" text="{_attr(f.title)}" title="{_attr(f.title)}"'
        f' xmlUrl="{_attr(feed_url(base_url, f.name, "atom"))}" htmlUrl="{_attr(base_url)}"/>\n'
        for f in feeds
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">\n'
        "  <head>\n    <title>feeder</title>\n  </head>\n  <body>\n"
        f"{outlines}"
        "  </body>\n</opml>\n"
    )
    return document.encode("utf-8")


def _attr(value: str) -> str:
    return html.escape(xml_safe(value), quote=True)
