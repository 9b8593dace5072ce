"""The state database on PostgreSQL (``database: postgresql://…``), through psycopg 3.

Statements come with SQLite's ``?`` parameters and become psycopg's ``%s`` here. Migrations run in one
transaction under an advisory lock, so processes starting together migrate once; every write transaction takes
another, so writers take turns as on SQLite (``BEGIN IMMEDIATE``), and an entry's revision stays one more than
any before it. ``Connections`` keeps connections open from one use to the next (a worker's jobs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import LiteralString

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool

from feeder.database_url import redacted
from feeder.errors import StoreError
from feeder.store.schema_postgres import MIGRATIONS

MIGRATION_LOCK = 0x66656564_00000001  # advisory lock keys: "feed" and a number
WRITE_LOCK = 0x66656564_00000002


class PostgresDriver:
    """A psycopg connection in autocommit mode: a transaction is an explicit ``BEGIN``."""

    greatest = "GREATEST"
    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, connection: psycopg.Connection[tuple[object, ...]]) -> None:
        self._db = connection

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> psycopg.Cursor[tuple[object, ...]]:
        return self._db.execute(_query(sql), parameters or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(_query(sql), rows)

    def begin(self) -> None:
        self._db.execute("BEGIN")
        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def notify(self, channel: str, payload: str) -> None:
        self._db.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def apply_once(self, name: str, script: str, present: str) -> bool:
        """Run ``script`` (another library's schema) unless it ran before or the table ``present`` exists; one
        process at a time. True if it ran."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            self._db.execute("CREATE TABLE IF NOT EXISTS feeder_applied (name TEXT PRIMARY KEY)")
            if self._db.execute("SELECT 1 FROM feeder_applied WHERE name = %s", (name,)).fetchone():
                return False
            exists = self._db.execute("SELECT to_regclass(%s) IS NOT NULL", (present,)).fetchone()
            if not (exists and exists[0]):
                self._db.execute(script.encode())
            self._db.execute("INSERT INTO feeder_applied (name) VALUES (%s)", (name,))
            return not (exists and exists[0])

    def schema_version(self) -> int:
        row = self._db.execute("SELECT coalesce(max(version), 0) FROM feeder_schema").fetchone()
        return 0 if row is None else int(str(row[0]))

    def migrate(self) -> None:
        """Apply the migrations this database lacks, one process at a time."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            self._db.execute("CREATE TABLE IF NOT EXISTS feeder_schema (version INTEGER NOT NULL)")
            version = self.schema_version()
            if version > len(MIGRATIONS):
                raise StoreError(f"the state database has schema {version}, newer than this feeder ({len(MIGRATIONS)})")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.execute(script)
                self._db.execute("INSERT INTO feeder_schema (version) VALUES (%s)", (number,))


class Connections:
    """Up to ``size`` connections to one state database, each lent to one user at a time and kept open for the
    next: what a worker's jobs use instead of connecting each (a new connection costs PostgreSQL a process and
    the warming of its caches, several milliseconds of CPU, the first statements of a write transaction
    included). A connection is checked before it is lent (one that broke is replaced) and rolled back if it
    comes back inside a transaction. The database is migrated by whoever opened it first with ``open_postgres``
    (a worker does when it starts); these connections do not migrate it again."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._pool = ConnectionPool(
            url,
            kwargs={"autocommit": True, "connect_timeout": 10},
            min_size=0,
            max_size=size,
            check=ConnectionPool.check_connection,
            timeout=10,  # as long as connecting may take
            open=False,
        )

    def open(self) -> None:
        self._pool.open()

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def lent(self) -> Iterator[PostgresDriver]:
        try:
            connection = self._pool.getconn()
        except psycopg.Error as e:
            raise StoreError(f"{redacted(self._url)}: cannot connect to the state database: {e}") from e
        try:
            yield PostgresDriver(connection)
        finally:
            self._pool.putconn(connection)


class Listener:
    """A connection that LISTENs on one channel: ``wait`` returns the payloads notified, or none after
    ``timeout`` seconds. StoreError when the database cannot be reached; the next ``wait`` connects again."""

    def __init__(self, url: str, channel: str) -> None:
        self._url, self._channel = url, channel
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def listen(self) -> None:
        """Connect and LISTEN, unless already listening: whatever is notified from now on, ``wait`` gets."""
        if self._connection is not None:
            return
        try:
            self._connection = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            self._connection.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self._channel)))
        except psycopg.Error as e:
            self.close()
            raise StoreError(f"{redacted(self._url)}: {e}") from e

    def wait(self, timeout: float) -> list[str]:
        self.listen()
        assert self._connection is not None
        try:
            return [n.payload for n in self._connection.notifies(timeout=timeout, stop_after=1)]
        except psycopg.Error as e:
            self.close()
            raise StoreError(f"{redacted(self._url)}: {e}") from e

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _query(sql: str) -> LiteralString:
    return sql.replace("?", "%s")


@contextmanager
def open_postgres(url: str) -> Iterator[PostgresDriver]:
    """Connect to the PostgreSQL state database at ``url`` and migrate it."""
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        raise StoreError(f"{redacted(url)}: cannot connect to the state database: {e}") from e
    try:
        driver = PostgresDriver(connection)
        try:
            driver.migrate()
        except psycopg.Error as e:
            raise StoreError(f"{redacted(url)}: cannot prepare the state database: {e}") from e
        yield driver
    finally:
        connection.close()
