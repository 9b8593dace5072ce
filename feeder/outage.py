"""Saying once that something went away (the state database, the job queue) and once that it is back, however
many times it is found away meanwhile: an outage is two log lines, not one per attempt."""

from __future__ import annotations

import logging

log = logging.getLogger("feeder")


class Outage:
    """``down`` is the line logged when it goes (``{reason}`` filled in), ``up`` the one when it is back."""

    def __init__(self, down: str, up: str) -> None:
        self._down, self._up = down, up
        self.reason: str | None = None
        """Why it is away, while it is; None otherwise."""

    def began(self, error: Exception | str) -> None:
        reason = " ".join(str(error).split()) or type(error).__name__
        if self.reason is None:
            log.error(self._down.format(reason=reason))
        self.reason = reason

    def ended(self) -> None:
        if self.reason is not None:
            log.info(self._up)
        self.reason = None
