"""What was published: each document's fingerprint, each feed's archive slots, and the Traditional Chinese
editions' converted text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from feeder.models import Entry
from feeder.store.connection import MAX_PARAMETERS, Connection, moment, seconds
from feeder.store.entries import ENTRY_COLUMNS, entry_of, in_view


class Published(Connection):
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
            "INSERT INTO archive_views (view, sources, state) VALUES (?, ?, '')"
            " ON CONFLICT (view) DO UPDATE SET sources = excluded.sources, state = excluded.state",
            (view, sources),
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
        where, parameters = in_view(sources, section)
        query = (
            f"SELECT url FROM entries AS e WHERE {where} AND NOT EXISTS"
            " (SELECT 1 FROM archive_slots AS a WHERE a.view = ? AND a.url = e.url) ORDER BY published, url"
        )
        for (url,) in self._db.execute(query, (*parameters, view)):
            yield str(url)

    def add_slots(self, view: str, urls: Sequence[str]) -> int:
        """Give these URLs the next slots of a view, in order; returns how many slots the view has then."""
        start = self.archive_slot_count(view)
        numbered = ((view, seq, url) for seq, url in enumerate(urls, start=start))
        self._db.executemany("INSERT INTO archive_slots (view, seq, url) VALUES (?, ?, ?)", numbered)
        return start + len(urls)

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
        columns = ", ".join(f"e.{c}" for c in ENTRY_COLUMNS.split(", "))
        rows = self._db.execute(
            f"SELECT {columns} FROM archive_slots AS a JOIN entries AS e ON e.url = a.url"
            " WHERE a.view = ? AND a.seq >= ? AND a.seq < ? ORDER BY e.published DESC, e.url",
            (view, first, end),
        ).fetchall()
        return [entry_of(row) for row in rows]

    # Traditional Chinese editions ---------------------------------------------
    # An entry's text as converted for a variant, with a hash of the text it was converted from: what the
    # entry still shows is converted again only once that text changed.

    def converted(self, variant: str, urls: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{url: (hash of the original text, the converted text as stored)} of these entries in a variant."""
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(urls), MAX_PARAMETERS):
            chunk = urls[start : start + MAX_PARAMETERS]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT url, source, converted FROM editions WHERE variant = ? AND url IN ({marks})", (variant, *chunk)
            )
            found.update((str(url), (str(source), str(text))) for url, source, text in rows)
        return found

    def remember_converted(self, variant: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """Keep (url, hash of the original text, converted text) for a variant, replacing what was there."""
        self._db.executemany(
            "INSERT INTO editions (variant, url, source, converted) VALUES (?, ?, ?, ?) ON CONFLICT (variant, url)"
            " DO UPDATE SET source = excluded.source, converted = excluded.converted",
            ((variant, *row) for row in rows),
        )

    # Feeds ----------------------------------------------------------------

    def feed_created_at(self, name: str, now: datetime) -> datetime:
        """When a feed was first built: its ``updated`` time while it has no entries."""
        self._db.execute(
            "INSERT INTO feeds (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (name, seconds(now))
        )
        row = self._db.execute("SELECT created_at FROM feeds WHERE name = ?", (name,)).fetchone()
        return moment(row[0])

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
            (name, seconds(now), fingerprint),
        )
