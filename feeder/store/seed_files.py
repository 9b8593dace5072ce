"""The seed files a source has read: size, modification time and hash of each, so an unchanged file is not read
again and a removed one is forgotten."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

from feeder.models import KnownFile
from feeder.store.connection import MAX_PARAMETERS, Connection


class SeedFiles(Connection):
    def changed_files(
        self, source: str, listed: Sequence[tuple[str, int, int]]
    ) -> tuple[int, list[tuple[tuple[str, int, int], KnownFile | None]]]:
        """Of these (path, size, mtime_ns) of a source's files, how many are remembered, and those whose
        size or mtime is not the remembered one, each with what is remembered of it (None: a new file).

        One query per few hundred files, answering only with the files that changed: a large folder where
        nothing changed costs a stat and a B-tree lookup per file."""
        known = 0
        changed: list[tuple[tuple[str, int, int], KnownFile | None]] = []
        step = MAX_PARAMETERS // 3
        for start in range(0, len(listed), step):
            chunk = listed[start : start + step]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            rows = self._db.execute(
                f"WITH listed (path, size, mtime_ns) AS (VALUES {values})"
                " SELECT l.path, l.size, l.mtime_ns, f.path IS NOT NULL, f.size, f.mtime_ns, f.sha256 FROM listed AS l"
                " LEFT JOIN seed_files AS f ON f.source = ? AND f.path = l.path"
                " WHERE f.path IS NULL OR f.size != l.size OR f.mtime_ns != l.mtime_ns",
                (*itertools.chain.from_iterable(chunk), source),
            ).fetchall()
            known += len(chunk) - sum(1 for row in rows if not row[3])
            changed += [
                ((path, size, mtime), KnownFile(*row) if seen else None) for path, size, mtime, seen, *row in rows
            ]
        return known, changed

    def count_files(self, source: str) -> int:
        return int(self._db.execute("SELECT count(*) FROM seed_files WHERE source = ?", (source,)).fetchone()[0])

    def file_paths(self, source: str) -> Iterator[str]:
        """The paths remembered for a source, read as they are consumed."""
        for (path,) in self._db.execute("SELECT path FROM seed_files WHERE source = ?", (source,)):
            yield str(path)

    def forget_paths(self, source: str, paths: Iterable[str]) -> None:
        self._db.executemany("DELETE FROM seed_files WHERE source = ? AND path = ?", ((source, p) for p in paths))

    def remember_files(self, source: str, files: Iterable[tuple[str, KnownFile, str | None, str | None]]) -> None:
        """Remember seed files as (path, what was seen, the article's URL, the error) in one statement."""
        self._db.executemany(
            "INSERT INTO seed_files (source, path, size, mtime_ns, sha256, url, error) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (source, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
            " sha256 = excluded.sha256, url = excluded.url, error = excluded.error",
            ((source, path, seen.size, seen.mtime_ns, seen.sha256, url, error) for path, seen, url, error in files),
        )

    def forget_files(self, source: str) -> None:
        """Forget every seed file of a source, so the next poll reads each again."""
        self._db.execute("DELETE FROM seed_files WHERE source = ?", (source,))
