"""A worker's poll as feeder/polling.py records it: each source's figures in a row of its own, counted over
polls, the others' left as they were, and the feeds' generations moved only when entries changed."""

from __future__ import annotations

from pathlib import Path

from feeder.config import parse_config
from feeder.models import SourceReport
from feeder.polling import record
from feeder.store import Store
from tests.builders import NOW, config_text


def test_a_poll_records_its_own_source_and_leaves_the_others(tmp_path: Path) -> None:
    config = parse_config(config_text(), tmp_path / "config.yaml")
    with Store.open(tmp_path / "feeder.sqlite3") as store:
        record(config, store, SourceReport("seeds", new=3), NOW)
        record(config, store, SourceReport("other", failure="no feed could be read"), NOW)
        record(config, store, SourceReport("seeds", unchanged=3), NOW)
        recorded = store.shared_status()["sources"]
        generations = store.generations()
    assert (recorded["seeds"]["polls"], recorded["seeds"]["unchanged"], recorded["seeds"]["failure"]) == (2, 3, None)
    assert (recorded["other"]["polls"], recorded["other"]["failed_polls"]) == (1, 1)
    assert generations == {"rfi-cn": 1}  # moved by the first poll only: the others changed no entry
