"""The state, in SQLite (a file in state_dir) or PostgreSQL (``database:``): one entry per canonical URL, what
each source contributed, seed files seen, what fetching and publishing must remember.

The only package that speaks SQL, one module per concern, each a part of ``Store``: ``connection`` (opening,
transactions, settings), ``seed_files``, ``entries``, ``fetch_state``, ``published``, ``shared`` (what the nodes
of one database tell each other), ``queue_tables`` (the job queue's tables, read) and ``copy`` (``feeder store
copy``). ``sqlite`` and ``postgres`` are the drivers (``driver``), each with its migrations (``schema``,
``schema_postgres``).
"""

from __future__ import annotations

from feeder.store.copy import Copying
from feeder.store.entries import Entries, Outcome
from feeder.store.fetch_state import FetchState
from feeder.store.published import Published
from feeder.store.queue_tables import QueueTables
from feeder.store.seed_files import SeedFiles
from feeder.store.shared import Shared

__all__ = ["Outcome", "Store"]


class Store(SeedFiles, Entries, FetchState, Published, Copying, Shared, QueueTables):
    """The state database. Use ``with Store.open(path_or_url) as store:``."""
