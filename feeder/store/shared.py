"""What the nodes sharing one database tell each other: each feed's generation, moved by a poll that changed
what the feed shows (with a notification on PostgreSQL, which ``feeder run`` listens for), and the status the
polls record, wherever they ran."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from feeder.store.connection import Connection

CHANNEL = "feeder_publish"
"""The notification channel: its payload names the feeds whose generation moved."""
_GENERATION = "generation:"
_SOURCE_STATUS = "status:"
"""Each source's last poll, a row per source (status.json's ``sources`` entry): a poll reads and writes its own."""


class Shared(Connection):
    def bump_generations(self, feeds: Iterable[str]) -> None:
        """Move these feeds' generations on and notify the listening nodes (once this transaction commits)."""
        names = sorted(set(feeds))
        for name in names:
            self._db.execute(
                "INSERT INTO settings (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
                " SET value = CAST(CAST(settings.value AS INTEGER) + 1 AS TEXT)",
                (_GENERATION + name,),
            )
        if names:
            self._db.notify(CHANNEL, ",".join(names))

    def generations(self) -> dict[str, int]:
        """Every feed's generation (a feed never polled into has none)."""
        rows = self._db.execute("SELECT key, value FROM settings WHERE key LIKE ?", (_GENERATION + "%",))
        return {str(key).removeprefix(_GENERATION): int(str(value)) for key, value in rows}

    def shared_status(self) -> dict[str, Any]:
        """The status the polls recorded in the database (status.json's shape: ``sources``), or an empty one."""
        rows = self._db.execute("SELECT key, value FROM settings WHERE key LIKE ?", (_SOURCE_STATUS + "%",))
        sources = {str(key).removeprefix(_SOURCE_STATUS): json.loads(str(value)) for key, value in rows}
        return {"sources": sources} if sources else {}

    def source_status(self, source: str) -> dict[str, Any]:
        """What the last poll of ``source`` recorded (empty when none did)."""
        text = self.setting(_SOURCE_STATUS + source)
        found = json.loads(text) if text else None
        return found if isinstance(found, dict) else {}

    def save_source_status(self, source: str, values: dict[str, Any]) -> None:
        self.set_setting(_SOURCE_STATUS + source, json.dumps(values, ensure_ascii=False, sort_keys=True))

    def apply_once(self, name: str, script: str, present: str) -> bool:
        """Run another library's schema (``script``) once in this database, unless its table ``present`` is
        there already; processes starting together run it once. True if it ran."""
        return self._db.apply_once(name, script, present)
