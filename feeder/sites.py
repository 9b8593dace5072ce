"""Site rules files (feeder/sites/*.yaml, and the user's own in ``sites_dir``) → SiteRules.

The only module that imports cssselect. A file is checked whole when it is loaded, like config.yaml: an unknown
key, a bad regular expression, a CSS selector that does not parse, an unknown time zone or date directive is
refused with the file and the line. A user's file with the ``name`` of a shipped one replaces it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cssselect
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from feeder.errors import ConfigError
from feeder.rules import ArticleRules, Pick, SiteRules, UrlRules, tracking_pattern
from feeder.yamlfile import Document, read_text

SHIPPED = Path(__file__).parent / "sites"
_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_DIRECTIVES = {"d": r"\d{1,2}", "m": r"\d{1,2}", "Y": r"\d{4}", "H": r"\d{1,2}", "M": r"\d{2}", "S": r"\d{2}"}
_JSON_LD_PROPERTIES = frozenset(
    {"headline", "description", "datePublished", "dateModified", "author", "image", "articleSection", "keywords"}
)
_LD_DEFAULTS = {
    "title": "headline",
    "published": "datePublished",
    "modified": "dateModified",
    "author": "author",
    "image": "image",
    "sections": "articleSection",
    "keywords": "keywords",
}


def css_xpath(selector: str, *, prefix: str = "descendant-or-self::") -> str:
    """XPath 1.0 for a CSS selector (a group of them too); ValueError naming the problem when it does not parse."""
    try:
        return str(cssselect.GenericTranslator().css_to_xpath(selector, prefix=prefix))
    except cssselect.SelectorError as e:
        raise ValueError(f"not a CSS selector {selector!r}: {e}") from e


def _check_selector(value: str) -> str:
    css_xpath(value)
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"not a regular expression {value!r}: {e}") from e
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)") from e
    return value


def date_pattern(written: str) -> re.Pattern[str]:
    """A strftime-style format (%d/%m/%Y - %H:%M) as a pattern with named groups; white space matches any."""
    parts, index = [r"^\s*"], 0
    while index < len(written):
        char = written[index]
        if char == "%":
            directive = written[index + 1 : index + 2]
            if directive not in _DIRECTIVES:
                raise ValueError(f"date format {written!r}: %{directive} is not one of %d %m %Y %H %M %S")
            parts.append(f"(?P<{directive}>{_DIRECTIVES[directive]})")
            index += 2
            continue
        parts.append(r"\s*" if char.isspace() else re.escape(char))
        index += 1
    parts.append(r"\s*$")
    try:
        return re.compile("".join(parts))
    except re.error as e:  # a directive used twice
        raise ValueError(f"date format {written!r}: {e}") from e


def _check_date_format(value: str) -> str:
    date_pattern(value)
    return value


Selector = Annotated[str, AfterValidator(_check_selector)]
Regex = Annotated[str, AfterValidator(_check_regex)]
Host = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PickSpec(_Strict):
    css: Selector | None = None
    attr: str | None = Field(default=None, min_length=1)
    json_ld: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> PickSpec:
        if (self.css is None) == (self.json_ld is None):
            raise ValueError("give either css (with an optional attr) or json_ld")
        if self.json_ld is not None and (self.attr is not None or self.json_ld not in _JSON_LD_PROPERTIES):
            raise ValueError(f"json_ld must be one of {', '.join(sorted(_JSON_LD_PROPERTIES))}, without attr")
        return self


def _as_picks(value: object) -> object:
    """A field as written (a selector, a mapping, or a list of either) → a list of mappings."""
    items = value if isinstance(value, list | tuple) else [value]
    return [{"css": item} if isinstance(item, str) else item for item in items]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


FieldSpec = Annotated[tuple[PickSpec, ...], BeforeValidator(_as_picks)]
DateFormat = Annotated[str, AfterValidator(_check_date_format)]


class ArticleSpec(_Strict):
    url: Regex | None = None
    json_ld: bool = False
    title: FieldSpec = ()
    published: FieldSpec = ()
    modified: FieldSpec = ()
    author: FieldSpec = ()
    image: FieldSpec = ()
    lead: FieldSpec = ()
    body: FieldSpec = ()
    sections: FieldSpec = ()
    keywords: FieldSpec = ()
    remove: tuple[Selector, ...] = ()
    remove_attribute_prefixes: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    share_label: Regex | None = None
    date_format: Annotated[tuple[DateFormat, ...], BeforeValidator(_as_list)] = ()


class SectionSpec(_Strict):
    path_segment: int = Field(ge=1, le=20)
    under: str = Field(default="/", pattern=r"^/")


class SiteSpec(_Strict):
    name: Annotated[str, Field(pattern=_NAME)]
    title: str = Field(min_length=1)
    hosts: tuple[Host, ...] = Field(min_length=1)
    host_aliases: dict[Host, Host] = {}
    language: str = Field(default="en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"
    publisher: str | None = Field(default=None, min_length=1)
    tracking_params: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.*-]+$")], ...] = ()
    feeds: tuple[Annotated[str, Field(pattern=r"^https?://[^/\s]+(/\S*)?$")], ...] = ()
    section: SectionSpec | None = None
    article: ArticleSpec = ArticleSpec()

    @field_validator("host_aliases")
    @classmethod
    def _aliases_lead_to_hosts(cls, aliases: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if "hosts" not in info.data:
            return aliases  # hosts themselves are wrong: that is the error to show
        hosts = info.data["hosts"]
        for alias, host in aliases.items():
            if host not in hosts:
                raise ValueError(f"{alias} leads to {host}, which is not one of hosts")
        return aliases


def load_sites(user_dir: Path | None) -> dict[str, SiteRules]:
    """Every site by name: the shipped files, then the user's (which win on the same name)."""
    sites = {rules.name: rules for rules in _read_folder(SHIPPED)}
    if user_dir is not None and user_dir.is_dir():
        sites.update((rules.name, rules) for rules in _read_folder(user_dir))
    return sites


def load_site(path: Path) -> SiteRules:
    """One site rules file; ConfigError naming the file and line of every problem."""
    text = read_text(path, "site rules file")
    document = Document(text, path, "a site rules file")
    spec = document.validate(SiteSpec)
    return _rules(spec, path, hashlib.sha256(text.encode()).hexdigest())


def _read_folder(folder: Path) -> list[SiteRules]:
    found: list[SiteRules] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        try:
            rules = load_site(path)
        except ConfigError as e:
            problems.append(str(e))
            continue
        clash = next((other for other in found if other.name == rules.name), None)
        if clash is not None:
            problems.append(f"{path}: name: {rules.name!r} is also the name of {clash.path}")
        found.append(rules)
    if problems:
        raise ConfigError("\n".join(problems))
    return found


def _rules(spec: SiteSpec, path: Path, digest: str) -> SiteRules:
    urls = UrlRules(
        hosts=frozenset(spec.hosts),
        host_aliases=tuple(spec.host_aliases.items()),
        tracking=tracking_pattern(spec.tracking_params),
        section_segment=spec.section.path_segment if spec.section else None,
        section_under=spec.section.under if spec.section else "/",
    )
    return SiteRules(
        name=spec.name,
        title=spec.title,
        urls=urls,
        article=_article(spec.article),
        language=spec.language,
        timezone=ZoneInfo(spec.timezone),
        publisher=spec.publisher,
        feeds=spec.feeds,
        path=str(path),
        digest=digest,
    )


def _article(spec: ArticleSpec) -> ArticleRules:
    fields: dict[str, Any] = {}
    for name in ("title", "published", "modified", "author", "image", "lead", "body", "sections", "keywords"):
        picks = _picks(getattr(spec, name))
        default = _LD_DEFAULTS.get(name)
        if spec.json_ld and default and not any(p.json_ld for p in picks):
            picks = (Pick(json_ld=default), *picks)
        fields[name] = picks
    formats = spec.date_format
    return ArticleRules(
        url=re.compile(spec.url) if spec.url else None,
        json_ld=spec.json_ld,
        remove=css_xpath(", ".join(spec.remove), prefix="descendant::") if spec.remove else "",
        removals=tuple(Pick(css=css, xpath=css_xpath(css, prefix="descendant::")) for css in spec.remove),
        remove_attribute_prefixes=spec.remove_attribute_prefixes,
        share_label=re.compile(spec.share_label) if spec.share_label else None,
        date_formats=tuple(date_pattern(f) for f in formats),
        **fields,
    )


def _picks(spec: tuple[PickSpec, ...]) -> tuple[Pick, ...]:
    return tuple(_pick(item) for item in spec)


def _pick(item: PickSpec) -> Pick:
    if item.json_ld is not None:
        return Pick(json_ld=item.json_ld)
    css = item.css or ""
    return Pick(css=css, xpath=css_xpath(css), attr=item.attr)


def site_for_host(sites: Mapping[str, SiteRules], host: str) -> SiteRules | None:
    """The site whose hosts hold ``host`` (aliases too), if any."""
    for rules in sites.values():
        if host in rules.hosts or any(host == alias for alias, _ in rules.urls.host_aliases):
            return rules
    return None
