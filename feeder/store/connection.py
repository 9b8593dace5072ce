"""The connection to the state database: opening and migrating it, transactions, the entries' revision, and
small settings. Every part of the store (feeder.store's other modules) is a ``Connection``; Store combines them.

Times are stored as integer Unix seconds, UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self

from feeder.database_url import SCHEMES
from feeder.errors import StoreError
from feeder.store.driver import Driver

if TYPE_CHECKING:  # psycopg is imported only on PostgreSQL
    from feeder.store.postgres import Connections

MAX_PARAMETERS = 900  # below SQLite's oldest limit on the parameters of one statement (999)


class Connection:
    """A connection to the state database. Use ``with Store.open(path_or_url) as store:``."""

    def __init__(self, driver: Driver) -> None:
        self._db = driver
        self._in_transaction = False
        self._revision: int | None = None

    @classmethod
    @contextmanager
    def open(cls, database: Path | str) -> Iterator[Self]:
        """Open the state database: a SQLite file, or PostgreSQL when ``database`` is a postgresql:// URL."""
        with _driver(database) as driver:
            yield cls(driver)

    @classmethod
    @contextmanager
    def borrow(cls, connections: Connections) -> Iterator[Self]:
        """The state database (PostgreSQL) over a connection lent by ``connections``, given back after."""
        with connections.lent() as driver:
            yield cls(driver)

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """What the database raises: the store turns them into StoreError in a transaction, not in a read."""
        return self._db.errors

    @property
    def schema_version(self) -> int:
        return self._db.schema_version()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; rolled back whole if anything in it raises. Inside another, it is part of that
        one: a poll writes in short transactions of its own when run alone (a worker's job, so the others can
        write while it waits on the network) and in the refresh's one transaction otherwise."""
        if self._in_transaction:
            yield
            return
        errors = self._db.errors
        try:
            self._db.begin()
        except errors as e:
            raise StoreError(f"cannot start a transaction: {e}") from e
        self._in_transaction, self._revision = True, None
        try:
            yield
        except errors as e:
            self._db.rollback()
            raise StoreError(f"state database error, refresh rolled back: {e}") from e
        except BaseException:
            self._db.rollback()
            raise
        finally:
            self._in_transaction, self._revision = False, None
        try:
            self._db.commit()
        except errors as e:
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
        self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def delete_settings(self, prefix: str) -> None:
        """Delete every setting whose key starts with ``prefix``."""
        self._db.execute("DELETE FROM settings WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))

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


def _driver(database: Path | str) -> AbstractContextManager[Driver]:
    """The driver for a SQLite path or a PostgreSQL URL (psycopg is imported only for the latter)."""
    if isinstance(database, str) and database.split("://", 1)[0] in SCHEMES:
        from feeder.store.postgres import open_postgres  # noqa: PLC0415

        return open_postgres(database)
    from feeder.store.sqlite import open_sqlite  # noqa: PLC0415

    return open_sqlite(Path(database))
