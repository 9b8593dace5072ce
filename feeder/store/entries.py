"""Entries: one row per canonical URL, merged from every version any source gave, with which sources gave it,
and what the feeds select from them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from feeder.models import Article, Enclosure, Entry, FeedDigest
from feeder.store.connection import MAX_PARAMETERS, Connection, moment, seconds

Outcome = Literal["new", "updated", "unchanged"]


class Entries(Connection):
    def upsert_many(self, articles: Sequence[Article], source: str) -> list[Outcome]:
        """``upsert`` of each article in turn, with the articles whose URL is new inserted in one statement."""
        existing = self._existing_urls([a.url for a in articles])
        outcomes: list[Outcome] = []
        fresh: dict[str, Article] = {}
        for article in articles:
            if article.url in existing or article.url in fresh:
                if article.url in fresh:
                    self._insert_many(fresh.values(), source)
                    existing.update(fresh)
                    fresh.clear()
                outcomes.append(self.upsert(article, source))
            else:
                fresh[article.url] = article
                outcomes.append("new")
        self._insert_many(fresh.values(), source)
        return outcomes

    def _existing_urls(self, urls: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(urls), MAX_PARAMETERS):
            chunk = urls[start : start + MAX_PARAMETERS]
            marks = ", ".join("?" * len(chunk))
            found.update(url for (url,) in self._db.execute(f"SELECT url FROM entries WHERE url IN ({marks})", chunk))
        return found

    def upsert(self, article: Article, source: str) -> Outcome:
        """Merge one article version into its entry, keyed by canonical URL.

        The content (title, lead, image, body) is that of the best version: full text beats a lead, then
        the newest version wins; between two versions with one time the longer content wins (the other was
        most likely read half-written), then the greater hash, so the order of arrival never matters. A
        newer lead-only version still updates the title. ``published`` only moves earlier, categories
        are the union of all versions', and a known audio file and author are kept when a better version
        names none.
        """
        row = self._db.execute(
            "SELECT fulltext, version_at, length(content), content_hash, published, updated, title, categories,"
            " audio FROM entries WHERE url = ?",
            (article.url,),
        ).fetchone()
        if row is None:
            self._insert(article)
        self._db.execute(_INSERT_SOURCE, (article.url, source))
        if row is None:
            return "new"
        fulltext, version_at, length, stored_hash, published, updated, title, categories, audio = row
        earliest = _merge_published(published, seconds(article.published))
        merged = _union(json.loads(categories), article.categories)
        audio = audio or _audio_json(article.audio)
        version = seconds(article.version_at)
        incoming = (int(article.fulltext), version, len(article.content_html), article.content_hash)
        if article.content_hash != stored_hash and incoming > (fulltext, version_at, length, stored_hash):
            newest = max(updated, version, earliest)
            self._replace(article, published=earliest, updated=newest, categories=merged, audio=audio)
            return "updated"
        new_title = article.title if version > version_at and article.title != title else title
        changes = (earliest, new_title, json.dumps(merged, ensure_ascii=False), audio)
        if changes == (published, title, categories, row[8]):
            return "unchanged"
        self._db.execute(
            "UPDATE entries SET published = ?, title = ?, categories = ?, audio = ?,"
            f" updated = {self._db.greatest}(updated, ?, ?), revision = ? WHERE url = ?",
            (*changes, earliest, version if new_title != title else updated, self._write_revision(), article.url),
        )
        return "updated"

    def _insert(self, a: Article) -> None:
        self._db.execute(_INSERT_ENTRY, (*_entry_row(a), self._write_revision()))

    def _insert_many(self, articles: Iterable[Article], source: str) -> None:
        revision = self._write_revision()
        rows = [(*_entry_row(a), revision) for a in articles]
        self._db.executemany(_INSERT_ENTRY, rows)
        self._db.executemany(_INSERT_SOURCE, [(row[0], source) for row in rows])

    def _replace(self, a: Article, *, published: int, updated: int, categories: list[str], audio: str | None) -> None:
        self._db.execute(
            "UPDATE entries SET title = ?, section = ?, categories = ?, author = coalesce(?, author), lead = ?,"
            " image = ?, content = ?, published = ?, updated = ?, version_at = ?, content_hash = ?, fulltext = ?,"
            " audio = ?, revision = ? WHERE url = ?",
            (
                a.title,
                a.section,
                json.dumps(categories, ensure_ascii=False),
                a.author,
                a.lead,
                a.image,
                a.content_html,
                published,
                updated,
                seconds(a.version_at),
                a.content_hash,
                int(a.fulltext),
                audio,
                self._write_revision(),
                a.url,
            ),
        )

    def entries(self, sources: Sequence[str], limit: int, section: str | None = None) -> list[Entry]:
        """The newest entries that any of these sources contributed (in ``section`` if given), newest first."""
        return [entry_of(row) for row in self._select(ENTRY_COLUMNS, sources, limit, section)]

    def feed_digest(self, sources: Sequence[str], limit: int, section: str | None = None) -> FeedDigest:
        """What ``entries`` would return, in brief, without loading any content."""
        rows = self._select("url, published, updated, revision", sources, limit, section)
        digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
        newest = max((row[2] for row in rows), default=None)
        urls = tuple(str(row[0]) for row in rows)
        return FeedDigest(len(rows), None if newest is None else moment(newest), digest, urls)

    def count_entries(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def sections(self, sources: Sequence[str]) -> list[str]:
        """The sections of the entries these sources contributed, in name order."""
        marks = ", ".join("?" for _ in sources)
        rows = self._db.execute(
            "SELECT DISTINCT section FROM entries AS e WHERE section IS NOT NULL AND EXISTS"
            f" (SELECT 1 FROM entry_sources AS s WHERE s.url = e.url AND s.source IN ({marks})) ORDER BY section",
            tuple(sources),
        ).fetchall()
        return [str(section) for (section,) in rows]

    def _select(
        self, columns: str, sources: Sequence[str], limit: int, section: str | None = None
    ) -> list[tuple[Any, ...]]:
        where, parameters = in_view(sources, section)
        query = f"SELECT {columns} FROM entries AS e WHERE {where} ORDER BY published DESC, url LIMIT ?"
        return self._db.execute(query, (*parameters, limit)).fetchall()


_INSERT_ENTRY = (
    "INSERT INTO entries (url, title, section, categories, author, lead, image, content,"
    " published, updated, version_at, content_hash, fulltext, audio, revision)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SOURCE = "INSERT INTO entry_sources (url, source) VALUES (?, ?) ON CONFLICT DO NOTHING"
ENTRY_COLUMNS = "url, title, section, categories, author, lead, image, content, published, updated, audio"


def in_view(sources: Sequence[str], section: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition (on ``entries AS e``) and its parameters for the entries a feed or section feed shows."""
    marks = ", ".join("?" for _ in sources)
    where = f"EXISTS (SELECT 1 FROM entry_sources AS s WHERE s.url = e.url AND s.source IN ({marks}))"
    if section is None:
        return where, tuple(sources)
    return f"{where} AND section = ?", (*sources, section)


def _entry_row(a: Article) -> tuple[object, ...]:
    published = seconds(a.published)
    version_at = seconds(a.version_at)
    extra = (published, max(published, version_at), version_at, a.content_hash, int(a.fulltext), _audio_json(a.audio))
    return (*_content_columns(a), *extra)


def _content_columns(a: Article) -> tuple[object, ...]:
    categories = json.dumps(list(a.categories), ensure_ascii=False)
    return (a.url, a.title, a.section, categories, a.author, a.lead, a.image, a.content_html)


def _merge_published(stored: int, incoming: int) -> int:
    """The earliest credible publication time, but within one minute the precise one (a seed's date line
    has minute precision, RFI's feeds and pages have seconds): it is the later of the two."""
    if stored // 60 == incoming // 60:
        return max(stored, incoming)
    return min(stored, incoming)


def _union(first: list[str], second: Iterable[str]) -> list[str]:
    return [*first, *(c for c in dict.fromkeys(second) if c not in first)]


def _audio_json(audio: Enclosure | None) -> str | None:
    return None if audio is None else json.dumps(dataclasses.asdict(audio), sort_keys=True)


def entry_of(row: tuple[object, ...]) -> Entry:
    url, title, section, categories, author, lead, image, content, published, updated, audio = row
    return Entry(
        url=str(url),
        title=str(title),
        section=None if section is None else str(section),
        categories=tuple(json.loads(str(categories))),
        author=None if author is None else str(author),
        lead=str(lead),
        image=None if image is None else str(image),
        content_html=str(content),
        published=moment(published),
        updated=moment(updated),
        audio=None if audio is None else Enclosure(**json.loads(str(audio))),
    )
