"""The connection to the state database: opening and migrating it, transactions, the entries' revision, and
small settings. Every part of the store (feeder.store's other modules) is a ``Connection``; Store combines them.

Times are stored as integer Unix seconds, UTC.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from feeder.errors import StoreError
from feeder.store.schema import MIGRATIONS

MAX_PARAMETERS = 900  # below SQLite's oldest limit on the parameters of one statement (999)


class Connection:
    """A connection to the state database. Use ``with Store.open(path) as store:``."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._in_transaction = False
        self._revision: int | None = None

    @classmethod
    @contextmanager
    def open(cls, path: Path) -> Iterator[Self]:
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


def seconds(at: datetime) -> int:
    """A time as the store keeps it."""
    return int(at.timestamp())


def moment(stored: object) -> datetime:
    """A time the store kept, as an aware UTC datetime."""
    return datetime.fromtimestamp(int(str(stored)), UTC)
