"""``feeder store``: commands on the state database itself (``feeder store copy``)."""

from __future__ import annotations

from pathlib import Path

import click

from feeder.database_url import check_database_url, redacted
from feeder.store import Store
from feeder.store.copy import copy_store


@click.group("store")
def store_group() -> None:
    """The state database: copy a SQLite store into PostgreSQL."""


@store_group.command("copy")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The SQLite state file (state_dir/feeder.sqlite3).",
)
@click.option("--to", "target", required=True, metavar="URL", help="A postgresql:// URL of an empty database.")
def store_copy_command(source: Path, target: str) -> None:
    """Copy every entry, record and fingerprint of a SQLite store into an empty PostgreSQL database; then set
    ``database:`` to that URL. A running feeder waits for the copy to finish before it writes again."""
    try:
        check_database_url(target)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--to") from e
    with Store.open(source) as original, Store.open(target) as copy:
        counts = copy_store(original, copy)
    for table, rows in counts.items():
        click.echo(f"{table}: {rows} rows")
    click.echo(f"copied {source} to {redacted(target)}")
