"""The files the store's entries make: each feed, its section feeds, their RFC 5005 archive pages and their
Traditional Chinese editions, then index.html and feeds.opml.

A document is rendered only when what it shows, its settings or its files on disk changed, and is written as
soon as it is rendered, so memory holds one document at a time however long the history. Archive pages are
written before the feed that links to them. The store is read, and written only for the archive slots and the
record of what was published; publishing is idempotent, so a crash part way is repaired by the next build.
Which entries each archive page holds is archive.py's business; how a document is told to have changed,
fingerprints.py's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from feeder.archive import (
    ARCHIVE_FOLDER,
    ArchivePlan,
    archive_page,
    page_document,
    page_entries,
    plan_archive,
    stored_page_digest,
)
from feeder.config import VARIANT_LANGUAGES, Config, FeedConfig
from feeder.fingerprints import RENDER_VERSION, document_fingerprint, files_stamp
from feeder.formats import FORMATS
from feeder.models import Entry, FeedDigest, FeedDocument, FeedInfo
from feeder.normalize import is_section_name
from feeder.publish import remove_leftovers, write_files
from feeder.render import render_document, render_index, render_opml
from feeder.store import Store
from feeder.variants import converter


@dataclass(frozen=True, slots=True)
class Edition:
    """A feed as written in one script: the original (``variant`` None) or a Traditional Chinese edition."""

    variant: str | None
    name: str
    language: str

    def text(self, text: str) -> str:
        return text if self.variant is None else converter(self.variant).text(text)


@dataclass(frozen=True, slots=True)
class View:
    """A feed, or one of its section feeds."""

    feed: FeedConfig
    section: str | None
    title: str

    @property
    def key(self) -> str:
        """The original edition's name of the view: what its archive slots are kept under."""
        return self.path(self.feed.name)

    def path(self, edition_name: str) -> str:
        return edition_name if self.section is None else f"{edition_name}/{self.section}"


@dataclass
class Built:
    """What a build wrote, left as it was, which subscription feeds' URLs changed (for WebSub), and how many
    entries each subscription feed shows."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    feeds: list[tuple[str, int]] = field(default_factory=list)


def build(config: Config, store: Store, now: datetime) -> Built:
    """Render and publish whatever changed since the last build."""
    remove_leftovers(config.output_dir)
    builder = _Builder(config, store, now)
    infos = [info for feed in config.feeds for info in builder.feed(feed)]
    files = {"index.html": render_index(infos, config.base_url), "feeds.opml": render_opml(infos, config.base_url)}
    written, unchanged = write_files(config.output_dir, files)
    builder.built.written += written
    builder.built.unchanged += unchanged
    builder.built.feeds = [(info.name, info.entry_count) for info in infos]
    with store.transaction():  # only now, so a build cut short is done again, whole, by the next one
        for name, stamp in builder.stamps.items():
            store.set_rendered(builder.node + name, stamp, now)
        for view, state in builder.archive_states.items():
            store.set_archive_state(view, state)
    return builder.built


def node_key(config: Config) -> str:
    """What a node's record of its published files is kept under: nothing on SQLite, where one node publishes;
    on PostgreSQL, its host and output folder, as every ``feeder run`` publishes a copy of its own."""
    return "" if config.database is None else f"{socket.gethostname()}:{config.output_dir}/"


def editions(feed: FeedConfig) -> list[Edition]:
    """The feed itself, then its Traditional Chinese editions."""
    variants = [Edition(v, feed.variant_name(v), VARIANT_LANGUAGES[v]) for v in feed.variants]
    return [Edition(None, feed.name, feed.language), *variants]


def views(feed: FeedConfig, store: Store) -> list[View]:
    """A feed, then (with ``sections``) one feed per section of its entries: NAME/SECTION.atom and so on."""
    found = [View(feed, None, feed.title)]
    if feed.sections:
        sections = filter(is_section_name, store.sections(feed.sources))
        found += [View(feed, section, f"{feed.title} · {section}") for section in sections]
    return found


class _Builder:
    def __init__(self, config: Config, store: Store, now: datetime) -> None:
        self.config, self.store, self.now = config, store, now
        self.built = Built()
        self.stamps: dict[str, str] = {}
        """Per document rendered, what to record as published once everything is written."""
        self.archive_states: dict[str, str] = {}
        """Per view whose archive was planned afresh, what it was planned for: recorded with the stamps."""
        self.revision = store.revision()  # a build writes no entry: the same for every view
        self.node = node_key(config)

    def feed(self, feed: FeedConfig) -> Iterator[FeedInfo]:
        with self.store.transaction():
            created = self.store.feed_created_at(feed.name, self.now)
        ttl = max(1, math.ceil(self.config.feed_interval(feed).total_seconds() / 60))
        for view in views(feed, self.store):
            digest = self.store.feed_digest(feed.sources, feed.max_entries, view.section)
            plan = self._plan(view, digest) if feed.archive else None
            documents = {
                edition: self._document(view, edition, digest.newest_updated or created, ttl, plan)
                for edition in editions(feed)
            }
            if plan is not None:
                self._publish_pages(view, plan, documents, created)
            yield from self._publish_feeds(view, digest, documents)

    def _document(
        self, view: View, edition: Edition, updated: datetime, ttl: int, plan: ArchivePlan | None
    ) -> FeedDocument:
        """The subscription feed of a view in one edition."""
        path = view.path(edition.name)
        return FeedDocument(
            path=path,
            feed_path=path,
            title=edition.text(view.title),
            description=edition.text(view.feed.description if view.section is None else view.title),
            author=view.feed.author,
            language=edition.language,
            updated=updated,
            ttl_minutes=ttl,
            prev_archive=archive_page(path, plan.pages) if plan and plan.pages else None,
            hubs=self.config.websub.hubs,
        )

    # -- subscription feeds

    def _publish_feeds(
        self, view: View, digest: FeedDigest, documents: dict[Edition, FeedDocument]
    ) -> Iterator[FeedInfo]:
        loaded: list[Entry] | None = None
        for edition, document in documents.items():
            fingerprint = self._fingerprint(document, digest.rows_sha256)
            if self._is_published(document.path, fingerprint):
                self.built.unchanged += [self.config.output_dir / f"{document.path}.{kind}" for kind in FORMATS]
            else:
                if loaded is None:
                    loaded = self.store.entries(view.feed.sources, view.feed.max_entries, view.section)
                written = self._publish(document, self._shown(edition, loaded), fingerprint)
                self.built.topics += [self._url(path) for path in written]
            title = document.title if edition.variant is None else f"{document.title} ({edition.language})"
            yield FeedInfo(document.path, title, document.description, document.updated, digest.count, edition.language)

    # -- archive pages

    def _plan(self, view: View, digest: FeedDigest) -> ArchivePlan:
        """The view's archive pages, briefed afresh when anything may have changed since the last build."""
        feed = view.feed
        settings = [RENDER_VERSION, self.config.base_url, feed.model_dump_json(), self.config.feed_interval(feed)]
        # with the node's key: another node recording the same state has not written this node's pages
        state = self.node + json.dumps([self.revision, digest.rows_sha256, settings], default=str)
        plan = plan_archive(self.store, view.key, feed, section=view.section, digest=digest, state=state)
        if plan.digests is not None:
            self.archive_states[view.key] = state
        return plan

    def _publish_pages(
        self, view: View, plan: ArchivePlan, documents: dict[Edition, FeedDocument], created: datetime
    ) -> None:
        published = {
            edition: {
                name.removeprefix(self.node): stamp
                for name, stamp in self.store.rendered_under(f"{self.node}{document.path}/{ARCHIVE_FOLDER}/").items()
            }
            for edition, document in documents.items()
        }
        for index in range(plan.pages):
            due = list(self._pages_due(view, plan, index, documents, published))
            if due:
                entries = page_entries(self.store, view.key, plan, index)
                updated = max((entry.updated for entry in entries), default=created)
                for edition, page, fingerprint in due:
                    self._publish(
                        dataclasses.replace(page, updated=updated), self._shown(edition, entries), fingerprint
                    )

    def _pages_due(
        self,
        view: View,
        plan: ArchivePlan,
        index: int,
        documents: dict[Edition, FeedDocument],
        published: dict[Edition, dict[str, str]],
    ) -> Iterator[tuple[Edition, FeedDocument, str]]:
        """The editions of one archive page to render again, each with the page and its fingerprint."""
        digest = plan.digest(index)
        for edition, document in documents.items():
            page = page_document(document, index, plan.pages)
            stamp, files = published[edition].get(page.path), files_stamp(self.config.output_dir, page.path)
            if digest is None and stamp is not None and stamp.endswith(f":{files}"):
                continue  # nothing changed since the last build, and its files are as written then
            if digest is None:
                digest = stored_page_digest(self.store, view.key, plan, index)
            fingerprint = self._fingerprint(page, digest)
            if stamp != f"{fingerprint}:{files}":
                yield edition, page, fingerprint

    # -- publishing and what was published

    def _shown(self, edition: Edition, entries: Sequence[Entry]) -> list[Entry]:
        """The entries as an edition shows them: converted for a variant, with what was converted before reused."""
        if edition.variant is None:
            return list(entries)
        kept = self.store.converted(edition.variant, [entry.url for entry in entries])
        shown, fresh = converter(edition.variant).entries(entries, kept)
        if fresh:
            with self.store.transaction():
                self.store.remember_converted(edition.variant, fresh)
        return shown

    def _publish(self, document: FeedDocument, entries: Sequence[Entry], fingerprint: str) -> list[Path]:
        files = render_document(document, entries, base_url=self.config.base_url)
        written, unchanged = write_files(self.config.output_dir, files)
        self.built.written += written
        if not document.archive:
            self.built.unchanged += unchanged
        self.stamps[document.path] = self._stamp(document.path, fingerprint)
        return written

    def _fingerprint(self, document: FeedDocument, shown: str) -> str:
        return document_fingerprint(document, shown, self.config.base_url)

    def _is_published(self, path: str, fingerprint: str) -> bool:
        return self.store.rendered(self.node + path) == self._stamp(path, fingerprint)

    def _stamp(self, path: str, fingerprint: str) -> str:
        return f"{fingerprint}:{files_stamp(self.config.output_dir, path)}"

    def _url(self, path: Path) -> str:
        return self.config.base_url + quote(path.relative_to(self.config.output_dir).as_posix())
