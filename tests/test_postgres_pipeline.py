"""End to end on PostgreSQL: the same seeds refreshed into SQLite and into PostgreSQL publish byte-identical files
(feeds, archive pages, a Traditional Chinese edition), and a store copied by ``feeder store copy`` goes on
publishing exactly what the SQLite file would have."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from feeder.cli import main
from feeder.config import Config, parse_config
from feeder.pipeline import refresh, state_database
from feeder.store import Store
from tests.builders import NOW, run_feeder
from tests.test_archive import write_articles

LATER = NOW + timedelta(hours=1)
CONFIG_TEXT = (
    "output_dir: public\nstate_dir: state\nbase_url: http://127.0.0.1:8080/\ndatabase: '{database}'\n"
    "sources:\n  - {{name: seeds, kind: seeds, path: seeds}}\n"
    "feeds:\n  - {{name: rfi-cn, title: RFI, sources: [seeds]}}\n"
)


def make_config(root: Path, database: str | None = None) -> Config:
    """Archive pages (20 newest, 25 a page) and a zh-tw edition, on SQLite or on ``database``."""
    text = (
        "output_dir: public\nstate_dir: state\nbase_url: http://127.0.0.1:8080/\n"
        + (f"database: '{database}'\n" if database else "")
        + "sources:\n  - {name: seeds, kind: seeds, path: seeds}\n"
        "feeds:\n  - {name: rfi-cn, title: RFI 中文, sources: [seeds], max_entries: 20, archive_page_entries: 25,"
        " variants: [zh-tw]}\n"
    )
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    return parse_config(text, root / "config.yaml")


def build(config: Config, at: datetime = NOW) -> tuple[int, int, int, int]:
    """Refresh once; returns (new, updated, unchanged, skipped) of the seeds source."""
    with Store.open(state_database(config)) as store:
        report = refresh(config, store, at)
    assert not report.failed
    seeds = report.sources[0]
    return seeds.new, seeds.updated, seeds.unchanged, seeds.skipped


def published(config: Config) -> dict[str, bytes]:
    """Every published file's bytes, by path under output_dir."""
    files = sorted(p for p in config.output_dir.rglob("*") if p.is_file())
    assert len(files) > 5
    return {str(p.relative_to(config.output_dir)): p.read_bytes() for p in files}


def first_then_later(configs: list[Config]) -> None:
    """60 articles, then 30 more and 10 edited, into every config's seeds, each refreshed after each step."""
    for config in configs:
        write_articles(config.output_dir.parent / "seeds", range(60))
        build(config)
    for config in configs:
        write_articles(config.output_dir.parent / "seeds", range(60, 90))
        write_articles(config.output_dir.parent / "seeds", range(40, 50), revision=1)
        build(config, at=LATER)


def test_sqlite_and_postgresql_publish_the_same_bytes(tmp_path: Path, postgres_url: str) -> None:
    on_sqlite = make_config(tmp_path / "sqlite")
    on_postgres = make_config(tmp_path / "postgres", postgres_url)
    first_then_later([on_sqlite, on_postgres])
    assert published(on_postgres) == published(on_sqlite)
    with Store.open(state_database(on_sqlite)) as lite, Store.open(postgres_url) as pg:
        assert pg.entries(["seeds"], 1000) == lite.entries(["seeds"], 1000)  # ids, dates, content
        assert pg.revision() == lite.revision()


def test_a_copied_store_publishes_what_the_sqlite_file_would(tmp_path: Path, postgres_url: str) -> None:
    original = make_config(tmp_path / "sqlite")
    write_articles(tmp_path / "sqlite" / "seeds", range(60))
    build(original)
    shutil.copytree(tmp_path / "sqlite" / "seeds", tmp_path / "postgres" / "seeds")  # mtimes kept
    shutil.copytree(tmp_path / "sqlite" / "public", tmp_path / "postgres" / "public")
    result = CliRunner().invoke(main, ["store", "copy", "--from", str(state_database(original)), "--to", postgres_url])
    assert result.exit_code == 0, result.output
    assert "entries: 60 rows" in result.output
    copy = make_config(tmp_path / "postgres", postgres_url)
    for config in (original, copy):
        write_articles(config.output_dir.parent / "seeds", range(60, 90))
        write_articles(config.output_dir.parent / "seeds", range(40, 50), revision=1)
    assert build(copy, at=LATER) == build(original, at=LATER) == (30, 10, 0, 50)  # seed records were copied
    assert published(copy) == published(original)


@pytest.mark.e2e
def test_the_feeder_command_refreshes_into_postgresql(tmp_path: Path, postgres_url: str) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "config.yaml").write_text(CONFIG_TEXT.format(database=postgres_url), encoding="utf-8")
    write_articles(tmp_path / "seeds", range(3))
    result = run_feeder(tmp_path / "config.yaml", "refresh")
    assert "wrote" in result.stdout
    assert not (tmp_path / "state" / "feeder.sqlite3").exists()
    with Store.open(postgres_url) as store:
        assert store.count_entries() == 3


@pytest.mark.e2e
def test_an_unreachable_database_exits_4_without_showing_the_password(tmp_path: Path) -> None:
    url = f"postgresql://feeder:s3cret@localhost/feeder?host={tmp_path}"
    (tmp_path / "config.yaml").write_text(CONFIG_TEXT.format(database=url), encoding="utf-8")
    (tmp_path / "seeds").mkdir()
    result = run_feeder(tmp_path / "config.yaml", "refresh", expect=4)
    assert "postgresql://feeder:***@localhost/feeder" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
