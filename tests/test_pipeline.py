"""refresh() in-process: work skipped for unchanged files, failures isolated, republish after a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from feeder import build
from feeder.config import Config, parse_config
from feeder.errors import PublishError
from feeder.models import FeedDocument, Problem
from feeder.pipeline import check_seeds, refresh
from feeder.render import render_document as real_render
from feeder.store import Store
from tests.builders import NOW, config_text, seed_text, seeds_folder, write_seed

OTHER_URL = "https://www.rfi.fr/cn/%E6%B3%95%E5%9B%BD/20240110-other"


def test_counts_new_then_skips_unchanged_files(config: Config, store: Store) -> None:
    write_seed(seeds_folder(config), "001_a.txt", seed_text())
    write_seed(seeds_folder(config), "002_b.txt", seed_text(OTHER_URL, "另一篇"))
    first = refresh(config, store, NOW).sources[0]
    assert (first.new, first.skipped, first.problems) == (2, 0, ())
    second = refresh(config, store, NOW).sources[0]
    assert (second.new, second.updated, second.unchanged, second.skipped) == (0, 0, 0, 2)


def test_a_touched_file_with_the_same_bytes_is_not_parsed_again(config: Config, store: Store) -> None:
    path = write_seed(seeds_folder(config), "001_a.txt", seed_text())
    refresh(config, store, NOW)
    os.utime(path, ns=(1, 1))
    assert refresh(config, store, NOW).sources[0].skipped == 1


def test_an_edited_file_is_parsed_again(config: Config, store: Store) -> None:
    path = write_seed(seeds_folder(config), "001_a.txt", seed_text())
    refresh(config, store, NOW)
    path.write_text(seed_text(title="改过的标题", scraped_ms=1704800000000), encoding="utf-8")
    report = refresh(config, store, NOW).sources[0]
    assert report.updated == 1
    assert store.entries(["seeds"], 5)[0].title == "改过的标题"


def test_a_bad_file_is_reported_once(config: Config, store: Store) -> None:
    bad = write_seed(seeds_folder(config), "001_bad.txt", "")
    write_seed(seeds_folder(config), "002_ok.txt", seed_text())
    first = refresh(config, store, NOW).sources[0]
    assert first.problems == (Problem(str(bad), "no '[title](url)' line (empty or cut-off file)"),)
    assert first.new == 1
    assert refresh(config, store, NOW).sources[0].problems == ()


def test_changing_the_host_allowlist_reads_every_file_again(tmp_path: Path) -> None:
    write_seed(tmp_path / "seeds", "001.txt", seed_text("https://cn.rfi.fr/中国/20190101-old"))
    strict = parse_config(config_text(), tmp_path / "config.yaml")
    relaxed = parse_config(config_text() + "allowed_hosts: [www.rfi.fr, cn.rfi.fr]\n", tmp_path / "config.yaml")
    with Store.open(tmp_path / "state.sqlite3") as store:
        assert len(refresh(strict, store, NOW).sources[0].problems) == 1
        assert refresh(relaxed, store, NOW).sources[0].new == 1


def test_a_missing_folder_fails_its_source_only(tmp_path: Path) -> None:
    extra = "  - name: empty\n    title: 空\n    sources: [gone]\n"
    text = config_text(extra_feed=extra).replace(
        "feeds:\n", "  - name: gone\n    kind: seeds\n    path: nowhere\nfeeds:\n"
    )
    config = parse_config(text, tmp_path / "config.yaml")
    write_seed(tmp_path / "seeds", "001.txt", seed_text())
    with Store.open(tmp_path / "state.sqlite3") as store:
        report = refresh(config, store, NOW)
    assert report.failed
    gone = report.sources[1]
    assert gone.failure is not None
    assert "nowhere: seeds folder does not exist" in gone.failure
    assert report.sources[0].new == 1
    assert (tmp_path / "public" / "rfi-cn.atom").exists()
    assert (tmp_path / "public" / "empty.atom").exists()


def test_progress_is_reported_per_file(config: Config, store: Store) -> None:
    for n in range(3):
        write_seed(seeds_folder(config), f"00{n}.txt", seed_text(f"{OTHER_URL}-{n}"))
    calls: list[tuple[str, int, int]] = []
    refresh(config, store, NOW, progress=lambda *call: calls.append(call))
    assert calls == [("seeds", 1, 3), ("seeds", 2, 3), ("seeds", 3, 3)]


def test_a_crash_after_ingest_is_repaired_by_the_next_refresh(config: Config, store: Store) -> None:
    write_seed(seeds_folder(config), "001.txt", seed_text())
    config.output_dir.parent.joinpath("public").write_text("in the way")
    with pytest.raises(PublishError):
        refresh(config, store, NOW)
    config.output_dir.unlink()
    report = refresh(config, store, NOW)
    assert report.sources[0].skipped == 1  # ingested before the crash
    assert b"20240109-example-article" in (config.output_dir / "rfi-cn.atom").read_bytes()


def test_check_parses_without_writing(config: Config) -> None:
    write_seed(seeds_folder(config), "001.txt", seed_text())
    write_seed(seeds_folder(config), "002.txt", seed_text("https://www.rfi.fr.example.net/cn/x/20240101-y"))
    results = [result for _, _, result in check_seeds(config, NOW)]
    assert isinstance(results[1], Problem)
    assert "www.rfi.fr.example.net" in results[1].reason
    assert not config.output_dir.exists()
    assert not config.state_dir.exists()


def test_check_reports_a_missing_folder(config: Config) -> None:
    shutil.rmtree(seeds_folder(config))
    ((_, seed, result),) = check_seeds(config, NOW)
    assert seed is None
    assert isinstance(result, Problem)


def test_feeds_are_rendered_only_when_something_they_show_changed(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[str] = []

    def counting_render(document: FeedDocument, *args: Any, **kwargs: Any) -> dict[str, bytes]:
        rendered.append(document.path)
        return real_render(document, *args, **kwargs)

    monkeypatch.setattr(build, "render_document", counting_render)
    config = parse_config(config_text(), tmp_path / "config.yaml")
    write_seed(tmp_path / "seeds", "001.txt", seed_text())
    refresh(config, store, NOW)
    refresh(config, store, NOW)
    assert rendered == ["rfi-cn", "rfi-cn/中国"]  # the feed and its one section
    write_seed(tmp_path / "seeds", "002.txt", seed_text(OTHER_URL))
    refresh(config, store, NOW)
    assert rendered[2:] == ["rfi-cn", "rfi-cn/法国"]  # the 中国 section did not change
    retitled = parse_config(config_text().replace("title: RFI 中文", "title: 新标题"), tmp_path / "config.yaml")
    report = refresh(retitled, store, NOW)
    assert rendered[4:] == ["rfi-cn", "rfi-cn/中国", "rfi-cn/法国"]
    assert tmp_path / "public" / "rfi-cn.atom" in report.written
    assert "新标题" in (tmp_path / "public" / "rfi-cn.atom").read_text(encoding="utf-8")


def test_only_the_named_sources_are_polled(tmp_path: Path, store: Store) -> None:
    text = config_text().replace("feeds:\n", "  - name: other\n    kind: seeds\n    path: other\nfeeds:\n")
    config = parse_config(text, tmp_path / "config.yaml")
    write_seed(tmp_path / "seeds", "001.txt", seed_text())
    write_seed(tmp_path / "other", "001.txt", seed_text(OTHER_URL))
    report = refresh(config, store, NOW, sources={"other"})
    assert [s.source for s in report.sources] == ["other"]
    assert [e.url for e in store.entries(["seeds", "other"], 10)] == [OTHER_URL]
