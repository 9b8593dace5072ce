"""SQLite state: one entry per canonical URL, what each source contributed, seed files seen, what fetching and
publishing must remember.

The only package that speaks SQL, one module per concern, each a part of ``Store``: ``connection`` (opening,
migrations from ``schema``, transactions, settings), ``seed_files``, ``entries``, ``fetch_state`` and
``published``.
"""

from __future__ import annotations

from feeder.store.entries import Entries, Outcome
from feeder.store.fetch_state import FetchState
from feeder.store.published import Published
from feeder.store.seed_files import SeedFiles

__all__ = ["Outcome", "Store"]


class Store(SeedFiles, Entries, FetchState, Published):
    """The state database. Use ``with Store.open(path) as store:``."""
