"""The state database's schema on PostgreSQL: numbered migrations, applied in order (the ``feeder_schema`` table
records how far a database has come). A migration is never changed once released; a change is a new one.

The first migration is SQLite's five (feeder/store/schema.py) as they stand, in PostgreSQL's types: times and
sizes are BIGINT, and text sorts by code point (``COLLATE "C"``, as SQLite's BINARY), so every ``ORDER BY`` and
range gives what it gives on SQLite and the feeds are byte-identical.
"""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE entries (
        url TEXT COLLATE "C" PRIMARY KEY,
        title TEXT COLLATE "C" NOT NULL,
        section TEXT COLLATE "C",
        categories TEXT COLLATE "C" NOT NULL,
        author TEXT COLLATE "C",
        lead TEXT COLLATE "C" NOT NULL,
        image TEXT COLLATE "C",
        content TEXT COLLATE "C" NOT NULL,
        published BIGINT NOT NULL,
        updated BIGINT NOT NULL,
        version_at BIGINT NOT NULL,
        content_hash TEXT COLLATE "C" NOT NULL,
        fulltext BIGINT NOT NULL DEFAULT 1,
        audio TEXT COLLATE "C",
        revision BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX entries_by_published ON entries (published DESC, url);
    CREATE INDEX entries_by_section ON entries (section, published DESC, url);
    CREATE INDEX entries_by_revision ON entries (revision);
    CREATE TABLE entry_sources (
        url TEXT COLLATE "C" NOT NULL REFERENCES entries (url),
        source TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (url, source)
    );
    CREATE INDEX entry_sources_by_source ON entry_sources (source, url);
    CREATE TABLE seed_files (
        source TEXT COLLATE "C" NOT NULL,
        path TEXT COLLATE "C" NOT NULL,
        size BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL,
        sha256 TEXT COLLATE "C" NOT NULL,
        url TEXT COLLATE "C",
        error TEXT COLLATE "C",
        PRIMARY KEY (source, path)
    );
    CREATE TABLE feeds (
        name TEXT COLLATE "C" PRIMARY KEY,
        created_at BIGINT NOT NULL,
        rendered TEXT COLLATE "C"
    );
    CREATE TABLE settings (
        key TEXT COLLATE "C" PRIMARY KEY,
        value TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE http_cache (
        url TEXT COLLATE "C" PRIMARY KEY,
        etag TEXT COLLATE "C",
        last_modified TEXT COLLATE "C"
    );
    CREATE TABLE hosts (
        host TEXT COLLATE "C" PRIMARY KEY,
        next_allowed BIGINT,
        failures BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE pages (
        url TEXT COLLATE "C" PRIMARY KEY,
        source TEXT COLLATE "C" NOT NULL,
        feed_date BIGINT,
        fetched_for BIGINT,
        failures BIGINT NOT NULL DEFAULT 0,
        next_try BIGINT,
        in_feed BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE feed_items (
        feed TEXT COLLATE "C" NOT NULL,
        url TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (feed, url)
    );
    CREATE INDEX feed_items_by_url ON feed_items (url);
    CREATE TABLE archive_slots (
        view TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        url TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (view, seq)
    );
    CREATE UNIQUE INDEX archive_slots_by_url ON archive_slots (view, url);
    CREATE TABLE archive_views (
        view TEXT COLLATE "C" PRIMARY KEY,
        sources TEXT COLLATE "C" NOT NULL,
        state TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE editions (
        variant TEXT COLLATE "C" NOT NULL,
        url TEXT COLLATE "C" NOT NULL,
        source TEXT COLLATE "C" NOT NULL,
        converted TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (variant, url)
    );
    """,
)
