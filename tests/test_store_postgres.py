"""The store on PostgreSQL: migrations once under an advisory lock, errors as StoreError without the password.
(Everything a store does is tested on both databases: tests/test_store.py's ``store`` fixture.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from feeder.database_url import redacted
from feeder.errors import StoreError
from feeder.store import Store
from feeder.store.postgres import Connections
from feeder.store.schema_postgres import MIGRATIONS


def test_a_new_database_is_migrated_once(postgres_url: str) -> None:
    with Store.open(postgres_url) as store:
        assert store.schema_version == len(MIGRATIONS)
    with Store.open(postgres_url) as store:  # reopening applies nothing twice
        assert store.schema_version == len(MIGRATIONS)
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT count(*) FROM feeder_schema").fetchone() == (len(MIGRATIONS),)


def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    def open_and_count(_: int) -> int:
        with Store.open(postgres_url) as store:
            return store.count_entries()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(open_and_count, range(8))) == [0] * 8
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT count(*) FROM feeder_schema").fetchone() == (len(MIGRATIONS),)


def test_a_database_from_a_newer_feeder_is_refused(postgres_url: str) -> None:
    with Store.open(postgres_url), psycopg.connect(postgres_url) as db:
        db.execute("INSERT INTO feeder_schema (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match="newer than this feeder"), Store.open(postgres_url):
        pass


def test_a_server_that_cannot_be_reached_is_a_store_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://feeder:s3cret@localhost/feeder?host={tmp_path}"
    with pytest.raises(StoreError, match="cannot connect to the state database") as caught, Store.open(url):
        pass
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith("postgresql://feeder:***@localhost/feeder?host=")


def test_a_failed_statement_rolls_the_transaction_back(postgres_url: str) -> None:
    with Store.open(postgres_url) as store:
        with pytest.raises(StoreError, match="rolled back"), store.transaction():  # noqa: PT012
            store.set_setting("k", "v")
            store._db.execute("SELECT * FROM nowhere")
        assert store.setting("k") is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p@h:5433/d", "postgresql://u:***@h:5433/d"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("postgres:///d?host=/run/postgresql", "postgres:///d?host=/run/postgresql"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


def backend(store: Store) -> int:
    return int(store._db.execute("SELECT pg_backend_pid()").fetchone()[0])


def test_borrowed_stores_keep_one_connection_and_get_it_back_clean(postgres_url: str) -> None:
    with Store.open(postgres_url):  # migrated, as a worker does when it starts
        pass
    connections = Connections(postgres_url, 1)
    connections.open()
    try:
        with Store.borrow(connections) as store:
            first = backend(store)
            store._db.execute("BEGIN")  # left open, as by a job that crashed in a transaction
            store.set_setting("half", "done")
        with Store.borrow(connections) as store:
            assert backend(store) == first
            assert store.setting("half") is None
            with store.transaction():
                store.set_setting("k", "v")
            assert store.setting("k") == "v"
    finally:
        connections.close()


def test_a_lent_connection_that_broke_is_replaced(postgres_url: str) -> None:
    with Store.open(postgres_url):
        pass
    connections = Connections(postgres_url, 1)
    connections.open()
    try:
        with Store.borrow(connections) as store:
            first = backend(store)
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("SELECT pg_terminate_backend(%s)", (first,))
        with Store.borrow(connections) as store:
            assert backend(store) != first
            assert store.count_entries() == 0
    finally:
        connections.close()
