"""Entries → Atom 1.0, RSS 2.0 and JSON Feed 1.1 bytes, plus index.html and feeds.opml.

Pure and deterministic: every date comes from the data, never from the clock,
so identical entries give byte-identical files. The only module that imports
feedgen and orjson.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from feeder import __version__
from feeder.config import FeedConfig
from feeder.models import Enclosure, Entry, FeedDocument, FeedInfo
from feeder.text import plain_text, unescaped, xml_safe

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
HISTORY_NS = "http://purl.org/syndication/history/1.0"
FORMATS = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}


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
    texts = [_Texts.of(entry, document.author) for entry in entries]
    generator = _generator(document, entries, texts, base_url)
    atom = generator.atom_str(pretty=True)
    _set_links(generator, base_url, document.path, "rss")
    rss = generator.rss_str(pretty=True)
    return {
        f"{document.path}.atom": atom,
        f"{document.path}.rss": rss,
        f"{document.path}.json": _json_feed(document, entries, texts, base_url),
    }


class _Texts(NamedTuple):
    """An entry's text as every format writes it: plain-text fields with references decoded and no tag
    lookalike, nothing a validator flags. Made once per entry, for the three formats."""

    title: str
    lead: str
    content: str
    categories: list[str]
    author: str

    @classmethod
    def of(cls, entry: Entry, default_author: str) -> _Texts:
        return cls(
            title=plain_text(entry.title) or entry.url,  # an entry must have a title
            lead=xml_safe(unescaped(entry.lead)),
            content=xml_safe(entry.content_html),
            categories=[plain_text(term) for term in entry.categories],
            author=plain_text(entry.author or default_author),
        )


def _generator(
    document: FeedDocument, entries: Sequence[Entry], texts: Sequence[_Texts], base_url: str
) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("media", _MediaNamespace, _Media)
    fg.register_extension("rss_extras", _DcNamespace, _RssExtras, atom=False)
    fg.register_extension("history", _History, atom=True, rss=True)
    fg.history.document, fg.history.base_url = document, base_url
    fg.id(feed_url(base_url, document.feed_path, "atom"))  # archive pages are documents of their feed: one id
    fg.title(plain_text(document.title))
    fg.subtitle(plain_text(document.description or document.title))
    fg.author({"name": plain_text(document.author)})
    fg.language(document.language)
    fg.generator("feeder", version=__version__)
    fg.updated(document.updated)
    fg.lastBuildDate(document.updated)
    fg.ttl(document.ttl_minutes)
    _set_links(fg, base_url, document.path, "atom")
    for entry, text in zip(entries, texts, strict=True):
        _add_entry(fg, entry, text)
    return fg


def _set_links(fg: FeedGenerator, base_url: str, path: str, kind: str) -> None:
    fg.link(href=feed_url(base_url, path, kind), rel="self", type=FORMATS[kind], replace=True)
    fg.link(href=base_url, rel="alternate", type="text/html")  # last: feedgen makes it RSS's <link>


def _document_links(document: FeedDocument, base_url: str, kind: str) -> list[tuple[str, str, str | None]]:
    """(rel, href, type) of the links beyond self and alternate: WebSub hubs, then the RFC 5005 archive links
    to the documents of the same format."""
    links: list[tuple[str, str, str | None]] = [("hub", hub, None) for hub in document.hubs]
    archive = [("current", document.feed_path if document.archive else None)]
    archive += [("prev-archive", document.prev_archive), ("next-archive", document.next_archive)]
    links += [(rel, feed_url(base_url, path, kind), FORMATS[kind]) for rel, path in archive if path]
    return links


def _add_entry(fg: FeedGenerator, entry: Entry, text: _Texts) -> None:
    fe = fg.add_entry(order="append")
    fe.id(entry.url)
    fe.guid(entry.url, permalink=True)
    fe.title(text.title)
    fe.link(href=entry.url)
    fe.published(entry.published)
    fe.updated(entry.updated)
    if text.lead:  # escaped, so readers that take RSS <description> as HTML show it as the text it is
        fe.summary(html.escape(text.lead, quote=False), type="html")
    if text.content:
        fe.content(text.content, type="html")
    for term in text.categories:
        fe.category(term=term)
    fe.author({"name": text.author})
    fe.media.entry = entry
    fe.rss_extras.author, fe.rss_extras.updated = text.author, entry.updated
    if entry.audio:
        fe.register_extension("audio", _AudioEnclosure)
        fe.audio.enclosure = entry.audio


class _MediaNamespace(BaseExtension):  # type: ignore[misc]
    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS}


class _DcNamespace(BaseExtension):  # type: ignore[misc]
    def extend_ns(self) -> dict[str, str]:
        return {"dc": DC_NS}


class _Media(BaseEntryExtension):  # type: ignore[misc]
    """An entry's image and audio as Media RSS, in Atom and RSS.

    Each file is a media:content of its own, with a media:thumbnail for the image, directly in the entry: a
    media:group would say the files are alternatives of one another, which an image and a sound are not.
    Written here rather than by feedgen's media extension, which walks every field it knows for every entry
    (with its dc extension, a third of the rendering time).
    """

    entry: Entry | None = None

    def extend_atom(self, element: Any) -> Any:
        image, audio = (self.entry.image, self.entry.audio) if self.entry else (None, None)
        if image:
            _set(xml_elem(f"{{{MEDIA_NS}}}content", element), {"url": image, "medium": "image"})
            _set(xml_elem(f"{{{MEDIA_NS}}}thumbnail", element), {"url": image})
        if audio:
            duration = {} if audio.duration is None else {"duration": str(audio.duration)}
            attributes = {"url": audio.url, "type": audio.type, "medium": "audio", **duration}
            _set(xml_elem(f"{{{MEDIA_NS}}}content", element), attributes)
        return element

    def extend_rss(self, element: Any) -> Any:
        return self.extend_atom(element)


class _RssExtras(BaseEntryExtension):  # type: ignore[misc]
    """An RSS item's author as Dublin Core and its update time as atom:updated: RSS has no element of its own
    for either (its <author> must be an e-mail address). dc:date is not used for the time, since beside
    <pubDate> it would say the same thing twice. Atom has both, so it gets neither."""

    author: str = ""
    updated: datetime | None = None

    def extend_rss(self, element: Any) -> Any:
        xml_elem(f"{{{DC_NS}}}creator", element).text = self.author
        if self.updated is not None:
            xml_elem(f"{{{ATOM_NS}}}updated", element).text = _rfc3339(self.updated)
        return element


class _History(BaseExtension):  # type: ignore[misc]
    """Feed-level links beyond self and alternate (WebSub hubs, RFC 5005 archive links) and the fh:archive mark.

    feedgen writes only a self link into RSS, so in RSS they are atom:link elements written here; in Atom, where
    feedgen's elements carry no namespace under a default xmlns, they are plain link elements.
    """

    document: FeedDocument | None = None
    base_url = ""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS} if self.document and self.document.archive else {}

    def extend_atom(self, feed: Any) -> Any:
        self._extend(feed, "link", "atom")
        return feed

    def extend_rss(self, feed: Any) -> Any:
        self._extend(feed[0], f"{{{ATOM_NS}}}link", "rss")
        return feed

    def _extend(self, parent: Any, link_tag: str, kind: str) -> None:
        if self.document is None:
            return
        if self.document.archive:
            xml_elem(f"{{{HISTORY_NS}}}archive", parent)
        for rel, href, media_type in _document_links(self.document, self.base_url, kind):
            link = xml_elem(link_tag, parent, rel=rel, href=href)
            if media_type:
                link.set("type", media_type)


def _set(element: Any, attributes: dict[str, str]) -> None:
    """Attributes in Media RSS's own order, as feedgen writes them."""
    for name in ("url", "type", "medium", "duration"):
        if attributes.get(name):
            element.set(name, attributes[name])


class _AudioEnclosure(BaseEntryExtension):  # type: ignore[misc]
    """An entry's audio as RSS <enclosure> and Atom <link rel="enclosure">.

    feedgen 1.0's own enclosure() loses the link's attributes in Atom (its issue #135), so it is written here,
    as a plain link element like feedgen's own (they carry no namespace under the feed's default xmlns).
    """

    enclosure: Enclosure | None = None

    def extend_atom(self, entry: Any) -> Any:
        if self.enclosure:
            link = xml_elem("link", entry)
            for name, value in (("rel", "enclosure"), ("href", self.enclosure.url), ("type", self.enclosure.type)):
                link.set(name, value)
            if self.enclosure.length:
                link.set("length", str(self.enclosure.length))
        return entry

    def extend_rss(self, item: Any) -> Any:
        if self.enclosure:
            element = xml_elem("enclosure", item)
            element.set("url", self.enclosure.url)
            element.set("length", str(self.enclosure.length or 0))  # required by RSS; 0 when unknown
            element.set("type", self.enclosure.type)
        return item


def _json_feed(document: FeedDocument, entries: Sequence[Entry], texts: Sequence[_Texts], base_url: str) -> bytes:
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


def _json_item(entry: Entry, text: _Texts) -> dict[str, object]:
    item: dict[str, object] = {"id": entry.url, "url": entry.url, "title": text.title}
    if text.lead:
        item["summary"] = text.lead
    item["content_html"] = text.content
    if entry.image:
        item["image"] = entry.image
    item["date_published"] = _rfc3339(entry.published)
    item["date_modified"] = _rfc3339(entry.updated)
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


def feed_url(base_url: str, name: str, kind: str) -> str:
    """Where a feed file is served: names may hold a section in Chinese, which is percent-encoded."""
    return f"{base_url}{quote(name)}.{kind}"


def _attr(value: str) -> str:
    return html.escape(xml_safe(value), quote=True)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
