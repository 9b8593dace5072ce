"""Atom 1.0 and RSS 2.0 through feedgen, with the extensions feedgen lacks: Media RSS, an RSS item's author
and update time, RFC 5005 archive links, WebSub hubs and audio enclosures.

One generator writes both files, Atom first, then RSS once the self link points at the RSS file. The only
module that imports feedgen.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from feeder import __version__
from feeder.formats import FORMATS, EntryText, feed_url, rfc3339
from feeder.models import Enclosure, Entry, FeedDocument
from feeder.text import plain_text

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
HISTORY_NS = "http://purl.org/syndication/history/1.0"


def atom_and_rss(
    document: FeedDocument, entries: Sequence[Entry], texts: Sequence[EntryText], base_url: str
) -> tuple[bytes, bytes]:
    """The document's Atom and RSS files."""
    generator = _generator(document, entries, texts, base_url)
    atom = generator.atom_str(pretty=True)
    _set_links(generator, base_url, document.path, "rss")
    return atom, generator.rss_str(pretty=True)


def _generator(
    document: FeedDocument, entries: Sequence[Entry], texts: Sequence[EntryText], base_url: str
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


def _add_entry(fg: FeedGenerator, entry: Entry, text: EntryText) -> None:
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
            xml_elem(f"{{{ATOM_NS}}}updated", element).text = rfc3339(self.updated)
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
