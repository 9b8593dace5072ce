"""The state database on PostgreSQL (``database: postgresql://…``), through psycopg 3.

Statements come with SQLite's ``?`` parameters and become psycopg's ``%s`` here. Migrations run in one
transaction under an advisory lock, so processes starting together migrate once; every write transaction takes
another, so writers take turns as on SQLite (``BEGIN IMMEDIATE``), and an entry's revision stays one more than
any before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import LiteralString

import psycopg

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
