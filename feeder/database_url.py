"""The ``database:`` setting: absent for the SQLite file in state_dir, or a PostgreSQL URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")


def check_database_url(value: str) -> str:
    """A ``postgresql://`` (or ``postgres://``) URL, as psycopg takes it."""
    parts = urlsplit(value)
    if parts.scheme not in SCHEMES:
        raise ValueError("must be a postgresql:// URL (leave it out for the SQLite file in state_dir)")
    return value


def redacted(url: str) -> str:
    """The URL without its password, fit for a log line or an error."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
