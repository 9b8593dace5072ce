"""What the ``feeder`` commands share: the --config option and the logging set-up."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import ClassVar

import click

from feeder.config import DEFAULT_CONFIG

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="The configuration file.",
)


class JournalFormatter(logging.Formatter):
    """``<priority>message``: journald reads the level from the prefix and adds the time itself."""

    PRIORITIES: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITIES.get(record.levelno, 6)}>{super().format(record)}"


def configure_logging(debug: bool) -> None:
    """One line per event on stderr: bare under systemd, timestamped elsewhere."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True)
    for chatty in (
        "apscheduler",
        "httpx2",
        "uvicorn",
        "procrastinate",
    ):  # a line per job run, per request: feeder logs what matters
        logging.getLogger(chatty).setLevel(logging.DEBUG if debug else logging.WARNING)
