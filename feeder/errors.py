"""The project's exception tree.

Every error feeder raises on purpose derives from FeederError. Third-party
errors are translated at the module that imports the library (``raise … from e``)
so callers only ever handle these. Exit codes live here and are applied once, in
the CLI.
"""

from __future__ import annotations


class FeederError(Exception):
    """Root of every error feeder raises on purpose."""

    exit_code = 1


class ConfigError(FeederError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 3


class StoreError(FeederError):
    """The state database cannot be opened, migrated or written."""

    exit_code = 4


class PublishError(FeederError):
    """A feed file could not be written to the output folder."""

    exit_code = 5


class SourceError(FeederError):
    """A source as a whole could not be polled (its folder is missing, say)."""

    exit_code = 6


class ParseError(SourceError):
    """One input document could not yield an article; the run goes on."""


class BusyError(FeederError):
    """Another feeder process already holds this config's daemon lock."""

    exit_code = 7


class ListenError(FeederError):
    """The HTTP server cannot listen on its address (in use, or not this host's)."""

    exit_code = 8


class ControlError(FeederError):
    """A running daemon was reached but did not answer properly over its control API (it stopped, or refused)."""

    exit_code = 9


class UnknownSourceError(FeederError):
    """A request names a source the config does not have."""


class RefreshAbortedError(FeederError):
    """A refresh was stopped part-way (the service is shutting down); nothing of it was kept."""


from datetime import datetime  # noqa: E402  (appended with the fetch errors, which alone need it)


class FetchError(SourceError):
    """A URL could not be fetched: ``url`` says which, ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot fetch {self.url}: {self.reason}"


class RetryLater(FetchError):  # noqa: N818  (the name the web sources and their callers use)
    """The host asked us to wait (429/503 Retry-After) or is backing off after failures: ask again from ``until``."""

    def __init__(self, url: str, reason: str, until: datetime) -> None:
        super().__init__(url, reason)
        self.args = (url, reason, until)
        self.until = until


class PutOffError(RetryLater):
    """Not asked at all: the host's wait (an earlier Retry-After, or backoff after failures) is not over."""
