"""Watching seeds folders: inotify through watchfiles where it sees every change, the folder's own time elsewhere."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import watchfiles

from feeder import watch
from feeder.watch import is_seed_change, unwatchable, watch_folder

MOUNTINFO = """\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /srv/seeds rw,relatime - nfs4 server:/export/seeds rw,vers=4.2
31 30 0:26 / /srv/seeds/local rw - tmpfs tmpfs rw
32 22 0:27 / /mnt/ssh\\040box rw - fuse.sshfs me@box:/ rw
"""


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/home/feeder/seeds", None),
        ("/srv/seeds", "it is on nfs4, where inotify does not hear of every change"),
        ("/srv/seeds/rfi", "it is on nfs4, where inotify does not hear of every change"),
        ("/srv/seeds/local/rfi", None),  # the deepest mount decides
        ("/mnt/ssh box/seeds", "it is on fuse.sshfs, where inotify does not hear of every change"),
        ("/srv/seedsx", None),
    ],
)
def test_folders_on_shared_filesystems_are_not_watched(path: str, reason: str | None) -> None:
    assert unwatchable(Path(path), MOUNTINFO) == reason


def test_only_seed_files_count() -> None:
    assert is_seed_change(watchfiles.Change.added, "/s/001_ab.txt")
    assert not is_seed_change(watchfiles.Change.added, "/s/.001_ab.txt.swp")
    assert not is_seed_change(watchfiles.Change.modified, "/s/notes.md")


class Watched:
    """A watcher running on a folder in this event loop, counting its callbacks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls = 0
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(watch_folder("seeds", folder, self.changed, self.stop))

    def changed(self) -> None:
        self.calls += 1

    async def after(self, action: Callable[[], object], *, within: float = 2.0) -> float:
        """Do ``action`` and return how long it took until a callback came."""
        before = self.calls
        started = time.monotonic()
        action()
        while self.calls == before:
            assert time.monotonic() - started < within, "no callback in time"
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_every_kind_of_change_calls_back_within_a_second(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()

    async def scenario() -> None:
        watched = Watched(seeds)
        await asyncio.sleep(0.3)  # the watch is set up
        latencies = [
            await watched.after(lambda: (seeds / "001.txt").write_text("new", encoding="utf-8")),
            await watched.after(lambda: (seeds / "001.txt").write_text("rewritten in place", encoding="utf-8")),
            await watched.after(lambda: (seeds / "001.txt").rename(seeds / "002.txt")),
            await watched.after((seeds / "002.txt").unlink),
        ]
        assert max(latencies) < 1.0, latencies
        before = watched.calls
        (seeds / ".hidden.txt").write_text("x", encoding="utf-8")
        (seeds / "notes.md").write_text("x", encoding="utf-8")
        await asyncio.sleep(0.8)
        assert watched.calls == before  # what is not a seed file does not poll the source
        await watched.close()

    run(scenario)


def test_a_folder_removed_and_made_again_is_watched_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()

    async def scenario() -> None:
        watched = Watched(seeds)
        await asyncio.sleep(0.3)
        await watched.after(lambda: shutil.rmtree(seeds))

        def make_it_again() -> None:
            seeds.mkdir()
            (seeds / "001.txt").write_text("x", encoding="utf-8")

        await watched.after(make_it_again)
        await asyncio.sleep(0.3)
        assert await watched.after(lambda: (seeds / "001.txt").write_text("in place", encoding="utf-8")) < 1.0
        await watched.close()

    with caplog.at_level(logging.WARNING):
        run(scenario)
    assert "is not watched for changes (the folder does not exist yet)" in caplog.text


async def a_new_file_is_noticed_by_the_folders_time(
    seeds: Path, then: Callable[[Watched], Coroutine[Any, Any, None]] | None = None
) -> None:
    """Watch ``seeds``, write a new file and see a callback within two periods; then ``then``, if given."""
    watched = Watched(seeds)
    await asyncio.sleep(0.6)  # the folder's time is taken a first time
    assert await watched.after(lambda: (seeds / "001.txt").write_text("new", encoding="utf-8")) < 2.0
    if then is not None:
        await then(watched)
    await watched.close()


def test_on_a_shared_filesystem_the_folders_time_is_watched_and_it_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    monkeypatch.setattr(watch, "unwatchable", lambda path: "it is on nfs4, where inotify does not hear of every change")

    async def and_not_a_rewrite(watched: Watched) -> None:
        before = watched.calls
        (seeds / "001.txt").write_text("rewritten in place: the folder's time does not move", encoding="utf-8")
        await asyncio.sleep(1.2)
        assert watched.calls == before  # left to the scheduled poll, as the log line says

    with caplog.at_level(logging.WARNING):
        run(lambda: a_new_file_is_noticed_by_the_folders_time(seeds, then=and_not_a_rewrite))
    assert (
        f"seeds: {seeds} is not watched for changes (it is on nfs4, where inotify does not hear of every change):"
        " new, removed and renamed files are noticed from the folder's modification time, a file changed in"
        " place at the next scheduled poll"
    ) in caplog.text


def test_when_inotify_refuses_the_folders_time_is_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()

    def refuse(*args: object, **kwargs: object) -> object:
        raise OSError("OS file watch limit reached")

    monkeypatch.setattr(watchfiles, "awatch", refuse)

    with caplog.at_level(logging.WARNING):
        run(lambda: a_new_file_is_noticed_by_the_folders_time(seeds))
    assert "(inotify refused to watch it: OS file watch limit reached)" in caplog.text
