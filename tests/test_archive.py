"""RFC 5005 archived feeds: from NAME.atom (or .rss, or NAME.json by next_url) back through every archive page, a
client collects every entry of the store exactly once; a page's bytes change only with its own entries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import feedparser
import pytest

from feeder import build as build_module
from feeder import publish
from feeder.archive import plan_archive
from feeder.config import Config, parse_config
from feeder.errors import PublishError
from feeder.pipeline import refresh, state_database
from feeder.sources.interface import open_source
from feeder.store import Store
from tests.builders import NOW, run_feeder, seed_text, write_seed

BASE_URL = "http://127.0.0.1:8080/"
SECTIONS = ("中国", "法国", "国际")
ARTICLES = 360
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def url(number: int) -> str:
    """Article ``number``'s canonical URL."""
    section = SECTIONS[number % len(SECTIONS)]
    return f"https://www.rfi.fr/cn/{quote(section)}/2024-{number:04d}-article"


def article(number: int, *, revision: int = 0) -> str:
    """Article ``number`` (a later number is newer), its text ``revision`` times edited."""
    published = T0 + timedelta(hours=6 * number)
    scraped = published + timedelta(minutes=30 + revision)
    return seed_text(
        url(number),
        f"第{number}篇" + ("（更新）" * revision),
        scraped_ms=int(scraped.timestamp() * 1000),
        date_div=published.astimezone(UTC).strftime("%d/%m/%Y - %H:%M"),
        body=f"<p>正文{number}，第{revision}版。</p>",
    )


def write_articles(seeds: Path, numbers: range, *, revision: int = 0) -> None:
    for number in numbers:
        write_seed(seeds, f"{number:04d}.txt", article(number, revision=revision))


def make_config(root: Path, database: Path | str | None = None) -> Config:
    """The config; on PostgreSQL when ``database`` is a URL (the ``database`` fixture's)."""
    text = (
        f"output_dir: public\nstate_dir: state\nbase_url: {BASE_URL}\n"
        + (f"database: '{database}'\n" if isinstance(database, str) else "")
        + "sources:\n  - {name: seeds, kind: seeds, path: seeds}\n"
        "feeds:\n  - {name: rfi-cn, title: RFI 中文, sources: [seeds], max_entries: 20, archive_page_entries: 25}\n"
    )
    (root / "config.yaml").write_text(text, encoding="utf-8")
    return parse_config(text, root / "config.yaml")


def build(config: Config, now: datetime = NOW) -> None:
    with Store.open(state_database(config)) as store:
        assert not refresh(config, store, now).failed


def stored_urls(config: Config, section: str | None = None) -> set[str]:
    with Store.open(state_database(config)) as store:
        return {entry.url for entry in store.entries(["seeds"], 100_000, section)}


def file_of(public: Path, link: str) -> Path:
    assert link.startswith(BASE_URL), link
    return public / unquote(link.removeprefix(BASE_URL))


def walk(public: Path, start: str) -> Iterator[tuple[Path, Any]]:
    """Every document from a subscription feed back along prev-archive: (file, feedparser's result)."""
    path: Path | None = public / start
    seen: set[Path] = set()
    while path is not None:
        assert path not in seen, f"prev-archive loops back to {path}"
        seen.add(path)
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, f"{path}: {parsed.get('bozo_exception')}"
        yield path, parsed
        older = [link.href for link in parsed.feed.get("links", []) if link.rel == "prev-archive"]
        path = file_of(public, older[0]) if older else None


def collected(public: Path, start: str) -> list[str]:
    return [entry.id for _, parsed in walk(public, start) for entry in parsed.entries]


def collected_json(public: Path, start: str) -> list[str]:
    ids: list[str] = []
    path: Path | None = public / start
    while path is not None:
        document = json.loads(path.read_text(encoding="utf-8"))
        ids += [item["id"] for item in document["items"]]
        path = file_of(public, document["next_url"]) if "next_url" in document else None
    return ids


def assert_every_entry_once(config: Config) -> None:
    public = config.output_dir
    everything = stored_urls(config)
    for start in ("rfi-cn.atom", "rfi-cn.rss"):
        ids = collected(public, start)
        assert len(ids) == len(set(ids)), f"{start}: an entry is in two documents"
        assert set(ids) == everything, f"{start}: {len(everything - set(ids))} entries missing"
    ids = collected_json(public, "rfi-cn.json")
    assert sorted(ids) == sorted(everything)
    for section in SECTIONS:
        ids = collected(public, f"rfi-cn/{section}.atom")
        assert sorted(ids) == sorted(stored_urls(config, section)), section


@pytest.fixture
def history(tmp_path: Path, database: Path | str) -> Config:
    """360 articles built into archive pages, on SQLite and on PostgreSQL."""
    config = make_config(tmp_path, database)
    write_articles(tmp_path / "seeds", range(ARTICLES))
    build(config)
    return config


def test_following_prev_archive_collects_every_entry_exactly_once(history: Config) -> None:
    assert len(stored_urls(history)) == ARTICLES
    assert_every_entry_once(history)
    documents = list(walk(history.output_dir, "rfi-cn.atom"))
    assert len(documents[0][1].entries) == 20  # the subscription feed keeps max_entries
    pages = [parsed for _, parsed in documents[1:]]
    assert len(pages) == (ARTICLES - 20) // 25 + 1
    assert all(len(page.entries) <= 25 for page in pages)
    assert [path.name for path, _ in documents[1:3]] == ["14.atom", "13.atom"]  # the newest page first


def test_archive_pages_are_marked_and_link_back_to_their_feed(history: Config) -> None:
    public = history.output_dir
    oldest = (public / "rfi-cn/archive/1.atom").read_text(encoding="utf-8")
    assert "<fh:archive/>" in oldest
    parsed = feedparser.parse(oldest)
    rels = {link.rel: link.href for link in parsed.feed.links}
    assert rels["current"] == f"{BASE_URL}rfi-cn.atom"
    assert rels["next-archive"] == f"{BASE_URL}rfi-cn/archive/2.atom"
    assert "prev-archive" not in rels  # nothing older
    first_ids = [entry.id for entry in parsed.entries]
    assert url(0) in first_ids  # page 1 holds the oldest entries
    assert parsed.feed.updated == max(entry.updated for entry in parsed.entries)


def test_the_walk_holds_after_old_entries_change_new_ones_arrive_and_a_restart(history: Config) -> None:
    seeds = history.output_dir.parent / "seeds"
    write_articles(seeds, range(10, 40, 3), revision=1)  # old articles edited
    build(history)
    assert_every_entry_once(history)
    edited = feedparser.parse((history.output_dir / "rfi-cn/archive/1.atom").read_bytes())
    assert any(entry.title == "第10篇（更新）" for entry in edited.entries)

    write_articles(seeds, range(ARTICLES, ARTICLES + 45))  # newer ones push older ones out of the feed
    result = run_feeder(history.output_dir.parent / "config.yaml", "refresh")  # another process: a restart
    assert "wrote 9 archive files in public/rfi-cn/archive\n" in result.stdout  # pages 14, 15, 16
    assert_every_entry_once(history)
    assert len(stored_urls(history)) == ARTICLES + 45


def test_a_page_changes_only_when_its_own_entries_change(history: Config) -> None:
    public = history.output_dir
    before = {path: path.read_bytes() for path in public.rglob("archive/*") if path.is_file()}
    stamps = {path: path.stat().st_mtime_ns for path in before}
    seeds = public.parent / "seeds"
    write_articles(seeds, range(ARTICLES, ARTICLES + 3))  # three new: three entries leave the feed
    write_articles(seeds, range(30, 31), revision=1)  # one old entry edited, on page 2
    build(history)
    changed = {path.relative_to(public).as_posix() for path in before if path.read_bytes() != before[path]}
    # page 14 received the three that left rfi-cn.atom, page 2 holds the edited entry; each section's newest
    # page got the one that left its section feed, and 中国's page 1 holds the edited one too
    assert {p.split(".", 1)[0] for p in changed} == {
        "rfi-cn/archive/14",
        "rfi-cn/archive/2",
        "rfi-cn/中国/archive/1",
        "rfi-cn/中国/archive/5",
        "rfi-cn/法国/archive/5",
        "rfi-cn/国际/archive/5",
    }
    for path, data in before.items():
        if path.read_bytes() == data:
            assert path.stat().st_mtime_ns == stamps[path]  # not even rewritten


def test_a_full_page_gets_its_successor_in_the_same_build(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    write_articles(tmp_path / "seeds", range(20 + 24))  # 24 archived: one page, not full
    build(config)
    public = config.output_dir
    assert not (public / "rfi-cn/archive/2.atom").exists()
    last = feedparser.parse((public / "rfi-cn/archive/1.atom").read_bytes())
    assert {link.rel: link.href for link in last.feed.links}["next-archive"] == f"{BASE_URL}rfi-cn.atom"

    write_articles(tmp_path / "seeds", range(44, 45))  # page 1 fills: page 2 exists at once, still empty
    build(config)
    full = (public / "rfi-cn/archive/1.atom").read_bytes()
    links = {link.rel: link.href for link in feedparser.parse(full).feed.links}
    assert links["next-archive"] == f"{BASE_URL}rfi-cn/archive/2.atom"
    assert feedparser.parse((public / "rfi-cn/archive/2.atom").read_bytes()).entries == []
    assert_every_entry_once(config)

    write_articles(tmp_path / "seeds", range(45, 50))
    build(config)
    assert (public / "rfi-cn/archive/1.atom").read_bytes() == full  # settled once full
    assert len(feedparser.parse((public / "rfi-cn/archive/2.atom").read_bytes()).entries) == 5


def test_an_old_article_found_late_joins_the_newest_page(history: Config) -> None:
    seeds = history.output_dir.parent / "seeds"
    page_one = (history.output_dir / "rfi-cn/archive/1.atom").read_bytes()
    write_seed(seeds, "late.txt", article(-5))  # older than any article seen so far
    build(history)
    assert (history.output_dir / "rfi-cn/archive/1.atom").read_bytes() == page_one
    newest = feedparser.parse((history.output_dir / "rfi-cn/archive/14.atom").read_bytes())
    assert url(-5) in [entry.id for entry in newest.entries]
    assert_every_entry_once(history)


def test_without_archive_no_page_is_written_and_the_feed_links_none(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    text = (tmp_path / "config.yaml").read_text(encoding="utf-8").replace("archive_page_entries: 25", "archive: false")
    config = parse_config(text, tmp_path / "config.yaml")
    write_articles(tmp_path / "seeds", range(60))
    build(config)
    assert not list(config.output_dir.rglob("archive"))
    assert b"prev-archive" not in (config.output_dir / "rfi-cn.atom").read_bytes()
    assert "next_url" not in json.loads((config.output_dir / "rfi-cn.json").read_bytes())


def test_deleted_archive_files_are_written_again(history: Config) -> None:
    page = history.output_dir / "rfi-cn/archive/3.rss"
    data = page.read_bytes()
    page.unlink()
    build(history)
    assert page.read_bytes() == data


def test_a_rebuild_with_no_new_input_rewrites_nothing(history: Config) -> None:
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in history.output_dir.rglob("*") if p.is_file()}
    build(history, NOW + timedelta(hours=1))
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == files


def test_a_build_cut_short_is_completed_by_the_next_one(history: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    real = publish.write_files

    def crash_at_the_archive(output_dir: Path, files: dict[str, bytes]) -> tuple[list[Path], list[Path]]:
        if any("/archive/" in name for name in files):
            raise PublishError("the disk is full")
        return real(output_dir, files)

    write_articles(history.output_dir.parent / "seeds", range(ARTICLES, ARTICLES + 30))
    monkeypatch.setattr(build_module, "write_files", crash_at_the_archive)
    with pytest.raises(PublishError):
        build(history)
    monkeypatch.undo()
    build(history)
    assert_every_entry_once(history)


# Nodes that build while workers write (PostgreSQL) --------------------------------------------------------------


def poll_only(config: Config, store: Store) -> None:
    """What a worker does: the source polled into the store, nothing built."""
    with store.transaction():
        open_source(config.sources[0], config).poll(store, NOW)


def test_entries_written_after_a_build_read_the_feed_take_no_archive_slot(tmp_path: Path, database: Path | str) -> None:
    config = make_config(tmp_path, database)
    feed = config.feeds[0]  # max_entries 20
    write_articles(tmp_path / "seeds", range(10))
    with Store.open(state_database(config)) as store:
        poll_only(config, store)
        read_by_the_build = store.feed_digest(feed.sources, feed.max_entries)
        write_articles(tmp_path / "seeds", range(10, 20))  # newer ones, written by a worker meanwhile
        poll_only(config, store)
        plan = plan_archive(store, "rfi-cn", feed, section=None, digest=read_by_the_build, state="planned")
        assert (plan.pages, list(store.slotted("rfi-cn"))) == (0, [])  # all 20 are the feed's newest


def test_a_node_writes_its_own_archive_pages_when_another_node_planned_the_same_state(
    tmp_path: Path, postgres_url: str
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "seeds").symlink_to(seeds)  # one folder, as a shared mount would be
    first, second = (make_config(tmp_path / name, postgres_url) for name in ("a", "b"))
    write_articles(seeds, range(30))  # 10 of them left the newest 20: archive page 1
    build(first)
    write_articles(seeds, range(1), revision=1)  # an archived article edited
    build(second)  # polls it, and plans the archive in the state the first node will find
    with Store.open(postgres_url) as store:
        build_module.build(first, store, NOW)
    edited = (first.output_dir / "rfi-cn/archive/1.atom").read_text(encoding="utf-8")
    assert "第0篇（更新）" in edited
    assert edited == (second.output_dir / "rfi-cn/archive/1.atom").read_text(encoding="utf-8")
