"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.config import Config, parse_config
from feeder.store import Store
from tests.builders import config_text


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A validated config rooted in tmp_path: seeds/ in, public/ out, state/ for the database."""
    (tmp_path / "seeds").mkdir()
    return parse_config(config_text(), tmp_path / "config.yaml")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state" / "feeder.sqlite3") as opened:
        yield opened
