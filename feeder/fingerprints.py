"""How a build tells that a document must be rendered again: a fingerprint of what it shows and of everything
it is rendered with, and a stamp of its published files as they are on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from feeder.formats import FORMATS
from feeder.models import FeedDocument

# Bump when rendering changes, so every document is rendered again.
RENDER_VERSION = "4"


def document_fingerprint(document: FeedDocument, shown: str, base_url: str) -> str:
    """A digest of the document's settings and of ``shown``, a digest of the entries it shows."""
    described = dataclasses.asdict(document)
    if document.archive:
        del described["updated"]  # follows from the entries, which ``shown`` covers
    settings = [RENDER_VERSION, base_url, described, shown]
    return hashlib.sha256(json.dumps(settings, default=str).encode()).hexdigest()


def files_stamp(output_dir: Path, path: str) -> str:
    """Size and mtime of a document's published files, so a deleted or damaged file is rendered again."""
    stamps = []
    for kind in FORMATS:
        for suffix in ("", ".gz"):
            try:
                st = (output_dir / f"{path}.{kind}{suffix}").stat()
            except OSError:
                return "missing"
            stamps.append((st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()
