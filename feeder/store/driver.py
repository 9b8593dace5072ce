"""What the store needs of a database connection, whichever the database: ``Driver``, implemented by
feeder.store.sqlite (the default, a file in state_dir) and feeder.store.postgres (``database: postgresql://…``).

The store's statements are written once with ``?`` parameters and the SQL both databases share (``ON CONFLICT``
upserts); what differs is here: ``greatest`` names the scalar maximum (SQLite's ``max``, PostgreSQL's
``GREATEST``), and each driver opens, migrates, begins and commits its own way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    """The rows of one statement."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Driver(Protocol):
    """One open connection to the state database."""

    greatest: str
    """The SQL function giving the greatest of its arguments."""
    errors: tuple[type[Exception], ...]
    """The exceptions the database raises, turned into StoreError by the store."""

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    def begin(self) -> None:
        """Start a write transaction; one at a time across processes, as SQLite's ``BEGIN IMMEDIATE``."""

    def commit(self) -> None: ...

    def notify(self, channel: str, payload: str) -> None:
        """Tell the database's listeners on ``channel`` (PostgreSQL, at commit); nothing on SQLite, where one
        process polls and publishes."""

    def rollback(self) -> None: ...

    def apply_once(self, name: str, script: str, present: str) -> bool:
        """Run another library's schema once per database (PostgreSQL only); see PostgresDriver."""

    def schema_version(self) -> int:
        """How many of the dialect's migrations the database has."""
