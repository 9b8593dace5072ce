"""What the feed formats share: their media types, where each file is served, an entry's text as every format
writes it, and the one way times are written. Used by the writers in render_atom_rss.py and render_json.py,
by render.py and by build.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import quote

from feeder.models import Entry
from feeder.text import plain_text, unescaped, xml_safe

FORMATS = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}


class EntryText(NamedTuple):
    """An entry's text as every format writes it: plain-text fields with references decoded and no tag
    lookalike, nothing a validator flags. Made once per entry, for the three formats."""

    title: str
    lead: str
    content: str
    categories: list[str]
    author: str

    @classmethod
    def of(cls, entry: Entry, default_author: str) -> EntryText:
        return cls(
            title=plain_text(entry.title) or entry.url,  # an entry must have a title
            lead=xml_safe(unescaped(entry.lead)),
            content=xml_safe(entry.content_html),
            categories=[plain_text(term) for term in entry.categories],
            author=plain_text(entry.author or default_author),
        )


def feed_url(base_url: str, name: str, kind: str) -> str:
    """Where a feed file is served: names may hold a section in Chinese, which is percent-encoded."""
    return f"{base_url}{quote(name)}.{kind}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
