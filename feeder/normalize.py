"""ParsedArticle → Article: canonical URL, safe HTML, credible UTC dates, content hash.

Pure policy, no I/O. The only module that imports w3lib and nh3. Every
spelling of one article's URL maps to one canonical key, which becomes the
entry's Atom id, RSS guid and link.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import nh3
from w3lib.url import canonicalize_url, safe_url_string

from feeder.errors import ParseError
from feeder.models import Article, Enclosure, ParsedArticle
from feeder.rules import UrlRules
from feeder.text import collapse_space, plain_text, unescaped, xml_safe

EARLIEST_CREDIBLE = datetime(1990, 1, 1, tzinfo=UTC)
MAX_SECTION_BYTES = 100
CLOCK_SKEW = timedelta(days=1)

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dl", "dt", "em",
        "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "mark", "ol",
        "p", "pre", "q", "s", "small", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "form", "noscript", "template", "svg", "math", "select"}
)
_SANITIZER_OPTIONS: dict[str, Any] = {
    "tags": set(ALLOWED_TAGS),
    "clean_content_tags": set(DROPPED_WITH_CONTENT),
    "attributes": {tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    "url_schemes": {"http", "https", "mailto"},
    "link_rel": "noopener noreferrer",
    "strip_comments": True,
}
_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_SPACE_BETWEEN_TAGS = re.compile(r">\s+<")


def normalize(
    parsed: ParsedArticle,
    *,
    urls: UrlRules,
    retrieved_at: datetime,
    now: datetime,
) -> Article:
    """Apply the project's policy to one parsed article; ParseError if it cannot be published.

    The version's time is the document's own modification time (a page's
    dateModified), else its scrape time, else ``retrieved_at`` (a seed file's
    modification time; the caller's choice for other documents); ``now``
    bounds what counts as credible; ``urls`` are the site's URL rules (hosts, aliases, tracking, section).
    """
    url = canonical_url(parsed.url, urls)
    version = _credible(parsed.modified_at, now) or _credible(parsed.scraped_at, now) or _credible(retrieved_at, now)
    if version is None:
        raise ParseError("no credible scrape time: the timestamp line and the file time are both unusable")
    version_at = _whole_seconds(version)
    published = _whole_seconds(_credible(parsed.published_at, now) or version_at)
    section, folders = sections_of(url, urls)
    categories = tuple(dict.fromkeys([*folders, *(plain_text(c) for c in parsed.extra_categories)]))
    categories = tuple(c for c in categories if c)
    title = plain_text(parsed.title)
    if not title:
        raise ParseError("the title is empty once markup is taken out")
    lead = xml_safe(collapse_space(unescaped(parsed.lead)))
    image = _safe_image(parsed.image, base_url=url)
    content = sanitize_html(_compose(image, lead, parsed.body_html), base_url=url)
    audio = _safe_audio(parsed.audio, base_url=url)
    author = plain_text(parsed.author) if parsed.author else None
    return Article(
        url=url,
        title=title,
        section=section,
        categories=categories,
        author=author or None,
        lead=lead,
        image=image,
        content_html=content,
        published=published,
        version_at=version_at,
        content_hash=content_hash(title, lead, image, content, categories, audio=audio),
        fulltext=parsed.fulltext,
        audio=audio,
    )


def canonical_url(raw: str, urls: UrlRules) -> str:
    """The one key for every spelling of an article URL on one of the site's hosts."""
    plain = _PLAIN_URL.fullmatch(raw)
    if plain and "/." not in plain["path"] and plain["host"] in urls.hosts:
        return f"https://{plain['host']}{plain['path'] or '/'}"  # what the general case gives it, in a µs
    return _canonical_url(raw, urls)


_PLAIN_URL = re.compile(
    r"https?://(?P<host>[a-z0-9]+(?:[.-][a-z0-9]+)*)(?P<path>(?:/(?:[\w~.-]|%[89A-F][0-9A-F])+)*)", re.A
)
"""A URL already in canonical form but for its scheme: a lower-case host and no port, a path of unreserved
characters and upper-case escapes of non-ASCII bytes, no dot segment ("/." is checked apart), no trailing slash,
query or fragment. Most article URLs are; tests/test_normalize.py checks the claim against the general case."""


def _canonical_url(raw: str, urls: UrlRules) -> str:
    try:
        parts = urlsplit(raw.strip())
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError as e:
        raise ParseError(f"article URL {raw!r} is not a valid URL") from e
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ParseError(f"article URL {raw!r} is not an absolute http(s) URL")
    host = dict(urls.host_aliases).get(host, host)
    if host not in urls.hosts:
        raise ParseError(f"article URL host {host!r} is not an allowed host ({', '.join(sorted(urls.hosts))})")
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = "&".join(p for p in parts.query.split("&") if p and not _is_tracking(p, urls))
    path = parts.path.rstrip("/") or "/"
    return canonicalize_url(urlunsplit(("https", netloc, path, query, "")))


def _is_tracking(pair: str, urls: UrlRules) -> bool:
    return bool(urls.tracking.match(unquote(pair.split("=", 1)[0])))


def sections_of(url: str, urls: UrlRules) -> tuple[str | None, tuple[str, ...]]:
    """Section and categories from a canonical URL by the site's rule: with path_segment 2, /cn/中国/… → 中国;
    deeper folders are extra categories. None and none when the site has no section rule."""
    if urls.section_segment is None:
        return None, ()
    folders = urlsplit(url).path.rstrip("/").rpartition("/")[0]
    return _sections_of_folders(folders, urls.section_segment, urls.section_under)


@functools.lru_cache(maxsize=1024)
def _sections_of_folders(folders: str, segment: int, under: str) -> tuple[str | None, tuple[str, ...]]:
    """sections_of for the path before its last segment: a site has a handful of folders, met again and again."""
    segments = [unquote(s) for s in folders.split("/") if s]
    prefix = [s for s in under.split("/") if s]
    if segments[: len(prefix)] == prefix and len(segments) >= segment:
        names = tuple(collapse_space(xml_safe(s)) for s in segments[segment - 1 :])
        return (names[0] if is_section_name(names[0]) else None), tuple(f for f in names if f)
    return None, ()


def is_section_name(name: str) -> bool:
    """Whether a URL folder can name a section feed: it becomes a file name (NAME/SECTION.atom), so no
    separators, control characters or leading dot, and short enough for any filesystem."""
    return (
        bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\")
        and all(c.isprintable() for c in name)
        and len(name.encode()) <= MAX_SECTION_BYTES
    )


def sanitize_html(fragment: str, *, base_url: str | None = None) -> str:
    """Allowlist sanitizing: no script, style, event handler, javascript:/data: URL or unknown tag survives.

    Relative links and images are resolved against ``base_url`` (the canonical URL), or dropped without one.
    """
    if base_url:
        cleaned = nh3.clean(xml_safe(fragment), url_relative=("rewrite_with_base", base_url), **_SANITIZER_OPTIONS)
    else:
        cleaned = nh3.clean(xml_safe(fragment), url_relative="deny", **_SANITIZER_OPTIONS)
    return _IMG_WITHOUT_SRC.sub("", xml_safe(cleaned)).strip()


def content_hash(
    title: str,
    lead: str,
    image: str | None,
    content: str,
    categories: tuple[str, ...],
    *,
    audio: Enclosure | None = None,
) -> str:
    """Identity of an article's visible content: equal hashes mean nothing a reader sees changed.

    Runs of white space, and white space between tags, do not count.
    """
    visible = _SPACE_BETWEEN_TAGS.sub("><", collapse_space(content))
    fields: list[object] = [title, lead, image, visible, list(categories)]
    if audio is not None:  # appended only when present, so hashes of articles without audio never change
        fields.append(audio.url)
    payload = json.dumps(fields, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _compose(image: str | None, lead: str, body_html: str) -> str:
    parts = []
    if image:
        parts.append(f'<figure><img src="{html.escape(image)}" alt=""></figure>')
    if lead:
        parts.append(f"<p><strong>{html.escape(lead, quote=False)}</strong></p>")
    parts.append(body_html)
    return "".join(parts)


def _safe_image(url: str | None, *, base_url: str) -> str | None:
    if not url or not url.strip():
        return None
    if _PLAIN_ABSOLUTE_URL.fullmatch(url) and "/." not in url:
        return url  # what the general case gives it, in a µs
    return _resolved_image(url, base_url=base_url)


def _resolved_image(url: str, *, base_url: str) -> str | None:
    try:
        safe = safe_url_string(urljoin(base_url, xml_safe(url.strip())))
    except ValueError:
        return None
    return safe if urlsplit(safe).scheme in ("http", "https") else None


_PLAIN_ABSOLUTE_URL = re.compile(r"https?://[a-z0-9]+(?:[.-][a-z0-9]+)*(?:/(?:[\w~.:@!$*+,=-]|%[0-9A-F]{2})*)*", re.A)
"""An absolute URL that resolving and making safe leave as it is: lower-case host, no port, a path of characters
safe in a path (";" aside: it starts parameters), upper-case escapes, no dot segment, query or fragment.
tests/test_normalize.py checks the claim against the general case."""


def _safe_audio(audio: Enclosure | None, *, base_url: str) -> Enclosure | None:
    if audio is None:
        return None
    url = _safe_image(audio.url, base_url=base_url)
    return None if url is None else dataclasses.replace(audio, url=url)


def _credible(moment: datetime | None, now: datetime) -> datetime | None:
    if moment is None or not EARLIEST_CREDIBLE <= moment <= now + CLOCK_SKEW:
        return None
    return moment


def _whole_seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)
