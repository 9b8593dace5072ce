"""RFC 5005 archive pages: which entries each page of a feed or section feed holds, what each page shows in
brief (to tell which changed), and where the pages are written.

Each feed or section feed numbers the entries that have left its newest ``max_entries`` (the first time from
the oldest, later in the order they leave), and page N holds the slots ``(N-1)·archive_page_entries`` up to the
next page's. An entry keeps its slot, so a page changes only when one of its own entries changes or joins it;
the newest page is created as soon as the one before it is full, so a full page's links are settled in the
same build as its last entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from feeder.config import FeedConfig
from feeder.models import Entry, FeedDigest, FeedDocument
from feeder.store import Store

ARCHIVE_FOLDER = "archive"
_EMPTY = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    """A view's archive pages: how many, and what each shows in brief (None: unchanged since the last build)."""

    pages: int
    size: int
    top: frozenset[str]
    digests: dict[int, str] | None

    def digest(self, index: int) -> str | None:
        """What page ``index`` shows in brief; None when the plan has no briefs."""
        return self.digests.get(index, _EMPTY) if self.digests is not None else None


def archive_page(view_path: str, number: int) -> str:
    return f"{view_path}/{ARCHIVE_FOLDER}/{number}"


def plan_archive(
    store: Store, key: str, feed: FeedConfig, *, section: str | None, digest: FeedDigest, state: str
) -> ArchivePlan:
    """Give the entries that left the view's newest ``max_entries`` their slots; brief each page unless the
    archive was last planned for the same ``state`` (then nothing it shows can have changed).

    Which entries left is judged on the newest ones as they are inside the transaction that slots them, not as
    ``digest`` saw them: on PostgreSQL workers write while a node builds, and an entry written since ``digest``
    was read would otherwise look as if it had left, and keep the slot for good."""
    size, top = feed.archive_page_entries, frozenset(digest.urls)
    sources = json.dumps(sorted(feed.sources))
    with store.transaction():
        if store.archive_sources(key) != sources:
            store.start_archive(key, sources)
        if store.archive_state(key) == state:
            return ArchivePlan(_page_count(store.archive_slot_count(key), size), size, top, None)
        top = frozenset(store.feed_digest(feed.sources, feed.max_entries, section).urls)
        leaving = [url for url in store.unslotted(key, feed.sources, section) if url not in top]
        pages = _page_count(store.add_slots(key, leaving), size)
        digests = _page_digests(store.slotted(key), size, top)
    return ArchivePlan(pages, size, top, digests)


def page_document(document: FeedDocument, index: int, pages: int) -> FeedDocument:
    """Archive page ``index`` (0 the oldest) of a subscription feed; dated once its entries are read."""
    number = index + 1
    return dataclasses.replace(
        document,
        path=archive_page(document.path, number),
        archive=True,
        prev_archive=archive_page(document.path, number - 1) if number > 1 else None,
        next_archive=archive_page(document.path, number + 1) if number < pages else document.path,
        hubs=(),
    )


def page_entries(store: Store, key: str, plan: ArchivePlan, index: int) -> list[Entry]:
    """The entries in page ``index``'s slots, less any back among the newest (the feed itself shows those)."""
    return [entry for entry in store.slotted_entries(key, *_slots(index, plan.size)) if entry.url not in plan.top]


def stored_page_digest(store: Store, key: str, plan: ArchivePlan, index: int) -> str:
    """What page ``index`` shows in brief, read from the store when the plan has no briefs."""
    rows = store.slotted(key, *_slots(index, plan.size))
    return _page_digests(rows, plan.size, plan.top).get(index, _EMPTY)


def by_archive_folder(paths: Sequence[Path]) -> tuple[list[Path], dict[Path, int]]:
    """The paths that are not archive pages, and per archive folder how many of its files there are: what a
    report shows, where a first build may write thousands of pages."""
    others: list[Path] = []
    folders: dict[Path, int] = {}
    for path in paths:
        if path.parent.name == ARCHIVE_FOLDER and path.name.split(".", 1)[0].isdigit():
            folders[path.parent] = folders.get(path.parent, 0) + 1
        else:
            others.append(path)
    return others, folders


def _page_count(slots: int, size: int) -> int:
    """Pages for this many slots: none without any, else one more than the full ones (so a page's successor
    exists as soon as it is full)."""
    return slots // size + 1 if slots else 0


def _slots(index: int, size: int) -> tuple[int, int]:
    return index * size, (index + 1) * size


def _page_digests(rows: Iterator[tuple[int, str, int, int]], size: int, top: frozenset[str]) -> dict[int, str]:
    """Per page that shows any entry, a digest of them (URL, publication time and revision, in slot order)."""
    hashers: dict[int, hashlib._Hash] = {}
    for seq, url, published, revision in rows:
        if url not in top:
            hashers.setdefault(seq // size, hashlib.sha256()).update(f"{url} {published} {revision}\n".encode())
    return {index: hasher.hexdigest() for index, hasher in hashers.items()}
