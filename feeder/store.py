"""SQLite state: one entry per canonical URL, what each source contributed, seed files seen.

The only module that speaks SQL. Schema changes are numbered migrations applied
in order (``PRAGMA user_version`` records how far a database has come). Times
are stored as integer Unix seconds, UTC.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from feeder.errors import StoreError
from feeder.models import Article, Enclosure, Entry, FeedDigest, HostState, KnownFile, Validators

Outcome = Literal["new", "updated", "unchanged"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE entries (
        url TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        section TEXT,
        categories TEXT NOT NULL,
        author TEXT,
        lead TEXT NOT NULL,
        image TEXT,
        content TEXT NOT NULL,
        published INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        version_at INTEGER NOT NULL,
        content_hash TEXT NOT NULL
    );
    CREATE INDEX entries_by_published ON entries (published DESC, url);
    CREATE TABLE entry_sources (
        url TEXT NOT NULL REFERENCES entries (url),
        source TEXT NOT NULL,
        PRIMARY KEY (url, source)
    ) WITHOUT ROWID;
    CREATE INDEX entry_sources_by_source ON entry_sources (source, url);
    CREATE TABLE seed_files (
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        url TEXT,
        error TEXT,
        PRIMARY KEY (source, path)
    ) WITHOUT ROWID;
    CREATE TABLE feeds (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE feeds ADD COLUMN rendered TEXT;
    """,
    """
    ALTER TABLE entries ADD COLUMN fulltext INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE entries ADD COLUMN audio TEXT;
    CREATE INDEX entries_by_section ON entries (section, published DESC, url);
    CREATE TABLE http_cache (
        url TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT
    ) WITHOUT ROWID;
    CREATE TABLE hosts (
        host TEXT PRIMARY KEY,
        next_allowed INTEGER,
        failures INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE pages (
        url TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        feed_date INTEGER,
        fetched_for INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        next_try INTEGER,
        in_feed INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE feed_items (
        feed TEXT NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (feed, url)
    ) WITHOUT ROWID;
    CREATE INDEX feed_items_by_url ON feed_items (url);
    """,
    """
    ALTER TABLE entries ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX entries_by_revision ON entries (revision);
    CREATE TABLE archive_slots (
        view TEXT NOT NULL,
        seq INTEGER NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (view, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX archive_slots_by_url ON archive_slots (view, url);
    CREATE TABLE archive_views (
        view TEXT PRIMARY KEY,
        sources TEXT NOT NULL,
        state TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE editions (
        variant TEXT NOT NULL,
        url TEXT NOT NULL,
        source TEXT NOT NULL,
        converted TEXT NOT NULL,
        PRIMARY KEY (variant, url)
    );
    """,
)


_MAX_PARAMETERS = 900  # below SQLite's oldest limit on the parameters of one statement (999)


class Store:
    """A connection to the state database. Use ``with Store.open(path) as store:``."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._in_transaction = False
        self._revision: int | None = None

    @classmethod
    @contextmanager
    def open(cls, path: Path) -> Iterator[Store]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{path}: cannot open the state database: {e}") from e
        try:
            store = cls(connection)
            store._prepare(path)
            yield store
        finally:
            connection.close()

    def _prepare(self, path: Path) -> None:
        try:
            self._db.execute("PRAGMA page_size = 16384")  # a new database only: an entry (~6 KB) fits in a page
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA cache_size = -32000")  # KiB: a large first refresh does not spill
            self._migrate()
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot prepare the state database: {e}") from e

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"the state database has schema {version}, newer than this feeder ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; rolled back whole if anything in it raises."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(f"cannot start a transaction: {e}") from e
        self._in_transaction, self._revision = True, None
        try:
            yield
        except sqlite3.Error as e:
            self._db.execute("ROLLBACK")
            raise StoreError(f"state database error, refresh rolled back: {e}") from e
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._in_transaction, self._revision = False, None
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreError(f"cannot commit: {e}") from e

    def _write_revision(self) -> int:
        """The revision every entry written in this transaction gets: one more than any before it."""
        if self._revision is None or not self._in_transaction:
            self._revision = self.revision() + 1
        return self._revision

    def revision(self) -> int:
        """The revision of the last write to any entry: it moves whenever anything a feed shows changes."""
        return int(self._db.execute("SELECT coalesce(max(revision), 0) FROM entries").fetchone()[0])

    # Settings -------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def emptied(self, key: str, count: int) -> int | None:
        """Track how many items something yields: when it yields none but yielded some before, how many."""
        if count:
            self.set_setting(f"count:{key}", str(count))
            return None
        before = self.setting(f"count:{key}")
        return int(before) if before else None

    # Seed files -----------------------------------------------------------

    def changed_files(
        self, source: str, listed: Sequence[tuple[str, int, int]]
    ) -> tuple[int, list[tuple[tuple[str, int, int], KnownFile | None]]]:
        """Of these (path, size, mtime_ns) of a source's files, how many are remembered, and those whose
        size or mtime is not the remembered one, each with what is remembered of it (None: a new file).

        One query per few hundred files, answering only with the files that changed: a large folder where
        nothing changed costs a stat and a B-tree lookup per file."""
        known = 0
        changed: list[tuple[tuple[str, int, int], KnownFile | None]] = []
        step = _MAX_PARAMETERS // 3
        for start in range(0, len(listed), step):
            chunk = listed[start : start + step]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            rows = self._db.execute(
                f"WITH listed (path, size, mtime_ns) AS (VALUES {values})"
                " SELECT l.path, l.size, l.mtime_ns, f.path IS NOT NULL, f.size, f.mtime_ns, f.sha256 FROM listed AS l"
                " LEFT JOIN seed_files AS f ON f.source = ? AND f.path = l.path"
                " WHERE f.path IS NULL OR f.size != l.size OR f.mtime_ns != l.mtime_ns",
                (*itertools.chain.from_iterable(chunk), source),
            ).fetchall()
            known += len(chunk) - sum(1 for row in rows if not row[3])
            changed += [
                ((path, size, mtime), KnownFile(*row) if seen else None) for path, size, mtime, seen, *row in rows
            ]
        return known, changed

    def count_files(self, source: str) -> int:
        return int(self._db.execute("SELECT count(*) FROM seed_files WHERE source = ?", (source,)).fetchone()[0])

    def file_paths(self, source: str) -> Iterator[str]:
        """The paths remembered for a source, read as they are consumed."""
        for (path,) in self._db.execute("SELECT path FROM seed_files WHERE source = ?", (source,)):
            yield str(path)

    def forget_paths(self, source: str, paths: Iterable[str]) -> None:
        self._db.executemany("DELETE FROM seed_files WHERE source = ? AND path = ?", ((source, p) for p in paths))

    def remember_files(self, source: str, files: Iterable[tuple[str, KnownFile, str | None, str | None]]) -> None:
        """Remember seed files as (path, what was seen, the article's URL, the error) in one statement."""
        self._db.executemany(
            "INSERT OR REPLACE INTO seed_files (source, path, size, mtime_ns, sha256, url, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((source, path, seen.size, seen.mtime_ns, seen.sha256, url, error) for path, seen, url, error in files),
        )

    def forget_files(self, source: str) -> None:
        """Forget every seed file of a source, so the next poll reads each again."""
        self._db.execute("DELETE FROM seed_files WHERE source = ?", (source,))

    # Entries --------------------------------------------------------------

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
        for start in range(0, len(urls), _MAX_PARAMETERS):
            chunk = urls[start : start + _MAX_PARAMETERS]
            marks = ", ".join("?" * len(chunk))
            found.update(url for (url,) in self._db.execute(f"SELECT url FROM entries WHERE url IN ({marks})", chunk))
        return found

    def upsert(self, article: Article, source: str) -> Outcome:
        """Merge one article version into its entry, keyed by canonical URL.

        The content (title, lead, image, body) is that of the best version: full text beats a lead, then
        the newest version wins; between two versions with one time the longer content wins (the other was
        most likely read half-written), then the greater hash, so the order of arrival never matters. A
        newer lead-only version still updates the title. ``published`` only moves earlier, categories
        are the union of all versions', and a known audio file is kept.
        """
        row = self._db.execute(
            "SELECT fulltext, version_at, length(content), content_hash, published, updated, title, categories,"
            " audio FROM entries WHERE url = ?",
            (article.url,),
        ).fetchone()
        if row is None:
            self._insert(article)
        self._db.execute("INSERT OR IGNORE INTO entry_sources (url, source) VALUES (?, ?)", (article.url, source))
        if row is None:
            return "new"
        fulltext, version_at, length, stored_hash, published, updated, title, categories, audio = row
        earliest = _merge_published(published, _seconds(article.published))
        merged = _union(json.loads(categories), article.categories)
        audio = audio or _audio_json(article.audio)
        version = _seconds(article.version_at)
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
            " updated = max(updated, ?, ?), revision = ? WHERE url = ?",
            (*changes, earliest, version if new_title != title else updated, self._write_revision(), article.url),
        )
        return "updated"

    def _insert(self, a: Article) -> None:
        self._db.execute(_INSERT_ENTRY, (*_entry_row(a), self._write_revision()))

    def _insert_many(self, articles: Iterable[Article], source: str) -> None:
        revision = self._write_revision()
        rows = [(*_entry_row(a), revision) for a in articles]
        self._db.executemany(_INSERT_ENTRY, rows)
        self._db.executemany(
            "INSERT OR IGNORE INTO entry_sources (url, source) VALUES (?, ?)", [(row[0], source) for row in rows]
        )

    def _replace(self, a: Article, *, published: int, updated: int, categories: list[str], audio: str | None) -> None:
        self._db.execute(
            "UPDATE entries SET title = ?, section = ?, categories = ?, author = ?, lead = ?, image = ?,"
            " content = ?, published = ?, updated = ?, version_at = ?, content_hash = ?, fulltext = ?, audio = ?,"
            " revision = ? WHERE url = ?",
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
                _seconds(a.version_at),
                a.content_hash,
                int(a.fulltext),
                audio,
                self._write_revision(),
                a.url,
            ),
        )

    def entries(self, sources: Sequence[str], limit: int, section: str | None = None) -> list[Entry]:
        """The newest entries that any of these sources contributed (in ``section`` if given), newest first."""
        return [_entry(row) for row in self._select(_ENTRY_COLUMNS, sources, limit, section)]

    def feed_digest(self, sources: Sequence[str], limit: int, section: str | None = None) -> FeedDigest:
        """What ``entries`` would return, in brief, without loading any content."""
        rows = self._select("url, published, updated, revision", sources, limit, section)
        digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
        newest = max((row[2] for row in rows), default=None)
        urls = tuple(str(row[0]) for row in rows)
        return FeedDigest(len(rows), None if newest is None else _moment(newest), digest, urls)

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
        where, parameters = _in_view(sources, section)
        query = f"SELECT {columns} FROM entries AS e WHERE {where} ORDER BY published DESC, url LIMIT ?"
        return self._db.execute(query, (*parameters, limit)).fetchall()

    # Archive pages --------------------------------------------------------
    # A view (a feed, or a section feed) gives each entry that has left its newest ``max_entries`` a slot: the
    # next number, in the order entries left it (publication order the first time). A page is a fixed run of
    # slots, so a page's entries stay on it whatever arrives later.

    def archive_sources(self, view: str) -> str | None:
        """The sources the view's slots were given for (as recorded by ``start_archive``), or None."""
        row = self._db.execute("SELECT sources FROM archive_views WHERE view = ?", (view,)).fetchone()
        return None if row is None else str(row[0])

    def start_archive(self, view: str, sources: str) -> None:
        """Forget a view's slots: its entries are numbered again from the oldest."""
        self._db.execute("DELETE FROM archive_slots WHERE view = ?", (view,))
        self._db.execute(
            "INSERT OR REPLACE INTO archive_views (view, sources, state) VALUES (?, ?, '')", (view, sources)
        )

    def archive_state(self, view: str) -> str:
        row = self._db.execute("SELECT state FROM archive_views WHERE view = ?", (view,)).fetchone()
        return "" if row is None else str(row[0])

    def set_archive_state(self, view: str, state: str) -> None:
        self._db.execute("UPDATE archive_views SET state = ? WHERE view = ?", (state, view))

    def archive_slot_count(self, view: str) -> int:
        row = self._db.execute("SELECT coalesce(max(seq) + 1, 0) FROM archive_slots WHERE view = ?", (view,))
        return int(row.fetchone()[0])

    def unslotted(self, view: str, sources: Sequence[str], section: str | None) -> Iterator[str]:
        """The view's entries without a slot, oldest first (by publication time, then URL)."""
        where, parameters = _in_view(sources, section)
        query = (
            f"SELECT url FROM entries AS e WHERE {where} AND NOT EXISTS"
            " (SELECT 1 FROM archive_slots AS a WHERE a.view = ? AND a.url = e.url) ORDER BY published, url"
        )
        for (url,) in self._db.execute(query, (*parameters, view)):
            yield str(url)

    def add_slots(self, view: str, urls: Iterable[str]) -> int:
        """Give these URLs the next slots of a view, in order; returns how many slots the view has then."""
        start = self.archive_slot_count(view)
        numbered = ((view, seq, url) for seq, url in enumerate(urls, start=start))
        self._db.executemany("INSERT INTO archive_slots (view, seq, url) VALUES (?, ?, ?)", numbered)
        return self.archive_slot_count(view)

    def slotted(self, view: str, first: int = 0, end: int | None = None) -> Iterator[tuple[int, str, int, int]]:
        """(slot, url, published, revision) of a view's slots from ``first`` up to ``end``, in slot order."""
        rows = self._db.execute(
            "SELECT a.seq, a.url, e.published, e.revision FROM archive_slots AS a JOIN entries AS e ON e.url = a.url"
            " WHERE a.view = ? AND a.seq >= ? AND a.seq < ? ORDER BY a.seq",
            (view, first, end if end is not None else 1 << 62),
        )
        for seq, url, published, revision in rows:
            yield int(seq), str(url), int(published), int(revision)

    def slotted_entries(self, view: str, first: int, end: int) -> list[Entry]:
        """The entries of a view's slots from ``first`` up to ``end``, newest first."""
        columns = ", ".join(f"e.{c}" for c in _ENTRY_COLUMNS.split(", "))
        rows = self._db.execute(
            f"SELECT {columns} FROM archive_slots AS a JOIN entries AS e ON e.url = a.url"
            " WHERE a.view = ? AND a.seq >= ? AND a.seq < ? ORDER BY e.published DESC, e.url",
            (view, first, end),
        ).fetchall()
        return [_entry(row) for row in rows]

    def count_entries(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    # HTTP politeness and article pages ----------------------------------------

    def hosts(self) -> dict[str, HostState]:
        rows = self._db.execute("SELECT host, next_allowed, failures FROM hosts").fetchall()
        return {host: HostState(None if at is None else _moment(at), failures) for host, at, failures in rows}

    def save_hosts(self, hosts: dict[str, HostState]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO hosts (host, next_allowed, failures) VALUES (?, ?, ?)",
            [
                (host, None if s.next_allowed is None else _seconds(s.next_allowed), s.failures)
                for host, s in hosts.items()
            ],
        )

    def validators(self, url: str) -> Validators | None:
        row = self._db.execute("SELECT etag, last_modified FROM http_cache WHERE url = ?", (url,)).fetchone()
        return None if row is None else Validators(row[0], row[1])

    def save_validators(self, url: str, validators: Validators) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO http_cache (url, etag, last_modified) VALUES (?, ?, ?)",
            (url, validators.etag, validators.last_modified),
        )

    def note_feed_item(self, url: str, source: str, feed_date: datetime | None) -> None:
        """An article listed by one of the source's feeds now, dated ``feed_date`` there."""
        date = None if feed_date is None else _seconds(feed_date)
        self._db.execute(
            "INSERT INTO pages (url, source, feed_date) VALUES (?, ?, ?)"
            " ON CONFLICT (url) DO UPDATE SET"
            " feed_date = max(coalesce(pages.feed_date, 0), coalesce(excluded.feed_date, 0))",
            (url, source, date),
        )

    def set_feed_listing(self, feed: str, urls: set[str]) -> None:
        """What a feed lists now (after it was read and parsed); an article no feed lists is not retried."""
        self._db.execute("DELETE FROM feed_items WHERE feed = ?", (feed,))
        self._db.executemany("INSERT INTO feed_items (feed, url) VALUES (?, ?)", [(feed, url) for url in urls])

    def adopt_articles_without_pages(self, source: str) -> None:
        """Give every entry this source never saw a page record, so its page is fetched once."""
        self._db.execute("INSERT OR IGNORE INTO pages (url, source) SELECT url, ? FROM entries", (source,))

    def pages_due(self, source: str, now: datetime, limit: int) -> list[str]:
        """Article pages worth fetching now: never fetched (retried only while listed in a feed), or listed
        with a newer date than the version fetched, and not backing off. Newest articles first."""
        rows = self._db.execute(
            "SELECT p.url FROM pages AS p LEFT JOIN entries AS e ON e.url = p.url"
            " WHERE p.source = ? AND (p.next_try IS NULL OR p.next_try <= ?) AND ("
            "  (p.fetched_for IS NULL AND (p.failures = 0 OR p.url IN (SELECT url FROM feed_items)))"
            "  OR (p.fetched_for < coalesce(p.feed_date, 0) AND p.url IN (SELECT url FROM feed_items)))"
            " ORDER BY coalesce(e.published, 0) DESC, p.url LIMIT ?",
            (source, _seconds(now), limit),
        ).fetchall()
        return [url for (url,) in rows]

    def page_fetched(self, url: str) -> None:
        self._db.execute(
            "UPDATE pages SET fetched_for = coalesce(feed_date, 0), failures = 0, next_try = NULL WHERE url = ?",
            (url,),
        )

    def page_failed(self, url: str, next_try: datetime) -> int:
        """Record a failed page fetch; returns how many failures in a row that makes."""
        self._db.execute(
            "UPDATE pages SET failures = failures + 1, next_try = ? WHERE url = ?", (_seconds(next_try), url)
        )
        row = self._db.execute("SELECT failures FROM pages WHERE url = ?", (url,)).fetchone()
        return 0 if row is None else int(row[0])

    def page_failures(self, url: str) -> int:
        row = self._db.execute("SELECT failures FROM pages WHERE url = ?", (url,)).fetchone()
        return 0 if row is None else int(row[0])

    # Traditional Chinese editions ---------------------------------------------
    # An entry's text as converted for a variant, with a hash of the text it was converted from: what the
    # entry still shows is converted again only once that text changed.

    def converted(self, variant: str, urls: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{url: (hash of the original text, the converted text as stored)} of these entries in a variant."""
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(urls), _MAX_PARAMETERS):
            chunk = urls[start : start + _MAX_PARAMETERS]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT url, source, converted FROM editions WHERE variant = ? AND url IN ({marks})", (variant, *chunk)
            )
            found.update((str(url), (str(source), str(text))) for url, source, text in rows)
        return found

    def remember_converted(self, variant: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """Keep (url, hash of the original text, converted text) for a variant, replacing what was there."""
        self._db.executemany(
            "INSERT OR REPLACE INTO editions (variant, url, source, converted) VALUES (?, ?, ?, ?)",
            ((variant, *row) for row in rows),
        )

    # Feeds ----------------------------------------------------------------

    def feed_created_at(self, name: str, now: datetime) -> datetime:
        """When a feed was first built: its ``updated`` time while it has no entries."""
        self._db.execute("INSERT OR IGNORE INTO feeds (name, created_at) VALUES (?, ?)", (name, _seconds(now)))
        row = self._db.execute("SELECT created_at FROM feeds WHERE name = ?", (name,)).fetchone()
        return _moment(row[0])

    def rendered(self, name: str) -> str | None:
        """The fingerprint of what was last published for this feed."""
        row = self._db.execute("SELECT rendered FROM feeds WHERE name = ?", (name,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def rendered_under(self, folder: str) -> dict[str, str]:
        """The fingerprints of what was last published under a folder (``rfi-cn/archive/``), by name."""
        rows = self._db.execute(
            "SELECT name, rendered FROM feeds WHERE name >= ? AND name < ? AND rendered IS NOT NULL",
            (folder, folder[:-1] + chr(ord(folder[-1]) + 1)),
        ).fetchall()
        return {str(name): str(rendered) for name, rendered in rows}

    def set_rendered(self, name: str, fingerprint: str, now: datetime) -> None:
        self._db.execute(
            "INSERT INTO feeds (name, created_at, rendered) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET rendered = excluded.rendered",
            (name, _seconds(now), fingerprint),
        )


_INSERT_ENTRY = (
    "INSERT INTO entries (url, title, section, categories, author, lead, image, content,"
    " published, updated, version_at, content_hash, fulltext, audio, revision)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ENTRY_COLUMNS = "url, title, section, categories, author, lead, image, content, published, updated, audio"


def _in_view(sources: Sequence[str], section: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition (on ``entries AS e``) and its parameters for the entries a feed or section feed shows."""
    marks = ", ".join("?" for _ in sources)
    where = f"EXISTS (SELECT 1 FROM entry_sources AS s WHERE s.url = e.url AND s.source IN ({marks}))"
    if section is None:
        return where, tuple(sources)
    return f"{where} AND section = ?", (*sources, section)


def _entry_row(a: Article) -> tuple[object, ...]:
    published = _seconds(a.published)
    version_at = _seconds(a.version_at)
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


def _entry(row: tuple[object, ...]) -> Entry:
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
        published=_moment(published),
        updated=_moment(updated),
        audio=None if audio is None else Enclosure(**json.loads(str(audio))),
    )


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _moment(seconds: object) -> datetime:
    return datetime.fromtimestamp(int(str(seconds)), UTC)
