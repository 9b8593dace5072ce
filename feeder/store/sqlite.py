"""The state database as a SQLite file (the default): pragmas, migrations numbered by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from feeder.errors import StoreError
from feeder.store.schema import MIGRATIONS


class SqliteDriver:
    """A SQLite connection in autocommit mode: a transaction is an explicit ``BEGIN IMMEDIATE``."""

    greatest = "max"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, parameters)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._db.executemany(sql, rows)

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def notify(self, channel: str, payload: str) -> None:
        pass

    def apply_once(self, name: str, script: str, present: str) -> bool:
        raise StoreError(f"{name} needs the state database on PostgreSQL (database: postgresql://…)")

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        version = self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(f"the state database has schema {version}, newer than this feeder ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;")


@contextmanager
def open_sqlite(path: Path) -> Iterator[SqliteDriver]:
    """Open (creating if needed) and migrate the SQLite state database at ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"{path}: cannot open the state database: {e}") from e
    try:
        driver = SqliteDriver(connection)
        try:
            _prepare(connection)
            driver.migrate()
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot prepare the state database: {e}") from e
        yield driver
    finally:
        connection.close()


def _prepare(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA page_size = 16384")  # a new database only: an entry (~6 KB) fits in a page
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA cache_size = -32000")  # KiB: a large first refresh does not spill
