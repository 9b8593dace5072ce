"""The state database's schema: numbered migrations, applied in order (``PRAGMA user_version`` records how far a
database has come). A migration is never changed once released; a change is a new one."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE entries (
        url TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        section TEXT,
        categories TEXT NOT NULL,
        author TEXT,
        lead TEXT NOT NULL,
        image TEXT,
        content TEXT NOT NULL,
        published INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        version_at INTEGER NOT NULL,
        content_hash TEXT NOT NULL
    );
    CREATE INDEX entries_by_published ON entries (published DESC, url);
    CREATE TABLE entry_sources (
        url TEXT NOT NULL REFERENCES entries (url),
        source TEXT NOT NULL,
        PRIMARY KEY (url, source)
    ) WITHOUT ROWID;
    CREATE INDEX entry_sources_by_source ON entry_sources (source, url);
    CREATE TABLE seed_files (
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        url TEXT,
        error TEXT,
        PRIMARY KEY (source, path)
    ) WITHOUT ROWID;
    CREATE TABLE feeds (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE feeds ADD COLUMN rendered TEXT;
    """,
    """
    ALTER TABLE entries ADD COLUMN fulltext INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE entries ADD COLUMN audio TEXT;
    CREATE INDEX entries_by_section ON entries (section, published DESC, url);
    CREATE TABLE http_cache (
        url TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT
    ) WITHOUT ROWID;
    CREATE TABLE hosts (
        host TEXT PRIMARY KEY,
        next_allowed INTEGER,
        failures INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE pages (
        url TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        feed_date INTEGER,
        fetched_for INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        next_try INTEGER,
        in_feed INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE feed_items (
        feed TEXT NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (feed, url)
    ) WITHOUT ROWID;
    CREATE INDEX feed_items_by_url ON feed_items (url);
    """,
    """
    ALTER TABLE entries ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX entries_by_revision ON entries (revision);
    CREATE TABLE archive_slots (
        view TEXT NOT NULL,
        seq INTEGER NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (view, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX archive_slots_by_url ON archive_slots (view, url);
    CREATE TABLE archive_views (
        view TEXT PRIMARY KEY,
        sources TEXT NOT NULL,
        state TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE editions (
        variant TEXT NOT NULL,
        url TEXT NOT NULL,
        source TEXT NOT NULL,
        converted TEXT NOT NULL,
        PRIMARY KEY (variant, url)
    );
    """,
)
