"""What fetching needs to remember: per host when it may be asked again, per URL its validators, per article page
whether and when to fetch it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from feeder.models import HostState, Validators
from feeder.store.connection import Connection, moment, seconds


class FetchState(Connection):
    def hosts(self) -> dict[str, HostState]:
        rows = self._db.execute("SELECT host, next_allowed, failures FROM hosts").fetchall()
        return {host: HostState(None if at is None else moment(at), failures) for host, at, failures in rows}

    def save_hosts(self, hosts: dict[str, HostState]) -> None:
        self._db.executemany(
            "INSERT INTO hosts (host, next_allowed, failures) VALUES (?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
            " next_allowed = excluded.next_allowed, failures = excluded.failures",
            [
                (host, None if s.next_allowed is None else seconds(s.next_allowed), s.failures)
                for host, s in hosts.items()
            ],
        )

    def validators(self, url: str) -> Validators | None:
        row = self._db.execute("SELECT etag, last_modified FROM http_cache WHERE url = ?", (url,)).fetchone()
        return None if row is None else Validators(row[0], row[1])

    def save_validators(self, url: str, validators: Validators) -> None:
        self._db.execute(
            "INSERT INTO http_cache (url, etag, last_modified) VALUES (?, ?, ?) ON CONFLICT (url) DO UPDATE SET"
            " etag = excluded.etag, last_modified = excluded.last_modified",
            (url, validators.etag, validators.last_modified),
        )

    def note_feed_item(self, url: str, source: str, feed_date: datetime | None) -> None:
        """An article listed by one of the source's feeds now, dated ``feed_date`` there."""
        date = None if feed_date is None else seconds(feed_date)
        self._db.execute(
            "INSERT INTO pages (url, source, feed_date) VALUES (?, ?, ?)"
            " ON CONFLICT (url) DO UPDATE SET"
            f" feed_date = {self._db.greatest}(coalesce(pages.feed_date, 0), coalesce(excluded.feed_date, 0))",
            (url, source, date),
        )

    def set_feed_listing(self, feed: str, urls: set[str]) -> None:
        """What a feed lists now (after it was read and parsed); an article no feed lists is not retried."""
        self._db.execute("DELETE FROM feed_items WHERE feed = ?", (feed,))
        self._db.executemany("INSERT INTO feed_items (feed, url) VALUES (?, ?)", [(feed, url) for url in urls])

    def adopt_articles_without_pages(self, source: str, wanted: Callable[[str], bool]) -> None:
        """Give every entry that has no page record and is ``wanted`` (one of the site's article pages) a record
        for this source, so its page is fetched once."""
        rows = self._db.execute("SELECT url FROM entries WHERE url NOT IN (SELECT url FROM pages)").fetchall()
        adopted = [(url, source) for (url,) in rows if wanted(url)]
        self._db.executemany("INSERT INTO pages (url, source) VALUES (?, ?) ON CONFLICT DO NOTHING", adopted)

    def refetch_pages_if_rules_changed(self, source: str, rules: str) -> bool:
        """Make every article page of ``source`` due again (validators dropped, so no 304) when the rules that
        read its pages changed since the last poll: an edited rules file takes effect on pages already fetched."""
        key = f"page_rules:{source}"
        before = self.setting(key)
        if before == rules:
            return False
        self.set_setting(key, rules)
        if before is None:
            return False  # the first poll with rules recorded: nothing was read by other rules since
        pages = "SELECT url FROM pages WHERE source = ?"
        self._db.execute(f"DELETE FROM http_cache WHERE url IN ({pages})", (source,))
        self._db.execute(
            "UPDATE pages SET fetched_for = NULL, failures = 0, next_try = NULL WHERE source = ?", (source,)
        )
        return True

    def pages_due(self, source: str, now: datetime, limit: int) -> list[str]:
        """Article pages worth fetching now: never fetched (retried only while listed in a feed), or listed
        with a newer date than the version fetched, and not backing off. Newest articles first."""
        rows = self._db.execute(
            "SELECT p.url FROM pages AS p LEFT JOIN entries AS e ON e.url = p.url"
            " WHERE p.source = ? AND (p.next_try IS NULL OR p.next_try <= ?) AND ("
            "  (p.fetched_for IS NULL AND (p.failures = 0 OR p.url IN (SELECT url FROM feed_items)))"
            "  OR (p.fetched_for < coalesce(p.feed_date, 0) AND p.url IN (SELECT url FROM feed_items)))"
            " ORDER BY coalesce(e.published, 0) DESC, p.url LIMIT ?",
            (source, seconds(now), limit),
        ).fetchall()
        return [url for (url,) in rows]

    def page_fetched(self, url: str) -> None:
        self._db.execute(
            "UPDATE pages SET fetched_for = coalesce(feed_date, 0), failures = 0, next_try = NULL WHERE url = ?",
            (url,),
        )

    def page_failed(self, url: str, next_try: datetime) -> int:
        """Record a failed page fetch; returns how many failures in a row that makes."""
        self._db.execute(
            "UPDATE pages SET failures = failures + 1, next_try = ? WHERE url = ?", (seconds(next_try), url)
        )
        row = self._db.execute("SELECT failures FROM pages WHERE url = ?", (url,)).fetchone()
        return 0 if row is None else int(row[0])

    def page_failures(self, url: str) -> int:
        row = self._db.execute("SELECT failures FROM pages WHERE url = ?", (url,)).fetchone()
        return 0 if row is None else int(row[0])
