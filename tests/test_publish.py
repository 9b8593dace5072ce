"""Publishing: atomic, write-if-changed, with deterministic .gz siblings."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from feeder.errors import PublishError
from feeder.publish import publish, write_if_changed


def test_files_and_gzip_siblings_are_written(tmp_path: Path) -> None:
    written, unchanged = publish(tmp_path / "public", {"a.atom": b"<feed/>", "sub/b.rss": b"<rss/>"})
    assert written == [tmp_path / "public" / "a.atom", tmp_path / "public" / "sub" / "b.rss"]
    assert unchanged == []
    assert gzip.decompress((tmp_path / "public" / "a.atom.gz").read_bytes()) == b"<feed/>"
    assert (tmp_path / "public" / "a.atom").stat().st_mode & 0o777 == 0o644


def test_unchanged_bytes_leave_the_file_and_its_mtime_alone(tmp_path: Path) -> None:
    publish(tmp_path, {"a.atom": b"one"})
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    written, unchanged = publish(tmp_path, {"a.atom": b"one"})
    assert (written, unchanged) == ([], [tmp_path / "a.atom"])
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_changed_bytes_replace_both_files(tmp_path: Path) -> None:
    publish(tmp_path, {"a.atom": b"one"})
    publish(tmp_path, {"a.atom": b"two"})
    assert (tmp_path / "a.atom").read_bytes() == b"two"
    assert gzip.decompress((tmp_path / "a.atom.gz").read_bytes()) == b"two"


def test_gzip_is_deterministic_and_a_missing_one_is_restored(tmp_path: Path) -> None:
    publish(tmp_path, {"a.atom": b"same"})
    first = (tmp_path / "a.atom.gz").read_bytes()
    (tmp_path / "a.atom.gz").unlink()
    publish(tmp_path, {"a.atom": b"same"})
    assert (tmp_path / "a.atom.gz").read_bytes() == first


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    for n in range(3):
        write_if_changed(tmp_path / "a.atom", f"v{n}".encode())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.atom"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_an_unwritable_folder_is_a_publish_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PublishError, match="cannot write"):
            write_if_changed(tmp_path / "a.atom", b"x")
    finally:
        tmp_path.chmod(0o755)


def test_a_file_in_place_of_the_folder_is_a_publish_error(tmp_path: Path) -> None:
    (tmp_path / "public").write_text("a file, not a folder")
    with pytest.raises(PublishError, match=r"public/a\.atom"):
        write_if_changed(tmp_path / "public" / "a.atom", b"x")


def test_a_version_replaced_within_its_second_gets_the_next_second(tmp_path: Path) -> None:
    """Last-Modified has whole seconds: a reader that asks If-Modified-Since with the first version's time
    must not be told the second is not modified."""
    seconds = []
    for version in (b"one", b"two", b"three"):
        publish(tmp_path, {"a.atom": version})
        seconds.append((tmp_path / "a.atom").stat().st_mtime_ns // 1_000_000_000)
    assert seconds[0] < seconds[1] < seconds[2]
    assert (tmp_path / "a.atom.gz").stat().st_mtime_ns == (tmp_path / "a.atom").stat().st_mtime_ns


def test_a_version_written_in_a_later_second_is_dated_when_it_was_written(tmp_path: Path) -> None:
    publish(tmp_path, {"a.atom": b"one"})
    os.utime(tmp_path / "a.atom", ns=(10**18, 1_000_000_000))  # the last version is long past
    publish(tmp_path, {"a.atom": b"two"})
    written = (tmp_path / "a.atom").stat().st_mtime_ns
    assert abs(written / 1e9 - time.time()) < 60
