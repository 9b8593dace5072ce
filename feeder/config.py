"""config.yaml → a frozen, validated Config.

The only module that reads YAML (or, later, the environment). Relative paths are
resolved against the config file's folder. A wrong value becomes a ConfigError
whose lines each name the file, the line, the key path and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)

from feeder.errors import ConfigError

DEFAULT_CONFIG = Path("config.yaml")

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def parse_duration(value: object) -> timedelta:
    """'30s', '15m', '1h', '1d' → timedelta; anything else (a bare YAML number too) is refused."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string such as '30s', '15m' or '1h', not {value!r}")
    match = _DURATION.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid duration {value!r} (use a positive number and s, m, h or d: 30s, 15m, 1h)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    root = Path((info.context or {}).get("root", Path.cwd()))
    return (root / value.expanduser()).resolve()


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
    return value if value.endswith("/") else value + "/"


def _check_absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
    return value


def _check_origin(value: str) -> str:
    parts = urlsplit(_check_absolute_url(value))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"must be scheme://host[:port] only, not {value!r}")
    return value.rstrip("/")


def _check_host(value: str) -> str:
    host = value.strip().lower()
    if not re.fullmatch(r"[a-z0-9.-]+", host) or host.startswith(".") or ".." in host:
        raise ValueError(f"not a host name: {value!r}")
    return host


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
Name = Annotated[str, Field(pattern=_NAME)]
Host = Annotated[str, AfterValidator(_check_host)]
AbsoluteUrl = Annotated[str, AfterValidator(_check_absolute_url)]
Origin = Annotated[str, AfterValidator(_check_origin)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class SeedsSource(_Strict):
    name: Name
    kind: Literal["seeds"]
    path: ConfigPath
    interval: Duration = timedelta(minutes=1)


class RfiSource(_Strict):
    name: Name
    kind: Literal["rfi"]
    feeds: tuple[AbsoluteUrl, ...]
    origin: Origin = "https://www.rfi.fr"
    fulltext: bool = True
    max_pages: int = Field(default=30, ge=0, le=1000)
    interval: Duration = timedelta(minutes=15)


Source = Annotated[SeedsSource | RfiSource, Field(discriminator="kind")]


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
    language: str = Field(default="zh-cn", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    author: str = Field(default="RFI", min_length=1)
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


class Config(_Strict):
    output_dir: ConfigPath
    state_dir: ConfigPath
    base_url: Annotated[str, AfterValidator(_check_base_url)]
    server: ServerConfig = ServerConfig()
    allowed_hosts: tuple[Host, ...] = ("www.rfi.fr",)
    http: HttpConfig = HttpConfig()
    websub: WebSubConfig = WebSubConfig()
    sources: tuple[Source, ...]
    feeds: tuple[FeedConfig, ...]

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
    for key in ("allowed_hosts", "sources", "feeds"):
        if not getattr(config, key):
            yield (key,), "must list at least one"
    for index, source in enumerate(config.sources):
        if isinstance(source, RfiSource) and not source.feeds:
            yield ("sources", index, "feeds"), "must list at least one"
    for key in ("sources", "feeds"):
        names: list[str] = [item.name for item in getattr(config, key)]
        for index, name in enumerate(names):
            if name in names[:index]:
                yield (key, index, "name"), f"duplicate name {name!r}"
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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file: {e}") from e
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate YAML text as if read from ``path`` (relative paths resolve against its folder)."""
    try:
        root_node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of settings, got {type(data).__name__}")
    duplicates = [
        f"{path}:{line}: {key}: set twice (the first value would be ignored)"
        for line, key in _duplicate_keys(root_node, [])
    ]
    if duplicates:
        raise ConfigError("\n".join(duplicates))
    try:
        config = Config.model_validate(data, context={"root": path.parent.resolve()})
    except ValidationError as e:
        lines = [_describe(_location(err), _message(err), root_node, path) for err in e.errors()]
        raise ConfigError("\n".join(lines)) from e
    problems = [_describe(loc, message, root_node, path) for loc, message in _cross_problems(config)]
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _duplicate_keys(node: yaml.Node | None, keys: list[Any]) -> Iterator[tuple[int, str]]:
    """(line, key path) of every mapping key written twice; YAML keeps the last one silently."""
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            if key_node.value in seen:
                yield key_node.start_mark.line + 1, _key_path([*keys, key_node.value])
            seen.add(key_node.value)
            yield from _duplicate_keys(value_node, [*keys, key_node.value])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, [*keys, index])


def _location(err: Any) -> tuple[Any, ...]:
    """The key an error is about; a source's unknown or missing ``kind`` is reported at ``kind``."""
    loc = tuple(err["loc"])
    return (*loc, "kind") if err["type"] in ("union_tag_invalid", "union_tag_not_found") else loc


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown setting"
    if err["type"] in ("missing", "union_tag_not_found"):
        return "required setting is missing"
    if err["type"] == "union_tag_invalid":
        return f"unknown kind {err['ctx']['tag']!r} (expected one of: {err['ctx']['expected_tags']})"
    return str(err["msg"]).removeprefix("Value error, ")


def _describe(loc: tuple[Any, ...], message: str, root_node: yaml.Node | None, path: Path) -> str:
    node, keys = _locate(root_node, loc)
    where = f"{path}:{node.start_mark.line + 1}" if node is not None else str(path)
    return f"{where}: {_key_path(keys) or '(top level)'}: {message}"


def _locate(node: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[yaml.Node | None, list[Any]]:
    """Follow a pydantic error location through the YAML node tree, as far as it goes."""
    keys: list[Any] = []
    for part in loc:
        child = _child(node, part)
        if child is None:
            if isinstance(part, int) or part in _field_names():
                keys.append(part)
            continue
        keys.append(part)
        node = child
    return node, keys


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == part:
                return value_node  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def _field_names() -> set[str]:
    models: list[type[BaseModel]] = [Config, ServerConfig, HttpConfig, WebSubConfig, SeedsSource, RfiSource, FeedConfig]
    return {name for model in models for name in model.model_fields}


def _key_path(keys: list[Any]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out
