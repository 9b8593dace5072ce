"""config.yaml → a frozen, validated Config, with the site rules its sources name.

Relative paths are resolved against the config file's folder. A wrong value becomes
a ConfigError whose lines each name the file, the line, the key path and the problem
(feeder/yamlfile.py reads and locates; the site rules come from feeder/sites.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from feeder.config_fields import (
    AbsoluteUrl,
    BaseUrl,
    ConfigPath,
    Duration,
    Host,
    ListenHost,
    Name,
    Origin,
)
from feeder.database_url import check_database_url
from feeder.rules import SiteRules
from feeder.sites import load_sites
from feeder.yamlfile import Document, read_text

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("config.yaml")
DEFAULT_SITE = "rfi-cn"  # the site a seeds source reads its files by, and what the old kind: rfi stands for
OLD_KINDS = {"rfi": "site"}  # a kind of older configs → the kind it is read as (with site: DEFAULT_SITE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class ControlConfig(_Strict):
    """The control API and status page (feeder/api.py): keep it on loopback; every /api/ request needs the token."""

    host: ListenHost = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    token_file: ConfigPath | None = None  # unset: state_dir/control.token (Config.token_file)


class SeedsSource(_Strict):
    name: Name
    kind: Literal["seeds"]
    path: ConfigPath
    site: Name = DEFAULT_SITE
    interval: Duration = timedelta(minutes=1)


class SiteSource(_Strict):
    name: Name
    kind: Literal["site"]
    site: Name
    feeds: tuple[AbsoluteUrl, ...] = ()
    """The feeds to poll; none: the site's own (its rules file lists them)."""
    origin: Origin | None = None
    fulltext: bool = True
    max_pages: int = Field(default=30, ge=0, le=1000)
    interval: Duration = timedelta(minutes=15)


class FeedSource(_Strict):
    name: Name
    kind: Literal["feed"]
    url: AbsoluteUrl
    fulltext: Literal["none", "site", "auto"] = "none"
    hosts: tuple[Host, ...] = ()
    """Hosts its articles may be on besides the feed's own."""
    max_pages: int = Field(default=30, ge=0, le=1000)
    interval: Duration = timedelta(minutes=15)


def _read_old_kinds(value: object, info: ValidationInfo) -> object:
    """``kind: rfi`` (before sites were data) is ``kind: site`` with ``site: rfi-cn``."""
    if isinstance(value, dict) and value.get("kind") in OLD_KINDS:
        notices = (info.context or {}).get("old_kinds")
        if isinstance(notices, list):
            notices.append(value.get("name"))
        return {**value, "kind": OLD_KINDS[value["kind"]], "site": value.get("site", DEFAULT_SITE)}
    return value


Source = Annotated[SeedsSource | SiteSource | FeedSource, Field(discriminator="kind"), BeforeValidator(_read_old_kinds)]


class HttpConfig(_Strict):
    contact: str | None = None
    connect_timeout: Duration = timedelta(seconds=10)
    read_timeout: Duration = timedelta(seconds=20)
    deadline: Duration = timedelta(seconds=60)
    max_feed_bytes: int = Field(default=5_000_000, ge=1024)
    max_page_bytes: int = Field(default=2_000_000, ge=1024)
    per_host: int = Field(default=2, ge=1, le=8)


Variant = Literal["zh-tw", "zh-hk"]
VARIANT_LANGUAGES: dict[str, str] = {"zh-tw": "zh-TW", "zh-hk": "zh-HK"}


class FeedConfig(_Strict):
    name: Name
    title: str = Field(min_length=1)
    description: str = ""
    sources: tuple[Name, ...] = Field(min_length=1)
    max_entries: int = Field(default=200, ge=1, le=10_000)
    language: str = Field(default="", pattern=r"^([A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)?$")
    """Unset: the language of the site of its first source."""
    author: str = ""
    """Unset: the publisher of the site of its first source, else the feed's title."""
    sections: bool = True
    archive: bool = True
    archive_page_entries: int = Field(default=100, ge=10, le=1000)
    variants: tuple[Variant, ...] = ()

    def variant_name(self, variant: str) -> str:
        """The name of one Traditional Chinese edition of this feed: rfi-cn → rfi-cn-zh-tw."""
        return f"{self.name}-{variant}"


class WebSubConfig(_Strict):
    hubs: tuple[AbsoluteUrl, ...] = ()
    attempts: int = Field(default=4, ge=1, le=10)
    retry_delay: Duration = timedelta(seconds=5)


class QueueConfig(_Strict):
    """Poll jobs on PostgreSQL (with ``database:``): how workers run them and how a stalled one is noticed."""

    concurrency: int = Field(default=4, ge=1, le=64)
    """Polls one ``feeder worker`` runs at once, unless --concurrency says otherwise."""
    heartbeat: Duration = timedelta(seconds=10)
    stalled_after: Duration = timedelta(seconds=30)
    """A worker silent this long is taken for dead: its polls are run again by another."""
    check_every: Duration = timedelta(seconds=30)
    """How often ``feeder run`` looks for feeds to publish when no notification came."""
    chunk_files: int = Field(default=1000, ge=10)
    """Seed files to read from which a seeds poll is cut into jobs of this many files."""

    @model_validator(mode="after")
    def _stalled_after_heartbeats(self) -> Self:
        if self.stalled_after < 2 * self.heartbeat:
            raise ValueError(f"stalled_after must be at least twice heartbeat ({self.heartbeat})")
        return self


class Config(_Strict):
    output_dir: ConfigPath
    state_dir: ConfigPath
    database: Annotated[str, AfterValidator(check_database_url)] | None = None
    """A postgresql:// URL for the state database; None: the SQLite file state_dir/feeder.sqlite3."""
    base_url: BaseUrl
    server: ServerConfig = ServerConfig()
    control: ControlConfig = ControlConfig()
    allowed_hosts: tuple[Host, ...] = ()
    """Hosts articles of any source may be on, on top of each source's own."""
    sites_dir: ConfigPath = Field(default=Path("sites"), validate_default=True)
    http: HttpConfig = HttpConfig()
    websub: WebSubConfig = WebSubConfig()
    queue: QueueConfig = QueueConfig()
    sources: tuple[Source, ...]
    feeds: tuple[FeedConfig, ...]
    _sites: dict[str, SiteRules] = PrivateAttr(default_factory=dict)

    @property
    def sites(self) -> Mapping[str, SiteRules]:
        """Every site known (shipped and the user's own), by name."""
        return self._sites

    def site(self, name: str) -> SiteRules:
        return self._sites[name]

    @property
    def token_file(self) -> Path:
        """Where the control API's token is kept (created, mode 0600, when missing)."""
        return self.control.token_file or self.state_dir / "control.token"

    def feed_interval(self, feed: FeedConfig) -> timedelta:
        """How often a feed can change: the shortest interval of its sources."""
        return min(s.interval for s in self.sources if s.name in feed.sources)

    def max_age(self, relative_path: str) -> int:
        """Cache lifetime in seconds of a published file: its feed's interval (an edition's and an archive
        page's too), else the shortest of all."""
        stem = relative_path.split("/", 1)[0].split(".", 1)[0]
        feed = next((f for f in self.feeds if stem in (f.name, *map(f.variant_name, f.variants))), None)
        interval = self.feed_interval(feed) if feed else min(s.interval for s in self.sources)
        return int(interval.total_seconds())


def _cross_problems(config: Config) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """What field validation cannot see: empty lists, duplicate names, feeds naming unknown sources."""
    for key in ("sources", "feeds"):
        if not getattr(config, key):
            yield (key,), "must list at least one"
    for index, source in enumerate(config.sources):
        site = config.sites.get(source.site) if isinstance(source, SeedsSource | SiteSource) else None
        if isinstance(source, SeedsSource | SiteSource) and site is None:
            names_known = ", ".join(sorted(config.sites)) or "none"
            yield ("sources", index, "site"), f"unknown site {source.site!r} (known: {names_known})"
        elif isinstance(source, SiteSource) and site is not None and not (source.feeds or site.feeds):
            yield ("sources", index, "feeds"), f"must list at least one (the site {site.name} names none)"
    for key in ("sources", "feeds"):
        names: list[str] = [item.name for item in getattr(config, key)]
        for index, name in enumerate(names):
            if name in names[:index]:
                yield (key, index, "name"), f"duplicate name {name!r}"
    if config.control.port == config.server.port:
        yield ("control", "port"), f"must differ from server.port ({config.server.port})"
    yield from _variant_problems(config.feeds)
    known = {s.name for s in config.sources}
    for index, feed in enumerate(config.feeds):
        for position, name in enumerate(feed.sources):
            if name not in known:
                yield ("feeds", index, "sources", position), f"unknown source {name!r}"


def _variant_problems(feeds: tuple[FeedConfig, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """A variant listed twice, or whose feed name (NAME-zh-tw) another feed already has."""
    taken = {feed.name for feed in feeds}
    for index, feed in enumerate(feeds):
        for position, variant in enumerate(feed.variants):
            where: tuple[str | int, ...] = ("feeds", index, "variants", position)
            if variant in feed.variants[:position]:
                yield where, f"{variant!r} is listed twice"
            elif feed.variant_name(variant) in taken:
                yield where, f"its feed {feed.variant_name(variant)!r} has the name of another feed"


def load_config(path: Path = DEFAULT_CONFIG) -> Config:
    """Read, parse and validate a config file; raise ConfigError with readable lines."""
    return parse_config(read_text(path, "config file"), path)


def parse_config(text: str, path: Path) -> Config:
    """Validate YAML text as if read from ``path`` (relative paths resolve against its folder)."""
    document = Document(text, path, "the config")
    old_kinds: list[str] = []
    config = document.validate(Config, {"root": path.parent.resolve(), "old_kinds": old_kinds}, OLD_KINDS)
    config._sites = load_sites(config.sites_dir)
    document.fail(_cross_problems(config))
    for name in old_kinds:
        log.warning("%s: source %s: kind: rfi is read as kind: site with site: %s", path, name, DEFAULT_SITE)
    return config.model_copy(update={"feeds": tuple(_with_defaults(feed, config) for feed in config.feeds)})


def _with_defaults(feed: FeedConfig, config: Config) -> FeedConfig:
    """A feed's language and author, when not set, from the site of its first source that has one."""
    sites = [config.sites.get(getattr(s, "site", "")) for s in config.sources if s.name in feed.sources]
    site = next((s for s in sites if s is not None), None)
    language = feed.language or (site.language if site else "en")
    author = feed.author or (site.publisher if site and site.publisher else feed.title)
    return feed.model_copy(update={"language": language, "author": author})
