"""Noticing seed-file changes at once: the only module that imports watchfiles.

Each seeds folder is watched with watchfiles (inotify on Linux): a seed file added, rewritten in place, renamed
or deleted calls back within a fraction of a second. Where inotify cannot see every change (a network or FUSE
filesystem, whose other clients' writes it never hears of) or refuses to watch (its limits reached, a sandbox),
the folder's own modification time is looked at twice a second instead: that sees files added, removed or
renamed, and a file rewritten in place waits for the source's next scheduled poll. A folder that does not exist
yet is looked for the same way, and watched once it appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)

SETTLE_MS = 100
"""Changes that follow one another closer than this are one: a file written in several pieces calls back once."""
GROUP_MS = 400
"""The longest a change waits for those that follow it."""
FOLDER_TIME_PERIOD = 0.5
# inotify only hears of changes made through this machine's kernel: on these a file another machine wrote
# would never be noticed.
SHARED_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "gpfs", "afs", "virtiofs"}
)


def unwatchable(path: Path, mountinfo: str | None = None) -> str | None:
    """Why inotify would miss changes in ``path``'s folder (its filesystem is shared or FUSE), or None."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None  # not Linux, or no /proc: watch, and trust what the watcher says
    kind = _filesystem(path.resolve(), mountinfo)
    if kind is not None and (kind in SHARED_FILESYSTEMS or kind.startswith("fuse")):
        return f"it is on {kind}, where inotify does not hear of every change"
    return None


def _filesystem(path: Path, mountinfo: str) -> str | None:
    """The type of the filesystem mounted deepest above ``path``, from /proc/self/mountinfo."""
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = Path(fields[4].replace("\\040", " "))
        kind = line.split(" - ", 1)[1].split()[0]
        if path == mount_point or mount_point in path.parents:
            depth = len(mount_point.parts)
            if best is None or depth >= best[0]:
                best = (depth, kind)
    return None if best is None else best[1]


def is_seed_change(_: watchfiles.Change, path: str) -> bool:
    name = Path(path).name
    return name.endswith(".txt") and not name.startswith(".")


async def watch_folder(source: str, folder: Path, changed: Callable[[], None], stop: asyncio.Event) -> None:
    """Call ``changed`` whenever seed files in ``folder`` change, until ``stop`` is set."""
    said = None
    while not stop.is_set():
        reason = unwatchable(folder) if folder.is_dir() else "the folder does not exist yet"
        if reason is None:
            reason = await _with_inotify(folder, changed, stop)
            if reason is None:
                return
        if reason != said:
            log.warning(
                "%s: %s is not watched for changes (%s): new, removed and renamed files are noticed from the"
                " folder's modification time, a file changed in place at the next scheduled poll",
                source,
                folder,
                reason,
            )
            said = reason
        await _by_folder_time(folder, changed, stop, retry_inotify=reason.startswith("the folder"))


async def _with_inotify(folder: Path, changed: Callable[[], None], stop: asyncio.Event) -> str | None:
    """Watch until stopped (None) or until watching is no longer possible (why)."""
    try:
        async for changes in watchfiles.awatch(
            folder,
            watch_filter=lambda change, path: path == str(folder) or is_seed_change(change, path),
            debounce=GROUP_MS,
            step=SETTLE_MS,
            stop_event=stop,
            recursive=False,
        ):
            if any(path == str(folder) for _, path in changes):
                changed()
                return "the folder does not exist yet"  # removed: wait for it to come back
            changed()
    except (OSError, RuntimeError) as e:  # inotify refused: no instance or watch left, or no inotify at all
        return f"inotify refused to watch it: {e}"
    return None


async def _by_folder_time(
    folder: Path, changed: Callable[[], None], stop: asyncio.Event, *, retry_inotify: bool
) -> None:
    """Look at the folder's own time twice a second; call back once it has stopped changing. Return when
    stopped, or (``retry_inotify``) once the folder exists, to watch it properly."""
    last = _folder_stamp(folder)
    moved = False
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FOLDER_TIME_PERIOD)
        stamp = _folder_stamp(folder)
        if stamp != last:
            last, moved = stamp, True
        elif moved:  # unchanged for a whole period: the writer is done
            moved = False
            changed()
        if retry_inotify and stamp is not None:
            changed()  # what was written before it is watched
            return


def _folder_stamp(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        st = path.stat()
        return st.st_mtime_ns, st.st_ino
    return None
