"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.config import Config, parse_config
from feeder.store import Store
from tests import postgres
from tests.builders import config_text


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A validated config rooted in tmp_path: seeds/ in, public/ out, state/ for the database."""
    (tmp_path / "seeds").mkdir()
    return parse_config(config_text(), tmp_path / "config.yaml")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    """A PostgreSQL server for the session: skipped when its binaries are missing, except on CI (``CI`` set)."""
    reason = postgres.missing()
    if reason and os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: install Debian's postgresql)")
    if reason:
        pytest.skip(reason)
    server = postgres.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: postgres.Server) -> str:
    """The URL of a new, empty database of its own."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's state database is: a SQLite file, then a PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "state" / "feeder.sqlite3"


@pytest.fixture
def store(database: Path | str) -> Iterator[Store]:
    with Store.open(database) as opened:
        yield opened
