"""``feeder store copy``: every table of a SQLite store into an empty PostgreSQL database, row for row."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from feeder.cli import main
from feeder.errors import StoreError
from feeder.models import HostState, KnownFile, Validators
from feeder.store import Store
from feeder.store.copy import TABLES, copy_store
from tests.test_store import article

AT = datetime(2024, 1, 10, 8, tzinfo=UTC)


def fill(store: Store) -> None:
    """A row or more in every table of the store."""
    with store.transaction():
        store.upsert_many([article(f"https://www.rfi.fr/cn/a/{n}") for n in range(3)], "seeds")
        store.upsert(article("https://www.rfi.fr/cn/a/0"), "feed")
        store.remember_files("seeds", [("001.txt", KnownFile(10, 1_704_800_000_123_456_789, "ab"), None, "bad")])
        store.set_rendered("rfi-cn.atom", "f1", AT)
        store.set_setting("seed_rules", "r1")
        store.save_validators("https://www.rfi.fr/cn/rss", Validators('"e"', "Wed, 10 Jan 2024 08:00:00 GMT"))
        store.save_hosts({"www.rfi.fr": HostState(AT, 2)})
        store.note_feed_item("https://www.rfi.fr/cn/a/1", "site", AT)
        store.set_feed_listing("https://www.rfi.fr/cn/rss", {"https://www.rfi.fr/cn/a/1"})
        store.start_archive("rfi-cn", "seeds")
        store.add_slots("rfi-cn", ["https://www.rfi.fr/cn/a/2", "https://www.rfi.fr/cn/a/1"])
        store.set_archive_state("rfi-cn", "s1")
        store.remember_converted("zh-tw", [("https://www.rfi.fr/cn/a/1", "h", "標題")])


def contents(store: Store) -> dict[str, list[tuple[tuple[str, object], ...]]]:
    """Every table's rows, as (column, value) pairs, sorted."""
    tables = {}
    for table in TABLES:
        columns, rows = store.table_rows(table)
        tables[table] = sorted(tuple(sorted(zip(columns, row, strict=True))) for row in rows)
    return tables


def test_every_table_is_copied_row_for_row(tmp_path: Path, postgres_url: str) -> None:
    with Store.open(tmp_path / "state.sqlite3") as original, Store.open(postgres_url) as copy:
        fill(original)
        counts = copy_store(original, copy)
        assert all(counts.values()), counts
        assert contents(copy) == contents(original)
        assert copy.revision() == original.revision()


def test_a_store_that_is_not_empty_is_not_copied_into(tmp_path: Path, postgres_url: str) -> None:
    with Store.open(tmp_path / "state.sqlite3") as original, Store.open(postgres_url) as copy:
        fill(original)
        copy.set_setting("mine", "kept")
        with pytest.raises(StoreError, match=r"not empty \(settings\)"):
            copy_store(original, copy)
        assert copy.count_entries() == 0


def test_the_command_wants_a_postgresql_url(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite3").touch()
    result = CliRunner().invoke(main, ["store", "copy", "--from", str(tmp_path / "state.sqlite3"), "--to", "x.db"])
    assert result.exit_code == 2
    assert "must be a postgresql:// URL" in result.output
