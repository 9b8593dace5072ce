"""``feeder store copy``: every row of one store into another, empty one (a SQLite file into PostgreSQL), so feeds
built from the copy are byte-identical to those built from the original: entries with their ids, dates, versions
and revisions, what sources gave them, seed-file records, validators, hosts, pages, feed listings, settings,
archive slots and views, editions, and the published fingerprints."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from feeder.errors import StoreError
from feeder.store.connection import Connection

TABLES = (
    "entries",
    "entry_sources",
    "seed_files",
    "feeds",
    "settings",
    "http_cache",
    "hosts",
    "pages",
    "feed_items",
    "archive_slots",
    "archive_views",
    "editions",
)
"""Every table of the state, entries before what refers to them."""
BATCH = 1000


class Copying(Connection):
    """A store's rows, table by table, read and written as they are."""

    def table_rows(self, table: str) -> tuple[list[str], Iterator[Sequence[object]]]:
        """The column names of one of ``TABLES`` and its rows, read as they are consumed."""
        cursor = self._db.execute(f"SELECT * FROM {_known(table)}")
        return [column[0] for column in cursor.description], iter(cursor)

    def table_is_empty(self, table: str) -> bool:
        return self._db.execute(f"SELECT 1 FROM {_known(table)} LIMIT 1").fetchone() is None

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        self._db.executemany(f"INSERT INTO {_known(table)} ({names}) VALUES ({marks})", rows)


def copy_store(source: Copying, target: Copying) -> dict[str, int]:
    """Copy every table of ``source`` into ``target``, which must be empty; returns the rows copied per table.

    Both are held in one transaction: the source is not written meanwhile (a running feeder waits), and a
    failed copy leaves the target as empty as it was."""
    with source.transaction(), target.transaction():
        filled = [table for table in TABLES if not target.table_is_empty(table)]
        if filled:
            raise StoreError(f"the target store is not empty ({', '.join(filled)}): copy into a new database")
        return {table: _copy_table(source, target, table) for table in TABLES}


def _copy_table(source: Copying, target: Copying, table: str) -> int:
    columns, rows = source.table_rows(table)
    copied = 0
    while batch := list(itertools.islice(rows, BATCH)):
        target.insert_rows(table, columns, batch)
        copied += len(batch)
    return copied


def _known(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"not a table of the store: {table!r}")
    return table
