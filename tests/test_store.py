"""The store on SQLite and PostgreSQL (the ``store`` fixture): migrations, one entry per URL, version rules."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feeder.errors import StoreError
from feeder.models import Article, Enclosure, KnownFile
from feeder.store import Store
from feeder.store.schema import MIGRATIONS

T0 = datetime(2024, 1, 9, 9, 5, tzinfo=UTC)


def article(url: str = "https://www.rfi.fr/cn/a/1", **changes: object) -> Article:
    base = Article(
        url=url,
        title="标题",
        section="a",
        categories=("a",),
        author=None,
        lead="导语",
        image=None,
        content_html="<p>正文</p>",
        published=T0,
        version_at=T0 + timedelta(minutes=10),
        content_hash="h1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_new_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "feeder.sqlite3"
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Store.open(path) as store:  # reopening applies nothing twice
        assert store.schema_version == len(MIGRATIONS)


def test_a_database_from_a_newer_feeder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feeder.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this feeder"), Store.open(path):
        pass


def test_an_unusable_database_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open"), Store.open(tmp_path / "file" / "db.sqlite3"):
        pass


def test_new_then_identical_is_unchanged(store: Store) -> None:
    with store.transaction():
        assert store.upsert(article(), "seeds") == "new"
        assert store.upsert(article(), "seeds") == "unchanged"
    (entry,) = store.entries(["seeds"], 10)
    assert entry.published == T0
    assert entry.updated == T0 + timedelta(minutes=10)
    assert entry.title == "标题"


def test_a_newer_version_replaces_content_and_moves_updated_only(store: Store) -> None:
    later = T0 + timedelta(hours=3)
    with store.transaction():
        store.upsert(article(), "seeds")
        outcome = store.upsert(article(title="新标题", content_hash="h2", version_at=later, published=later), "seeds")
    assert outcome == "updated"
    (entry,) = store.entries(["seeds"], 10)
    assert (entry.title, entry.published, entry.updated) == ("新标题", T0, later)


def test_an_older_version_changes_nothing(store: Store) -> None:
    later = T0 + timedelta(hours=3)
    with store.transaction():
        store.upsert(article(title="新标题", content_hash="h2", version_at=later), "seeds")
        assert store.upsert(article(), "seeds") == "unchanged"
    (entry,) = store.entries(["seeds"], 10)
    assert (entry.title, entry.updated) == ("新标题", later)


def test_a_same_content_newer_scrape_changes_nothing(store: Store) -> None:
    with store.transaction():
        store.upsert(article(), "seeds")
        assert store.upsert(article(version_at=T0 + timedelta(days=2)), "seeds") == "unchanged"
    assert store.entries(["seeds"], 10)[0].updated == T0 + timedelta(minutes=10)


def test_published_only_moves_earlier(store: Store) -> None:
    with store.transaction():
        store.upsert(article(), "seeds")
        assert store.upsert(article(published=T0 + timedelta(days=1)), "seeds") == "unchanged"
        assert store.upsert(article(published=T0 - timedelta(hours=1)), "seeds") == "updated"
    assert store.entries(["seeds"], 10)[0].published == T0 - timedelta(hours=1)


@pytest.mark.parametrize("order", [("h1", "h2"), ("h2", "h1")])
def test_two_versions_with_one_scrape_time_resolve_the_same_in_any_order(store: Store, order: tuple[str, str]) -> None:
    with store.transaction():
        for digest in order:
            store.upsert(article(title=digest, content_hash=digest), "seeds")
    assert store.entries(["seeds"], 10)[0].title == "h2"


def test_entries_newest_first_limited_and_by_source(store: Store) -> None:
    with store.transaction():
        for day in range(5):
            moment = T0 + timedelta(days=day)
            store.upsert(article(f"https://www.rfi.fr/cn/a/{day}", published=moment, version_at=moment), "seeds")
        store.upsert(article("https://www.rfi.fr/cn/a/other"), "other")
        store.upsert(article("https://www.rfi.fr/cn/a/0"), "other")
    assert [e.url[-1] for e in store.entries(["seeds"], 3)] == ["4", "3", "2"]
    # equal publication times fall back to URL order, so the order never depends on insertion
    assert [e.url for e in store.entries(["other"], 10)] == [
        "https://www.rfi.fr/cn/a/0",
        "https://www.rfi.fr/cn/a/other",
    ]
    assert len(store.entries(["seeds", "other"], 100)) == 6
    assert store.count_entries() == 6


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    def crash_mid_refresh() -> None:
        with store.transaction():
            store.upsert(article(), "seeds")
            raise RuntimeError("crash mid-refresh")

    with pytest.raises(RuntimeError):
        crash_mid_refresh()
    assert store.entries(["seeds"], 10) == []


def test_sqlite_errors_inside_a_transaction_become_store_errors(store: Store) -> None:
    def violate_a_constraint() -> None:
        with store.transaction():
            store.upsert(article(), "seeds")
            store.set_setting("x", None)  # type: ignore[arg-type]  # NOT NULL violated

    with pytest.raises(StoreError, match="rolled back"):
        violate_a_constraint()
    assert store.count_entries() == 0


def test_seed_files_are_remembered_and_forgotten(store: Store) -> None:
    seen = KnownFile(size=10, mtime_ns=5, sha256="abc")
    listed = [("a.txt", 10, 5), ("b.txt", 10, 5)]
    with store.transaction():
        store.remember_files("seeds", [("a.txt", seen, "https://www.rfi.fr/cn/a/1", None), ("b.txt", seen, None, "x")])
        store.remember_files("other", [("a.txt", seen, None, None)])
        store.forget_paths("seeds", ["b.txt"])
    assert store.changed_files("seeds", listed) == (1, [(("b.txt", 10, 5), None)])
    assert list(store.file_paths("seeds")) == ["a.txt"]
    with store.transaction():
        store.forget_files("seeds")
    assert store.changed_files("seeds", listed) == (0, [(("a.txt", 10, 5), None), (("b.txt", 10, 5), None)])
    assert store.changed_files("other", listed[:1]) == (1, [])


def test_a_feed_keeps_its_creation_time(store: Store) -> None:
    with store.transaction():
        first = store.feed_created_at("rfi-cn", T0)
        again = store.feed_created_at("rfi-cn", T0 + timedelta(days=3))
    assert first == again == T0


@pytest.mark.parametrize("complete_first", [True, False])
def test_with_one_scrape_time_the_longer_content_wins_in_any_order(store: Store, complete_first: bool) -> None:
    complete = article(content_html="<p>完整的正文。</p><p>结尾。</p>", content_hash="0-complete")
    truncated = article(content_html="<p>完整的", content_hash="f-truncated")
    with store.transaction():
        for version in (complete, truncated) if complete_first else (truncated, complete):
            store.upsert(version, "seeds")
    assert store.entries(["seeds"], 10)[0].content_html == complete.content_html


def test_full_text_beats_a_newer_lead_but_the_newer_title_wins(store: Store) -> None:
    later = T0 + timedelta(hours=2)
    lead_only = article(
        title="新标题", content_html="<p>导语</p>", content_hash="lead", fulltext=False, version_at=later
    )
    with store.transaction():
        store.upsert(article(), "seeds")
        assert store.upsert(lead_only, "rfi") == "updated"
    (entry,) = store.entries(["seeds"], 10)
    assert (entry.title, entry.content_html, entry.updated) == ("新标题", "<p>正文</p>", later)


def test_a_full_text_replaces_a_lead_even_when_older(store: Store) -> None:
    lead_only = article(content_html="<p>导语</p>", content_hash="lead", fulltext=False)
    with store.transaction():
        store.upsert(lead_only, "rfi")
        store.upsert(article(version_at=T0, content_hash="full"), "seeds")
    assert store.entries(["rfi"], 10)[0].content_html == "<p>正文</p>"


def test_a_better_version_without_an_author_keeps_the_known_one(store: Store) -> None:
    with store.transaction():
        store.upsert(article(author="陈佳", content_html="<p>导语</p>", content_hash="lead", fulltext=False), "feed")
        assert store.upsert(article(author=None, content_hash="full"), "feed") == "updated"
        assert store.entries(["feed"], 10)[0].author == "陈佳"
        assert (
            store.upsert(article(author="周明", version_at=T0 + timedelta(hours=1), content_hash="v2"), "feed")
            == "updated"
        )
    (entry,) = store.entries(["feed"], 10)
    assert (entry.author, entry.content_html) == ("周明", "<p>正文</p>")


def test_categories_are_the_union_and_audio_is_kept(store: Store) -> None:
    audio = Enclosure("https://aod.rfi.fr/a.mp3", "audio/mpeg", 1000, 90)
    with store.transaction():
        store.upsert(article(categories=("中国",), audio=audio), "rfi")
        assert store.upsert(article(categories=("中国", "经济")), "seeds") == "updated"
    (entry,) = store.entries(["seeds"], 10)
    assert entry.categories == ("中国", "经济")
    assert entry.audio == audio


@pytest.mark.parametrize(
    ("seed_minute", "precise", "expected"),
    [
        (T0, T0 + timedelta(seconds=37), T0 + timedelta(seconds=37)),  # same minute: the precise one
        (T0, T0 - timedelta(minutes=3, seconds=5), T0 - timedelta(minutes=3, seconds=5)),  # else the earliest
        (T0, T0 + timedelta(minutes=4), T0),
    ],
)
def test_published_is_the_precise_time_within_a_minute_else_the_earliest(
    store: Store, seed_minute: datetime, precise: datetime, expected: datetime
) -> None:
    with store.transaction():
        store.upsert(article(published=seed_minute), "seeds")
        store.upsert(article(published=precise), "rfi")
    assert store.entries(["seeds"], 10)[0].published == expected


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upsert_many_gives_what_upserts_one_by_one_give(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    newer = {"version_at": datetime(2024, 1, 10, tzinfo=UTC), "content_html": "<p>新版</p>", "content_hash": "b"}
    batch = [
        article("https://www.rfi.fr/cn/a/1"),
        article("https://www.rfi.fr/cn/a/2"),
        article("https://www.rfi.fr/cn/a/1", **newer),  # the same URL again within the batch
        article("https://www.rfi.fr/cn/a/0"),  # already stored
        article("https://www.rfi.fr/cn/a/2"),
    ]
    states = []
    for name, write in (("one by one", False), ("many", True)):
        database = (
            request.getfixturevalue("postgres_server").new_database()
            if backend == "postgres"
            else tmp_path / f"{name}.sqlite3"
        )
        with Store.open(database) as store, store.transaction():
            store.upsert(article("https://www.rfi.fr/cn/a/0", **newer), "seeds")
            outcomes = store.upsert_many(batch, "seeds") if write else [store.upsert(a, "seeds") for a in batch]
            states.append((outcomes, store.entries(["seeds"], 10), store.count_entries()))
    assert states[0] == states[1]
    assert states[1][0] == ["new", "new", "updated", "unchanged", "unchanged"]


def test_a_new_database_has_pages_an_entry_fits_in(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.sqlite3"):
        pass
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("PRAGMA page_size").fetchone() == (16384,)


def test_a_transaction_inside_another_is_part_of_it(store: Store) -> None:
    def write_then_fail() -> None:
        with store.transaction():
            store.set_setting("outer", "1")
            with store.transaction():
                store.set_setting("inner", "2")
            raise RuntimeError  # rolls back both: the inner one did not commit by itself

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert (store.setting("outer"), store.setting("inner")) == (None, None)
    with store.transaction():
        with store.transaction():
            store.set_setting("inner", "2")
        assert store.setting("inner") == "2"
    assert store.setting("inner") == "2"


def test_each_source_s_status_is_a_row_of_its_own(store: Store) -> None:
    assert store.shared_status() == {}
    with store.transaction():
        store.save_source_status("a", {"polls": 3})
        store.save_source_status("a", {"polls": 4})
        store.save_source_status("c", {"polls": 1})
    assert store.shared_status() == {"sources": {"a": {"polls": 4}, "c": {"polls": 1}}}
    assert [store.source_status(name) for name in ("a", "c", "d")] == [{"polls": 4}, {"polls": 1}, {}]
